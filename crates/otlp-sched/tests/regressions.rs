//! Regression tests for issue 14 item 5: a panic in a destructor run on a
//! worker must neither kill the worker (a one-worker pool would run nothing
//! again) nor go unreported; and for issue 15 item 4: `join`'s fast path
//! (this pool's worker only) and its popped-back `b`, taken out of its job
//! in place.
#![cfg(not(loom))]

use std::any::Any;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use otlp_sched::{Builder, TaskError, WorkStealingScheduler};

/// Long enough for any scheduling delay; only reached if a worker died.
const PATIENCE: Duration = Duration::from_secs(60);

/// A value whose `Drop` panics.
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

/// A panic payload whose `Drop` panics with a plain message.
struct PanickyPayload;

impl Drop for PanickyPayload {
    fn drop(&mut self) {
        panic!("payload drop");
    }
}

/// A panic payload whose `Drop` panics with another one of itself, forever.
struct EndlessPayload;

impl Drop for EndlessPayload {
    fn drop(&mut self) {
        std::panic::panic_any(EndlessPayload);
    }
}

fn describe(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if payload.is::<PanickyPayload>() {
        "PanickyPayload".to_owned()
    } else if payload.is::<EndlessPayload>() {
        "EndlessPayload".to_owned()
    } else {
        "?".to_owned()
    }
}

/// A one-worker pool whose panic handler logs every payload it sees.
fn logged_pool() -> (WorkStealingScheduler, Arc<Mutex<Vec<String>>>) {
    logged_builder(1)
}

fn logged_builder(workers: usize) -> (WorkStealingScheduler, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let pool = Builder::new()
        .workers(workers)
        .panic_handler(move |payload| log.lock().unwrap().push(describe(payload)))
        .build()
        .unwrap();
    (pool, seen)
}

/// Occupies the pool's only worker until the returned sender is used (or
/// dropped), so that what is submitted next is queued, not running.
fn block_worker(pool: &WorkStealingScheduler) -> Sender<()> {
    let (release, gate): (Sender<()>, Receiver<()>) = mpsc::channel();
    let (running, started) = mpsc::channel();
    pool.spawn(move || {
        running.send(()).unwrap();
        let _ = gate.recv_timeout(PATIENCE);
    })
    .ok()
    .unwrap();
    started.recv_timeout(PATIENCE).unwrap();
    release
}

/// The one worker still runs tasks (a bounded wait instead of a hang if
/// it died).
fn assert_worker_alive(pool: &WorkStealingScheduler) {
    let (tx, rx) = mpsc::channel();
    pool.spawn(move || tx.send(42).unwrap()).ok().unwrap();
    assert_eq!(rx.recv_timeout(PATIENCE), Ok(42), "the worker died");
}

fn panicked(pool: &WorkStealingScheduler) -> u64 {
    pool.stats().iter().map(|s| s.panicked).sum()
}

