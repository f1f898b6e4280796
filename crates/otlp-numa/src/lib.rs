//! NUMA topology, CPU pinning, worker placement plans, node-bound memory and
//! a truthful NUMA-aware allocator, for Linux.
//!
//! # What it gives you
//!
//! * [`Topology`]: NUMA nodes (id, CPUs, memory), packages, cores, PUs with
//!   their SMT siblings, and the node distance matrix. The CPUs that exist
//!   ([`Topology::cpus`]) are kept apart from the CPUs this process may run
//!   on ([`Topology::allowed_cpus`]: its affinity, which includes any cgroup
//!   cpuset). Placement only uses allowed CPUs.
//! * Placement: [`Topology::plan`] gives one [`CpuSet`] per worker,
//!   [`Placement::Compact`] (fill a node, core by core), [`Placement::Scatter`]
//!   (spread over nodes, then cores, SMT siblings last) or
//!   [`Placement::Node`]. `otlp-sched` pins its workers with it.
//! * Affinity: [`pin_current_thread`], [`Topology::pin_current_thread_to_cpu`],
//!   [`Topology::pin_current_thread_to_node`], [`current_affinity`],
//!   [`current_cpu`] and [`current_node`] (`getcpu` through the vDSO).
//! * Memory: [`NodeMemory`] maps a region and applies `mbind` with
//!   `MPOL_BIND`, `MPOL_INTERLEAVE` or `MPOL_PREFERRED`; [`page_node`] and
//!   [`query_pages`] (`move_pages` status queries, which fault nothing in)
//!   say where pages really are, and that a page never written has no node
//!   yet. When the kernel refuses
//!   (`EPERM` in a locked-down container, `ENOSYS` without NUMA support) the
//!   error is returned, never papered over.
//! * [`NumaAwareAllocator`]: the seed's allocator made truthful. The seed
//!   picked a "node" round-robin and placed nothing; this one charges each
//!   allocation and free to the node the calling thread actually runs on,
//!   and can bind large allocations to that node ([`NumaAwareAllocator::bind_above`]).
//!   It never allocates or panics inside `alloc` (and, on glibc, takes no
//!   lock), so it can be the `#[global_allocator]`; see
//!   [the allocator's design](#the-allocators-design) for the one libc call
//!   where that needed care.
//!
//! # Backends
//!
//! The default backend reads Linux sysfs (`/sys/devices/system/node/*` and
//! `/sys/devices/system/cpu/cpu*/topology/*`) and needs no C library;
//! [`Topology::from_sysfs_root`] reads any tree laid out the same way (the
//! tests use fixture trees of 2- and 4-node machines). Where
//! `/sys/devices/system/node` is missing, as in some containers, the
//! topology has one node holding every online CPU.
//!
//! The `hwloc` feature reads the topology through the hwloc C library
//! instead, using the **`hwlocality`** crate (needs `libhwloc-dev`,
//! `libudev-dev`, `pkg-config`). Not `hwloc2`, although the original design
//! named it: hwloc2 2.2.0 (2020, unmaintained) panics with "The provided
//! depth 4294967292 is out of bounds" on `objects_with_type(NUMANode)`
//! against hwloc 2.9, the version Debian ships (NUMA nodes live at a virtual
//! depth since hwloc 2.0), and keeps memory binding and synthetic topologies
//! out of its safe API. hwlocality lists NUMA nodes correctly and builds
//! synthetic topologies through its builder
//! (`Topology::from_hwloc_synthetic`, feature `hwloc`, with e.g. `"pack:2 numa:1 core:4
//! pu:2"`: 2 nodes, 8 cores, 16 PUs) without touching `HWLOC_SYNTHETIC`.
//! Both backends fill the same [`Topology`]; a test checks they agree on the
//! machine it runs on.
//!
//! # Example
//!
//! ```
//! use otlp_numa::{Placement, Topology, current_cpu};
//!
//! # fn main() -> Result<(), otlp_numa::NumaError> {
//! let topo = Topology::detect()?;
//! println!("{} node(s), allowed CPUs {}", topo.nodes().len(), topo.allowed_cpus());
//!
//! // One CPU set per worker, spread over nodes and cores.
//! let plan = topo.plan(4, Placement::Scatter)?;
//! let handles: Vec<_> = plan
//!     .into_iter()
//!     .map(|cpus| {
//!         std::thread::spawn(move || {
//!             otlp_numa::pin_current_thread(&cpus)?;
//!             assert!(cpus.contains(current_cpu()?));
//!             Ok::<_, otlp_numa::NumaError>(())
//!         })
//!     })
//!     .collect();
//! for h in handles {
//!     h.join().unwrap()?;
//! }
//!
//! // A node that does not exist is a typed error.
//! assert!(matches!(
//!     topo.plan(1, Placement::Node(99)),
//!     Err(otlp_numa::NumaError::NoSuchNode { node: 99, .. })
//! ));
//! # Ok(()) }
//! ```
//!
//! # The allocator's design
//!
//! The calling thread's node is cached in a const-initialised,
//! destructor-free `thread_local!` (as the offset of its counters, beside a
//! countdown) and re-read with `getcpu` (vDSO) on every
//! [`NODE_REFRESH_INTERVAL`]th operation of the thread, allocations and
//! frees together. Counters live in
//! per-thread slots
//! (cache-padded, written only by their owner with a plain load + store, no
//! locked instruction); a thread that exits gives its slot back through a
//! `pthread` key destructor, and the next owner keeps adding to the same
//! cumulative counters. Threads beyond [`THREAD_SLOTS`] fall back to shared
//! cache-padded atomics. Frees are charged to the node of the thread that
//! frees (there is no per-block header).
//!
//! Registering that destructor (`pthread_setspecific`, once per thread,
//! inside `alloc`) is the one call that could allocate: glibc `calloc`s a
//! second-level block for keys of index 32 and up. The allocator's key is
//! created at the process's first allocation, so it is normally far below
//! that; if it is not, no thread gets a slot (all use the shared counters)
//! and `pthread_setspecific` is never called. Nodes past
//! [`MAX_TRACKED_NODES`] are counted as unattributed, and bound allocations
//! there are bound to the real node, never to a stand-in. See
//! `docs/numa.md` for the measured cost.
//!
//! # Platform
//!
//! Linux only (x86_64 and other glibc targets: `getcpu` comes from glibc
//! 2.29 or later). Under Miri, which cannot run these system calls, the
//! allocator charges everything to [`AllocationStats::unattributed`] and
//! the system-call tests are skipped.

