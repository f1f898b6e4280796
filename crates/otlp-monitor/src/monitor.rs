//! The sharded monitor, its builder and the RAII task timer.

use std::fmt;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::error::MonitorError;
use crate::histogram::{AtomicHistogram, Histogram, duration_to_nanos};
use crate::stats::ConcurrencyStats;
use crate::sync::{AtomicU64, Mutex, Ordering, add, thread_slot};

/// Largest shard count [`MonitorBuilder::shards`] accepts.
pub const MAX_SHARDS: usize = 1024;

/// Read-modify-write shards for threads without an owned shard (a power of
/// two).
#[cfg(not(loom))]
const SHARED_SHARDS: usize = 4;
#[cfg(loom)]
const SHARED_SHARDS: usize = 1;

/// One shard: the counters a recording thread touches, on their own cache
/// lines (the bucket arrays are separate heap blocks per shard).
///
/// Writers: an *owned* shard is written only by the thread whose slot id
/// equals its index (ids are unique among live threads, see
/// `sync::thread_slot`), so counters, sum and buckets are bumped with a
/// plain load + store; a *shared* shard uses `fetch_add`. Min/max use a CAS
/// when they change in both kinds, because `reset` also writes them.
///
/// Ordering protocol (checked by `tests/loom_shards.rs`): a record updates
/// the histogram (min/max, sum, bucket) first and then increments its event
/// counter with `Release`. A reader makes three passes, all `Acquire`:
///
/// 1. every shard's `completed`/`failed`: the reported totals;
/// 2. every shard's `started`: so the snapshot never shows more finished
///    tasks than started ones, and every counted event's latency is visible
///    to the histogram reads that follow (`min <= max` whenever a
///    completion is counted);
/// 3. every shard's `completed`/`failed` again, for `in_flight =
///    started - finished` only. Finishes read *after* the starts bound the
///    gauge from above: a task that starts (and maybe ends) while the
///    snapshot is read is not counted, so `in_flight` never exceeds what
///    was really running while `started` was read. A task that ends
///    between passes 2 and 3 may make it read low (saturating at 0).
///    Subtracting pass 1 instead would count every task that started and
///    finished during the read as running.
struct Shard {
    started: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    slow: AtomicU64,
    latency: AtomicHistogram,
    queue_wait: AtomicHistogram,
}

impl Shard {
    fn new() -> Self {
        Self {
            started: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            slow: AtomicU64::new(0),
            latency: AtomicHistogram::new(),
            queue_wait: AtomicHistogram::new(),
        }
    }
}

/// Lifetime totals read from all shards at one moment.
#[derive(Clone)]
pub(crate) struct RawSnapshot {
    pub(crate) started: u64,
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    /// Completed + failed, read after `started` (for the gauge only).
    pub(crate) finished_after_start: u64,
    pub(crate) slow: u64,
    pub(crate) latency: Histogram,
    pub(crate) queue_wait: Histogram,
    /// The shards' exact min/max trackers (since the last reset), as read.
    pub(crate) latency_min_max: (u64, u64),
    pub(crate) queue_wait_min_max: (u64, u64),
    pub(crate) at: Instant,
}

/// What a window (since reset, or one interval) contains.
pub(crate) struct Window {
    pub(crate) started: u64,
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    pub(crate) slow: u64,
    pub(crate) in_flight: u64,
    pub(crate) latency: Histogram,
    pub(crate) queue_wait: Histogram,
    pub(crate) elapsed: Duration,
}

/// Reader-side state; only `get_stats`/`interval`/`reset` lock it, never a
/// record.
struct ReaderState {
    /// Totals at the last `reset` (`None`: never reset, read raw totals).
    baseline: Option<RawSnapshot>,
    /// When the current since-reset window started.
    baseline_at: Instant,
    /// Totals at the last `interval` call (`None`: use the baseline).
    last_interval: Option<RawSnapshot>,
    /// When the current interval started.
    last_interval_at: Instant,
}

