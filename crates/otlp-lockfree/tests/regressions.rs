//! Regression tests for review defects (issue 14, items 1-4).
//!
//! Item 4 (a consumer stalled between its claim and its slot release must
//! not trap the other consumers on a closed ring) needs a hook inside the
//! queue to stall a consumer at that exact point, so its deterministic test
//! lives in `src/queue.rs` (`stalled_consumer_*`) and its model in
//! `tests/loom_queue.rs`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use otlp_lockfree::{BoundedQueue, ConcurrentHashMap, ConcurrentVec, LockFreeQueue};

// ---------------------------------------------------------------------------
// Allocation accounting, per thread (tests run in parallel threads).

struct CountingAlloc;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to `System` unchanged; the counter is a
// thread-local `Cell` with a const initialiser and no destructor, so
// touching it never allocates or recurses.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + layout.size()));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + new_size));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Bytes this thread allocated while running `f`.
fn allocated_by<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = ALLOCATED.with(Cell::get);
    let result = f();
    (result, ALLOCATED.with(Cell::get) - before)
}

// ---------------------------------------------------------------------------
// Helpers.

/// Runs `f` on its own thread and waits a bounded time for it, so that a
/// regression to a deadlock fails the test instead of hanging the suite.
fn without_deadlock<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(panic::catch_unwind(AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(Ok(value)) => value,
        Ok(Err(payload)) => panic::resume_unwind(payload),
        Err(_) => panic!("{what}: deadlocked (no answer after 120 s)"),
    }
}

/// The message of a caught panic.
fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// Asserts `f` panics with the map's re-entry message.
fn assert_reentry_panic<R>(what: &str, f: impl FnOnce() -> R) {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("{what}: expected a re-entry panic, the call returned"),
        Err(payload) => {
            let msg = message(&*payload);
            assert!(
                msg.contains("re-entrant"),
                "{what}: panicked with an unexpected message: {msg:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Item 1: re-entry into `ConcurrentHashMap` panics, never deadlocks.

type Plain = ConcurrentHashMap<u32, u32>;

#[test]
fn map_reentry_through_other_maps_panics() {
    without_deadlock("A -> B -> A", || {
        let a: Arc<Plain> = Arc::new(ConcurrentHashMap::new());
        let b: Arc<Plain> = Arc::new(ConcurrentHashMap::new());
        let c: Arc<Plain> = Arc::new(ConcurrentHashMap::new());
        for m in [&a, &b, &c] {
            m.insert(1, 1);
        }
        // Nesting different maps is fine.
        assert_eq!(a.with(&1, |_| b.get(&1)), Some(Some(1)));
        assert_eq!(
            a.update(&1, |_| b.with(&1, |_| c.get_or_insert_with(2, || 2))),
            Some(Some(2))
        );
        // A's closure uses B, whose closure calls back into A.
        assert_reentry_panic("A -> B -> A (read)", || {
            a.with(&1, |_| b.with(&1, |_| a.get(&1)))
        });
        assert_reentry_panic("A -> B -> A (write)", || {
            a.update(&1, |_| b.update(&1, |_| a.insert(3, 3)))
        });
        // Any depth: A -> B -> C -> A, and a lock-free-looking call (len).
        assert_reentry_panic("A -> B -> C -> A", || {
            a.with(&1, |_| b.with(&1, |_| c.with(&1, |_| a.len())))
        });
        // B's marker is gone after the panic; A -> B still works, nothing is
        // poisoned or left locked.
        assert_eq!(a.with(&1, |_| b.get(&1)), Some(Some(1)));
        assert_eq!(a.insert(3, 3), None);
        assert_eq!(b.insert(3, 3), None);
        assert_eq!(c.insert(3, 3), None);
    });
}

/// Which trait method of [`Key`] / [`Val`] calls back into the map.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Hook {
    Hash,
    Eq,
    Clone,
    Drop,
    Debug,
}

type Armed = Option<(Hook, Rc<dyn Fn()>)>;

thread_local! {
    static ARMED: RefCell<Armed> = const { RefCell::new(None) };
}

/// Makes the next call of `hook` on this thread run `f` (once).
fn arm(hook: Hook, f: impl Fn() + 'static) {
    ARMED.with(|a| *a.borrow_mut() = Some((hook, Rc::new(f))));
}

fn disarm() -> bool {
    ARMED.with(|a| a.borrow_mut().take().is_some())
}

fn fire(hook: Hook) {
    let f = ARMED.with(|a| {
        let mut a = a.borrow_mut();
        match &*a {
            Some((h, _)) if *h == hook => a.take().map(|(_, f)| f),
            _ => None,
        }
    });
    if let Some(f) = f {
        f();
    }
}

struct Key(u32);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        fire(Hook::Hash);
        self.0.hash(state);
    }
}
impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        fire(Hook::Eq);
        self.0 == other.0
    }
}
impl Eq for Key {}
impl Clone for Key {
    fn clone(&self) -> Self {
        fire(Hook::Clone);
        Key(self.0)
    }
}
impl Drop for Key {
    fn drop(&mut self) {
        fire(Hook::Drop);
    }
}
impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fire(Hook::Debug);
        write!(f, "Key({})", self.0)
    }
}

