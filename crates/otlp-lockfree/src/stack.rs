//! [`LockFreeStack`]: a Treiber stack of slot indices over a slab that lives
//! as long as the stack.
//!
//! # The protocol
//!
//! Items live in *slots* of a slab made of segments of doubling size (the
//! first holds about 4 KiB of slots; 1, 2, 4, … slots under loom). A
//! segment, once installed, is freed only when the stack drops, so an index
//! a thread loaded long ago still names a valid [`Slot`] after the slot has
//! been reused: reading a stale slot's `next` is an atomic load of live
//! memory, never a use-after-free.
//!
//! Two Treiber stacks thread through the slots' `next` fields: the *stack*
//! (`top`) and the *free list* (`free`). Each head is one `AtomicU64`: the
//! slot index in the low 32 bits (`NIL` = empty) and an ABA tag in the high
//! 32 bits. Beside them, `spare` holds at most one more free slot, moved in
//! and out with a plain `swap`. A slot is in exactly one of these places:
//!
//! ```text
//!   bump (never used) ─┐
//!   spare ─────────────┼─claim──► owned by a pusher ──publish──► stack
//!   free list ─────────┘                                          │
//!       ▲ ▲                                                       │
//!       │ └──────────────── release ── owned by a popper ◄─unlink─┘
//!       └──── pop_all: the whole chain at once
//! ```
//!
//! Only the owner of a slot touches its `value`, so the value cell needs no
//! synchronisation of its own: the atomic that hands the slot over (a head
//! CAS or the `spare` swap: release on the giving side, acquire on the
//! taking side) orders the previous owner's access before the next owner's.
//!
//! **Why `spare`.** With a push/pop pair on an almost empty stack (the
//! common hand-off), the slot a pop frees is the one the next push wants.
//! Parking it in `spare` costs one `swap` each way, which, unlike a Treiber
//! CAS, needs no preceding load of the head and of `next`: that dependent
//! chain before each CAS was most of the difference to `Mutex<Vec>`.
//!
//! **ABA.** A popper loads `top = (A, t)` and `A.next = B`, then stalls;
//! meanwhile A is popped, its slot reused and pushed again with another
//! `next`. The stall ends with a CAS that expects `(A, t)`. It must fail, and
//! it does because every push (the only operation that can put an index back
//! on top) increments the tag: pops only move `top` down the list and
//! `pop_all` empties it, so the word cannot return to `(A, t)` without a
//! push, and a push changes the tag. The same holds for the free list, whose
//! "push" is a release. A false success needs exactly 2^32 pushes on one
//! head while one thread stalls between its load and its CAS.
//!
//! **Exact `len`.** A slot on the stack records its depth (itself plus
//! everything below). A slot's depth is written only by its owner before it
//! is published, so `len` reads `top`, the top slot's depth, and `top` again:
//! an unchanged word means the slot stayed on top in between (see ABA), and
//! the depth read belongs to it. The depth is stored with `Release` and read
//! with `Acquire` for the one case where `len` reads the depth a recycled
//! slot's new owner wrote: that read makes the pop which freed the slot
//! visible, so the re-read sees a changed word and `len` tries again.
//!
//! **Growth.** A claim that finds no free slot takes a never-used index from
//! the bump counter; the first thread to need a segment allocates it (zeroed,
//! so its pages are touched only as slots are used) and installs it with a
//! CAS; a thread that loses that race frees its copy. No lock is ever taken:
//! the stack is lock-free end to end.

use core::fmt;
use core::iter::FusedIterator;
use core::marker::PhantomData;
use core::mem::{self, MaybeUninit};
use core::ptr;

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicPtr, AtomicU32, AtomicU64, Backoff, Ordering, UnsafeCell};

