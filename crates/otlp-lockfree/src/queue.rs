//! [`LockFreeQueue`]: an unbounded MPMC FIFO of linked blocks, each freed by
//! its last reader, with one spare block kept for reuse.

use core::fmt;
use core::marker::PhantomData;
use core::mem::{self, MaybeUninit};
use core::ptr;

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicBool, AtomicPtr, AtomicUsize, Backoff, Ordering, UnsafeCell, fence};
use crate::unwind::drain_resuming;

/// Positions per block: [`BLOCK_CAP`] item slots, then one position that
/// stands for "the next block is being linked in" and never holds an item.
#[cfg(not(loom))]
const LAP: usize = 64;
#[cfg(loom)]
const LAP: usize = 3;
/// Item slots per block.
const BLOCK_CAP: usize = LAP - 1;
/// Indices count positions in steps of `1 << SHIFT`; the bits below are flags.
const SHIFT: usize = 1;
/// Flag in the head index: the head's block is not the tail's block, so every
/// slot left in it has been claimed by a producer and a consumer need not
/// read the tail index to know that an item is there.
const HAS_NEXT: usize = 1;

// Position arithmetic must stay consistent when an index wraps (32-bit
// targets): `LAP` must divide the number of positions an index can count.
#[cfg(not(loom))]
const _: () = assert!(LAP.is_power_of_two());

// Blocks allocated by this thread; the unit tests check that a steady load
// allocates none.
#[cfg(all(test, not(loom)))]
thread_local! {
    static BLOCKS_ALLOCATED: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

struct Slot<T> {
    value: UnsafeCell<MaybeUninit<T>>,
    /// Stored `true` by the producer once `value` is written.
    written: AtomicBool,
    /// Swapped to `true` by the slot's consumer when it is done with the
    /// slot, and by the thread freeing the block when it reaches the slot.
    /// Whichever swaps second finds `true` and carries on freeing the block:
    /// the freer walks past a slot whose consumer has finished, and a
    /// consumer that finishes after the freer stopped at its slot takes the
    /// freeing over from the next slot on (the DESTROY hand-off).
    handoff: AtomicBool,
}

impl<T> Slot<T> {
    #[cfg(loom)]
    fn new() -> Self {
        Self {
            value: UnsafeCell::new(MaybeUninit::uninit()),
            written: AtomicBool::new(false),
            handoff: AtomicBool::new(false),
        }
    }

    /// Waits for the producer that claimed this slot to finish writing it.
    fn wait_written(&self) {
        let backoff = Backoff::new();
        while !self.written.load(Ordering::Acquire) {
            backoff.snooze();
        }
    }

    /// Makes the slot fresh for the block's next use. Only the thread that
    /// knows the slot's consumer is done calls this; the reset is published
    /// with the block (the spare's compare-and-swap).
    fn reset(&self) {
        self.written.store(false, Ordering::Relaxed);
        self.handoff.store(false, Ordering::Relaxed);
    }
}

struct Block<T> {
    /// The block after this one, set by the producer that claimed this
    /// block's last slot.
    next: AtomicPtr<Block<T>>,
    slots: [Slot<T>; BLOCK_CAP],
}

impl<T> Block<T> {
    /// A fresh, empty block, leaked as a raw pointer (freed by
    /// [`Block::free`]).
    fn alloc() -> *mut Self {
        #[cfg(all(test, not(loom)))]
        BLOCKS_ALLOCATED.with(|n| n.set(n.get() + 1));
        #[cfg(not(loom))]
        // SAFETY: all-zero bytes are a valid empty block: a null `next`,
        // `false` flags, and values that are `MaybeUninit`.
        let block = unsafe { Box::<Self>::new_zeroed().assume_init() };
        // Loom's atomics and cells are handles into the model, not bytes.
        #[cfg(loom)]
        let block = Box::new(Self {
            next: AtomicPtr::new(ptr::null_mut()),
            slots: core::array::from_fn(|_| Slot::new()),
        });
        Box::into_raw(block)
    }

    /// Frees a block from [`Block::alloc`]. Its values are `MaybeUninit`, so
    /// no item is dropped here.
    ///
    /// # Safety
    ///
    /// `this` came from `alloc`, is freed once, and no thread uses it after.
    unsafe fn free(this: *mut Self) {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(this) });
    }

    /// Slot `i` of the block at `this`.
    ///
    /// Blocks are handled through raw pointers, and references are taken to
    /// one slot at a time, never to a whole block: another thread may free
    /// the block as soon as this thread's last access to its slot is done.
    ///
    /// # Safety
    ///
    /// `this` is alive and `i < BLOCK_CAP`.
    #[inline(always)]
    unsafe fn slot<'a>(this: *const Self, i: usize) -> &'a Slot<T> {
        debug_assert!(i < BLOCK_CAP);
        // SAFETY: the caller's contract; `addr_of!` takes no reference to the
        // block itself.
        unsafe { &*ptr::addr_of!((*this).slots).cast::<Slot<T>>().add(i) }
    }

    /// Waits until the producer that claimed the last slot has linked the
    /// next block.
    ///
    /// # Safety
    ///
    /// `this` is alive.
    unsafe fn wait_next(this: *const Self) -> *mut Self {
        let backoff = Backoff::new();
        loop {
            // SAFETY: the caller's contract.
            let next = unsafe { (*this).next.load(Ordering::Acquire) };
            if !next.is_null() {
                return next;
            }
            backoff.snooze();
        }
    }
}

