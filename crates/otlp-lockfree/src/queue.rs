//! [`LockFreeQueue`]: an unbounded MPMC FIFO made of linked, reused rings.

use core::fmt;
use core::mem::{self, MaybeUninit};

use crossbeam_epoch::{self as epoch, Atomic, Owned};
use crossbeam_utils::CachePadded;

use crate::sync::{AtomicUsize, Backoff, Ordering, UnsafeCell, fence};
use crate::unwind::drain_resuming;

/// Top bit of a ring's `tail`: no producer may claim a position any more.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// Slots in the first ring.
#[cfg(not(loom))]
const FIRST_RING: usize = 64;
/// Rings double on overflow up to this many slots.
#[cfg(not(loom))]
const MAX_RING: usize = 4096;
#[cfg(loom)]
const FIRST_RING: usize = 2;
#[cfg(loom)]
const MAX_RING: usize = 2;

struct Slot<T> {
    /// `pos` when empty for position `pos`, `pos + 1` when holding it.
    seq: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// A bounded Vyukov ring that can be closed to producers.
struct Ring<T> {
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
    next: Atomic<Ring<T>>,
    mask: usize,
    slots: Box<[Slot<T>]>,
}

/// Result of popping from one ring.
enum Popped<T> {
    Item(T),
    /// Nothing claimable now; the ring is still open.
    Empty,
    /// Nothing left and the ring is closed: it never yields anything again.
    Drained,
}

impl<T> Ring<T> {
    fn new(cap: usize) -> Self {
        debug_assert!(cap.is_power_of_two());
        Self {
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            next: Atomic::null(),
            mask: cap - 1,
            slots: (0..cap)
                .map(|i| Slot {
                    seq: AtomicUsize::new(i),
                    value: UnsafeCell::new(MaybeUninit::uninit()),
                })
                .collect(),
        }
    }

    fn capacity(&self) -> usize {
        self.mask + 1
    }

    #[inline(always)]
    fn slot(&self, pos: usize) -> &Slot<T> {
        // SAFETY: `pos & mask < mask + 1 == slots.len()`.
        unsafe { self.slots.get_unchecked(pos & self.mask) }
    }

    /// Pushes, or hands the value back when the ring is closed (closing it
    /// first if it is full).
    fn push(&self, value: T) -> Result<(), T> {
        let backoff = Backoff::new();
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            if tail & CLOSED != 0 {
                return Err(value);
            }
            let slot = self.slot(tail);
            let seq = slot.seq.load(Ordering::Acquire);
            if seq == tail && (tail + 1) & CLOSED == 0 {
                match self.tail.compare_exchange_weak(
                    tail,
                    tail + 1,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: the CAS made this thread the only producer of
                        // `tail`; the acquired `seq` shows the slot's previous
                        // consumer is done with it.
                        unsafe { slot.value.with_mut(|p| p.write(MaybeUninit::new(value))) };
                        slot.seq.store(tail + 1, Ordering::Release);
                        return Ok(());
                    }
                    Err(current) => {
                        tail = current;
                        backoff.spin();
                    }
                }
            } else if seq.wrapping_add(self.capacity()) == tail.wrapping_add(1)
                || (tail + 1) & CLOSED != 0
            {
                // Full (the slot still holds the previous lap), or positions
                // are exhausted: close the ring; the caller moves on to the
                // next one. Closing a ring whose consumer is just finishing is
                // harmless, it only makes the queue grow one ring early.
                tail = self.tail.fetch_or(CLOSED, Ordering::SeqCst) | CLOSED;
            } else {
                backoff.snooze();
                tail = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Whether `head` is the end of this ring's items; `Some(drained)` if so.
    ///
    /// Only `head == tail` matters, not the slot at `head`: a closed ring
    /// whose every claimed position was claimed by a consumer never yields
    /// anything again, even while a consumer that claimed the last position
    /// has not yet released its slot (its stale stamp must not keep the
    /// other consumers from moving on to the next ring). `head` may be a
    /// stale read: it is at most the current head, which is at most `tail`,
    /// so equality with the tail read here means it is current.
    fn at_end(&self, head: usize) -> Option<bool> {
        fence(Ordering::SeqCst);
        let tail = self.tail.load(Ordering::Relaxed);
        if tail & !CLOSED == head {
            Some(tail & CLOSED != 0)
        } else {
            None
        }
    }

    /// Whether `seq`, read at position `head`, is the stamp of the previous
    /// lap's item at that slot: claimed by a consumer that has not yet
    /// stored the release stamp.
    #[inline(always)]
    fn unreleased(&self, seq: usize, head: usize) -> bool {
        seq.wrapping_add(self.capacity()) == head.wrapping_add(1)
    }

    /// Pops one item. `stall` (tests only; `None` otherwise) runs between
    /// the claim (the head CAS) and the release of the slot (the stamp
    /// store): the window in which a preempted consumer leaves a stale stamp.
    #[inline]
    fn pop(&self, stall: &mut Option<impl FnOnce()>) -> Popped<T> {
        let backoff = Backoff::new();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(head);
            let seq = slot.seq.load(Ordering::Acquire);
            if seq == head.wrapping_add(1) {
                match self.head.compare_exchange_weak(
                    head,
                    head + 1,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: the CAS made this thread the only consumer of
                        // `head`; the acquired `seq` shows the value written.
                        let value = unsafe { slot.value.with(|p| p.read().assume_init()) };
                        if let Some(stall) = stall.take() {
                            stall();
                        }
                        slot.seq
                            .store(head.wrapping_add(self.capacity()), Ordering::Release);
                        return Popped::Item(value);
                    }
                    Err(current) => {
                        head = current;
                        backoff.spin();
                    }
                }
            } else if seq == head || self.unreleased(seq, head) {
                // Empty for this lap, or the consumer of the previous lap has
                // not released the slot yet (preempted after its CAS): only
                // the counters tell whether the ring has anything left.
                match self.at_end(head) {
                    Some(true) => return Popped::Drained,
                    Some(false) => return Popped::Empty,
                    // A producer claimed `head` and is still writing it.
                    None if seq == head => backoff.spin(),
                    None => backoff.snooze(),
                }
                head = self.head.load(Ordering::Relaxed);
            } else {
                // `head` is stale: other consumers moved on.
                backoff.snooze();
                head = self.head.load(Ordering::Relaxed);
            }
        }
    }

