//! [`NumaAwareAllocator`]: a `GlobalAlloc` that charges every allocation to
//! the NUMA node the calling thread really runs on.
//!
//! # How it stays cheap
//!
//! * The node comes from `getcpu` (vDSO). The thread's state is a
//!   const-initialised, destructor-free `thread_local!` pair: a refresh
//!   clock and the byte offset ("place") of its current node's counters in
//!   the flat slot array. The hot path decrements the clock (one
//!   read-modify-write whose sign is the only test), reads the place and
//!   bumps two counters; when the clock runs out, every
//!   [`NODE_REFRESH_INTERVAL`]th operation of the thread (allocations and
//!   frees together), the slow path re-reads the node. A thread that
//!   migrates is charged to its old node for at most that many more
//!   operations, whichever kind they are.
//! * Counters are per thread *slot*, not shared: each of the first
//!   [`THREAD_SLOTS`] live threads owns a slot (a process-wide bitmap hands
//!   out slot ids) whose per-node counters only it writes, with a plain
//!   load + store (no locked read-modify-write). Readers sum the slots.
//!   A thread's slot id is returned to the bitmap by a `pthread` key
//!   destructor when the thread exits; the next owner keeps adding to the
//!   same cumulative counters, so nothing is lost. Threads beyond
//!   [`THREAD_SLOTS`] use shared cache-padded per-node atomics
//!   (`fetch_add`), correct but slower.
//! * Nothing in `alloc`/`dealloc` allocates or panics, so the allocator
//!   cannot recurse into itself; on glibc nothing takes a lock either. The
//!   only libc calls are `getcpu`, `mmap`/`mbind`/`munmap` (bound sizes
//!   only) and, once per thread, `pthread_setspecific`, plus one
//!   `pthread_key_create` per process. glibc's `pthread_setspecific`
//!   stores the values of keys below 32 (`PTHREAD_KEY_2NDLEVEL_SIZE`) in
//!   the thread descriptor and `calloc`s a block for higher keys, so a
//!   thread is given a slot only when the crate's key is below 32 (it is
//!   created at the process's first allocation, so normally it is);
//!   otherwise every thread uses the shared counters and no
//!   `pthread_setspecific` call is made. musl keeps every key's value in a
//!   per-thread array allocated with the thread (its one-time
//!   `pthread_key_create` takes musl's key lock, which never allocates);
//!   on other C libraries no slot is handed out.
//! * Nodes at or past [`MAX_TRACKED_NODES`] are charged to the unattributed
//!   bucket, and a bound allocation made there is bound to the thread's
//!   real node (up to [`crate::MAX_NODE`]), never to a stand-in.

use crate::registry::{SlotRegistry, bump_owned};
use crate::sync::{AtomicU64, AtomicUsize, Ordering::*, compiler_fence};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr;

use crate::memory::{MIN_PAGE, MPOL_BIND, mbind_raw, single_node_mask};

/// Node ids below this get their own counters; allocations on higher (or
/// unknown) nodes are charged to [`AllocationStats::unattributed`]. (4
/// under Miri, to keep the interpreted runs short.)
pub const MAX_TRACKED_NODES: usize = if cfg!(miri) { 4 } else { 64 };
/// How many live threads get private (uncontended) counter slots (4 under
/// Miri).
pub const THREAD_SLOTS: usize = if cfg!(miri) { 4 } else { 32 };
/// Operations of a thread (allocations and frees together) between two
/// `getcpu` refreshes of its cached node.
pub const NODE_REFRESH_INTERVAL: u32 = 64;

const BUCKETS: usize = MAX_TRACKED_NODES + 1;
const OTHER: usize = MAX_TRACKED_NODES;
/// A cache-line (pair) aligned wrapper: 128 bytes covers the adjacent-line
/// prefetcher on x86_64.
#[repr(align(128))]
#[derive(Debug)]
struct CachePadded<T>(T);

#[derive(Debug)]
struct Counters {
    allocations: AtomicU64,
    frees: AtomicU64,
    bytes_allocated: AtomicU64,
    bytes_freed: AtomicU64,
}

impl Counters {
    const fn new() -> Self {
        Counters {
            allocations: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            bytes_allocated: AtomicU64::new(0),
            bytes_freed: AtomicU64::new(0),
        }
    }
}

// ---- per-thread state ------------------------------------------------------

