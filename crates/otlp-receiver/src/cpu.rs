//! CPU time of the receiver's own threads, so a sender measuring itself in
//! the same process can subtract it.
//!
//! Linux keeps each thread's time on CPU, in nanoseconds, in the first
//! field of `/proc/self/task/<tid>/schedstat`. Each runtime thread records
//! its tid when it starts and folds its final time into a total when it
//! stops, both under one lock, so a reading is the stopped threads' total
//! plus every live thread's current time, with no thread counted twice or
//! missed. Elsewhere there is no reading (`None`).

use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Default)]
struct Threads {
    /// `(thread, its schedstat path)` for every live runtime thread.
    live: Vec<(std::thread::ThreadId, String)>,
    stopped: Duration,
    /// A thread whose time could not be read: the total is not trusted.
    unreadable: bool,
}

/// CPU time of a set of threads (a runtime's, through its
/// `on_thread_start` / `on_thread_stop` hooks), read from Linux's
/// per-thread schedstat.
#[derive(Debug, Default)]
pub struct ThreadCpu {
    threads: Mutex<Threads>,
}

/// Guards plain data no user code touches while it is held.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `/proc/self/task/<tid>/schedstat` of the calling thread.
fn own_schedstat() -> Option<String> {
    // `/proc/thread-self` links to `<pid>/task/<tid>`.
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    let tid = link.file_name()?.to_str()?.to_owned();
    tid.parse::<u64>().ok()?;
    Some(format!("/proc/self/task/{tid}/schedstat"))
}

fn read_ns(path: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(path).ok()?;
    let ns = text.split_whitespace().next()?.parse::<u64>().ok()?;
    Some(Duration::from_nanos(ns))
}

impl ThreadCpu {
    /// Called on each runtime thread as it starts.
    pub fn thread_started(&self) {
        let me = std::thread::current().id();
        let mut threads = lock(&self.threads);
        match own_schedstat().filter(|path| read_ns(path).is_some()) {
            Some(path) => threads.live.push((me, path)),
            None => threads.unreadable = true,
        }
    }

    /// Called on each runtime thread as it stops.
    pub fn thread_stopped(&self) {
        let me = std::thread::current().id();
        let mut threads = lock(&self.threads);
        if let Some(i) = threads.live.iter().position(|(id, _)| *id == me) {
            let (_, path) = threads.live.swap_remove(i);
            match read_ns(&path) {
                Some(t) => threads.stopped += t,
                None => threads.unreadable = true,
            }
        }
    }

    /// CPU time of every thread so far; `None` where it cannot be read.
    pub fn total(&self) -> Option<Duration> {
        let threads = lock(&self.threads);
        if threads.unreadable {
            return None;
        }
        let mut total = threads.stopped;
        for (_, path) in &threads.live {
            total += read_ns(path)?;
        }
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_works_is_counted_once_it_stops() {
        let cpu = ThreadCpu::default();
        std::thread::scope(|s| {
            s.spawn(|| {
                cpu.thread_started();
                let mut x = 0u64;
                for i in 0..5_000_000u64 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                }
                cpu.thread_stopped();
            });
        });
        if cfg!(target_os = "linux") {
            let total = cpu.total().expect("Linux has schedstat");
            assert!(total > Duration::ZERO);
            assert!(lock(&cpu.threads).live.is_empty());
        } else {
            assert_eq!(cpu.total(), None);
        }
    }
}