/// 5(a): the result of a `submit` task whose handle was dropped is dropped
/// on the worker; its panicking `Drop` is reported and the worker lives.
#[test]
fn dropped_result_with_panicking_drop_does_not_kill_the_worker() {
    let (pool, seen) = logged_pool();
    let release = block_worker(&pool);
    let handle = pool.submit(|| PanicOnDrop("result drop")).ok().unwrap();
    drop(handle);
    release.send(()).unwrap();
    assert_worker_alive(&pool);
    assert_eq!(*seen.lock().unwrap(), ["result drop"]);
    assert_eq!(panicked(&pool), 1);

    // With the handle alive the value is delivered, not dropped on the
    // worker: nothing panics there.
    let value = pool.submit(|| PanicOnDrop("caller drop")).ok().unwrap();
    let value = value.join().unwrap();
    std::mem::forget(value);
    assert_worker_alive(&pool);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

/// 5(b): a panic payload whose own `Drop` panics, after the handler saw
/// the task's panic: the second panic is reported too and the worker lives.
#[test]
fn panic_payload_with_panicking_drop_does_not_kill_the_worker() {
    let (pool, seen) = logged_pool();
    pool.spawn(|| std::panic::panic_any(PanickyPayload))
        .ok()
        .unwrap();
    assert_worker_alive(&pool);
    assert_eq!(*seen.lock().unwrap(), ["PanickyPayload", "payload drop"]);
    assert_eq!(panicked(&pool), 2);

    // A submit task whose handle is gone: the payload is dropped on the
    // worker as well.
    let release = block_worker(&pool);
    let handle = pool
        .submit(|| -> u8 { std::panic::panic_any(PanickyPayload) })
        .ok()
        .unwrap();
    drop(handle);
    release.send(()).unwrap();
    assert_worker_alive(&pool);
    assert_eq!(seen.lock().unwrap().len(), 4);

    // With the handle alive the payload goes to the caller.
    let err = pool
        .submit(|| -> u8 { std::panic::panic_any(PanickyPayload) })
        .ok()
        .unwrap()
        .join()
        .unwrap_err();
    match err {
        TaskError::Panicked(payload) => {
            assert!(payload.is::<PanickyPayload>());
            std::mem::forget(payload);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(seen.lock().unwrap().len(), 5);
}

/// 5(b), pathological: every payload's `Drop` panics with another such
/// payload. The chain is reported up to a bound, then the last payload is
/// leaked; the worker neither dies nor spins forever.
#[test]
fn endless_chain_of_panicking_payloads_is_bounded() {
    let (pool, seen) = logged_pool();
    pool.spawn(|| std::panic::panic_any(EndlessPayload))
        .ok()
        .unwrap();
    assert_worker_alive(&pool);
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().all(|s| s == "EndlessPayload"), "{seen:?}");
    assert_eq!(seen.len(), 17, "the task's panic and 16 from payload drops");
    assert_eq!(panicked(&pool), 17);
}

/// The same for a task that `shutdown_now` drops: its captured value's
/// panicking `Drop` is reported, and the drop is still counted.
#[test]
fn discarded_task_with_panicking_drop_is_reported() {
    let (pool, seen) = logged_pool();
    let pool = Arc::new(pool);
    let (running, started) = mpsc::channel();
    let p = Arc::clone(&pool);
    // Holds the only worker until `shutdown_now` has begun; the pause
    // after that lets it raise its discard flag (a few instructions after
    // closing) before the worker looks for the next job.
    pool.spawn(move || {
        running.send(()).unwrap();
        while !p.is_shut_down() {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(20));
    })
    .ok()
    .unwrap();
    started.recv_timeout(PATIENCE).unwrap();
    let guard = PanicOnDrop("discarded");
    pool.spawn(move || {
        let _keep = &guard;
        unreachable!("shutdown_now drops this task before it runs");
    })
    .ok()
    .unwrap();
    let dropped = pool.shutdown_now().unwrap();
    assert_eq!(dropped, 1);
    assert_eq!(*seen.lock().unwrap(), ["discarded"]);
    assert_eq!(panicked(&pool), 1);
}

/// Scope tasks: only the first panic is resumed; dropping a later one
/// whose payload panics in `Drop` must not leave the scope waiting forever
/// or kill the worker.
#[test]
fn second_scope_panic_with_panicking_payload_drop() {
    let (pool, seen) = logged_pool();
    let (done, finished) = mpsc::channel();
    let pool = Arc::new(pool);
    let p = Arc::clone(&pool);
    let caller = std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            p.scope(|s| {
                s.spawn(|_| std::panic::panic_any(PanickyPayload));
                s.spawn(|_| std::panic::panic_any(PanickyPayload));
            });
        }));
        done.send(()).unwrap();
        match outcome {
            Err(payload) => {
                assert!(payload.is::<PanickyPayload>());
                std::mem::forget(payload);
            }
            Ok(()) => panic!("the scope swallowed its tasks' panics"),
        }
    });
    finished
        .recv_timeout(PATIENCE)
        .expect("the scope never ended");
    caller.join().unwrap();
    assert_worker_alive(&pool);
    assert_eq!(*seen.lock().unwrap(), ["payload drop"]);
}

