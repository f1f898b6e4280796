//! [`BatchProcessor`]: the OpenTelemetry batch span / log record processor
//! contract, with a lock-free, syscall-free `emit` and a control loop that
//! lives on its own thread so `force_flush` and `shutdown` cannot deadlock.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use otlp_lockfree::{BoundedQueue, CachePadded};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;

use crate::config::{BatchConfig, ConfigError, OverflowPolicy};
use crate::export::{ExportError, Exporter};
use crate::space::SpaceWaiters;
use crate::sync::{AtomicBool, AtomicU64, Ordering, thread_slot};
use crate::throttle::LogThrottle;
use crate::trigger::ExportTrigger;
use crate::util::CatchUnwind;

/// Why `force_flush` or `shutdown` did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessorError {
    /// `shutdown` was already called (or the processor was dropped).
    #[error("the batch processor is already shut down")]
    AlreadyShutdown,
    /// The work did not finish within the given time; it carries on in the
    /// background (exports stay bounded by the export timeout).
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Every item was handed to the exporter, but some exports failed; their
    /// items are counted in [`ProcessorStats::dropped_export_failed`].
    #[error("{batches} export(s) failed")]
    ExportFailed {
        /// How many exports failed while this call waited.
        batches: u64,
    },
    /// The exporter's own `shutdown` failed.
    #[error("exporter shutdown failed: {0}")]
    Exporter(ExportError),
    /// The processor's loop is gone (its thread could not keep running).
    #[error("the batch processor's loop has stopped")]
    Stopped,
}

/// An item [`BatchProcessor::try_emit`] could not queue, handed back.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError<T> {
    /// The queue stayed full (for the whole wait, under
    /// [`OverflowPolicy::Block`]).
    #[error("the batch processor's queue is full")]
    Full(T),
    /// `shutdown` has begun; the processor takes no more items.
    #[error("the batch processor is shut down")]
    Closed(T),
}

impl<T> EmitError<T> {
    /// The refused item.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(item) | Self::Closed(item) => item,
        }
    }
}

impl<T> fmt::Debug for EmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

/// A snapshot of a processor's counters.
///
/// While the processor runs, `emitted` is assembled from several counters
/// read one after the other and may lag by the items moving between them.
/// Once `shutdown` has returned (and no `emit` is still running) the
/// snapshot is exact and `emitted == exported + dropped + in_doubt`, with
/// `queue_depth == 0` and `in_flight == 0`.
///
/// An export that was refused (an error answer, a panic) is a known loss:
/// its items are in `dropped_export_failed`. One that timed out, or was
/// abandoned at the shutdown deadline, may still have been delivered: its
/// items are in `in_doubt`, not counted as dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProcessorStats {
    /// Items passed to `emit`.
    pub emitted: u64,
    /// Items in batches the exporter accepted.
    pub exported: u64,
    /// Items known to be lost (the sum of the three below).
    pub dropped: u64,
    /// Items dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Items emitted after `shutdown` began.
    pub dropped_after_shutdown: u64,
    /// Items in exports that failed (the exporter answered with an error)
    /// or panicked.
    pub dropped_export_failed: u64,
    /// Items in exports whose outcome is unknown: they timed out, or were
    /// still running at the shutdown deadline and were abandoned. The
    /// destination may have received them.
    pub in_doubt: u64,
    /// Exports that succeeded.
    pub batches: u64,
    /// Exports that failed or panicked.
    pub failed_batches: u64,
    /// Exports that timed out or were abandoned (see `in_doubt`).
    pub in_doubt_batches: u64,
    /// Items waiting in the queue.
    pub queue_depth: u64,
    /// Items taken from the queue whose export has not finished.
    pub in_flight: u64,
}

/// Read by every `emit`, written only at shutdown (and once for the
/// warning): its own cache line, so the loop's counter updates do not
/// invalidate it.
struct Hot {
    closed: AtomicBool,
    warned_full: AtomicBool,
    overflow: OverflowPolicy,
}

/// Written by the loop after each batch.
struct LoopCounters {
    popped: AtomicU64,
    exported: AtomicU64,
    failed_items: AtomicU64,
    in_doubt_items: AtomicU64,
    batches: AtomicU64,
    failed_batches: AtomicU64,
    in_doubt_batches: AtomicU64,
    dropped_closed: AtomicU64,
    finished: AtomicBool,
}