#[derive(PartialEq, Debug)]
struct Val(u32);

impl Clone for Val {
    fn clone(&self) -> Self {
        fire(Hook::Clone);
        Val(self.0)
    }
}
impl Drop for Val {
    fn drop(&mut self) {
        fire(Hook::Drop);
    }
}

type Tricky = ConcurrentHashMap<Key, Val>;

/// A named operation on the map, with the hook armed while it runs.
type Case<'a> = (&'a str, Hook, &'a dyn Fn(&Tricky));

fn tricky() -> Arc<Tricky> {
    let map: Arc<Tricky> = Arc::new(ConcurrentHashMap::new());
    for i in 0..8 {
        map.insert(Key(i), Val(i));
    }
    map
}

/// Arms `hook` to call back into `map` (an insert, then a read), runs `op`,
/// and returns whether the callback ran to completion.
fn call_back_during(map: &Arc<Tricky>, hook: Hook, op: impl FnOnce(&Tricky)) -> bool {
    let done = Rc::new(Cell::new(false));
    let (m, d) = (Arc::clone(map), Rc::clone(&done));
    arm(hook, move || {
        m.insert(Key(1000), Val(1000));
        assert!(m.contains_key(&Key(1000)));
        d.set(true);
    });
    op(map);
    disarm();
    done.get()
}

#[test]
fn map_user_code_under_a_lock_that_calls_back_panics() {
    without_deadlock("user code under a shard lock", || {
        let map = tricky();
        let cases: [Case<'_>; 7] = [
            ("V::clone in get", Hook::Clone, &|m| drop(m.get(&Key(1)))),
            ("V::clone in get_or_insert_with", Hook::Clone, &|m| {
                drop(m.get_or_insert_with(Key(2), || Val(0)))
            }),
            ("clone in snapshot", Hook::Clone, &|m| drop(m.snapshot())),
            ("clone in iter", Hook::Clone, &|m| drop(m.iter())),
            ("K::eq in get", Hook::Eq, &|m| drop(m.get(&Key(3)))),
            ("K::eq in insert", Hook::Eq, &|m| {
                drop(m.insert(Key(3), Val(3)))
            }),
            ("Debug", Hook::Debug, &|m| drop(format!("{m:?}"))),
        ];
        for (what, hook, op) in cases {
            assert_reentry_panic(what, || call_back_during(&map, hook, op));
            disarm();
            // The map is neither locked nor poisoned, and lost nothing.
            for i in 0..8 {
                assert_eq!(map.get(&Key(i)), Some(Val(i)), "{what}");
            }
        }
        // A drop run by the caller's own closure is under the lock too.
        assert_reentry_panic("Drop inside update's closure", || {
            call_back_during(&map, Hook::Drop, |m| {
                m.update(&Key(4), |v| *v = Val(4));
            })
        });
        disarm();
        assert_eq!(map.get(&Key(4)), Some(Val(4)));
    });
}

#[test]
fn map_drops_and_hashes_run_outside_the_lock() {
    without_deadlock("drops and hashes outside the lock", || {
        let cases: [Case<'_>; 10] = [
            ("Hash in get", Hook::Hash, &|m| drop(m.get(&Key(1)))),
            ("Hash in insert", Hook::Hash, &|m| {
                drop(m.insert(Key(1), Val(1)))
            }),
            ("V::drop in clear", Hook::Drop, &|m| m.clear()),
            ("drop of a removed entry", Hook::Drop, &|m| {
                // The returned value is the caller's: drop it first, so the
                // hook fires on the stored key, dropped by `remove`.
                std::mem::forget(m.remove(&Key(1)));
            }),
            ("drop in retain", Hook::Drop, &|m| {
                m.retain(|k, _| k.0 % 2 == 0)
            }),
            ("drop in compute removing", Hook::Drop, &|m| {
                m.compute(Key(2), |slot| std::mem::forget(slot.take()));
            }),
            ("spare key of insert", Hook::Drop, &|m| {
                std::mem::forget(m.insert(Key(3), Val(30)));
            }),
            ("spare key of get_or_insert_with", Hook::Drop, &|m| {
                std::mem::forget(m.get_or_insert_with(Key(4), || Val(0)));
            }),
            ("spare key of compute", Hook::Drop, &|m| {
                m.compute(Key(5), |slot| slot.as_ref().map(|v| v.0));
            }),
            ("entry of a panicking compute", Hook::Drop, &|m| {
                let r = panic::catch_unwind(AssertUnwindSafe(|| {
                    m.compute(Key(6), |_| panic!("user bug"));
                }));
                assert!(r.is_err());
            }),
        ];
        for (what, hook, op) in cases {
            let map = tricky();
            // The callback inserts and finds a key: it ran with no lock held.
            assert!(
                call_back_during(&map, hook, op),
                "{what}: the callback did not run"
            );
        }
    });
}