/// Concurrency metrics that cost a few nanoseconds per record.
///
/// Counts started / completed / failed tasks, keeps HDR-style histograms of
/// task latency and queue wait, and reports totals, rates, the in-flight
/// gauge and percentiles. See the [crate docs](crate) for the design.
///
/// Recording methods take `&self`, never lock and never allocate; share the
/// monitor with `Arc<ConcurrencyMonitor>` or `&'static`.
///
/// ```
/// use std::time::Duration;
/// use otlp_monitor::ConcurrencyMonitor;
///
/// let monitor = ConcurrencyMonitor::new();
/// monitor.record_task_start();
/// monitor.record_task_completion(Duration::from_micros(250));
/// let stats = monitor.get_stats();
/// assert_eq!(stats.completed_tasks, 1);
/// assert_eq!(stats.in_flight, 0);
/// assert_eq!(stats.max_execution_time, Duration::from_micros(250));
/// ```
pub struct ConcurrencyMonitor {
    /// Shard `i` is written only by the thread whose slot id is `i`.
    owned: Box<[CachePadded<Shard>]>,
    /// Shards for threads without an owned shard (slot id >= owned.len()),
    /// written with read-modify-writes.
    shared: Box<[CachePadded<Shard>]>,
    shared_mask: usize,
    /// Tasks at or above this many nanoseconds count as slow (`u64::MAX`:
    /// off).
    slow_threshold_ns: u64,
    name: Option<Arc<str>>,
    created_at: Instant,
    reader: Mutex<ReaderState>,
}

impl ConcurrencyMonitor {
    /// Creates a monitor with the default shard count (twice the available
    /// parallelism, 4 ..= 64 per-thread shards, plus 4 shared ones) and no
    /// slow-task threshold.
    pub fn new() -> Self {
        Self::with_config(default_shards(), u64::MAX, None)
    }

    /// Starts a [`MonitorBuilder`] to choose shards, a slow-task threshold
    /// and a name.
    pub fn builder() -> MonitorBuilder {
        MonitorBuilder::default()
    }

    /// A monitor that counts tasks taking at least `threshold` as slow (see
    /// [`ConcurrencyStats::slow_tasks`]) and, with the `tracing` feature,
    /// emits a `WARN` event for each.
    pub fn with_slow_task_threshold(threshold: Duration) -> Self {
        Self::with_config(default_shards(), duration_to_nanos(threshold), None)
    }

    fn with_config(owned: usize, slow_threshold_ns: u64, name: Option<Arc<str>>) -> Self {
        let owned = owned.clamp(1, MAX_SHARDS);
        let now = Instant::now();
        let shards = |n: usize| (0..n).map(|_| CachePadded::new(Shard::new())).collect();
        Self {
            owned: shards(owned),
            shared: shards(SHARED_SHARDS),
            shared_mask: SHARED_SHARDS - 1,
            slow_threshold_ns,
            name,
            created_at: now,
            reader: Mutex::new(ReaderState {
                baseline: None,
                baseline_at: now,
                last_interval: None,
                last_interval_at: now,
            }),
        }
    }

    /// Number of per-thread (owned) shards: threads whose slot id is below
    /// this record without any locked instruction. Other threads share a
    /// few read-modify-write shards.
    pub fn shard_count(&self) -> usize {
        self.owned.len()
    }

    fn all_shards(&self) -> impl Iterator<Item = &Shard> {
        self.owned.iter().chain(self.shared.iter()).map(|s| &**s)
    }

    /// The slow-task threshold, if one is set.
    pub fn slow_task_threshold(&self) -> Option<Duration> {
        (self.slow_threshold_ns != u64::MAX).then(|| Duration::from_nanos(self.slow_threshold_ns))
    }

    /// The name given with [`MonitorBuilder::name`], if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// This thread's shard and whether the thread owns it exclusively.
    #[inline(always)]
    fn shard(&self) -> (&Shard, bool) {
        let slot = thread_slot();
        match self.owned.get(slot) {
            Some(shard) => (shard, true),
            None => (&self.shared[slot & self.shared_mask], false),
        }
    }

    /// Records that a task started (`total_tasks` and `in_flight` + 1).
    #[inline]
    pub fn record_task_start(&self) {
        let (shard, exclusive) = self.shard();
        add(&shard.started, 1, exclusive, Ordering::Release);
    }

    /// Records that a task completed after `elapsed` (`completed_tasks` + 1,
    /// `in_flight` - 1, latency recorded).
    #[inline]
    pub fn record_task_completion(&self, elapsed: Duration) {
        let ns = duration_to_nanos(elapsed);
        let (shard, exclusive) = self.shard();
        shard.latency.record(ns, exclusive);
        add(&shard.completed, 1, exclusive, Ordering::Release);
        if ns >= self.slow_threshold_ns {
            self.slow_task(shard, exclusive, ns, true);
        }
    }

