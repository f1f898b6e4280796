//! The concurrency layer of an OpenTelemetry (OTLP) telemetry pipeline, in
//! one dependency.
//!
//! This facade re-exports the otlp-concurrency crates as modules, each behind
//! a cargo feature of the same short name. Depend on a single crate instead
//! when you need only one part: `otlp-lockfree` alone pulls in no tokio, no
//! parking_lot and no C library.
//!
//! | module | crate | feature | default |
//! |---|---|---|---|
//! | [`lockfree`] | `otlp-lockfree` | `lockfree` | yes |
//! | [`sync`] | `otlp-sync` | `sync` | yes |
//! | [`monitor`] | `otlp-monitor` | `monitor` | yes |
//! | [`numa`] | `otlp-numa` | `numa` | yes (sysfs backend; `hwloc` adds the hwloc backend) |
//! | [`sched`] | `otlp-sched` | `sched` | yes |
//! | [`async_rt`] | `otlp-async` | `async` | yes |
//! | [`sdk`] | `otlp-sdk` | `sdk` | yes (pulls in `opentelemetry_sdk`) |
//! | `sdk::otlp` | `otlp-sdk` | `otlp` | no (pulls in tonic, hyper and rustls; `webpki-roots` trusts Mozilla's roots compiled in instead of the system's store) |
//!
//! Features also switch on the integrations between crates: with `numa` and
//! `sched` both on, the scheduler can pin its workers to a placement plan;
//! with `monitor` on, the scheduler and the async task manager record into a
//! `ConcurrencyMonitor`.
//!
//! The end-to-end example, `cargo run --release --example pipeline`, wires
//! every crate into an OTLP span pipeline.
//!
//! # Example
//!
//! A bounded queue of spans drained in batches, a semaphore bounding the
//! bytes in flight, and a monitor recording how long each batch took:
//!
//! ```
//! # #[cfg(all(feature = "lockfree", feature = "sync", feature = "monitor"))] {
//! use std::time::Instant;
//! use otlp_concurrency::prelude::*;
//!
//! let queue = BoundedQueue::new(1024).expect("capacity is not zero");
//! let in_flight_bytes = Semaphore::new(64 * 1024).expect("permits fit");
//! let monitor = ConcurrencyMonitor::new();
//!
//! for span_id in 0..1000_u64 {
//!     // A full queue hands the span back instead of losing it silently.
//!     if let Err(span) = queue.push(span_id) {
//!         panic!("queue full, span {span} handed back");
//!     }
//! }
//! let mut batch = Vec::new();
//! while queue.pop_batch(&mut batch, 512) > 0 {
//!     let timer = monitor.start_task();
//!     let permit = in_flight_bytes.try_acquire(batch.len() * 8).expect("budget left");
//!     let started = Instant::now();
//!     let encoded: u64 = batch.iter().sum(); // stand-in for encoding
//!     assert!(encoded > 0 && started.elapsed().as_secs() < 60);
//!     drop(permit);
//!     timer.finish();
//!     batch.clear();
//! }
//! let stats = monitor.get_stats();
//! assert_eq!(stats.completed_tasks, 2);
//! assert_eq!(in_flight_bytes.available(), 64 * 1024);
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "lockfree")]
#[doc(inline)]
pub use otlp_lockfree as lockfree;

#[cfg(feature = "sync")]
#[doc(inline)]
pub use otlp_sync as sync;

#[cfg(feature = "monitor")]
#[doc(inline)]
pub use otlp_monitor as monitor;

#[cfg(feature = "numa")]
#[doc(inline)]
pub use otlp_numa as numa;

#[cfg(feature = "sched")]
#[doc(inline)]
pub use otlp_sched as sched;

/// The async layer (`otlp-async`): named `async_rt` because `async` is a
/// keyword.
#[cfg(feature = "async")]
#[doc(inline)]
pub use otlp_async as async_rt;

#[cfg(feature = "sdk")]
#[doc(inline)]
pub use otlp_sdk as sdk;

/// The types people reach for first, from every enabled crate.
pub mod prelude {
    #[cfg(feature = "lockfree")]
    pub use otlp_lockfree::{
        Backoff, BoundedQueue, CachePadded, ConcurrentHashMap, ConcurrentVec, LockFreeQueue,
        LockFreeStack,
    };

    #[cfg(feature = "sync")]
    pub use otlp_sync::{
        Barrier, ConcurrentState, ConfigCell, InstrumentedMutex, InstrumentedRwLock, Lifecycle,
        Mutex, RwLock, Semaphore,
    };

    #[cfg(feature = "monitor")]
    pub use otlp_monitor::{ConcurrencyMonitor, ConcurrencyStats, Histogram};

    #[cfg(feature = "numa")]
    pub use otlp_numa::{CpuSet, NumaAwareAllocator, Placement, Topology};

    #[cfg(feature = "sched")]
    pub use otlp_sched::{Priority, TaskHandle, WorkStealingScheduler};

    #[cfg(feature = "async")]
    pub use otlp_async::{
        AsyncDataStream, AsyncTaskManager, BatchConfig, BatchProcessor, BatchedExt, Exporter,
    };

    #[cfg(feature = "sdk")]
    pub use otlp_sdk::{BatchLogProcessor, BatchSpanProcessor};
}

/// The code blocks of this crate's `README.md`, compiled and run as
/// doctests (the README is part of the published package).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
