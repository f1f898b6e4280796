//! Loom models of the real pool: a `WorkStealingScheduler` built under
//! loom (its registry, worker loop, sleep protocol, task handles and
//! shutdown), with one or two workers. Nothing here is a copy of the
//! pool's code. A task that is accepted must run exactly once; a wake-up
//! lost anywhere between `submit` and a sleeping worker leaves `join` or
//! `shutdown` blocked for ever, which loom reports as a deadlock.
//!
//! crossbeam-deque's operations are single steps to loom (its atomics are
//! not modelled); the protocol around them is.
#![cfg(loom)]

use std::sync::Arc;

use loom::sync::atomic::{AtomicUsize, Ordering};
use otlp_sched::WorkStealingScheduler;

/// One worker, which may be searching, asleep or not yet started when the
/// task arrives from outside the pool: `join` must get the result.
#[test]
fn a_task_submitted_from_outside_reaches_a_sleeping_worker() {
    loom::model(|| {
        let pool = WorkStealingScheduler::new(1).unwrap();
        let handle = pool.submit(|| 7).unwrap();
        assert_eq!(handle.join().unwrap(), 7);
        pool.shutdown().unwrap();
    });
}

/// Two workers, two tasks, then a graceful shutdown racing the workers'
/// searches: both tasks run exactly once, and shutdown wakes and joins
/// every worker.
#[test]
fn shutdown_runs_every_accepted_task_once() {
    loom::model(|| {
        let pool = WorkStealingScheduler::new(2).unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let ran = Arc::clone(&ran);
            assert!(
                pool.spawn(move || {
                    ran.fetch_add(1, Ordering::Relaxed);
                })
                .is_ok()
            );
        }
        pool.shutdown().unwrap();
        assert_eq!(ran.load(Ordering::Relaxed), 2);
        assert!(pool.spawn(|| {}).is_err(), "closed after shutdown");
    });
}