    /// Records that a task failed (`failed_tasks` + 1, `in_flight` - 1); no
    /// latency is recorded.
    #[inline]
    pub fn record_task_failure(&self) {
        let (shard, exclusive) = self.shard();
        add(&shard.failed, 1, exclusive, Ordering::Release);
    }

    /// Records that a task failed after `elapsed`: like
    /// [`record_task_failure`](Self::record_task_failure), and the latency
    /// goes into the execution-time histogram too.
    #[inline]
    pub fn record_task_failure_after(&self, elapsed: Duration) {
        let ns = duration_to_nanos(elapsed);
        let (shard, exclusive) = self.shard();
        shard.latency.record(ns, exclusive);
        add(&shard.failed, 1, exclusive, Ordering::Release);
        if ns >= self.slow_threshold_ns {
            self.slow_task(shard, exclusive, ns, false);
        }
    }

    /// Records how long a task waited in a queue before it started (a
    /// separate histogram; it does not change any task count).
    #[inline]
    pub fn record_queue_wait(&self, waited: Duration) {
        let (shard, exclusive) = self.shard();
        shard
            .queue_wait
            .record(duration_to_nanos(waited), exclusive);
    }

    #[cold]
    #[inline(never)]
    fn slow_task(&self, shard: &Shard, exclusive: bool, ns: u64, succeeded: bool) {
        add(&shard.slow, 1, exclusive, Ordering::Relaxed);
        #[cfg(feature = "tracing")]
        tracing::warn!(
            target: "otlp_monitor",
            monitor = self.name.as_deref().unwrap_or(""),
            elapsed_ns = ns,
            threshold_ns = self.slow_threshold_ns,
            succeeded,
            "slow task: took {:?} (threshold {:?})",
            Duration::from_nanos(ns),
            Duration::from_nanos(self.slow_threshold_ns),
        );
        #[cfg(not(feature = "tracing"))]
        let _ = (ns, succeeded);
    }

