//! Behaviour of the public API: building, results, awaiting, errors,
//! hooks, stats and shutdown rules.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use otlp_sched::{
    BuildError, Builder, Priority, ShutdownError, SubmitError, TaskError, WorkStealingScheduler,
};

#[test]
fn zero_workers_is_an_error() {
    assert!(matches!(
        WorkStealingScheduler::new(0),
        Err(BuildError::ZeroWorkers)
    ));
    assert!(matches!(
        Builder::new().workers(1).stack_size(0).build(),
        Err(BuildError::ZeroStackSize)
    ));
    assert!(matches!(
        Builder::new().workers(1 << 20).build(),
        Err(BuildError::TooManyWorkers { .. })
    ));
}

#[test]
fn default_worker_count_is_the_allowed_cpus() {
    let pool = Builder::new().build().unwrap();
    let expected = thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(pool.workers(), expected);
    assert_eq!(pool.stats().len(), expected);
}

#[test]
fn submit_join_and_spawn() {
    let pool = WorkStealingScheduler::new(2).unwrap();
    let h = pool.submit(|| 21 * 2).ok().unwrap();
    assert_eq!(h.join().unwrap(), 42);
    let (tx, rx) = std::sync::mpsc::channel();
    pool.spawn(move || tx.send(7).unwrap()).ok().unwrap();
    assert_eq!(rx.recv().unwrap(), 7);
}

#[test]
fn handle_is_a_future_awaitable_from_tokio() {
    let pool = Arc::new(WorkStealingScheduler::new(2).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let p = pool.clone();
    let out = rt.block_on(async move {
        let a = p.submit(|| (1..=100u64).sum::<u64>()).ok().unwrap();
        let b = p
            .submit(|| {
                thread::sleep(std::time::Duration::from_millis(5));
                3u64
            })
            .ok()
            .unwrap();
        a.await.unwrap() + b.await.unwrap()
    });
    assert_eq!(out, 5053);
}

#[test]
fn panic_goes_to_handle_and_handler_and_worker_survives() {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let s = seen.clone();
    let pool = Builder::new()
        .workers(1)
        .panic_handler(move |payload| {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|m| m.to_string())
                .unwrap_or_default();
            s.lock().unwrap().push(msg);
        })
        .build()
        .unwrap();
    let h = pool.submit(|| -> u32 { panic!("boom") }).ok().unwrap();
    let err = h.join().unwrap_err();
    assert_eq!(err.panic_message(), Some("boom"));
    assert!(err.to_string().contains("boom"));
    pool.spawn(|| panic!("fire and forget")).ok().unwrap();
    // The single worker is still alive.
    assert_eq!(pool.submit(|| 5).ok().unwrap().join().unwrap(), 5);
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["boom".to_string(), "fire and forget".to_string()]
    );
}

