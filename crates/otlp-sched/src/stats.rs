//! Per-worker counters.

use crate::sync::{AtomicU64, Ordering};

/// One worker's counters. Only the owning worker writes them, so a bump is
/// a relaxed load and store on the worker's own cache line (no locked
/// instruction); readers see a recent value.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    executed: AtomicU64,
    stolen: AtomicU64,
    parked: AtomicU64,
    panicked: AtomicU64,
}

#[inline]
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

impl Counters {
    #[inline]
    pub(crate) fn bump_executed(&self) {
        bump(&self.executed);
    }

    #[inline]
    pub(crate) fn bump_stolen(&self) {
        bump(&self.stolen);
    }

    pub(crate) fn bump_parked(&self) {
        bump(&self.parked);
    }

    pub(crate) fn bump_panicked(&self) {
        bump(&self.panicked);
    }

    pub(crate) fn snapshot(&self, worker: usize) -> WorkerStats {
        WorkerStats {
            worker,
            executed: self.executed.load(Ordering::Relaxed),
            stolen: self.stolen.load(Ordering::Relaxed),
            parked: self.parked.load(Ordering::Relaxed),
            panicked: self.panicked.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of one worker's counters, from
/// [`WorkStealingScheduler::stats`](crate::WorkStealingScheduler::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// The worker's index (0-based).
    pub worker: usize,
    /// Jobs the worker took from a queue and ran: tasks, scope tasks, and
    /// the `b` halves of `join` that it stole (a `b` popped back by the
    /// worker that pushed it runs as a plain call and is not counted).
    pub executed: u64,
    /// Successful steals from other workers' deques (one job each).
    pub stolen: u64,
    /// Times the worker slept on the pool's condition variable and was
    /// woken by new work.
    pub parked: u64,
    /// Panics the worker caught and passed to the panic handler: panicking
    /// tasks, panicking destructors run on the worker (the result of a
    /// task whose handle was dropped, a discarded task, a panic payload),
    /// and panicking hooks. Panics in jobs that `shutdown` runs on the
    /// calling thread after the workers exited reach the handler but no
    /// worker's count.
    pub panicked: u64,
}
