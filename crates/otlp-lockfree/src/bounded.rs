//! [`BoundedQueue`]: a bounded MPMC ring with batch operations.

use core::fmt;
use core::mem::{self, MaybeUninit};
use core::ptr;

use crossbeam_utils::CachePadded;

use crate::error::CapacityError;
use crate::sync::{AtomicUsize, Backoff, Ordering, UnsafeCell, fence};
use crate::unwind::drain_resuming;

/// One cell of the ring.
///
/// `stamp` says what the slot holds for which position (Vyukov's sequence
/// number): `stamp == pos` means "empty, waiting for the producer of
/// position `pos`"; `stamp == pos + 1` means "full, holding the value of
/// position `pos`".
struct Slot<T> {
    stamp: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// A bounded multi-producer multi-consumer FIFO queue on a fixed ring buffer.
///
/// The design follows Dmitry Vyukov's bounded MPMC queue (as used by
/// crossbeam's `ArrayQueue`): every slot carries a stamp, producers claim a
/// position by a compare-and-swap on the cache-padded `tail`, consumers on
/// the cache-padded `head`, and a slot's stamp tells whether it is ready for
/// the claimant's lap. A position is `lap | index`, so stamps never repeat
/// within `usize::MAX / capacity` laps (no ABA in practice).
///
/// On top of that, [`push_batch`](Self::push_batch),
/// [`push_from_vec`](Self::push_from_vec) and [`pop_batch`](Self::pop_batch)
/// claim a whole run of ready slots with **one** compare-and-swap: they first
/// scan the stamps ahead of the counter, then move the counter past every
/// slot found ready. Since a claim only ever covers slots whose stamps were
/// seen ready, and the counter did not move between the scan and the
/// successful CAS, nobody else can own any of those slots: batch and single
/// operations mix freely.
///
/// [`force_push`](Self::force_push) implements "keep the newest": when the
/// queue is full it evicts the oldest item and returns it.
///
/// # Progress
///
/// Like every Vyukov-style ring, an operation that claimed a slot must finish
/// writing (or reading) it before the item is visible (or the slot reusable):
/// a thread descheduled in that window delays the others at that one slot.
/// No operation ever waits for a lock, and no operation allocates (except
/// [`pop_batch`](Self::pop_batch) growing the caller's `Vec`).
///
/// # Examples
///
/// ```
/// use otlp_lockfree::BoundedQueue;
///
/// let q = BoundedQueue::new(2).unwrap();
/// assert_eq!(q.push(1), Ok(()));
/// assert_eq!(q.push(2), Ok(()));
/// assert_eq!(q.push(3), Err(3)); // full: the item comes back
/// assert_eq!(q.force_push(3), Some(1)); // keep the newest, evict the oldest
/// let mut out = Vec::new();
/// assert_eq!(q.pop_batch(&mut out, 10), 2);
/// assert_eq!(out, [2, 3]);
/// assert_eq!(q.pop(), None);
/// ```
pub struct BoundedQueue<T> {
    /// Next position to pop.
    head: CachePadded<AtomicUsize>,
    /// Next position to push.
    tail: CachePadded<AtomicUsize>,
    /// The ring; `buffer.len() == cap`.
    buffer: Box<[Slot<T>]>,
    /// Capacity (number of slots).
    cap: usize,
    /// `(cap + 1).next_power_of_two()`: the stride of one lap in a position.
    one_lap: usize,
}

// SAFETY: the queue owns its `T`s and hands each one to exactly one thread
// (the producer that wrote it moves it in, the consumer that claimed it
// moves it out), so sending the queue or sharing it is sound exactly when
// `T` may be sent between threads. Values are never accessed through
// `&T` by more than one thread, so `T: Sync` is not needed.
unsafe impl<T: Send> Send for BoundedQueue<T> {}
// SAFETY: see the `Send` impl: all shared access goes through the atomic
// slot protocol that gives each value to exactly one thread.
unsafe impl<T: Send> Sync for BoundedQueue<T> {}

impl<T> BoundedQueue<T> {
    /// The largest capacity accepted for this element type.
    pub fn max_capacity() -> usize {
        let slot = mem::size_of::<Slot<T>>().max(1);
        // Positions need two spare high bits for the lap counter, and the
        // buffer must fit in an allocation (`isize::MAX` bytes).
        (isize::MAX as usize / slot).min(1usize << (usize::BITS - 2))
    }

