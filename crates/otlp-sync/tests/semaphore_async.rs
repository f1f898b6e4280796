//! Async semaphore: cancel safety and timeouts under tokio's paused time.
#![cfg(feature = "async")]

use std::sync::Arc;
use std::time::Duration;

use otlp_sync::{AcquireError, MAX_PERMITS, Semaphore};

#[tokio::test]
async fn acquire_and_release() {
    let sem = Semaphore::new(3).unwrap();
    let p = sem.acquire(2).await.unwrap();
    assert_eq!(sem.available(), 1);
    drop(p);
    assert_eq!(sem.available(), 3);
    assert_eq!(
        sem.acquire(MAX_PERMITS + 1).await.unwrap_err(),
        AcquireError::TooLarge {
            requested: MAX_PERMITS + 1,
            max: MAX_PERMITS
        }
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_wrapped_acquire_loses_nothing() {
    let sem = Arc::new(Semaphore::new(4).unwrap());
    let held = sem.acquire(3).await.unwrap();
    // The big request gets the free permit assigned, then times out.
    let r = tokio::time::timeout(Duration::from_secs(5), sem.acquire(4)).await;
    assert!(r.is_err(), "should time out");
    assert_eq!(sem.waiters(), 0);
    assert_eq!(sem.available(), 1);
    drop(held);
    assert_eq!(sem.available(), 4);
}

#[tokio::test(start_paused = true)]
async fn cancelled_head_passes_permits_and_wakeup_on() {
    let sem = Arc::new(Semaphore::new(2).unwrap());
    let held = sem.acquire(2).await.unwrap();
    let s1 = Arc::clone(&sem);
    let head = tokio::spawn(async move { s1.acquire(2).await.map(drop) });
    tokio::task::yield_now().await;
    let s2 = Arc::clone(&sem);
    let second = tokio::spawn(async move { s2.acquire_owned(1).await.map(|p| p.num_permits()) });
    while sem.waiters() < 2 {
        tokio::task::yield_now().await;
    }
    let mut held = held;
    drop(held.split(1).unwrap()); // assigned to the head, which still needs 1
    assert_eq!(sem.available(), 0);
    head.abort();
    assert!(head.await.unwrap_err().is_cancelled());
    // The head's assigned permit went to the second waiter, which was woken.
    assert_eq!(second.await.unwrap(), Ok(1));
    drop(held);
    assert_eq!(sem.available(), 2);
}

#[tokio::test]
async fn completed_but_unpolled_future_returns_permits_on_drop() {
    use std::future::Future;
    use std::task::{Context, Waker};
    let sem = Semaphore::new(1).unwrap();
    let held = sem.try_acquire(1).unwrap();
    let mut fut = Box::pin(sem.acquire(1));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    drop(held); // the permit is assigned to the queued future
    assert_eq!(sem.available(), 0);
    drop(fut); // never polled again: the permit must come back
    assert_eq!(sem.available(), 1);
}

#[tokio::test(start_paused = true)]
async fn close_wakes_async_waiters() {
    let sem = Arc::new(Semaphore::new(1).unwrap());
    let _held = sem.acquire(1).await.unwrap();
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let s = Arc::clone(&sem);
            tokio::spawn(async move { s.acquire_owned(1).await.map(drop) })
        })
        .collect();
    while sem.waiters() < 3 {
        tokio::task::yield_now().await;
    }
    sem.close();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Err(AcquireError::Closed));
    }
    assert_eq!(sem.acquire(1).await.unwrap_err(), AcquireError::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_and_blocking_waiters_share_one_queue() {
    let sem = Arc::new(Semaphore::new(1).unwrap());
    let held = sem.try_acquire_owned(1).unwrap();
    let s1 = Arc::clone(&sem);
    let blocking = tokio::task::spawn_blocking(move || s1.acquire_owned_blocking(1).map(drop));
    while sem.waiters() < 1 {
        tokio::task::yield_now().await;
    }
    let s2 = Arc::clone(&sem);
    let task = tokio::spawn(async move { s2.acquire_owned(1).await.map(drop) });
    while sem.waiters() < 2 {
        tokio::task::yield_now().await;
    }
    drop(held);
    assert_eq!(blocking.await.unwrap(), Ok(()));
    assert_eq!(task.await.unwrap(), Ok(()));
    assert_eq!(sem.available(), 1);
}

#[tokio::test(start_paused = true)]
async fn owned_permit_moves_into_tasks() {
    let sem = Arc::new(Semaphore::new(100).unwrap());
    let mut handles = Vec::new();
    for i in 1..=10 {
        let permit = sem.acquire_owned(i).await.unwrap();
        handles.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            permit.num_permits()
        }));
    }
    let mut sum = 0;
    for h in handles {
        sum += h.await.unwrap();
    }
    assert_eq!(sum, 55);
    assert_eq!(sem.available(), 100);
}
