//! A work-stealing thread pool that sleeps when idle, with priorities,
//! scoped tasks, fork-join, awaitable handles and (feature `numa`) worker
//! pinning.
//!
//! # Design
//!
//! * **Queues.** Each worker owns three crossbeam-deque [`Worker`] deques
//!   (one per [`Priority`]), LIFO for the owner so fork-join stays
//!   cache-hot; the pool has three global injectors. A task spawned from a
//!   worker goes to that worker's deque, a task from any other thread into
//!   the injector of its priority.
//! * **Finding work.** For each priority from `High` to `Low`, a worker
//!   pops its own deque, then takes a batch from the injector, then steals
//!   one job from the other workers starting at a random victim (one, not
//!   a batch: a peer's oldest entries are the large `b` halves of its
//!   joins, and a thief holding several would leave the peer waiting for
//!   them). So a
//!   worker never starts a `Normal` task while a `High` one is visible to
//!   it (see [`Priority`] for the exact guarantee).
//! * **Parking.** A worker that finds nothing becomes a *searcher*, retries
//!   with a short back-off (a few spins, then a few yields — microseconds),
//!   then sleeps on a condition variable. A producer wakes a sleeper only
//!   when no worker is searching; the handshake (one atomic word of
//!   searching/sleeping counts, `SeqCst` fences on both sides, a last look
//!   at the queues after announcing sleep) cannot lose a wake-up and is
//!   model-checked with loom. An idle pool blocks in the kernel and uses no
//!   CPU, unlike a pool that polls (the seed's 1 µs sleep loop) or spins for
//!   long (rayon's 32 yield rounds, rayon#642).
//! * **Fork-join.** [`WorkStealingScheduler::join`] pushes `b` as a job that
//!   lives on the caller's stack (no allocation), runs `a`, then pops `b`
//!   back or, if a thief took it, runs other work until `b` is done. On a
//!   worker the call is one thread-local read and one compare before the
//!   push, and a `b` popped back is taken out of its job in place and
//!   called (no copy of the job, no counter, and no fence but the one in
//!   the deque's `pop`).
//! * **Shutdown.** `shutdown` closes the pool (late submissions are handed
//!   back), runs what is queued and joins the threads; `shutdown_now`
//!   drops queued tasks and reports how many; `Drop` is `shutdown`.
//! * **Panics** are caught per task: the worker survives, the panic
//!   handler sees the payload, a [`TaskHandle`] returns it in
//!   [`TaskError::Panicked`]. Destructors the worker runs for a task (an
//!   unwanted result, a payload nobody takes, a discarded task) are
//!   guarded the same way, and their panics reported like a task's.
//!
//! # Example
//!
//! ```
//! use otlp_sched::{Priority, WorkStealingScheduler};
//!
//! let pool = WorkStealingScheduler::builder().workers(2).build()?;
//!
//! // Fire and forget, and a task with a result.
//! pool.spawn(|| println!("hello from a worker")).ok();
//! let handle = pool.submit_with_priority(Priority::High, || 6 * 7).ok().unwrap();
//! assert_eq!(handle.join().unwrap(), 42);
//!
//! // Fork-join recursion.
//! fn fib(pool: &WorkStealingScheduler, n: u64) -> u64 {
//!     if n < 2 {
//!         return n;
//!     }
//!     let (a, b) = pool.join(|| fib(pool, n - 1), || fib(pool, n - 2));
//!     a + b
//! }
//! assert_eq!(fib(&pool, 15), 610);
//!
//! // Stop accepting, drain, join the threads.
//! pool.shutdown().unwrap();
//! assert!(pool.spawn(|| ()).is_err());
//! # Ok::<(), otlp_sched::BuildError>(())
//! ```
//!
//! A [`TaskHandle`] is also a [`Future`], so async code
//! can `pool.submit(work)?.await` without blocking its runtime.
//!
//! [`Worker`]: crossbeam_deque::Worker

mod error;
mod handle;
mod job;
mod pool;
mod registry;
mod scope;
mod sleep;
mod stats;
mod sync;

pub use error::{BuildError, ShutdownError, SubmitError, TaskError};
pub use handle::TaskHandle;
pub use pool::{Builder, WorkStealingScheduler};
pub use scope::Scope;
pub use stats::WorkerStats;

/// The sleep state machine, exported only for the loom model in
/// `tests/loom_sleep.rs`.
#[cfg(loom)]
#[doc(hidden)]
pub use sleep::{Sleep, Wake};

#[cfg(feature = "numa")]
pub use otlp_numa::{CpuSet, Placement};

/// The priority of a task.
///
/// **Guarantee.** Whenever a worker picks its next task, it looks at the
/// priorities in the order `High`, `Normal`, `Low`, and for each one at its
/// own deque, the global injector and the other workers' deques (in that
/// order) before it moves to the next priority. So a worker never starts a
/// lower-priority task while a higher-priority task sits in any queue it
/// looked at. With one worker this is a strict order: queued `High` tasks
/// all start before any queued `Normal` one, and those before any `Low`.
/// With several workers, up to `workers - 1` lower-priority tasks can start
/// concurrently with (and so slightly before) the last higher-priority ones,
/// because each worker's look is a snapshot. Within one priority, tasks
/// from outside the pool start in submission order per injector batch;
/// tasks spawned from a worker run LIFO on that worker. Running tasks are
/// never preempted, and the halves of a `join` inherit the priority of the
/// task that called it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Runs before `Normal` and `Low` tasks.
    High,
    /// The default.
    #[default]
    Normal,
    /// Runs only when no `High` or `Normal` task is visible.
    Low,
}

impl Priority {
    /// All priorities, highest first.
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    /// The queue index of this priority (0 = High).
    #[cfg_attr(loom, allow(dead_code))]
    #[inline]
    pub(crate) const fn index(self) -> usize {
        match self {
            Priority::High => 0,
            Priority::Normal => 1,
            Priority::Low => 2,
        }
    }
}

/// The code blocks of this crate's `README.md`, compiled and run as
/// doctests (the README is part of the published package).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