/// Per-thread-sharded counter for queue-full drops: under overload every
/// emitter drops, and one shared counter would make them fight over a line.
struct ShardedCounter {
    shards: Box<[CachePadded<AtomicU64>]>,
}

impl ShardedCounter {
    fn new() -> Self {
        let n = std::thread::available_parallelism()
            .map_or(4, |n| n.get())
            .clamp(1, 64)
            .next_power_of_two();
        Self {
            shards: (0..n)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
        }
    }

    #[inline]
    fn add(&self, n: u64) {
        let i = thread_slot() & (self.shards.len() - 1);
        self.shards[i].fetch_add(n, Ordering::Relaxed);
    }

    fn sum(&self) -> u64 {
        self.shards.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }
}

struct Shared<T> {
    queue: BoundedQueue<T>,
    hot: CachePadded<Hot>,
    trigger: CachePadded<ExportTrigger>,
    dropped_full: ShardedCounter,
    notify: Notify,
    counters: CachePadded<LoopCounters>,
    /// Emitters blocked on a full queue under `OverflowPolicy::Block`.
    space: SpaceWaiters,
}

impl<T> Shared<T> {
    #[cold]
    fn drop_full(&self, item: T) {
        drop(item);
        self.dropped_full.add(1);
        if !self.hot.warned_full.load(Ordering::Relaxed)
            && !self.hot.warned_full.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                capacity = self.queue.capacity(),
                "batch processor queue is full; dropping items (warned once, total reported at shutdown)"
            );
        }
    }

    #[cold]
    fn drop_closed(&self, item: T) {
        drop(item);
        self.counters.dropped_closed.fetch_add(1, Ordering::Relaxed);
    }

    fn stats(&self) -> ProcessorStats {
        self.sweep_after_finish();
        let popped = self.counters.popped.load(Ordering::Acquire);
        let exported = self.counters.exported.load(Ordering::Acquire);
        let failed = self.counters.failed_items.load(Ordering::Acquire);
        let in_doubt = self.counters.in_doubt_items.load(Ordering::Acquire);
        let queue_depth = self.queue.len() as u64;
        let dropped_queue_full = self.dropped_full.sum();
        let dropped_after_shutdown = self.counters.dropped_closed.load(Ordering::Relaxed);
        ProcessorStats {
            emitted: popped + queue_depth + dropped_queue_full + dropped_after_shutdown,
            exported,
            dropped: dropped_queue_full + dropped_after_shutdown + failed,
            dropped_queue_full,
            dropped_after_shutdown,
            dropped_export_failed: failed,
            in_doubt,
            batches: self.counters.batches.load(Ordering::Relaxed),
            failed_batches: self.counters.failed_batches.load(Ordering::Relaxed),
            in_doubt_batches: self.counters.in_doubt_batches.load(Ordering::Relaxed),
            queue_depth,
            in_flight: popped.saturating_sub(exported + failed + in_doubt),
        }
    }

    /// After the loop has finished, items pushed by emits that raced with
    /// shutdown are dropped and counted here.
    fn sweep_after_finish(&self) {
        if self.counters.finished.load(Ordering::Acquire) {
            while let Some(item) = self.queue.pop() {
                self.drop_closed(item);
            }
        }
    }
}

/// The counters behind a [`StatsReader`], without the item type.
trait StatsSource: Send + Sync {
    fn snapshot(&self) -> ProcessorStats;
}

impl<T: Send> StatsSource for Shared<T> {
    fn snapshot(&self) -> ProcessorStats {
        self.stats()
    }
}

/// A read-only handle on a processor's counters, for when the processor
/// itself has been handed away (to an OpenTelemetry provider, say).
///
/// It keeps the counters alive, not the processor: dropping the last
/// processor handle still shuts the processor down, and a reader taken
/// from it then reports the final, exact figures.
#[derive(Clone)]
pub struct StatsReader {
    source: Arc<dyn StatsSource>,
}

impl StatsReader {
    /// The processor's counters now; see [`ProcessorStats`].
    pub fn stats(&self) -> ProcessorStats {
        self.source.snapshot()
    }
}

impl fmt::Debug for StatsReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StatsReader").field(&self.stats()).finish()
    }
}

