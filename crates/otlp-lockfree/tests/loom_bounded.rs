//! Loom models: wrap-around of a capacity-2 `BoundedQueue` with two
//! producers and a consumer; `force_push` racing with `pop_batch`;
//! `try_pop` racing `pop` and a wrapping push, and taking a concurrent
//! push; batches that wrap the ring end.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use otlp_lockfree::BoundedQueue;

#[test]
fn capacity_two_wraps_with_two_producers_and_a_consumer() {
    loom::model(|| {
        let q = Arc::new(BoundedQueue::new(2).unwrap());
        // Move head and tail to index 1 so the concurrent pushes wrap.
        q.push(0).unwrap();
        assert_eq!(q.pop(), Some(0));
        let producers: Vec<_> = [1, 2]
            .into_iter()
            .map(|v| {
                let q = q.clone();
                thread::spawn(move || q.push(v))
            })
            .collect();
        let qc = q.clone();
        let consumer = thread::spawn(move || qc.pop());
        for p in producers {
            // Capacity 2 and only two concurrent pushes: none may fail.
            assert_eq!(p.join().unwrap(), Ok(()));
        }
        let mut got: Vec<i32> = consumer.join().unwrap().into_iter().collect();
        let mut rest = Vec::new();
        q.pop_batch(&mut rest, 8);
        got.extend(rest);
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert!(q.is_empty());
    });
}

#[test]
fn force_push_races_pop_batch() {
    loom::model(|| {
        let q = Arc::new(BoundedQueue::new(2).unwrap());
        assert!(q.push_batch([1, 2]).is_empty());
        let qp = q.clone();
        let producer = thread::spawn(move || qp.force_push(3));
        let qc = q.clone();
        let consumer = thread::spawn(move || {
            let mut out = Vec::new();
            qc.pop_batch(&mut out, 2);
            out
        });
        let evicted = producer.join().unwrap();
        let popped = consumer.join().unwrap();
        // FIFO within what the consumer got.
        assert!(popped.windows(2).all(|w| w[0] < w[1]));
        let mut all: Vec<i32> = popped;
        all.extend(evicted);
        while let Some(v) = q.pop() {
            all.push(v);
        }
        all.sort_unstable();
        assert_eq!(all, [1, 2, 3]);
    });
}

/// A slot that `pop` frees is refilled, on another thread, by a `push` of
/// the next lap, and the consumer then pops the refilled value: with
/// capacity 1 every push after the first reuses the one slot. The popper's
/// read of the old value must happen before the pusher's write (`pop`'s
/// Release stamp store, `push`'s Acquire stamp load), and the new value's
/// write before the consumer's second read (`push`'s Release, `pop`'s
/// Acquire); loom's cell tracking reports a write racing a read otherwise.
#[test]
fn a_slot_freed_by_pop_is_refilled_on_the_next_lap() {
    loom::model(|| {
        let q = Arc::new(BoundedQueue::new(1).unwrap());
        q.push(1).unwrap();
        let qc = q.clone();
        let consumer = thread::spawn(move || {
            let mut got = Vec::new();
            while got.len() < 2 {
                match qc.pop() {
                    Some(v) => got.push(v),
                    None => thread::yield_now(),
                }
            }
            got
        });
        let mut v = 2;
        // Full until the consumer frees the slot.
        while let Err(back) = q.push(v) {
            v = back;
            thread::yield_now();
        }
        assert_eq!(consumer.join().unwrap(), [1, 2]);
        assert!(q.is_empty());
    });
}

/// The batch twins: `pop_batch` frees the slot, `push_batch` refills it on
/// the next lap from another thread, and `pop_batch` takes the new value.
#[test]
fn a_slot_freed_by_pop_batch_is_refilled_by_push_batch() {
    loom::model(|| {
        let q = Arc::new(BoundedQueue::new(1).unwrap());
        assert!(q.push_batch([1]).is_empty());
        let qc = q.clone();
        let consumer = thread::spawn(move || {
            let mut out = Vec::new();
            while out.len() < 2 {
                if qc.pop_batch(&mut out, 2) == 0 {
                    thread::yield_now();
                }
            }
            out
        });
        let mut items = vec![2];
        loop {
            items = q.push_batch(items);
            if items.is_empty() {
                break;
            }
            thread::yield_now();
        }
        assert_eq!(consumer.join().unwrap(), [1, 2]);
        assert!(q.is_empty());
    });
}

/// `try_pop` against a concurrent `pop` and a push that wraps into the slot
/// the consumers free: every value comes out exactly once, `try_pop`'s
/// read of a slot happens before the next lap's write to it (loom's cell
/// tracking), and a `None` from `try_pop` leaves nothing behind.
#[test]
fn try_pop_races_pop_and_a_wrapping_push() {
    loom::model(|| {
        let q = Arc::new(BoundedQueue::new(2).unwrap());
        q.push(1).unwrap();
        q.push(2).unwrap();
        let qt = q.clone();
        let trier = thread::spawn(move || qt.try_pop());
        let qp = q.clone();
        let popper = thread::spawn(move || qp.pop());
        let qw = q.clone();
        // Full until a consumer frees a slot; then it lands on the next lap.
        let pusher = thread::spawn(move || qw.push(3).is_ok());
        let mut all: Vec<i32> = trier.join().unwrap().into_iter().collect();
        all.extend(popper.join().unwrap());
        if pusher.join().unwrap() {
            all.push(0);
        }
        while let Some(v) = q.try_pop() {
            all.push(v);
        }
        let pushed = all.contains(&0);
        all.retain(|&v| v != 0);
        all.sort_unstable();
        if pushed {
            assert_eq!(all, [1, 2, 3]);
        } else {
            assert_eq!(all, [1, 2]);
        }
        assert!(q.is_empty());
    });
}

/// A consumer that retries `try_pop` takes the value a concurrent `push`
/// writes: its read of the slot must happen after the producer's write
/// (`push`'s Release stamp store, `try_pop`'s Acquire stamp load); loom's
/// cell tracking reports the race otherwise.
#[test]
fn try_pop_takes_a_concurrent_push() {
    loom::model(|| {
        let q = Arc::new(BoundedQueue::new(1).unwrap());
        let qp = q.clone();
        let producer = thread::spawn(move || qp.push(String::from("x")).is_ok());
        let got = loop {
            if let Some(v) = q.try_pop() {
                break v;
            }
            thread::yield_now();
        };
        assert!(producer.join().unwrap());
        assert_eq!(got, "x");
        assert_eq!(q.try_pop(), None);
    });
}

/// Batches whose run crosses the ring end (walked as two slices): with
/// capacity 3 and both counters at index 2, `push_batch` of three claims
/// positions on two laps while `pop_batch` races it; the consumer must see
/// a FIFO prefix each time, and nothing is lost or duplicated.
#[test]
fn batches_that_wrap_the_ring_end_race() {
    loom::model(|| {
        let q = Arc::new(BoundedQueue::new(3).unwrap());
        assert!(q.push_batch([0, 0]).is_empty());
        let mut out = Vec::new();
        assert_eq!(q.pop_batch(&mut out, 2), 2);
        let qc = q.clone();
        let consumer = thread::spawn(move || {
            let mut out = Vec::new();
            qc.pop_batch(&mut out, 3);
            out
        });
        assert!(q.push_batch([1, 2, 3]).is_empty());
        let mut got = consumer.join().unwrap();
        assert!(got.iter().copied().eq(1..=got.len() as i32));
        q.pop_batch(&mut got, 3);
        assert_eq!(got, [1, 2, 3]);
        assert!(q.is_empty());
    });
}
