//! CPU time of the receiver's own threads, so a sender measuring itself in
//! the same process can subtract it.
//!
//! Each runtime thread registers its POSIX CPU clock when it starts and
//! folds its final CPU time into a total when it stops, both under one lock,
//! so a reading is the stopped threads' total plus every live thread's
//! clock, with no thread counted twice or missed.

use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Default)]
struct Threads {
    #[cfg(target_os = "linux")]
    live: Vec<(std::thread::ThreadId, libc::clockid_t)>,
    stopped: Duration,
}

/// The registry of a runtime's threads.
#[derive(Debug, Default)]
pub(crate) struct ThreadCpu {
    threads: Mutex<Threads>,
}

/// Guards plain data no user code touches while it is held.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(target_os = "linux")]
fn clock_time(clock: libc::clockid_t) -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the
    // call; an invalid clock id (a thread that already exited) makes the
    // call fail with EINVAL, which is handled, not undefined behaviour.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

impl ThreadCpu {
    /// Called on each runtime thread as it starts.
    pub(crate) fn thread_started(&self) {
        #[cfg(target_os = "linux")]
        {
            let mut clock: libc::clockid_t = 0;
            // SAFETY: `pthread_self()` is the calling, live thread and
            // `clock` is a valid place for the result.
            let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
            if rc == 0 {
                lock(&self.threads)
                    .live
                    .push((std::thread::current().id(), clock));
            }
        }
    }

    /// Called on each runtime thread as it stops.
    pub(crate) fn thread_stopped(&self) {
        #[cfg(target_os = "linux")]
        {
            let me = std::thread::current().id();
            let mut threads = lock(&self.threads);
            if let Some(i) = threads.live.iter().position(|(id, _)| *id == me) {
                let (_, clock) = threads.live.swap_remove(i);
                threads.stopped += clock_time(clock).unwrap_or_default();
            }
        }
    }

    /// CPU time of every thread so far; `None` where the platform has no
    /// per-thread CPU clocks.
    pub(crate) fn total(&self) -> Option<Duration> {
        #[cfg(target_os = "linux")]
        {
            let threads = lock(&self.threads);
            Some(
                threads.stopped
                    + threads
                        .live
                        .iter()
                        .filter_map(|(_, clock)| clock_time(*clock))
                        .sum::<Duration>(),
            )
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = lock(&self.threads).stopped;
            None
        }
    }
}