    /// Records a task start and returns a guard that records its completion
    /// on [`TaskTimer::finish`], or a failure (with latency) if it is
    /// dropped unfinished, including during a panic.
    ///
    /// ```
    /// use otlp_monitor::ConcurrencyMonitor;
    ///
    /// let monitor = ConcurrencyMonitor::new();
    /// let ok = monitor.start_task();
    /// ok.finish();
    /// let _ = std::panic::catch_unwind(|| {
    ///     let _timer = monitor.start_task();
    ///     panic!("task failed");
    /// });
    /// let stats = monitor.get_stats();
    /// assert_eq!((stats.completed_tasks, stats.failed_tasks, stats.in_flight), (1, 1, 0));
    /// ```
    #[inline]
    pub fn start_task(&self) -> TaskTimer<'_> {
        self.record_task_start();
        TaskTimer {
            monitor: self,
            start: Instant::now(),
            armed: true,
        }
    }

    /// Like [`start_task`](Self::start_task) but the guard owns an `Arc`,
    /// so it can move into a spawned thread or a `'static` future.
    #[inline]
    pub fn start_task_owned(self: &Arc<Self>) -> OwnedTaskTimer {
        self.record_task_start();
        OwnedTaskTimer {
            monitor: Arc::clone(self),
            start: Instant::now(),
            armed: true,
        }
    }

    /// Reads lifetime totals from every shard.
    ///
    /// Event counters of all shards are read (`Acquire`) before any
    /// `started` counter and before the histograms, and read once more
    /// after the `started` counters for the in-flight gauge; see [`Shard`].
    fn raw_snapshot(&self) -> RawSnapshot {
        let mut completed = 0u64;
        let mut failed = 0u64;
        let mut slow = 0u64;
        for shard in self.all_shards() {
            completed = completed.wrapping_add(shard.completed.load(Ordering::Acquire));
            failed = failed.wrapping_add(shard.failed.load(Ordering::Acquire));
            slow = slow.wrapping_add(shard.slow.load(Ordering::Relaxed));
        }
        let mut started = 0u64;
        for shard in self.all_shards() {
            started = started.wrapping_add(shard.started.load(Ordering::Acquire));
        }
        let mut finished_after_start = 0u64;
        for shard in self.all_shards() {
            finished_after_start = finished_after_start
                .wrapping_add(shard.completed.load(Ordering::Acquire))
                .wrapping_add(shard.failed.load(Ordering::Acquire));
        }
        let mut latency = Histogram::new();
        let mut queue_wait = Histogram::new();
        let (mut lat_min, mut lat_max) = (u64::MAX, 0u64);
        let (mut q_min, mut q_max) = (u64::MAX, 0u64);
        for shard in self.all_shards() {
            shard.latency.add_to(&mut latency);
            let (lo, hi) = shard.latency.min_max();
            lat_min = lat_min.min(lo);
            lat_max = lat_max.max(hi);
            shard.queue_wait.add_to(&mut queue_wait);
            let (lo, hi) = shard.queue_wait.min_max();
            q_min = q_min.min(lo);
            q_max = q_max.max(hi);
        }
        RawSnapshot {
            latency_min_max: (lat_min, lat_max),
            queue_wait_min_max: (q_min, q_max),
            started,
            completed,
            failed,
            finished_after_start,
            slow,
            latency,
            queue_wait,
            at: Instant::now(),
        }
    }

    fn lock_reader(&self) -> crate::sync::MutexGuard<'_, ReaderState> {
        self.reader.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The window since creation or the last [`reset`](Self::reset).
    pub(crate) fn window_since_reset(&self) -> Window {
        let state = self.lock_reader();
        let raw = self.raw_snapshot();
        let in_flight = in_flight(&raw);
        let elapsed = raw.at.saturating_duration_since(state.baseline_at);
        // `reset` restarts the exact min/max trackers, so the trackers
        // belong to this window; `set_min_max` checks them against its
        // buckets.
        let (lat_min, lat_max) = raw.latency_min_max;
        let (q_min, q_max) = raw.queue_wait_min_max;
        match &state.baseline {
            None => {
                let mut latency = raw.latency;
                latency.set_min_max(lat_min, lat_max);
                let mut queue_wait = raw.queue_wait;
                queue_wait.set_min_max(q_min, q_max);
                Window {
                    started: raw.started,
                    completed: raw.completed,
                    failed: raw.failed,
                    slow: raw.slow,
                    in_flight,
                    latency,
                    queue_wait,
                    elapsed,
                }
            }
            Some(base) => {
                let mut latency = raw.latency.delta_since(&base.latency);
                latency.set_min_max(lat_min, lat_max);
                let mut queue_wait = raw.queue_wait.delta_since(&base.queue_wait);
                queue_wait.set_min_max(q_min, q_max);
                Window {
                    started: raw.started.wrapping_sub(base.started),
                    completed: raw.completed.wrapping_sub(base.completed),
                    failed: raw.failed.wrapping_sub(base.failed),
                    slow: raw.slow.wrapping_sub(base.slow),
                    in_flight,
                    latency,
                    queue_wait,
                    elapsed,
                }
            }
        }
    }

    /// Statistics since creation (or the last [`reset`](Self::reset)):
    /// totals, success rate, exact min/max, mean, percentiles, throughput
    /// and the current in-flight count.
    ///
    /// Reading merges every shard (tens of microseconds); it takes a lock
    /// that only readers use, so it never blocks recording threads.
    pub fn get_stats(&self) -> ConcurrencyStats {
        ConcurrencyStats::from_window(&self.window_since_reset())
    }

    /// Statistics for the events recorded since the previous `interval`
    /// call (or since creation/reset for the first call), like
    /// tokio-metrics' `intervals()`.
    ///
    /// Counts, sums, percentiles and `tasks_per_second` cover only the
    /// interval; `in_flight` is the current gauge. `min_execution_time` and
    /// `max_execution_time` are taken from the interval's histogram buckets,
    /// so they are exact below 128 ns and within 0.8% above.
    ///
    /// ```
    /// use std::time::Duration;
    /// use otlp_monitor::ConcurrencyMonitor;
    ///
    /// let monitor = ConcurrencyMonitor::new();
    /// monitor.record_task_start();
    /// monitor.record_task_completion(Duration::from_millis(2));
    /// assert_eq!(monitor.interval().completed_tasks, 1);
    /// monitor.record_task_start();
    /// monitor.record_task_failure();
    /// let second = monitor.interval();
    /// assert_eq!((second.completed_tasks, second.failed_tasks), (0, 1));
    /// ```
    pub fn interval(&self) -> ConcurrencyStats {
        let mut state = self.lock_reader();
        let raw = self.raw_snapshot();
        let in_flight = in_flight(&raw);
        let (prev, prev_at) = match (&state.last_interval, &state.baseline) {
            (Some(last), _) => (Some(last), state.last_interval_at),
            (None, Some(base)) => (Some(base), state.baseline_at),
            (None, None) => (None, state.baseline_at),
        };
        let elapsed = raw.at.saturating_duration_since(prev_at);
        let window = match prev {
            None => {
                // First interval with no reset: everything so far. The
                // raw min/max trackers cover exactly this window.
                let mut latency = raw.latency.clone();
                latency.set_min_max(raw.latency_min_max.0, raw.latency_min_max.1);
                let mut queue_wait = raw.queue_wait.clone();
                queue_wait.set_min_max(raw.queue_wait_min_max.0, raw.queue_wait_min_max.1);
                Window {
                    started: raw.started,
                    completed: raw.completed,
                    failed: raw.failed,
                    slow: raw.slow,
                    in_flight,
                    latency,
                    queue_wait,
                    elapsed,
                }
            }
            Some(prev) => Window {
                started: raw.started.wrapping_sub(prev.started),
                completed: raw.completed.wrapping_sub(prev.completed),
                failed: raw.failed.wrapping_sub(prev.failed),
                slow: raw.slow.wrapping_sub(prev.slow),
                in_flight,
                latency: raw.latency.delta_since(&prev.latency),
                queue_wait: raw.queue_wait.delta_since(&prev.queue_wait),
                elapsed,
            },
        };
        state.last_interval_at = raw.at;
        state.last_interval = Some(raw);
        ConcurrencyStats::from_window(&window)
    }

    /// The execution-time histogram since creation or the last reset
    /// (completions and timed failures).
    pub fn latency_histogram(&self) -> Histogram {
        self.window_since_reset().latency
    }

    /// The queue-wait histogram since creation or the last reset.
    pub fn queue_wait_histogram(&self) -> Histogram {
        self.window_since_reset().queue_wait
    }

    /// Starts a new window: counts, histograms, min/max and the rate clock
    /// start again from zero, and the next [`interval`](Self::interval)
    /// starts here too. The in-flight gauge is kept (tasks started before
    /// the reset are still running), so tasks finishing after a reset are
    /// counted without breaking it.
    ///
    /// Never blocks recorders. An event recorded concurrently with `reset`
    /// lands in either window; its exact min/max contribution may be lost,
    /// in which case min/max fall back to bucket precision.
    pub fn reset(&self) {
        let mut state = self.lock_reader();
        let raw = self.raw_snapshot();
        for shard in self.all_shards() {
            shard.latency.reset_min_max();
            shard.queue_wait.reset_min_max();
        }
        state.baseline_at = raw.at;
        state.last_interval_at = raw.at;
        state.last_interval = None;
        state.baseline = Some(raw);
    }

    /// When the monitor was created.
    pub fn created_at(&self) -> Instant {
        self.created_at
    }
}

