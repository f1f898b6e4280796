//! [`AsyncTaskManager`]: N async workers draining a bounded queue through a
//! [`TaskHandler`], with backpressure, per-task timeouts, panic isolation and
//! a shutdown that accounts for every task.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use otlp_lockfree::{BoundedQueue, CachePadded};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::sync::{AtomicBool, AtomicU64, Ordering};
use crate::util::{CatchUnwind, panic_message};
use crate::wake::SubmitGate;

#[cfg(feature = "monitor")]
use otlp_monitor::ConcurrencyMonitor;

/// What a worker does with each task.
///
/// Implement it for your type, or wrap a closure with [`handler_fn`]. A
/// handler that returns `Err`, panics, or outlives the per-task timeout
/// counts as a failure; the worker carries on with the next task.
///
/// ```
/// use otlp_async::TaskHandler;
///
/// struct Printer;
///
/// impl TaskHandler<String> for Printer {
///     type Error = std::convert::Infallible;
///
///     async fn handle(&self, task: String) -> Result<(), Self::Error> {
///         println!("{task}");
///         Ok(())
///     }
/// }
/// ```
pub trait TaskHandler<T>: Send + Sync + 'static {
    /// The handler's error, logged (at `debug`) and counted as a failure.
    type Error: fmt::Display + Send + 'static;

    /// Handles one task.
    fn handle(&self, task: T) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// A [`TaskHandler`] made from a closure; see [`handler_fn`].
pub struct HandlerFn<F> {
    f: F,
}

impl<F> fmt::Debug for HandlerFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerFn").finish_non_exhaustive()
    }
}

/// Builds a [`TaskHandler`] from `Fn(T) -> impl Future<Output = Result<(), E>>`.
///
/// ```
/// use otlp_async::handler_fn;
///
/// let handler = handler_fn(|n: u64| async move {
///     if n.is_multiple_of(2) { Ok(()) } else { Err(format!("{n} is odd")) }
/// });
/// # let _ = handler;
/// ```
pub fn handler_fn<T, F, Fut, E>(f: F) -> HandlerFn<F>
where
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: fmt::Display + Send + 'static,
{
    HandlerFn { f }
}

impl<T, F, Fut, E> TaskHandler<T> for HandlerFn<F>
where
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: fmt::Display + Send + 'static,
{
    type Error = E;

    fn handle(&self, task: T) -> impl Future<Output = Result<(), E>> + Send {
        (self.f)(task)
    }
}

impl<T, H: TaskHandler<T>> TaskHandler<T> for Arc<H> {
    type Error = H::Error;

    fn handle(&self, task: T) -> impl Future<Output = Result<(), H::Error>> + Send {
        (**self).handle(task)
    }
}

/// Why a manager could not be built or shut down.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// `workers` was 0.
    #[error("a task manager needs at least one worker")]
    ZeroWorkers,
    /// `capacity` was 0.
    #[error("the task queue capacity must be at least 1")]
    ZeroCapacity,
    /// The queue could not be allocated with this capacity.
    #[error("cannot allocate a task queue of {0} slots")]
    Capacity(usize),
    /// `build` was called outside a tokio runtime and no handle was given.
    #[error("no tokio runtime: build the manager inside one or pass a runtime handle")]
    NoRuntime,
    /// `shutdown` was already called.
    #[error("the task manager is already shut down")]
    AlreadyShutdown,
}

/// Why a task was not accepted; the task comes back.
#[derive(PartialEq, Eq, thiserror::Error)]
pub enum SubmitError<T> {
    /// The queue is full (from `try_submit`).
    #[error("the task queue is full")]
    Full(T),
    /// The manager is shutting down or shut down.
    #[error("the task manager is shut down")]
    Closed(T),
    /// No room opened up within the time given to `submit_timeout`.
    #[error("timed out waiting for room in the task queue")]
    Timeout(T),
}

impl<T> SubmitError<T> {
    /// The task that was not accepted.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(t) | Self::Closed(t) | Self::Timeout(t) => t,
        }
    }
}

impl<T> fmt::Debug for SubmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Full(_) => "Full(..)",
            Self::Closed(_) => "Closed(..)",
            Self::Timeout(_) => "Timeout(..)",
        })
    }
}

