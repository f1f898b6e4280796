//! otlp-sync against its peers, same run.
//!
//! Multi-thread scenarios split `iters` operations over the threads, so the
//! time per iteration is wall time per operation (throughput).
//!
//! Groups (ids `group/scenario/impl`, `ours` for otlp-sync):
//! - `sync_semaphore_async`: acquire(1)+release from async code, one task
//!   uncontended and two tasks on two workers sharing one permit; peers
//!   `tokio::sync::Semaphore` and `async_lock::Semaphore`.
//! - `sync_semaphore_blocking`: acquire+release from threads, one thread and
//!   two threads sharing one permit; peer a `Mutex`+`Condvar` semaphore.
//! - `sync_config_read`: reading the current config as an `Arc<C>`, one and
//!   two reader threads; peers `RwLock<Arc<C>>` (std and parking_lot) and
//!   `arc-swap` (`load_full`, the same `Arc` result; and `load`, its guard).
//! - `sync_mutex`: lock+increment+unlock, one and two threads;
//!   `InstrumentedMutex` against `parking_lot::Mutex` and `std::sync::Mutex`.
//!
//! The two-thread rows (`_2t`) run once per count above 1 in
//! `OTLP_BENCH_THREADS` (default 2, see `otlp_benches::thread_counts`),
//! named by it (`lock_4t`); the async ones get as many tokio workers.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use otlp_benches::peers::{CondvarSemaphore, sample_config};
use otlp_benches::thread_counts_above_one;

/// Runs `work(thread_index, iters_for_this_thread)` on `threads` threads
/// started together; returns the wall time from the start signal to the
/// last thread's end.
fn run_threads<F>(threads: usize, iters: u64, work: F) -> Duration
where
    F: Fn(usize, u64) + Send + Sync + 'static,
{
    let work = Arc::new(work);
    let start = Arc::new(Barrier::new(threads + 1));
    let per_thread = (iters / threads as u64).max(1);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (work, start) = (Arc::clone(&work), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                work(t, per_thread);
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for h in handles {
        h.join().expect("bench thread panicked");
    }
    began.elapsed()
}

// ---- semaphores -----------------------------------------------------------

fn current_thread_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

fn worker_rt(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .expect("runtime")
}

/// `tasks` tasks (on as many workers), each doing `iters / tasks` rounds of
/// `round`.
fn async_threads<S, F, Fut>(
    rt: &tokio::runtime::Runtime,
    tasks: usize,
    sem: &Arc<S>,
    iters: u64,
    round: F,
) -> Duration
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    rt.block_on(async {
        let per_task = (iters / tasks as u64).max(1);
        let start = Arc::new(tokio::sync::Barrier::new(tasks + 1));
        let tasks: Vec<_> = (0..tasks)
            .map(|_| {
                let (sem, start) = (Arc::clone(sem), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    for _ in 0..per_task {
                        round(Arc::clone(&sem)).await;
                    }
                })
            })
            .collect();
        start.wait().await;
        let began = Instant::now();
        for t in tasks {
            t.await.expect("bench task panicked");
        }
        began.elapsed()
    })
}

