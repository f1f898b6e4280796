//! Loom model of barrier generations with blocking and async parties.
#![cfg(all(loom, feature = "async"))]

use std::sync::Arc;

use loom::thread;
use otlp_sync::Barrier;

#[test]
fn two_generations_one_leader_each() {
    loom::model(|| {
        let barrier = Arc::new(Barrier::new(2).unwrap());
        let b = Arc::clone(&barrier);
        let other = thread::spawn(move || {
            let first = b.wait_blocking();
            let second = loom::future::block_on(b.wait());
            [first, second]
        });
        let mine = [barrier.wait_blocking(), barrier.wait_blocking()];
        let theirs = other.join().unwrap();
        for generation in 0..2 {
            assert_eq!(mine[generation].generation(), generation as u64);
            assert_eq!(theirs[generation].generation(), generation as u64);
            assert_ne!(
                mine[generation].is_leader(),
                theirs[generation].is_leader(),
                "exactly one leader per generation"
            );
        }
        assert_eq!(barrier.generation(), 2);
        assert_eq!(barrier.arrived(), 0);
    });
}