    /// Creates a queue that holds at most `capacity` items.
    ///
    /// # Errors
    ///
    /// [`CapacityError::Zero`] when `capacity` is 0,
    /// [`CapacityError::TooLarge`] when it exceeds [`Self::max_capacity`] or
    /// the buffer cannot be allocated.
    pub fn new(capacity: usize) -> Result<Self, CapacityError> {
        if capacity == 0 {
            return Err(CapacityError::Zero);
        }
        let max = Self::max_capacity();
        let too_large = CapacityError::TooLarge {
            requested: capacity,
            max,
        };
        if capacity > max {
            return Err(too_large);
        }
        let mut slots = Vec::new();
        if slots.try_reserve_exact(capacity).is_err() {
            return Err(too_large);
        }
        slots.extend((0..capacity).map(|i| Slot {
            stamp: AtomicUsize::new(i),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }));
        Ok(Self {
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            buffer: slots.into_boxed_slice(),
            cap: capacity,
            one_lap: (capacity + 1).next_power_of_two(),
        })
    }

    /// The slot a position maps to.
    #[inline(always)]
    fn slot(&self, pos: usize) -> &Slot<T> {
        let index = pos & (self.one_lap - 1);
        debug_assert!(index < self.cap);
        // SAFETY: every position stored in `head`/`tail` or derived with
        // `next` has an index part below `cap` (`next` wraps to index 0 at
        // `cap`), and `buffer.len() == cap`.
        unsafe { self.buffer.get_unchecked(index) }
    }

    /// The position after `pos`.
    #[inline(always)]
    fn next(&self, pos: usize) -> usize {
        let index = pos & (self.one_lap - 1);
        if index + 1 < self.cap {
            pos + 1
        } else {
            (pos & !(self.one_lap - 1)).wrapping_add(self.one_lap)
        }
    }

    /// The position `n` places after `pos`, for `n <= cap`.
    #[inline(always)]
    fn advance(&self, pos: usize, n: usize) -> usize {
        debug_assert!(n <= self.cap);
        let index = pos & (self.one_lap - 1);
        if index + n < self.cap {
            pos + n
        } else {
            (pos & !(self.one_lap - 1))
                .wrapping_add(self.one_lap)
                .wrapping_add(index + n - self.cap)
        }
    }

    /// Calls `f(slot, pos)` for the `n <= cap` positions from `start` on, in
    /// order, until `f` returns false; returns how many calls returned true.
    ///
    /// A run wraps the ring end at most once, so it is walked as at most two
    /// contiguous slices: the batch loops then cost a load or store per slot
    /// instead of also recomputing each position's successor.
    #[inline(always)]
    fn for_run(&self, start: usize, n: usize, mut f: impl FnMut(&Slot<T>, usize) -> bool) -> usize {
        debug_assert!(n <= self.cap);
        let mut done = 0;
        let mut pos = start;
        while done < n {
            let index = pos & (self.one_lap - 1);
            let len = (self.cap - index).min(n - done);
            // SAFETY: `index < cap` (see `slot`) and `len <= cap - index`, so
            // the range lies within `buffer`, whose length is `cap`.
            let run = unsafe { self.buffer.get_unchecked(index..index + len) };
            for (k, slot) in run.iter().enumerate() {
                if !f(slot, pos.wrapping_add(k)) {
                    return done + k;
                }
            }
            done += len;
            pos = self.advance(pos, len);
        }
        done
    }

