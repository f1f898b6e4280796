//! The async layer of an OTLP telemetry pipeline, on tokio: a task manager,
//! batching streams, and a batch processor with the OpenTelemetry
//! specification's contract that does not deadlock on shutdown.
//!
//! | type | what it is for |
//! |---|---|
//! | [`AsyncTaskManager`] | N async workers over a bounded queue, with backpressure, hand-back, per-task timeouts, panic isolation and an accounted shutdown |
//! | [`AsyncDataStream`], [`BatchedExt::batched`] | streams of batches cut by size, time since the first item, weight, or an explicit flush |
//! | [`BatchProcessor`] | the OTel batch span / log record processor: non-blocking `emit`, export on size or timer, `force_flush`, `shutdown` (plugged into `opentelemetry_sdk` by the `otlp-sdk` crate) |
//! | [`Exporter`], [`Retry`] | where batches go, and exponential back-off with jitter for retryable errors |
//!
//! # Design, and why
//!
//! * **Nothing is lost silently.** Every refused item comes back to the
//!   caller ([`SubmitError`], [`SendError`]) or is counted
//!   ([`ProcessorStats`]); every shutdown reports where each accepted item
//!   ended up ([`ShutdownReport`], `emitted == exported + dropped`).
//! * **`emit` is a lock-free push.** The processor's queue is
//!   `otlp_lockfree::BoundedQueue`; a producer makes a system call only when
//!   its push brings the queue to the batch size and no wake-up is already
//!   pending (a one-flag protocol, model-checked with loom); the export
//!   timer covers partial batches. (opentelemetry_sdk 0.33's thread-based
//!   processors also signal their thread once per full batch, with an
//!   atomic counter and a flag, but queue through a `sync_channel`.)
//! * **Flush and shutdown cannot deadlock.** The processor's loop runs on its
//!   own thread with its own current-thread runtime; `force_flush` and
//!   `shutdown` send it a message and wait for the answer, and the loop
//!   enforces their time limits. They therefore work from a current-thread
//!   runtime, a one-worker runtime, another executor, or a plain thread
//!   (`*_blocking`). (The SDK's experimental async-runtime processors hung
//!   in `force_flush` in the first two situations when measured here; its
//!   thread-based ones did not.)
//! * **Exports overlap and time out.** Up to `max_concurrent_exports`
//!   exports run at once, each cut at `export_timeout`; the SDK's
//!   thread-based processors export one batch at a time with no timeout.
//! * **Overflow is a policy.** Drop-and-count by default
//!   ([`OverflowPolicy::Drop`]), or block the producer for a bounded time
//!   ([`OverflowPolicy::Block`]); [`BatchProcessor::try_emit`] hands a
//!   refused item back.
//! * **Time is tokio's.** Every timer uses `tokio::time`, so tests drive
//!   them with the paused clock instead of sleeping.
//! * **Cancel safety.** Dropping a `submit` future queues nothing and leaks no
//!   slot; dropping a stream's `next()` future loses no item.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use otlp_async::{BatchConfig, BatchProcessor, ExportError, Exporter, Retry, RetryPolicy};
//!
//! struct Collector;
//!
//! impl Exporter<String> for Collector {
//!     async fn export(&self, batch: &[String]) -> Result<(), ExportError> {
//!         // Send the batch somewhere; a 503 would be ExportError::retryable(..).
//!         assert!(batch.len() <= 512);
//!         Ok(())
//!     }
//! }
//!
//! let processor = BatchProcessor::new(
//!     BatchConfig::default(),
//!     Retry::new(Collector, RetryPolicy::default()),
//! )
//! .unwrap();
//! for i in 0..10_000 {
//!     processor.emit(format!("log line {i}"));
//! }
//! processor.shutdown_blocking(Duration::from_secs(30)).unwrap();
//! let stats = processor.stats();
//! assert_eq!(stats.emitted, 10_000);
//! assert_eq!(stats.emitted, stats.exported + stats.dropped + stats.in_doubt);
//! ```
//!
//! See `docs/async.md` in the repository for the user guide.
//!
//! # Features
//!
//! * `monitor` (default): the task manager records task counts, latencies
//!   and queue waits into an `otlp_monitor::ConcurrencyMonitor`
//!   ([`AsyncTaskManager::monitor`]).

mod config;
mod export;
mod manager;
mod processor;
mod retry;
mod space;
mod stream;
mod sync;
mod throttle;
mod trigger;
mod util;
mod wake;

/// The crate's atomic protocols, exposed for the loom models in `tests/`.
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_api {
    pub use crate::space::SpaceWaiters;
    pub use crate::trigger::ExportTrigger;
    pub use crate::wake::{SubmitGate, WakeFlag};
}

pub use config::{BatchConfig, ConfigError, OverflowPolicy, Signal};
pub use export::{ExportError, Exporter, ExporterFn, exporter_fn};
pub use manager::{
    AsyncTaskManager, AsyncTaskManagerBuilder, HandlerFn, ManagerError, ManagerStats,
    ShutdownReport, SubmitError, TaskHandler, handler_fn,
};
pub use processor::{
    BatchProcessor, EmitError, ProcessorError, ProcessorStats, StatsReader, ThreadStart,
};
pub use retry::{Backoff, Retry, RetryPolicy};
pub use stream::{
    AsyncDataStream, AsyncDataStreamBuilder, Batched, BatchedExt, SendError, StreamConfigError,
    StreamSender,
};
pub use throttle::LogThrottle;

/// The code blocks of this crate's `README.md`, compiled and run as
/// doctests (the README is part of the published package).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
