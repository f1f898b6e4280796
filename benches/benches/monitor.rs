//! otlp-monitor against the designs a user would otherwise write or pick.
//!
//! Groups:
//! * `monitor_record`: one `record_task_completion` per element, 1 thread
//!   (`completion_1t`) and 2 threads on one monitor (`completion_2t`).
//!   Peers: `seed` (the seed's design: one set of shared atomics, CAS loops
//!   for min/max), `mutex_stats` (`parking_lot::Mutex<Stats>`), and
//!   `hdrhistogram` (`parking_lot::Mutex<hdrhistogram::Histogram>` plus
//!   counters inside the same lock).
//! * `monitor_stats`: read totals, mean, min/max and p50/p90/p99/p99.9 with
//!   1M values recorded (`get_stats_1m`); peer `hdrhistogram`.

#![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use otlp_benches::OURS;
use otlp_monitor::ConcurrencyMonitor;
use parking_lot::Mutex;

/// Records per iteration.
const BATCH: usize = 1024;

/// Deterministic latencies spread over 1 µs .. ~10 ms (log-uniform-ish).
fn latencies() -> Vec<Duration> {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    (0..BATCH)
        .map(|_| {
            let exp = rng.u32(10..24);
            Duration::from_nanos((1u64 << exp) + rng.u64(0..(1u64 << exp)))
        })
        .collect()
}

/// The seed's design: every thread updates the same atomics.
struct SeedMonitor {
    task_count: AtomicU64,
    completed_tasks: AtomicU64,
    failed_tasks: AtomicU64,
    total_execution_time: AtomicU64,
    max_execution_time: AtomicU64,
    min_execution_time: AtomicU64,
}

impl SeedMonitor {
    fn new() -> Self {
        Self {
            task_count: AtomicU64::new(0),
            completed_tasks: AtomicU64::new(0),
            failed_tasks: AtomicU64::new(0),
            total_execution_time: AtomicU64::new(0),
            max_execution_time: AtomicU64::new(0),
            min_execution_time: AtomicU64::new(u64::MAX),
        }
    }

    fn record_task_completion(&self, execution_time: Duration) {
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

    fn total(&self) -> u64 {
        self.completed_tasks.load(Ordering::Acquire)
            + self.failed_tasks.load(Ordering::Acquire)
            + self.task_count.load(Ordering::Acquire)
    }
}

/// Counters and min/max behind one lock.
#[derive(Default)]
struct Stats {
    completed: u64,
    total_ns: u64,
    min_ns: u64,
    max_ns: u64,
}

struct MutexStats(Mutex<Stats>);

impl MutexStats {
    fn new() -> Self {
        Self(Mutex::new(Stats {
            min_ns: u64::MAX,
            ..Stats::default()
        }))
    }

    fn record_task_completion(&self, d: Duration) {
        let ns = d.as_nanos() as u64;
        let mut s = self.0.lock();
        s.completed += 1;
        s.total_ns += ns;
        s.min_ns = s.min_ns.min(ns);
        s.max_ns = s.max_ns.max(ns);
    }
}

/// hdrhistogram (2 significant digits, 1 ns .. 1 h) plus counters, one lock.
struct HdrMonitor(Mutex<(u64, hdrhistogram::Histogram<u64>)>);

impl HdrMonitor {
    fn new() -> Self {
        let h = hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000_000, 2)
            .expect("valid hdrhistogram bounds");
        Self(Mutex::new((0, h)))
    }

    fn record_task_completion(&self, d: Duration) {
        let ns = d.as_nanos() as u64;
        let mut g = self.0.lock();
        g.0 += 1;
        g.1.saturating_record(ns);
    }
}

trait Recorder: Send + Sync + 'static {
    fn record(&self, d: Duration);
}

