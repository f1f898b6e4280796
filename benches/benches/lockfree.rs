//! otlp-lockfree against its peers, same run.
//!
//! Groups (ids `group/scenario/impl`, `ours` is otlp-lockfree):
//! - `lockfree_stack`: push+pop pairs, 1 thread and 2 contending threads,
//!   against `parking_lot::Mutex<Vec>` and crossbeam `SegQueue`.
//! - `lockfree_bounded`: SPSC and 2-thread MPMC single ops against crossbeam
//!   `ArrayQueue` and `std::sync::mpsc::sync_channel`; batches of 64
//!   (`push_from_vec`/`pop_batch`) against `ArrayQueue` one at a time.
//! - `lockfree_queue`: unbounded single-thread push/pop and burst, SPSC and MPMC
//!   against crossbeam `SegQueue`.
//! - `lockfree_map`: read-heavy (98% get, 1% insert, 1% remove) and exchange
//!   (10% get, 40% insert, 40% remove, 10% update) on 2 threads against
//!   `dashmap` and `std::sync::RwLock<HashMap>`, all with the same hasher.
//! - `lockfree_vec`: push then read back, 1 thread and 2 threads, against
//!   `boxcar` and `std::sync::Mutex<Vec>`.
//!
//! The multi-thread rows (`_2t` ids and the map's) run once per thread count
//! in `OTLP_BENCH_THREADS` (default 2, see `otlp_benches::thread_counts`),
//! named by it (`mpmc_4t`); the map's 2-thread rows keep their bare ids,
//! and rows that have a `_1t` id already skip 1.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::hint::black_box;
use std::sync::{Barrier, Mutex, RwLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crossbeam_queue::{ArrayQueue, SegQueue};
use otlp_benches::{OURS, thread_counts, thread_counts_above_one};
use otlp_lockfree::{BoundedQueue, ConcurrentHashMap, ConcurrentVec, LockFreeQueue, LockFreeStack};

/// Runs `f(thread_index)` on `threads` threads started together and returns
/// the wall time from the common start to the last thread's finish.
fn timed_threads<F: Fn(usize) + Sync>(threads: usize, f: F) -> Duration {
    let start = Barrier::new(threads + 1);
    let done = Barrier::new(threads + 1);
    thread::scope(|s| {
        for t in 0..threads {
            let (start, done, f) = (&start, &done, &f);
            s.spawn(move || {
                start.wait();
                f(t);
                done.wait();
            });
        }
        start.wait();
        let begin = Instant::now();
        done.wait();
        begin.elapsed()
    })
}

fn spin() {
    std::hint::spin_loop();
    thread::yield_now();
}

/// FxHash-style hasher, the same for every map in the comparison.
#[derive(Clone, Copy, Default)]
struct FxBuild;

struct Fx(u64);

const FX_K: u64 = 0xf135_7aea_2e62_a9c5;

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.wrapping_add(n).wrapping_mul(FX_K);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0.rotate_left(26)
    }
}

impl BuildHasher for FxBuild {
    type Hasher = Fx;
    fn build_hasher(&self) -> Fx {
        Fx(0)
    }
}

// ---------------------------------------------------------------- stack

fn stack(c: &mut Criterion) {
    let mut g = c.benchmark_group("lockfree_stack");
    const PAIRS: u64 = 100;
    g.throughput(Throughput::Elements(PAIRS));
    {
        let s = LockFreeStack::new();
        g.bench_function(BenchmarkId::new("push_pop_1t", OURS), |b| {
            b.iter(|| {
                for i in 0..PAIRS {
                    s.push(i);
                    black_box(s.pop());
                }
            })
        });
        let m = parking_lot::Mutex::new(Vec::new());
        g.bench_function(BenchmarkId::new("push_pop_1t", "mutex_vec"), |b| {
            b.iter(|| {
                for i in 0..PAIRS {
                    m.lock().push(i);
                    black_box(m.lock().pop());
                }
            })
        });
        let q = SegQueue::new();
        g.bench_function(BenchmarkId::new("push_pop_1t", "segqueue"), |b| {
            b.iter(|| {
                for i in 0..PAIRS {
                    q.push(i);
                    black_box(q.pop());
                }
            })
        });
    }
    // `n` threads, each doing push+pop pairs on the shared structure.
    for n in thread_counts_above_one() {
        let scenario = format!("push_pop_{n}t");
        g.throughput(Throughput::Elements(n as u64));
        let s = LockFreeStack::new();
        g.bench_function(BenchmarkId::new(&scenario, OURS), |b| {
            b.iter_custom(|iters| {
                timed_threads(n, |_| {
                    for i in 0..iters {
                        s.push(i);
                        black_box(s.pop());
                    }
                })
            })
        });
        let m = parking_lot::Mutex::new(Vec::new());
        g.bench_function(BenchmarkId::new(&scenario, "mutex_vec"), |b| {
            b.iter_custom(|iters| {
                timed_threads(n, |_| {
                    for i in 0..iters {
                        m.lock().push(i);
                        black_box(m.lock().pop());
                    }
                })
            })
        });
        let q = SegQueue::new();
        g.bench_function(BenchmarkId::new(&scenario, "segqueue"), |b| {
            b.iter_custom(|iters| {
                timed_threads(n, |_| {
                    for i in 0..iters {
                        q.push(i);
                        black_box(q.pop());
                    }
                })
            })
        });
    }
    g.finish();
}

