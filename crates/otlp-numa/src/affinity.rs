//! Thread affinity and "where am I running": `sched_setaffinity`,
//! `sched_getaffinity`, `getcpu`.

use std::mem;

use crate::{CpuSet, NumaError};

/// The largest CPU id the affinity calls accept (`CPU_SETSIZE - 1`).
pub const MAX_AFFINITY_CPU: usize = libc::CPU_SETSIZE as usize - 1;

// glibc (2.29+) exports getcpu(3), which goes through the vDSO on x86_64;
// the libc crate has no binding for it.
unsafe extern "C" {
    fn getcpu(cpu: *mut libc::c_uint, node: *mut libc::c_uint) -> libc::c_int;
}

fn to_cpu_set(cpus: &CpuSet) -> Result<libc::cpu_set_t, NumaError> {
    if cpus.is_empty() {
        return Err(NumaError::EmptyCpuSet);
    }
    if let Some(last) = cpus.last().filter(|&c| c > MAX_AFFINITY_CPU) {
        return Err(NumaError::CpuOutOfRange {
            cpu: last,
            max: MAX_AFFINITY_CPU,
        });
    }
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    for cpu in cpus {
        // SAFETY: `cpu` is below CPU_SETSIZE (checked above), so the bit is
        // inside `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    Ok(set)
}

/// Pins the calling thread to `cpus` (`sched_setaffinity(0, ..)`).
///
/// # Errors
/// [`NumaError::EmptyCpuSet`], [`NumaError::CpuOutOfRange`] for an id past
/// [`MAX_AFFINITY_CPU`], or [`NumaError::Syscall`] with `EINVAL` when none
/// of the CPUs exists or is allowed (use [`crate::Topology::check_cpu`] or
/// [`crate::Topology::pin_current_thread_to_cpu`] for an error that names
/// the CPU).
pub fn pin_current_thread(cpus: &CpuSet) -> Result<(), NumaError> {
    let set = to_cpu_set(cpus)?;
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the
    // calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(NumaError::last_os("sched_setaffinity"));
    }
    Ok(())
}

/// The CPUs the calling thread may run on (`sched_getaffinity(0, ..)`).
///
/// # Errors
/// [`NumaError::Syscall`] if the call fails.
pub fn current_affinity() -> Result<CpuSet, NumaError> {
    // SAFETY: all zeroes is a valid (empty) cpu_set_t.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is writable and of the size passed; pid 0 is this thread.
    let rc = unsafe { libc::sched_getaffinity(0, mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(NumaError::last_os("sched_getaffinity"));
    }
    Ok((0..=MAX_AFFINITY_CPU)
        // SAFETY: every `cpu` is below CPU_SETSIZE, inside `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// The CPU and NUMA node the calling thread is running on (`getcpu`, via
/// the vDSO). The answer may be stale as soon as it is returned unless the
/// thread is pinned.
///
/// # Errors
/// [`NumaError::Syscall`] if `getcpu` fails.
pub fn current_cpu_and_node() -> Result<(usize, usize), NumaError> {
    let (mut cpu, mut node): (libc::c_uint, libc::c_uint) = (0, 0);
    // SAFETY: both pointers are valid for writes of a c_uint.
    let rc = unsafe { getcpu(&mut cpu, &mut node) };
    if rc != 0 {
        return Err(NumaError::last_os("getcpu"));
    }
    Ok((cpu as usize, node as usize))
}

/// The CPU the calling thread is running on.
///
/// # Errors
/// As [`current_cpu_and_node`].
pub fn current_cpu() -> Result<usize, NumaError> {
    current_cpu_and_node().map(|(cpu, _)| cpu)
}

/// The NUMA node the calling thread is running on.
///
/// # Errors
/// As [`current_cpu_and_node`].
pub fn current_node() -> Result<usize, NumaError> {
    current_cpu_and_node().map(|(_, node)| node)
}

/// The raw `getcpu` system call, bypassing the vDSO (for comparison in the
/// benchmarks and as a cross-check in tests).
///
/// # Errors
/// [`NumaError::Syscall`] if the call fails.
pub fn current_cpu_and_node_syscall() -> Result<(usize, usize), NumaError> {
    let (mut cpu, mut node): (libc::c_uint, libc::c_uint) = (0, 0);
    // SAFETY: getcpu writes one c_uint through each non-null pointer; the
    // third argument (tcache) is unused by the kernel and may be null.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_getcpu,
            &mut cpu as *mut libc::c_uint,
            &mut node as *mut libc::c_uint,
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    if rc != 0 {
        return Err(NumaError::last_os("getcpu (syscall)"));
    }
    Ok((cpu as usize, node as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_out_of_range_sets_are_rejected() {
        assert!(matches!(
            pin_current_thread(&CpuSet::new()),
            Err(NumaError::EmptyCpuSet)
        ));
        let err = pin_current_thread(&CpuSet::single(5000)).unwrap_err();
        assert!(
            matches!(err, NumaError::CpuOutOfRange { cpu: 5000, .. }),
            "{err}"
        );
    }
}
