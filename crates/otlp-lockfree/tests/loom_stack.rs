//! Loom models of `LockFreeStack`'s protocol: tagged Treiber stacks of slot
//! indices (the stack and the free list), the `spare` slot, and segments
//! installed on demand (1, 2, 4, … slots under loom, so every model grows
//! the slab). Loom's `UnsafeCell` checks that a slot's value is only ever
//! touched by the slot's owner: a write racing a read fails the model.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use otlp_lockfree::LockFreeStack;

/// Pops everything left and checks that, with what the threads took, every
/// value in `expected` was seen exactly once.
fn assert_conserved(stack: &LockFreeStack<i32>, mut got: Vec<i32>, expected: &[i32]) {
    let len = stack.len();
    let rest = stack.pop_all();
    assert_eq!(len, rest.len());
    got.extend(rest);
    got.sort_unstable();
    assert_eq!(got, expected);
    assert!(stack.is_empty());
    assert_eq!(stack.len(), 0);
}

#[test]
fn concurrent_push_pop() {
    loom::model(|| {
        let stack = Arc::new(LockFreeStack::new());
        stack.push(0);
        let s1 = stack.clone();
        let pusher = thread::spawn(move || s1.push(1));
        let popped = stack.pop();
        pusher.join().unwrap();
        let mut got: Vec<i32> = popped.into_iter().collect();
        got.extend(stack.pop_all());
        got.sort_unstable();
        assert_eq!(got, [0, 1]);
        assert!(stack.is_empty());
    });
}

/// The ABA scenario from the issue: a pop loads the top slot and its `next`,
/// then another thread pops that slot and pushes it again (the pop leaves
/// the slot in `spare`, the push takes it back) with a new value. The first
/// pop's compare-and-swap must fail on the tag or, if it runs after, take a
/// consistent top.
#[test]
fn pop_races_pop_then_push_of_the_same_slot() {
    loom::model(|| {
        let stack = Arc::new(LockFreeStack::new());
        stack.push(0);
        stack.push(1);
        let s1 = stack.clone();
        let other = thread::spawn(move || {
            let popped = s1.pop();
            s1.push(2);
            popped
        });
        let mine = stack.pop();
        let theirs = other.join().unwrap();
        let got: Vec<i32> = mine.into_iter().chain(theirs).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(stack.len(), 1);
        let mut rest = stack.pop_all();
        rest.extend(got);
        rest.sort_unstable();
        assert_eq!(rest, [0, 1, 2]);
    });
}

/// The ABA scenario that corrupts an untagged Treiber stack: a pop loads
/// `top = A` and `A.next = B`; another thread takes A and B with `pop_all`
/// (A and B go to the free list, A first) and pushes again, reusing A with
/// `next = NIL`. A stale compare-and-swap that succeeded would make the free
/// slot B the top. With the tag it fails, and the pop retries on the new top.
/// Run with the stale pop on the spawned thread and on the main thread
/// (loom explores a spawned thread's operations before the main thread's
/// differently).
#[test]
fn pop_races_pop_all_then_push_reusing_the_slot() {
    fn pop_all_then_push(stack: &LockFreeStack<i32>) -> Vec<i32> {
        let all = stack.pop_all();
        stack.push(2);
        all
    }
    for stale_pop_spawned in [false, true] {
        loom::model(move || {
            let stack = Arc::new(LockFreeStack::new());
            stack.push(0);
            stack.push(1);
            let s1 = stack.clone();
            let mut got: Vec<i32> = if stale_pop_spawned {
                let other = thread::spawn(move || s1.pop());
                let mut got = pop_all_then_push(&stack);
                got.extend(other.join().unwrap());
                got
            } else {
                let other = thread::spawn(move || pop_all_then_push(&s1));
                let mine = stack.pop();
                let mut got = other.join().unwrap();
                got.extend(mine);
                got
            };
            // Whatever the interleaving, the stack ends with at most the one
            // pushed value, and everything is seen exactly once.
            let rest = stack.pop_all();
            assert!(rest.len() <= 1);
            got.extend(rest);
            got.sort_unstable();
            assert_eq!(got, [0, 1, 2]);
            assert!(stack.is_empty());
            // The free list is intact: three pushes reuse the freed slots.
            for v in 10..13 {
                stack.push(v);
            }
            assert_eq!(stack.pop_all(), [12, 11, 10]);
        });
    }
}

/// Two pushes on a fresh stack each take a never-used slot; with segments of
/// 1 and 2 slots under loom, both of theirs may need segment 1, so both may
/// allocate it and one must free its copy.
#[test]
fn pushes_race_to_install_a_segment() {
    loom::model(|| {
        let stack = Arc::new(LockFreeStack::new());
        stack.push(0); // slot 0, segment 0
        let s1 = stack.clone();
        let pusher = thread::spawn(move || s1.push(1));
        stack.push(2);
        pusher.join().unwrap();
        assert_eq!(stack.len(), 3);
        assert_conserved(&stack, Vec::new(), &[0, 1, 2]);
    });
}