// ---------------------------------------------------------------- bounded

const CAP: usize = 1024;
const BATCH: usize = 64;

fn bounded(c: &mut Criterion) {
    let mut g = c.benchmark_group("lockfree_bounded");
    g.throughput(Throughput::Elements(1));

    // SPSC: thread 0 pushes `iters` items, thread 1 pops them.
    let q = BoundedQueue::new(CAP).unwrap();
    g.bench_function(BenchmarkId::new("spsc", OURS), |b| {
        b.iter_custom(|iters| {
            timed_threads(2, |t| {
                if t == 0 {
                    for i in 0..iters {
                        let mut v = i;
                        while let Err(back) = q.push(v) {
                            v = back;
                            spin();
                        }
                    }
                } else {
                    let mut n = 0;
                    while n < iters {
                        match q.pop() {
                            Some(v) => {
                                black_box(v);
                                n += 1;
                            }
                            None => spin(),
                        }
                    }
                }
            })
        })
    });
    let a = ArrayQueue::new(CAP);
    g.bench_function(BenchmarkId::new("spsc", "arrayqueue"), |b| {
        b.iter_custom(|iters| {
            timed_threads(2, |t| {
                if t == 0 {
                    for i in 0..iters {
                        let mut v = i;
                        while let Err(back) = a.push(v) {
                            v = back;
                            spin();
                        }
                    }
                } else {
                    let mut n = 0;
                    while n < iters {
                        match a.pop() {
                            Some(v) => {
                                black_box(v);
                                n += 1;
                            }
                            None => spin(),
                        }
                    }
                }
            })
        })
    });
    g.bench_function(BenchmarkId::new("spsc", "sync_channel"), |b| {
        b.iter_custom(|iters| {
            let (tx, rx) = mpsc::sync_channel(CAP);
            let rx = Mutex::new(rx);
            timed_threads(2, |t| {
                if t == 0 {
                    for i in 0..iters {
                        tx.send(i).unwrap();
                    }
                } else {
                    let rx = rx.lock().unwrap();
                    for _ in 0..iters {
                        black_box(rx.recv().unwrap());
                    }
                }
            })
        })
    });

    // MPMC: `n` threads, each pushes then pops, `iters` times.
    for n in thread_counts() {
        let scenario = format!("mpmc_{n}t");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new(&scenario, OURS), |b| {
            b.iter_custom(|iters| {
                timed_threads(n, |_| {
                    for i in 0..iters {
                        let mut v = i;
                        while let Err(back) = q.push(v) {
                            v = back;
                            spin();
                        }
                        while q.pop().is_none() {
                            spin();
                        }
                    }
                })
            })
        });
        g.bench_function(BenchmarkId::new(&scenario, "arrayqueue"), |b| {
            b.iter_custom(|iters| {
                timed_threads(n, |_| {
                    for i in 0..iters {
                        let mut v = i;
                        while let Err(back) = a.push(v) {
                            v = back;
                            spin();
                        }
                        while a.pop().is_none() {
                            spin();
                        }
                    }
                })
            })
        });
    }

    // Batches of 64: one iteration moves one batch through the queue.
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function(BenchmarkId::new("batch64_spsc", OURS), |b| {
        b.iter_custom(|iters| {
            timed_threads(2, |t| {
                if t == 0 {
                    let mut batch = Vec::with_capacity(BATCH);
                    for i in 0..iters {
                        batch.extend((0..BATCH as u64).map(|k| i + k));
                        while !batch.is_empty() {
                            if q.push_from_vec(&mut batch) == 0 {
                                spin();
                            }
                        }
                    }
                } else {
                    let mut out = Vec::with_capacity(BATCH);
                    let total = iters * BATCH as u64;
                    let mut n = 0;
                    while n < total {
                        out.clear();
                        let k = q.pop_batch(&mut out, BATCH);
                        black_box(&out);
                        if k == 0 {
                            spin();
                        }
                        n += k as u64;
                    }
                }
            })
        })
    });
    g.bench_function(BenchmarkId::new("batch64_spsc", "arrayqueue"), |b| {
        b.iter_custom(|iters| {
            timed_threads(2, |t| {
                if t == 0 {
                    for i in 0..iters {
                        for k in 0..BATCH as u64 {
                            let mut v = i + k;
                            while let Err(back) = a.push(v) {
                                v = back;
                                spin();
                            }
                        }
                    }
                } else {
                    let total = iters * BATCH as u64;
                    let mut n = 0;
                    while n < total {
                        match a.pop() {
                            Some(v) => {
                                black_box(v);
                                n += 1;
                            }
                            None => spin(),
                        }
                    }
                }
            })
        })
    });
    for n in thread_counts() {
        let scenario = format!("batch64_mpmc_{n}t");
        g.throughput(Throughput::Elements(n as u64 * BATCH as u64));
        g.bench_function(BenchmarkId::new(&scenario, OURS), |b| {
            b.iter_custom(|iters| {
                timed_threads(n, |_| {
                    let mut batch = Vec::with_capacity(BATCH);
                    let mut out = Vec::with_capacity(BATCH);
                    for i in 0..iters {
                        batch.extend((0..BATCH as u64).map(|k| i + k));
                        while !batch.is_empty() {
                            if q.push_from_vec(&mut batch) == 0 {
                                spin();
                            }
                        }
                        let mut n = 0;
                        while n < BATCH {
                            out.clear();
                            let k = q.pop_batch(&mut out, BATCH - n);
                            black_box(&out);
                            if k == 0 {
                                spin();
                            }
                            n += k;
                        }
                    }
                })
            })
        });
        g.bench_function(BenchmarkId::new(&scenario, "arrayqueue"), |b| {
            b.iter_custom(|iters| {
                timed_threads(n, |_| {
                    for i in 0..iters {
                        for k in 0..BATCH as u64 {
                            let mut v = i + k;
                            while let Err(back) = a.push(v) {
                                v = back;
                                spin();
                            }
                        }
                        for _ in 0..BATCH {
                            while a.pop().is_none() {
                                spin();
                            }
                        }
                    }
                })
            })
        });
    }
    g.finish();
}

