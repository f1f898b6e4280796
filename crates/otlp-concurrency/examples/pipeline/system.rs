//! What the job asks of the operating system: Ctrl-C and CPU time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::Release);
}

/// Makes the first SIGINT set a flag the job polls (it stops the producers,
/// flushes and reports); the handler resets itself, so a second Ctrl-C ends
/// the process the default way.
pub fn catch_sigint() -> Result<(), String> {
    // SAFETY: `action` is zero-initialised (a valid `sigaction`), its
    // handler is an `extern "C"` function that only stores to an atomic, and
    // the pointers passed are valid for the call.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigint as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut())
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "installing the SIGINT handler: {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// Whether SIGINT has arrived since [`catch_sigint`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Acquire)
}

/// User plus system CPU time of the whole process so far, every thread,
/// ended ones included.
pub fn process_cpu_time() -> Duration {
    // SAFETY: `usage` is zero-initialised (a valid `rusage`) and writable.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Duration::ZERO;
        }
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    time(usage.ru_utime) + time(usage.ru_stime)
}