mod affinity;
#[cfg(not(loom))]
mod alloc;
mod cpuset;
mod error;
#[cfg(feature = "hwloc")]
mod hwloc;
mod memory;
mod registry;
mod sync;
mod sysfs;
mod topology;

pub use affinity::{
    MAX_AFFINITY_CPU, current_affinity, current_cpu, current_cpu_and_node,
    current_cpu_and_node_syscall, current_node, pin_current_thread,
};
/// Hooks for this crate's own tests (a forced node, a thread's slot); not
/// part of the API.
#[cfg(not(loom))]
#[doc(hidden)]
pub use alloc::testing as __testing;
#[cfg(not(loom))]
pub use alloc::{
    AllocationStats, MAX_TRACKED_NODES, NODE_REFRESH_INTERVAL, NodeAllocStats, NumaAwareAllocator,
    THREAD_SLOTS,
};
pub use cpuset::{CpuSet, Iter as CpuSetIter, MAX_PARSED_CPU};
pub use error::NumaError;
pub use memory::{
    MAX_NODE, MPOL_BIND, MPOL_DEFAULT, MPOL_F_ADDR, MPOL_F_NODE, MPOL_INTERLEAVE, MPOL_MF_MOVE,
    MPOL_MF_STRICT, MPOL_PREFERRED, MemPolicy, NodeMemory, online_nodes, page_node, page_size,
    query_pages,
};
pub use topology::{Backend, Core, NumaNode, Package, Placement, Pu, Topology};

/// Internals exposed to the loom models only.
#[cfg(loom)]
#[doc(hidden)]
pub mod __loom {
    pub use crate::registry::{SlotRegistry, bump_owned};
}

/// The code blocks of this crate's `README.md`, compiled and run as
/// doctests (the README is part of the published package).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
