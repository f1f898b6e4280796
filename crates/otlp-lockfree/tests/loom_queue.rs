//! Loom models of `LockFreeQueue` (rings hold 2 items under loom): a ring
//! boundary crossed by a producer (closing the full ring, linking the next)
//! while a consumer pops; and a consumer stalled between its claim and its
//! slot release while the ring is closed and drained around it.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
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

/// Issue 14 item 4. A consumer claims position 0 and stalls before it
/// releases the slot (it waits for the main thread, the way a preempted
/// thread waits for the scheduler). The slot's stale stamp makes the next
/// push close the ring and link a new one; the main thread then pops the
/// rest of the first ring and must move on to the second instead of waiting
/// for the stalled consumer. With the defect the two threads wait on each
/// other forever, which loom reports as a model that never ends.
#[test]
fn stalled_consumer_does_not_trap_others_on_a_closed_ring() {
    loom::model(|| {
        let q = Arc::new(LockFreeQueue::new());
        q.push(0);
        q.push(1); // the first ring is full
        let claimed = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let stalled = {
            let (q, claimed, release) = (q.clone(), claimed.clone(), release.clone());
            thread::spawn(move || {
                q.pop_stalled(|| {
                    claimed.store(true, Ordering::Release);
                    while !release.load(Ordering::Acquire) {
                        thread::yield_now();
                    }
                })
            })
        };
        while !claimed.load(Ordering::Acquire) {
            thread::yield_now();
        }
        q.push(2); // meets the stale stamp: closes ring 1, goes to ring 2
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), Some(2), "left the closed, drained ring");
        release.store(true, Ordering::Release);
        assert_eq!(stalled.join().unwrap(), Some(0));
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
    });
}