/// Counters of a manager (a snapshot; exact once it is shut down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ManagerStats {
    /// Tasks accepted into the queue.
    pub submitted: u64,
    /// Tasks whose handler returned `Ok`.
    pub completed: u64,
    /// Tasks whose handler returned `Err`, panicked or timed out.
    pub failed: u64,
    /// Of `failed`: tasks that outlived the per-task timeout.
    pub timed_out: u64,
    /// Of `failed`: tasks whose handler panicked.
    pub panicked: u64,
    /// Tasks cut off mid-handling by a shutdown deadline.
    pub aborted: u64,
    /// Tasks waiting in the queue.
    pub queued: u64,
    /// Tasks being handled now.
    pub in_progress: u64,
}

/// What `shutdown` found. Every accepted task is in exactly one of
/// `completed`, `failed`, `aborted` or `still_queued`:
/// `submitted == completed + failed + aborted + still_queued.len()`.
#[non_exhaustive]
pub struct ShutdownReport<T> {
    /// Tasks ever accepted.
    pub submitted: u64,
    /// Tasks handled successfully.
    pub completed: u64,
    /// Tasks that failed (including `timed_out` and `panicked`).
    pub failed: u64,
    /// Of `failed`: per-task timeouts.
    pub timed_out: u64,
    /// Of `failed`: handler panics.
    pub panicked: u64,
    /// Tasks that were being handled when the deadline passed.
    pub aborted: u64,
    /// Tasks never started, handed back.
    pub still_queued: Vec<T>,
    /// Whether the deadline passed before the queue was drained.
    pub deadline_exceeded: bool,
}

impl<T> fmt::Debug for ShutdownReport<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownReport")
            .field("submitted", &self.submitted)
            .field("completed", &self.completed)
            .field("failed", &self.failed)
            .field("timed_out", &self.timed_out)
            .field("panicked", &self.panicked)
            .field("aborted", &self.aborted)
            .field("still_queued", &self.still_queued.len())
            .field("deadline_exceeded", &self.deadline_exceeded)
            .finish()
    }
}

struct Envelope<T> {
    task: T,
    /// When the task was queued, read only for a manager that monitors.
    #[cfg(feature = "monitor")]
    enqueued: Option<tokio::time::Instant>,
}

/// The outcome counters of one worker. Each worker has its own, on their
/// own cache lines: with one shared set, the workers' per-task updates kept
/// pulling the line away from each other (and from the read-only fields
/// beside it). [`Shared::stats`] sums them.
#[derive(Default)]
struct TaskCounters {
    completed: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    panicked: AtomicU64,
    aborted: AtomicU64,
    in_progress: AtomicU64,
}

struct Shared<T> {
    queue: BoundedQueue<Envelope<T>>,
    slots: Semaphore,
    work: Notify,
    gate: SubmitGate,
    stop: AtomicBool,
    task_timeout: Option<Duration>,
    submitted: CachePadded<AtomicU64>,
    /// One per worker, indexed like the workers.
    counters: Box<[CachePadded<TaskCounters>]>,
    /// `None` for a manager built `without_monitor`.
    #[cfg(feature = "monitor")]
    monitor: Option<Arc<ConcurrencyMonitor>>,
}

/// Counts a task as aborted if the worker's future is dropped mid-task.
struct InProgress<'a, T> {
    shared: &'a Shared<T>,
    counters: &'a TaskCounters,
    armed: bool,
}

impl<T> Drop for InProgress<'_, T> {
    fn drop(&mut self) {
        self.counters.in_progress.fetch_sub(1, Ordering::AcqRel);
        if self.armed {
            self.counters.aborted.fetch_add(1, Ordering::AcqRel);
            #[cfg(feature = "monitor")]
            if let Some(monitor) = &self.shared.monitor {
                monitor.record_task_failure();
            }
        }
    }
}

enum Outcome<E> {
    Ok,
    Err(E),
    Panicked(String),
    TimedOut,
}