// ---------------------------------------------------------------------------
// Item 2: `ConcurrentVec::with_capacity` never aborts, never allocates
// gigabytes up front.

#[test]
fn vec_with_huge_capacity_is_a_hint() {
    for capacity in [usize::MAX, usize::MAX / 2, 1 << 40, 1 << 31] {
        let (v, bytes) = allocated_by(|| ConcurrentVec::<u64>::with_capacity(capacity));
        assert!(
            bytes <= 32 << 20,
            "with_capacity({capacity}) allocated {bytes} bytes up front"
        );
        assert_eq!(v.push(7), 0);
        assert_eq!(v.get(0), Some(&7));
        assert_eq!(v.len(), 1);
    }
    // Zero-sized elements too.
    let v = ConcurrentVec::<()>::with_capacity(usize::MAX);
    assert_eq!(v.push(()), 0);
}

#[test]
fn vec_with_small_capacity_still_preallocates() {
    let v = ConcurrentVec::<u64>::with_capacity(1000);
    let (_, bytes) = allocated_by(|| {
        for i in 0..1000 {
            v.push(i);
        }
    });
    assert_eq!(bytes, 0, "pushes within the capacity allocated");
    assert_eq!(v.get(999), Some(&999));
}

// ---------------------------------------------------------------------------
// Item 3: a panicking element destructor leaks nothing and drops nothing
// twice.

/// Counts its drops per id; the one marked `bomb` panics in `drop`.
struct Bomb {
    id: usize,
    drops: Arc<Vec<AtomicUsize>>,
    bomb: bool,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        self.drops[self.id].fetch_add(1, Ordering::Relaxed);
        if self.bomb {
            panic!("bomb {} went off", self.id);
        }
    }
}

/// `n` bombs, the one at `bomb` armed, and their drop counters.
fn bombs(n: usize, bomb: usize) -> (Vec<Bomb>, Arc<Vec<AtomicUsize>>) {
    let drops: Arc<Vec<AtomicUsize>> = Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect());
    let items = (0..n)
        .map(|id| Bomb {
            id,
            drops: Arc::clone(&drops),
            bomb: id == bomb,
        })
        .collect();
    (items, drops)
}

fn assert_dropped_once(what: &str, drops: &[AtomicUsize], outcome: thread::Result<()>) {
    assert!(outcome.is_err(), "{what}: the bomb's panic must propagate");
    for (id, d) in drops.iter().enumerate() {
        assert_eq!(d.load(Ordering::Relaxed), 1, "{what}: item {id} drop count");
    }
}

#[test]
fn bounded_queue_drop_survives_a_panicking_element() {
    for bomb in [0, 3, 7] {
        let (items, drops) = bombs(8, bomb);
        let q = BoundedQueue::new(8).unwrap();
        for item in items {
            assert!(q.push(item).is_ok());
        }
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| drop(q)));
        assert_dropped_once("BoundedQueue", &drops, outcome);
    }
}

#[test]
fn unbounded_queue_drop_survives_a_panicking_element() {
    // 64 + 128 + 256 slots: the items span three rings. A bomb in the first
    // ring (rings after it must still be freed), in the middle of a ring
    // (the rest of that ring), and in the last ring.
    let n = 400;
    for bomb in [0, 10, 100, 399] {
        let (items, drops) = bombs(n, bomb);
        let q = LockFreeQueue::new();
        for item in items {
            q.push(item);
        }
        // Consume a few so the head ring's `head` is not at 0.
        if bomb >= 10 {
            for _ in 0..5 {
                drop(q.pop());
            }
        }
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| drop(q)));
        assert_dropped_once("LockFreeQueue", &drops, outcome);
    }
}

#[test]
fn concurrent_vec_drop_survives_a_panicking_element() {
    // 32 + 64 + 128 entries per bucket: the items span three buckets.
    let n = 200;
    for bomb in [0, 31, 32, 100, 199] {
        let (items, drops) = bombs(n, bomb);
        let v = ConcurrentVec::new();
        for item in items {
            v.push(item);
        }
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| drop(v)));
        assert_dropped_once("ConcurrentVec", &drops, outcome);
    }
}