/// `join` with both sides panicking: the payload that is not resumed is
/// dropped before unwinding starts (a panicking drop during unwinding
/// aborts the process), and its `Drop`'s panic is reported.
#[test]
fn join_with_two_panics_and_a_panicking_payload_drop() {
    let (pool, seen) = logged_builder(2);
    let pool = Arc::new(pool);
    let p = Arc::clone(&pool);
    let err = pool
        .submit(move || {
            let (stolen, b_started) = mpsc::channel();
            p.join(
                move || -> u8 {
                    // Panic only once the other worker stole and ran `b`,
                    // so both sides panic.
                    b_started.recv_timeout(PATIENCE).unwrap();
                    std::panic::panic_any("left")
                },
                move || -> u8 {
                    stolen.send(()).unwrap();
                    std::panic::panic_any(PanickyPayload)
                },
            )
        })
        .ok()
        .unwrap()
        .join()
        .unwrap_err();
    assert_eq!(err.panic_message(), Some("left"), "{err:?}");
    assert_eq!(*seen.lock().unwrap(), ["payload drop", "left"]);
    assert_worker_alive(&pool);
}

/// 5(a) under the `monitor` feature: a task whose unwanted result panics
/// when dropped counts as failed, once, like a panicking task.
#[cfg(feature = "monitor")]
#[test]
fn dropped_result_panic_counts_as_a_failed_task() {
    let monitor = Arc::new(otlp_monitor::ConcurrencyMonitor::new());
    let pool = Builder::new()
        .workers(1)
        .monitor(Arc::clone(&monitor))
        .build()
        .unwrap();
    let release = block_worker(&pool);
    drop(pool.submit(|| PanicOnDrop("result drop")).ok().unwrap());
    release.send(()).unwrap();
    assert_worker_alive(&pool);
    pool.shutdown().unwrap();
    let s = monitor.get_stats();
    assert_eq!(
        (s.total_tasks, s.completed_tasks, s.failed_tasks),
        (3, 2, 1)
    );
    assert_eq!(s.in_flight, 0);
}

/// Waker code runs outside the task handle's lock. The old waker replaced
/// by a re-poll waits, in its `Drop`, for the task to complete; completing
/// takes the handle's lock, so dropping the old waker under that lock (as
/// the handle once did) deadlocks the worker and the poller.
#[test]
fn task_handle_drops_a_replaced_waker_outside_its_lock() {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Wake, Waker};

    /// Rings a channel when woken.
    struct Bell(Mutex<Sender<()>>);
    impl Wake for Bell {
        fn wake(self: Arc<Self>) {
            let _ = self.0.lock().unwrap().send(());
        }
    }

    /// When dropped, lets the worker run the task and waits for the
    /// completion's wake-up.
    struct WaitsForCompletion {
        release: Mutex<Option<Sender<()>>>,
        woken: Mutex<Receiver<()>>,
        completed_while_dropping: Arc<AtomicBool>,
    }
    impl Wake for WaitsForCompletion {
        fn wake(self: Arc<Self>) {}
    }
    impl Drop for WaitsForCompletion {
        fn drop(&mut self) {
            if let Some(release) = self.release.lock().unwrap().take() {
                release.send(()).unwrap();
            }
            let woken = self
                .woken
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(10));
            self.completed_while_dropping
                .store(woken.is_ok(), Ordering::SeqCst);
        }
    }

    let pool = Builder::new().workers(1).build().unwrap();
    let release = block_worker(&pool);
    let mut handle = pool.submit(|| 7u32).ok().unwrap();
    let (bell_tx, bell_rx) = mpsc::channel();
    let completed = Arc::new(AtomicBool::new(false));
    let first = Waker::from(Arc::new(WaitsForCompletion {
        release: Mutex::new(Some(release)),
        woken: Mutex::new(bell_rx),
        completed_while_dropping: Arc::clone(&completed),
    }));
    let second = Waker::from(Arc::new(Bell(Mutex::new(bell_tx))));
    assert!(
        Pin::new(&mut handle)
            .poll(&mut Context::from_waker(&first))
            .is_pending()
    );
    // The handle now holds the only other reference to the first waker.
    drop(first);
    assert!(
        Pin::new(&mut handle)
            .poll(&mut Context::from_waker(&second))
            .is_pending()
    );
    assert!(
        completed.load(Ordering::SeqCst),
        "the task could not complete while the replaced waker was dropped"
    );
    assert_eq!(handle.join().unwrap(), 7);
}