/// Counters per slot row: the buckets, rounded up to whole 128-byte lines.
const ROW: usize = BUCKETS.next_multiple_of(4);
/// Counters of all slot rows.
const FLAT: usize = THREAD_SLOTS * ROW;
/// Bytes per counter group: a slotted thread's place is the byte offset of
/// its group in the flat slot array, so the hot path scales nothing.
const GROUP_BYTES: u32 = size_of::<Counters>() as u32;
/// Marks a place that is no slot's: bits 12..20 then count down to the
/// thread's next refresh, bit 8 says it has not asked for a slot yet, bits
/// 0..8 hold the bucket.
const UNSLOTTED: u32 = 1 << 23;
const UNCLAIMED_BIT: u32 = 1 << 8;
const TICKS_SHIFT: u32 = 12;
const SLOT_UNCLAIMED: u64 = 0xFF;
const SLOT_NONE: u64 = 0xFE;
/// The place of a thread that has not allocated yet.
const FRESH: u32 = UNSLOTTED | UNCLAIMED_BIT | OTHER as u32;
/// The place of a thread that cannot have a slot (exiting, or no
/// thread-local storage left).
const NO_SLOT: u32 = UNSLOTTED | OTHER as u32;
const _: () = {
    // Every slotted offset stays clear of the UNSLOTTED bit, every bucket
    // fits its 8 bits, and the unslotted clock holds NODE_REFRESH_INTERVAL.
    assert!((FLAT as u64) * (GROUP_BYTES as u64) <= UNSLOTTED as u64);
    assert!(OTHER < UNCLAIMED_BIT as usize);
    assert!(NODE_REFRESH_INTERVAL >= 1 && NODE_REFRESH_INTERVAL <= 256);
};

/// A thread's cached node and refresh clock.
///
/// Invariant, on which the hot path's unchecked counter access rests:
/// whenever `left` is positive, `place` is the byte offset of a counter
/// group in the flat slot array (`(slot * ROW + bucket) * GROUP_BYTES`,
/// `slot < THREAD_SLOTS`, `bucket <= OTHER`). [`ThreadState::set`] writes
/// both in an order that keeps it between the two stores too; the fast
/// path only decrements `left`, and the slow path resets a negative one.
struct ThreadState {
    /// Operations left before the node is re-read. Never positive for a
    /// thread without a slot (the slow path puts it back to zero), so "is
    /// it still non-negative after taking one" is the whole fast-path
    /// test.
    left: Cell<i32>,
    /// A slotted offset, or `UNSLOTTED | ticks << 12 | unclaimed << 8 |
    /// bucket`.
    place: Cell<u32>,
}

impl ThreadState {
    /// Stores a (left, place) pair from [`pack`].
    #[inline(always)]
    fn set(&self, (left, place): (i32, u32)) {
        // No clock while the place changes, so a place is never paired
        // with a clock it was not packed with, not even by a signal handler
        // that allocates between these stores (the fences keep the
        // compiler from merging or reordering them).
        self.left.set(0);
        compiler_fence(Release);
        self.place.set(place);
        compiler_fence(Release);
        self.left.set(left);
    }

    #[inline(always)]
    fn get(&self) -> (i32, u32) {
        (self.left.get(), self.place.get())
    }

    /// The fast path's test: takes one operation off the clock and returns
    /// the slotted place it may charge, or `None` (clock ran out, or no
    /// slot) for the slow path.
    #[inline(always)]
    fn take_tick(&self) -> Option<u32> {
        // Stored unconditionally (one read-modify-write whose sign flag is
        // the test): a clock that was zero becomes negative, which the
        // slow path resets.
        let left = self.left.get().wrapping_sub(1);
        self.left.set(left);
        if left < 0 {
            return None;
        }
        // `place` is read after `left` (see `set`).
        compiler_fence(Acquire);
        Some(self.place.get())
    }
}

thread_local! {
    /// The thread's state.
    static STATE: ThreadState = const {
        ThreadState { left: Cell::new(0), place: Cell::new(FRESH) }
    };
}

/// Which slot ids are taken, process-wide.
static SLOTS: SlotRegistry = SlotRegistry::new(THREAD_SLOTS as u32);
/// The pthread key whose destructor gives a slot back: 0 = not yet
/// created, otherwise key + 1.
static EXIT_KEY: AtomicUsize = AtomicUsize::new(0);

/// A thread state (left, place) for (slot or marker, bucket) and the
/// operations left before the next refresh (at most 255; an unslotted
/// thread's count goes into its place, and its `left` is zero).
#[inline(always)]
fn pack(slot: u64, bucket: usize, left: u32) -> (i32, u32) {
    let bucket = bucket.min(OTHER) as u32;
    let left = left.min(0xFF);
    if slot < THREAD_SLOTS as u64 {
        // Below FLAT * GROUP_BYTES (checked above).
        let place = (slot as u32 * ROW as u32 + bucket) * GROUP_BYTES;
        (left as i32, place)
    } else {
        let unclaimed = if slot == SLOT_UNCLAIMED {
            UNCLAIMED_BIT
        } else {
            0
        };
        (0, UNSLOTTED | left << TICKS_SHIFT | unclaimed | bucket)
    }
}

/// The inverse of [`pack`]: (slot or marker, bucket, operations left; zero
/// for a slotted clock that ran out).
#[inline(always)]
fn unpack((left, place): (i32, u32)) -> (u64, usize, u32) {
    if place & UNSLOTTED == 0 {
        let group = place / GROUP_BYTES;
        let slot = u64::from(group / ROW as u32);
        (slot, (group % ROW as u32) as usize, left.max(0) as u32)
    } else {
        let ticks = (place >> TICKS_SHIFT) & 0xFF;
        let slot = if place & UNCLAIMED_BIT != 0 {
            SLOT_UNCLAIMED
        } else {
            SLOT_NONE
        };
        (slot, ((place & 0xFF) as usize).min(OTHER), ticks)
    }
}