impl<T: Send + 'static> Shared<T> {
    fn enqueue(&self, task: T) -> Result<(), SubmitError<T>> {
        if !self.gate.enter() {
            self.slots.add_permits(1);
            return Err(SubmitError::Closed(task));
        }
        let envelope = Envelope {
            task,
            #[cfg(feature = "monitor")]
            enqueued: self.monitor.is_some().then(tokio::time::Instant::now),
        };
        match self.queue.push(envelope) {
            Ok(()) => {
                self.submitted.fetch_add(1, Ordering::Relaxed);
                self.gate.leave();
                self.work.notify_one();
                Ok(())
            }
            Err(envelope) => {
                // Cannot happen while permits match slots; hand it back
                // rather than lose it.
                self.gate.leave();
                self.slots.add_permits(1);
                Err(SubmitError::Full(envelope.task))
            }
        }
    }

    async fn run<H: TaskHandler<T>>(
        &self,
        counters: &TaskCounters,
        handler: &H,
        envelope: Envelope<T>,
    ) {
        // One clock read at the start serves the queue wait, the latency
        // and the timeout's deadline (a clock read costs ~50 ns on the
        // project's VM), and a manager that neither monitors nor times out
        // reads no clock at all.
        #[cfg(feature = "monitor")]
        let monitor = self.monitor.as_deref();
        #[cfg(not(feature = "monitor"))]
        let monitor: Option<&NoMonitor> = None;
        let started =
            (monitor.is_some() || self.task_timeout.is_some()).then(tokio::time::Instant::now);
        #[cfg(feature = "monitor")]
        if let (Some(monitor), Some(now)) = (monitor, started) {
            if let Some(enqueued) = envelope.enqueued {
                monitor.record_queue_wait(now.saturating_duration_since(enqueued));
            }
            monitor.record_task_start();
        }
        counters.in_progress.fetch_add(1, Ordering::AcqRel);
        let mut guard = InProgress {
            shared: self,
            counters,
            armed: true,
        };
        let task = envelope.task;
        let mut work = std::pin::pin!(CatchUnwind::new(async move { handler.handle(task).await }));
        let caught = match (self.task_timeout, started) {
            (Some(limit), Some(started)) => {
                // Most tasks finish in their first poll, and those need no
                // timer: only a task still pending after it registers one,
                // with the deadline counted from before that first poll.
                let deadline = started + limit;
                match std::future::poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await {
                    Poll::Ready(result) => Some(result),
                    Poll::Pending => tokio::time::timeout_at(deadline, work).await.ok(),
                }
            }
            _ => Some(work.await),
        };
        let outcome = match caught {
            None => Outcome::TimedOut,
            Some(Ok(Ok(()))) => Outcome::Ok,
            Some(Ok(Err(e))) => Outcome::Err(e),
            Some(Err(payload)) => Outcome::Panicked(panic_message(&*payload).to_owned()),
        };
        guard.armed = false;
        drop(guard);
        #[cfg(feature = "monitor")]
        let timed = monitor.zip(started).map(|(m, s)| (m, s.elapsed()));
        match outcome {
            Outcome::Ok => {
                counters.completed.fetch_add(1, Ordering::AcqRel);
                #[cfg(feature = "monitor")]
                if let Some((monitor, elapsed)) = timed {
                    monitor.record_task_completion(elapsed);
                }
                return;
            }
            Outcome::Err(e) => tracing::debug!(error = %e, "task failed"),
            Outcome::Panicked(msg) => {
                counters.panicked.fetch_add(1, Ordering::AcqRel);
                tracing::warn!(panic = %msg, "task handler panicked; the worker carries on");
            }
            Outcome::TimedOut => {
                counters.timed_out.fetch_add(1, Ordering::AcqRel);
                tracing::debug!(timeout = ?self.task_timeout, "task timed out");
            }
        }
        counters.failed.fetch_add(1, Ordering::AcqRel);
        #[cfg(feature = "monitor")]
        if let Some((monitor, elapsed)) = timed {
            monitor.record_task_failure_after(elapsed);
        }
    }

    fn stats(&self) -> ManagerStats {
        let mut stats = ManagerStats {
            submitted: self.submitted.load(Ordering::Acquire),
            queued: self.queue.len() as u64,
            ..ManagerStats::default()
        };
        for c in self.counters.iter() {
            stats.completed += c.completed.load(Ordering::Acquire);
            stats.failed += c.failed.load(Ordering::Acquire);
            stats.timed_out += c.timed_out.load(Ordering::Acquire);
            stats.panicked += c.panicked.load(Ordering::Acquire);
            stats.aborted += c.aborted.load(Ordering::Acquire);
            stats.in_progress += c.in_progress.load(Ordering::Acquire);
        }
        stats
    }

    fn in_progress(&self) -> u64 {
        self.counters
            .iter()
            .map(|c| c.in_progress.load(Ordering::Acquire))
            .sum()
    }
}

