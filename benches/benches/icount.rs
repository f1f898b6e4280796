//! The single-thread scenarios of the criterion targets, as plain loops for
//! `valgrind --tool=callgrind`: `cargo xtask bench` runs each one twice, for
//! `ITERS` and `2 × ITERS` iterations, and reports the difference of the two
//! instruction totals per element. Setup, process start and exit are in both
//! runs and cancel out, and the count repeats exactly from run to run, so a
//! 1 % change is a real change.
//!
//! Each scenario carries the id of the criterion benchmark it mirrors
//! (`group/scenario/impl`) and does what that benchmark's loop body does, with
//! the same peers (`otlp_benches::peers`) and the same elements per
//! iteration. Left out: every multi-thread scenario (callgrind runs threads
//! one at a time, so contention is not measured) and `numa_current_node`,
//! whose cost is the kernel's or the vDSO's, which callgrind does not count.
//!
//! Usage: `icount --list [FILTER]` prints `ID ELEMENTS ITERS` per scenario
//! whose id matches the regex FILTER; `icount --run ID ITERS` runs one.
//! With other arguments (as `cargo bench` passes) it runs every scenario for
//! one iteration, a smoke check that each still works.

use std::alloc::{Layout, System};
use std::hint::black_box;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crossbeam_queue::SegQueue;
use futures_util::{StreamExt, stream};
use otlp_async::BatchedExt;
use otlp_benches::peers::{
    CondvarSemaphore, HdrMonitor, MutexStats, SeedMonitor, SeedRoundRobin, alloc_free, latencies,
    sample_config,
};
use otlp_lockfree::{ConcurrentVec, LockFreeQueue, LockFreeStack};
use otlp_monitor::ConcurrencyMonitor;
use otlp_numa::NumaAwareAllocator;

/// One scenario: its criterion id, the elements one iteration handles (the
/// criterion throughput), the iteration count xtask starts from, and the
/// loop itself (setup, then `iters` iterations).
struct Scenario {
    id: &'static str,
    elements: u64,
    iters: u64,
    run: fn(u64),
}

const STACK_PAIRS: u64 = 100;
const QUEUE_PAIRS: u64 = 100;
const QUEUE_BURST: u64 = 1000;
const VEC_N: usize = 1000;
const STATS_VALUES: usize = 1_000_000;
const BATCH_ITEMS: u64 = 1_000_000;
const BATCH_SIZE: usize = 512;