/// A node for [`current_node`] to report instead of asking `getcpu`
/// (`usize::MAX`: none); set only by this crate's tests, through
/// [`testing::override_node`].
static NODE_OVERRIDE: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The node this thread runs on now, if it can be told.
fn current_node() -> Option<usize> {
    let forced = NODE_OVERRIDE.load(Relaxed);
    if forced != usize::MAX {
        return Some(forced);
    }
    #[cfg(miri)]
    {
        // Miri cannot run getcpu.
        None
    }
    #[cfg(not(miri))]
    {
        crate::affinity::current_cpu_and_node()
            .ok()
            .map(|(_, node)| node)
    }
}

/// The counter bucket of a node: its own below [`MAX_TRACKED_NODES`], the
/// unattributed one past it or when the node is unknown.
fn bucket_of(node: Option<usize>) -> usize {
    match node {
        Some(node) if node < MAX_TRACKED_NODES => node,
        _ => OTHER,
    }
}

/// The bucket of the node this thread runs on now.
fn current_bucket() -> usize {
    bucket_of(current_node())
}

/// The `mbind` mask for a bound allocation made on `node`: that node's own
/// bit, whether or not the node is tracked; `None` (serve it unbound) when
/// the node is unknown or past [`crate::MAX_NODE`]. The bucket is never
/// used here: the unattributed bucket's index is not a node.
fn bind_mask(node: Option<usize>) -> Option<[libc::c_ulong; crate::memory::NODEMASK_WORDS]> {
    single_node_mask(node?)
}

/// Whether `pthread_setspecific(key, _)` stores its value without
/// allocating or locking, so that calling it inside `alloc` cannot recurse
/// into an allocator. glibc keeps the values of keys below
/// `PTHREAD_KEY_2NDLEVEL_SIZE` (32) in an array inside the thread
/// descriptor and `calloc`s a second-level block for higher keys; musl
/// keeps every value in a per-thread array allocated with the thread.
fn setspecific_never_allocates(key: libc::pthread_key_t) -> bool {
    if cfg!(target_env = "gnu") {
        u64::from(key) < 32
    } else {
        cfg!(target_env = "musl")
    }
}

unsafe extern "C" fn release_slot(value: *mut libc::c_void) {
    let id = value.addr().wrapping_sub(1) as u64;
    // From now on this thread uses the shared counters.
    let _ = STATE.try_with(|s| s.set((0, NO_SLOT)));
    if id < THREAD_SLOTS as u64 {
        // Release: this thread's last counter writes happen-before the next
        // owner's claim (Acquire).
        SLOTS.release(id as u32);
    }
}

fn exit_key() -> Option<libc::pthread_key_t> {
    let k = EXIT_KEY.load(Acquire);
    if k != 0 {
        return Some((k - 1) as libc::pthread_key_t);
    }
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is writable; the destructor is a valid extern "C" fn.
    if unsafe { libc::pthread_key_create(&mut key, Some(release_slot)) } != 0 {
        return None;
    }
    match EXIT_KEY.compare_exchange(0, key as usize + 1, AcqRel, Acquire) {
        Ok(_) => Some(key),
        Err(other) => {
            // Another thread won the race; drop our key, use theirs.
            // SAFETY: `key` was created above and never handed out.
            unsafe { libc::pthread_key_delete(key) };
            Some((other - 1) as libc::pthread_key_t)
        }
    }
}

/// Claims a free slot id for this thread, or `SLOT_NONE`.
#[cold]
#[inline(never)]
fn claim_slot() -> u64 {
    let Some(key) = exit_key() else {
        return SLOT_NONE;
    };
    if !setspecific_never_allocates(key) {
        // Without the key's destructor a slot would never come back, and
        // registering it could call calloc: use the shared counters.
        return SLOT_NONE;
    }
    let Some(id) = SLOTS.claim() else {
        return SLOT_NONE;
    };
    // SAFETY: `key` is a live key; the value is a non-null tag (id + 1),
    // never dereferenced.
    let rc = unsafe { libc::pthread_setspecific(key, ptr::without_provenance(id as usize + 1)) };
    if rc != 0 {
        SLOTS.release(id);
        return SLOT_NONE;
    }
    u64::from(id)
}

/// This thread's cached (slot, node bucket, operations left before the
/// next refresh).
#[inline(always)]
fn thread_state() -> (u64, usize, u32) {
    unpack(STATE.try_with(ThreadState::get).unwrap_or((0, NO_SLOT)))
}

/// Re-reads the node this thread runs on (and claims a slot on first use),
/// restarts the refresh clock for the operation being charged and the
/// [`NODE_REFRESH_INTERVAL`]` - 1` after it; returns the new (slot, bucket).
#[cold]
#[inline(never)]
fn refresh() -> (u64, usize) {
    refresh_from(thread_state().0)
}

/// [`refresh`] for a caller that has read the state already.
#[inline(always)]
fn refresh_from(mut slot: u64) -> (u64, usize) {
    if slot == SLOT_UNCLAIMED {
        slot = claim_slot();
    }
    let bucket = current_bucket();
    let _ = STATE.try_with(|s| s.set(pack(slot, bucket, NODE_REFRESH_INTERVAL - 1)));
    (slot, bucket)
}

