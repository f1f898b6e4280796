//! `LockFreeStack` behaviour: drop safety (a panicking element's `Drop`),
//! slot reuse across segments, exact `len`, and the trait surface.

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use otlp_lockfree::LockFreeStack;

/// Records every drop by id; the element with `panics == true` panics in
/// its `Drop` after recording it.
#[derive(Debug)]
struct Tracked {
    id: usize,
    panics: bool,
    drops: Arc<Mutex<HashMap<usize, usize>>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        *self.drops.lock().unwrap().entry(self.id).or_default() += 1;
        if self.panics {
            panic!("element {} panics in Drop", self.id);
        }
    }
}

fn tracked(
    n: usize,
    panicking: usize,
) -> (LockFreeStack<Tracked>, Arc<Mutex<HashMap<usize, usize>>>) {
    let drops = Arc::new(Mutex::new(HashMap::new()));
    let stack = LockFreeStack::new();
    for id in 0..n {
        stack.push(Tracked {
            id,
            panics: id == panicking,
            drops: Arc::clone(&drops),
        });
    }
    (stack, drops)
}

fn assert_each_dropped_once(
    drops: &Mutex<HashMap<usize, usize>>,
    ids: impl IntoIterator<Item = usize>,
) {
    let drops = drops.lock().unwrap();
    let mut expected = 0;
    for id in ids {
        expected += 1;
        assert_eq!(
            drops.get(&id),
            Some(&1),
            "element {id} dropped {:?} times",
            drops.get(&id)
        );
    }
    assert_eq!(drops.len(), expected, "unexpected drops: {drops:?}");
}

/// Issue 14, item 3: a panicking `Drop` of one element must not leak the
/// elements after it, and nothing may be dropped twice.
#[test]
fn drop_keeps_dropping_after_a_panicking_element() {
    // Element 6 of 0..10 sits in the middle: 9, 8, 7 are dropped before it,
    // 5..=0 after it.
    let (stack, drops) = tracked(10, 6);
    let result = panic::catch_unwind(AssertUnwindSafe(move || drop(stack)));
    assert!(result.is_err(), "the element's panic propagates");
    assert_each_dropped_once(&drops, 0..10);
}

#[test]
fn drop_with_the_panicking_element_on_top_or_at_the_bottom() {
    for panicking in [0, 4] {
        let (stack, drops) = tracked(5, panicking);
        assert!(panic::catch_unwind(AssertUnwindSafe(move || drop(stack))).is_err());
        assert_each_dropped_once(&drops, 0..5);
    }
}

#[test]
fn into_iter_drop_keeps_dropping_after_a_panicking_element() {
    let (stack, drops) = tracked(8, 3);
    let mut iter = stack.into_iter();
    let first = iter.next().unwrap();
    assert_eq!(first.id, 7);
    drop(first);
    assert_eq!(iter.len(), 7);
    assert!(panic::catch_unwind(AssertUnwindSafe(move || drop(iter))).is_err());
    assert_each_dropped_once(&drops, 0..8);
}

#[test]
fn popped_and_pop_all_items_are_not_dropped_again() {
    let (stack, drops) = tracked(6, usize::MAX);
    let top = stack.pop().unwrap();
    let rest = stack.pop_all();
    assert_eq!(
        rest.iter().map(|t| t.id).collect::<Vec<_>>(),
        [4, 3, 2, 1, 0]
    );
    drop(stack);
    assert!(
        drops.lock().unwrap().is_empty(),
        "the stack dropped a moved-out item"
    );
    drop(top);
    drop(rest);
    assert_each_dropped_once(&drops, 0..6);
}

fn scaled(n: usize) -> usize {
    if cfg!(miri) { n / 200 } else { n }
}

