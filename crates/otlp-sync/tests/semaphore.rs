//! Semaphore behaviour: weights, fairness, timeouts, closing, bad input.

use std::sync::Arc;
use std::time::Duration;

use otlp_sync::{AcquireError, MAX_PERMITS, Semaphore, SemaphoreError};

const SHORT: Duration = Duration::from_millis(20);

fn wait_for_waiters(sem: &Semaphore, n: usize) {
    while sem.waiters() < n {
        std::thread::yield_now();
    }
}

#[test]
fn weighted_try_acquire_and_release() {
    let sem = Semaphore::new(10).unwrap();
    let a = sem.try_acquire(4).unwrap();
    let b = sem.try_acquire(6).unwrap();
    assert_eq!(sem.available(), 0);
    assert_eq!(sem.try_acquire(1).unwrap_err(), AcquireError::WouldBlock);
    assert_eq!(a.num_permits() + b.num_permits(), 10);
    drop(a);
    assert_eq!(sem.available(), 4);
    drop(b);
    assert_eq!(sem.available(), 10);
    assert_eq!(sem.total(), 10);
}

#[test]
fn zero_permit_request_succeeds_immediately() {
    let sem = Semaphore::new(0).unwrap();
    let p = sem.try_acquire(0).unwrap();
    assert_eq!(p.num_permits(), 0);
    drop(p);
    assert!(sem.acquire_timeout(0, SHORT).is_ok());
}

#[test]
fn too_large_is_an_immediate_error_everywhere() {
    let sem = Arc::new(Semaphore::new(5).unwrap());
    let n = MAX_PERMITS + 1;
    let expected = AcquireError::TooLarge {
        requested: n,
        max: MAX_PERMITS,
    };
    assert_eq!(sem.try_acquire(n).unwrap_err(), expected);
    assert_eq!(sem.acquire_blocking(n).unwrap_err(), expected);
    assert_eq!(
        sem.acquire_timeout(n, Duration::from_secs(3600))
            .unwrap_err(),
        expected
    );
    assert_eq!(sem.try_acquire_owned(n).unwrap_err(), expected);
    assert_eq!(sem.acquire_owned_blocking(n).unwrap_err(), expected);
    assert_eq!(sem.waiters(), 0);
    // Above the total but within MAX_PERMITS is only "not now".
    assert_eq!(sem.try_acquire(6).unwrap_err(), AcquireError::WouldBlock);
    assert_eq!(
        sem.acquire_timeout(6, SHORT).unwrap_err(),
        AcquireError::Timeout
    );
    assert_eq!((sem.available(), sem.waiters()), (5, 0));
}

#[test]
fn constructor_and_add_permits_reject_overflow() {
    assert_eq!(
        Semaphore::new(MAX_PERMITS + 1).unwrap_err(),
        SemaphoreError::TooManyPermits {
            requested: MAX_PERMITS + 1,
            max: MAX_PERMITS
        }
    );
    let sem = Semaphore::new(MAX_PERMITS).unwrap();
    assert!(matches!(
        sem.add_permits(1),
        Err(SemaphoreError::TooManyPermits { .. })
    ));
    assert_eq!(sem.total(), MAX_PERMITS);
    let sem = Semaphore::new(1).unwrap();
    assert!(sem.add_permits(usize::MAX).is_err());
    assert_eq!(sem.available(), 1);
}

#[test]
fn add_permits_grows_total_and_wakes_waiter() {
    let sem = Arc::new(Semaphore::new(0).unwrap());
    let s2 = Arc::clone(&sem);
    let t = std::thread::spawn(move || s2.acquire_owned_blocking(0).map(|p| p.num_permits()));
    assert_eq!(t.join().unwrap(), Ok(0));
    sem.add_permits(3).unwrap();
    let _a = sem.try_acquire(3).unwrap();
    let s2 = Arc::clone(&sem);
    let t = std::thread::spawn(move || s2.acquire_owned_blocking(2).map(|p| p.num_permits()));
    wait_for_waiters(&sem, 1);
    sem.add_permits(2).unwrap();
    assert_eq!(t.join().unwrap(), Ok(2));
    assert_eq!(sem.total(), 5);
}

#[test]
fn blocking_timeout_returns_error_and_leaves_no_trace() {
    let sem = Semaphore::new(2).unwrap();
    let held = sem.try_acquire(1).unwrap();
    assert_eq!(
        sem.acquire_timeout(2, SHORT).unwrap_err(),
        AcquireError::Timeout
    );
    assert_eq!(sem.waiters(), 0);
    // The one permit that was free is still free (it was assigned to the
    // timed-out request and handed back).
    assert_eq!(sem.available(), 1);
    drop(held);
    assert_eq!(sem.available(), 2);
    assert!(sem.acquire_timeout(2, SHORT).is_ok());
}