/// Slots in the first segment, as a power of two: about 4 KiB of slots,
/// 8 to 256 of them. Indices in the first segment are located without a
/// dependent load (see [`Slab::slot`]), and LIFO reuse keeps a stack whose
/// size stays below this in it. Loom models use segments of 1, 2, 4 slots so
/// that growth is part of every model.
const fn first_shift(slot_size: usize) -> u32 {
    if cfg!(loom) {
        return 0;
    }
    let fit = 4096 / slot_size;
    let shift = if fit <= 1 { 0 } else { fit.ilog2() };
    if shift < 3 {
        3
    } else if shift > 8 {
        8
    } else {
        shift
    }
}
/// Segment table length: enough for every index below `2^32` whatever the
/// first segment's length.
const SEGMENTS: usize = 32;
/// The index that means "no slot" (empty list, bottom of a list).
const NIL: u32 = u32::MAX;
/// The tag half of a head word.
const TAG_MASK: u64 = !(u32::MAX as u64);
/// One tag increment.
const TAG_ONE: u64 = 1 << 32;

/// The slot index of a head word.
#[inline(always)]
fn index(word: u64) -> u32 {
    word as u32
}

/// `word` pointing at `idx`, same tag (pops and claims: they move a list
/// down, which can never recreate an earlier word).
#[inline(always)]
fn with_index(word: u64, idx: u32) -> u64 {
    (word & TAG_MASK) | u64::from(idx)
}

/// `word` pointing at `idx`, next tag (pushes and releases: they can put an
/// index back on top, so they must make the word new).
#[inline(always)]
fn with_index_next_tag(word: u64, idx: u32) -> u64 {
    (word & TAG_MASK).wrapping_add(TAG_ONE) | u64::from(idx)
}

/// Segment and offset of slot `idx`, segment `b` holding `1 << (shift + b)`
/// slots.
#[inline(always)]
fn locate(idx: u32, shift: u32) -> (usize, usize) {
    debug_assert!(u64::from(idx) < (1 << 32) - (1 << shift));
    // Segment b covers positions [2^shift << b, 2^shift << (b + 1)): the
    // highest set bit of the position picks the segment, the rest is the
    // offset. `| first` changes nothing (pos >= first) but proves pos != 0.
    let first = 1 << shift;
    let pos = idx + first;
    let high = (pos | first).ilog2();
    ((high - shift) as usize, (pos ^ (1 << high)) as usize)
}

struct Slot<T> {
    /// The slot below this one on whichever list holds it. Atomic because a
    /// thread holding a stale head may read it while the slot's owner
    /// rewrites it; that thread's head CAS then fails on the tag.
    next: AtomicU32,
    /// Items from this slot to the bottom of the stack, this one included.
    /// Written (release) by the owner before the slot is published.
    depth: AtomicU32,
    /// Initialised exactly while the slot is on the stack or owned by a
    /// pusher after its write / a popper before its read.
    value: UnsafeCell<MaybeUninit<T>>,
}

#[cfg(loom)]
impl<T> Slot<T> {
    fn new() -> Self {
        Slot {
            next: AtomicU32::new(NIL),
            depth: AtomicU32::new(0),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }
}

/// Allocates segment `b`, every slot unused.
fn alloc_segment<T>(b: usize) -> *mut Slot<T> {
    let len = Slab::<T>::segment_len(b);
    #[cfg(not(loom))]
    // SAFETY: all-zero bytes are a valid `Slot`: zero atomics, and a
    // `MaybeUninit` inside the cell has no validity requirement. Zeroed memory
    // comes from the allocator untouched, so a large segment costs pages only
    // as its slots are used.
    let segment = unsafe { Box::<[Slot<T>]>::new_zeroed_slice(len).assume_init() };
    #[cfg(loom)]
    let segment: Box<[Slot<T>]> = (0..len).map(|_| Slot::new()).collect();
    Box::into_raw(segment).cast::<Slot<T>>()
}

/// Frees segment `b` allocated by [`alloc_segment`]. Values are not dropped
/// (`MaybeUninit`): the caller has dropped or moved out every live one.
///
/// # Safety
///
/// `segment` came from `alloc_segment::<T>(b)`, is freed once, and no thread
/// can access it any more.
unsafe fn free_segment<T>(segment: *mut Slot<T>, b: usize) {
    let slice = ptr::slice_from_raw_parts_mut(segment, Slab::<T>::segment_len(b));
    // SAFETY: per the contract, `slice` is the box leaked by `alloc_segment`.
    drop(unsafe { Box::from_raw(slice) });
}

/// The segments. Its own type so that they are freed even when an item's
/// `Drop` panics inside [`LockFreeStack`]'s destructor.
struct Slab<T> {
    segments: [AtomicPtr<Slot<T>>; SEGMENTS],
}

impl<T> Slab<T> {
    /// log2 of the first segment's length.
    const FIRST_SHIFT: u32 = first_shift(mem::size_of::<Slot<T>>());
    /// Length of the first segment.
    const FIRST: u32 = 1 << Self::FIRST_SHIFT;
    /// Most slots a stack can have (every `index + FIRST` fits in a `u32`),
    /// hence most items on it at once.
    const MAX_SLOTS: u64 = (1 << 32) - Self::FIRST as u64;

