//! otlp-monitor against the designs a user would otherwise write or pick.
//!
//! Groups:
//! * `monitor_record`: one `record_task_completion` per element, 1 thread
//!   (`completion_1t`) and 2 threads on one monitor (`completion_2t`; one
//!   row per count above 1 in `OTLP_BENCH_THREADS`, `completion_{n}t`).
//!   Peers: `seed` (the seed's design: one set of shared atomics, CAS loops
//!   for min/max), `mutex_stats` (`parking_lot::Mutex<Stats>`), and
//!   `hdrhistogram` (`parking_lot::Mutex<hdrhistogram::Histogram>` plus
//!   counters inside the same lock).
//! * `monitor_stats`: read totals, mean, min/max and p50/p90/p99/p99.9 with
//!   1M values recorded (`get_stats_1m`); peer `hdrhistogram`.

#![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use otlp_benches::peers::{HdrMonitor, MONITOR_BATCH, MutexStats, SeedMonitor, latencies};
use otlp_benches::{OURS, thread_counts_above_one};
use otlp_monitor::ConcurrencyMonitor;

/// Records per iteration.
const BATCH: usize = MONITOR_BATCH;

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

fn bench_threads<R: Recorder>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    threads: usize,
    name: &str,
    recorder: R,
    lat: &[Duration],
) {
    let recorder = Arc::new(recorder);
    let lat: Arc<[Duration]> = lat.into();
    let id = BenchmarkId::new(format!("completion_{threads}t"), name);
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let barrier = Arc::new(Barrier::new(threads));
            let handles: Vec<_> = (0..threads)
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

    // `n` threads each record BATCH per iteration.
    for n in thread_counts_above_one() {
        group.throughput(Throughput::Elements(n as u64 * BATCH as u64));
        bench_threads(&mut group, n, OURS, ConcurrencyMonitor::new(), &lat);
        let seed = SeedMonitor::new();
        bench_threads(&mut group, n, "seed", seed, &lat);
        bench_threads(&mut group, n, "mutex_stats", MutexStats::new(), &lat);
        bench_threads(&mut group, n, "hdrhistogram", HdrMonitor::new(), &lat);
    }
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
        b.iter(|| black_box(hdr.stats()));
    });
    group.finish();
}

criterion_group!(benches, monitor_record, monitor_stats);
criterion_main!(benches);
