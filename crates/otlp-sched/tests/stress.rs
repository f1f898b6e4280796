//! Stress tests: conservation (every task exactly once), fork-join and
//! scope correctness, shutdown drains, panic isolation, and priorities
//! under saturation. Sized for 2 cores; `OTLP_STRESS_SMALL=1` (TSan runs)
//! and Miri shrink them.
#![cfg(not(loom))]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use otlp_sched::{Priority, SubmitError, TaskError, WorkStealingScheduler};

/// `full` normally, a tenth under `OTLP_STRESS_SMALL`, a 5000th (at
/// least 8) under Miri.
fn size(full: usize) -> usize {
    if cfg!(miri) {
        (full / 5000).max(8)
    } else if std::env::var_os("OTLP_STRESS_SMALL").is_some() {
        full / 10
    } else {
        full
    }
}

fn pool(workers: usize) -> WorkStealingScheduler {
    WorkStealingScheduler::new(workers).expect("pool")
}

/// Blocks the calling thread until `count` reaches `target`, yielding.
fn wait_for(count: &AtomicUsize, target: usize) {
    while count.load(Ordering::SeqCst) < target {
        thread::yield_now();
    }
}

#[test]
fn million_tasks_from_several_threads_each_run_once() {
    let producers = 4;
    let total = size(1_000_000);
    let per = total / producers;
    let pool = Arc::new(pool(2));
    let seen: Arc<Vec<AtomicU8>> =
        Arc::new((0..per * producers).map(|_| AtomicU8::new(0)).collect());
    let done = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(producers));
    let threads: Vec<_> = (0..producers)
        .map(|p| {
            let (pool, seen, done, start) =
                (pool.clone(), seen.clone(), done.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                for i in p * per..(p + 1) * per {
                    let (seen, done) = (seen.clone(), done.clone());
                    let prio = Priority::ALL[i % 3];
                    pool.spawn_with_priority(prio, move || {
                        seen[i].fetch_add(1, Ordering::Relaxed);
                        done.fetch_add(1, Ordering::Release);
                    })
                    .expect("pool is open");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    wait_for(&done, per * producers);
    assert!(
        seen.iter().all(|c| c.load(Ordering::Relaxed) == 1),
        "a task ran twice or never"
    );
    // Counters are bumped after a job returns; shut down to settle them.
    pool.shutdown().unwrap();
    let executed: u64 = pool.stats().iter().map(|s| s.executed).sum();
    assert_eq!(executed, (per * producers) as u64);
}

#[test]
fn tasks_spawned_from_workers_each_run_once() {
    let pool = Arc::new(pool(2));
    let fan = size(200).max(10);
    let seen: Arc<Vec<AtomicU8>> = Arc::new((0..fan * fan).map(|_| AtomicU8::new(0)).collect());
    let done = Arc::new(AtomicUsize::new(0));
    for i in 0..fan {
        let (inner_pool, seen, done) = (pool.clone(), seen.clone(), done.clone());
        pool.spawn(move || {
            for j in 0..fan {
                let (seen, done) = (seen.clone(), done.clone());
                inner_pool
                    .spawn(move || {
                        seen[i * fan + j].fetch_add(1, Ordering::Relaxed);
                        done.fetch_add(1, Ordering::Release);
                    })
                    .expect("open");
            }
        })
        .expect("open");
    }
    wait_for(&done, fan * fan);
    assert!(seen.iter().all(|c| c.load(Ordering::Relaxed) == 1));
    // Some of the inner tasks were local spawns that another worker stole
    // or that the owner ran; either way each ran once, checked above.
}

fn fib(pool: &WorkStealingScheduler, n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = pool.join(|| fib(pool, n - 1), || fib(pool, n - 2));
    a + b
}

fn fib_seq(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib_seq(n - 1) + fib_seq(n - 2)
    }
}

#[test]
fn nested_join_fib_is_correct() {
    let pool = pool(2);
    let n = if cfg!(miri) { 8 } else { 22 };
    assert_eq!(fib(&pool, n), fib_seq(n));
    // Several outside threads joining at once.
    let pool = Arc::new(pool);
    let threads: Vec<_> = (0..3)
        .map(|k| {
            let pool = pool.clone();
            thread::spawn(move || fib(&pool, n - 2 - k))
        })
        .collect();
    for (k, t) in threads.into_iter().enumerate() {
        assert_eq!(t.join().unwrap(), fib_seq(n - 2 - k as u64));
    }
}

#[test]
fn join_propagates_panic_after_both_sides() {
    let pool = pool(2);
    let other_ran = AtomicBool::new(false);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.join(
            || other_ran.store(true, Ordering::SeqCst),
            || panic!("right side"),
        )
    }));
    assert!(result.is_err());
    assert!(other_ran.load(Ordering::SeqCst));
    // The pool still works.
    assert_eq!(pool.join(|| 1, || 2), (1, 2));
}