    /// Length of segment `b`.
    fn segment_len(b: usize) -> usize {
        (Self::FIRST as usize) << b
    }

    fn new() -> Self {
        Slab {
            segments: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }
    }

    /// The slot named `idx`.
    #[inline(always)]
    fn slot(&self, idx: u32) -> &Slot<T> {
        // The first segment's pointer is loaded from a fixed address, in
        // parallel with whatever produced `idx`; any other segment's load
        // waits for `idx`. On a push/pop-heavy path that is most of the cost.
        let (b, offset) = if idx < Self::FIRST {
            (0, idx as usize)
        } else {
            locate(idx, Self::FIRST_SHIFT)
        };
        let segment = self.segments[b].load(Ordering::Acquire);
        debug_assert!(!segment.is_null(), "slot {idx} has no segment");
        // SAFETY: callers pass indices read from a head word or from the
        // link of a slot on a chain they own; every such index was handed
        // out by `fresh_slot`, which installed its segment before returning
        // it, and this load happens after that install (through the head
        // word that carried the index). Segments are freed only when the
        // stack drops, so even a stale index names live memory, and `locate`
        // keeps `offset` below the segment's length.
        unsafe { &*segment.add(offset) }
    }

    /// Makes sure segment `b` exists.
    #[cold]
    fn install(&self, b: usize) {
        let fresh = alloc_segment::<T>(b);
        if self.segments[b]
            .compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // SAFETY: another thread installed segment `b` first; `fresh`
            // was never shared.
            unsafe { free_segment(fresh, b) };
        }
    }
}

impl<T> Drop for Slab<T> {
    fn drop(&mut self) {
        for (b, segment) in self.segments.iter().enumerate() {
            let segment = segment.load(Ordering::Relaxed);
            if !segment.is_null() {
                // SAFETY: `&mut self`: no thread can reach the slab any more;
                // each installed segment is freed once, here.
                unsafe { free_segment(segment, b) };
            }
        }
    }
}

/// The words every operation touches, on one cache line: a push and a pop
/// each update `top` and `spare` or `free`, so separate lines would mean
/// more transfers between cores, not fewer.
struct Heads {
    /// The stack: top slot index and ABA tag.
    top: AtomicU64,
    /// The free list: first free slot index and ABA tag.
    free: AtomicU64,
    /// Next never-used slot index. 64 bits so that it cannot wrap.
    bump: AtomicU64,
    /// One free slot kept off the free list, or `NIL`.
    spare: AtomicU32,
}