enum Reply<R> {
    Async(oneshot::Sender<R>),
    Blocking(std::sync::mpsc::SyncSender<R>),
    None,
}

impl<R> Reply<R> {
    fn send(self, value: R) {
        match self {
            Self::Async(tx) => {
                let _ = tx.send(value);
            }
            Self::Blocking(tx) => {
                let _ = tx.try_send(value);
            }
            Self::None => {}
        }
    }
}

enum Control {
    Flush {
        timeout: Duration,
        reply: Reply<Result<(), ProcessorError>>,
    },
    Shutdown {
        timeout: Duration,
        reply: Reply<Result<(), ProcessorError>>,
    },
}

/// Code run at the start of each thread a [`BatchProcessor`] creates; see
/// [`BatchProcessor::with_thread_start`].
pub type ThreadStart = Arc<dyn Fn() + Send + Sync + 'static>;

/// Runs a thread-start hook; its panic must not take the thread with it.
fn run_thread_start(on_start: &ThreadStart) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| on_start()));
}

/// The OpenTelemetry batch processor: `emit` queues an item without blocking
/// or awaiting; a loop exports batches on size or timer through an
/// [`Exporter`].
///
/// # Where the loop runs, and why shutdown cannot deadlock
///
/// [`BatchProcessor::new`] starts the loop on a dedicated thread with its
/// own current-thread tokio runtime; exports run there too. `force_flush` and
/// `shutdown` only send a message to that thread and wait for its answer, and
/// the loop enforces their time limit itself. So they make progress no
/// matter what the caller's thread is doing: the async variants may be
/// awaited on a current-thread runtime, on a one-worker runtime, or on any
/// other executor, and the `_blocking` variants may be called from plain
/// threads (or, though it parks the runtime's thread while it waits, from
/// inside a runtime). The price is one thread per processor, as the
/// OpenTelemetry SDK pays.
///
/// [`BatchProcessor::spawn_on`] runs the loop as a task on a runtime you
/// choose instead (used with tokio's paused clock in tests). Then the
/// `_blocking` variants must not be called from that runtime's own threads,
/// and the async variants need the runtime to keep polling the loop.
///
/// ```
/// use std::time::Duration;
/// use otlp_async::{BatchConfig, BatchProcessor, ExportError, exporter_fn};
///
/// let exporter = exporter_fn(|batch: Vec<u32>| async move {
///     println!("exporting {} items", batch.len());
///     Ok::<(), ExportError>(())
/// });
/// let processor = BatchProcessor::new(BatchConfig::default(), exporter).unwrap();
/// for i in 0..1000 {
///     processor.emit(i);
/// }
/// processor.shutdown_blocking(Duration::from_secs(5)).unwrap();
/// let stats = processor.stats();
/// assert_eq!(stats.emitted, 1000);
/// assert_eq!(stats.emitted, stats.exported + stats.dropped + stats.in_doubt);
/// ```
pub struct BatchProcessor<T, X> {
    shared: Arc<Shared<T>>,
    control: mpsc::UnboundedSender<Control>,
    exporter: Arc<X>,
    config: BatchConfig,
    _marker: PhantomData<fn(T)>,
}