    /// Pushes `value` at the back.
    ///
    /// # Errors
    ///
    /// When the queue is full the value is handed back as `Err(value)`.
    pub fn push(&self, value: T) -> Result<(), T> {
        let backoff = Backoff::new();
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(tail);
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == tail {
                // The slot is empty and waiting for this position.
                let new_tail = self.next(tail);
                match self.tail.compare_exchange_weak(
                    tail,
                    new_tail,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: the CAS made this thread the only producer
                        // of position `tail`, and the stamp (acquired above)
                        // says its previous consumer has finished with it.
                        unsafe { slot.value.with_mut(|p| p.write(MaybeUninit::new(value))) };
                        slot.stamp.store(tail.wrapping_add(1), Ordering::Release);
                        return Ok(());
                    }
                    Err(current) => {
                        tail = current;
                        backoff.spin();
                    }
                }
            } else if stamp.wrapping_add(self.one_lap) == tail.wrapping_add(1) {
                // The slot still holds the previous lap's value: full unless
                // a consumer already claimed it.
                fence(Ordering::SeqCst);
                let head = self.head.load(Ordering::Relaxed);
                if head.wrapping_add(self.one_lap) == tail {
                    return Err(value);
                }
                backoff.spin();
                tail = self.tail.load(Ordering::Relaxed);
            } else {
                // Another producer claimed `tail` and we saw a stale value.
                backoff.snooze();
                tail = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Pushes `value`; when the queue is full, evicts the oldest item and
    /// returns it ("keep the newest"). Returns `None` when nothing was
    /// evicted.
    pub fn force_push(&self, value: T) -> Option<T> {
        let backoff = Backoff::new();
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(tail);
            let new_tail = self.next(tail);
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == tail {
                match self.tail.compare_exchange_weak(
                    tail,
                    new_tail,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: as in `push`: the CAS gave this thread
                        // position `tail`, whose slot the stamp shows free.
                        unsafe { slot.value.with_mut(|p| p.write(MaybeUninit::new(value))) };
                        slot.stamp.store(tail.wrapping_add(1), Ordering::Release);
                        return None;
                    }
                    Err(current) => {
                        tail = current;
                        backoff.spin();
                    }
                }
            } else if stamp.wrapping_add(self.one_lap) == tail.wrapping_add(1) {
                fence(Ordering::SeqCst);
                // The slot holds position `tail - one_lap`. If that is the
                // head, the queue is full: take the consumer's role for it by
                // moving the head past it.
                let head = tail.wrapping_sub(self.one_lap);
                let new_head = new_tail.wrapping_sub(self.one_lap);
                if self
                    .head
                    .compare_exchange_weak(head, new_head, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
                {
                    // Nobody else can move `tail` now: its slot's stamp is not
                    // `tail` (so no producer, single or batch, can claim it)
                    // until we store the new stamp below.
                    self.tail.store(new_tail, Ordering::SeqCst);
                    // SAFETY: the head CAS made this thread the consumer of
                    // position `head` (whose value the acquired stamp shows
                    // written) and, with the tail store, the producer of
                    // position `tail`, which is the same slot.
                    let old = unsafe {
                        slot.value
                            .with_mut(|p| ptr::replace(p, MaybeUninit::new(value)).assume_init())
                    };
                    slot.stamp.store(tail.wrapping_add(1), Ordering::Release);
                    return Some(old);
                }
                backoff.spin();
                tail = self.tail.load(Ordering::Relaxed);
            } else {
                backoff.snooze();
                tail = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Pops the item at the front, or `None` when the queue is empty.
    pub fn pop(&self) -> Option<T> {
        let backoff = Backoff::new();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(head);
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == head.wrapping_add(1) {
                // Full, holding position `head`.
                let new_head = self.next(head);
                match self.head.compare_exchange_weak(
                    head,
                    new_head,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: the CAS made this thread the only consumer
                        // of position `head`, and the acquired stamp shows its
                        // producer finished writing it.
                        let value = unsafe { slot.value.with(|p| p.read().assume_init()) };
                        slot.stamp
                            .store(head.wrapping_add(self.one_lap), Ordering::Release);
                        return Some(value);
                    }
                    Err(current) => {
                        head = current;
                        backoff.spin();
                    }
                }
            } else if stamp == head {
                // Empty for this lap: the queue is empty unless a producer
                // already claimed this position.
                fence(Ordering::SeqCst);
                let tail = self.tail.load(Ordering::Relaxed);
                if tail == head {
                    return None;
                }
                backoff.spin();
                head = self.head.load(Ordering::Relaxed);
            } else {
                backoff.snooze();
                head = self.head.load(Ordering::Relaxed);
            }
        }
    }

    /// Pops the item at the front if it is ready now, never waiting on
    /// another thread: `None` when the queue is empty, but also while the
    /// front position is claimed and not yet written by its producer, or
    /// popped and not yet released by a consumer of the previous lap (where
    /// [`pop`](Self::pop) spins until that thread is done).
    ///
    /// For a consumer that sleeps until a producer wakes it after each push:
    /// a producer preempted in the middle of its push then costs a sleep
    /// until its wake-up, rather than a spin for the rest of the consumer's
    /// time slice.
    pub fn try_pop(&self) -> Option<T> {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(head);
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == head.wrapping_add(1) {
                match self.head.compare_exchange_weak(
                    head,
                    self.next(head),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: as in `pop`: the CAS made this thread the
                        // only consumer of position `head`, and the acquired
                        // stamp shows its producer finished writing it.
                        let value = unsafe { slot.value.with(|p| p.read().assume_init()) };
                        slot.stamp
                            .store(head.wrapping_add(self.one_lap), Ordering::Release);
                        return Some(value);
                    }
                    // Another consumer took it (or a spurious failure):
                    // the next position may be ready.
                    Err(current) => head = current,
                }
            } else if stamp == head {
                // Empty, or a producer is still writing this position.
                return None;
            } else {
                // Either `head` is stale (another consumer moved on) or the
                // previous lap's consumer has not released the slot yet;
                // only the first is worth another look.
                let current = self.head.load(Ordering::Relaxed);
                if current == head {
                    return None;
                }
                head = current;
            }
        }
    }