/// Started minus finished, with the finishes read after the starts (see
/// [`Shard`]): at most what was running while the starts were read.
fn in_flight(raw: &RawSnapshot) -> u64 {
    raw.started.saturating_sub(raw.finished_after_start)
}

fn default_shards() -> usize {
    #[cfg(loom)]
    {
        2
    }
    #[cfg(not(loom))]
    {
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
        cpus.saturating_mul(2).clamp(4, 64)
    }
}

impl Default for ConcurrencyMonitor {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ConcurrencyMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyMonitor")
            .field("name", &self.name)
            .field("owned_shards", &self.owned.len())
            .field("shared_shards", &self.shared.len())
            .field("slow_task_threshold", &self.slow_task_threshold())
            .finish_non_exhaustive()
    }
}

/// Configures a [`ConcurrencyMonitor`].
///
/// ```
/// use std::time::Duration;
/// use otlp_monitor::ConcurrencyMonitor;
///
/// let monitor = ConcurrencyMonitor::builder()
///     .name("exporter")
///     .shards(8)
///     .slow_task_threshold(Duration::from_millis(50))
///     .build()?;
/// assert_eq!(monitor.shard_count(), 8);
/// # Ok::<(), otlp_monitor::MonitorError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MonitorBuilder {
    shards: Option<usize>,
    slow_threshold: Option<Duration>,
    name: Option<String>,
}

