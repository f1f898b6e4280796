//! Peers written for the benches (the designs a user would otherwise write),
//! shared by the criterion targets and the `icount` target so that the
//! instruction counts measure exactly the code the timings measure.
//!
//! Hot methods are `#[inline]` so that, living in this library rather than in
//! the bench target, they can still be inlined into the bench loops as they
//! were when each target defined its own copy.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// Records per iteration in the `monitor_record` scenarios.
pub const MONITOR_BATCH: usize = 1024;

/// Deterministic latencies spread over 1 µs .. ~10 ms (log-uniform-ish),
/// [`MONITOR_BATCH`] of them.
pub fn latencies() -> Vec<Duration> {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    (0..MONITOR_BATCH)
        .map(|_| {
            let exp = rng.u32(10..24);
            Duration::from_nanos((1u64 << exp) + rng.u64(0..(1u64 << exp)))
        })
        .collect()
}

/// The seed's monitor design: every thread updates the same atomics.
#[derive(Debug)]
pub struct SeedMonitor {
    task_count: AtomicU64,
    completed_tasks: AtomicU64,
    failed_tasks: AtomicU64,
    total_execution_time: AtomicU64,
    max_execution_time: AtomicU64,
    min_execution_time: AtomicU64,
}

impl SeedMonitor {
    /// An empty monitor.
    pub fn new() -> Self {
        Self {
            task_count: AtomicU64::new(0),
            completed_tasks: AtomicU64::new(0),
            failed_tasks: AtomicU64::new(0),
            total_execution_time: AtomicU64::new(0),
            max_execution_time: AtomicU64::new(0),
            min_execution_time: AtomicU64::new(u64::MAX),
        }
    }

