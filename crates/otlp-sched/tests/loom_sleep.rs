//! Loom models of the park/unpark handshake in `src/sleep.rs`.
//!
//! The workers run the pool's own search-and-sleep loop (`Sleep::search`,
//! which `WorkerThread::run` calls); the "queue" is an atomic count of
//! pending tasks, so the models check the protocol itself, without
//! crossbeam-deque. A lost wake-up shows up as a deadlock (every thread
//! blocked), which loom reports.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;
use otlp_sched::{Sleep, Wake};

/// Takes one task from the counter, if any.
fn take(queue: &AtomicUsize) -> bool {
    let mut n = queue.load(Ordering::SeqCst);
    while n > 0 {
        match queue.compare_exchange(n, n - 1, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return true,
            Err(actual) => n = actual,
        }
    }
    false
}

/// One worker: look, then search with the pool's own search-and-sleep
/// code ([`Sleep::search`], what `WorkerThread::run` calls); run what is
/// found; exit after `want` tasks or once `stop` is seen with nothing left.
fn worker(sleep: &Sleep, queue: &AtomicUsize, done: &AtomicUsize, stop: &AtomicBool, want: usize) {
    let mut ran = 0;
    while ran < want {
        if !take(queue) {
            let found = sleep.search(
                || take(queue).then_some(()),
                || queue.load(Ordering::SeqCst) > 0,
                || stop.load(Ordering::SeqCst),
                // No back-off under the model: straight to sleep.
                || false,
                |wake| {
                    assert!(matches!(
                        wake,
                        Wake::Woken | Wake::Cancelled | Wake::Terminated
                    ));
                },
            );
            if found.is_none() {
                return;
            }
        }
        ran += 1;
        done.fetch_add(1, Ordering::SeqCst);
    }
}

fn produce(sleep: &Sleep, queue: &AtomicUsize) {
    queue.fetch_add(1, Ordering::SeqCst);
    sleep.notify_work();
}

/// A task submitted while the only worker is about to sleep is always run.
#[test]
fn submit_while_worker_goes_to_sleep() {
    loom::model(|| {
        let sleep = Arc::new(Sleep::new());
        let queue = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let w = {
            let (sleep, queue, done, stop) =
                (sleep.clone(), queue.clone(), done.clone(), stop.clone());
            thread::spawn(move || worker(&sleep, &queue, &done, &stop, 1))
        };
        produce(&sleep, &queue);
        w.join().unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 1);
        assert_eq!(sleep.counts(), (0, 0));
    });
}

/// Two producers on two threads and one worker: both tasks run.
#[test]
fn two_producers_one_worker() {
    loom::model(|| {
        let sleep = Arc::new(Sleep::new());
        let queue = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let w = {
            let (sleep, queue, done, stop) =
                (sleep.clone(), queue.clone(), done.clone(), stop.clone());
            thread::spawn(move || worker(&sleep, &queue, &done, &stop, 2))
        };
        let p = {
            let (sleep, queue) = (sleep.clone(), queue.clone());
            thread::spawn(move || produce(&sleep, &queue))
        };
        produce(&sleep, &queue);
        p.join().unwrap();
        w.join().unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 2);
    });
}

/// Two workers, one task: it runs exactly once even though a producer may
/// skip the wake-up because the other worker is searching; then terminate
/// releases the worker that did not get it.
#[test]
fn two_workers_one_task_then_terminate() {
    loom::model(|| {
        let sleep = Arc::new(Sleep::new());
        let queue = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (sleep, queue, done, stop) =
                    (sleep.clone(), queue.clone(), done.clone(), stop.clone());
                thread::spawn(move || worker(&sleep, &queue, &done, &stop, usize::MAX))
            })
            .collect();
        produce(&sleep, &queue);
        // Terminate right away: workers still take every visible task
        // before they honour `stop`, so the task runs exactly once.
        stop.store(true, Ordering::SeqCst);
        sleep.terminate();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 1);
        assert_eq!(queue.load(Ordering::SeqCst), 0);
    });
}

/// Two workers that each run one task and then exit, two tasks pushed one
/// at a time, and no `terminate` to wake a worker that slept through its
/// task: every wake-up must be delivered by the protocol itself (a
/// producer's `notify_work`, or the last searcher's hand-on of the work it
/// leaves). A lost wake-up leaves a worker asleep with a task queued, which
/// loom reports as a deadlock.
#[test]
fn two_workers_two_tasks_no_terminate() {
    loom::model(|| {
        let sleep = Arc::new(Sleep::new());
        let queue = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (sleep, queue, done, stop) =
                    (sleep.clone(), queue.clone(), done.clone(), stop.clone());
                thread::spawn(move || worker(&sleep, &queue, &done, &stop, 1))
            })
            .collect();
        produce(&sleep, &queue);
        produce(&sleep, &queue);
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 2);
        assert_eq!(queue.load(Ordering::SeqCst), 0);
        assert_eq!(sleep.counts(), (0, 0));
    });
}