// ---------------------------------------------------------------- unbounded

fn unbounded(c: &mut Criterion) {
    let mut g = c.benchmark_group("lockfree_queue");
    let q = LockFreeQueue::new();
    let s = SegQueue::new();
    // Single-thread loops, mirrored in `icount.rs` for instruction counts:
    // a steady push/pop pair (the queue never holds more than one item) and
    // a burst that fills many blocks and drains them again.
    const PAIRS: u64 = 100;
    const BURST: u64 = 1000;
    g.throughput(Throughput::Elements(PAIRS));
    g.bench_function(BenchmarkId::new("push_pop_1t", OURS), |b| {
        b.iter(|| {
            for i in 0..PAIRS {
                q.push(i);
                black_box(q.pop());
            }
        })
    });
    g.bench_function(BenchmarkId::new("push_pop_1t", "segqueue"), |b| {
        b.iter(|| {
            for i in 0..PAIRS {
                s.push(i);
                black_box(s.pop());
            }
        })
    });
    g.throughput(Throughput::Elements(BURST));
    g.bench_function(BenchmarkId::new("burst_1t", OURS), |b| {
        b.iter(|| {
            for i in 0..BURST {
                q.push(i);
            }
            for _ in 0..BURST {
                black_box(q.pop());
            }
        })
    });
    g.bench_function(BenchmarkId::new("burst_1t", "segqueue"), |b| {
        b.iter(|| {
            for i in 0..BURST {
                s.push(i);
            }
            for _ in 0..BURST {
                black_box(s.pop());
            }
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("spsc", OURS), |b| {
        b.iter_custom(|iters| {
            timed_threads(2, |t| {
                if t == 0 {
                    for i in 0..iters {
                        q.push(i);
                    }
                } else {
                    let mut n = 0;
                    while n < iters {
                        match q.pop() {
                            Some(v) => {
                                black_box(v);
                                n += 1;
                            }
                            None => spin(),
                        }
                    }
                }
            })
        })
    });
    g.bench_function(BenchmarkId::new("spsc", "segqueue"), |b| {
        b.iter_custom(|iters| {
            timed_threads(2, |t| {
                if t == 0 {
                    for i in 0..iters {
                        s.push(i);
                    }
                } else {
                    let mut n = 0;
                    while n < iters {
                        match s.pop() {
                            Some(v) => {
                                black_box(v);
                                n += 1;
                            }
                            None => spin(),
                        }
                    }
                }
            })
        })
    });
    for n in thread_counts() {
        let scenario = format!("mpmc_{n}t");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new(&scenario, OURS), |b| {
            b.iter_custom(|iters| {
                timed_threads(n, |_| {
                    for i in 0..iters {
                        q.push(i);
                        while q.pop().is_none() {
                            spin();
                        }
                    }
                })
            })
        });
        g.bench_function(BenchmarkId::new(&scenario, "segqueue"), |b| {
            b.iter_custom(|iters| {
                timed_threads(n, |_| {
                    for i in 0..iters {
                        s.push(i);
                        while s.pop().is_none() {
                            spin();
                        }
                    }
                })
            })
        });
    }
    g.finish();
}

// ---------------------------------------------------------------- map

const KEYS: u64 = 4096;
const OPS: usize = 4096;

#[derive(Clone, Copy)]
enum Op {
    Get(u64),
    Insert(u64),
    Remove(u64),
    Update(u64),
}

/// A fixed, per-thread op sequence with percentages get/insert/remove/update.
fn ops(seed: u64, mix: [u32; 4]) -> Vec<Op> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..OPS)
        .map(|_| {
            let k = rng.u64(0..KEYS * 2);
            let r = rng.u32(0..100);
            if r < mix[0] {
                Op::Get(k)
            } else if r < mix[0] + mix[1] {
                Op::Insert(k)
            } else if r < mix[0] + mix[1] + mix[2] {
                Op::Remove(k)
            } else {
                Op::Update(k)
            }
        })
        .collect()
}