// ---- the allocator ---------------------------------------------------------

/// Allocation counts of one node (or of the unattributed bucket).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeAllocStats {
    /// Allocations made by threads running on this node (a `realloc`
    /// counts as one free and one allocation).
    pub allocations: u64,
    /// Frees made by threads running on this node (wherever the memory was
    /// allocated: the allocator keeps no per-block header).
    pub frees: u64,
    /// Bytes requested by those allocations.
    pub bytes_allocated: u64,
    /// Bytes released by those frees.
    pub bytes_freed: u64,
    /// Allocations at or above the bind threshold that `mbind` really bound
    /// to this node (for [`AllocationStats::unattributed`]: to the untracked
    /// node the thread ran on).
    pub bound_allocations: u64,
}

impl NodeAllocStats {
    fn add(&mut self, o: &NodeAllocStats) {
        self.allocations = self.allocations.wrapping_add(o.allocations);
        self.frees = self.frees.wrapping_add(o.frees);
        self.bytes_allocated = self.bytes_allocated.wrapping_add(o.bytes_allocated);
        self.bytes_freed = self.bytes_freed.wrapping_add(o.bytes_freed);
        self.bound_allocations = self.bound_allocations.wrapping_add(o.bound_allocations);
    }

    fn sub(&mut self, o: &NodeAllocStats) {
        self.allocations = self.allocations.wrapping_sub(o.allocations);
        self.frees = self.frees.wrapping_sub(o.frees);
        self.bytes_allocated = self.bytes_allocated.wrapping_sub(o.bytes_allocated);
        self.bytes_freed = self.bytes_freed.wrapping_sub(o.bytes_freed);
        self.bound_allocations = self.bound_allocations.wrapping_sub(o.bound_allocations);
    }
}

/// A snapshot of a [`NumaAwareAllocator`]'s counters since the last
/// [`NumaAwareAllocator::reset_stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllocationStats {
    /// Per node, indexed by node id, up to the highest node with activity.
    pub nodes: Vec<NodeAllocStats>,
    /// Allocations whose node could not be determined (getcpu failed, or
    /// the thread was exiting) or is not tracked (`>= MAX_TRACKED_NODES`).
    pub unattributed: NodeAllocStats,
    /// Allocations at or above the bind threshold that were served unbound:
    /// the kernel refused the `mbind`, or the node was unknown or past
    /// [`crate::MAX_NODE`].
    pub bind_failures: u64,
}

impl AllocationStats {
    /// Sum over all nodes and the unattributed bucket.
    pub fn total(&self) -> NodeAllocStats {
        let mut t = self.unattributed;
        for n in &self.nodes {
            t.add(n);
        }
        t
    }

    /// Allocations per node, indexed by node id (the seed's
    /// `Vec<usize>` view).
    pub fn allocations_per_node(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.allocations).collect()
    }
}

/// A [`GlobalAlloc`] wrapper around `A` (default [`System`]) that charges
/// every allocation and free to the NUMA node the calling thread runs on,
/// and optionally binds large allocations to that node.
///
/// ```
/// use std::alloc::{GlobalAlloc, Layout};
/// use otlp_numa::NumaAwareAllocator;
///
/// static ALLOC: NumaAwareAllocator = NumaAwareAllocator::new();
/// let layout = Layout::from_size_align(1024, 8).unwrap();
/// // SAFETY: the layout has a non-zero size; the pointer is freed with it.
/// unsafe {
///     let p = ALLOC.alloc(layout);
///     assert!(!p.is_null());
///     ALLOC.dealloc(p, layout);
/// }
/// let stats = ALLOC.get_allocation_stats();
/// assert_eq!(stats.total().allocations, 1);
/// assert_eq!(stats.total().bytes_freed, 1024);
/// ```
///
/// As the program's allocator: `#[global_allocator] static GLOBAL:
/// NumaAwareAllocator = NumaAwareAllocator::new();`.
#[derive(Debug)]
pub struct NumaAwareAllocator<A = System> {
    inner: A,
    bind_threshold: usize,
    slots: CachePadded<[Counters; FLAT]>,
    shared: [CachePadded<Counters>; BUCKETS],
    bound: [AtomicU64; BUCKETS],
    bind_failures: AtomicU64,
    baseline: [Counters; BUCKETS],
    baseline_bound: [AtomicU64; BUCKETS],
    baseline_bind_failures: AtomicU64,
}

impl NumaAwareAllocator<System> {
    /// An allocator over [`System`], binding nothing.
    ///
    /// Unlike the seed's `new(node_count)`, no node count is taken: nodes
    /// are whatever `getcpu` reports.
    pub const fn new() -> Self {
        NumaAwareAllocator::with_allocator(System)
    }
}

impl Default for NumaAwareAllocator<System> {
    fn default() -> Self {
        NumaAwareAllocator::new()
    }
}

