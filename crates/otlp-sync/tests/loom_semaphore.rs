//! Loom models of the semaphore: acquire/release, close with a waiter, and
//! a cancelled async acquire that must pass its wake-up on, a re-poll with a
//! new waker (cloned with the lock dropped, then re-checked) racing the
//! grant, and a `new(0)` gate opened by `add_permits`. The blocking
//! models exercise the spin-then-park hand-off (`SpinParker`: the waker
//! unparks only a waiter that announced `PARKED`), including a parker reused
//! by a second wait on the same thread. Two models guard a
//! `loom::cell::UnsafeCell` with permits, so a hand-over that does not
//! order one holder's accesses before the next holder's fails them.
#![cfg(all(loom, feature = "async"))]

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Waker};

use loom::cell::UnsafeCell;
use loom::thread;
use otlp_sync::{AcquireError, Semaphore};

/// Data guarded by a permit: a `loom::cell::UnsafeCell` that each holder
/// of the only permit reads and writes. The permit's hand-over (release
/// CAS, fast-acquire CAS, or the queue under its lock) must order one
/// holder's accesses before the next one's; loom reports the accesses as a
/// race otherwise (counting holders in a `SeqCst` atomic would hide that).
#[test]
fn mutual_exclusion_and_conservation() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(1).unwrap());
        let data = Arc::new(UnsafeCell::new(0_usize));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (sem, data) = (Arc::clone(&sem), Arc::clone(&data));
                thread::spawn(move || {
                    let permit = sem.acquire_blocking(1).unwrap();
                    // SAFETY: the only permit is held; loom checks the claim.
                    data.with_mut(|v| unsafe { *v += 1 });
                    drop(permit);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        // SAFETY: both threads are joined.
        assert_eq!(data.with(|v| unsafe { *v }), 2);
        assert_eq!(sem.available(), 1);
        assert_eq!(sem.waiters(), 0);
    });
}

/// `acquire_many` and `split`: a writer takes both permits (exclusive),
/// writes the guarded cell, splits its permit in two and drops the halves
/// one after the other; a reader needs one permit to read. The reader's
/// read must be ordered after the write by whichever half it got.
#[test]
fn split_permits_guard_data_like_a_rwlock() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(2).unwrap());
        let data = Arc::new(UnsafeCell::new(0_usize));
        let writer = {
            let (sem, data) = (Arc::clone(&sem), Arc::clone(&data));
            thread::spawn(move || {
                let mut both = sem.acquire_owned_blocking(2).unwrap();
                // SAFETY: both permits are held: no reader holds one.
                data.with_mut(|v| unsafe { *v = 7 });
                let half = both.split(1).unwrap();
                assert_eq!((both.num_permits(), half.num_permits()), (1, 1));
                drop(half);
                drop(both);
            })
        };
        let reader = {
            let (sem, data) = (Arc::clone(&sem), Arc::clone(&data));
            thread::spawn(move || {
                let permit = sem.acquire_owned_blocking(1).unwrap();
                // SAFETY: a permit is held, so the writer does not hold both.
                let seen = data.with(|v| unsafe { *v });
                drop(permit);
                seen
            })
        };
        writer.join().unwrap();
        let seen = reader.join().unwrap();
        assert!(seen == 0 || seen == 7, "read {seen}");
        assert_eq!(sem.available(), 2);
        assert_eq!(sem.waiters(), 0);
    });
}

#[test]
fn repeated_blocking_handoffs_reuse_the_parker() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(1).unwrap());
        let held = sem.try_acquire_owned(1).unwrap();
        let s = Arc::clone(&sem);
        // Two waits in a row on one thread: the second may start with the
        // first one's notification still set, and must still be woken.
        let waiter = thread::spawn(move || {
            for _ in 0..2 {
                drop(s.acquire_blocking(1).unwrap());
            }
        });
        drop(held);
        drop(sem.acquire_blocking(1).unwrap());
        waiter.join().unwrap();
        assert_eq!(sem.available(), 1);
        assert_eq!(sem.waiters(), 0);
    });
}

#[test]
fn weighted_waiter_collects_partial_releases() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(2).unwrap());
        let a = sem.try_acquire_owned(1).unwrap();
        let b = sem.try_acquire_owned(1).unwrap();
        let s = Arc::clone(&sem);
        let waiter = thread::spawn(move || s.acquire_owned_blocking(2).map(|p| p.num_permits()));
        let releaser = thread::spawn(move || drop(a));
        drop(b);
        releaser.join().unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(2));
        assert_eq!(sem.available(), 2);
    });
}

