//! [`NumaAwareAllocator`]: a `GlobalAlloc` that charges every allocation to
//! the NUMA node the calling thread really runs on.
//!
//! # How it stays cheap
//!
//! * The node comes from `getcpu` (vDSO). The thread's state is one
//!   const-initialised, destructor-free `thread_local!` `Cell<u64>`
//!   holding the index of its current node's counters; the owned
//!   allocation and free counters double as the refresh clock, so every
//!   [`NODE_REFRESH_INTERVAL`]th allocation, and every
//!   [`NODE_REFRESH_INTERVAL`]th free, re-reads the node and the hot path
//!   writes no thread-local state. A thread that migrates is charged to its
//!   old node for at most that many more allocations and as many frees
//!   (a thread that only frees after moving is re-read too).
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
use crate::sync::{AtomicU64, AtomicUsize, Ordering::*};
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
/// Allocations (and, counted apart, frees) between two `getcpu` refreshes
/// of a thread's cached node.
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
/// Marks a thread state that has no slot (bits 16..24 say why, 0..16 hold
/// the bucket).
const UNSLOTTED: u64 = 1 << 30;
const SLOT_UNCLAIMED: u64 = 0xFF;
const SLOT_NONE: u64 = 0xFE;

thread_local! {
    /// The thread's state: for a thread with a slot, the index of its
    /// current node's counters in the flat slot array (so the hot path is
    /// one load and one bounds check); otherwise `UNSLOTTED | marker << 16 |
    /// bucket`.
    static STATE: Cell<u64> = const { Cell::new(UNSLOTTED | (SLOT_UNCLAIMED << 16) | OTHER as u64) };
}

/// Which slot ids are taken, process-wide.
static SLOTS: SlotRegistry = SlotRegistry::new(THREAD_SLOTS as u32);
/// The pthread key whose destructor gives a slot back: 0 = not yet
/// created, otherwise key + 1.
static EXIT_KEY: AtomicUsize = AtomicUsize::new(0);

#[inline(always)]
fn unpack(state: u64) -> (u64, usize) {
    if state < UNSLOTTED {
        (state / ROW as u64, (state % ROW as u64) as usize)
    } else {
        ((state >> 16) & 0xFF, ((state & 0xFFFF) as usize).min(OTHER))
    }
}

#[inline(always)]
fn pack(slot: u64, bucket: usize) -> u64 {
    let bucket = bucket.min(OTHER) as u64;
    if slot < THREAD_SLOTS as u64 {
        slot * ROW as u64 + bucket
    } else {
        UNSLOTTED | ((slot & 0xFF) << 16) | bucket
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
    let _ = STATE.try_with(|s| s.set(pack(SLOT_NONE, OTHER)));
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

/// This thread's cached (slot, node bucket).
#[inline(always)]
fn thread_state() -> (u64, usize) {
    unpack(STATE.try_with(Cell::get).unwrap_or(pack(SLOT_NONE, OTHER)))
}

/// Re-reads the node this thread runs on (and claims a slot on first use);
/// returns the new (slot, bucket).
#[cold]
#[inline(never)]
fn refresh() -> (u64, usize) {
    let (mut slot, _) = thread_state();
    if slot == SLOT_UNCLAIMED {
        slot = claim_slot();
    }
    let bucket = current_bucket();
    let _ = STATE.try_with(|s| s.set(pack(slot, bucket)));
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

    /// Charges one allocation or free to this thread's node. The owned
    /// allocation and free counters double as the refresh clock: every
    /// [`NODE_REFRESH_INTERVAL`]th allocation and every
    /// [`NODE_REFRESH_INTERVAL`]th free re-reads the node, so the hot path
    /// writes no thread-local state, and a thread that moved and only
    /// frees is not charged to its old node for ever.
    #[inline(always)]
    fn charge(&self, bytes: usize, alloc: bool) {
        let state = STATE
            .try_with(Cell::get)
            .unwrap_or(UNSLOTTED | (SLOT_NONE << 16) | OTHER as u64);
        match usize::try_from(state)
            .ok()
            .and_then(|i| self.slots.0.get(i))
        {
            Some(c) => {
                let bytes = bytes as u64;
                if alloc {
                    let n = c.allocations.load(Relaxed).wrapping_add(1);
                    c.allocations.store(n, Relaxed);
                    bump_owned(&c.bytes_allocated, bytes);
                    if n.is_multiple_of(u64::from(NODE_REFRESH_INTERVAL)) {
                        refresh();
                    }
                } else {
                    let n = c.frees.load(Relaxed).wrapping_add(1);
                    c.frees.store(n, Relaxed);
                    bump_owned(&c.bytes_freed, bytes);
                    if n.is_multiple_of(u64::from(NODE_REFRESH_INTERVAL)) {
                        refresh();
                    }
                }
            }
            None => self.charge_unslotted(state, bytes, alloc),
        }
    }

    /// Threads without a private slot: first use (claim one), or no slot
    /// free (shared atomics).
    #[cold]
    #[inline(never)]
    fn charge_unslotted(&self, state: u64, bytes: usize, alloc: bool) {
        let (mut slot, mut bucket) = unpack(state);
        if slot == SLOT_UNCLAIMED {
            (slot, bucket) = refresh();
        }
        self.charge_in(slot, bucket, bytes, alloc);
        if slot >= THREAD_SLOTS as u64 {
            // Shared counters: every 64th operation of anyone on the
            // bucket (a cheap, approximate clock) re-reads this node.
            let c = &self.shared[bucket].0;
            let n = if alloc { &c.allocations } else { &c.frees }.load(Relaxed);
            if n.is_multiple_of(u64::from(NODE_REFRESH_INTERVAL)) {
                refresh();
            }
        }
    }

    #[inline(always)]
    fn charge_in(&self, slot: u64, bucket: usize, bytes: usize, alloc: bool) {
        let bytes = bytes as u64;
        let owned = if slot < THREAD_SLOTS as u64 {
            usize::try_from(pack(slot, bucket))
                .ok()
                .and_then(|i| self.slots.0.get(i))
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

    #[inline]
    fn is_bound(&self, layout: Layout) -> bool {
        layout.size() >= self.bind_threshold && layout.align() <= MIN_PAGE
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
        let (mut slot, _) = thread_state();
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
        if !p.is_null() {
            self.charge(layout.size(), true);
        }
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
        let (slot, _) = thread_state();
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
        for (slot, bucket) in [
            (0, 0),
            (last, OTHER),
            (SLOT_NONE, OTHER),
            (SLOT_UNCLAIMED, 3),
        ] {
            assert_eq!(unpack(pack(slot, bucket)), (slot, bucket));
        }
        assert!(pack(last, OTHER) < FLAT as u64);
        assert!(pack(SLOT_NONE, 0) >= FLAT as u64);
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
