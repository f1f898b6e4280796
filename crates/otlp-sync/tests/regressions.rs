//! Regression tests for the otlp-sync defects of issue 14 (items 13-18).
//!
//! Tests that deadlocked before their fix run the scenario on a helper
//! thread and wait for it with a generous bound, so a regression fails the
//! test instead of hanging the suite.
#![cfg(feature = "async")]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Wake, Waker};
use std::time::Duration;

use otlp_sync::{
    AcquireError, Barrier, ConfigCell, InstrumentedMutex, InstrumentedRwLock, Lifecycle,
    MAX_PERMITS, OwnedPermit, Semaphore, State,
};

/// Long enough for any healthy run (also under Miri), short enough that a
/// deadlocked one fails in reasonable time.
const HANG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(20);

/// Runs `f` on its own thread; fails the test if it has not returned within
/// [`HANG`] (a deadlock would leave the thread blocked for ever).
fn without_deadlock<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(HANG) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: deadlocked"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

fn wait_for_waiters(sem: &Semaphore, n: usize) {
    while sem.waiters() < n {
        std::thread::yield_now();
    }
}

fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

fn rounds(n: usize) -> usize {
    if cfg!(miri) { (n / 200).max(3) } else { n }
}

// ---- wakers that run user code ----------------------------------------------

/// A waker that runs a closure on its last drop (std's `Wake`).
struct OnDrop(Mutex<Option<Box<dyn FnOnce() + Send>>>);

impl Wake for OnDrop {
    fn wake(self: Arc<Self>) {}
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(f) = self.0.lock().unwrap().take() {
            f();
        }
    }
}

fn waker_dropping(f: impl FnOnce() + Send + 'static) -> Waker {
    Waker::from(Arc::new(OnDrop(Mutex::new(Some(Box::new(f))))))
}

/// A waker whose clone, wake, wake-by-ref and drop all call `hook` (which
/// takes the primitive's lock in these tests), counting the calls.
struct Hooked {
    hook: Box<dyn Fn() + Send + Sync>,
    calls: AtomicUsize,
}

impl Hooked {
    fn call(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        (self.hook)();
    }
}

const HOOKED: RawWakerVTable =
    RawWakerVTable::new(hooked_clone, hooked_wake, hooked_wake_by_ref, hooked_drop);