impl Recorder for ConcurrencyMonitor {
    #[inline]
    fn record(&self, d: Duration) {
        self.record_task_completion(d);
    }
}
impl Recorder for SeedMonitor {
    #[inline]
    fn record(&self, d: Duration) {
        self.record_task_completion(d);
    }
}
impl Recorder for MutexStats {
    #[inline]
    fn record(&self, d: Duration) {
        self.record_task_completion(d);
    }
}
impl Recorder for HdrMonitor {
    #[inline]
    fn record(&self, d: Duration) {
        self.record_task_completion(d);
    }
}

fn bench_one_thread<R: Recorder>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    recorder: R,
    lat: &[Duration],
) {
    group.bench_function(BenchmarkId::new("completion_1t", name), |b| {
        b.iter(|| {
            for &d in lat {
                recorder.record(black_box(d));
            }
        });
    });
}

fn bench_two_threads<R: Recorder>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    recorder: R,
    lat: &[Duration],
) {
    let recorder = Arc::new(recorder);
    let lat: Arc<[Duration]> = lat.into();
    group.bench_function(BenchmarkId::new("completion_2t", name), |b| {
        b.iter_custom(|iters| {
            let barrier = Arc::new(Barrier::new(2));
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let recorder = Arc::clone(&recorder);
                    let lat = Arc::clone(&lat);
                    let barrier = Arc::clone(&barrier);
                    std::thread::spawn(move || {
                        barrier.wait();
                        let start = Instant::now();
                        for _ in 0..iters {
                            for &d in lat.iter() {
                                recorder.record(black_box(d));
                            }
                        }
                        start.elapsed()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("bench thread panicked"))
                .max()
                .unwrap_or_default()
        });
    });
}

fn monitor_record(c: &mut Criterion) {
    let lat = latencies();
    let mut group = c.benchmark_group("monitor_record");
    group.throughput(Throughput::Elements(BATCH as u64));
    bench_one_thread(&mut group, OURS, ConcurrencyMonitor::new(), &lat);
    bench_one_thread(&mut group, "seed", SeedMonitor::new(), &lat);
    bench_one_thread(&mut group, "mutex_stats", MutexStats::new(), &lat);
    bench_one_thread(&mut group, "hdrhistogram", HdrMonitor::new(), &lat);

    // Two threads each record BATCH per iteration.
    group.throughput(Throughput::Elements(2 * BATCH as u64));
    bench_two_threads(&mut group, OURS, ConcurrencyMonitor::new(), &lat);
    let seed = SeedMonitor::new();
    bench_two_threads(&mut group, "seed", seed, &lat);
    bench_two_threads(&mut group, "mutex_stats", MutexStats::new(), &lat);
    bench_two_threads(&mut group, "hdrhistogram", HdrMonitor::new(), &lat);
    group.finish();
    // Keep the seed's unused counters observable so they are not optimised out.
    black_box(SeedMonitor::new().total());
}

fn monitor_stats(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let mut rng = fastrand::Rng::with_seed(7);
    let values: Vec<u64> = (0..N).map(|_| rng.u64(1_000..50_000_000)).collect();

    let ours = ConcurrencyMonitor::new();
    for &v in &values {
        ours.record_task_start();
        ours.record_task_completion(Duration::from_nanos(v));
    }
    let hdr = HdrMonitor::new();
    for &v in &values {
        hdr.record_task_completion(Duration::from_nanos(v));
    }

    let mut group = c.benchmark_group("monitor_stats");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("get_stats_1m", OURS), |b| {
        b.iter(|| black_box(ours.get_stats()));
    });
    group.bench_function(BenchmarkId::new("get_stats_1m", "hdrhistogram"), |b| {
        b.iter(|| {
            let g = hdr.0.lock();
            let h = &g.1;
            black_box((
                g.0,
                h.mean(),
                h.min(),
                h.max(),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.9),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
            ))
        });
    });
    group.finish();
}

criterion_group!(benches, monitor_record, monitor_stats);
criterion_main!(benches);