/// A lock-free LIFO stack.
///
/// A Treiber stack of slot indices over a slab owned by the stack: a push
/// takes a free slot (or a never-used one), writes the item into it and
/// links it on top with one compare-and-swap; a pop unlinks the top slot with
/// one compare-and-swap, moves the item out and hands the slot back for
/// reuse. A steady push/pop load therefore allocates nothing and needs no
/// memory reclamation scheme: slots are reused in place, and their memory is
/// freed only when the stack drops.
///
/// The classic hazards of this design are handled by construction:
///
/// * **use-after-free**: a popper that loaded a top slot which another
///   thread then popped and reused still reads live memory (the slab never
///   shrinks), and it reads only the slot's atomic link, never its item.
/// * **ABA**: each head carries a 32-bit tag that every push increments, so
///   a compare-and-swap prepared from a stale top fails even when the same
///   slot is back on top.
///
/// [`len`](Self::len) is exact and costs no shared counter: every slot
/// records the depth below it.
///
/// Memory: the slab grows to the largest number of items the stack has held
/// at once (plus slots in flight in concurrent pushes and pops), rounded up
/// to whole segments of doubling size, and keeps it until the stack drops. A
/// stack that once held a million items keeps a million slots.
///
/// # Panics
///
/// [`push`](Self::push) panics if close to 2^32 items (2^32 minus the first
/// segment's length, at most 256) would be on the stack at once: slot
/// indices are 32 bits so that an index and its tag fit in one atomic word.
///
/// # Examples
///
/// ```
/// use otlp_lockfree::LockFreeStack;
///
/// let stack: LockFreeStack<i32> = (1..=3).collect();
/// stack.push(4);
/// assert_eq!(stack.len(), 4);
/// assert_eq!(stack.pop(), Some(4));
/// assert_eq!(stack.pop_all(), vec![3, 2, 1]);
/// assert!(stack.is_empty());
/// ```
pub struct LockFreeStack<T> {
    heads: CachePadded<Heads>,
    slab: Slab<T>,
    /// The stack owns `T`s (for drop check and auto traits).
    _owns: PhantomData<T>,
}

// SAFETY: the stack owns its `T`s and moves each one out to exactly one
// popping thread; no `&T` is ever shared between threads, so `T: Send` is
// all that sending or sharing the stack requires.
unsafe impl<T: Send> Send for LockFreeStack<T> {}
// SAFETY: see the `Send` impl.
unsafe impl<T: Send> Sync for LockFreeStack<T> {}

impl<T> LockFreeStack<T> {
    /// Creates an empty stack. Allocates nothing until the first push.
    pub fn new() -> Self {
        Self {
            heads: CachePadded::new(Heads {
                top: AtomicU64::new(u64::from(NIL)),
                free: AtomicU64::new(u64::from(NIL)),
                bump: AtomicU64::new(0),
                spare: AtomicU32::new(NIL),
            }),
            slab: Slab::new(),
            _owns: PhantomData,
        }
    }

    /// Pushes `value` on top.
    ///
    /// # Panics
    ///
    /// If the stack already holds the most items it can (close to 2^32, see
    /// the type's docs); `value` is dropped and the stack is unchanged.
    pub fn push(&self, value: T) {
        let idx = self.claim();
        let slot = self.slab.slot(idx);
        // SAFETY: `claim` made this thread the slot's only owner, and the
        // previous owner's last access to the value happened before the
        // claim (release where the slot was handed back, acquire in
        // `claim`). The slot holds no value (it was moved out or never
        // written), so nothing is overwritten.
        slot.value.with_mut(|cell| unsafe { (*cell).write(value) });
        self.publish(idx, slot);
    }

