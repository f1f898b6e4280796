//! Synchronisation primitives that work from both blocking and async code,
//! a lifecycle state machine and hot-reloadable configuration.
//!
//! Telemetry code lives on both sides of the async boundary: an SDK's
//! `span.end()` is synchronous, the exporter is async. tokio's primitives are
//! async-first, std's are blocking-only, and neither puts a timeout on every
//! wait. Every waiting operation here exists in three forms: `try_*` (never
//! waits), `*_blocking` / `*_timeout` (parks the thread, optionally with a
//! deadline) and an async form returning a runtime-agnostic, cancel-safe
//! future (feature `async`, on by default; it adds no dependency).
//!
//! | type | what for |
//! |---|---|
//! | [`Semaphore`] | weighted, FIFO-fair permits: concurrency and memory limits |
//! | [`Barrier`] | reusable rendezvous with leader flag and withdrawing timeouts |
//! | [`Mutex`], [`RwLock`] | parking_lot's, re-exported |
//! | [`InstrumentedMutex`], [`InstrumentedRwLock`] | the same, recording contention as [`LockStats`] |
//! | [`Lifecycle`] | CAS-checked `Created → Starting → Running → Stopping → Stopped` / `Failed` |
//! | [`ConfigCell`] | wait-free `Arc<C>` reads, validating updates, versions, change notification |
//! | [`ConcurrentState`] | the seed's counter + lifecycle + [`Config`] bundle |
//!
//! # Design
//!
//! * **One wake-up path.** Every primitive keeps a list of [`Waker`]s. An
//!   async waiter registers its task's waker; a blocking waiter registers a
//!   waker that unparks its thread (cached per thread, so no allocation) and
//!   parks with its deadline. So async and blocking waiters queue in the
//!   same FIFO, and a timeout is "stop parking, withdraw under the lock".
//! * **Withdrawal keeps the primitive consistent.** A dropped future or an
//!   expired timeout removes its waiter under the lock and passes on
//!   whatever it had been given (permits, a barrier arrival), or keeps the
//!   result if it completed in the same instant. Nothing is lost.
//! * **Fast paths are single atomics.** An uncontended semaphore acquire or
//!   release is one CAS; a config read is wait-free (no lock, no retry loop);
//!   a lifecycle transition is one CAS. Locks are taken only to queue.
//! * **Bad input is an error, never a hang or a panic**: a request for more
//!   permits than any semaphore can hold, a barrier for 0 parties, a
//!   forbidden lifecycle edge, a config that fails validation. (A request
//!   above what a semaphore owns *now* waits for `add_permits`, as in tokio.)
//! * **No user code under our locks.** Wakers are cloned before a lock is
//!   taken and woken or dropped after it is released, so a waker whose drop
//!   releases a permit or stores a config cannot deadlock the primitive.
//! * **Checked**: loom models the semaphore (including a cancelled async
//!   acquire, a re-poll with a new waker racing the grant, and a `new(0)`
//!   gate), barrier generations, config updates racing reads and watchers,
//!   and racing lifecycle transitions; Miri runs the tests over the one `unsafe` module
//!   (`ConfigCell`'s reclamation); ThreadSanitizer runs the stress tests.
//!
//! # Example: a memory limiter
//!
//! Bound the bytes of telemetry in flight between receivers and exporters:
//! each batch holds permits equal to its size until it is exported, a batch
//! larger than the whole budget is refused at once (checked against
//! [`Semaphore::total`]; the semaphore itself would make it wait for more
//! permits to be added), and a producer can choose to wait (async or
//! blocking) or to shed load.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use otlp_sync::{AcquireError, OwnedPermit, Semaphore};
//!
//! struct MemoryLimiter {
//!     bytes: Arc<Semaphore>,
//! }
//!
//! /// A batch and the memory it is charged for; dropping it frees the budget.
//! struct Batch {
//!     payload: Vec<u8>,
//!     _charge: OwnedPermit,
//! }
//!
//! /// Why a batch was not admitted.
//! #[derive(Debug, PartialEq)]
//! enum Refused {
//!     /// Larger than the whole budget: it could only wait for permits
//!     /// that are never going to be added.
//!     Oversized,
//!     /// What the semaphore said (`WouldBlock`: no room now; `Closed`).
//!     Semaphore(AcquireError),
//! }
//!
//! impl MemoryLimiter {
//!     fn new(max_bytes: usize) -> Self {
//!         MemoryLimiter { bytes: Arc::new(Semaphore::new(max_bytes).unwrap()) }
//!     }
//!
//!     /// Async producers wait for room (FIFO, so big batches are not starved).
//!     async fn admit(&self, payload: Vec<u8>) -> Result<Batch, Refused> {
//!         if payload.len() > self.bytes.total() {
//!             return Err(Refused::Oversized);
//!         }
//!         let charge = self.bytes.acquire_owned(payload.len()).await;
//!         Ok(Batch { payload, _charge: charge.map_err(Refused::Semaphore)? })
//!     }
//!
//!     /// Synchronous producers (an SDK's `span.end()`) shed load instead.
//!     fn try_admit(&self, payload: Vec<u8>) -> Result<Batch, (Vec<u8>, Refused)> {
//!         if payload.len() > self.bytes.total() {
//!             return Err((payload, Refused::Oversized));
//!         }
//!         match self.bytes.try_acquire_owned(payload.len()) {
//!             Ok(charge) => Ok(Batch { payload, _charge: charge }),
//!             // The caller gets its data back.
//!             Err(err) => Err((payload, Refused::Semaphore(err))),
//!         }
//!     }
//! }
//!
//! let limiter = MemoryLimiter::new(1024);
//! let a = limiter.try_admit(vec![0; 600]).unwrap();
//! // Not enough room: refused without blocking, data handed back.
//! let (data, err) = limiter.try_admit(vec![0; 600]).err().unwrap();
//! assert_eq!((data.len(), err), (600, Refused::Semaphore(AcquireError::WouldBlock)));
//! // Larger than the whole budget: an immediate refusal, never a hang.
//! assert!(matches!(limiter.try_admit(vec![0; 4096]), Err((_, Refused::Oversized))));
//! // A blocking producer can wait with a deadline.
//! assert_eq!(
//!     limiter.bytes.acquire_timeout(600, Duration::from_millis(10)).unwrap_err(),
//!     AcquireError::Timeout
//! );
//! // Exporting (dropping) the first batch frees its bytes for the next one.
//! let export = std::thread::spawn(move || drop(a));
//! let b = futures_lite_block_on(limiter.admit(vec![0; 600])).unwrap();
//! export.join().unwrap();
//! assert_eq!((b.payload.len(), limiter.bytes.available()), (600, 424));
//!
//! # // A tiny executor so the doctest needs no runtime.
//! # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     use std::task::{Context, Poll, Wake, Waker};
//! #     struct Unpark(std::thread::Thread);
//! #     impl Wake for Unpark { fn wake(self: Arc<Self>) { self.0.unpark() } }
//! #     let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
//! #     let mut cx = Context::from_waker(&waker);
//! #     let mut f = std::pin::pin!(f);
//! #     loop {
//! #         match f.as_mut().poll(&mut cx) {
//! #             Poll::Ready(v) => return v,
//! #             Poll::Pending => std::thread::park(),
//! #         }
//! #     }
//! # }
//! ```
//!
//! With tokio, `tokio::time::timeout(d, sem.acquire(n))` gives an async
//! acquire a deadline; dropping the timed-out future withdraws the request.
//!
//! See `docs/sync.md` in the repository for the guide.
//!
//! [`Waker`]: std::task::Waker