fn semaphore_async(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync_semaphore_async");
    g.throughput(Throughput::Elements(1));

    let rt = current_thread_rt();
    let ours = otlp_sync::Semaphore::new(1).expect("semaphore");
    g.bench_function(BenchmarkId::new("uncontended", "ours"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let began = Instant::now();
                for _ in 0..iters {
                    drop(black_box(ours.acquire(1).await.expect("open")));
                }
                began.elapsed()
            })
        })
    });
    let tokio_sem = tokio::sync::Semaphore::new(1);
    g.bench_function(BenchmarkId::new("uncontended", "tokio"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let began = Instant::now();
                for _ in 0..iters {
                    drop(black_box(tokio_sem.acquire().await.expect("open")));
                }
                began.elapsed()
            })
        })
    });
    let al = async_lock::Semaphore::new(1);
    g.bench_function(BenchmarkId::new("uncontended", "async_lock"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let began = Instant::now();
                for _ in 0..iters {
                    drop(black_box(al.acquire().await));
                }
                began.elapsed()
            })
        })
    });

    for n in thread_counts_above_one() {
        let scenario = format!("contended_{n}t");
        let rt = worker_rt(n);
        let ours = Arc::new(otlp_sync::Semaphore::new(1).expect("semaphore"));
        g.bench_function(BenchmarkId::new(&scenario, "ours"), |b| {
            b.iter_custom(|iters| {
                async_threads(&rt, n, &ours, iters, |s| async move {
                    let p = s.acquire(1).await.expect("open");
                    tokio::task::yield_now().await;
                    drop(p);
                })
            })
        });
        let tokio_sem = Arc::new(tokio::sync::Semaphore::new(1));
        g.bench_function(BenchmarkId::new(&scenario, "tokio"), |b| {
            b.iter_custom(|iters| {
                async_threads(&rt, n, &tokio_sem, iters, |s| async move {
                    let p = s.acquire().await.expect("open");
                    tokio::task::yield_now().await;
                    drop(p);
                })
            })
        });
        let al = Arc::new(async_lock::Semaphore::new(1));
        g.bench_function(BenchmarkId::new(&scenario, "async_lock"), |b| {
            b.iter_custom(|iters| {
                async_threads(&rt, n, &al, iters, |s| async move {
                    let p = s.acquire().await;
                    tokio::task::yield_now().await;
                    drop(p);
                })
            })
        });
    }
    g.finish();
}

fn semaphore_blocking(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync_semaphore_blocking");
    g.throughput(Throughput::Elements(1));

    let ours = otlp_sync::Semaphore::new(1).expect("semaphore");
    g.bench_function(BenchmarkId::new("uncontended", "ours"), |b| {
        b.iter(|| drop(black_box(ours.acquire_blocking(1).expect("open"))))
    });
    let cv = CondvarSemaphore::new(1);
    g.bench_function(BenchmarkId::new("uncontended", "mutex_condvar"), |b| {
        b.iter(|| {
            cv.acquire();
            cv.release();
        })
    });

    for n in thread_counts_above_one() {
        let scenario = format!("contended_{n}t");
        let ours = Arc::new(otlp_sync::Semaphore::new(1).expect("semaphore"));
        g.bench_function(BenchmarkId::new(&scenario, "ours"), |b| {
            b.iter_custom(|iters| {
                let sem = Arc::clone(&ours);
                run_threads(n, iters, move |_, n| {
                    for _ in 0..n {
                        let p = sem.acquire_blocking(1).expect("open");
                        black_box(&p);
                        drop(p);
                    }
                })
            })
        });
        let cv = Arc::new(CondvarSemaphore::new(1));
        g.bench_function(BenchmarkId::new(&scenario, "mutex_condvar"), |b| {
            b.iter_custom(|iters| {
                let sem = Arc::clone(&cv);
                run_threads(n, iters, move |_, n| {
                    for _ in 0..n {
                        sem.acquire();
                        black_box(&sem);
                        sem.release();
                    }
                })
            })
        });
    }
    g.finish();
}

// ---- config reads ---------------------------------------------------------