#[test]
fn scope_borrows_and_waits_for_all_tasks() {
    let pool = pool(2);
    let len = size(100_000);
    let mut data: Vec<u64> = (0..len as u64).collect();
    let chunk = (len / 64).max(1);
    let total = AtomicUsize::new(0);
    pool.scope(|s| {
        for part in data.chunks_mut(chunk) {
            let total = &total;
            s.spawn(move |s| {
                for x in part.iter_mut() {
                    *x *= 2;
                }
                // Nested spawn into the same scope, borrowing again.
                s.spawn(move |_| {
                    total.fetch_add(1, Ordering::SeqCst);
                });
            });
        }
    });
    assert_eq!(total.load(Ordering::SeqCst), len.div_ceil(chunk));
    assert!(data.iter().enumerate().all(|(i, &x)| x == 2 * i as u64));

    // A scope opened on a worker (from inside a task) works too.
    let pool = Arc::new(pool);
    let inner = pool.clone();
    let handle = pool
        .submit(move || {
            let values = [1u64, 2, 3, 4];
            let sum = AtomicUsize::new(0);
            inner.scope(|s| {
                for v in &values {
                    let sum = &sum;
                    s.spawn(move |_| {
                        sum.fetch_add(*v as usize, Ordering::SeqCst);
                    });
                }
            });
            sum.load(Ordering::SeqCst)
        })
        .ok()
        .unwrap();
    assert_eq!(handle.join().unwrap(), 10);
}

#[test]
fn scope_resumes_first_task_panic_after_all_finished() {
    let pool = pool(2);
    let finished = AtomicUsize::new(0);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.scope(|s| {
            for i in 0..8 {
                let finished = &finished;
                s.spawn(move |_| {
                    if i == 3 {
                        panic!("task 3");
                    }
                    finished.fetch_add(1, Ordering::SeqCst);
                });
            }
        })
    }));
    assert!(result.is_err());
    assert_eq!(finished.load(Ordering::SeqCst), 7);
}