impl<A> NumaAwareAllocator<A> {
    /// An allocator over `inner`, binding nothing.
    pub const fn with_allocator(inner: A) -> Self {
        NumaAwareAllocator {
            inner,
            bind_threshold: usize::MAX,
            slots: CachePadded([const { Counters::new() }; FLAT]),
            shared: [const { CachePadded(Counters::new()) }; BUCKETS],
            bound: [const { AtomicU64::new(0) }; BUCKETS],
            bind_failures: AtomicU64::new(0),
            baseline: [const { Counters::new() }; BUCKETS],
            baseline_bound: [const { AtomicU64::new(0) }; BUCKETS],
            baseline_bind_failures: AtomicU64::new(0),
        }
    }

    /// Serves allocations of at least `bytes` (raised to one page if
    /// smaller) with alignment up to 4 KiB from their own `mmap`, bound
    /// with `mbind(MPOL_BIND)` to the caller's current node (read with
    /// `getcpu` for each such allocation; a node past
    /// [`MAX_TRACKED_NODES`] is still bound to, and counted as
    /// unattributed). If the kernel refuses the binding, or the node cannot
    /// be told, the memory is still returned (an allocator cannot report
    /// errors) and [`AllocationStats::bind_failures`] counts it.
    pub const fn bind_above(mut self, bytes: usize) -> Self {
        self.bind_threshold = if bytes < MIN_PAGE { MIN_PAGE } else { bytes };
        self
    }

    /// The bind threshold, if binding is on.
    pub fn bind_threshold(&self) -> Option<usize> {
        (self.bind_threshold != usize::MAX).then_some(self.bind_threshold)
    }

