//! Loom model: a ring (block) boundary of `LockFreeQueue` (rings hold 2
//! items under loom), with a producer crossing it (closing the full ring, linking the next)
//! while a consumer pops; the rest is drained across the boundary.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use otlp_lockfree::LockFreeQueue;

#[test]
fn producer_crosses_ring_boundary_while_consumer_pops() {
    loom::model(|| {
        let q = Arc::new(LockFreeQueue::new());
        q.push(0);
        q.push(1); // the first ring is now full
        let qp = q.clone();
        let producer = thread::spawn(move || {
            qp.push(2); // closes ring 1, links ring 2
        });
        // The main thread is the consumer (two threads keep the model small).
        let mut got: Vec<i32> = q.pop().into_iter().collect();
        producer.join().unwrap();
        assert_eq!(got, [0], "the consumer pops the oldest item");
        while let Some(v) = q.pop() {
            got.push(v);
        }
        assert_eq!(got, [0, 1, 2], "FIFO across the ring boundary");
        assert!(q.is_empty());
    });
}