    /// Pushes every item of `items` that fits, in order, claiming runs of
    /// free slots with one compare-and-swap each, and returns the items that
    /// did not fit (the tail of the input, in order; empty when all fit).
    ///
    /// Passing a `Vec<T>` reuses its allocation for the returned rest.
    pub fn push_batch<I: IntoIterator<Item = T>>(&self, items: I) -> Vec<T> {
        let mut items: Vec<T> = items.into_iter().collect();
        self.push_from_vec(&mut items);
        items
    }

    /// Pushes as many items from the front of `items` as fit, in order, and
    /// removes them from `items`; what did not fit stays in `items`.
    /// Returns how many were pushed.
    ///
    /// This never allocates.
    pub fn push_from_vec(&self, items: &mut Vec<T>) -> usize {
        let total = items.len();
        let mut done = 0;
        let backoff = Backoff::new();
        let mut tail = self.tail.load(Ordering::Relaxed);
        'outer: while done < total {
            let want = (total - done).min(self.cap);
            // Scan the run of slots that are free for their position.
            let n = self.for_run(tail, want, |slot, pos| {
                slot.stamp.load(Ordering::Acquire) == pos // free for `pos`
            });
            if n > 0 {
                let pos = self.advance(tail, n);
                match self.tail.compare_exchange_weak(
                    tail,
                    pos,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: `done + n <= total == items.len()`, so the
                        // run read below is in bounds.
                        let mut src = unsafe { items.as_ptr().add(done) };
                        self.for_run(tail, n, |slot, p| {
                            // SAFETY: `src` walks `[done, done + n)`; each
                            // item is moved out exactly once and the vector's
                            // length is fixed up below before anything else
                            // can observe it.
                            let value = unsafe { ptr::read(src) };
                            // SAFETY: as above, `src` stays within the
                            // vector's allocation (one past its end at most).
                            src = unsafe { src.add(1) };
                            // SAFETY: the CAS moved `tail` over `[tail, pos)`
                            // while it still equalled the `tail` we scanned
                            // from, so this thread is the only producer of
                            // each of those positions, and each stamp was seen
                            // (acquired) free for it.
                            unsafe { slot.value.with_mut(|q| q.write(MaybeUninit::new(value))) };
                            slot.stamp.store(p.wrapping_add(1), Ordering::Release);
                            true
                        });
                        done += n;
                        tail = pos;
                        continue 'outer;
                    }
                    Err(current) => {
                        tail = current;
                        backoff.spin();
                        continue 'outer;
                    }
                }
            }
            // Nothing free at `tail`: full, or contention.
            let stamp = self.slot(tail).stamp.load(Ordering::Acquire);
            if stamp.wrapping_add(self.one_lap) == tail.wrapping_add(1) {
                fence(Ordering::SeqCst);
                let head = self.head.load(Ordering::Relaxed);
                if head.wrapping_add(self.one_lap) == tail {
                    break;
                }
                backoff.spin();
            } else if stamp != tail {
                backoff.snooze();
            }
            tail = self.tail.load(Ordering::Relaxed);
        }
        let rest = total - done;
        // SAFETY: items `[0, done)` were moved into the queue above and must
        // not be dropped again; the `rest` items after them are still owned
        // by the vector and are shifted to the front (`ptr::copy` handles the
        // overlap) before the length is set to exactly that many.
        unsafe {
            let base = items.as_mut_ptr();
            ptr::copy(base.add(done), base, rest);
            items.set_len(rest);
        }
        done
    }

    /// Pops up to `max` items from the front, appending them to `out` in
    /// FIFO order, and returns how many were popped (0 when the queue is
    /// empty or `max == 0`).
    ///
    /// Every run of ready items is claimed with one compare-and-swap, so a
    /// batch costs about as much contention as a single [`pop`](Self::pop).
    /// The call returns what was ready in one claim: it may return fewer than
    /// `max` even though producers are still filling the queue.
    pub fn pop_batch(&self, out: &mut Vec<T>, max: usize) -> usize {
        let max = max.min(self.cap);
        if max == 0 {
            return 0;
        }
        let backoff = Backoff::new();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let n = self.for_run(head, max, |slot, pos| {
                slot.stamp.load(Ordering::Acquire) == pos.wrapping_add(1) // full for `pos`
            });
            if n > 0 {
                let pos = self.advance(head, n);
                // Reserve before claiming so nothing can fail once we own the
                // slots.
                out.reserve(n);
                match self.head.compare_exchange_weak(
                    head,
                    pos,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let len = out.len();
                        // SAFETY: `reserve(n)` above made room for `n` more
                        // items after `len`.
                        let mut dst = unsafe { out.as_mut_ptr().add(len) };
                        self.for_run(head, n, |slot, p| {
                            // SAFETY: the CAS moved `head` over `[head, pos)`
                            // while it still equalled the `head` we scanned
                            // from, so this thread is the only consumer of
                            // each of those positions, and each stamp was seen
                            // (acquired) full for it.
                            let value = unsafe { slot.value.with(|q| q.read().assume_init()) };
                            slot.stamp
                                .store(p.wrapping_add(self.one_lap), Ordering::Release);
                            // SAFETY: `dst` walks the `n` reserved spare slots
                            // `[len, len + n)`.
                            unsafe {
                                dst.write(value);
                                dst = dst.add(1);
                            }
                            true
                        });
                        // SAFETY: exactly the `n` items after `len` were
                        // written above; nothing between the claim and here
                        // can panic, so none is lost or dropped twice.
                        unsafe { out.set_len(len + n) };
                        return n;
                    }
                    Err(current) => {
                        head = current;
                        backoff.spin();
                        continue;
                    }
                }
            }
            let stamp = self.slot(head).stamp.load(Ordering::Acquire);
            if stamp == head {
                fence(Ordering::SeqCst);
                let tail = self.tail.load(Ordering::Relaxed);
                if tail == head {
                    return 0;
                }
                backoff.spin();
            } else if stamp != head.wrapping_add(1) {
                backoff.snooze();
            }
            head = self.head.load(Ordering::Relaxed);
        }
    }

    /// Number of items in the queue (a snapshot: it may change at once).
    pub fn len(&self) -> usize {
        loop {
            let tail = self.tail.load(Ordering::SeqCst);
            let head = self.head.load(Ordering::SeqCst);
            // A consistent pair: `tail` did not move while `head` was read.
            if self.tail.load(Ordering::SeqCst) == tail {
                let hix = head & (self.one_lap - 1);
                let tix = tail & (self.one_lap - 1);
                return if hix < tix {
                    tix - hix
                } else if hix > tix {
                    self.cap - hix + tix
                } else if tail == head {
                    0
                } else {
                    self.cap
                };
            }
        }
    }

    /// The most items the queue holds.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Whether the queue was empty at the moment of the call.
    pub fn is_empty(&self) -> bool {
        let head = self.head.load(Ordering::SeqCst);
        let tail = self.tail.load(Ordering::SeqCst);
        tail == head
    }

    /// Whether the queue was full at the moment of the call.
    pub fn is_full(&self) -> bool {
        let tail = self.tail.load(Ordering::SeqCst);
        let head = self.head.load(Ordering::SeqCst);
        head.wrapping_add(self.one_lap) == tail
    }
}