/// Stands in for the monitor's type when the feature is off, so `run` has
/// one shape either way.
#[cfg(not(feature = "monitor"))]
struct NoMonitor;

async fn worker<T: Send + 'static, H: TaskHandler<T>>(
    shared: Arc<Shared<T>>,
    handler: Arc<H>,
    index: usize,
) {
    let counters = &*shared.counters[index];
    loop {
        // `try_pop`, not `pop`: `pop` spins while a submitter is between
        // claiming a slot and writing it, and a submitter preempted there
        // (more runnable threads than cores) kept a worker spinning for the
        // rest of its time slice. That submitter's `notify_one` follows its
        // write, so sleeping until it is enough.
        let envelope = match shared.queue.try_pop() {
            Some(envelope) => envelope,
            None => {
                let notified = shared.work.notified();
                tokio::pin!(notified);
                // Registered before the last look: every push is followed
                // by a `notify_one`, which from now on either wakes this
                // future or leaves it a permit, so a task this look misses
                // is never stranded.
                notified.as_mut().enable();
                match shared.queue.try_pop() {
                    Some(envelope) => envelope,
                    // `stop` is set only after every admitted submitter has
                    // finished enqueueing: once it is seen, the queue holds
                    // only written tasks, and an empty one stays empty.
                    None if shared.stop.load(Ordering::Acquire) => {
                        if shared.queue.is_empty() {
                            return;
                        }
                        continue;
                    }
                    None => {
                        notified.await;
                        continue;
                    }
                }
            }
        };
        shared.slots.add_permits(1);
        shared.run(counters, &*handler, envelope).await;
        // Keep a busy worker from starving its runtime thread.
        tokio::task::consume_budget().await;
    }
}

/// Builder for [`AsyncTaskManager`]; see [`AsyncTaskManager::builder`].
pub struct AsyncTaskManagerBuilder<T> {
    workers: usize,
    capacity: usize,
    task_timeout: Option<Duration>,
    handle: Option<tokio::runtime::Handle>,
    /// `None`: a fresh monitor; `Some(None)`: no monitoring.
    #[cfg(feature = "monitor")]
    monitor: Option<Option<Arc<ConcurrencyMonitor>>>,
    _task: std::marker::PhantomData<fn(T)>,
}

impl<T> fmt::Debug for AsyncTaskManagerBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncTaskManagerBuilder")
            .field("workers", &self.workers)
            .field("capacity", &self.capacity)
            .field("task_timeout", &self.task_timeout)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> AsyncTaskManagerBuilder<T> {
    /// Number of workers (default: the available parallelism).
    #[must_use]
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Queue capacity (default 1024).
    #[must_use]
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n;
        self
    }

    /// Time limit per task (default: none).
    #[must_use]
    pub fn task_timeout(mut self, limit: Duration) -> Self {
        self.task_timeout = Some(limit);
        self
    }

    /// Runtime to spawn workers on (default: the current one).
    #[must_use]
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.handle = Some(handle);
        self
    }

    /// Records into this monitor instead of a fresh one.
    #[cfg(feature = "monitor")]
    #[must_use]
    pub fn monitor(mut self, monitor: Arc<ConcurrencyMonitor>) -> Self {
        self.monitor = Some(Some(monitor));
        self
    }

    /// Records nothing into a monitor: no clock reads per task (about
    /// 50 ns each on a VM, two or three per task) and no histogram updates.
    /// [`AsyncTaskManager::stats`] still counts every task.
    #[cfg(feature = "monitor")]
    #[must_use]
    pub fn without_monitor(mut self) -> Self {
        self.monitor = Some(None);
        self
    }

    /// Starts the workers.
    pub fn build<H: TaskHandler<T>>(self, handler: H) -> Result<AsyncTaskManager<T>, ManagerError> {
        if self.workers == 0 {
            return Err(ManagerError::ZeroWorkers);
        }
        if self.capacity == 0 {
            return Err(ManagerError::ZeroCapacity);
        }
        let handle = match self.handle {
            Some(h) => h,
            None => tokio::runtime::Handle::try_current().map_err(|_| ManagerError::NoRuntime)?,
        };
        if self.capacity > Semaphore::MAX_PERMITS {
            return Err(ManagerError::Capacity(self.capacity));
        }
        let queue =
            BoundedQueue::new(self.capacity).map_err(|_| ManagerError::Capacity(self.capacity))?;
        let shared = Arc::new(Shared {
            queue,
            slots: Semaphore::new(self.capacity),
            work: Notify::new(),
            gate: SubmitGate::new(),
            stop: AtomicBool::new(false),
            task_timeout: self.task_timeout,
            submitted: CachePadded::new(AtomicU64::new(0)),
            counters: (0..self.workers)
                .map(|_| CachePadded::new(TaskCounters::default()))
                .collect(),
            #[cfg(feature = "monitor")]
            monitor: self
                .monitor
                .unwrap_or_else(|| Some(Arc::new(ConcurrencyMonitor::new()))),
        });
        let handler = Arc::new(handler);
        let workers = (0..self.workers)
            .map(|index| handle.spawn(worker(Arc::clone(&shared), Arc::clone(&handler), index)))
            .collect();
        Ok(AsyncTaskManager {
            shared,
            workers: Mutex::new(workers),
            worker_count: self.workers,
        })
    }
}