static SCENARIOS: &[Scenario] = &[
    Scenario {
        id: "lockfree_stack/push_pop_1t/ours",
        elements: STACK_PAIRS,
        iters: 20,
        run: |iters| {
            let s = LockFreeStack::new();
            for _ in 0..iters {
                for i in 0..STACK_PAIRS {
                    s.push(i);
                    black_box(s.pop());
                }
            }
        },
    },
    Scenario {
        id: "lockfree_stack/push_pop_1t/mutex_vec",
        elements: STACK_PAIRS,
        iters: 20,
        run: |iters| {
            let m = parking_lot::Mutex::new(Vec::new());
            for _ in 0..iters {
                for i in 0..STACK_PAIRS {
                    m.lock().push(i);
                    black_box(m.lock().pop());
                }
            }
        },
    },
    Scenario {
        id: "lockfree_stack/push_pop_1t/segqueue",
        elements: STACK_PAIRS,
        iters: 20,
        run: |iters| {
            let q = SegQueue::new();
            for _ in 0..iters {
                for i in 0..STACK_PAIRS {
                    q.push(i);
                    black_box(q.pop());
                }
            }
        },
    },
    Scenario {
        id: "lockfree_queue/push_pop_1t/ours",
        elements: QUEUE_PAIRS,
        iters: 20,
        run: |iters| {
            let q = LockFreeQueue::new();
            for _ in 0..iters {
                for i in 0..QUEUE_PAIRS {
                    q.push(i);
                    black_box(q.pop());
                }
            }
        },
    },
    Scenario {
        id: "lockfree_queue/push_pop_1t/segqueue",
        elements: QUEUE_PAIRS,
        iters: 20,
        run: |iters| {
            let q = SegQueue::new();
            for _ in 0..iters {
                for i in 0..QUEUE_PAIRS {
                    q.push(i);
                    black_box(q.pop());
                }
            }
        },
    },
    Scenario {
        id: "lockfree_queue/burst_1t/ours",
        elements: QUEUE_BURST,
        iters: 4,
        run: |iters| {
            let q = LockFreeQueue::new();
            for _ in 0..iters {
                for i in 0..QUEUE_BURST {
                    q.push(i);
                }
                for _ in 0..QUEUE_BURST {
                    black_box(q.pop());
                }
            }
        },
    },
    Scenario {
        id: "lockfree_queue/burst_1t/segqueue",
        elements: QUEUE_BURST,
        iters: 4,
        run: |iters| {
            let q = SegQueue::new();
            for _ in 0..iters {
                for i in 0..QUEUE_BURST {
                    q.push(i);
                }
                for _ in 0..QUEUE_BURST {
                    black_box(q.pop());
                }
            }
        },
    },
    Scenario {
        id: "lockfree_vec/push_read_1t/ours",
        elements: VEC_N as u64,
        iters: 4,
        run: |iters| {
            for _ in 0..iters {
                let v = ConcurrentVec::new();
                for i in 0..VEC_N {
                    v.push(i);
                }
                let mut sum = 0;
                for i in 0..VEC_N {
                    sum += *v.get(i).unwrap();
                }
                black_box(sum);
            }
        },
    },
    Scenario {
        id: "lockfree_vec/push_read_1t/boxcar",
        elements: VEC_N as u64,
        iters: 4,
        run: |iters| {
            for _ in 0..iters {
                let v = boxcar::Vec::new();
                for i in 0..VEC_N {
                    v.push(i);
                }
                let mut sum = 0;
                for i in 0..VEC_N {
                    sum += *v.get(i).unwrap();
                }
                black_box(sum);
            }
        },
    },
    Scenario {
        id: "lockfree_vec/push_read_1t/mutex_vec",
        elements: VEC_N as u64,
        iters: 4,
        run: |iters| {
            for _ in 0..iters {
                let v = std::sync::Mutex::new(Vec::new());
                for i in 0..VEC_N {
                    v.lock().unwrap().push(i);
                }
                let mut sum = 0;
                for i in 0..VEC_N {
                    sum += v.lock().unwrap()[i];
                }
                black_box(sum);
            }
        },
    },
    Scenario {
        id: "sync_semaphore_async/uncontended/ours",
        elements: 1,
        iters: 2000,
        run: |iters| {
            let sem = otlp_sync::Semaphore::new(1).expect("semaphore");
            current_thread_rt().block_on(async {
                for _ in 0..iters {
                    drop(black_box(sem.acquire(1).await.expect("open")));
                }
            });
        },
    },
    Scenario {
        id: "sync_semaphore_async/uncontended/tokio",
        elements: 1,
        iters: 2000,
        run: |iters| {
            let sem = tokio::sync::Semaphore::new(1);
            current_thread_rt().block_on(async {
                for _ in 0..iters {
                    drop(black_box(sem.acquire().await.expect("open")));
                }
            });
        },
    },
    Scenario {
        id: "sync_semaphore_async/uncontended/async_lock",
        elements: 1,
        iters: 2000,
        run: |iters| {
            let sem = async_lock::Semaphore::new(1);
            current_thread_rt().block_on(async {
                for _ in 0..iters {
                    drop(black_box(sem.acquire().await));
                }
            });
        },
    },
    Scenario {
        id: "sync_semaphore_blocking/uncontended/ours",
        elements: 1,
        iters: 2000,
        run: |iters| {
            let sem = otlp_sync::Semaphore::new(1).expect("semaphore");
            for _ in 0..iters {
                drop(black_box(sem.acquire_blocking(1).expect("open")));
            }
        },
    },
    Scenario {
        id: "sync_semaphore_blocking/uncontended/mutex_condvar",
        elements: 1,
        iters: 2000,
        run: |iters| {
            let cv = CondvarSemaphore::new(1);
            for _ in 0..iters {
                cv.acquire();
                cv.release();
            }
        },
    },
    Scenario {
        id: "sync_config_read/read_1t/ours",
        elements: 1,
        iters: 2000,
        run: |iters| {
            let cell = Arc::new(otlp_sync::ConfigCell::new(sample_config()));
            for _ in 0..iters {
                black_box(cell.load());
            }
        },
    },
    Scenario {
        id: "sync_config_read/read_1t/rwlock_arc",
        elements: 1,
        iters: 2000,
        run: |iters| {
            let rw = Arc::new(RwLock::new(Arc::new(sample_config())));
            for _ in 0..iters {
                black_box(Arc::clone(&rw.read().expect("poisoned")));
            }
        },
    },
    Scenario {
        id: "sync_config_read/read_1t/pl_rwlock_arc",
        elements: 1,
        iters: 2000,
        run: |iters| {
            let rw = Arc::new(parking_lot::RwLock::new(Arc::new(sample_config())));
            for _ in 0..iters {
                black_box(Arc::clone(&rw.read()));
            }
        },
    },
    Scenario {
        id: "sync_config_read/read_1t/arcswap",
        elements: 1,
        iters: 2000,
        run: |iters| {
            let swap = Arc::new(arc_swap::ArcSwap::from_pointee(sample_config()));
            for _ in 0..iters {
                black_box(swap.load_full());
            }
        },
    },
    Scenario {
        id: "sync_config_read/read_1t/arcswap_guard",
        elements: 1,
        iters: 2000,
        run: |iters| {
            let swap = Arc::new(arc_swap::ArcSwap::from_pointee(sample_config()));
            for _ in 0..iters {
                black_box(swap.load().max_connections());
            }
        },
    },
    Scenario {
        id: "sync_mutex/lock_1t/ours",
        elements: 1,
        iters: 2000,
        run: |iters| {
            let m = Arc::new(otlp_sync::InstrumentedMutex::new(0_u64));
            for _ in 0..iters {
                *black_box(&m).lock() += 1;
            }
        },
    },
    Scenario {
        id: "sync_mutex/lock_1t/parking_lot",
        elements: 1,
        iters: 2000,
        run: |iters| {
            let m = Arc::new(parking_lot::Mutex::new(0_u64));
            for _ in 0..iters {
                *black_box(&m).lock() += 1;
            }
        },
    },
    Scenario {
        id: "sync_mutex/lock_1t/std",
        elements: 1,
        iters: 2000,
        run: |iters| {
            let m = Arc::new(std::sync::Mutex::new(0_u64));
            for _ in 0..iters {
                *black_box(&m).lock().expect("poisoned") += 1;
            }
        },
    },
    Scenario {
        id: "monitor_record/completion_1t/ours",
        elements: otlp_benches::peers::MONITOR_BATCH as u64,
        iters: 4,
        run: |iters| {
            let m = ConcurrencyMonitor::new();
            record_batches(iters, |d| m.record_task_completion(d));
        },
    },
    Scenario {
        id: "monitor_record/completion_1t/seed",
        elements: otlp_benches::peers::MONITOR_BATCH as u64,
        iters: 4,
        run: |iters| {
            let m = SeedMonitor::new();
            record_batches(iters, |d| m.record_task_completion(d));
            black_box(m.total());
        },
    },
    Scenario {
        id: "monitor_record/completion_1t/mutex_stats",
        elements: otlp_benches::peers::MONITOR_BATCH as u64,
        iters: 4,
        run: |iters| {
            let m = MutexStats::new();
            record_batches(iters, |d| m.record_task_completion(d));
        },
    },
    Scenario {
        id: "monitor_record/completion_1t/hdrhistogram",
        elements: otlp_benches::peers::MONITOR_BATCH as u64,
        iters: 4,
        run: |iters| {
            let m = HdrMonitor::new();
            record_batches(iters, |d| m.record_task_completion(d));
        },
    },
    Scenario {
        id: "monitor_stats/get_stats_1m/ours",
        elements: 1,
        iters: 50,
        run: |iters| {
            let m = ConcurrencyMonitor::new();
            for v in stats_values() {
                m.record_task_start();
                m.record_task_completion(Duration::from_nanos(v));
            }
            for _ in 0..iters {
                black_box(m.get_stats());
            }
        },
    },
    Scenario {
        id: "monitor_stats/get_stats_1m/hdrhistogram",
        elements: 1,
        iters: 50,
        run: |iters| {
            let m = HdrMonitor::new();
            for v in stats_values() {
                m.record_task_completion(Duration::from_nanos(v));
            }
            for _ in 0..iters {
                black_box(m.stats());
            }
        },
    },
    Scenario {
        id: "numa_alloc/alloc_free_1k/ours",
        elements: 1,
        iters: 2000,
        run: |iters| {
            static NUMA: NumaAwareAllocator = NumaAwareAllocator::new();
            let layout = kib();
            for _ in 0..iters {
                alloc_free(&NUMA, layout);
            }
            black_box(NUMA.total_stats());
        },
    },
    Scenario {
        id: "numa_alloc/alloc_free_1k/system",
        elements: 1,
        iters: 2000,
        run: |iters| {
            let layout = kib();
            for _ in 0..iters {
                alloc_free(&System, layout);
            }
        },
    },
    Scenario {
        id: "numa_alloc/alloc_free_1k/seed_round_robin",
        elements: 1,
        iters: 2000,
        run: |iters| {
            let seed = SeedRoundRobin::new(4);
            let layout = kib();
            for _ in 0..iters {
                alloc_free(&seed, layout);
            }
            black_box(seed.first_node_allocations());
        },
    },
    Scenario {
        id: "async_batching/iter_1m_512/ours",
        elements: BATCH_ITEMS,
        iters: 1,
        run: |iters| {
            batching_rt().block_on(async {
                for _ in 0..iters {
                    let mut s = stream::iter(0..BATCH_ITEMS).batched(BATCH_SIZE, BATCH_DELAY);
                    let mut n = 0usize;
                    while let Some(batch) = s.next().await {
                        n += batch.len();
                        black_box(&batch);
                    }
                    assert_eq!(n as u64, BATCH_ITEMS);
                }
            });
        },
    },
    Scenario {
        id: "async_batching/iter_1m_512/tokio_stream",
        elements: BATCH_ITEMS,
        iters: 1,
        run: |iters| {
            batching_rt().block_on(async {
                for _ in 0..iters {
                    let s = tokio_stream::StreamExt::chunks_timeout(
                        stream::iter(0..BATCH_ITEMS),
                        BATCH_SIZE,
                        BATCH_DELAY,
                    );
                    tokio::pin!(s);
                    let mut n = 0usize;
                    while let Some(batch) = s.next().await {
                        n += batch.len();
                        black_box(&batch);
                    }
                    assert_eq!(n as u64, BATCH_ITEMS);
                }
            });
        },
    },
];

