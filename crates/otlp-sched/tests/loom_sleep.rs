//! Loom models of the park/unpark handshake in `src/sleep.rs`.
//!
//! The "queue" is an atomic count of pending tasks, so the models check the
//! protocol itself, without crossbeam-deque. A lost wake-up shows up as a
//! deadlock (every thread blocked), which loom reports.
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

/// One worker loop as the pool runs it: look, search, sleep; exit after
/// `want` tasks or on terminate once the queue is empty.
fn worker(sleep: &Sleep, queue: &AtomicUsize, done: &AtomicUsize, stop: &AtomicBool, want: usize) {
    let mut ran = 0;
    loop {
        if ran == want {
            return;
        }
        if take(queue) {
            ran += 1;
            done.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        sleep.start_searching();
        let found = loop {
            // Read `stop` before looking: every task pushed before `stop`
            // was set is then visible to the look.
            let stopping = stop.load(Ordering::SeqCst);
            if take(queue) {
                break true;
            }
            if stopping {
                break false;
            }
            let wake =
                sleep.sleep(|| queue.load(Ordering::SeqCst) > 0 || stop.load(Ordering::SeqCst));
            assert!(matches!(
                wake,
                Wake::Woken | Wake::Cancelled | Wake::Terminated
            ));
        };
        let last = sleep.stop_searching();
        if !found {
            return;
        }
        if last && queue.load(Ordering::SeqCst) > 0 {
            sleep.notify_work();
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