impl<T> Drop for BoundedQueue<T> {
    fn drop(&mut self) {
        if mem::needs_drop::<T>() {
            // `pop` releases an item's slot before the item is dropped, so a
            // resumed drain after a panicking destructor starts at the next
            // item: every item is dropped once, none is leaked.
            drain_resuming(|| while self.pop().is_some() {});
        }
    }
}

impl<T> fmt::Debug for BoundedQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedQueue")
            .field("len", &self.len())
            .field("capacity", &self.cap)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize as Counter;

    #[test]
    fn zero_capacity_is_rejected() {
        assert_eq!(BoundedQueue::<u8>::new(0).unwrap_err(), CapacityError::Zero);
        assert!(matches!(
            BoundedQueue::<u8>::new(usize::MAX),
            Err(CapacityError::TooLarge { .. })
        ));
    }

    #[test]
    fn try_pop_is_fifo_and_never_waits() {
        let q = BoundedQueue::new(2).unwrap();
        assert_eq!(q.try_pop(), None);
        for lap in 0..4 {
            q.push(lap * 10).unwrap();
            q.push(lap * 10 + 1).unwrap();
            assert_eq!(q.try_pop(), Some(lap * 10));
            assert_eq!(q.pop(), Some(lap * 10 + 1));
            assert_eq!(q.try_pop(), None);
        }
        // A claimed, unwritten front position reads as not ready (where
        // `pop` would spin): simulate the producer between its claim and
        // its stamp store.
        let tail = q.tail.load(Ordering::Relaxed);
        q.tail.store(q.next(tail), Ordering::Relaxed);
        assert_eq!(q.try_pop(), None);
        q.tail.store(tail, Ordering::Relaxed);
        assert!(q.is_empty());
    }

    #[test]
    fn fifo_full_empty() {
        let q = BoundedQueue::new(3).unwrap();
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
        for lap in 0..5 {
            for i in 0..3 {
                assert_eq!(q.push(lap * 10 + i), Ok(()));
            }
            assert!(q.is_full());
            assert_eq!(q.len(), 3);
            assert_eq!(q.push(99), Err(99));
            for i in 0..3 {
                assert_eq!(q.pop(), Some(lap * 10 + i));
            }
            assert_eq!(q.pop(), None);
        }
        assert_eq!(q.capacity(), 3);
    }

    #[test]
    fn force_push_evicts_oldest() {
        let q = BoundedQueue::new(2).unwrap();
        assert_eq!(q.force_push(1), None);
        assert_eq!(q.force_push(2), None);
        assert_eq!(q.force_push(3), Some(1));
        assert_eq!(q.force_push(4), Some(2));
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some(3));
        assert_eq!(q.force_push(5), None);
        assert_eq!(q.pop(), Some(4));
        assert_eq!(q.pop(), Some(5));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn batches_wrap_and_return_rest() {
        let q = BoundedQueue::new(5).unwrap();
        let mut out = Vec::new();
        assert_eq!(q.pop_batch(&mut out, 0), 0);
        assert_eq!(q.pop_batch(&mut out, 4), 0);
        assert!(q.push_batch(0..3).is_empty());
        assert_eq!(q.pop_batch(&mut out, 2), 2);
        assert_eq!(out, [0, 1]);
        // Wraps around the ring end; 3 of the 7 items do not fit.
        let rest = q.push_batch(vec![3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(rest, [7, 8, 9]);
        assert!(q.is_full());
        out.clear();
        assert_eq!(q.pop_batch(&mut out, 100), 5);
        assert_eq!(out, [2, 3, 4, 5, 6]);
        let mut v = vec![1, 2];
        assert_eq!(q.push_from_vec(&mut v), 2);
        assert!(v.is_empty());
    }

    #[derive(Debug)]
    struct Counted(Arc<Counter>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn drop_drops_remaining_once() {
        let drops = Arc::new(Counter::new(0));
        let q = BoundedQueue::new(4).unwrap();
        for _ in 0..3 {
            assert!(q.push(Counted(drops.clone())).is_ok());
        }
        drop(q.pop());
        let rest = q.push_batch((0..4).map(|_| Counted(drops.clone())));
        assert_eq!(rest.len(), 2);
        drop(rest);
        assert_eq!(drops.load(Ordering::Relaxed), 3);
        drop(q);
        assert_eq!(drops.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn threads_conserve_items() {
        let n = if cfg!(miri) { 50 } else { 20_000 };
        let q = Arc::new(BoundedQueue::new(8).unwrap());
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..n {
                        let mut v = p * n + i;
                        while let Err(back) = q.push(v) {
                            v = back;
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let mut seen = vec![false; 2 * n];
        let mut got = 0;
        let mut out = Vec::new();
        while got < 2 * n {
            out.clear();
            if q.pop_batch(&mut out, 3) == 0 {
                std::thread::yield_now();
            }
            for &v in &out {
                assert!(!seen[v]);
                seen[v] = true;
                got += 1;
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        assert!(q.is_empty());
    }
}