    /// The wrapped allocator.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    fn raw_bucket(&self, b: usize) -> NodeAllocStats {
        let load = |c: &Counters| NodeAllocStats {
            allocations: c.allocations.load(Relaxed),
            frees: c.frees.load(Relaxed),
            bytes_allocated: c.bytes_allocated.load(Relaxed),
            bytes_freed: c.bytes_freed.load(Relaxed),
            bound_allocations: 0,
        };
        let mut s = load(&self.shared[b].0);
        for row in self.slots.0.chunks_exact(ROW) {
            s.add(&load(&row[b]));
        }
        s.bound_allocations = self.bound[b].load(Relaxed);
        s
    }

    fn bucket_stats(&self, b: usize) -> NodeAllocStats {
        let mut s = self.raw_bucket(b);
        let base = &self.baseline[b];
        s.sub(&NodeAllocStats {
            allocations: base.allocations.load(Relaxed),
            frees: base.frees.load(Relaxed),
            bytes_allocated: base.bytes_allocated.load(Relaxed),
            bytes_freed: base.bytes_freed.load(Relaxed),
            bound_allocations: self.baseline_bound[b].load(Relaxed),
        });
        s
    }

    /// The counters of one node since the last reset (does not allocate).
    /// Nodes at or past [`MAX_TRACKED_NODES`] read as zero: their
    /// allocations are in [`AllocationStats::unattributed`].
    pub fn node_stats(&self, node: usize) -> NodeAllocStats {
        if node >= MAX_TRACKED_NODES {
            return NodeAllocStats::default();
        }
        self.bucket_stats(node)
    }

    /// The sum over all nodes and the unattributed bucket since the last
    /// reset (does not allocate).
    pub fn total_stats(&self) -> NodeAllocStats {
        let mut t = NodeAllocStats::default();
        for b in 0..BUCKETS {
            t.add(&self.bucket_stats(b));
        }
        t
    }

    /// A snapshot of every node's counters since the last reset (allocates
    /// the returned `Vec`, which the allocator itself counts if it is the
    /// global one).
    pub fn get_allocation_stats(&self) -> AllocationStats {
        let mut nodes: Vec<NodeAllocStats> = (0..MAX_TRACKED_NODES)
            .map(|b| self.bucket_stats(b))
            .collect();
        while nodes.last() == Some(&NodeAllocStats::default()) {
            nodes.pop();
        }
        AllocationStats {
            nodes,
            unattributed: self.bucket_stats(OTHER),
            bind_failures: self
                .bind_failures
                .load(Relaxed)
                .wrapping_sub(self.baseline_bind_failures.load(Relaxed)),
        }
    }

    /// Starts the counters from zero again (by recording a baseline, so
    /// threads allocating meanwhile are never raced).
    pub fn reset_stats(&self) {
        for b in 0..BUCKETS {
            let now = self.raw_bucket(b);
            let base = &self.baseline[b];
            base.allocations.store(now.allocations, Relaxed);
            base.frees.store(now.frees, Relaxed);
            base.bytes_allocated.store(now.bytes_allocated, Relaxed);
            base.bytes_freed.store(now.bytes_freed, Relaxed);
            self.baseline_bound[b].store(now.bound_allocations, Relaxed);
        }
        self.baseline_bind_failures
            .store(self.bind_failures.load(Relaxed), Relaxed);
    }

    /// Charges one allocation or free to this thread's node. The fast path
    /// is a decrement of the thread-local clock whose sign is the only test
    /// (the clock ran out, or the thread has no slot), one thread-local
    /// load of the place and two plain updates of counters only this
    /// thread writes: five instructions on x86_64. Every [`NODE_REFRESH_INTERVAL`]th
    /// operation of the thread, allocation or free, takes the slow path and
    /// re-reads the node, so a thread that moved, even one that only frees,
    /// is charged to its old node for at most that many operations.
    #[inline(always)]
    fn charge(&self, bytes: usize, alloc: bool) {
        let place = STATE.try_with(ThreadState::take_tick);
        let Ok(Some(place)) = place else {
            return self.charge_slow(bytes, alloc);
        };
        let c = self.owned(place);
        if alloc {
            bump_owned(&c.allocations, 1);
            bump_owned(&c.bytes_allocated, bytes as u64);
        } else {
            bump_owned(&c.frees, 1);
            bump_owned(&c.bytes_freed, bytes as u64);
        }
    }

    /// The counters of a slotted place: one read while `left` was
    /// positive.
    #[inline(always)]
    fn owned(&self, place: u32) -> &Counters {
        debug_assert!(
            place & UNSLOTTED == 0
                && place.is_multiple_of(GROUP_BYTES)
                && (place as usize) < FLAT * GROUP_BYTES as usize
        );
        // SAFETY: by `ThreadState`'s invariant a place read while `left`
        // was positive is `(slot * ROW + bucket) * GROUP_BYTES` with `slot
        // < THREAD_SLOTS` and `bucket <= OTHER < ROW`: the byte offset of
        // an element of `slots`, a `[Counters; FLAT]` array (every
        // allocator has the same layout, so an offset is valid for all).
        unsafe { &*self.slots.0.as_ptr().byte_add(place as usize) }
    }

    /// The slow path: the thread's first operation (claim a slot), the
    /// refresh clock ran out (re-read the node), or the thread has no slot
    /// (shared atomics, and a refresh every [`NODE_REFRESH_INTERVAL`]
    /// operations counted in its state).
    #[cold]
    #[inline(never)]
    fn charge_slow(&self, bytes: usize, alloc: bool) {
        let (left, place) = STATE.try_with(ThreadState::get).unwrap_or((0, NO_SLOT));
        if place & UNSLOTTED == 0 {
            // The common case: a slot's clock ran out. Same slot (its row
            // starts at a multiple of ROW groups), the node read again.
            let row = place - place % (ROW as u32 * GROUP_BYTES);
            let place = row + current_bucket() as u32 * GROUP_BYTES;
            let _ = STATE.try_with(|s| s.set((NODE_REFRESH_INTERVAL as i32 - 1, place)));
            match self.slots.0.get((place / GROUP_BYTES) as usize) {
                Some(c) if alloc => {
                    bump_owned(&c.allocations, 1);
                    bump_owned(&c.bytes_allocated, bytes as u64);
                }
                Some(c) => {
                    bump_owned(&c.frees, 1);
                    bump_owned(&c.bytes_freed, bytes as u64);
                }
                // Not reached (every slotted place is in bounds); counted
                // rather than lost if it were.
                None => self.charge_in(SLOT_NONE, OTHER, bytes, alloc),
            }
            return;
        }
        let (mut slot, mut bucket, left) = unpack((left, place));
        if slot == SLOT_UNCLAIMED || left == 0 {
            (slot, bucket) = refresh_from(slot);
        } else {
            // An unslotted thread between refreshes (this also puts back
            // the `left` the fast path took below zero).
            let _ = STATE.try_with(|s| s.set(pack(slot, bucket, left - 1)));
        }
        self.charge_in(slot, bucket, bytes, alloc);
    }

    #[inline(always)]
    fn charge_in(&self, slot: u64, bucket: usize, bytes: usize, alloc: bool) {
        let bytes = bytes as u64;
        let owned = if slot < THREAD_SLOTS as u64 {
            let group = pack(slot, bucket, 0).1 / GROUP_BYTES;
            self.slots.0.get(group as usize)
        } else {
            None
        };
        if let Some(c) = owned {
            if alloc {
                bump_owned(&c.allocations, 1);
                bump_owned(&c.bytes_allocated, bytes);
            } else {
                bump_owned(&c.frees, 1);
                bump_owned(&c.bytes_freed, bytes);
            }
        } else {
            let c = &self.shared[bucket.min(OTHER)].0;
            if alloc {
                c.allocations.fetch_add(1, Relaxed);
                c.bytes_allocated.fetch_add(bytes, Relaxed);
            } else {
                c.frees.fetch_add(1, Relaxed);
                c.bytes_freed.fetch_add(bytes, Relaxed);
            }
        }
    }

    /// Whether `layout` is served by [`Self::alloc_bound`]. The size test
    /// comes first and alone on the hot path: with binding off the
    /// threshold is `usize::MAX`, so one compare settles it.
    #[inline(always)]
    fn is_bound(&self, layout: Layout) -> bool {
        if layout.size() < self.bind_threshold {
            return false;
        }
        std::hint::cold_path();
        layout.align() <= MIN_PAGE
    }

    /// mmap + mbind to the current node.
    #[cold]
    fn alloc_bound(&self, layout: Layout) -> *mut u8 {
        let Some(len) = layout.size().checked_next_multiple_of(MIN_PAGE) else {
            return ptr::null_mut();
        };
        // SAFETY: a fresh private anonymous mapping.
        let addr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return ptr::null_mut();
        }
        let addr = addr.cast::<u8>();
        // Charge (and bind) to the node we are on right now, not the cached
        // one: an mmap dwarfs one getcpu. Bind to the node itself, not to
        // its bucket: past MAX_TRACKED_NODES the bucket is not a node.
        let node = current_node();
        let bucket = bucket_of(node);
        let bound = bind_mask(node).is_some_and(|mask| {
            // SAFETY: `addr..addr+len` is the mapping just created.
            unsafe { mbind_raw(addr, len, MPOL_BIND, &mask, 0) }.is_ok()
        });
        let (mut slot, _, _) = thread_state();
        if slot == SLOT_UNCLAIMED {
            slot = refresh().0;
        }
        self.charge_in(slot, bucket, layout.size(), true);
        if bound {
            self.bound[bucket].fetch_add(1, Relaxed);
        } else {
            self.bind_failures.fetch_add(1, Relaxed);
        }
        addr
    }
}