impl MonitorBuilder {
    /// Number of per-thread shards (1 ..= [`MAX_SHARDS`]). Threads get
    /// process-wide slot ids 0, 1, 2, ... (reused after a thread exits); a
    /// thread whose id is below this count owns a shard and records with
    /// plain loads and stores, other threads share 4 read-modify-write
    /// shards. Each shard costs about 72 KiB of histogram memory.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Tasks at or above this duration count as slow; with the `tracing`
    /// feature each one also emits a `WARN` event on target `otlp_monitor`.
    pub fn slow_task_threshold(mut self, threshold: Duration) -> Self {
        self.slow_threshold = Some(threshold);
        self
    }

    /// A name shown in `Debug`, tracing events and the `Display` table.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Builds the monitor (allocates every shard now, so recording never
    /// allocates).
    ///
    /// # Errors
    ///
    /// [`MonitorError::InvalidShardCount`] when `shards` is 0 or above
    /// [`MAX_SHARDS`].
    pub fn build(self) -> Result<ConcurrencyMonitor, MonitorError> {
        let shards = match self.shards {
            None => default_shards(),
            Some(n) if n == 0 || n > MAX_SHARDS => {
                return Err(MonitorError::InvalidShardCount {
                    requested: n,
                    max: MAX_SHARDS,
                });
            }
            Some(n) => n,
        };
        let slow = self.slow_threshold.map_or(u64::MAX, duration_to_nanos);
        Ok(ConcurrencyMonitor::with_config(
            shards,
            slow,
            self.name.map(Arc::from),
        ))
    }
}

/// RAII guard from [`ConcurrencyMonitor::start_task`].
///
/// [`finish`](Self::finish) records a completion; [`fail`](Self::fail) or
/// dropping the guard unfinished (an early return, `?`, or a panic
/// unwinding through it) records a failure with the elapsed time, so an
/// in-flight count can never leak.
#[must_use = "dropping a TaskTimer immediately records a failed task"]
pub struct TaskTimer<'a> {
    monitor: &'a ConcurrencyMonitor,
    start: Instant,
    armed: bool,
}

impl TaskTimer<'_> {
    /// Time since the task started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records a completion and returns the task's execution time.
    pub fn finish(mut self) -> Duration {
        self.armed = false;
        let elapsed = self.start.elapsed();
        self.monitor.record_task_completion(elapsed);
        elapsed
    }

    /// Records a failure (with latency) and returns the execution time.
    pub fn fail(mut self) -> Duration {
        self.armed = false;
        let elapsed = self.start.elapsed();
        self.monitor.record_task_failure_after(elapsed);
        elapsed
    }
}

impl Drop for TaskTimer<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.monitor.record_task_failure_after(self.start.elapsed());
        }
    }
}

impl fmt::Debug for TaskTimer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskTimer")
            .field("elapsed", &self.start.elapsed())
            .finish_non_exhaustive()
    }
}

/// Owned RAII guard from [`ConcurrencyMonitor::start_task_owned`]; same
/// rules as [`TaskTimer`], but `'static` and `Send`.
#[must_use = "dropping an OwnedTaskTimer immediately records a failed task"]
pub struct OwnedTaskTimer {
    monitor: Arc<ConcurrencyMonitor>,
    start: Instant,
    armed: bool,
}

impl OwnedTaskTimer {
    /// Time since the task started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records a completion and returns the task's execution time.
    pub fn finish(mut self) -> Duration {
        self.armed = false;
        let elapsed = self.start.elapsed();
        self.monitor.record_task_completion(elapsed);
        elapsed
    }

    /// Records a failure (with latency) and returns the execution time.
    pub fn fail(mut self) -> Duration {
        self.armed = false;
        let elapsed = self.start.elapsed();
        self.monitor.record_task_failure_after(elapsed);
        elapsed
    }
}

impl Drop for OwnedTaskTimer {
    fn drop(&mut self) {
        if self.armed {
            self.monitor.record_task_failure_after(self.start.elapsed());
        }
    }
}

impl fmt::Debug for OwnedTaskTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedTaskTimer")
            .field("elapsed", &self.start.elapsed())
            .finish_non_exhaustive()
    }
}