#[test]
fn shutdown_drains_everything_accepted_and_hands_back_the_rest() {
    let pool = Arc::new(pool(2));
    let producers = 3;
    let per = size(20_000);
    // Runs on a pool worker and runs on the producer (handed back).
    let ran_in_pool = Arc::new(AtomicUsize::new(0));
    let ran_inline = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let handed_back = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..producers)
        .map(|_| {
            let (pool, ran_in_pool, ran_inline, accepted, handed_back) = (
                pool.clone(),
                ran_in_pool.clone(),
                ran_inline.clone(),
                accepted.clone(),
                handed_back.clone(),
            );
            thread::spawn(move || {
                for _ in 0..per {
                    let (ran_in_pool, ran_inline) = (ran_in_pool.clone(), ran_inline.clone());
                    let task = move || {
                        if WorkStealingScheduler::current_worker_index().is_some() {
                            ran_in_pool.fetch_add(1, Ordering::SeqCst);
                        } else {
                            ran_inline.fetch_add(1, Ordering::SeqCst);
                        }
                    };
                    match pool.spawn(task) {
                        Ok(()) => {
                            accepted.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(SubmitError::ShutDown(task)) => {
                            // The rejected task is handed back intact.
                            task();
                            handed_back.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    // Shut down while the producers are still submitting.
    while accepted.load(Ordering::SeqCst) < per / 2 {
        thread::yield_now();
    }
    pool.shutdown().unwrap();
    let in_pool_at_shutdown = ran_in_pool.load(Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    let accepted = accepted.load(Ordering::SeqCst);
    let handed_back = handed_back.load(Ordering::SeqCst);
    assert_eq!(accepted + handed_back, producers * per);
    // Everything accepted had run by the time shutdown returned, and
    // nothing ran in the pool afterwards.
    assert_eq!(
        in_pool_at_shutdown, accepted,
        "accepted tasks were lost or not drained"
    );
    assert_eq!(ran_in_pool.load(Ordering::SeqCst), accepted);
    assert_eq!(ran_inline.load(Ordering::SeqCst), handed_back);
    assert!(pool.spawn(|| ()).is_err());
}

#[test]
fn shutdown_now_drops_queued_tasks_and_reports_them() {
    let pool = pool(1);
    let gate = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    {
        let (gate, started) = (gate.clone(), started.clone());
        pool.spawn(move || {
            started.fetch_add(1, Ordering::SeqCst);
            while !gate.load(Ordering::SeqCst) {
                thread::yield_now();
            }
        })
        .ok()
        .unwrap();
    }
    wait_for(&started, 1);
    let queued = size(1000);
    let ran = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..queued)
        .map(|_| {
            let ran = ran.clone();
            pool.submit(move || ran.fetch_add(1, Ordering::SeqCst))
                .ok()
                .unwrap()
        })
        .collect();
    let opener = {
        let gate = gate.clone();
        thread::spawn(move || {
            // Let shutdown_now close the pool first, then release the task.
            thread::sleep(std::time::Duration::from_millis(20));
            gate.store(true, Ordering::SeqCst);
        })
    };
    let dropped = pool.shutdown_now().unwrap();
    opener.join().unwrap();
    let ran = ran.load(Ordering::SeqCst);
    assert_eq!(dropped + ran, queued);
    let mut cancelled = 0;
    for h in handles {
        match h.join() {
            Ok(_) => {}
            Err(TaskError::Cancelled) => cancelled += 1,
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(cancelled, dropped);
    assert!(dropped > 0);
}

#[test]
fn panics_are_isolated() {
    let panics = Arc::new(AtomicUsize::new(0));
    let seen = panics.clone();
    let pool = WorkStealingScheduler::builder()
        .workers(2)
        .panic_handler(move |_| {
            seen.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let n = size(2000);
    let handles: Vec<_> = (0..n)
        .map(|i| {
            pool.submit(move || {
                if i % 2 == 0 {
                    panic!("task {i}");
                }
                i
            })
            .ok()
            .unwrap()
        })
        .collect();
    let mut ok = HashSet::new();
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(v) => {
                assert_eq!(v, i);
                ok.insert(v);
            }
            Err(err) => {
                assert_eq!(err.panic_message(), Some(format!("task {i}").as_str()));
                assert!(matches!(err, TaskError::Panicked(_)));
            }
        }
    }
    assert_eq!(ok.len(), n / 2);
    assert_eq!(panics.load(Ordering::SeqCst), n.div_ceil(2));
    // Both workers survived: a full round of blocking tasks still runs.
    let barrier = Arc::new(Barrier::new(2));
    let hs: Vec<_> = (0..2)
        .map(|_| {
            let b = barrier.clone();
            pool.submit(move || {
                b.wait();
            })
            .ok()
            .unwrap()
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}

/// Fills the pool with `workers` blocking tasks, queues Low, Normal and
/// High tasks in that order, releases the gate, and returns the start
/// order of the queued tasks' priorities.
fn start_order(workers: usize, per_priority: usize) -> Vec<Priority> {
    let pool = pool(workers);
    let gate = Arc::new(AtomicBool::new(false));
    let blocked = Arc::new(AtomicUsize::new(0));
    for _ in 0..workers {
        let (gate, blocked) = (gate.clone(), blocked.clone());
        pool.spawn(move || {
            blocked.fetch_add(1, Ordering::SeqCst);
            while !gate.load(Ordering::SeqCst) {
                thread::yield_now();
            }
        })
        .ok()
        .unwrap();
    }
    wait_for(&blocked, workers);
    let order = Arc::new(Mutex::new(Vec::new()));
    for prio in [Priority::Low, Priority::Normal, Priority::High] {
        for _ in 0..per_priority {
            let order = order.clone();
            pool.spawn_with_priority(prio, move || order.lock().unwrap().push(prio))
                .ok()
                .unwrap();
        }
    }
    gate.store(true, Ordering::SeqCst);
    pool.shutdown().unwrap();
    order.lock().unwrap().clone()
}

#[test]
fn priorities_hold_when_saturated_one_worker() {
    let per = size(300).max(10);
    let order = start_order(1, per);
    assert_eq!(order.len(), 3 * per);
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(
        order, sorted,
        "a lower priority task started before a higher one"
    );
}

#[test]
fn priorities_hold_when_saturated_two_workers() {
    let workers = 2;
    let per = size(300).max(10);
    let order = start_order(workers, per);
    assert_eq!(order.len(), 3 * per);
    // Count inversions: a task that started after a lower-priority one.
    // Each worker's pick is a snapshot, so at most workers - 1 tasks per
    // priority boundary may overtake.
    for (hi, lo) in [
        (Priority::High, Priority::Normal),
        (Priority::Normal, Priority::Low),
        (Priority::High, Priority::Low),
    ] {
        let first_lo = order.iter().position(|p| *p == lo).unwrap();
        let late_hi = order[first_lo..].iter().filter(|p| **p == hi).count();
        assert!(
            late_hi < workers,
            "{late_hi} {hi:?} tasks started after the first {lo:?} one"
        );
    }
}