trait BenchMap: Sync {
    fn get(&self, k: u64) -> Option<u64>;
    fn insert(&self, k: u64, v: u64);
    fn remove(&self, k: u64);
    fn update(&self, k: u64);
}

impl BenchMap for ConcurrentHashMap<u64, u64, FxBuild> {
    fn get(&self, k: u64) -> Option<u64> {
        ConcurrentHashMap::get(self, &k)
    }
    fn insert(&self, k: u64, v: u64) {
        ConcurrentHashMap::insert(self, k, v);
    }
    fn remove(&self, k: u64) {
        ConcurrentHashMap::remove(self, &k);
    }
    fn update(&self, k: u64) {
        ConcurrentHashMap::update(self, &k, |v| *v += 1);
    }
}

impl BenchMap for dashmap::DashMap<u64, u64, FxBuild> {
    fn get(&self, k: u64) -> Option<u64> {
        dashmap::DashMap::get(self, &k).map(|r| *r)
    }
    fn insert(&self, k: u64, v: u64) {
        dashmap::DashMap::insert(self, k, v);
    }
    fn remove(&self, k: u64) {
        dashmap::DashMap::remove(self, &k);
    }
    fn update(&self, k: u64) {
        if let Some(mut r) = dashmap::DashMap::get_mut(self, &k) {
            *r += 1;
        }
    }
}

impl BenchMap for RwLock<HashMap<u64, u64, FxBuild>> {
    fn get(&self, k: u64) -> Option<u64> {
        self.read().unwrap().get(&k).copied()
    }
    fn insert(&self, k: u64, v: u64) {
        self.write().unwrap().insert(k, v);
    }
    fn remove(&self, k: u64) {
        self.write().unwrap().remove(&k);
    }
    fn update(&self, k: u64) {
        if let Some(v) = self.write().unwrap().get_mut(&k) {
            *v += 1;
        }
    }
}

fn run_map<M: BenchMap>(map: &M, seqs: &[Vec<Op>], iters: u64) -> Duration {
    timed_threads(seqs.len(), |t| {
        let seq = &seqs[t];
        for i in 0..iters as usize {
            match seq[i % OPS] {
                Op::Get(k) => {
                    black_box(map.get(k));
                }
                Op::Insert(k) => map.insert(k, k),
                Op::Remove(k) => map.remove(k),
                Op::Update(k) => map.update(k),
            }
        }
    })
}