/// The batching scenarios' deadline: long enough never to fire.
const BATCH_DELAY: Duration = Duration::from_secs(1);

/// `sync.rs`'s runtime for the uncontended semaphore: current thread, no
/// drivers.
fn current_thread_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

/// `async.rs`'s runtime for batching: current thread, timers enabled.
fn batching_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// `iters` passes over the shared latency batch, as `monitor_record` does.
fn record_batches(iters: u64, record: impl Fn(Duration)) {
    let lat = latencies();
    for _ in 0..iters {
        for &d in &lat {
            record(black_box(d));
        }
    }
}

/// The values `monitor_stats` records before reading (same seed and range).
fn stats_values() -> Vec<u64> {
    let mut rng = fastrand::Rng::with_seed(7);
    (0..STATS_VALUES)
        .map(|_| rng.u64(1_000..50_000_000))
        .collect()
}

fn kib() -> Layout {
    Layout::from_size_align(1024, 8).expect("valid layout")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--list") {
        let filter = args[at + 1..].iter().find(|a| !a.starts_with('-'));
        let filter = match filter.map(|f| regex::Regex::new(f)).transpose() {
            Ok(filter) => filter,
            Err(err) => {
                eprintln!("icount: FILTER is not a regex: {err}");
                std::process::exit(2);
            }
        };
        for s in SCENARIOS
            .iter()
            .filter(|s| filter.as_ref().is_none_or(|re| re.is_match(s.id)))
        {
            println!("{} {} {}", s.id, s.elements, s.iters);
        }
    } else if let Some(at) = args.iter().position(|a| a == "--run") {
        let (Some(id), Some(iters)) = (args.get(at + 1), args.get(at + 2)) else {
            eprintln!("icount: usage: icount --run ID ITERS");
            std::process::exit(2);
        };
        let Ok(iters) = iters.parse::<u64>() else {
            eprintln!("icount: ITERS must be a whole number, not `{iters}`");
            std::process::exit(2);
        };
        let Some(scenario) = SCENARIOS.iter().find(|s| s.id == id) else {
            eprintln!("icount: no scenario `{id}` (see icount --list)");
            std::process::exit(2);
        };
        (scenario.run)(iters);
    } else {
        for s in SCENARIOS {
            (s.run)(1);
        }
        println!(
            "icount: {} scenarios ran once each; `cargo xtask bench` counts their instructions",
            SCENARIOS.len()
        );
    }
}