    /// Claims a run of up to `max` (>= 1) ready items with one CAS.
    fn pop_batch(&self, out: &mut Vec<T>, max: usize) -> Popped<usize> {
        let max = max.min(self.capacity());
        let backoff = Backoff::new();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let mut n = 0;
            let mut pos = head;
            while n < max && self.slot(pos).seq.load(Ordering::Acquire) == pos.wrapping_add(1) {
                n += 1;
                pos += 1;
            }
            if n > 0 {
                out.reserve(n);
                match self.head.compare_exchange_weak(
                    head,
                    pos,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        for p in head..pos {
                            let slot = self.slot(p);
                            // SAFETY: the CAS moved `head` over `[head, pos)`
                            // while it still equalled the scanned-from value,
                            // so this thread alone consumes those positions,
                            // each seen (acquired) full.
                            let value = unsafe { slot.value.with(|q| q.read().assume_init()) };
                            slot.seq
                                .store(p.wrapping_add(self.capacity()), Ordering::Release);
                            out.push(value);
                        }
                        return Popped::Item(n);
                    }
                    Err(current) => {
                        head = current;
                        backoff.spin();
                        continue;
                    }
                }
            }
            // As in `pop`: empty for this lap or not yet released by the
            // previous lap's consumer, the counters decide.
            let seq = self.slot(head).seq.load(Ordering::Acquire);
            if seq == head || self.unreleased(seq, head) {
                match self.at_end(head) {
                    Some(true) => return Popped::Drained,
                    Some(false) => return Popped::Empty,
                    None if seq == head => backoff.spin(),
                    None => backoff.snooze(),
                }
            } else if seq != head.wrapping_add(1) {
                backoff.snooze();
            }
            head = self.head.load(Ordering::Relaxed);
        }
    }

    fn len(&self) -> usize {
        let head = self.head.load(Ordering::SeqCst);
        let tail = self.tail.load(Ordering::SeqCst) & !CLOSED;
        tail.saturating_sub(head)
    }
}