fn map(c: &mut Criterion) {
    let mut g = c.benchmark_group("lockfree_map");
    for n in thread_counts() {
        g.throughput(Throughput::Elements(n as u64));
        for (scenario, mix) in [
            ("read_heavy", [98, 1, 1, 0]),
            ("exchange", [10, 40, 40, 10]),
        ] {
            // The 2-thread rows keep their published ids, which name no count.
            let id = if n == 2 {
                scenario.to_owned()
            } else {
                format!("{scenario}_{n}t")
            };
            let seqs: Vec<Vec<Op>> = (0..n as u64).map(|t| ops(t + 1, mix)).collect();
            let ours: ConcurrentHashMap<u64, u64, FxBuild> =
                ConcurrentHashMap::with_hasher(FxBuild);
            let dash: dashmap::DashMap<u64, u64, FxBuild> = dashmap::DashMap::with_hasher(FxBuild);
            let std_map: RwLock<HashMap<u64, u64, FxBuild>> =
                RwLock::new(HashMap::with_hasher(FxBuild));
            for k in 0..KEYS {
                BenchMap::insert(&ours, k, k);
                BenchMap::insert(&dash, k, k);
                BenchMap::insert(&std_map, k, k);
            }
            g.bench_function(BenchmarkId::new(&id, OURS), |b| {
                b.iter_custom(|iters| run_map(&ours, &seqs, iters))
            });
            g.bench_function(BenchmarkId::new(&id, "dashmap"), |b| {
                b.iter_custom(|iters| run_map(&dash, &seqs, iters))
            });
            g.bench_function(BenchmarkId::new(&id, "rwlock_map"), |b| {
                b.iter_custom(|iters| run_map(&std_map, &seqs, iters))
            });
        }
    }
    g.finish();
}

// ---------------------------------------------------------------- vec

fn vec(c: &mut Criterion) {
    let mut g = c.benchmark_group("lockfree_vec");
    const N: usize = 1000;
    // One thread: push N, then read all N by index.
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function(BenchmarkId::new("push_read_1t", OURS), |b| {
        b.iter(|| {
            let v = ConcurrentVec::new();
            for i in 0..N {
                v.push(i);
            }
            let mut sum = 0;
            for i in 0..N {
                sum += *v.get(i).unwrap();
            }
            black_box(sum)
        })
    });
    g.bench_function(BenchmarkId::new("push_read_1t", "boxcar"), |b| {
        b.iter(|| {
            let v = boxcar::Vec::new();
            for i in 0..N {
                v.push(i);
            }
            let mut sum = 0;
            for i in 0..N {
                sum += *v.get(i).unwrap();
            }
            black_box(sum)
        })
    });
    g.bench_function(BenchmarkId::new("push_read_1t", "mutex_vec"), |b| {
        b.iter(|| {
            let v = Mutex::new(Vec::new());
            for i in 0..N {
                v.lock().unwrap().push(i);
            }
            let mut sum = 0;
            for i in 0..N {
                sum += v.lock().unwrap()[i];
            }
            black_box(sum)
        })
    });
    // `n` threads push N each into one fresh vector, then each reads back
    // its own elements by the returned index.
    for n in thread_counts_above_one() {
        let scenario = format!("push_read_{n}t");
        g.throughput(Throughput::Elements(n as u64 * N as u64));
        g.bench_function(BenchmarkId::new(&scenario, OURS), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let v = ConcurrentVec::new();
                    total += timed_threads(n, |_| {
                        let mut idx = [0usize; N];
                        for (i, slot) in idx.iter_mut().enumerate() {
                            *slot = v.push(i);
                        }
                        let mut sum = 0;
                        for &i in &idx {
                            sum += *v.get(i).unwrap();
                        }
                        black_box(sum);
                    });
                }
                total
            })
        });
        g.bench_function(BenchmarkId::new(&scenario, "boxcar"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let v = boxcar::Vec::new();
                    total += timed_threads(n, |_| {
                        let mut idx = [0usize; N];
                        for (i, slot) in idx.iter_mut().enumerate() {
                            *slot = v.push(i);
                        }
                        let mut sum = 0;
                        for &i in &idx {
                            sum += *v.get(i).unwrap();
                        }
                        black_box(sum);
                    });
                }
                total
            })
        });
        g.bench_function(BenchmarkId::new(&scenario, "mutex_vec"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let v = Mutex::new(Vec::new());
                    total += timed_threads(n, |_| {
                        let mut idx = [0usize; N];
                        for (i, slot) in idx.iter_mut().enumerate() {
                            let mut g = v.lock().unwrap();
                            g.push(i);
                            *slot = g.len() - 1;
                        }
                        let mut sum = 0;
                        for &i in &idx {
                            sum += v.lock().unwrap()[i];
                        }
                        black_box(sum);
                    });
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, stack, bounded, unbounded, map, vec);
criterion_main!(benches);