/// Two pops hand their slots back at once (one wins `spare`, the other goes
/// to the free list), then a push and a pop race on the recycled slots.
#[test]
fn pops_race_for_the_spare_then_reuse() {
    loom::model(|| {
        let stack = Arc::new(LockFreeStack::new());
        stack.push(0);
        stack.push(1);
        stack.push(2);
        let s1 = stack.clone();
        let other = thread::spawn(move || {
            let a = s1.pop();
            s1.push(10);
            a
        });
        let mine = stack.pop();
        let also = stack.pop();
        let theirs = other.join().unwrap();
        let got: Vec<i32> = [mine, also, theirs].into_iter().flatten().collect();
        assert_eq!(got.len(), 3);
        assert_conserved(&stack, got, &[0, 1, 2, 10]);
    });
}

/// `len` is exact: racing a push and a pop, it reads a size the stack
/// really had (1 or 2 items). The pushed slot is a fresh one (no slot is
/// recycled while `len` runs here; see
/// `len_never_reads_the_depth_of_a_recycled_slot` for that): `len`'s
/// `Acquire` loads of the top are what make its segment and its depth
/// visible. Through a `Relaxed` load `len` could read the slot's initial
/// depth, 0, or find its segment not yet installed (which crashes the model).
#[test]
fn len_races_push_and_pop() {
    loom::model(|| {
        let stack = Arc::new(LockFreeStack::new());
        stack.push(0);
        let s1 = stack.clone();
        let reader = thread::spawn(move || s1.len());
        stack.push(1);
        assert!(stack.pop().is_some());
        let len = reader.join().unwrap();
        assert!((1..=2).contains(&len), "len {len}");
        assert_eq!(stack.len(), 1);
    });
}

/// `len` never returns a depth that a recycled slot's new owner wrote
/// before its push was linked. The stack holds `[1, 0]` (slots 1 and 0)
/// with slot 2 in `spare`. `len` (main thread) loads the top, slot 1; the
/// pusher thread pops 1 (slot 1 goes to the free list, `spare` being full),
/// pushes 10 (slot 2, from `spare`) and pushes 11, which takes slot 1 back
/// and writes its depth, 3, before its linking CAS; the popper thread pops
/// 10 first, so that CAS fails and the pusher links slot 1 with depth 2.
/// The stack never held 3 items, yet a `len` that trusted the depth it read
/// through its first load of the top would return 3. The re-read of the top
/// rejects it: reading the new owner's depth (`Acquire`, paired with the
/// depth store's `Release`) makes the pop that freed slot 1 visible, so the
/// top word has changed.
///
/// The check is linearizability: `len` returns a size the stack had at some
/// point. With 2 items at the start, one pop and two pushes on the pusher
/// thread and one pop on the popper thread, the stack reaches 3 items only
/// if the popper pops 11 (it pops the top, and 11 on top means 3 items),
/// and 0 items only if the popper pops 0 or 1 (both old items gone before
/// 10 is pushed).
#[test]
fn len_never_reads_the_depth_of_a_recycled_slot() {
    loom::model(|| {
        let stack = Arc::new(LockFreeStack::new());
        stack.push(0);
        stack.push(1);
        stack.push(2);
        assert_eq!(stack.pop(), Some(2)); // slot 2 fills `spare`
        let s1 = stack.clone();
        let pusher = thread::spawn(move || {
            let popped = s1.pop();
            s1.push(10);
            s1.push(11);
            popped
        });
        let s2 = stack.clone();
        let popper = thread::spawn(move || s2.pop());
        let len = stack.len();
        let pushers_pop = pusher.join().unwrap();
        let poppers_pop = popper.join().unwrap();
        let max = if poppers_pop == Some(11) { 3 } else { 2 };
        let min = if matches!(poppers_pop, Some(0 | 1)) {
            0
        } else {
            1
        };
        assert!(
            (min..=max).contains(&len),
            "len {len}, the stack held {min} to {max} items (popper took {poppers_pop:?})"
        );
        assert_eq!(stack.len(), 2);
        let got: Vec<i32> = [pushers_pop, poppers_pop].into_iter().flatten().collect();
        assert_eq!(got.len(), 2);
        assert_conserved(&stack, got, &[0, 1, 10, 11]);
    });
}

/// A slot that goes through the free list (not `spare`) from a popper to a
/// pusher on another thread: the popper's read of the value must happen
/// before the pusher's write, through the release on the free list.
#[test]
fn slot_handed_over_through_the_free_list() {
    loom::model(|| {
        let stack = Arc::new(LockFreeStack::new());
        stack.push(0);
        stack.push(1);
        stack.push(2);
        assert_eq!(stack.pop(), Some(2)); // its slot fills `spare`
        let s1 = stack.clone();
        // Finds `spare` full, so its slot goes to the free list.
        let popper = thread::spawn(move || s1.pop());
        stack.push(10); // takes `spare`
        stack.push(11); // the free list's slot if the pop is done, else a fresh one
        let popped = popper.join().unwrap();
        assert_conserved(&stack, popped.into_iter().collect(), &[0, 1, 10, 11]);
    });
}
