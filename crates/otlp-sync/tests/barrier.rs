//! Barrier: generations, leader, timeouts that withdraw, async waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use otlp_sync::{Barrier, BarrierError};

#[test]
fn zero_parties_rejected() {
    assert_eq!(Barrier::new(0).unwrap_err(), BarrierError::ZeroParties);
}

#[test]
fn single_party_is_always_leader() {
    let b = Barrier::new(1).unwrap();
    for generation in 0..3 {
        let r = b.wait_blocking();
        assert!(r.is_leader());
        assert_eq!(r.generation(), generation);
    }
    assert!(b.wait_timeout(Duration::ZERO).unwrap().is_leader());
}

#[test]
fn generations_have_exactly_one_leader_each() {
    const PARTIES: usize = 4;
    const ROUNDS: u64 = 50;
    let b = Arc::new(Barrier::new(PARTIES).unwrap());
    let leaders = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..PARTIES)
        .map(|_| {
            let (b, leaders) = (Arc::clone(&b), Arc::clone(&leaders));
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    let r = b.wait_blocking();
                    assert_eq!(r.generation(), round);
                    if r.is_leader() {
                        leaders.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(leaders.load(Ordering::Relaxed), ROUNDS as usize);
    assert_eq!(b.generation(), ROUNDS);
    assert_eq!(b.arrived(), 0);
}

#[test]
fn timeout_withdraws_arrival() {
    let b = Arc::new(Barrier::new(2).unwrap());
    assert!(b.wait_timeout(Duration::from_millis(20)).is_err());
    assert_eq!(b.arrived(), 0, "timed-out arrival must be withdrawn");
    assert_eq!(b.generation(), 0);
    // The barrier still needs two real parties.
    let b2 = Arc::clone(&b);
    let t = std::thread::spawn(move || b2.wait_blocking());
    let r = b.wait_timeout(Duration::from_secs(3600)).unwrap();
    let other = t.join().unwrap();
    assert_ne!(r.is_leader(), other.is_leader());
    assert_eq!(b.generation(), 1);
}

#[test]
fn timeout_of_one_party_leaves_others_consistent() {
    let b = Arc::new(Barrier::new(3).unwrap());
    let b1 = Arc::clone(&b);
    let patient = std::thread::spawn(move || b1.wait_blocking());
    while b.arrived() < 1 {
        std::thread::yield_now();
    }
    assert!(b.wait_timeout(Duration::from_millis(20)).is_err());
    assert_eq!(b.arrived(), 1);
    let b2 = Arc::clone(&b);
    let third = std::thread::spawn(move || b2.wait_blocking());
    let me = b.wait_blocking();
    let results = [me, patient.join().unwrap(), third.join().unwrap()];
    assert_eq!(results.iter().filter(|r| r.is_leader()).count(), 1);
}

#[cfg(feature = "async")]
#[tokio::test(start_paused = true)]
async fn async_wait_and_cancelled_wait() {
    let b = Arc::new(Barrier::new(2).unwrap());
    // A timed-out async wait withdraws its arrival when dropped.
    assert!(
        tokio::time::timeout(Duration::from_secs(1), b.wait())
            .await
            .is_err()
    );
    assert_eq!(b.arrived(), 0);
    let b2 = Arc::clone(&b);
    let t = tokio::spawn(async move { b2.wait().await });
    let me = b.wait().await;
    let other = t.await.unwrap();
    assert_ne!(me.is_leader(), other.is_leader());
    assert_eq!(me.generation(), 0);
}

#[cfg(feature = "async")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_and_blocking_parties_meet() {
    let b = Arc::new(Barrier::new(3).unwrap());
    let b1 = Arc::clone(&b);
    let blocking = tokio::task::spawn_blocking(move || b1.wait_blocking());
    let b2 = Arc::clone(&b);
    let task = tokio::spawn(async move { b2.wait().await });
    let me = b.wait().await;
    let all = [me, blocking.await.unwrap(), task.await.unwrap()];
    assert_eq!(all.iter().filter(|r| r.is_leader()).count(), 1);
}