impl<T> Ring<T> {
    /// Drops the items in `[head, tail)`. Resumable (see [`drain_resuming`]):
    /// `head` moves past an item before the item is dropped.
    fn drop_items(&mut self) {
        let tail = self.tail.load(Ordering::Relaxed) & !CLOSED;
        loop {
            let head = self.head.load(Ordering::Relaxed);
            if head >= tail {
                return;
            }
            self.head.store(head + 1, Ordering::Relaxed);
            // SAFETY: `&mut self`: no operation is in flight, so every
            // position in `[head, tail)` holds a written value not yet popped;
            // `head` was moved past this one first, so it is dropped once.
            unsafe { self.slot(head).value.with_mut(|p| (*p).assume_init_drop()) };
        }
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        if mem::needs_drop::<T>() {
            // A panicking item destructor must not leak the items after it.
            drain_resuming(|| self.drop_items());
        }
    }
}

/// An unbounded lock-free multi-producer multi-consumer FIFO queue.
///
/// The queue is a linked list of *rings* (bounded Vyukov rings of sequence-
/// stamped slots). Producers push into the tail ring; when it is full they
/// close it (a bit in its tail counter) and link a new ring twice as large
/// (up to 4096 slots). Consumers pop from the head ring; once it is closed
/// and drained they move to the next ring and retire the old one through
/// crossbeam-epoch, so no thread can touch a freed ring.
///
/// Unlike a segment queue that allocates a fresh block every few dozen
/// pushes (crossbeam's `SegQueue`, issue #398), a ring is **reused** lap
/// after lap: as long as consumers keep the backlog below the current ring's
/// capacity, a steady push/pop load performs no allocation at all. A ring is
/// only allocated when the backlog outgrows the rings already linked.
///
/// FIFO order holds globally (in particular per producer): consumers leave a
/// ring only when it is closed and every claimed position in it was popped.
///
/// # Examples
///
/// ```
/// use otlp_lockfree::LockFreeQueue;
///
/// let q = LockFreeQueue::new();
/// for i in 0..100 {
///     q.push(i);
/// }
/// assert_eq!(q.pop(), Some(0));
/// let mut batch = Vec::new();
/// assert_eq!(q.pop_batch(&mut batch, 10), 10);
/// assert_eq!(batch, (1..=10).collect::<Vec<_>>());
/// assert_eq!(q.len(), 89);
/// ```
pub struct LockFreeQueue<T> {
    head: CachePadded<Atomic<Ring<T>>>,
    tail: CachePadded<Atomic<Ring<T>>>,
}

// SAFETY: each value is moved in by one producer and out by exactly one
// consumer; no `&T` is shared, so `T: Send` suffices.
unsafe impl<T: Send> Send for LockFreeQueue<T> {}
// SAFETY: see the `Send` impl.
unsafe impl<T: Send> Sync for LockFreeQueue<T> {}

impl<T> LockFreeQueue<T> {
    /// Creates an empty queue (one ring of 64 slots).
    pub fn new() -> Self {
        let queue = Self {
            head: CachePadded::new(Atomic::null()),
            tail: CachePadded::new(Atomic::null()),
        };
        // SAFETY: the queue is not shared yet, so no guard is needed.
        let guard = unsafe { epoch::unprotected() };
        let ring = Owned::new(Ring::new(FIRST_RING)).into_shared(guard);
        queue.head.store(ring, Ordering::Relaxed);
        queue.tail.store(ring, Ordering::Relaxed);
        queue
    }

    /// Pushes `value` at the back. Never fails: the queue grows as needed.
    pub fn push(&self, value: T) {
        let guard = epoch::pin();
        let mut value = value;
        loop {
            let tail = self.tail.load(Ordering::Acquire, &guard);
            // SAFETY: `tail` is never null and is loaded while pinned; rings
            // are retired only after `tail` moved past them.
            let ring = unsafe { tail.deref() };
            match ring.push(value) {
                Ok(()) => return,
                Err(back) => value = back,
            }
            // The ring is closed: make sure it has a successor, then help move
            // `tail` onto it.
            let mut next = ring.next.load(Ordering::Acquire, &guard);
            if next.is_null() {
                let cap = (ring.capacity() * 2).min(MAX_RING);
                let new = Owned::new(Ring::new(cap));
                match ring.next.compare_exchange(
                    epoch::Shared::null(),
                    new,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                    &guard,
                ) {
                    Ok(linked) => next = linked,
                    Err(err) => next = err.current, // `err.new` is freed here
                }
            }
            let _ =
                self.tail
                    .compare_exchange(tail, next, Ordering::AcqRel, Ordering::Relaxed, &guard);
        }
    }