/// N async workers consuming a bounded queue of `T` through a
/// [`TaskHandler`] (the seed's task manager, repaired).
///
/// * `submit(t).await` waits for room (backpressure); `try_submit` hands the
///   task back when the queue is full; `submit_timeout` waits at most a given
///   time.
/// * A handler that errs, panics or outlives the per-task timeout counts as a
///   failure; its worker carries on.
/// * `shutdown(deadline)` refuses new tasks (handed back as
///   [`SubmitError::Closed`]), lets the workers drain the queue, waits up to
///   the deadline, then aborts what is still running and hands back what was
///   never started, in a [`ShutdownReport`].
/// * With the `monitor` feature, task counts, latencies and queue waits go
///   into an otlp-monitor [`ConcurrencyMonitor`](otlp_monitor::ConcurrencyMonitor).
///
/// ```
/// use std::time::Duration;
/// use otlp_async::{AsyncTaskManager, handler_fn};
///
/// # tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(async {
/// let manager = AsyncTaskManager::builder()
///     .workers(2)
///     .capacity(64)
///     .build(handler_fn(|n: u32| async move {
///         if n == 13 { Err("unlucky") } else { Ok(()) }
///     }))
///     .unwrap();
/// for n in 0..100 {
///     manager.submit(n).await.unwrap();
/// }
/// let report = manager.shutdown(Duration::from_secs(5)).await.unwrap();
/// assert_eq!((report.completed, report.failed), (99, 1));
/// assert!(report.still_queued.is_empty());
/// # });
/// ```
pub struct AsyncTaskManager<T> {
    shared: Arc<Shared<T>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    worker_count: usize,
}

impl<T> fmt::Debug for AsyncTaskManager<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncTaskManager")
            .field("workers", &self.worker_count)
            .field("capacity", &self.shared.queue.capacity())
            .field("queued", &self.shared.queue.len())
            .field("closed", &self.shared.gate.is_closed())
            .finish()
    }
}

/// How long aborted workers get to unwind before `shutdown` stops waiting
/// for them (only a handler that blocks its thread needs more).
const ABORT_GRACE: Duration = Duration::from_secs(1);