unsafe fn hooked_clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` is an `Arc<Hooked>` pointer from `Arc::into_raw`
    // (`hooked_waker`), kept alive by the waker being cloned.
    unsafe {
        (*data.cast::<Hooked>()).call();
        Arc::increment_strong_count(data.cast::<Hooked>());
    }
    RawWaker::new(data, &HOOKED)
}

unsafe fn hooked_wake(data: *const ()) {
    // SAFETY: as in `hooked_clone`; `wake` consumes this waker's reference.
    unsafe {
        hooked_wake_by_ref(data);
        hooked_drop(data);
    }
}

unsafe fn hooked_wake_by_ref(data: *const ()) {
    // SAFETY: as in `hooked_clone`.
    unsafe { (*data.cast::<Hooked>()).call() }
}

unsafe fn hooked_drop(data: *const ()) {
    // SAFETY: as in `hooked_clone`; this waker's reference is given up here,
    // after the hook ran on the still-live `Hooked`.
    unsafe {
        (*data.cast::<Hooked>()).call();
        Arc::decrement_strong_count(data.cast::<Hooked>());
    }
}

/// A waker calling `hook` from every vtable entry, and its call counter.
fn hooked_waker(hook: impl Fn() + Send + Sync + 'static) -> (Waker, Arc<Hooked>) {
    let hooked = Arc::new(Hooked {
        hook: Box::new(hook),
        calls: AtomicUsize::new(0),
    });
    let data = Arc::into_raw(Arc::clone(&hooked)).cast::<()>();
    // SAFETY: the vtable's functions treat `data` as the `Arc<Hooked>`
    // reference created just above, and uphold the `RawWaker` contract
    // (clone adds a reference, wake and drop give one up).
    let waker = unsafe { Waker::from_raw(RawWaker::new(data, &HOOKED)) };
    (waker, hooked)
}

// ---- item 13: ConfigCell never reports a change from v to v -----------------

#[test]
fn config_change_is_never_reported_from_a_version_to_itself() {
    let cell = Arc::new(ConfigCell::new(0_u64));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (cell, stop) = (Arc::clone(&cell), Arc::clone(&stop));
        std::thread::spawn(move || {
            for v in 1..=rounds(20_000) as u64 {
                assert_eq!(cell.store(v), v);
            }
            stop.store(true, Ordering::SeqCst);
        })
    };
    let mut checks = 0_usize;
    while !stop.load(Ordering::SeqCst) || checks == 0 {
        let seen = cell.snapshot();
        assert_eq!(*seen.config, seen.version, "snapshot is one node");
        assert!(cell.version() >= seen.version, "version went back");
        if let Ok(next) = cell.wait_changed_since(seen.version, Duration::ZERO) {
            assert!(
                next.version > seen.version,
                "{} -> {}",
                seen.version,
                next.version
            );
        }
        let mut changed = Box::pin(cell.changed_since(seen.version));
        if let Poll::Ready(next) = poll_once(changed.as_mut(), Waker::noop()) {
            assert!(
                next.version > seen.version,
                "{} -> {}",
                seen.version,
                next.version
            );
        }
        checks += 1;
    }
    writer.join().unwrap();
    // Quiescent: the latest version is not a change from itself.
    let last = cell.snapshot();
    assert_eq!(cell.version(), last.version);
    assert!(cell.wait_changed_since(last.version, SHORT).is_err());
    let mut changed = Box::pin(cell.changed());
    assert!(poll_once(changed.as_mut(), Waker::noop()).is_pending());
}

// ---- item 14: requests above the total wait for add_permits -----------------

#[test]
fn zero_permit_semaphore_is_a_gate_opened_by_add_permits() {
    let sem = Arc::new(Semaphore::new(0).unwrap());
    let s = Arc::clone(&sem);
    let waiter = std::thread::spawn(move || s.acquire_owned_blocking(1).map(|p| p.num_permits()));
    let s = Arc::clone(&sem);
    let timed =
        std::thread::spawn(move || s.acquire_owned_timeout(1, HANG).map(|p| p.num_permits()));
    wait_for_waiters(&sem, 2);
    sem.add_permits(1).unwrap();
    sem.add_permits(1).unwrap();
    assert_eq!(waiter.join().unwrap(), Ok(1));
    assert_eq!(timed.join().unwrap(), Ok(1));
    assert_eq!((sem.available(), sem.total(), sem.waiters()), (2, 2, 0));
}

#[test]
fn request_above_total_times_out_instead_of_failing() {
    let sem = Semaphore::new(0).unwrap();
    assert_eq!(
        sem.acquire_timeout(1, SHORT).unwrap_err(),
        AcquireError::Timeout
    );
    assert_eq!(sem.try_acquire(1).unwrap_err(), AcquireError::WouldBlock);
    let sem = Semaphore::new(3).unwrap();
    assert_eq!(
        sem.acquire_timeout(4, SHORT).unwrap_err(),
        AcquireError::Timeout
    );
    assert_eq!((sem.available(), sem.waiters()), (3, 0));
}

#[test]
fn async_acquire_above_total_waits_for_add_permits() {
    let sem = Semaphore::new(0).unwrap();
    let mut fut = Box::pin(sem.acquire(2));
    assert!(poll_once(fut.as_mut(), Waker::noop()).is_pending());
    sem.add_permits(1).unwrap();
    assert!(poll_once(fut.as_mut(), Waker::noop()).is_pending());
    assert_eq!(sem.available(), 0, "the permit is assigned to the waiter");
    sem.add_permits(1).unwrap();
    match poll_once(fut.as_mut(), Waker::noop()) {
        Poll::Ready(Ok(permit)) => assert_eq!(permit.num_permits(), 2),
        other => panic!("expected 2 permits, got {other:?}"),
    }
    drop(fut);
    assert_eq!((sem.available(), sem.waiters()), (2, 0));
}

#[test]
fn only_requests_above_max_permits_are_too_large() {
    let sem = Arc::new(Semaphore::new(0).unwrap());
    let too_large = AcquireError::TooLarge {
        requested: MAX_PERMITS + 1,
        max: MAX_PERMITS,
    };
    assert_eq!(sem.try_acquire(MAX_PERMITS + 1).unwrap_err(), too_large);
    assert_eq!(
        sem.acquire_timeout(usize::MAX, HANG).unwrap_err(),
        AcquireError::TooLarge {
            requested: usize::MAX,
            max: MAX_PERMITS
        }
    );
    let mut fut = Box::pin(sem.acquire_owned(MAX_PERMITS + 1));
    assert_eq!(
        poll_once(fut.as_mut(), Waker::noop()).map(|r| r.map(drop)),
        Poll::Ready(Err(too_large))
    );
    // MAX_PERMITS itself can be met, so it waits.
    let mut fut = Box::pin(sem.acquire(MAX_PERMITS));
    assert!(poll_once(fut.as_mut(), Waker::noop()).is_pending());
    drop(fut);
    assert_eq!(sem.waiters(), 0);
}

// ---- item 15: any sampling rate is accepted ---------------------------------

#[test]
fn instrumented_locks_accept_any_sampling_rate() {
    for every in [u64::MAX, (1 << 63) + 1, 1 << 63] {
        let m = InstrumentedMutex::with_sampling(0_u32, every);
        for _ in 0..3 {
            *m.lock() += 1;
        }
        let s = m.stats();
        assert_eq!((s.acquisitions, s.contended, s.hold_samples), (3, 0, 0));
        assert_eq!(m.into_inner(), 3);

        let l = InstrumentedRwLock::with_sampling(0_u32, every);
        *l.write() += 1;
        assert_eq!(*l.read(), 1);
        let s = l.stats();
        assert_eq!((s.read.acquisitions, s.write.acquisitions), (1, 1));
        assert_eq!((s.read.hold_samples, s.write.hold_samples), (0, 0));
    }
    // The other end still times every hold.
    for every in [0, 1] {
        let m = InstrumentedMutex::with_sampling((), every);
        drop(m.lock());
        drop(m.lock());
        assert_eq!(m.stats().hold_samples, 2);
    }
}

// ---- item 16: dropping a DeadlockChecker returns promptly -------------------

#[cfg(feature = "deadlock-detection")]
#[test]
fn dropping_a_deadlock_checker_does_not_wait_an_interval() {
    use otlp_sync::deadlock::DeadlockChecker;
    // With an hour-long interval, a drop that slept through its stop request
    // would hold the helper thread past the bound.
    without_deadlock("DeadlockChecker drop", || {
        for round in 0..20 {
            let checker = DeadlockChecker::spawn(Duration::from_secs(3600), |_| {}).unwrap();
            if round % 2 == 0 {
                drop(checker);
            } else {
                // Let the thread reach its wait first, sometimes.
                std::thread::yield_now();
                checker.stop();
            }
        }
    });
}

// ---- item 17: no waker code runs under a primitive's lock -------------------

/// tokio's `release_permits_at_drop`: re-polling a queued acquire with a new
/// waker drops the old one, whose drop releases a permit.
#[test]
fn semaphore_repoll_drops_old_waker_outside_the_lock() {
    let sem = without_deadlock("re-poll", || {
        let sem = Arc::new(Semaphore::new(1).unwrap());
        let mut fut = Box::pin(sem.acquire(1));
        for _ in 0..2 {
            // The first waker gets the only permit, the second none.
            let permit = sem.try_acquire_owned(1).ok();
            let waker = waker_dropping(move || drop(permit));
            assert!(poll_once(fut.as_mut(), &waker).is_pending());
        }
        // The permit released by the dropped waker was granted to us.
        match poll_once(fut.as_mut(), Waker::noop()) {
            Poll::Ready(Ok(permit)) => drop(permit),
            other => panic!("expected the permit, got {other:?}"),
        }
        drop(fut);
        sem
    });
    assert_eq!((sem.available(), sem.waiters()), (1, 0));
}

#[test]
fn semaphore_cancel_drops_waker_outside_the_lock() {
    let sem = without_deadlock("cancel", || {
        let sem = Arc::new(Semaphore::new(1).unwrap());
        let permit: OwnedPermit = sem.try_acquire_owned(1).unwrap();
        let waker = waker_dropping(move || drop(permit));
        let mut fut = Box::pin(sem.acquire(1));
        assert!(poll_once(fut.as_mut(), &waker).is_pending());
        // The queued future now holds the only reference to the waker, and
        // the waker holds the only permit.
        drop(waker);
        drop(fut);
        sem
    });
    assert_eq!((sem.available(), sem.waiters()), (1, 0));
}

#[test]
fn semaphore_waker_clone_wake_and_drop_run_outside_the_lock() {
    let sem = Arc::new(Semaphore::new(1).unwrap());
    let hooked = without_deadlock("hooked waker", {
        let sem = Arc::clone(&sem);
        move || {
            let weak: Weak<Semaphore> = Arc::downgrade(&sem);
            let (waker, hooked) = hooked_waker(move || {
                // Takes the waiter lock.
                if let Some(sem) = weak.upgrade() {
                    let _ = sem.waiters();
                }
            });
            let held = sem.try_acquire(1).unwrap();
            let mut fut = Box::pin(sem.acquire(1));
            assert!(poll_once(fut.as_mut(), &waker).is_pending()); // clone
            let (other, _) = hooked_waker(|| {});
            assert!(poll_once(fut.as_mut(), &other).is_pending()); // drop
            assert!(poll_once(fut.as_mut(), &waker).is_pending()); // clone
            drop(held); // wake
            assert!(poll_once(fut.as_mut(), &waker).is_ready());
            drop(fut);
            // A second waiter that is cancelled drops its waker.
            let held = sem.try_acquire(1).unwrap();
            let mut fut = Box::pin(sem.acquire(1));
            assert!(poll_once(fut.as_mut(), &waker).is_pending());
            drop(fut);
            drop(held);
            hooked
        }
    });
    assert!(hooked.calls.load(Ordering::SeqCst) >= 5);
    assert_eq!((sem.available(), sem.waiters()), (1, 0));
}

#[test]
fn lifecycle_waker_drop_may_move_the_lifecycle() {
    let life = without_deadlock("lifecycle", || {
        let life = Arc::new(Lifecycle::new());
        // A re-poll with another waker drops the registered one, which
        // starts the lifecycle, which notifies the waiters (the same lock).
        let mut fut = Box::pin(life.wait(State::Running));
        let l = Arc::clone(&life);
        let first = waker_dropping(move || l.begin_start().unwrap());
        assert!(poll_once(fut.as_mut(), &first).is_pending());
        drop(first);
        let second = waker_dropping(|| {});
        assert!(poll_once(fut.as_mut(), &second).is_pending());
        assert_eq!(life.state(), State::Starting);
        drop(fut);
        // Dropping a waiting future removes (and drops) its waker, which
        // moves the lifecycle on.
        let mut fut = Box::pin(life.wait(State::Stopped));
        let l = Arc::clone(&life);
        let third = waker_dropping(move || l.mark_running().unwrap());
        assert!(poll_once(fut.as_mut(), &third).is_pending());
        drop(third);
        drop(fut);
        life
    });
    assert_eq!(life.state(), State::Running);
}

#[test]
fn config_watcher_waker_may_store_and_count() {
    let cell = without_deadlock("config", || {
        let cell = Arc::new(ConfigCell::new(0_u32));
        let mut fut = Box::pin(cell.changed());
        let c = Arc::clone(&cell);
        let first = waker_dropping(move || {
            c.store(1);
        });
        assert!(poll_once(fut.as_mut(), &first).is_pending());
        drop(first);
        let weak = Arc::downgrade(&cell);
        let (hooked, calls) = hooked_waker(move || {
            if let Some(cell) = weak.upgrade() {
                let _ = cell.watchers(); // the watcher lock
            }
        });
        // Drops `first` (which stores, and so notifies) and clones `hooked`.
        let _ = poll_once(fut.as_mut(), &hooked);
        match poll_once(fut.as_mut(), &hooked) {
            Poll::Ready(snap) => assert_eq!(snap.version, 1),
            Poll::Pending => panic!("the store in the waker's drop was missed"),
        }
        drop(fut);
        assert!(calls.calls.load(Ordering::SeqCst) >= 2);
        cell
    });
    assert_eq!((*cell.load(), cell.watchers()), (1, 0));
}

#[test]
fn barrier_waker_drop_may_read_the_barrier() {
    let barrier = without_deadlock("barrier", || {
        let barrier = Arc::new(Barrier::new(2).unwrap());
        let weak = Arc::downgrade(&barrier);
        let (hooked, calls) = hooked_waker(move || {
            if let Some(barrier) = weak.upgrade() {
                let _ = barrier.arrived(); // the barrier's lock
            }
        });
        let mut fut = Box::pin(barrier.wait());
        assert!(poll_once(fut.as_mut(), &hooked).is_pending()); // arrive: clone
        let b = Arc::clone(&barrier);
        let other = waker_dropping(move || assert_eq!(b.arrived(), 1));
        assert!(poll_once(fut.as_mut(), &other).is_pending()); // drops `hooked`'s clone
        drop(other);
        assert!(poll_once(fut.as_mut(), &hooked).is_pending()); // drops `other`
        drop(fut); // withdraw: drops the registered clone
        assert!(calls.calls.load(Ordering::SeqCst) >= 3);
        barrier
    });
    assert_eq!(barrier.arrived(), 0);
}

// ---- item 18: the smaller semaphore defects ---------------------------------

#[test]
fn acquire_polled_after_completion_says_so() {
    let sem = Arc::new(Semaphore::new(1).unwrap());
    let mut fut = Box::pin(sem.acquire(1));
    let permit = match poll_once(fut.as_mut(), Waker::noop()) {
        Poll::Ready(Ok(permit)) => permit,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        poll_once(fut.as_mut(), Waker::noop()).map(|r| r.map(drop)),
        Poll::Ready(Err(AcquireError::PolledAfterCompletion))
    );
    assert!(!sem.is_closed());
    assert_eq!(sem.available(), 0, "the first permit is still held");
    drop(permit);
    drop(fut);
    assert_eq!(sem.available(), 1);

    // Owned, after a queued wait.
    let held = sem.try_acquire_owned(1).unwrap();
    let mut fut = Box::pin(sem.acquire_owned(1));
    assert!(poll_once(fut.as_mut(), Waker::noop()).is_pending());
    drop(held);
    let permit = match poll_once(fut.as_mut(), Waker::noop()) {
        Poll::Ready(Ok(permit)) => permit,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        poll_once(fut.as_mut(), Waker::noop()).map(|r| r.map(drop)),
        Poll::Ready(Err(AcquireError::PolledAfterCompletion))
    );
    drop(permit);
    drop(fut);
    assert_eq!((sem.available(), sem.waiters()), (1, 0));

    // After an error, too.
    let mut fut = Box::pin(sem.acquire(MAX_PERMITS + 1));
    assert!(matches!(
        poll_once(fut.as_mut(), Waker::noop()),
        Poll::Ready(Err(AcquireError::TooLarge { .. }))
    ));
    assert!(matches!(
        poll_once(fut.as_mut(), Waker::noop()),
        Poll::Ready(Err(AcquireError::PolledAfterCompletion))
    ));
}

#[test]
fn closed_wins_over_too_large() {
    let sem = Arc::new(Semaphore::new(2).unwrap());
    sem.close();
    for n in [3, MAX_PERMITS + 1, usize::MAX] {
        assert_eq!(sem.try_acquire(n).unwrap_err(), AcquireError::Closed);
        assert_eq!(sem.try_acquire_owned(n).unwrap_err(), AcquireError::Closed);
        assert_eq!(sem.acquire_blocking(n).unwrap_err(), AcquireError::Closed);
        assert_eq!(
            sem.acquire_timeout(n, Duration::ZERO).unwrap_err(),
            AcquireError::Closed
        );
        let mut fut = Box::pin(sem.acquire(n));
        assert!(matches!(
            poll_once(fut.as_mut(), Waker::noop()),
            Poll::Ready(Err(AcquireError::Closed))
        ));
    }
}

#[test]
fn zero_timeout_never_joins_the_queue() {
    let sem = Arc::new(Semaphore::new(2).unwrap());
    let _held = sem.try_acquire(1).unwrap();
    // One permit is free and nobody may legitimately queue, so a concurrent
    // try_acquire(1) must always succeed; a zero-timeout request for 2 that
    // joined the queue would take the free permit and make it fail.
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let (sem, stop) = (Arc::clone(&sem), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut probes = 0_usize;
            while !stop.load(Ordering::SeqCst) || probes == 0 {
                drop(sem.try_acquire(1).expect("the free permit was taken"));
                probes += 1;
            }
        })
    };
    for _ in 0..rounds(20_000) {
        assert_eq!(
            sem.acquire_timeout(2, Duration::ZERO).unwrap_err(),
            AcquireError::Timeout
        );
    }
    stop.store(true, Ordering::SeqCst);
    prober.join().unwrap();
    assert_eq!((sem.available(), sem.waiters()), (1, 0));
    // With enough permits it succeeds at once, like try_acquire.
    assert!(sem.acquire_timeout(1, Duration::ZERO).is_ok());
}