// SAFETY: every block comes from `inner` (or from our own mmap for bound
// sizes) with the caller's layout, and goes back the same way, chosen by the
// same layout test; counting has no effect on the memory.
unsafe impl<A: GlobalAlloc> GlobalAlloc for NumaAwareAllocator<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.is_bound(layout) {
            return self.alloc_bound(layout);
        }
        // SAFETY: forwarded under the caller's contract.
        let p = unsafe { self.inner.alloc(layout) };
        if p.is_null() {
            std::hint::cold_path();
            return p;
        }
        self.charge(layout.size(), true);
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if self.is_bound(layout) {
            // Fresh anonymous pages are zero.
            return self.alloc_bound(layout);
        }
        // SAFETY: forwarded under the caller's contract.
        let p = unsafe { self.inner.alloc_zeroed(layout) };
        if !p.is_null() {
            self.charge(layout.size(), true);
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.charge(layout.size(), false);
        if self.is_bound(layout) {
            let len = layout.size().next_multiple_of(MIN_PAGE);
            // SAFETY: `ptr` came from alloc_bound's mmap of this length.
            unsafe { libc::munmap(ptr.cast(), len) };
        } else {
            // SAFETY: `ptr` came from inner with this layout.
            unsafe { self.inner.dealloc(ptr, layout) };
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees new_size, rounded to the alignment,
        // does not overflow isize.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !self.is_bound(layout) && !self.is_bound(new_layout) {
            // SAFETY: forwarded under the caller's contract.
            let p = unsafe { self.inner.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                self.charge(layout.size(), false);
                self.charge(new_size, true);
            }
            return p;
        }
        // Crossing the bind threshold: allocate, copy, free.
        // SAFETY: new_layout is valid (above) and non-zero-sized.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live and at least min(old, new) long;
            // they are distinct allocations.
            unsafe {
                ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

/// Hooks for this crate's tests; not part of the API.
#[doc(hidden)]
pub mod testing {
    use super::*;

    /// Makes every allocator's node refresh (and bound allocation) see
    /// `node` instead of asking `getcpu`, process-wide; `None` restores
    /// `getcpu`. Threads pick it up at their next refresh.
    pub fn override_node(node: Option<usize>) {
        NODE_OVERRIDE.store(node.unwrap_or(usize::MAX), Relaxed);
    }

    /// The calling thread's private counter slot, if it has one.
    pub fn thread_slot() -> Option<u32> {
        let (slot, _, _) = thread_state();
        u32::try_from(slot)
            .ok()
            .filter(|&slot| (slot as usize) < THREAD_SLOTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_allocations_target_the_real_node() {
        let bit = |mask: [libc::c_ulong; crate::memory::NODEMASK_WORDS], node: usize| {
            mask[node / 64] >> (node % 64) & 1 == 1
        };
        // A node past the tracked range is bound to itself; its bucket
        // (the unattributed one, index MAX_TRACKED_NODES) is not a node.
        let past = MAX_TRACKED_NODES + 6;
        let mask = bind_mask(Some(past)).unwrap();
        assert!(bit(mask, past));
        assert_eq!(mask.iter().map(|w| w.count_ones()).sum::<u32>(), 1);
        assert_eq!(bucket_of(Some(past)), OTHER);
        assert!(bit(bind_mask(Some(3)).unwrap(), 3));
        assert_eq!(bucket_of(Some(3)), 3.min(OTHER));
        assert!(bind_mask(None).is_none());
        assert!(bind_mask(Some(crate::MAX_NODE + 1)).is_none());
        assert_eq!(bucket_of(None), OTHER);
    }

    #[test]
    fn only_allocation_free_keys_get_slots() {
        if cfg!(target_env = "gnu") {
            assert!(setspecific_never_allocates(0));
            assert!(setspecific_never_allocates(31));
            assert!(!setspecific_never_allocates(32));
            assert!(!setspecific_never_allocates(1000));
        }
    }

    #[test]
    fn pack_round_trips() {
        let last = THREAD_SLOTS as u64 - 1;
        for (slot, bucket, left) in [
            (0, 0, 0),
            (0, 0, NODE_REFRESH_INTERVAL - 1),
            (last, OTHER, 1),
            (SLOT_NONE, OTHER, 0),
            (SLOT_NONE, 2, NODE_REFRESH_INTERVAL - 1),
            (SLOT_UNCLAIMED, 3, 5),
        ] {
            assert_eq!(unpack(pack(slot, bucket, left)), (slot, bucket, left));
        }
        assert_eq!(unpack((0, FRESH)), (SLOT_UNCLAIMED, OTHER, 0));
        assert_eq!(unpack((0, NO_SLOT)), (SLOT_NONE, OTHER, 0));
        // A slotted clock the fast path took below zero has run out.
        assert_eq!(unpack((-1, pack(1, 2, 0).1)), (1, 2, 0));
    }

    /// The fast path's one test is what keeps its unchecked counter access
    /// in bounds: it must pass only for a slotted state, whose place is
    /// then an element of the slot array.
    #[test]
    fn only_slotted_states_take_the_fast_path() {
        let st = ThreadState {
            left: Cell::new(0),
            place: Cell::new(FRESH),
        };
        assert_eq!(st.take_tick(), None);
        assert_eq!(st.take_tick(), None, "no slot, clock below zero");
        for marker in [SLOT_NONE, SLOT_UNCLAIMED] {
            for left in [0, 1, NODE_REFRESH_INTERVAL - 1, u32::MAX] {
                st.set(pack(marker, OTHER, left));
                assert_eq!(st.take_tick(), None);
            }
        }
        let last = THREAD_SLOTS as u64 - 1;
        st.set(pack(last, OTHER, 0));
        assert_eq!(st.take_tick(), None, "clock ran out");
        st.set(pack(last, OTHER, u32::MAX));
        assert_eq!(st.get().0, 0xFF, "the clock saturates");
        st.set(pack(last, OTHER, 2));
        let place = st.take_tick().unwrap();
        assert_eq!(unpack(st.get()), (last, OTHER, 1));
        assert_eq!(st.take_tick(), Some(place));
        assert_eq!(st.take_tick(), None, "two operations, then a refresh");
        assert_eq!(
            place as usize,
            (FLAT - (ROW - OTHER)) * GROUP_BYTES as usize
        );
        let a = Box::new(NumaAwareAllocator::new());
        let group = (place / GROUP_BYTES) as usize;
        assert!(std::ptr::eq(a.owned(place), &a.slots.0[group]));
    }

    #[test]
    fn counts_allocations_frees_and_bytes() {
        let a = Box::new(NumaAwareAllocator::new());
        let sizes = [1usize, 24, 1024, 4096, 100_000];
        let mut ptrs = Vec::new();
        for &s in &sizes {
            let layout = Layout::from_size_align(s, 8).unwrap();
            // SAFETY: non-zero size.
            let p = unsafe { a.alloc(layout) };
            assert!(!p.is_null());
            ptrs.push((p, layout));
        }
        let t = a.get_allocation_stats().total();
        assert_eq!(t.allocations, sizes.len() as u64);
        assert_eq!(t.bytes_allocated, sizes.iter().sum::<usize>() as u64);
        assert_eq!(t.frees, 0);
        for (p, layout) in ptrs {
            // SAFETY: allocated above with this layout.
            unsafe { a.dealloc(p, layout) };
        }
        let t = a.get_allocation_stats().total();
        assert_eq!(t.frees, sizes.len() as u64);
        assert_eq!(t.bytes_freed, t.bytes_allocated);
        a.reset_stats();
        assert_eq!(a.get_allocation_stats().total(), NodeAllocStats::default());
        assert_eq!(a.get_allocation_stats().nodes, Vec::new());
    }

    #[test]
    fn realloc_counts_a_free_and_an_allocation() {
        let a = Box::new(NumaAwareAllocator::new());
        let layout = Layout::from_size_align(16, 8).unwrap();
        // SAFETY: non-zero size; the block is reallocated then freed with
        // matching layouts, and bytes written stay within bounds.
        unsafe {
            let p = a.alloc_zeroed(layout);
            assert_eq!(*p, 0);
            *p = 7;
            let q = a.realloc(p, layout, 64);
            assert_eq!(*q, 7);
            a.dealloc(q, Layout::from_size_align(64, 8).unwrap());
        }
        let t = a.get_allocation_stats().total();
        assert_eq!((t.allocations, t.frees), (2, 2));
        assert_eq!((t.bytes_allocated, t.bytes_freed), (80, 80));
    }

    #[test]
    fn threads_get_slots_and_totals_add_up() {
        let a = std::sync::Arc::new(NumaAwareAllocator::new());
        let threads = if cfg!(miri) { 3 } else { 40 };
        let per = if cfg!(miri) { 20 } else { 500 };
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let a = a.clone();
                std::thread::spawn(move || {
                    let layout = Layout::from_size_align(32, 8).unwrap();
                    for _ in 0..per {
                        // SAFETY: non-zero size, freed with its layout.
                        unsafe { a.dealloc(a.alloc(layout), layout) };
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let t = a.get_allocation_stats().total();
        assert_eq!(t.allocations, (threads * per) as u64);
        assert_eq!(t.frees, (threads * per) as u64);
        assert_eq!(t.bytes_allocated, (threads * per * 32) as u64);
    }
}