    /// Pops the top item, or `None` when the stack is empty.
    pub fn pop(&self) -> Option<T> {
        let backoff = Backoff::new();
        let mut head = self.heads.top.load(Ordering::Acquire);
        loop {
            let idx = index(head);
            if idx == NIL {
                return None;
            }
            let slot = self.slab.slot(idx);
            // May be stale if `idx` was popped since `head` was loaded; the
            // CAS below then fails on the tag.
            let next = slot.next.load(Ordering::Relaxed);
            // This CAS's orderings are stronger than needed. Acquire: `head`
            // came from an Acquire load (or a failed CAS, Acquire) that read
            // the publishing CAS, and the tag makes a successful CAS find
            // that same write, so the value's initialisation is already
            // visible. Release: the slot goes back through `spare` (swap
            // AcqRel) or the free list (CAS Release), which order our read
            // of the value before the next owner's write. Both weakenings
            // are listed as correct in xtask's mutation list
            // (`stack-pop-cas-acquire`, `stack-pop-cas-relaxed`).
            match self.heads.top.compare_exchange_weak(
                head,
                with_index(head, next),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // SAFETY: the successful CAS unlinked the slot, so this
                    // thread alone owns it; its value was written before the
                    // slot was published, and that publication happens before
                    // this CAS (acquire). Moved out once: the slot is handed
                    // back below, and a free slot's value counts as
                    // uninitialised.
                    let value = slot
                        .value
                        .with(|cell| unsafe { (*cell).assume_init_read() });
                    self.hand_back(idx, slot);
                    return Some(value);
                }
                Err(current) => {
                    head = current;
                    backoff.spin();
                }
            }
        }
    }

    /// Takes every item with one atomic swap and returns them in pop order
    /// (newest first). Pushes that happen after the swap stay on the stack.
    pub fn pop_all(&self) -> Vec<T> {
        // Clearing the index keeps the tag: like a pop, emptying the stack
        // cannot recreate an earlier word.
        let old = self.heads.top.fetch_or(u64::from(NIL), Ordering::AcqRel);
        let first = index(old);
        if first == NIL {
            return Vec::new();
        }
        let depth = self.slab.slot(first).depth.load(Ordering::Relaxed);
        let mut out = Vec::with_capacity(depth as usize);
        let (mut idx, mut last) = (first, first);
        while idx != NIL {
            let slot = self.slab.slot(idx);
            // SAFETY: the swap detached the whole chain, so this thread owns
            // every slot in it (a stale popper's CAS on `top` fails: the word
            // changed), and each value was published before the swap
            // (acquire). Each is moved out once; the chain then goes back to
            // the free list as a whole.
            out.push(
                slot.value
                    .with(|cell| unsafe { (*cell).assume_init_read() }),
            );
            last = idx;
            idx = slot.next.load(Ordering::Relaxed);
        }
        self.release(first, last, self.slab.slot(last));
        out
    }

    /// Number of items on the stack at the moment of the call.
    pub fn len(&self) -> usize {
        let backoff = Backoff::new();
        let mut head = self.heads.top.load(Ordering::Acquire);
        loop {
            let idx = index(head);
            if idx == NIL {
                return 0;
            }
            // Acquire: if this reads a depth written by a later owner of the
            // slot (its Release store in `publish`), the pop that freed the
            // slot is visible to the re-read below, which then differs from
            // `head`.
            let depth = self.slab.slot(idx).depth.load(Ordering::Acquire);
            let again = self.heads.top.load(Ordering::Acquire);
            if again == head {
                return depth as usize;
            }
            head = again;
            backoff.spin();
        }
    }

    /// Whether the stack was empty at the moment of the call.
    pub fn is_empty(&self) -> bool {
        index(self.heads.top.load(Ordering::Acquire)) == NIL
    }

    /// Takes a slot for a push: the spare, else the first free one, else a
    /// never-used one.
    #[inline]
    fn claim(&self) -> u32 {
        // The load keeps a run of pushes from paying a useless `swap` each.
        if self.heads.spare.load(Ordering::Relaxed) != NIL {
            let spare = self.heads.spare.swap(NIL, Ordering::Acquire);
            if spare != NIL {
                return spare;
            }
        }
        let backoff = Backoff::new();
        let mut head = self.heads.free.load(Ordering::Acquire);
        loop {
            let idx = index(head);
            if idx == NIL {
                return self.fresh_slot();
            }
            // May be stale (the slot claimed and reused since `head` was
            // loaded); the CAS then fails on the tag.
            let next = self.slab.slot(idx).next.load(Ordering::Relaxed);
            match self.heads.free.compare_exchange_weak(
                head,
                with_index(head, next),
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return idx,
                Err(current) => {
                    head = current;
                    backoff.spin();
                }
            }
        }
    }

    /// A never-used slot, its segment installed.
    #[inline(never)]
    fn fresh_slot(&self) -> u32 {
        let idx = self.heads.bump.fetch_add(1, Ordering::Relaxed);
        if idx >= Slab::<T>::MAX_SLOTS {
            too_many_items();
        }
        let idx = idx as u32;
        let (b, _) = locate(idx, Slab::<T>::FIRST_SHIFT);
        if self.slab.segments[b].load(Ordering::Acquire).is_null() {
            self.slab.install(b);
        }
        idx
    }

    /// Links the owned, initialised slot `idx` on top.
    #[inline]
    fn publish(&self, idx: u32, slot: &Slot<T>) {
        let backoff = Backoff::new();
        let mut head = self.heads.top.load(Ordering::Acquire);
        loop {
            let below = index(head);
            let depth = if below == NIL {
                1
            } else {
                // May be stale, like `next` in `pop`; then the CAS fails.
                self.slab
                    .slot(below)
                    .depth
                    .load(Ordering::Acquire)
                    .wrapping_add(1)
            };
            // Release: the linking CAS below publishes the depth to a thread
            // that reaches the slot through the new top, but `len` may reach
            // it through a top word loaded before this slot was last popped,
            // and read this depth before the CAS (which may yet fail). The
            // Release pairs with `len`'s Acquire load of the depth, so the
            // pop that freed the slot is visible to `len`'s re-read of the
            // top, which then rejects the depth (`stack-depth-release` in
            // xtask's mutation list; loom model
            // `len_never_reads_the_depth_of_a_recycled_slot`).
            slot.depth.store(depth, Ordering::Release);
            slot.next.store(below, Ordering::Relaxed);
            match self.heads.top.compare_exchange_weak(
                head,
                with_index_next_tag(head, idx),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(current) => {
                    head = current;
                    backoff.spin();
                }
            }
        }
    }

    /// Hands back the slot a pop emptied: into `spare` if it looks free (the
    /// next push takes it with one `swap`), else onto the free list. The
    /// release half of the `swap` orders this thread's read of the value
    /// before the next owner's write.
    #[inline]
    fn hand_back(&self, idx: u32, slot: &Slot<T>) {
        // The load keeps a run of pops from paying a useless `swap` each.
        if self.heads.spare.load(Ordering::Relaxed) == NIL {
            let prev = self.heads.spare.swap(idx, Ordering::AcqRel);
            if prev != NIL {
                // Lost a race for the empty spare: `prev` is ours now.
                self.release(prev, prev, self.slab.slot(prev));
            }
        } else {
            self.release(idx, idx, slot);
        }
    }

    /// Puts the owned chain `first ..= last` (linked through `next`, `last`
    /// being `last_slot`) on the free list. The owner's accesses to the
    /// values happen before any later claim (release).
    #[inline]
    fn release(&self, first: u32, last: u32, last_slot: &Slot<T>) {
        debug_assert!(ptr::eq(last_slot, self.slab.slot(last)));
        let backoff = Backoff::new();
        let mut head = self.heads.free.load(Ordering::Relaxed);
        loop {
            last_slot.next.store(index(head), Ordering::Relaxed);
            match self.heads.free.compare_exchange_weak(
                head,
                with_index_next_tag(head, first),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(current) => {
                    head = current;
                    backoff.spin();
                }
            }
        }
    }
}