/// One end of the queue: an index and the block it points into.
struct Position<T> {
    /// Position count `<< SHIFT`, plus [`HAS_NEXT`] in the head's.
    index: AtomicUsize,
    block: AtomicPtr<Block<T>>,
}

impl<T> Position<T> {
    fn new(block: *mut Block<T>) -> Self {
        Self {
            index: AtomicUsize::new(0),
            block: AtomicPtr::new(block),
        }
    }
}

/// An unbounded lock-free multi-producer multi-consumer FIFO queue.
///
/// The queue is a linked list of *blocks* of 63 slots. A producer claims a
/// position with one compare-and-swap on the tail index and writes its item;
/// a consumer claims one on the head index and takes the item. Each slot has
/// two flags, *written* (set by its producer) and *hand-off*, and no epoch
/// or hazard pointer is involved: a thread touches a block only after its
/// compare-and-swap claimed a slot in it, and a block is freed only once
/// every one of its slots was claimed and its consumer is done with it.
///
/// * The producer that claims a block's last slot links the next block; the
///   other producers wait for that (a few instructions) instead of
///   allocating blocks of their own.
/// * The consumer that claims a block's last slot moves the head to the next
///   block and then frees the old one, walking its slots: where a consumer
///   is still busy with a slot, the freer leaves the rest of the walk to it
///   (the slot's hand-off flag), so nobody waits for a slow consumer.
/// * A freed block is kept as the queue's one *spare* and reused by the next
///   producer that needs a block; only when a spare is already kept is a
///   block returned to the allocator. A steady push/pop load therefore
///   cycles between two blocks and allocates nothing; a backlog allocates a
///   block per 63 items while it grows.
///
/// FIFO order holds globally (in particular per producer): positions are
/// claimed in index order on both sides.
///
/// # Progress
///
/// Claims are lock-free. Three short windows make other threads wait for a
/// thread that is preempted inside them, as in crossbeam's `SegQueue`: a
/// producer between claiming a slot and writing it delays the consumer of
/// that slot; a producer that claimed a block's last slot delays the other
/// producers until it has linked the next block; a consumer that claimed a
/// block's last slot delays the other consumers until it has moved the head
/// (it does so before reading its own item). A consumer preempted while it
/// holds an item delays nobody: the block it is reading is handed to it to
/// free.
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
    head: CachePadded<Position<T>>,
    tail: CachePadded<Position<T>>,
    /// A freed block kept for the next producer that needs one, or null.
    spare: CachePadded<AtomicPtr<Block<T>>>,
    /// The queue owns its items (for the drop checker).
    _items: PhantomData<T>,
}

// SAFETY: each value is moved in by one producer and out by exactly one
// consumer; no `&T` is shared, so `T: Send` suffices.
unsafe impl<T: Send> Send for LockFreeQueue<T> {}
// SAFETY: see the `Send` impl.
unsafe impl<T: Send> Sync for LockFreeQueue<T> {}

/// Offset of an index's position in its block.
#[inline(always)]
fn offset(index: usize) -> usize {
    (index >> SHIFT) % LAP
}

/// Whether two indices are in the same block.
#[inline(always)]
fn same_block(a: usize, b: usize) -> bool {
    (a >> SHIFT) / LAP == (b >> SHIFT) / LAP
}

impl<T> LockFreeQueue<T> {
    /// Creates an empty queue (one block of 63 slots).
    pub fn new() -> Self {
        let block = Block::alloc();
        Self {
            head: CachePadded::new(Position::new(block)),
            tail: CachePadded::new(Position::new(block)),
            spare: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
            _items: PhantomData,
        }
    }

