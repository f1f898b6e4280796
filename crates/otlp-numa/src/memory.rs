//! Node-bound memory: `mmap` + `mbind`, and where pages actually live
//! (`get_mempolicy`, `move_pages`).
//!
//! libc has neither wrappers for these system calls nor the `MPOL_*`
//! constants, so both are defined here (values from
//! `include/uapi/linux/mempolicy.h`).

use std::fs;
use std::ptr::{self, NonNull};

use crate::NumaError;

/// Default policy (`MPOL_DEFAULT`).
pub const MPOL_DEFAULT: libc::c_int = 0;
/// Prefer one node, fall back to others (`MPOL_PREFERRED`).
pub const MPOL_PREFERRED: libc::c_int = 1;
/// Only the given nodes (`MPOL_BIND`).
pub const MPOL_BIND: libc::c_int = 2;
/// Round-robin pages over the given nodes (`MPOL_INTERLEAVE`).
pub const MPOL_INTERLEAVE: libc::c_int = 3;
/// `get_mempolicy`: return a node id instead of the policy.
pub const MPOL_F_NODE: libc::c_ulong = 1 << 0;
/// `get_mempolicy`: look up the policy (or node) of an address.
pub const MPOL_F_ADDR: libc::c_ulong = 1 << 1;
/// `mbind`: fail if existing pages do not follow the policy.
pub const MPOL_MF_STRICT: libc::c_uint = 1 << 0;
/// `mbind`: move existing pages of this process to follow the policy.
pub const MPOL_MF_MOVE: libc::c_uint = 1 << 1;

/// Node ids this crate can put in a node mask (0..=`MAX_NODE`).
pub const MAX_NODE: usize = NODEMASK_BITS - 1;
const NODEMASK_BITS: usize = 1024;
pub(crate) const NODEMASK_WORDS: usize = NODEMASK_BITS / 64;
/// Page size assumed for alignment checks (the smallest Linux page size on
/// the supported targets; real mappings are at least this aligned).
pub(crate) const MIN_PAGE: usize = 4096;

/// A memory policy for a region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemPolicy {
    /// Pages only on these nodes (`MPOL_BIND`).
    Bind(Vec<usize>),
    /// Pages round-robin over these nodes (`MPOL_INTERLEAVE`).
    Interleave(Vec<usize>),
    /// Pages on this node when it has free memory, elsewhere otherwise
    /// (`MPOL_PREFERRED`).
    Preferred(usize),
}

impl MemPolicy {
    fn mode_and_nodes(&self) -> (libc::c_int, &[usize]) {
        match self {
            MemPolicy::Bind(n) => (MPOL_BIND, n),
            MemPolicy::Interleave(n) => (MPOL_INTERLEAVE, n),
            MemPolicy::Preferred(n) => (MPOL_PREFERRED, std::slice::from_ref(n)),
        }
    }
}

/// The online NUMA nodes, from `/sys/devices/system/node/online`; a
/// machine (or container) without that file has node 0 only.
///
/// # Errors
/// [`NumaError::Io`] or [`NumaError::Parse`] for an unreadable file.
pub fn online_nodes() -> Result<Vec<usize>, NumaError> {
    let path = "/sys/devices/system/node/online";
    match fs::read_to_string(path) {
        Ok(text) => Ok(crate::CpuSet::parse_cpulist(&text)?.iter().collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![0]),
        Err(source) => Err(NumaError::Io {
            path: path.into(),
            source,
        }),
    }
}

fn check_nodes(nodes: &[usize]) -> Result<[libc::c_ulong; NODEMASK_WORDS], NumaError> {
    if nodes.is_empty() {
        return Err(NumaError::EmptyNodeSet);
    }
    let online = online_nodes()?;
    let mut mask = [0 as libc::c_ulong; NODEMASK_WORDS];
    for &node in nodes {
        if node > MAX_NODE {
            return Err(NumaError::NodeOutOfRange {
                node,
                max: MAX_NODE,
            });
        }
        if !online.contains(&node) {
            return Err(NumaError::NoSuchNode {
                node,
                existing: online
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            });
        }
        mask[node / 64] |= 1 << (node % 64);
    }
    Ok(mask)
}

/// Raw `mbind(2)`.
///
/// # Safety
/// `addr..addr+len` must be a page-aligned mapping owned by the caller.
pub(crate) unsafe fn mbind_raw(
    addr: *mut u8,
    len: usize,
    mode: libc::c_int,
    mask: &[libc::c_ulong; NODEMASK_WORDS],
    flags: libc::c_uint,
) -> Result<(), NumaError> {
    // SAFETY: the caller guarantees the range; `mask` holds NODEMASK_BITS
    // bits and maxnode is one more than that (the kernel's historical
    // off-by-one, as libnuma passes it).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mbind,
            addr,
            len,
            mode,
            mask.as_ptr(),
            NODEMASK_BITS + 1,
            flags,
        )
    };
    if rc != 0 {
        return Err(NumaError::last_os("mbind"));
    }
    Ok(())
}