#![cfg_attr(docsrs, feature(doc_cfg))]

mod loom;
mod park;

mod barrier;
mod config;
#[cfg(feature = "deadlock-detection")]
pub mod deadlock;
mod lifecycle;
mod lock;
pub mod semaphore;
mod state;

#[cfg(feature = "async")]
pub use barrier::BarrierWait;
pub use barrier::{Barrier, BarrierError, BarrierTimeout, BarrierWaitResult};
#[cfg(feature = "async")]
pub use config::Changed;
pub use config::{ChangeTimeout, ConfigCell, Snapshot};
#[cfg(feature = "async")]
pub use lifecycle::WaitState;
pub use lifecycle::{InvalidTransition, Lifecycle, State, WaitStateError};
pub use lock::{
    DEFAULT_SAMPLE_EVERY, InstrumentedMutex, InstrumentedMutexGuard, InstrumentedReadGuard,
    InstrumentedRwLock, InstrumentedWriteGuard, LockStats, Mutex, MutexGuard, RwLock,
    RwLockReadGuard, RwLockStats, RwLockUpgradableReadGuard, RwLockWriteGuard,
};
#[cfg(feature = "async")]
pub use semaphore::{Acquire, AcquireOwned};
pub use semaphore::{
    AcquireError, MAX_PERMITS, MergeError, OwnedPermit, Permit, Semaphore, SemaphoreError,
};
pub use state::{ConcurrentState, Config, ConfigError, CounterUnderflow};

/// The code blocks of this crate's `README.md`, compiled and run as
/// doctests (the README is part of the published package).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