/// Issue 15 item 4: `join` takes its fast path only on a worker of *this*
/// pool. Called from a worker of another pool, or from a plain thread, both
/// halves still run on this pool's workers.
#[test]
fn join_from_another_pools_worker_runs_on_this_pool() {
    let named = |prefix: &'static str| {
        Builder::new()
            .workers(2)
            .thread_name(move |i| format!("{prefix}-{i}"))
            .build()
            .unwrap()
    };
    let (a, b) = (named("pool-a"), Arc::new(named("pool-b")));
    let here = || std::thread::current().name().unwrap_or("").to_owned();
    let on_b = Arc::clone(&b);
    let (left, right) = a
        .submit(move || on_b.join(here, here))
        .ok()
        .unwrap()
        .join()
        .unwrap();
    assert!(left.starts_with("pool-b-"), "{left}");
    assert!(right.starts_with("pool-b-"), "{right}");
    let (left, right) = b.join(here, here);
    assert!(left.starts_with("pool-b-") && right.starts_with("pool-b-"));
    let nested = b.join(|| b.join(here, here), here);
    assert!(nested.0.0.starts_with("pool-b-") && nested.1.starts_with("pool-b-"));
}

/// Counts how often a value was dropped.
struct CountDrops(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for CountDrops {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Issue 15 item 4: a `b` popped back by its owner is taken out of its
/// stack job in place and run; what it captured is dropped exactly once,
/// whether `b` ran or `a` panicked first (then `b` never runs).
#[test]
fn popped_back_join_half_drops_its_captures_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // One worker: nobody can steal `b`, so it is always popped back.
    let (pool, seen) = logged_builder(1);
    let pool = Arc::new(pool);
    let drops = Arc::new(AtomicUsize::new(0));
    let (p, d) = (Arc::clone(&pool), Arc::clone(&drops));
    let sum = pool
        .submit(move || {
            let (x, y) = (CountDrops(Arc::clone(&d)), CountDrops(Arc::clone(&d)));
            let (l, r) = p.join(
                move || {
                    drop(x);
                    1
                },
                move || {
                    let _keep = y;
                    2
                },
            );
            l + r
        })
        .ok()
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(sum, 3);
    assert_eq!(drops.load(Ordering::SeqCst), 2);

    let (p, d) = (Arc::clone(&pool), Arc::clone(&drops));
    let ran_b = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&ran_b);
    let err = pool
        .submit(move || {
            let y = CountDrops(d);
            p.join(
                || -> u8 { std::panic::panic_any("a first") },
                move || {
                    let _keep = y;
                    r.fetch_add(1, Ordering::SeqCst);
                    0
                },
            )
        })
        .ok()
        .unwrap()
        .join()
        .unwrap_err();
    assert_eq!(err.panic_message(), Some("a first"), "{err:?}");
    assert_eq!(
        ran_b.load(Ordering::SeqCst),
        0,
        "b must not run after a panicked"
    );
    assert_eq!(drops.load(Ordering::SeqCst), 3, "b's capture dropped once");
    assert_eq!(*seen.lock().unwrap(), ["a first"]);
    assert_worker_alive(&pool);
}
