//! otlp-sched benchmarks: `WorkStealingScheduler` against rayon's
//! `ThreadPool` and the seed's design (one `Mutex`'d global `VecDeque`,
//! workers that poll it with a 1 µs sleep), in the same run.
//!
//! Groups: `sched_spawn` (100k empty tasks, then wait), `sched_fib`
//! (fork-join fib(25)), `sched_sum` (chunked parallel sum of 10M u64), and
//! `sched_idle` (CPU time the pool's threads use over one idle second after
//! a burst, and over one second of one spawn every 10 ms; recorded with
//! `record_extra`, measured once, not in a criterion loop).
#![allow(missing_docs)] // criterion_group! generates an undocumented `pub fn`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use otlp_benches::{OURS, extra_selected, record_extra};
use otlp_sched::{Builder, WorkStealingScheduler};

/// Workers in every pool (the bench machine has 2 cores).
fn workers() -> usize {
    thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4)
}

type Task = Box<dyn FnOnce() + Send>;

/// The seed's design, made to compile: a global `Mutex<VecDeque>` that
/// workers poll, sleeping 1 µs whenever it is empty.
struct SeedPool {
    queue: Arc<Mutex<VecDeque<Task>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl SeedPool {
    fn new(workers: usize, name: &str) -> Self {
        let queue: Arc<Mutex<VecDeque<Task>>> = Arc::new(Mutex::new(VecDeque::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..workers)
            .map(|i| {
                let (queue, stop) = (queue.clone(), stop.clone());
                thread::Builder::new()
                    .name(format!("{name}-{i}"))
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            let task = queue.lock().unwrap().pop_front();
                            match task {
                                Some(task) => task(),
                                None => thread::sleep(Duration::from_micros(1)),
                            }
                        }
                    })
                    .unwrap()
            })
            .collect();
        SeedPool {
            queue,
            stop,
            threads,
        }
    }

    fn spawn(&self, f: impl FnOnce() + Send + 'static) {
        self.queue.lock().unwrap().push_back(Box::new(f));
    }
}

impl Drop for SeedPool {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn ours(name: &'static str) -> WorkStealingScheduler {
    Builder::new()
        .workers(workers())
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .unwrap()
}

fn rayon_pool(name: &'static str) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers())
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .unwrap()
}

fn wait_for(count: &AtomicUsize, target: usize) {
    while count.load(Ordering::Acquire) < target {
        thread::yield_now();
    }
}

const SPAWNS: usize = 100_000;

fn sched_spawn(c: &mut Criterion) {
    let mut group = c.benchmark_group("sched_spawn");
    group.throughput(Throughput::Elements(SPAWNS as u64));
    let done = Arc::new(AtomicUsize::new(0));

    let pool = ours("bs-ours");
    group.bench_function(BenchmarkId::new("spawn_100k", OURS), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                done.store(0, Ordering::Relaxed);
                for _ in 0..SPAWNS {
                    let done = done.clone();
                    pool.spawn(move || {
                        done.fetch_add(1, Ordering::Release);
                    })
                    .ok()
                    .unwrap();
                }
                wait_for(&done, SPAWNS);
            }
            start.elapsed()
        })
    });
    drop(pool);

    let pool = rayon_pool("bs-rayon");
    group.bench_function(BenchmarkId::new("spawn_100k", "rayon"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                done.store(0, Ordering::Relaxed);
                for _ in 0..SPAWNS {
                    let done = done.clone();
                    pool.spawn(move || {
                        done.fetch_add(1, Ordering::Release);
                    });
                }
                wait_for(&done, SPAWNS);
            }
            start.elapsed()
        })
    });
    drop(pool);

    let pool = SeedPool::new(workers(), "bs-seed");
    group.bench_function(BenchmarkId::new("spawn_100k", "seed"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                done.store(0, Ordering::Relaxed);
                for _ in 0..SPAWNS {
                    let done = done.clone();
                    pool.spawn(move || {
                        done.fetch_add(1, Ordering::Release);
                    });
                }
                wait_for(&done, SPAWNS);
            }
            start.elapsed()
        })
    });
    drop(pool);
    group.finish();
}

fn fib_ours(pool: &WorkStealingScheduler, n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = pool.join(|| fib_ours(pool, n - 1), || fib_ours(pool, n - 2));
    a + b
}

fn fib_rayon(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = rayon::join(|| fib_rayon(n - 1), || fib_rayon(n - 2));
    a + b
}

fn sched_fib(c: &mut Criterion) {
    let mut group = c.benchmark_group("sched_fib");
    let pool = ours("bf-ours");
    group.bench_function(BenchmarkId::new("fib_25", OURS), |b| {
        b.iter(|| assert_eq!(fib_ours(&pool, black_box(25)), 75_025))
    });
    drop(pool);
    let pool = rayon_pool("bf-rayon");
    group.bench_function(BenchmarkId::new("fib_25", "rayon"), |b| {
        b.iter(|| assert_eq!(pool.install(|| fib_rayon(black_box(25))), 75_025))
    });
    drop(pool);
    group.finish();
}

const SUM_LEN: usize = 10_000_000;
const CHUNK: usize = 1 << 16;