/// The single-node mask of `node`, for the allocator (no checks, no
/// allocation); `None` when the node is past [`MAX_NODE`].
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn single_node_mask(node: usize) -> Option<[libc::c_ulong; NODEMASK_WORDS]> {
    if node > MAX_NODE {
        return None;
    }
    let mut mask = [0 as libc::c_ulong; NODEMASK_WORDS];
    mask[node / 64] |= 1 << (node % 64);
    Some(mask)
}

/// The node of the page that backs `addr`, or `None` when no page does
/// yet: the page was never touched, or only read, so it maps the kernel's
/// shared zero page, whose node says nothing about where the region's
/// memory will live.
///
/// The query is `move_pages` with no target nodes, which only looks the
/// page up: it never faults one in, so asking does not change the answer.
/// (`get_mempolicy(MPOL_F_NODE | MPOL_F_ADDR)`, used before, read-faults an
/// untouched page and reports the zero page's node.) Touch a page for
/// writing (for example with [`NodeMemory::touch`]) to place it.
///
/// # Errors
/// [`NumaError::Syscall`]: `EFAULT` from `move_pages` for an address that
/// is not mapped at all, or `ENOSYS` / `EPERM` where the kernel or a
/// sandbox refuses `move_pages` (the answer is then unknown; there is no
/// fallback that would fault the page in).
// The pointer is never dereferenced in user space: the kernel validates it.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn page_node(addr: *const u8) -> Result<Option<usize>, NumaError> {
    match query_pages(&[addr])?[0] {
        Ok(node) => Ok(Some(node)),
        Err(libc::ENOENT) => Ok(None),
        // The zero page (and other pages without a node) and an unmapped
        // address both read EFAULT; only a mapping tells them apart.
        Err(libc::EFAULT) if is_mapped(addr)? => Ok(None),
        Err(errno) => Err(page_error(errno)),
    }
}

/// Whether `addr` lies in a mapping of this process: `get_mempolicy` with
/// `MPOL_F_ADDR` alone looks up the mapping's policy without touching the
/// page (only `MPOL_F_NODE` makes it fault).
fn is_mapped(addr: *const u8) -> Result<bool, NumaError> {
    let mut mode: libc::c_int = 0;
    // SAFETY: `mode` is writable; with a null nodemask and maxnode 0 the
    // kernel writes only `mode`; `addr` is only looked up.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &mut mode as *mut libc::c_int,
            ptr::null_mut::<libc::c_ulong>(),
            0 as libc::c_ulong,
            addr,
            MPOL_F_ADDR,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EFAULT) {
        return Ok(false);
    }
    Err(NumaError::Syscall {
        call: "get_mempolicy",
        source: err,
    })
}

/// A `move_pages` per-page status as an error.
fn page_error(errno: i32) -> NumaError {
    NumaError::Syscall {
        call: "move_pages",
        source: std::io::Error::from_raw_os_error(errno),
    }
}

/// Where each page lives, by `move_pages(0, .., nodes = NULL, ..)`: one
/// entry per address, `Ok(node)` or `Err(errno)`: `ENOENT` for a page that
/// is not present, `EFAULT` for the shared zero page (a page only read so
/// far) or an address that is not mapped. Nothing is faulted in or moved.
///
/// # Errors
/// [`NumaError::Syscall`] if the call itself fails (`ENOSYS`, `EPERM`).
pub fn query_pages(pages: &[*const u8]) -> Result<Vec<Result<usize, i32>>, NumaError> {
    let mut status = vec![0 as libc::c_int; pages.len()];
    // SAFETY: `pages` and `status` have `pages.len()` entries; a null
    // `nodes` array asks only for the status, moving nothing; pid 0 is this
    // process.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_pages,
            0 as libc::pid_t,
            pages.len() as libc::c_ulong,
            pages.as_ptr(),
            ptr::null::<libc::c_int>(),
            status.as_mut_ptr(),
            0 as libc::c_int,
        )
    };
    if rc != 0 {
        return Err(NumaError::last_os("move_pages"));
    }
    Ok(status
        .into_iter()
        .map(|s| usize::try_from(s).map_err(|_| -s))
        .collect())
}

/// An anonymous memory region with a NUMA policy, unmapped on drop.
///
/// Pages are placed when first written ([`NodeMemory::touch`] writes them
/// all); [`NodeMemory::page_nodes`] reports where they went, and `None` for
/// pages not placed yet.
///
/// ```no_run
/// # fn main() -> Result<(), otlp_numa::NumaError> {
/// use otlp_numa::NodeMemory;
/// let mut region = NodeMemory::bind(1 << 20, 0)?;
/// assert!(region.page_nodes()?.iter().all(|n| n.is_none()));
/// region.touch();
/// assert!(region.page_nodes()?.iter().all(|&n| n == Some(0)));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NodeMemory {
    ptr: NonNull<u8>,
    len: usize,
    policy: MemPolicy,
}

