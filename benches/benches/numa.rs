//! otlp-numa benchmarks: the NUMA-aware allocator against `System` and the
//! seed's round-robin design; `current_node()` against a raw getcpu syscall.
//!
//! Groups (ids `group/scenario/impl`, `ours` is otlp-numa):
//! - `numa_alloc`: 1 KiB alloc+free through the allocator value directly,
//!   on 1 thread (`alloc_free_1k`) and on 2 threads at once
//!   (`alloc_free_1k_2t`; one row per count in `OTLP_BENCH_THREADS`,
//!   `alloc_free_1k_{n}t`), against `system` (`std::alloc::System`) and
//!   `seed_round_robin` (the seed's design: a shared round-robin "node"
//!   counter and shared per-node counters).
//! - `numa_current_node`: `otlp_numa::current_node()` (glibc `getcpu`,
//!   vDSO) against `raw_getcpu` (`syscall(SYS_getcpu)`).
// criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use otlp_benches::peers::{SeedRoundRobin, alloc_free};
use otlp_benches::{OURS, thread_counts};
use otlp_numa::NumaAwareAllocator;

static NUMA: NumaAwareAllocator = NumaAwareAllocator::new();

fn bench_one<A: GlobalAlloc + Sync>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    imp: &str,
    a: &'static A,
) {
    let layout = Layout::from_size_align(1024, 8).unwrap();
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("alloc_free_1k", imp), |b| {
        b.iter(|| alloc_free(a, layout))
    });
    for n in thread_counts() {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new(format!("alloc_free_1k_{n}t"), imp), |b| {
            b.iter_custom(|iters| {
                let barrier = Arc::new(Barrier::new(n));
                // The calling thread is one of the `n`; it times the run.
                let workers: Vec<_> = (1..n)
                    .map(|_| {
                        let barrier = barrier.clone();
                        std::thread::spawn(move || {
                            barrier.wait();
                            for _ in 0..iters {
                                alloc_free(a, layout);
                            }
                        })
                    })
                    .collect();
                barrier.wait();
                let start = Instant::now();
                for _ in 0..iters {
                    alloc_free(a, layout);
                }
                for worker in workers {
                    worker.join().unwrap();
                }
                start.elapsed()
            })
        });
    }
}

fn numa_alloc(c: &mut Criterion) {
    static SYSTEM: System = System;
    let seed: &'static SeedRoundRobin = Box::leak(Box::new(SeedRoundRobin::new(4)));
    let mut group = c.benchmark_group("numa_alloc");
    bench_one(&mut group, OURS, &NUMA);
    bench_one(&mut group, "system", &SYSTEM);
    bench_one(&mut group, "seed_round_robin", seed);
    group.finish();
    black_box(seed.first_node_allocations());
    black_box(NUMA.total_stats());
}

fn numa_current_node(c: &mut Criterion) {
    let mut group = c.benchmark_group("numa_current_node");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("current_node", OURS), |b| {
        b.iter(|| black_box(otlp_numa::current_node().unwrap()))
    });
    group.bench_function(BenchmarkId::new("current_node", "raw_getcpu"), |b| {
        b.iter(|| black_box(otlp_numa::current_cpu_and_node_syscall().unwrap().1))
    });
    group.finish();
}

criterion_group!(benches, numa_alloc, numa_current_node);
criterion_main!(benches);
