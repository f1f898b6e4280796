//! Loom model of the task manager's submit gate (`SubmitGate`): once
//! `shutdown` has closed the gate and seen it quiescent, every task a
//! submitter was allowed to enqueue is visible in the queue, so the drain
//! (or the hand-back of still-queued tasks) cannot miss one.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use otlp_async::loom_api::SubmitGate;

#[test]
fn closer_sees_every_admitted_task() {
    loom::model(|| {
        let gate = Arc::new(SubmitGate::new());
        let queue = Arc::new(AtomicUsize::new(0));
        let admitted = Arc::new(AtomicUsize::new(0));
        let submitters: Vec<_> = (0..2)
            .map(|_| {
                let (gate, queue, admitted) =
                    (Arc::clone(&gate), Arc::clone(&queue), Arc::clone(&admitted));
                loom::thread::spawn(move || {
                    if gate.enter() {
                        queue.fetch_add(1, Ordering::Relaxed);
                        admitted.fetch_add(1, Ordering::Relaxed);
                        gate.leave();
                        true
                    } else {
                        false
                    }
                })
            })
            .collect();
        assert!(gate.close());
        assert!(
            !gate.close(),
            "only the first close reports it closed the gate"
        );
        while !gate.is_quiescent() {
            loom::thread::yield_now();
        }
        let seen = queue.load(Ordering::Relaxed);
        let mut accepted = 0;
        for s in submitters {
            if s.join().unwrap() {
                accepted += 1;
            }
        }
        // Every task admitted before quiescence is visible to the closer,
        // and nobody is admitted afterwards.
        assert_eq!(seen, accepted);
        assert_eq!(queue.load(Ordering::Relaxed), accepted);
        assert!(!gate.enter());
    });
}