#[test]
fn timed_out_waiter_passes_assigned_permits_on() {
    let sem = Arc::new(Semaphore::new(4).unwrap());
    let all = sem.try_acquire(4).unwrap();
    // First in line wants 4 and will time out; second wants 1.
    let s1 = Arc::clone(&sem);
    let big = std::thread::spawn(move || s1.acquire_owned_timeout(4, Duration::from_millis(200)));
    wait_for_waiters(&sem, 1);
    let s2 = Arc::clone(&sem);
    let small = std::thread::spawn(move || s2.acquire_owned_blocking(1).map(|p| p.num_permits()));
    wait_for_waiters(&sem, 2);
    // Give back 2: both go to the head (wants 4), the small one waits behind it.
    let mut all = all;
    let two = all.split(2).unwrap();
    drop(two);
    assert_eq!(sem.available(), 0);
    // When the head times out its 2 assigned permits go to the small waiter.
    assert_eq!(big.join().unwrap().unwrap_err(), AcquireError::Timeout);
    assert_eq!(small.join().unwrap(), Ok(1));
    // The small waiter's permit came back when its thread dropped it, and
    // the other assigned permit was left over once the queue emptied.
    assert_eq!(sem.available(), 2);
    drop(all);
    assert_eq!(sem.available(), 4);
}

#[test]
fn fifo_large_request_not_starved() {
    let sem = Arc::new(Semaphore::new(4).unwrap());
    let held = sem.try_acquire(3).unwrap();
    let s = Arc::clone(&sem);
    let big = std::thread::spawn(move || s.acquire_owned_blocking(4).map(|p| p.num_permits()));
    wait_for_waiters(&sem, 1);
    // A permit is free, but the big request is queued first: no barging.
    assert_eq!(sem.try_acquire(1).unwrap_err(), AcquireError::WouldBlock);
    drop(held);
    assert_eq!(big.join().unwrap(), Ok(4));
}

#[test]
fn close_wakes_every_waiter_with_closed() {
    let sem = Arc::new(Semaphore::new(1).unwrap());
    let held = sem.try_acquire(1).unwrap();
    let waiters: Vec<_> = (0..4)
        .map(|i| {
            let s = Arc::clone(&sem);
            std::thread::spawn(move || {
                if i % 2 == 0 {
                    s.acquire_owned_blocking(1).map(drop)
                } else {
                    s.acquire_owned_timeout(1, Duration::from_secs(3600))
                        .map(drop)
                }
            })
        })
        .collect();
    wait_for_waiters(&sem, 4);
    sem.close();
    for w in waiters {
        assert_eq!(w.join().unwrap(), Err(AcquireError::Closed));
    }
    assert!(sem.is_closed());
    assert_eq!(sem.try_acquire(1).unwrap_err(), AcquireError::Closed);
    assert_eq!(sem.try_acquire(0).unwrap_err(), AcquireError::Closed);
    assert_eq!(sem.acquire_blocking(1).unwrap_err(), AcquireError::Closed);
    // Held permits are still returned.
    drop(held);
    assert_eq!(sem.available(), 1);
}

#[test]
fn split_merge_forget() {
    let other = Semaphore::new(1).unwrap();
    let sem = Semaphore::new(10).unwrap();
    let mut p = sem.try_acquire(6).unwrap();
    let q = p.split(2).unwrap();
    assert_eq!((p.num_permits(), q.num_permits()), (4, 2));
    assert_eq!(
        p.split(5).unwrap_err(),
        SemaphoreError::SplitTooLarge {
            requested: 5,
            held: 4
        }
    );
    p.merge(q).unwrap();
    assert_eq!(p.num_permits(), 6);

    let foreign = other.try_acquire(1).unwrap();
    let back = p.merge(foreign).unwrap_err().0;
    assert_eq!(back.num_permits(), 1);
    drop(back);
    assert_eq!(other.available(), 1);

    let r = p.split(1).unwrap();
    r.forget();
    assert_eq!(sem.total(), 9);
    drop(p);
    assert_eq!(sem.available(), 9);
    assert_eq!(sem.try_acquire(10).unwrap_err(), AcquireError::WouldBlock);
}

#[test]
fn forget_leaves_waiters_waiting_for_add_permits() {
    let sem = Arc::new(Semaphore::new(4).unwrap());
    let mut held = sem.try_acquire(4).unwrap();
    let s = Arc::clone(&sem);
    let waiter = std::thread::spawn(move || s.acquire_owned_blocking(4).map(|p| p.num_permits()));
    wait_for_waiters(&sem, 1);
    held.split(1).unwrap().forget();
    // Now above the total: it keeps waiting, and add_permits makes it whole.
    assert_eq!((sem.total(), sem.waiters()), (3, 1));
    sem.add_permits(1).unwrap();
    drop(held);
    assert_eq!(waiter.join().unwrap(), Ok(4));
    assert_eq!((sem.available(), sem.total()), (4, 4));
}

#[test]
fn owned_permits_split_merge_forget() {
    let sem = Arc::new(Semaphore::new(5).unwrap());
    let mut p = sem.try_acquire_owned(5).unwrap();
    let q = p.split(3).unwrap();
    assert!(p.split(3).is_err());
    let handle = std::thread::spawn(move || q.num_permits());
    assert_eq!(handle.join().unwrap(), 3);
    assert_eq!(sem.available(), 3);
    let other = Arc::new(Semaphore::new(1).unwrap());
    let foreign = other.try_acquire_owned(1).unwrap();
    assert!(p.merge(foreign).is_err());
    let r = sem.try_acquire_owned(3).unwrap();
    p.merge(r).unwrap();
    assert_eq!(p.num_permits(), 5);
    assert!(Arc::ptr_eq(p.semaphore(), &sem));
    p.forget();
    assert_eq!((sem.total(), sem.available()), (0, 0));
}

#[test]
fn debug_output_names_state() {
    let sem = Semaphore::new(3).unwrap();
    let s = format!("{sem:?}");
    assert!(s.contains("available: 3"), "{s}");
}