    /// Moves `head` from the drained ring `head` to its successor, if any.
    /// Returns false when there is no successor (the queue is empty).
    fn advance(&self, head: epoch::Shared<'_, Ring<T>>, guard: &epoch::Guard) -> bool {
        // SAFETY: loaded while pinned; never null.
        let ring = unsafe { head.deref() };
        let next = ring.next.load(Ordering::Acquire, guard);
        if next.is_null() {
            return false;
        }
        // `tail` must never point at a retired ring: move it first.
        let _ = self
            .tail
            .compare_exchange(head, next, Ordering::AcqRel, Ordering::Relaxed, guard);
        if self
            .head
            .compare_exchange(head, next, Ordering::AcqRel, Ordering::Relaxed, guard)
            .is_ok()
        {
            // SAFETY: the ring is closed and drained, and neither `head` nor
            // `tail` points at it any more, so no new reader can reach it;
            // current readers are pinned, and epoch defers the free until they
            // unpin. This thread's CAS retires it exactly once.
            unsafe { guard.defer_destroy(head) };
        }
        true
    }

    /// Pops the item at the front, or `None` when the queue is empty.
    pub fn pop(&self) -> Option<T> {
        self.pop_with(&mut None::<fn()>)
    }

    /// [`pop`](Self::pop) whose consumer runs `stall` after it claimed an
    /// item and before it released the item's slot, to model a consumer
    /// preempted in that window. Only for tests and loom models.
    #[cfg(any(test, loom))]
    #[doc(hidden)]
    pub fn pop_stalled(&self, stall: impl FnOnce()) -> Option<T> {
        self.pop_with(&mut Some(stall))
    }

    #[inline]
    fn pop_with(&self, stall: &mut Option<impl FnOnce()>) -> Option<T> {
        let guard = epoch::pin();
        loop {
            let head = self.head.load(Ordering::Acquire, &guard);
            // SAFETY: never null, loaded while pinned.
            let ring = unsafe { head.deref() };
            match ring.pop(stall) {
                Popped::Item(value) => return Some(value),
                Popped::Empty => return None,
                Popped::Drained => {
                    if !self.advance(head, &guard) {
                        return None;
                    }
                }
            }
        }
    }

    /// Pops up to `max` items from the front into `out` (appended in FIFO
    /// order) and returns how many; 0 when empty or when `max == 0`. A run of
    /// ready items in one ring is claimed with one compare-and-swap.
    pub fn pop_batch(&self, out: &mut Vec<T>, max: usize) -> usize {
        if max == 0 {
            return 0;
        }
        let guard = epoch::pin();
        loop {
            let head = self.head.load(Ordering::Acquire, &guard);
            // SAFETY: never null, loaded while pinned.
            let ring = unsafe { head.deref() };
            match ring.pop_batch(out, max) {
                Popped::Item(n) => return n,
                Popped::Empty => return 0,
                Popped::Drained => {
                    if !self.advance(head, &guard) {
                        return 0;
                    }
                }
            }
        }
    }

    /// Number of items in the queue (a snapshot; exact when quiescent).
    pub fn len(&self) -> usize {
        let guard = epoch::pin();
        let mut total = 0;
        let mut cur = self.head.load(Ordering::Acquire, &guard);
        // SAFETY: every ring reachable from `head` while pinned is alive.
        while let Some(ring) = unsafe { cur.as_ref() } {
            total += ring.len();
            cur = ring.next.load(Ordering::Acquire, &guard);
        }
        total
    }

    /// Whether the queue was empty at the moment of the call.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Default for LockFreeQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for LockFreeQueue<T> {
    fn drop(&mut self) {
        // Each ring is unlinked from `head` before it is freed, so if one of
        // its items' destructors panics (the ring still drops its other
        // items), the resumed pass frees the rings after it, and none twice.
        drain_resuming(|| {
            // SAFETY: `&mut self`: no other thread uses the queue, and rings
            // before `head` were already retired, so each ring from `head` on
            // is freed here exactly once (dropping its remaining items).
            unsafe {
                let guard = epoch::unprotected();
                loop {
                    let cur = self.head.load(Ordering::Relaxed, guard);
                    if cur.is_null() {
                        return;
                    }
                    let next = cur.deref().next.load(Ordering::Relaxed, guard);
                    self.head.store(next, Ordering::Relaxed);
                    drop(cur.into_owned());
                }
            }
        });
    }
}