impl<T: Send + 'static> AsyncTaskManager<T> {
    /// A builder: default workers = available parallelism, capacity 1024.
    pub fn builder() -> AsyncTaskManagerBuilder<T> {
        AsyncTaskManagerBuilder {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            capacity: 1024,
            task_timeout: None,
            handle: None,
            #[cfg(feature = "monitor")]
            monitor: None,
            _task: std::marker::PhantomData,
        }
    }

    /// `workers` workers on the current runtime with a queue of `capacity`.
    pub fn new<H: TaskHandler<T>>(
        workers: usize,
        capacity: usize,
        handler: H,
    ) -> Result<Self, ManagerError> {
        Self::builder()
            .workers(workers)
            .capacity(capacity)
            .build(handler)
    }

    /// Queues `task`, waiting for room. Cancel-safe: if this future is
    /// dropped before it completes, the task was not queued (it is dropped
    /// with the future) and no queue slot is lost.
    pub async fn submit(&self, task: T) -> Result<(), SubmitError<T>> {
        if self.shared.gate.is_closed() {
            return Err(SubmitError::Closed(task));
        }
        match self.shared.slots.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return Err(SubmitError::Closed(task)),
        }
        self.shared.enqueue(task)
    }

    /// Queues `task` if there is room now, else hands it back.
    pub fn try_submit(&self, task: T) -> Result<(), SubmitError<T>> {
        match self.shared.slots.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(tokio::sync::TryAcquireError::NoPermits) => return Err(SubmitError::Full(task)),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(SubmitError::Closed(task)),
        }
        self.shared.enqueue(task)
    }

    /// Queues `task`, waiting at most `timeout` for room (needs a runtime
    /// with time enabled).
    pub async fn submit_timeout(&self, task: T, timeout: Duration) -> Result<(), SubmitError<T>> {
        if self.shared.gate.is_closed() {
            return Err(SubmitError::Closed(task));
        }
        match tokio::time::timeout(timeout, self.shared.slots.acquire()).await {
            Ok(Ok(permit)) => permit.forget(),
            Ok(Err(_)) => return Err(SubmitError::Closed(task)),
            Err(_) => return Err(SubmitError::Timeout(task)),
        }
        self.shared.enqueue(task)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ManagerStats {
        self.shared.stats()
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.worker_count
    }

    /// Queue capacity.
    pub fn capacity(&self) -> usize {
        self.shared.queue.capacity()
    }

    /// Whether `shutdown` has been called.
    pub fn is_shutdown(&self) -> bool {
        self.shared.gate.is_closed()
    }

    /// The monitor receiving task counts, latencies and queue waits;
    /// `None` for a manager built
    /// [`without_monitor`](AsyncTaskManagerBuilder::without_monitor).
    #[cfg(feature = "monitor")]
    pub fn monitor(&self) -> Option<&Arc<ConcurrencyMonitor>> {
        self.shared.monitor.as_ref()
    }

    /// Refuses new tasks, lets the workers drain the queue, waits at most
    /// `deadline`, then aborts the tasks still running and hands back the
    /// ones never started. A second call returns
    /// [`ManagerError::AlreadyShutdown`]. Needs a runtime with time enabled.
    pub async fn shutdown(&self, deadline: Duration) -> Result<ShutdownReport<T>, ManagerError> {
        let shared = &*self.shared;
        if !shared.gate.close() {
            return Err(ManagerError::AlreadyShutdown);
        }
        shared.slots.close();
        // Submitters that got past the gate finish enqueueing without
        // awaiting, so this wait is short.
        while !shared.gate.is_quiescent() {
            tokio::task::yield_now().await;
        }
        shared.stop.store(true, Ordering::Release);
        shared.work.notify_waiters();

        let mut handles =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        let drained = tokio::time::timeout(deadline, async {
            for handle in &mut handles {
                let _ = handle.await;
            }
        })
        .await
        .is_ok();
        let mut aborted_late = 0;
        if !drained {
            for handle in &handles {
                handle.abort();
            }
            let unwound = tokio::time::timeout(ABORT_GRACE, async {
                for handle in &mut handles {
                    let _ = handle.await;
                }
            })
            .await
            .is_ok();
            if !unwound {
                // A handler is blocking its thread; count what is still
                // running as aborted.
                aborted_late = shared.in_progress();
            }
        }
        let mut still_queued = Vec::new();
        while let Some(envelope) = shared.queue.pop() {
            still_queued.push(envelope.task);
        }
        let stats = shared.stats();
        Ok(ShutdownReport {
            submitted: stats.submitted,
            completed: stats.completed,
            failed: stats.failed,
            timed_out: stats.timed_out,
            panicked: stats.panicked,
            aborted: stats.aborted + aborted_late,
            still_queued,
            deadline_exceeded: !drained,
        })
    }
}

impl<T> Drop for AsyncTaskManager<T> {
    /// Dropping a manager that was not shut down lets its workers drain the
    /// queue in the background and exit; nothing waits for them.
    fn drop(&mut self) {
        let shared = &*self.shared;
        if shared.gate.close() {
            shared.slots.close();
            // `&mut self`: no submitter can be inside the gate.
            shared.stop.store(true, Ordering::Release);
            shared.work.notify_waiters();
        }
    }
}
