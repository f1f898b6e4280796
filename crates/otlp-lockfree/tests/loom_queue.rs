//! Loom models of `LockFreeQueue` (blocks hold 2 items under loom, so the
//! third item lands in a second block):
//!
//! * two producers race for a block's last slot, whose winner links the next
//!   block while the loser waits for it;
//! * a consumer reaches a block's end while the producer is linking the next
//!   block, and a batch claim ends on a block's last slot;
//! * two consumers finish a block's two slots at once: whichever takes the
//!   last slot frees the block and, if the other is still reading, hands the
//!   rest of the freeing over to it (the DESTROY hand-off); the freed block
//!   comes back as the spare;
//! * a consumer stalled while it holds an item (issue 14 item 4) must not
//!   keep the others from going on;
//! * a producer reuses the spare block while the consumer is still freeing
//!   the blocks behind it (loom's cell tracking fails if a write into the
//!   reused block is not ordered after the read of its previous item).
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use otlp_lockfree::LockFreeQueue;

/// Pops until `n` items arrived, yielding to the model while empty.
fn pop_n(q: &LockFreeQueue<i32>, n: usize) -> Vec<i32> {
    let mut got = Vec::new();
    while got.len() < n {
        match q.pop() {
            Some(v) => got.push(v),
            None => thread::yield_now(),
        }
    }
    got
}

#[test]
fn producers_race_for_the_last_slot_and_the_link() {
    loom::model(|| {
        let q = Arc::new(LockFreeQueue::new());
        q.push(0); // slot 0 of the first block; slot 1 is its last
        let producers: Vec<_> = [1, 2]
            .into_iter()
            .map(|v| {
                let q = q.clone();
                thread::spawn(move || q.push(v))
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        assert_eq!(q.len(), 3);
        let mut got = pop_n(&q, 3);
        assert_eq!(got[0], 0, "the item pushed first comes first");
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2], "each item exactly once");
        assert_eq!(q.pop(), None);
    });
}

/// A consumer claims the last slot while the producer is still linking the
/// next block, and moves the head there; another consumer then finds the
/// queue empty. The tail must already be in the new block when the head
/// gets there, or that consumer would claim a position nobody pushed and
/// wait for it forever.
#[test]
fn consumers_reach_the_block_end_while_the_producer_links() {
    loom::model(|| {
        let q = Arc::new(LockFreeQueue::new());
        q.push(0);
        assert_eq!(q.pop(), Some(0)); // the next push takes the last slot
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                thread::spawn(move || q.pop())
            })
            .collect();
        q.push(1); // takes the last slot and links the second block
        let mut got: Vec<i32> = consumers
            .into_iter()
            .filter_map(|c| c.join().unwrap())
            .collect();
        assert!(got.len() <= 1);
        q.push(2); // into the second block
        got.extend(std::iter::from_fn(|| q.pop()));
        assert_eq!(got, [1, 2], "each item once, in order");
        assert!(q.is_empty());
    });
}

#[test]
fn batch_claim_ends_on_the_last_slot_while_pushing() {
    loom::model(|| {
        let q = Arc::new(LockFreeQueue::new());
        q.push(0);
        let consumer = {
            let q = q.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                while got.len() < 3 {
                    if q.pop_batch(&mut got, 3) == 0 {
                        thread::yield_now();
                    }
                }
                got
            })
        };
        q.push(1);
        q.push(2);
        assert_eq!(consumer.join().unwrap(), [0, 1, 2]);
        assert_eq!(q.pop(), None);
    });
}

#[test]
fn consumers_hand_off_the_freeing_of_a_block() {
    loom::model(|| {
        let q = Arc::new(LockFreeQueue::new());
        for v in 0..3 {
            q.push(v); // 0 and 1 fill the first block, 2 is in the second
        }
        let other = {
            let q = q.clone();
            thread::spawn(move || q.pop())
        };
        let mine = q.pop();
        let theirs = other.join().unwrap();
        let mut firsts = [mine.unwrap(), theirs.unwrap()];
        firsts.sort_unstable();
        assert_eq!(firsts, [0, 1]);
        assert!(q.has_spare(), "whoever finished last freed the first block");
        // 3 takes the second block's last slot and links the spare.
        q.push(3);
        assert!(!q.has_spare());
        q.push(4);
        assert_eq!(pop_n(&q, 3), [2, 3, 4]);
        assert_eq!(q.pop(), None);
    });
}

/// As above, but the main thread pushes on at once, so the block the two
/// consumers finish may be reused while the other consumer is still
/// reading it if the hand-off were wrong (loom's cell tracking would see
/// the producer's write race that read).
#[test]
fn a_block_is_reused_only_after_its_last_reader() {
    loom::model(|| {
        let q = Arc::new(LockFreeQueue::new());
        for v in 0..3 {
            q.push(v);
        }
        let other = {
            let q = q.clone();
            thread::spawn(move || q.pop())
        };
        let mine = q.pop();
        q.push(3); // links the spare if the first block is already freed
        q.push(4); // ... and writes into it
        let theirs = other.join().unwrap();
        let mut firsts = [mine.unwrap(), theirs.unwrap()];
        firsts.sort_unstable();
        assert_eq!(firsts, [0, 1]);
        assert_eq!(pop_n(&q, 3), [2, 3, 4]);
        assert!(q.is_empty());
    });
}

/// Issue 14 item 4. A consumer claims item 0 and stalls before it releases
/// the slot (it waits for the main thread, the way a preempted thread waits
/// for the scheduler). The main thread pops item 1, the first block's last
/// slot, so it starts freeing the block and meets the stalled slot: it must
/// leave the freeing to the stalled consumer and go on to item 2 in the next
/// block instead of waiting. A wait would make the two threads wait on each
/// other forever, which loom reports as a model that never ends.
#[test]
fn stalled_consumer_does_not_trap_others_and_frees_the_block() {
    loom::model(|| {
        let q = Arc::new(LockFreeQueue::new());
        for v in 0..3 {
            q.push(v);
        }
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
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), Some(2), "went on past the stalled consumer");
        assert!(
            !q.has_spare(),
            "the block was freed under the stalled consumer"
        );
        release.store(true, Ordering::Release);
        assert_eq!(stalled.join().unwrap(), Some(0));
        assert!(q.has_spare(), "the stalled consumer freed the block");
        // The first block is reused here.
        q.push(3);
        q.push(4);
        assert_eq!(pop_n(&q, 2), [3, 4]);
        assert!(q.is_empty());
    });
}

#[test]
fn producer_reuses_the_spare_while_the_consumer_frees() {
    loom::model(|| {
        let q = Arc::new(LockFreeQueue::new());
        q.push(0);
        q.push(1); // the first block is full, the second linked
        let consumer = {
            let q = q.clone();
            // Finishing the first block frees it into the spare.
            thread::spawn(move || [q.pop(), q.pop()])
        };
        // 3 takes the second block's last slot and links the third: the
        // spare if the consumer has freed the first block by then, and 4 is
        // written into it.
        for v in 2..5 {
            q.push(v);
        }
        assert_eq!(consumer.join().unwrap(), [Some(0), Some(1)]);
        assert_eq!(pop_n(&q, 3), [2, 3, 4]);
        assert!(q.is_empty());
    });
}