#[cold]
#[inline(never)]
fn too_many_items() -> ! {
    panic!("LockFreeStack: too many items at once (the limit is 2^32 minus at most 256)");
}

impl<T> Default for LockFreeStack<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Drops the values of the chain that starts at `idx`, from the stack's
/// destructor.
///
/// # Safety
///
/// Every slot of the chain holds an initialised value that nothing else will
/// drop or read.
unsafe fn drop_chain<T>(slab: &Slab<T>, mut idx: u32) {
    /// Keeps dropping the rest of the chain if one value's `Drop` panics,
    /// as `Vec` does (a second panic aborts, as it does there).
    struct DropRest<'a, T> {
        slab: &'a Slab<T>,
        next: u32,
    }
    impl<T> Drop for DropRest<'_, T> {
        fn drop(&mut self) {
            // SAFETY: the rest of a chain that satisfies `drop_chain`'s
            // contract, its head not yet dropped.
            unsafe { drop_chain(self.slab, self.next) };
        }
    }

    while idx != NIL {
        let slot = slab.slot(idx);
        idx = slot.next.load(Ordering::Relaxed);
        let rest = DropRest { slab, next: idx };
        // SAFETY: per the contract, initialised and dropped only here; the
        // guard moves on past this slot, so a panic never drops it twice.
        slot.value
            .with_mut(|cell| unsafe { ptr::drop_in_place((*cell).as_mut_ptr()) });
        mem::forget(rest);
    }
}

