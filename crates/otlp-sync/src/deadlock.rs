//! Deadlock detection on top of parking_lot's detector
//! (feature `deadlock-detection`).
//!
//! parking_lot records, for every thread blocked on one of its locks (the
//! re-exported [`Mutex`](crate::Mutex) and [`RwLock`](crate::RwLock), the
//! instrumented locks, and anything else built on `parking_lot_core`), which
//! lock it waits for and which locks it holds, and can search that graph for
//! cycles. [`check_deadlocks`] runs one search, logs every cycle through
//! `tracing` at error level and returns them; [`DeadlockChecker`] runs it
//! periodically on a background thread.
//!
//! Costs and limits: enabling the cargo feature switches parking_lot's
//! bookkeeping on for the whole program (every lock operation pays for it),
//! so keep it for debug and test builds. Waits on this crate's `Semaphore`,
//! `Barrier`, `Lifecycle` and `ConfigCell` park threads directly and are not
//! part of the graph.

use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// One thread that is part of a deadlock cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlockedThread {
    /// The thread's id (as `std::thread::current().id()` reports it).
    pub thread_id: std::thread::ThreadId,
    /// The thread's backtrace when it blocked, rendered as text.
    pub backtrace: String,
}

/// One deadlock cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadlock {
    /// The threads in the cycle.
    pub threads: Vec<DeadlockedThread>,
}

impl fmt::Display for Deadlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "deadlock between {} threads:", self.threads.len())?;
        for thread in &self.threads {
            writeln!(f, "thread {:?}:\n{}", thread.thread_id, thread.backtrace)?;
        }
        Ok(())
    }
}

/// Runs parking_lot's cycle search once. Each deadlock found is logged with
/// `tracing::error!` and returned. Each cycle is reported only once by
/// parking_lot (the next call does not report it again).
pub fn check_deadlocks() -> Vec<Deadlock> {
    let found: Vec<Deadlock> = parking_lot::deadlock::check_deadlock()
        .into_iter()
        .map(|cycle| Deadlock {
            threads: cycle
                .iter()
                .map(|t| DeadlockedThread {
                    thread_id: t.thread_id(),
                    backtrace: format!("{:?}", t.backtrace()),
                })
                .collect(),
        })
        .collect();
    for (i, deadlock) in found.iter().enumerate() {
        let ids: Vec<String> = deadlock
            .threads
            .iter()
            .map(|t| format!("{:?}", t.thread_id))
            .collect();
        tracing::error!(
            cycle = i,
            threads = %ids.join(", "),
            report = %deadlock,
            "deadlock detected"
        );
    }
    found
}

/// Errors starting a [`DeadlockChecker`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeadlockCheckerError {
    /// A zero interval would spin a core.
    #[error("deadlock check interval must be positive")]
    ZeroInterval,
    /// The background thread could not be spawned.
    #[error("could not spawn the deadlock checker thread: {0}")]
    Spawn(#[from] std::io::Error),
}

/// A background thread that calls [`check_deadlocks`] every interval and
/// hands each non-empty result to a callback. Stops when dropped.
///
/// Stopping (drop or [`stop`](Self::stop)) wakes the thread at once, whatever
/// the interval, and waits only for a check or callback already running.
/// The callback runs without any of the checker's locks held.
pub struct DeadlockChecker {
    stop: Arc<(parking_lot::Mutex<bool>, parking_lot::Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl fmt::Debug for DeadlockChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadlockChecker")
            .field("running", &self.handle.is_some())
            .finish()
    }
}

impl DeadlockChecker {
    /// Starts checking every `interval`.
    ///
    /// # Errors
    ///
    /// [`DeadlockCheckerError::ZeroInterval`] or
    /// [`DeadlockCheckerError::Spawn`].
    pub fn spawn<F>(interval: Duration, mut on_deadlock: F) -> Result<Self, DeadlockCheckerError>
    where
        F: FnMut(&[Deadlock]) + Send + 'static,
    {
        if interval.is_zero() {
            return Err(DeadlockCheckerError::ZeroInterval);
        }
        let stop = Arc::new((parking_lot::Mutex::new(false), parking_lot::Condvar::new()));
        let stop2 = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("otlp-deadlock-checker".into())
            .spawn(move || {
                let (flag, cond) = &*stop2;
                let mut stopped = flag.lock();
                // The flag is read before every wait, under the lock that
                // `shutdown` sets it under: a stop requested before this
                // thread first took the lock (or while a check ran) is seen
                // here instead of being slept through for a whole interval.
                while !*stopped {
                    // An early wake-up only makes a check early.
                    let _ = cond.wait_for(&mut stopped, interval);
                    if *stopped {
                        break;
                    }
                    // The search and the callback run unlocked, so `shutdown`
                    // never waits on the flag's lock behind user code.
                    parking_lot::MutexGuard::unlocked(&mut stopped, || {
                        let found = check_deadlocks();
                        if !found.is_empty() {
                            on_deadlock(&found);
                        }
                    });
                }
            })?;
        Ok(DeadlockChecker {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let (flag, cond) = &*self.stop;
        *flag.lock() = true;
        cond.notify_all();
        if let Some(handle) = self.handle.take() {
            if handle.thread().id() == std::thread::current().id() {
                // Dropped by its own callback: the thread sees the flag and
                // ends when the callback returns; joining itself would fail.
                return;
            }
            // A panicking callback already reported itself; nothing to add.
            let _ = handle.join();
        }
    }
}

impl Drop for DeadlockChecker {
    fn drop(&mut self) {
        self.shutdown();
    }
}