    /// Counts one completion and folds its time into total, min and max.
    #[inline]
    pub fn record_task_completion(&self, execution_time: Duration) {
        self.completed_tasks.fetch_add(1, Ordering::AcqRel);
        let time_ns = execution_time.as_nanos() as u64;
        self.total_execution_time
            .fetch_add(time_ns, Ordering::AcqRel);
        let mut current = self.max_execution_time.load(Ordering::Acquire);
        while time_ns > current {
            match self.max_execution_time.compare_exchange_weak(
                current,
                time_ns,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        let mut current = self.min_execution_time.load(Ordering::Acquire);
        while time_ns < current {
            match self.min_execution_time.compare_exchange_weak(
                current,
                time_ns,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
    }

    /// Every task counted, so the unused counters stay observable.
    pub fn total(&self) -> u64 {
        self.completed_tasks.load(Ordering::Acquire)
            + self.failed_tasks.load(Ordering::Acquire)
            + self.task_count.load(Ordering::Acquire)
    }
}

impl Default for SeedMonitor {
    fn default() -> Self {
        Self::new()
    }
}

/// Counters and min/max of [`MutexStats`].
#[derive(Debug, Default)]
struct Stats {
    completed: u64,
    total_ns: u64,
    min_ns: u64,
    max_ns: u64,
}

/// Counters and min/max behind one `parking_lot::Mutex`.
#[derive(Debug)]
pub struct MutexStats(Mutex<Stats>);

impl MutexStats {
    /// Empty statistics.
    pub fn new() -> Self {
        Self(Mutex::new(Stats {
            min_ns: u64::MAX,
            ..Stats::default()
        }))
    }

    /// Counts one completion under the lock.
    #[inline]
    pub fn record_task_completion(&self, d: Duration) {
        let ns = d.as_nanos() as u64;
        let mut s = self.0.lock();
        s.completed += 1;
        s.total_ns += ns;
        s.min_ns = s.min_ns.min(ns);
        s.max_ns = s.max_ns.max(ns);
    }
}

impl Default for MutexStats {
    fn default() -> Self {
        Self::new()
    }
}

/// hdrhistogram (2 significant digits, 1 ns .. 1 h) plus a completion
/// counter, both inside one `parking_lot::Mutex`.
pub struct HdrMonitor(pub Mutex<(u64, hdrhistogram::Histogram<u64>)>);

impl HdrMonitor {
    /// An empty histogram.
    pub fn new() -> Self {
        let h = hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000_000, 2)
            .expect("valid hdrhistogram bounds");
        Self(Mutex::new((0, h)))
    }

    /// Counts one completion and records its time, under the lock.
    #[inline]
    pub fn record_task_completion(&self, d: Duration) {
        let ns = d.as_nanos() as u64;
        let mut g = self.0.lock();
        g.0 += 1;
        g.1.saturating_record(ns);
    }

    /// What `monitor_stats/get_stats_1m` reads: count, mean, min, max and
    /// p50/p90/p99/p99.9.
    #[inline]
    pub fn stats(&self) -> (u64, f64, u64, u64, u64, u64, u64, u64) {
        let g = self.0.lock();
        let h = &g.1;
        (
            g.0,
            h.mean(),
            h.min(),
            h.max(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
        )
    }
}

impl Default for HdrMonitor {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HdrMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HdrMonitor").finish_non_exhaustive()
    }
}

/// The textbook blocking semaphore: a `Mutex<usize>` and a `Condvar`.
#[derive(Debug)]
pub struct CondvarSemaphore {
    permits: std::sync::Mutex<usize>,
    cond: std::sync::Condvar,
}

impl CondvarSemaphore {
    /// A semaphore with `permits` permits.
    pub fn new(permits: usize) -> Self {
        CondvarSemaphore {
            permits: std::sync::Mutex::new(permits),
            cond: std::sync::Condvar::new(),
        }
    }

    /// Takes one permit, waiting on the condvar while there is none.
    #[inline]
    pub fn acquire(&self) {
        let mut permits = self.permits.lock().unwrap();
        while *permits == 0 {
            permits = self.cond.wait(permits).unwrap();
        }
        *permits -= 1;
    }

    /// Returns one permit and wakes one waiter.
    #[inline]
    pub fn release(&self) {
        *self.permits.lock().unwrap() += 1;
        self.cond.notify_one();
    }
}

/// The configuration value the `sync_config_read` scenarios read.
#[derive(Clone, Debug)]
#[allow(dead_code)] // read through black_box only
pub struct Config {
    max_connections: usize,
    timeout_ms: u64,
    retry_count: u32,
    endpoint: String,
}

impl Config {
    /// One field, for readers that look inside (`arcswap_guard`).
    #[inline]
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }
}

/// A typical exporter configuration.
pub fn sample_config() -> Config {
    Config {
        max_connections: 100,
        timeout_ms: 10_000,
        retry_count: 3,
        endpoint: "http://collector:4317".into(),
    }
}

/// The seed's allocator design, written correctly: the "node" is a shared
/// round-robin counter and each allocation bumps a shared per-node counter.
#[derive(Debug)]
pub struct SeedRoundRobin {
    node_count: usize,
    current_node: AtomicUsize,
    allocations_per_node: Vec<AtomicUsize>,
}

impl SeedRoundRobin {
    /// `node_count` pretend nodes (at least one).
    pub fn new(node_count: usize) -> Self {
        let node_count = node_count.max(1);
        SeedRoundRobin {
            node_count,
            current_node: AtomicUsize::new(0),
            allocations_per_node: (0..node_count).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// Allocations charged to the first node, so the counters stay observable.
    pub fn first_node_allocations(&self) -> usize {
        self.allocations_per_node[0].load(Ordering::Relaxed)
    }
}

// SAFETY: forwards every block to System unchanged.
unsafe impl GlobalAlloc for SeedRoundRobin {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let node = self.current_node.fetch_add(1, Ordering::Relaxed) % self.node_count;
        self.allocations_per_node[node].fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded under the caller's contract.
        unsafe { System.alloc(layout) }
    }
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded under the caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// One 1 KiB allocation and its free through `a` (the `alloc_free_1k`
/// scenarios).
#[inline(always)]
pub fn alloc_free<A: GlobalAlloc>(a: &A, layout: Layout) {
    // SAFETY: the layouts the benches pass have a non-zero size; the block is
    // freed with the layout it was allocated with.
    unsafe {
        let p = a.alloc(layout);
        std::hint::black_box(p);
        a.dealloc(p, layout);
    }
}