fn sched_sum(c: &mut Criterion) {
    use rayon::prelude::*;

    let data: Vec<u64> = (0..SUM_LEN as u64).collect();
    let expected: u64 = data.iter().sum();
    let mut group = c.benchmark_group("sched_sum");
    group.throughput(Throughput::Elements(SUM_LEN as u64));

    let pool = ours("bsum-ours");
    group.bench_function(BenchmarkId::new("sum_10m", OURS), |b| {
        b.iter(|| {
            let total = AtomicU64::new(0);
            pool.scope(|s| {
                for chunk in data.chunks(CHUNK) {
                    let total = &total;
                    s.spawn(move |_| {
                        total.fetch_add(chunk.iter().sum::<u64>(), Ordering::Relaxed);
                    });
                }
            });
            assert_eq!(total.into_inner(), expected);
        })
    });
    drop(pool);

    let pool = rayon_pool("bsum-rayon");
    group.bench_function(BenchmarkId::new("sum_10m", "rayon"), |b| {
        b.iter(|| {
            let total: u64 = pool.install(|| {
                data.par_chunks(CHUNK)
                    .map(|chunk| chunk.iter().sum::<u64>())
                    .sum()
            });
            assert_eq!(total, expected);
        })
    });
    drop(pool);
    group.finish();
}

/// CPU time (ms) used so far by this process's threads whose name starts
/// with `prefix`, from `/proc/self/task/*/`: `schedstat`'s first field
/// (nanoseconds on a CPU) where the kernel provides it, else `stat`'s utime
/// + stime (ticks of 10 ms). Returns `None` off Linux.
fn cpu_ms(prefix: &str) -> Option<f64> {
    let dir = std::fs::read_dir("/proc/self/task").ok()?;
    let mut ms = 0.0;
    for entry in dir.flatten() {
        let path = entry.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        if let Some(ns) = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        {
            ms += ns as f64 / 1e6;
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
        ms += (utime + stime) as f64 * 10.0;
    }
    Some(ms)
}

/// Runs a burst of `n` tiny tasks through `spawn`, waits, then measures the
/// CPU the pool's threads use over the next second of idleness.
fn idle_after_burst(prefix: &str, spawn: &dyn Fn(Box<dyn FnOnce() + Send>)) -> Option<f64> {
    let done = Arc::new(AtomicUsize::new(0));
    let n = 20_000;
    for _ in 0..n {
        let done = done.clone();
        spawn(Box::new(move || {
            done.fetch_add(1, Ordering::Release);
        }));
    }
    wait_for(&done, n);
    let before = cpu_ms(prefix)?;
    thread::sleep(Duration::from_secs(1));
    Some(cpu_ms(prefix)? - before)
}

/// One tiny task every 10 ms for one second (rayon#642's pattern); CPU the
/// pool's threads use meanwhile.
fn sparse_spawns(prefix: &str, spawn: &dyn Fn(Box<dyn FnOnce() + Send>)) -> Option<f64> {
    let before = cpu_ms(prefix)?;
    for _ in 0..100 {
        spawn(Box::new(|| {
            black_box(1 + 1);
        }));
        thread::sleep(Duration::from_millis(10));
    }
    Some(cpu_ms(prefix)? - before)
}

/// CPU used while idle, per pool. Each pool exists only while its own two
/// measurements run, so no other pool's threads (the seed's spin) compete
/// for the cores meanwhile. Only the extras selected by
/// [`otlp_benches::extra_selected`] are measured.
fn sched_idle(_c: &mut Criterion) {
    type Spawner<'a> = &'a dyn Fn(Box<dyn FnOnce() + Send>);
    const SCENARIOS: [&str; 2] = ["idle_1s_after_burst", "spawn_every_10ms_1s"];
    let selected = |imp: &str| {
        SCENARIOS.map(|scenario| extra_selected(&format!("sched_idle/{scenario}/{imp}")))
    };
    let measure = |imp: &str, prefix: &str, [idle, sparse]: [bool; 2], spawn: Spawner<'_>| {
        if idle && let Some(ms) = idle_after_burst(prefix, spawn) {
            println!("sched_idle/{}/{imp}: {ms:.2} cpu_ms", SCENARIOS[0]);
            record_extra("sched_idle", SCENARIOS[0], imp, ms, "cpu_ms");
        }
        if sparse && let Some(ms) = sparse_spawns(prefix, spawn) {
            println!("sched_idle/{}/{imp}: {ms:.2} cpu_ms", SCENARIOS[1]);
            record_extra("sched_idle", SCENARIOS[1], imp, ms, "cpu_ms");
        }
    };
    let wanted = selected(OURS);
    if wanted.contains(&true) {
        let pool = ours("bi-ours");
        measure(OURS, "bi-ours", wanted, &|f| pool.spawn(f).ok().unwrap());
    }
    let wanted = selected("rayon");
    if wanted.contains(&true) {
        let pool = rayon_pool("bi-rayon");
        measure("rayon", "bi-rayon", wanted, &|f| pool.spawn(f));
    }
    let wanted = selected("seed");
    if wanted.contains(&true) {
        let pool = SeedPool::new(workers(), "bi-seed");
        measure("seed", "bi-seed", wanted, &|f| pool.spawn(f));
    }
}

criterion_group!(benches, sched_spawn, sched_fib, sched_sum, sched_idle);
criterion_main!(benches);