impl<T, X> fmt::Debug for BatchProcessor<T, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchProcessor")
            .field("config", &self.config)
            .field("queue_depth", &self.shared.queue.len())
            .field("closed", &self.shared.hot.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<T, X> BatchProcessor<T, X>
where
    T: Send + Sync + 'static,
    X: Exporter<T>,
{
    /// Starts a processor whose loop runs on its own thread (named
    /// `otlp-batch-processor`) with its own current-thread runtime. May be
    /// called from anywhere, inside a runtime or not.
    pub fn new(config: BatchConfig, exporter: X) -> Result<Self, ConfigError> {
        Self::with_thread_start(config, exporter, Arc::new(|| {}))
    }

    /// As [`new`](Self::new), running `on_start` first on every thread the
    /// processor creates: its loop thread (where exports run) and each
    /// thread of its runtime's blocking pool (where exports that block
    /// run). This is where a thread is made to stay out of telemetry for
    /// its whole life: otlp-sdk enters OpenTelemetry's suppressed scope
    /// here, so whatever an export logs or traces cannot feed the pipeline
    /// it is exporting for. A panic in `on_start` is caught and the thread
    /// carries on without whatever `on_start` did not finish.
    pub fn with_thread_start(
        config: BatchConfig,
        exporter: X,
        on_start: ThreadStart,
    ) -> Result<Self, ConfigError> {
        let (this, event_loop) = Self::parts(config, exporter)?;
        let mut builder = tokio::runtime::Builder::new_current_thread();
        builder.enable_all();
        // Tokio built for loom has no thread hooks; no loom model starts a
        // processor's runtime.
        #[cfg(not(loom))]
        {
            let on_blocking_start = Arc::clone(&on_start);
            builder.on_thread_start(move || run_thread_start(&on_blocking_start));
        }
        let runtime = builder
            .build()
            .map_err(|e| ConfigError::Spawn(e.to_string()))?;
        std::thread::Builder::new()
            .name("otlp-batch-processor".into())
            .spawn(move || {
                run_thread_start(&on_start);
                runtime.block_on(event_loop.run());
                // An export stuck in a blocking call (abandoned at its
                // timeout) must not keep this thread waiting for it.
                runtime.shutdown_background();
            })
            .map_err(|e| ConfigError::Spawn(e.to_string()))?;
        Ok(this)
    }

    /// Starts a processor whose loop is a task on `handle`'s runtime. See the
    /// type docs for what that changes.
    pub fn spawn_on(
        config: BatchConfig,
        exporter: X,
        handle: &tokio::runtime::Handle,
    ) -> Result<Self, ConfigError> {
        let (this, event_loop) = Self::parts(config, exporter)?;
        handle.spawn(event_loop.run());
        Ok(this)
    }

    fn parts(config: BatchConfig, exporter: X) -> Result<(Self, EventLoop<T, X>), ConfigError> {
        let config = config.validated()?;
        let queue = BoundedQueue::new(config.max_queue_size)
            .map_err(|_| ConfigError::Queue(config.max_queue_size))?;
        let shared = Arc::new(Shared {
            queue,
            hot: CachePadded::new(Hot {
                closed: AtomicBool::new(false),
                warned_full: AtomicBool::new(false),
                overflow: config.overflow,
            }),
            trigger: CachePadded::new(ExportTrigger::new(
                config
                    .export_threshold
                    .unwrap_or(config.max_export_batch_size),
            )),
            dropped_full: ShardedCounter::new(),
            notify: Notify::new(),
            counters: CachePadded::new(LoopCounters {
                popped: AtomicU64::new(0),
                exported: AtomicU64::new(0),
                failed_items: AtomicU64::new(0),
                in_doubt_items: AtomicU64::new(0),
                batches: AtomicU64::new(0),
                failed_batches: AtomicU64::new(0),
                in_doubt_batches: AtomicU64::new(0),
                dropped_closed: AtomicU64::new(0),
                finished: AtomicBool::new(false),
            }),
            space: SpaceWaiters::new(),
        });
        let exporter = Arc::new(exporter);
        let (tx, rx) = mpsc::unbounded_channel();
        let event_loop = EventLoop {
            shared: Arc::clone(&shared),
            exporter: Arc::clone(&exporter),
            config: config.clone(),
            control: rx,
            control_open: true,
            inflight: JoinSet::new(),
            meta: HashMap::new(),
            popped: 0,
            eager_until: 0,
            next_timer: Instant::now() + config.scheduled_delay,
            flushes: Vec::new(),
            shutdown: None,
            export_warnings: LogThrottle::default(),
        };
        let this = Self {
            shared,
            control: tx,
            exporter,
            config,
            _marker: PhantomData,
        };
        Ok((this, event_loop))
    }
}

impl<T, X> BatchProcessor<T, X> {
    /// Queues `item` for export; an item the processor cannot take is
    /// dropped and counted.
    ///
    /// With the default [`OverflowPolicy::Drop`] it never blocks, never
    /// awaits and never makes a system call on its own behalf: a lock-free
    /// push and, once per batch, a wake-up of the loop. A full queue drops
    /// the item into [`ProcessorStats::dropped_queue_full`] (logging one
    /// `tracing` warning per processor); a processor that is shutting down
    /// drops it into [`ProcessorStats::dropped_after_shutdown`]. With
    /// [`OverflowPolicy::Block`] a full queue first blocks the calling
    /// thread for up to the policy's timeout.
    #[inline]
    pub fn emit(&self, item: T) {
        match self.try_emit(item) {
            Ok(()) => {}
            Err(EmitError::Full(item)) => self.shared.drop_full(item),
            Err(EmitError::Closed(item)) => self.shared.drop_closed(item),
        }
    }

    /// Queues `item` for export, or hands it back: [`EmitError::Full`] when
    /// the queue stayed full (at once under [`OverflowPolicy::Drop`], after
    /// the policy's timeout under [`OverflowPolicy::Block`]),
    /// [`EmitError::Closed`] once `shutdown` has begun. A handed-back item
    /// is not counted in [`ProcessorStats`]: it is still the caller's.
    #[inline]
    pub fn try_emit(&self, item: T) -> Result<(), EmitError<T>> {
        let shared = &*self.shared;
        if shared.hot.closed.load(Ordering::Relaxed) {
            return Err(EmitError::Closed(item));
        }
        match shared.queue.push(item) {
            Ok(()) => {
                self.pushed();
                Ok(())
            }
            Err(item) => match shared.hot.overflow {
                OverflowPolicy::Drop => Err(EmitError::Full(item)),
                OverflowPolicy::Block { timeout } => self.emit_blocking(item, timeout),
            },
        }
    }

    /// Wakes the loop once the queue holds the export threshold.
    #[inline]
    fn pushed(&self) {
        let shared = &*self.shared;
        if shared.trigger.pushed(shared.queue.len()) {
            shared.notify.notify_one();
        }
    }

    #[cold]
    fn emit_blocking(&self, item: T, timeout: Duration) -> Result<(), EmitError<T>> {
        let shared = &*self.shared;
        // A full queue is past the threshold, so the loop has been woken or
        // has every export slot busy; make sure (a producer may have lost
        // the wake-up race only to a push that is already counted).
        if shared.trigger.full() {
            shared.notify.notify_one();
        }
        let deadline = std::time::Instant::now().checked_add(timeout);
        let closed = || shared.hot.closed.load(Ordering::Acquire);
        match shared
            .space
            .wait(item, deadline, |item| shared.queue.push(item), closed)
        {
            Ok(()) => {
                self.pushed();
                Ok(())
            }
            Err(item) if closed() => Err(EmitError::Closed(item)),
            Err(item) => Err(EmitError::Full(item)),
        }
    }

    /// A handle that reads this processor's counters from anywhere, also
    /// after the processor has been moved away or dropped.
    pub fn stats_reader(&self) -> StatsReader
    where
        T: Send + 'static,
    {
        StatsReader {
            source: Arc::clone(&self.shared) as Arc<dyn StatsSource>,
        }
    }

    /// The configuration in force (batch size already clamped).
    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    /// The exporter.
    pub fn exporter(&self) -> &X {
        &self.exporter
    }

    /// Whether `shutdown` has been called.
    pub fn is_shutdown(&self) -> bool {
        self.shared.hot.closed.load(Ordering::Acquire)
    }

    /// A snapshot of the counters; see [`ProcessorStats`] for when it is
    /// exact.
    pub fn stats(&self) -> ProcessorStats {
        self.shared.stats()
    }

    fn request(
        &self,
        make: impl FnOnce(Reply<Result<(), ProcessorError>>) -> Control,
        reply: Reply<Result<(), ProcessorError>>,
    ) -> Result<(), ProcessorError> {
        self.control
            .send(make(reply))
            .map_err(|_| ProcessorError::Stopped)
    }

    /// The loop answers by the deadline itself; the extra second only covers
    /// a loop that has stopped answering altogether.
    fn wait_blocking(
        &self,
        rx: &std::sync::mpsc::Receiver<Result<(), ProcessorError>>,
        timeout: Duration,
    ) -> Result<(), ProcessorError> {
        match rx.recv_timeout(timeout.saturating_add(Duration::from_secs(1))) {
            Ok(result) => result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                Err(ProcessorError::Timeout(timeout))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(self.gone()),
        }
    }

    /// Why the loop did not answer: it finished a shutdown that raced this
    /// call, or it stopped.
    fn gone(&self) -> ProcessorError {
        if self.shared.counters.finished.load(Ordering::Acquire) {
            ProcessorError::AlreadyShutdown
        } else {
            ProcessorError::Stopped
        }
    }

    /// Exports everything emitted before this call, waiting at most
    /// `timeout`. Safe on any executor (see the type docs).
    pub async fn force_flush(&self, timeout: Duration) -> Result<(), ProcessorError> {
        if self.is_shutdown() {
            return Err(ProcessorError::AlreadyShutdown);
        }
        let (tx, rx) = oneshot::channel();
        self.request(|reply| Control::Flush { timeout, reply }, Reply::Async(tx))?;
        rx.await.unwrap_or_else(|_| Err(self.gone()))
    }

    /// [`force_flush`](Self::force_flush) for synchronous callers: parks the
    /// calling thread until the loop answers.
    pub fn force_flush_blocking(&self, timeout: Duration) -> Result<(), ProcessorError> {
        if self.is_shutdown() {
            return Err(ProcessorError::AlreadyShutdown);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.request(
            |reply| Control::Flush { timeout, reply },
            Reply::Blocking(tx),
        )?;
        self.wait_blocking(&rx, timeout)
    }

    fn begin_shutdown(&self) -> Result<(), ProcessorError> {
        if self.shared.hot.closed.swap(true, Ordering::AcqRel) {
            Err(ProcessorError::AlreadyShutdown)
        } else {
            // Emitters blocked on a full queue give up now (`Closed`).
            self.shared.space.notify();
            Ok(())
        }
    }

    /// Stops accepting items (later emits are dropped and counted), exports
    /// everything already queued, then shuts the exporter down, all within
    /// `timeout`. A second call returns
    /// [`ProcessorError::AlreadyShutdown`]. Safe on any executor.
    pub async fn shutdown(&self, timeout: Duration) -> Result<(), ProcessorError> {
        self.begin_shutdown()?;
        let (tx, rx) = oneshot::channel();
        self.request(
            |reply| Control::Shutdown { timeout, reply },
            Reply::Async(tx),
        )?;
        rx.await.unwrap_or_else(|_| Err(self.gone()))
    }

    /// [`shutdown`](Self::shutdown) for synchronous callers.
    pub fn shutdown_blocking(&self, timeout: Duration) -> Result<(), ProcessorError> {
        self.begin_shutdown()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.request(
            |reply| Control::Shutdown { timeout, reply },
            Reply::Blocking(tx),
        )?;
        self.wait_blocking(&rx, timeout)
    }
}

impl<T, X> Drop for BatchProcessor<T, X> {
    /// Dropping a processor that was not shut down starts a shutdown bounded
    /// by the export timeout, without waiting for it.
    fn drop(&mut self) {
        if !self.shared.hot.closed.swap(true, Ordering::AcqRel) {
            self.shared.space.notify();
            let _ = self.control.send(Control::Shutdown {
                timeout: self.config.export_timeout,
                reply: Reply::None,
            });
        }
        self.shared.sweep_after_finish();
    }
}

struct PendingFlush {
    target: u64,
    deadline: Instant,
    timeout: Duration,
    failures: u64,
    reply: Reply<Result<(), ProcessorError>>,
}

struct EventLoop<T, X> {
    shared: Arc<Shared<T>>,
    exporter: Arc<X>,
    config: BatchConfig,
    control: mpsc::UnboundedReceiver<Control>,
    control_open: bool,
    inflight: JoinSet<Result<(), ExportError>>,
    /// Per running export: first sequence number and item count.
    meta: HashMap<Id, (u64, u64)>,
    /// Items taken from the queue so far (the loop's own copy).
    popped: u64,
    /// Export eagerly, whatever the batch fill, until `popped` reaches this.
    eager_until: u64,
    next_timer: Instant,
    flushes: Vec<PendingFlush>,
    shutdown: Option<PendingFlush>,
    /// Failed exports are logged at most once per interval: a failure that
    /// repeats every batch must not flood the log.
    export_warnings: LogThrottle,
}

impl<T, X> EventLoop<T, X>
where
    T: Send + Sync + 'static,
    X: Exporter<T>,
{
    async fn run(mut self) {
        loop {
            let slot_free = self.inflight.len() < self.config.max_concurrent_exports;
            self.shared.trigger.rearm_if_free(slot_free);
            self.start_exports();
            self.settle_flushes();
            if self.shutdown.is_some() && self.try_finish_shutdown().await {
                return;
            }
            let wake_at = self.next_wake();
            tokio::select! {
                biased;
                msg = self.control.recv(), if self.control_open => self.on_control(msg),
                Some(done) = self.inflight.join_next_with_id(), if !self.inflight.is_empty() => {
                    self.on_export_done(done);
                }
                () = self.shared.notify.notified() => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let mut at = self.next_timer;
        for f in self.flushes.iter().chain(self.shutdown.iter()) {
            at = at.min(f.deadline);
        }
        at
    }

    /// Everything in the queue now, as a sequence number.
    fn queued_target(&self) -> u64 {
        self.popped + self.shared.queue.len() as u64
    }

    fn on_control(&mut self, msg: Option<Control>) {
        let now = Instant::now();
        match msg {
            Some(Control::Flush { timeout, reply }) => {
                let target = self.queued_target();
                self.eager_until = self.eager_until.max(target);
                self.flushes.push(PendingFlush {
                    target,
                    deadline: now + timeout,
                    timeout,
                    failures: 0,
                    reply,
                });
            }
            Some(Control::Shutdown { timeout, reply }) => {
                if self.shutdown.is_some() {
                    reply.send(Err(ProcessorError::AlreadyShutdown));
                    return;
                }
                let target = self.queued_target();
                self.eager_until = self.eager_until.max(target);
                self.shutdown = Some(PendingFlush {
                    target,
                    deadline: now + timeout,
                    timeout,
                    failures: 0,
                    reply,
                });
            }
            None => {
                // Every handle is gone; `Drop` already asked for a shutdown.
                self.control_open = false;
                if self.shutdown.is_none() {
                    self.shared.hot.closed.store(true, Ordering::Release);
                    self.shared.space.notify();
                    let target = self.queued_target();
                    self.eager_until = self.eager_until.max(target);
                    self.shutdown = Some(PendingFlush {
                        target,
                        deadline: now + self.config.export_timeout,
                        timeout: self.config.export_timeout,
                        failures: 0,
                        reply: Reply::None,
                    });
                }
            }
        }
    }

    /// Starts exports while there is room: batches of at least the export
    /// threshold always, shorter ones when the timer is due or a
    /// flush/shutdown is waiting for them (the rule of
    /// [`BatchConfig::with_export_threshold`]).
    fn start_exports(&mut self) {
        let now = Instant::now();
        if now >= self.next_timer {
            self.eager_until = self.eager_until.max(self.queued_target());
            self.next_timer = now + self.config.scheduled_delay;
        }
        let batch_size = self.config.max_export_batch_size;
        while self.inflight.len() < self.config.max_concurrent_exports {
            let len = self.shared.queue.len();
            let eager = self.popped < self.eager_until;
            if !self.shared.trigger.ready(len, eager) {
                break;
            }
            let mut batch = self.exporter.batch_buffer(len.min(batch_size));
            batch.clear();
            let n = self.shared.queue.pop_batch(&mut batch, batch_size);
            if n == 0 {
                break;
            }
            self.shared.space.notify();
            let start = self.popped;
            self.popped += n as u64;
            self.shared
                .counters
                .popped
                .store(self.popped, Ordering::Release);
            let exporter = Arc::clone(&self.exporter);
            let timeout = self.config.export_timeout;
            let handle = self.inflight.spawn(async move {
                match tokio::time::timeout(timeout, exporter.export_owned(batch)).await {
                    Ok(result) => result,
                    Err(_) => Err(ExportError::Timeout(timeout)),
                }
            });
            self.meta.insert(handle.id(), (start, n as u64));
            self.next_timer = now + self.config.scheduled_delay;
        }
    }

    fn on_export_done(
        &mut self,
        done: Result<(Id, Result<(), ExportError>), tokio::task::JoinError>,
    ) {
        let (id, outcome) = match done {
            Ok((id, Ok(()))) => (id, Ok(())),
            // A timed-out export may have reached its destination.
            Ok((id, Err(e @ ExportError::Timeout(_)))) => (id, Err((true, e.to_string()))),
            Ok((id, Err(e))) => (id, Err((false, e.to_string()))),
            Err(join_error) => {
                let outcome = if join_error.is_panic() {
                    (false, "the exporter panicked".to_owned())
                } else {
                    // Aborted at the shutdown deadline while running.
                    (
                        true,
                        "the export was abandoned at the shutdown deadline".to_owned(),
                    )
                };
                (join_error.id(), Err(outcome))
            }
        };
        let Some((start, n)) = self.meta.remove(&id) else {
            return;
        };
        match outcome {
            Ok(()) => {
                self.shared.counters.exported.fetch_add(n, Ordering::AcqRel);
                self.shared.counters.batches.fetch_add(1, Ordering::Relaxed);
            }
            Err((in_doubt, why)) => {
                let counters = &self.shared.counters;
                let (items, batches) = if in_doubt {
                    (&counters.in_doubt_items, &counters.in_doubt_batches)
                } else {
                    (&counters.failed_items, &counters.failed_batches)
                };
                items.fetch_add(n, Ordering::AcqRel);
                batches.fetch_add(1, Ordering::Relaxed);
                if let Some(held_back) = self.export_warnings.admit() {
                    let fate = if in_doubt {
                        "its items are in doubt (they may have been delivered)"
                    } else {
                        "its items are dropped"
                    };
                    tracing::warn!(
                        items = n,
                        error = %why,
                        similar_since_last_warning = held_back,
                        "batch export failed; {fate}"
                    );
                }
                for f in self.flushes.iter_mut().chain(self.shutdown.iter_mut()) {
                    if start < f.target {
                        f.failures += 1;
                    }
                }
            }
        }
    }

    /// Whether every item below `target` has left the queue and finished
    /// exporting.
    fn covered(&self, target: u64) -> bool {
        self.popped >= target && self.meta.values().all(|&(start, _)| start >= target)
    }

    fn settle_flushes(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.flushes.len() {
            let f = &self.flushes[i];
            let result = if self.covered(f.target) {
                Some(if f.failures == 0 {
                    Ok(())
                } else {
                    Err(ProcessorError::ExportFailed {
                        batches: f.failures,
                    })
                })
            } else if now >= f.deadline {
                Some(Err(ProcessorError::Timeout(f.timeout)))
            } else {
                None
            };
            match result {
                Some(result) => self.flushes.swap_remove(i).reply.send(result),
                None => i += 1,
            }
        }
    }

    /// Finishes the shutdown once its flush is covered or its deadline has
    /// passed. Returns `true` when the loop should exit.
    async fn try_finish_shutdown(&mut self) -> bool {
        let Some(pending) = self.shutdown.as_ref() else {
            return false;
        };
        let now = Instant::now();
        let covered = self.covered(pending.target);
        if !covered && now < pending.deadline {
            return false;
        }
        let Some(pending) = self.shutdown.take() else {
            return false;
        };
        let mut result = if covered {
            if pending.failures == 0 {
                Ok(())
            } else {
                Err(ProcessorError::ExportFailed {
                    batches: pending.failures,
                })
            }
        } else {
            Err(ProcessorError::Timeout(pending.timeout))
        };
        // Exports still running past the deadline are abandoned.
        self.inflight.abort_all();
        while let Some(done) = self.inflight.join_next_with_id().await {
            self.on_export_done(done);
        }
        let remaining = pending.deadline.saturating_duration_since(Instant::now());
        let exporter_shutdown = CatchUnwind::new(self.exporter.shutdown());
        match tokio::time::timeout(remaining, exporter_shutdown).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Err(_panic)) => {
                if result.is_ok() {
                    result = Err(ProcessorError::Exporter(ExportError::permanent(
                        "the exporter's shutdown panicked",
                    )));
                }
            }
            Ok(Ok(Err(e))) => {
                if result.is_ok() {
                    result = Err(ProcessorError::Exporter(e));
                }
            }
            Err(_) => {
                if result.is_ok() {
                    result = Err(ProcessorError::Timeout(pending.timeout));
                }
            }
        }
        // What is left in the queue (a deadline hit, or emits that raced
        // with `shutdown`) is dropped and counted.
        while let Some(item) = self.shared.queue.pop() {
            self.shared.drop_closed(item);
        }
        self.shared.counters.finished.store(true, Ordering::Release);
        let stats_dropped_full = self.shared.dropped_full.sum();
        if stats_dropped_full > 0 {
            tracing::warn!(
                dropped = stats_dropped_full,
                "batch processor dropped items because its queue was full"
            );
        }
        self.settle_flushes();
        for f in self.flushes.drain(..) {
            f.reply.send(Err(ProcessorError::AlreadyShutdown));
        }
        pending.reply.send(result);
        true
    }
}