fn config_read(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync_config_read");
    g.throughput(Throughput::Elements(1));

    let ours = Arc::new(otlp_sync::ConfigCell::new(sample_config()));
    let std_rw = Arc::new(std::sync::RwLock::new(Arc::new(sample_config())));
    let pl_rw = Arc::new(parking_lot::RwLock::new(Arc::new(sample_config())));
    let swap = Arc::new(arc_swap::ArcSwap::from_pointee(sample_config()));

    g.bench_function(BenchmarkId::new("read_1t", "ours"), |b| {
        b.iter(|| black_box(ours.load()))
    });
    g.bench_function(BenchmarkId::new("read_1t", "rwlock_arc"), |b| {
        b.iter(|| black_box(Arc::clone(&std_rw.read().expect("poisoned"))))
    });
    g.bench_function(BenchmarkId::new("read_1t", "pl_rwlock_arc"), |b| {
        b.iter(|| black_box(Arc::clone(&pl_rw.read())))
    });
    g.bench_function(BenchmarkId::new("read_1t", "arcswap"), |b| {
        b.iter(|| black_box(swap.load_full()))
    });
    g.bench_function(BenchmarkId::new("read_1t", "arcswap_guard"), |b| {
        b.iter(|| black_box(swap.load().max_connections()))
    });

    for n in thread_counts_above_one() {
        let scenario = format!("read_{n}t");
        {
            let cell = Arc::clone(&ours);
            g.bench_function(BenchmarkId::new(&scenario, "ours"), move |b| {
                b.iter_custom(|iters| {
                    let cell = Arc::clone(&cell);
                    run_threads(n, iters, move |_, n| {
                        for _ in 0..n {
                            black_box(cell.load());
                        }
                    })
                })
            });
        }
        {
            let rw = Arc::clone(&std_rw);
            g.bench_function(BenchmarkId::new(&scenario, "rwlock_arc"), move |b| {
                b.iter_custom(|iters| {
                    let rw = Arc::clone(&rw);
                    run_threads(n, iters, move |_, n| {
                        for _ in 0..n {
                            black_box(Arc::clone(&rw.read().expect("poisoned")));
                        }
                    })
                })
            });
        }
        {
            let rw = Arc::clone(&pl_rw);
            g.bench_function(BenchmarkId::new(&scenario, "pl_rwlock_arc"), move |b| {
                b.iter_custom(|iters| {
                    let rw = Arc::clone(&rw);
                    run_threads(n, iters, move |_, n| {
                        for _ in 0..n {
                            black_box(Arc::clone(&rw.read()));
                        }
                    })
                })
            });
        }
        {
            let swap = Arc::clone(&swap);
            g.bench_function(BenchmarkId::new(&scenario, "arcswap"), move |b| {
                b.iter_custom(|iters| {
                    let swap = Arc::clone(&swap);
                    run_threads(n, iters, move |_, n| {
                        for _ in 0..n {
                            black_box(swap.load_full());
                        }
                    })
                })
            });
        }
    }
    g.finish();
}

// ---- mutexes --------------------------------------------------------------

fn mutex(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync_mutex");
    g.throughput(Throughput::Elements(1));

    let ours = Arc::new(otlp_sync::InstrumentedMutex::new(0_u64));
    let pl = Arc::new(parking_lot::Mutex::new(0_u64));
    let std_m = Arc::new(std::sync::Mutex::new(0_u64));

    g.bench_function(BenchmarkId::new("lock_1t", "ours"), |b| {
        b.iter(|| *black_box(&ours).lock() += 1)
    });
    g.bench_function(BenchmarkId::new("lock_1t", "parking_lot"), |b| {
        b.iter(|| *black_box(&pl).lock() += 1)
    });
    g.bench_function(BenchmarkId::new("lock_1t", "std"), |b| {
        b.iter(|| *black_box(&std_m).lock().expect("poisoned") += 1)
    });

    for n in thread_counts_above_one() {
        let scenario = format!("lock_{n}t");
        {
            let m = Arc::clone(&ours);
            g.bench_function(BenchmarkId::new(&scenario, "ours"), move |b| {
                b.iter_custom(|iters| {
                    let m = Arc::clone(&m);
                    run_threads(n, iters, move |_, n| {
                        for _ in 0..n {
                            *m.lock() += 1;
                        }
                    })
                })
            });
        }
        {
            let m = Arc::clone(&pl);
            g.bench_function(BenchmarkId::new(&scenario, "parking_lot"), move |b| {
                b.iter_custom(|iters| {
                    let m = Arc::clone(&m);
                    run_threads(n, iters, move |_, n| {
                        for _ in 0..n {
                            *m.lock() += 1;
                        }
                    })
                })
            });
        }
        {
            let m = Arc::clone(&std_m);
            g.bench_function(BenchmarkId::new(&scenario, "std"), move |b| {
                b.iter_custom(|iters| {
                    let m = Arc::clone(&m);
                    run_threads(n, iters, move |_, n| {
                        for _ in 0..n {
                            *m.lock().expect("poisoned") += 1;
                        }
                    })
                })
            });
        }
    }
    g.finish();
}

criterion_group!(
    benches,
    semaphore_async,
    semaphore_blocking,
    config_read,
    mutex
);
criterion_main!(benches);
