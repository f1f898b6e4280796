//! The deadlock checker finds a real two-thread cycle.
#![cfg(feature = "deadlock-detection")]

use std::sync::Arc;
use std::time::Duration;

use otlp_sync::Mutex;
use otlp_sync::deadlock::{DeadlockChecker, DeadlockCheckerError, check_deadlocks};

#[test]
#[cfg_attr(miri, ignore = "leaves two threads deadlocked; needs real time")]
fn detects_a_lock_order_inversion() {
    assert!(check_deadlocks().is_empty());
    let a = Arc::new(Mutex::new(()));
    let b = Arc::new(Mutex::new(()));
    let both_hold_one = Arc::new(std::sync::Barrier::new(2));
    for (first, second) in [(Arc::clone(&a), Arc::clone(&b)), (b, a)] {
        let both = Arc::clone(&both_hold_one);
        // These two threads deadlock for good; the test process ends anyway.
        std::thread::spawn(move || {
            let _g1 = first.lock();
            both.wait();
            let _g2 = second.lock();
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let checker = DeadlockChecker::spawn(Duration::from_millis(10), move |found| {
        let _ = tx.send(found.to_vec());
    })
    .unwrap();
    let found = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("deadlock reported");
    checker.stop();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].threads.len(), 2);
    assert!(found[0].to_string().contains("deadlock between 2 threads"));
}

#[test]
fn zero_interval_rejected() {
    assert!(matches!(
        DeadlockChecker::spawn(Duration::ZERO, |_| {}),
        Err(DeadlockCheckerError::ZeroInterval)
    ));
}