impl<T> Drop for LockFreeStack<T> {
    fn drop(&mut self) {
        if mem::needs_drop::<T>() {
            let first = index(self.heads.top.load(Ordering::Relaxed));
            // SAFETY: `&mut self`: no other thread can access the stack, and
            // exactly the slots on the stack hold values. The slab is freed
            // afterwards by its own destructor, which runs even when a
            // value's `Drop` panics.
            unsafe { drop_chain(&self.slab, first) };
        }
    }
}

impl<T> fmt::Debug for LockFreeStack<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockFreeStack")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<T> Extend<T> for LockFreeStack<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for value in iter {
            self.push(value);
        }
    }
}

impl<T> FromIterator<T> for LockFreeStack<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut stack = Self::new();
        stack.extend(iter);
        stack
    }
}

/// Owned iterator over a [`LockFreeStack`], in pop order (newest first).
#[derive(Debug)]
pub struct IntoIter<T>(LockFreeStack<T>);

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.0.pop()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.len();
        (n, Some(n))
    }
}

impl<T> ExactSizeIterator for IntoIter<T> {}
impl<T> FusedIterator for IntoIter<T> {}

impl<T> IntoIterator for LockFreeStack<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter(self)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn lifo_and_len() {
        let s = LockFreeStack::new();
        assert_eq!(s.pop(), None);
        assert!(s.is_empty());
        for i in 0..10 {
            s.push(i);
            assert_eq!(s.len(), i + 1);
        }
        assert_eq!(s.pop(), Some(9));
        assert_eq!(s.len(), 9);
        let rest: Vec<_> = s.into_iter().collect();
        assert_eq!(rest, (0..9).rev().collect::<Vec<_>>());
    }

    #[test]
    fn pop_all_and_drop() {
        let s: LockFreeStack<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(s.pop_all(), ["c", "b", "a"]);
        assert!(s.pop_all().is_empty());
        s.push("x".into());
        s.push("y".into());
        drop(s); // frees both remaining strings (Miri checks for leaks)
    }

    #[test]
    fn first_segment_is_about_a_page() {
        assert_eq!(first_shift(16), 8); // u64: 256 slots, 4 KiB
        assert_eq!(first_shift(8), 8); // capped at 256 slots
        assert_eq!(first_shift(64), 6);
        assert_eq!(first_shift(4096), 3); // at least 8 slots
        assert_eq!(first_shift(1 << 20), 3);
    }

    #[test]
    fn locate_covers_every_index_once() {
        for shift in [0, 3, 5, 8] {
            let first = 1u32 << shift;
            let len = |b: usize| (first as usize) << b;
            assert_eq!(locate(0, shift), (0, 0));
            assert_eq!(locate(first - 1, shift), (0, len(0) - 1));
            assert_eq!(locate(first, shift), (1, 0));
            assert_eq!(locate(3 * first, shift), (2, 0));
            let last = u32::MAX - first;
            let (b, offset) = locate(last, shift);
            assert!(b < SEGMENTS, "shift {shift}: segment {b}");
            assert_eq!(
                offset,
                len(b) - 1,
                "shift {shift}: the last index ends its segment"
            );
            // Consecutive indices fill each segment in order, then the next.
            let mut expect = (0, 0);
            for idx in 0..if cfg!(miri) { 600 } else { 5_000 } {
                assert_eq!(locate(idx, shift), expect, "shift {shift}, index {idx}");
                expect.1 += 1;
                if expect.1 == len(expect.0) {
                    expect = (expect.0 + 1, 0);
                }
            }
        }
    }

    #[test]
    fn tags_move_only_on_push_and_release() {
        let word = with_index_next_tag(u64::from(NIL), 7);
        assert_eq!(index(word), 7);
        assert_eq!(word & TAG_MASK, TAG_ONE);
        assert_eq!(with_index(word, 3) & TAG_MASK, TAG_ONE);
        // The tag wraps instead of overflowing into nothing.
        let top = TAG_MASK | u64::from(NIL);
        assert_eq!(with_index_next_tag(top, 1), 1);
    }
}