impl<T> fmt::Debug for LockFreeQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockFreeQueue")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<T> Extend<T> for LockFreeQueue<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for value in iter {
            self.push(value);
        }
    }
}

impl<T> FromIterator<T> for LockFreeQueue<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut queue = Self::new();
        queue.extend(iter);
        queue
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn grows_across_rings_in_order() {
        let q = LockFreeQueue::new();
        assert_eq!(q.pop(), None);
        let n = if cfg!(miri) { 300 } else { 20_000 };
        for i in 0..n {
            q.push(i);
        }
        assert_eq!(q.len(), n);
        let mut out = Vec::new();
        assert_eq!(q.pop_batch(&mut out, 0), 0);
        let mut expect = 0;
        while expect < n {
            if expect % 3 == 0 {
                assert_eq!(q.pop(), Some(expect));
                expect += 1;
            } else {
                out.clear();
                let k = q.pop_batch(&mut out, 7);
                assert!(k > 0);
                for v in &out {
                    assert_eq!(*v, expect);
                    expect += 1;
                }
            }
        }
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
    }

    #[test]
    fn steady_state_reuses_one_ring() {
        let q = LockFreeQueue::new();
        let rounds = if cfg!(miri) { 100 } else { 10_000 };
        for i in 0..rounds {
            q.push(i);
            q.push(i);
            assert_eq!(q.pop(), Some(i));
            assert_eq!(q.pop(), Some(i));
        }
        let guard = epoch::pin();
        let head = q.head.load(Ordering::Acquire, &guard);
        // SAFETY: pinned, non-null.
        let ring = unsafe { head.deref() };
        assert!(ring.next.load(Ordering::Acquire, &guard).is_null());
        assert_eq!(ring.capacity(), FIRST_RING);
    }

    /// Issue 14 item 4: a consumer stalled between its head CAS and its
    /// stamp store leaves a stale stamp in the head ring; producers close
    /// that ring and move on, and the other consumers must then treat the
    /// closed ring with `head == tail` as drained and move to the next ring
    /// instead of spinning on the stale stamp until the stalled one resumes.
    fn stalled_consumer_does_not_trap_the_others(batch: bool) {
        use std::sync::{Arc, mpsc};
        use std::time::Duration;

        let q = Arc::new(LockFreeQueue::new());
        for i in 0..FIRST_RING {
            q.push(i); // the first ring is full
        }
        let (claimed_tx, claimed_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let stalled = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                q.pop_stalled(move || {
                    claimed_tx.send(()).unwrap();
                    let _ = release_rx.recv();
                })
            })
        };
        claimed_rx.recv().unwrap();
        // Position FIRST_RING maps onto the stalled consumer's slot, whose
        // stamp is stale: the producer closes the first ring and links a
        // second one for this item.
        q.push(FIRST_RING);
        let (done_tx, done_rx) = mpsc::channel();
        let other = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while got.len() < FIRST_RING {
                    let before = got.len();
                    if batch {
                        q.pop_batch(&mut got, 16);
                    } else {
                        got.extend(q.pop());
                    }
                    if got.len() == before {
                        break; // empty: must not happen, reported below
                    }
                }
                let _ = done_tx.send(got);
            })
        };
        // A bounded wait: with the defect, `other` spins until released.
        let got = done_rx.recv_timeout(Duration::from_secs(120));
        release_tx.send(()).unwrap();
        assert_eq!(stalled.join().unwrap(), Some(0));
        other.join().unwrap();
        let got =
            got.expect("a consumer spun on the closed, drained ring while another was stalled");
        assert_eq!(got, (1..=FIRST_RING).collect::<Vec<_>>());
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn stalled_consumer_does_not_trap_pop() {
        stalled_consumer_does_not_trap_the_others(false);
    }

    #[test]
    fn stalled_consumer_does_not_trap_pop_batch() {
        stalled_consumer_does_not_trap_the_others(true);
    }

    #[test]
    fn drop_frees_remaining_strings() {
        let q: LockFreeQueue<String> = (0..200).map(|i| i.to_string()).collect();
        assert_eq!(q.pop().as_deref(), Some("0"));
        drop(q);
    }
}