#[test]
fn names_stack_and_hooks() {
    let started = Arc::new(Mutex::new(Vec::new()));
    let exited = Arc::new(AtomicUsize::new(0));
    let (s, e) = (started.clone(), exited.clone());
    let pool = Builder::new()
        .workers(3)
        .thread_name(|i| format!("hooked-{i}"))
        .stack_size(256 * 1024)
        .on_thread_start(move |i| {
            let name = thread::current().name().unwrap().to_string();
            s.lock().unwrap().push((i, name));
        })
        .on_thread_exit(move |_| {
            e.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let name = pool
        .submit(|| thread::current().name().unwrap().to_string())
        .ok()
        .unwrap()
        .join()
        .unwrap();
    assert!(name.starts_with("hooked-"));
    pool.shutdown().unwrap();
    let mut started = started.lock().unwrap().clone();
    started.sort();
    assert_eq!(
        started,
        (0..3)
            .map(|i| (i, format!("hooked-{i}")))
            .collect::<Vec<_>>()
    );
    assert_eq!(exited.load(Ordering::SeqCst), 3);
}

#[test]
fn rejected_after_shutdown_hands_task_back() {
    let pool = WorkStealingScheduler::new(1).unwrap();
    pool.shutdown().unwrap();
    assert!(pool.is_shut_down());
    let value = Arc::new(AtomicUsize::new(0));
    let v = value.clone();
    let err = pool
        .spawn(move || {
            v.store(9, Ordering::SeqCst);
        })
        .unwrap_err();
    assert!(err.to_string().contains("shut down"));
    (err.into_inner())();
    assert_eq!(value.load(Ordering::SeqCst), 9);
    match pool.submit(|| 1) {
        Err(SubmitError::ShutDown(f)) => assert_eq!(f(), 1),
        Ok(_) => panic!("accepted after shutdown"),
    }
    // join and scope still work after shutdown: they run on the caller.
    assert_eq!(pool.join(|| 1, || 2), (1, 2));
    let mut x = 0;
    pool.scope(|s| s.spawn(|_| x = 5));
    assert_eq!(x, 5);
    // Idempotent.
    pool.shutdown().unwrap();
    assert_eq!(pool.shutdown_now().unwrap(), 0);
}

#[test]
fn shutdown_from_a_worker_is_an_error() {
    let pool = Arc::new(WorkStealingScheduler::new(1).unwrap());
    let p = pool.clone();
    let r = pool
        .submit(move || p.shutdown())
        .ok()
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(r, Err(ShutdownError::OnWorkerThread));
    assert!(!pool.is_shut_down());
}

#[test]
fn drop_runs_queued_tasks() {
    let ran = Arc::new(AtomicUsize::new(0));
    {
        let pool = WorkStealingScheduler::new(1).unwrap();
        for _ in 0..100 {
            let ran = ran.clone();
            pool.spawn(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .ok()
            .unwrap();
        }
    }
    assert_eq!(ran.load(Ordering::SeqCst), 100);
}

#[test]
fn last_owner_dropped_on_a_worker_does_not_hang() {
    let pool = Arc::new(WorkStealingScheduler::new(2).unwrap());
    let p = pool.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    pool.spawn(move || {
        // Wait until the test dropped its Arc, then drop the last one here.
        rx.recv().unwrap();
        drop(p);
    })
    .ok()
    .unwrap();
    drop(pool);
    tx.send(()).unwrap();
}

#[test]
fn stats_count_executed_and_handle_join_helps_on_worker() {
    let pool = Arc::new(WorkStealingScheduler::new(1).unwrap());
    let p = pool.clone();
    // On a one-worker pool, a task waiting on another task's handle runs
    // it itself instead of deadlocking.
    let outer = pool
        .submit(move || {
            let inner = p.submit(|| 11).ok().unwrap();
            inner.join().unwrap() + 1
        })
        .ok()
        .unwrap();
    assert_eq!(outer.join().unwrap(), 12);
    // Counters are bumped after a job returns; shut down to settle them.
    pool.shutdown().unwrap();
    let executed: u64 = pool.stats().iter().map(|s| s.executed).sum();
    assert_eq!(executed, 2);
    assert!(WorkStealingScheduler::current_worker_index().is_none());
}

#[test]
fn priority_order_and_default() {
    assert_eq!(Priority::default(), Priority::Normal);
    assert!(Priority::High < Priority::Normal && Priority::Normal < Priority::Low);
    let pool = WorkStealingScheduler::new(1).unwrap();
    let h = pool.submit_with_priority(Priority::Low, || 1).ok().unwrap();
    assert_eq!(h.join().unwrap(), 1);
}

#[test]
fn cancelled_handle_reports_cancelled() {
    let pool = WorkStealingScheduler::new(1).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    pool.spawn(move || {
        started_tx.send(()).unwrap();
        let _ = rx.recv();
    })
    .ok()
    .unwrap();
    started_rx.recv().unwrap();
    let h = pool.submit(|| 1).ok().unwrap();
    let releaser = thread::spawn(move || {
        thread::sleep(std::time::Duration::from_millis(20));
        drop(tx);
    });
    assert_eq!(pool.shutdown_now().unwrap(), 1);
    releaser.join().unwrap();
    assert!(matches!(h.join(), Err(TaskError::Cancelled)));
}