    /// Pushes `value` at the back. Never fails: the queue grows as needed.
    pub fn push(&self, value: T) {
        let backoff = Backoff::new();
        let mut tail = self.tail.index.load(Ordering::Acquire);
        let mut block = self.tail.block.load(Ordering::Acquire);
        loop {
            let offset = offset(tail);
            if offset == BLOCK_CAP {
                // Another producer claimed the last slot and is linking the
                // next block.
                backoff.snooze();
                tail = self.tail.index.load(Ordering::Acquire);
                block = self.tail.block.load(Ordering::Acquire);
                continue;
            }
            let new_tail = tail.wrapping_add(1 << SHIFT);
            match self.tail.index.compare_exchange_weak(
                tail,
                new_tail,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if offset + 1 == BLOCK_CAP {
                        // SAFETY: this thread claimed the block's last slot,
                        // so the block is alive (its consumers cannot finish
                        // it before this slot is written) and `new_tail` is
                        // the block's end.
                        unsafe { self.link_next(block, new_tail) };
                    }
                    // SAFETY: the CAS made this thread the only producer of
                    // position `tail`, and `block` is its block: it was
                    // loaded after `tail` (whose value came from, or after,
                    // the store that published the block) and the CAS found
                    // the index unchanged. The block stays alive until this
                    // slot's consumer is done, which needs `written` first.
                    unsafe {
                        let slot = Block::slot(block, offset);
                        slot.value.with_mut(|p| p.write(MaybeUninit::new(value)));
                        slot.written.store(true, Ordering::Release);
                    }
                    return;
                }
                Err(current) => {
                    tail = current;
                    block = self.tail.block.load(Ordering::Acquire);
                    backoff.spin();
                }
            }
        }
    }

    /// Links a block after `block` and moves the tail onto it. Run by the
    /// producer that claimed `block`'s last slot, before it writes its item,
    /// so that the other producers (waiting for the tail to leave `end`) go
    /// on at once.
    ///
    /// # Safety
    ///
    /// The caller claimed `block`'s last slot and has not written it yet;
    /// `end` is the tail index that claim stored.
    unsafe fn link_next(&self, block: *mut Block<T>, end: usize) {
        let next = self.take_spare().unwrap_or_else(Block::alloc);
        // The tail first: a consumer that reaches `next` through `block.next`
        // must find the tail index there already, or it would see head > tail.
        // This store's Release is more than needed (`queue-tail-block-release`,
        // a correct weakening in xtask's mutation list): producers load the
        // index (Acquire) before the block and use a block only with an
        // index read after the link, which the Release index store below
        // publishes together with the block.
        self.tail.block.store(next, Ordering::Release);
        self.tail
            .index
            .store(end.wrapping_add(1 << SHIFT), Ordering::Release);
        // SAFETY: the caller's contract keeps `block` alive.
        unsafe { (*block).next.store(next, Ordering::Release) };
    }

    /// The spare block, if one is kept (emptied, ready for reuse).
    fn take_spare(&self) -> Option<*mut Block<T>> {
        if self.spare.load(Ordering::Relaxed).is_null() {
            return None;
        }
        let block = self.spare.swap(ptr::null_mut(), Ordering::Acquire);
        (!block.is_null()).then_some(block)
    }

    /// Keeps the emptied `block` as the spare, or frees it if one is kept.
    ///
    /// # Safety
    ///
    /// No thread uses `block` any more, and every slot of it was reset.
    unsafe fn recycle(&self, block: *mut Block<T>) {
        // SAFETY: the caller's contract: this thread owns the block.
        unsafe { (*block).next.store(ptr::null_mut(), Ordering::Relaxed) };
        if self
            .spare
            .compare_exchange(ptr::null_mut(), block, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            // SAFETY: the caller's contract; it was not published as spare.
            unsafe { Block::free(block) };
        }
    }

    /// Frees `block` from slot `start` on: walks the slots before the last
    /// one and stops at the first whose consumer is still busy, leaving the
    /// rest of the walk to that consumer. Slots the walk passes, whose
    /// consumers are done, are reset on the way.
    ///
    /// # Safety
    ///
    /// Every slot of `block` has been claimed by a consumer; those before
    /// `start` and the last one were reset by threads done with them, and
    /// the caller is the only thread freeing the block (it holds the last
    /// slot, or it received the hand-off at slot `start - 1`).
    unsafe fn free_from(&self, block: *mut Block<T>, start: usize) {
        for i in start..BLOCK_CAP - 1 {
            // SAFETY: the block is alive until this walk ends; `i` in range.
            let slot = unsafe { Block::slot(block, i) };
            if !slot.handoff.load(Ordering::Acquire) && !slot.handoff.swap(true, Ordering::AcqRel) {
                // The slot's consumer swaps after this and continues.
                return;
            }
            // Its consumer is done (the acquire saw its release).
            slot.reset();
        }
        // SAFETY: every slot is reset and its consumer is done.
        unsafe { self.recycle(block) };
    }

    /// The consumer of slot `i` of `block` is done with it: frees the block
    /// when `i` is its last slot, or when the freer stopped at this slot.
    ///
    /// # Safety
    ///
    /// The caller claimed slot `i`, has read its item, and does not touch
    /// the block after this call.
    #[inline]
    unsafe fn release_slot(&self, block: *mut Block<T>, i: usize) {
        // SAFETY: the claimed, unreleased slot keeps the block alive.
        let slot = unsafe { Block::slot(block, i) };
        if i + 1 == BLOCK_CAP {
            slot.reset();
            // SAFETY: the last slot is claimed, so every slot is; this
            // thread holds it, so it is the only freer.
            unsafe { self.free_from(block, 0) };
        } else if slot.handoff.swap(true, Ordering::AcqRel) {
            slot.reset();
            // SAFETY: the freer stopped here and left the walk to this thread.
            unsafe { self.free_from(block, i + 1) };
        }
    }

    /// Releases the run `[start, end)` of slots of `block`, all claimed by
    /// the caller with one compare-and-swap and read.
    ///
    /// # Safety
    ///
    /// As for [`release_slot`](Self::release_slot), for each slot of the run.
    unsafe fn release_run(&self, block: *mut Block<T>, start: usize, end: usize) {
        if end == BLOCK_CAP {
            // The caller holds the last slot: nobody frees the block before
            // it does, so its other slots need no swap. The caller is also
            // the one that walks these flags (`release_slot` of the last
            // slot frees from 0 on this thread), so their Release is more
            // than needed (`queue-release-run-handoff`, a correct weakening
            // in xtask's mutation list); in the `else` branch another
            // consumer may be the freer, and there it is needed.
            for i in start..BLOCK_CAP - 1 {
                // SAFETY: claimed by the caller, the block is alive.
                unsafe { Block::slot(block, i) }
                    .handoff
                    .store(true, Ordering::Release);
            }
            // SAFETY: the caller's contract.
            unsafe { self.release_slot(block, BLOCK_CAP - 1) };
        } else {
            // `start` last: the freer walks up and stops at the first busy
            // slot, so it reaches the slots after `start` only once `start`
            // is released, and by then they are too. Only `start` can meet
            // the freer, so only `start` needs the swap.
            for i in start + 1..end {
                // SAFETY: claimed by the caller, the block is alive.
                unsafe { Block::slot(block, i) }
                    .handoff
                    .store(true, Ordering::Release);
            }
            // SAFETY: the caller's contract.
            unsafe { self.release_slot(block, start) };
        }
    }

    /// Moves the head from `block`, whose last slot the caller just claimed
    /// (storing `end` in the head index), to the next block.
    ///
    /// # Safety
    ///
    /// The caller claimed `block`'s last slot and has not released it.
    unsafe fn advance_head(&self, block: *mut Block<T>, end: usize) {
        // SAFETY: the caller's unreleased slot keeps `block` alive.
        let next = unsafe { Block::wait_next(block) };
        let mut index = (end & !HAS_NEXT).wrapping_add(1 << SHIFT);
        // SAFETY: no consumer has claimed a slot of `next` yet (the head is
        // still at `end`), so it is alive.
        if !unsafe { (*next).next.load(Ordering::Relaxed) }.is_null() {
            index |= HAS_NEXT;
        }
        // As for the tail: consumers load the index (Acquire) before the
        // block, so the index's Release store publishes the block and this
        // one's Release is more than needed (`queue-head-block-release`, a
        // correct weakening in xtask's mutation list).
        self.head.block.store(next, Ordering::Release);
        self.head.index.store(index, Ordering::Release);
    }

    /// The tail index when the queue holds something at `head`, `None` when
    /// it is empty. A tail read past `head` proves an item without a fence
    /// (the tail only grows); "empty" is confirmed after a full fence, so a
    /// push that completed before this call is always seen.
    #[inline]
    fn tail_beyond(&self, head: usize) -> Option<usize> {
        let tail = self.tail.index.load(Ordering::Relaxed);
        if tail >> SHIFT != head >> SHIFT {
            return Some(tail);
        }
        fence(Ordering::SeqCst);
        let tail = self.tail.index.load(Ordering::Relaxed);
        (tail >> SHIFT != head >> SHIFT).then_some(tail)
    }

    /// Pops the item at the front, or `None` when the queue is empty.
    pub fn pop(&self) -> Option<T> {
        self.pop_with(&mut None::<fn()>)
    }

    /// [`pop`](Self::pop) whose consumer runs `stall` after it claimed and
    /// read an item and before it released the item's slot, to model a
    /// consumer preempted in that window (the block cannot be freed without
    /// it, and must not wait for it). Only for tests and loom models.
    #[cfg(any(test, loom))]
    #[doc(hidden)]
    pub fn pop_stalled(&self, stall: impl FnOnce()) -> Option<T> {
        self.pop_with(&mut Some(stall))
    }

    /// Whether a freed block is kept as the spare. Only for tests and loom
    /// models, which check that a drained block is freed exactly when the
    /// last of its consumers is done.
    #[cfg(any(test, loom))]
    #[doc(hidden)]
    pub fn has_spare(&self) -> bool {
        !self.spare.load(Ordering::Acquire).is_null()
    }

    #[inline]
    fn pop_with(&self, stall: &mut Option<impl FnOnce()>) -> Option<T> {
        let backoff = Backoff::new();
        let mut head = self.head.index.load(Ordering::Acquire);
        let mut block = self.head.block.load(Ordering::Acquire);
        loop {
            let offset = offset(head);
            if offset == BLOCK_CAP {
                // Another consumer claimed the last slot and is moving the
                // head to the next block.
                backoff.snooze();
                head = self.head.index.load(Ordering::Acquire);
                block = self.head.block.load(Ordering::Acquire);
                continue;
            }
            let mut new_head = head.wrapping_add(1 << SHIFT);
            if head & HAS_NEXT == 0 {
                let tail = self.tail_beyond(head)?;
                if !same_block(head, tail) {
                    new_head |= HAS_NEXT;
                }
            }
            match self.head.index.compare_exchange_weak(
                head,
                new_head,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // SAFETY: the CAS made this thread the only consumer of
                    // position `head` in `block` (loaded after `head`, and
                    // the index did not change); a producer claimed the
                    // position, and the block stays alive until this thread
                    // releases the slot.
                    unsafe {
                        if offset + 1 == BLOCK_CAP {
                            self.advance_head(block, new_head);
                        }
                        let slot = Block::slot(block, offset);
                        slot.wait_written();
                        let value = slot.value.with(|p| p.read().assume_init());
                        if let Some(stall) = stall.take() {
                            stall();
                        }
                        self.release_slot(block, offset);
                        return Some(value);
                    }
                }
                Err(current) => {
                    head = current;
                    block = self.head.block.load(Ordering::Acquire);
                    backoff.spin();
                }
            }
        }
    }

    /// Pops up to `max` items from the front into `out` (appended in FIFO
    /// order) and returns how many; 0 when empty or when `max == 0`. The
    /// ready items of one block are claimed with one compare-and-swap.
    pub fn pop_batch(&self, out: &mut Vec<T>, max: usize) -> usize {
        self.pop_batch_with(out, max, &mut None::<fn()>)
    }

    /// [`pop_batch`](Self::pop_batch) whose consumer runs `stall` after it
    /// claimed and read its first run of items and before it released their
    /// slots. Only for the unit tests.
    #[cfg(all(test, not(loom)))]
    fn pop_batch_stalled(&self, out: &mut Vec<T>, max: usize, stall: impl FnOnce()) -> usize {
        self.pop_batch_with(out, max, &mut Some(stall))
    }

    fn pop_batch_with(
        &self,
        out: &mut Vec<T>,
        max: usize,
        stall: &mut Option<impl FnOnce()>,
    ) -> usize {
        let mut total = 0;
        while total < max {
            let n = self.pop_run(out, max - total, stall);
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    }

    /// Claims, reads and releases a run of up to `max` (>= 1) items within
    /// the head block; 0 when the queue is empty.
    fn pop_run(&self, out: &mut Vec<T>, max: usize, stall: &mut Option<impl FnOnce()>) -> usize {
        let backoff = Backoff::new();
        let mut head = self.head.index.load(Ordering::Acquire);
        let mut block = self.head.block.load(Ordering::Acquire);
        loop {
            let start = offset(head);
            if start == BLOCK_CAP {
                backoff.snooze();
                head = self.head.index.load(Ordering::Acquire);
                block = self.head.block.load(Ordering::Acquire);
                continue;
            }
            // Where the producers' claims end in this block.
            let mut flags = head & HAS_NEXT;
            let available_end = if flags != 0 {
                BLOCK_CAP
            } else {
                let Some(tail) = self.tail_beyond(head) else {
                    return 0;
                };
                if same_block(head, tail) {
                    offset(tail)
                } else {
                    flags = HAS_NEXT;
                    BLOCK_CAP
                }
            };
            let n = (available_end - start).min(max);
            // Before the claim: nothing may fail between it and the release.
            out.reserve(n);
            let new_head = (head & !HAS_NEXT).wrapping_add(n << SHIFT) | flags;
            match self.head.index.compare_exchange_weak(
                head,
                new_head,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let end = start + n;
                    // SAFETY: as in `pop_with`, for each position of the run
                    // `[head, head + n)`, which the CAS claimed as a whole.
                    unsafe {
                        if end == BLOCK_CAP {
                            self.advance_head(block, new_head);
                        }
                        for i in start..end {
                            let slot = Block::slot(block, i);
                            slot.wait_written();
                            out.push(slot.value.with(|p| p.read().assume_init()));
                        }
                        if let Some(stall) = stall.take() {
                            stall();
                        }
                        self.release_run(block, start, end);
                    }
                    return n;
                }
                Err(current) => {
                    head = current;
                    block = self.head.block.load(Ordering::Acquire);
                    backoff.spin();
                }
            }
        }
    }

    /// Number of items in the queue (a snapshot; exact when quiescent).
    pub fn len(&self) -> usize {
        loop {
            let tail = self.tail.index.load(Ordering::SeqCst);
            let head = self.head.index.load(Ordering::SeqCst);
            // A tail that did not move makes the two a consistent pair.
            if self.tail.index.load(Ordering::SeqCst) != tail {
                continue;
            }
            // Subtracted before the shift, so that it stays right when an
            // index wraps.
            let positions = (tail & !HAS_NEXT).wrapping_sub(head & !HAS_NEXT) >> SHIFT;
            if positions > usize::MAX >> (SHIFT + 1) {
                return 0; // cannot happen with a consistent pair
            }
            // Minus the block ends between them: one per LAP positions.
            return positions - (offset(head) + positions) / LAP;
        }
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

impl<T> LockFreeQueue<T> {
    /// Drops the items left, frees the blocks. Resumable (see
    /// [`drain_resuming`]): each item is moved out and the head moved past
    /// it (freeing its block if it was the last slot) before it is dropped.
    fn drain(&mut self) {
        loop {
            let head = self.head.index.load(Ordering::Relaxed) & !HAS_NEXT;
            let tail = self.tail.index.load(Ordering::Relaxed);
            let block = self.head.block.load(Ordering::Relaxed);
            if head >> SHIFT == tail >> SHIFT {
                // Empty: only the head (= tail) block and the spare are left.
                let spare = self.spare.swap(ptr::null_mut(), Ordering::Relaxed);
                for block in [block, spare] {
                    if !block.is_null() {
                        // SAFETY: `&mut self`: no operation is in flight; the
                        // two are distinct and each is freed once (the head
                        // block is nulled below before anything can unwind).
                        unsafe { Block::free(block) };
                    }
                }
                self.head.block.store(ptr::null_mut(), Ordering::Relaxed);
                return;
            }
            let offset = offset(head);
            // SAFETY: `&mut self`: every operation finished, so the positions
            // in `[head, tail)` hold written items not yet popped, and no
            // index rests on a block's end position.
            let value = unsafe { Block::slot(block, offset).value.with(|p| p.read()) };
            if offset + 1 == BLOCK_CAP {
                // SAFETY: as above; the block's items were all moved out.
                let next = unsafe { (*block).next.load(Ordering::Relaxed) };
                self.head.block.store(next, Ordering::Relaxed);
                self.head
                    .index
                    .store(head.wrapping_add(2 << SHIFT), Ordering::Relaxed);
                // SAFETY: unlinked above, freed once.
                unsafe { Block::free(block) };
            } else {
                self.head
                    .index
                    .store(head.wrapping_add(1 << SHIFT), Ordering::Relaxed);
            }
            if mem::needs_drop::<T>() {
                // SAFETY: moved out of a written slot exactly once.
                drop(unsafe { value.assume_init() });
            }
        }
    }
}

impl<T> Drop for LockFreeQueue<T> {
    fn drop(&mut self) {
        // A panicking item destructor must not leak the items after it.
        drain_resuming(|| self.drain());
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

    fn allocated() -> usize {
        BLOCKS_ALLOCATED.with(|n| n.get())
    }

    #[test]
    fn grows_across_blocks_in_order() {
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
            assert_eq!(q.len(), n - expect);
        }
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
    }

    #[test]
    fn pop_batch_crosses_blocks() {
        let q: LockFreeQueue<usize> = (0..3 * BLOCK_CAP + 5).collect();
        let mut out = Vec::new();
        assert_eq!(q.pop_batch(&mut out, 2 * BLOCK_CAP + 1), 2 * BLOCK_CAP + 1);
        assert_eq!(q.pop_batch(&mut out, usize::MAX), BLOCK_CAP + 4);
        assert_eq!(out, (0..3 * BLOCK_CAP + 5).collect::<Vec<_>>());
        assert_eq!(q.pop_batch(&mut out, 4), 0);
        assert!(q.is_empty());
    }

    #[test]
    fn steady_state_allocates_nothing() {
        let q = LockFreeQueue::new();
        // Warm up: the second block is allocated, the first becomes spare.
        for i in 0..2 * LAP {
            q.push(i);
            assert_eq!(q.pop(), Some(i));
        }
        let before = allocated();
        let rounds = if cfg!(miri) { 300 } else { 100_000 };
        for i in 0..rounds {
            q.push(i);
            q.push(i + 1);
            assert_eq!(q.pop(), Some(i));
            assert_eq!(q.pop(), Some(i + 1));
        }
        assert_eq!(allocated(), before, "a steady load reuses the spare");
    }

    #[test]
    fn a_drained_backlog_leaves_one_spare() {
        let q = LockFreeQueue::new();
        let before = allocated();
        let n = 5 * BLOCK_CAP;
        q.extend_from(0..n);
        // Five full blocks: the pushes into the last slots of blocks 1..=5
        // allocated blocks 2..=6 (none was spare yet).
        assert_eq!(allocated() - before, 5);
        for i in 0..n {
            assert_eq!(q.pop(), Some(i));
        }
        assert!(!q.spare.load(Ordering::Relaxed).is_null());
        // The next block comes from the spare.
        q.extend_from(0..BLOCK_CAP);
        assert_eq!(allocated() - before, 5);
        assert!(q.spare.load(Ordering::Relaxed).is_null());
    }

    impl<T> LockFreeQueue<T> {
        fn extend_from(&self, items: impl IntoIterator<Item = T>) {
            for item in items {
                self.push(item);
            }
        }
    }

    /// Issue 14 item 4, in this design: a consumer stalled between claiming
    /// an item and releasing its slot keeps that slot's block from being
    /// freed, and nobody may wait for it. The other consumer drains the rest
    /// of the block (taking its last slot, so it starts freeing the block and
    /// stops at the stalled slot) and goes on into the next block; the stalled
    /// consumer frees the block when it resumes (the hand-off), keeping it as
    /// the spare.
    fn stalled_consumer_does_not_trap_the_others(stalled_slot: usize, batch: bool) {
        use std::sync::{Arc, mpsc};
        use std::time::Duration;

        let q = Arc::new(LockFreeQueue::new());
        let total = BLOCK_CAP + 3; // the first block full, three in the next
        q.extend_from(0..total);
        let first = q.head.block.load(Ordering::Relaxed);
        for i in 0..stalled_slot {
            assert_eq!(q.pop(), Some(i));
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
        let (done_tx, done_rx) = mpsc::channel();
        let other = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let before = got.len();
                    if batch {
                        q.pop_batch(&mut got, 16);
                    } else {
                        got.extend(q.pop());
                    }
                    if got.len() == before {
                        break; // empty
                    }
                }
                let _ = done_tx.send(got);
            })
        };
        // A bounded wait: a consumer that waited for the stalled one would
        // wait until it is released.
        let got = done_rx.recv_timeout(Duration::from_secs(120));
        let spare_while_stalled = q.spare.load(Ordering::Acquire);
        release_tx.send(()).unwrap();
        assert_eq!(stalled.join().unwrap(), Some(stalled_slot));
        other.join().unwrap();
        let got = got.expect("a consumer waited for the stalled one");
        assert_eq!(got, (stalled_slot + 1..total).collect::<Vec<_>>());
        assert!(
            spare_while_stalled.is_null(),
            "the block was recycled while a consumer still used it"
        );
        assert_eq!(
            q.spare.load(Ordering::Acquire),
            first,
            "the stalled consumer frees the block when it resumes"
        );
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn stalled_consumer_does_not_trap_pop() {
        stalled_consumer_does_not_trap_the_others(0, false);
        stalled_consumer_does_not_trap_the_others(BLOCK_CAP / 2, false);
    }

    #[test]
    fn stalled_consumer_does_not_trap_pop_batch() {
        stalled_consumer_does_not_trap_the_others(0, true);
        stalled_consumer_does_not_trap_the_others(BLOCK_CAP / 2, true);
    }

    /// A consumer stalled on a block's last slot has already moved the head
    /// on, so the others continue in the next block; it frees the block
    /// itself when it resumes.
    #[test]
    fn stalled_consumer_on_the_last_slot_does_not_trap_pop() {
        use std::sync::{Arc, mpsc};
        use std::time::Duration;

        let q = Arc::new(LockFreeQueue::new());
        let total = BLOCK_CAP + 3;
        q.extend_from(0..total);
        let first = q.head.block.load(Ordering::Relaxed);
        for i in 0..BLOCK_CAP - 1 {
            assert_eq!(q.pop(), Some(i));
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
        let (done_tx, done_rx) = mpsc::channel();
        let other = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                let got: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
                let _ = done_tx.send(got);
            })
        };
        let got = done_rx.recv_timeout(Duration::from_secs(120));
        let spare_while_stalled = q.spare.load(Ordering::Acquire);
        release_tx.send(()).unwrap();
        assert_eq!(stalled.join().unwrap(), Some(BLOCK_CAP - 1));
        other.join().unwrap();
        let got = got.expect("a consumer waited for the one on the last slot");
        assert_eq!(got, (BLOCK_CAP..total).collect::<Vec<_>>());
        assert!(spare_while_stalled.is_null());
        assert_eq!(q.spare.load(Ordering::Acquire), first);
    }

    /// A batch consumer stalled while it holds a run of slots (not the
    /// block's last): the freer stops at the run's first slot, and the batch
    /// consumer, releasing that slot after the rest of its run, finishes
    /// freeing the block.
    #[test]
    fn stalled_batch_consumer_frees_the_block_after_its_run() {
        use std::sync::{Arc, mpsc};
        use std::time::Duration;

        let q = Arc::new(LockFreeQueue::new());
        let total = BLOCK_CAP + 3;
        q.extend_from(0..total);
        let first = q.head.block.load(Ordering::Relaxed);
        let (claimed_tx, claimed_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let stalled = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                let mut got = Vec::new();
                q.pop_batch_stalled(&mut got, 5, move || {
                    claimed_tx.send(()).unwrap();
                    let _ = release_rx.recv();
                });
                got
            })
        };
        claimed_rx.recv().unwrap();
        let (done_tx, done_rx) = mpsc::channel();
        let other = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                let got: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
                let _ = done_tx.send(got);
            })
        };
        let got = done_rx.recv_timeout(Duration::from_secs(120));
        let spare_while_stalled = q.spare.load(Ordering::Acquire);
        release_tx.send(()).unwrap();
        assert_eq!(stalled.join().unwrap(), [0, 1, 2, 3, 4]);
        other.join().unwrap();
        let got = got.expect("a consumer waited for the stalled batch");
        assert_eq!(got, (5..total).collect::<Vec<_>>());
        assert!(spare_while_stalled.is_null());
        assert_eq!(q.spare.load(Ordering::Acquire), first);
    }

    #[test]
    fn len_counts_across_block_ends() {
        let q = LockFreeQueue::new();
        for n in 0..3 * LAP {
            assert_eq!(q.len(), n);
            q.push(n);
        }
        for n in (0..3 * LAP).rev() {
            assert!(q.pop().is_some());
            assert_eq!(q.len(), n);
        }
        assert!(q.is_empty());
    }

    #[test]
    fn drop_frees_remaining_strings() {
        let q: LockFreeQueue<String> = (0..200).map(|i| i.to_string()).collect();
        assert_eq!(q.pop().as_deref(), Some("0"));
        drop(q);
    }

    #[test]
    fn zero_sized_items() {
        let q = LockFreeQueue::new();
        for _ in 0..3 * LAP {
            q.push(());
        }
        assert_eq!(q.len(), 3 * LAP);
        let mut out = Vec::new();
        assert_eq!(q.pop_batch(&mut out, LAP), LAP);
        assert_eq!(q.pop(), Some(()));
    }
}