/// Fills several segments, empties them, fills them again: slots are reused
/// and every item comes back once, in LIFO order.
#[test]
fn slots_are_reused_across_segments() {
    // Under Miri still into the third segment (128 + 256 slots before it
    // for this item size).
    let n = if cfg!(miri) { 400 } else { 20_000 };
    let stack = LockFreeStack::new();
    for round in 0..3 {
        for i in 0..n {
            stack.push((round, i));
            assert_eq!(stack.len(), i + 1);
        }
        if round == 1 {
            let all = stack.pop_all();
            assert_eq!(all.len(), n);
            assert!(
                all.iter()
                    .rev()
                    .enumerate()
                    .all(|(i, &item)| item == (round, i))
            );
        } else {
            for i in (0..n).rev() {
                assert_eq!(stack.pop(), Some((round, i)));
                assert_eq!(stack.len(), i);
            }
        }
        assert!(stack.is_empty());
        assert_eq!(stack.pop(), None);
    }
}

/// Interleaved pushes and pops that reuse the spare slot, the free list and
/// never-used slots in every order, checked against a `Vec`.
#[test]
fn matches_a_vec_under_random_operations() {
    let mut rng = fastrand::Rng::with_seed(7);
    let stack = LockFreeStack::new();
    let mut model = Vec::new();
    for step in 0..scaled(50_000) {
        match rng.u8(0..10) {
            0..=4 => {
                stack.push(step);
                model.push(step);
            }
            5..=8 => assert_eq!(stack.pop(), model.pop()),
            _ => {
                let mut all = stack.pop_all();
                all.reverse();
                assert_eq!(all, model);
                model.clear();
            }
        }
        assert_eq!(stack.len(), model.len());
        assert_eq!(stack.is_empty(), model.is_empty());
    }
}

#[test]
fn zero_sized_items() {
    // Past the first segment (256 slots) even under Miri.
    let n = if cfg!(miri) { 300 } else { 1000 };
    let stack = LockFreeStack::new();
    for _ in 0..n {
        stack.push(());
    }
    assert_eq!(stack.len(), n);
    assert_eq!(stack.pop(), Some(()));
    assert_eq!(stack.pop_all().len(), n - 1);
    assert_eq!(stack.pop(), None);
}

#[test]
fn large_items() {
    let stack = LockFreeStack::new();
    let n = if cfg!(miri) { 12 } else { 100 };
    for i in 0..n {
        stack.push([i; 5000]);
    }
    for i in (0..n).rev() {
        assert_eq!(stack.pop().map(|a| a[4999]), Some(i));
    }
}

/// `len` is a snapshot of a real state: while one thread keeps at most
/// `MAX` of its items on the stack and another pushes and pops one, `len`
/// never reads more than `MAX + 1`.
#[test]
fn len_is_never_more_than_was_ever_pushed() {
    const MAX: usize = 5;
    let rounds = if cfg!(miri) { 10 } else { 20_000 };
    let stack = Arc::new(LockFreeStack::new());
    let done = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..2)
        .map(|t| {
            let (stack, done) = (Arc::clone(&stack), Arc::clone(&done));
            thread::spawn(move || {
                let depth = if t == 0 { MAX } else { 1 };
                for i in 0..rounds {
                    for _ in 0..depth {
                        stack.push(i);
                    }
                    for _ in 0..depth {
                        assert!(stack.pop().is_some());
                    }
                }
                done.fetch_add(1, Ordering::Release);
            })
        })
        .collect();
    while done.load(Ordering::Acquire) < 2 {
        let len = stack.len();
        assert!(len <= MAX + 1, "len {len} with at most {} items", MAX + 1);
        thread::yield_now();
    }
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(stack.len(), 0);
}

#[test]
fn traits() {
    fn send_sync<T: Send + Sync>() {}
    // `Sync` needs only `T: Send`: items are moved between threads, never
    // shared.
    send_sync::<LockFreeStack<std::cell::Cell<u8>>>();
    send_sync::<otlp_lockfree::StackIntoIter<String>>();

    let mut stack: LockFreeStack<u32> = LockFreeStack::default();
    stack.extend([1, 2]);
    assert_eq!(format!("{stack:?}"), "LockFreeStack { len: 2, .. }");
    let collected: LockFreeStack<u32> = (0..3).collect();
    let iter = collected.into_iter();
    assert_eq!(iter.size_hint(), (3, Some(3)));
    assert_eq!(iter.collect::<Vec<_>>(), [2, 1, 0]);
}