#[test]
fn close_races_waiter_and_release() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(1).unwrap());
        let held = sem.try_acquire_owned(1).unwrap();
        let s = Arc::clone(&sem);
        let waiter = thread::spawn(move || s.acquire_owned_blocking(1).map(drop));
        let s = Arc::clone(&sem);
        let closer = thread::spawn(move || s.close());
        drop(held);
        closer.join().unwrap();
        let result = waiter.join().unwrap();
        assert!(matches!(result, Ok(()) | Err(AcquireError::Closed)));
        // Whatever happened, the permit is back and nobody is queued.
        assert_eq!(sem.available(), 1);
        assert_eq!(sem.waiters(), 0);
        assert!(sem.is_closed());
    });
}

#[test]
fn cancelled_async_acquire_passes_wakeup_on() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(1).unwrap());
        let held = sem.try_acquire_owned(1).unwrap();
        // A task polls once (queues), then is cancelled.
        let s = Arc::clone(&sem);
        let cancelled = thread::spawn(move || {
            let mut fut = Box::pin(s.acquire(1));
            let mut cx = Context::from_waker(Waker::noop());
            let first = fut.as_mut().poll(&mut cx).is_ready();
            drop(fut);
            first
        });
        // Another task waits for real; it must be woken whatever the order.
        let s = Arc::clone(&sem);
        let patient =
            thread::spawn(move || loom::future::block_on(s.acquire(1)).map(|p| p.num_permits()));
        drop(held);
        let _ = cancelled.join().unwrap();
        assert_eq!(patient.join().unwrap(), Ok(1));
        assert_eq!(sem.available(), 1);
        assert_eq!(sem.waiters(), 0);
    });
}

#[test]
fn repoll_with_new_waker_races_the_grant() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(1).unwrap());
        let held = sem.try_acquire_owned(1).unwrap();
        let s = Arc::clone(&sem);
        let task = thread::spawn(move || {
            let mut fut = Box::pin(s.acquire(1));
            let mut cx = Context::from_waker(Waker::noop());
            if let std::task::Poll::Ready(result) = fut.as_mut().poll(&mut cx) {
                return result.map(|p| p.num_permits());
            }
            // `block_on` polls with its own waker: the registered one is
            // replaced (lock dropped to clone, state looked at again), while
            // the release below may grant the permit at any point.
            loom::future::block_on(fut).map(|p| p.num_permits())
        });
        drop(held);
        assert_eq!(task.join().unwrap(), Ok(1));
        assert_eq!(sem.available(), 1);
        assert_eq!(sem.waiters(), 0);
    });
}

#[test]
fn empty_semaphore_is_a_gate_opened_by_add_permits() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(0).unwrap());
        let s = Arc::clone(&sem);
        let blocking = thread::spawn(move || s.acquire_owned_blocking(1).map(|p| p.num_permits()));
        let s = Arc::clone(&sem);
        let task =
            thread::spawn(move || loom::future::block_on(s.acquire(1)).map(|p| p.num_permits()));
        sem.add_permits(1).unwrap();
        sem.add_permits(1).unwrap();
        assert_eq!(blocking.join().unwrap(), Ok(1));
        assert_eq!(task.join().unwrap(), Ok(1));
        assert_eq!((sem.available(), sem.total(), sem.waiters()), (2, 2, 0));
    });
}

/// The permits a release hands to the queue and the ones left over: the
/// holder of both permits writes the guarded cell and releases them while
/// a waiter for one may be queued; the queue gets one (under the lock) and
/// the other goes back to the word (`finish_locked`), where a third thread
/// may take it on the fast path. Both readers must see the write.
#[test]
fn leftover_permits_after_a_queued_grant_guard_data() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(2).unwrap());
        let data = Arc::new(UnsafeCell::new(0_usize));
        let both = sem.try_acquire_owned(2).unwrap();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (sem, data) = (Arc::clone(&sem), Arc::clone(&data));
                thread::spawn(move || {
                    let permit = sem.acquire_owned_blocking(1).unwrap();
                    // SAFETY: a permit is held, so nobody holds both.
                    let seen = data.with(|v| unsafe { *v });
                    drop(permit);
                    seen
                })
            })
            .collect();
        // SAFETY: both permits are held: no reader holds one.
        data.with_mut(|v| unsafe { *v = 7 });
        drop(both);
        for r in readers {
            assert_eq!(r.join().unwrap(), 7);
        }
        assert_eq!((sem.available(), sem.waiters()), (2, 0));
    });
}