// SAFETY: the region is plain memory owned by this value; access goes
// through &self / &mut self like a Box<[u8]>.
unsafe impl Send for NodeMemory {}
// SAFETY: shared access only hands out &[u8].
unsafe impl Sync for NodeMemory {}

impl NodeMemory {
    /// `len` bytes whose pages may come only from `node` (`MPOL_BIND`).
    ///
    /// # Errors
    /// As [`NodeMemory::with_policy`].
    pub fn bind(len: usize, node: usize) -> Result<NodeMemory, NumaError> {
        NodeMemory::with_policy(len, MemPolicy::Bind(vec![node]))
    }

    /// `len` bytes interleaved page by page over `nodes`.
    ///
    /// # Errors
    /// As [`NodeMemory::with_policy`].
    pub fn interleave(len: usize, nodes: &[usize]) -> Result<NodeMemory, NumaError> {
        NodeMemory::with_policy(len, MemPolicy::Interleave(nodes.to_vec()))
    }

    /// `len` bytes preferring `node`.
    ///
    /// # Errors
    /// As [`NodeMemory::with_policy`].
    pub fn preferred(len: usize, node: usize) -> Result<NodeMemory, NumaError> {
        NodeMemory::with_policy(len, MemPolicy::Preferred(node))
    }

    /// Maps `len` bytes (rounded up to whole pages) and applies `policy`
    /// with `mbind`.
    ///
    /// # Errors
    /// [`NumaError::ZeroLength`], [`NumaError::EmptyNodeSet`],
    /// [`NumaError::NodeOutOfRange`], [`NumaError::NoSuchNode`] naming a
    /// node that is not online, or [`NumaError::Syscall`] for a failed
    /// `mmap` or `mbind` (`EPERM` in a restricted container, `ENOSYS` on a
    /// kernel without NUMA): the region is then unmapped, never handed out
    /// unbound.
    pub fn with_policy(len: usize, policy: MemPolicy) -> Result<NodeMemory, NumaError> {
        if len == 0 {
            return Err(NumaError::ZeroLength);
        }
        let (mode, nodes) = policy.mode_and_nodes();
        let mask = check_nodes(nodes)?;
        let len = len
            .checked_next_multiple_of(page_size())
            .ok_or(NumaError::ZeroLength)?;
        // SAFETY: a fresh private anonymous mapping; no existing memory is
        // affected.
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
            return Err(NumaError::last_os("mmap"));
        }
        let Some(ptr) = NonNull::new(addr.cast::<u8>()) else {
            return Err(NumaError::last_os("mmap"));
        };
        // SAFETY: `ptr..ptr+len` is the mapping just created.
        if let Err(e) = unsafe { mbind_raw(ptr.as_ptr(), len, mode, &mask, MPOL_MF_STRICT) } {
            // SAFETY: unmapping the mapping created above, never shared.
            unsafe { libc::munmap(addr, len) };
            return Err(e);
        }
        Ok(NodeMemory { ptr, len, policy })
    }

    /// The policy the region was created with.
    pub fn policy(&self) -> &MemPolicy {
        &self.policy
    }

    /// Length in bytes (a whole number of pages).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: regions are at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The start of the region.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// The region as bytes (zero until written).
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The region as mutable bytes.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` writable bytes, uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Writes one byte per page so that every page is allocated (and placed
    /// by the policy) now.
    pub fn touch(&mut self) {
        let step = page_size();
        let slice = self.as_mut_slice();
        let mut i = 0;
        while i < slice.len() {
            // Volatile so the write is not optimised away.
            // SAFETY: `i` is inside the slice.
            unsafe { ptr::write_volatile(slice.as_mut_ptr().add(i), 0) };
            i += step;
        }
    }

    /// The node of every page, in order: `Some(node)` for a page that has
    /// been written (and so placed by the region's policy), `None` for one
    /// that has not been placed yet (never touched, or only read, which
    /// maps the shared zero page). One `move_pages` status query, which
    /// faults nothing in: asking does not place pages.
    ///
    /// # Errors
    /// [`NumaError::Syscall`] when the kernel or a sandbox refuses
    /// `move_pages` (`ENOSYS`, `EPERM`).
    pub fn page_nodes(&self) -> Result<Vec<Option<usize>>, NumaError> {
        let pages: Vec<*const u8> = (0..self.len)
            .step_by(page_size())
            .map(|off| self.ptr.as_ptr().wrapping_add(off).cast_const())
            .collect();
        query_pages(&pages)?
            .into_iter()
            .map(|status| match status {
                Ok(node) => Ok(Some(node)),
                // Inside our own mapping EFAULT can only be the zero page.
                Err(libc::ENOENT | libc::EFAULT) => Ok(None),
                Err(errno) => Err(page_error(errno)),
            })
            .collect()
    }
}

impl Drop for NodeMemory {
    fn drop(&mut self) {
        // SAFETY: the mapping was created in with_policy with this length
        // and is owned by self.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(MIN_PAGE).max(MIN_PAGE)
}
