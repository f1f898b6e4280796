//! Two small atomic protocols, kept apart so loom can model them
//! (`tests/loom_wake.rs`, `tests/loom_gate.rs`).
//!
//! * [`WakeFlag`]: many producers push into a queue without a syscall; only
//!   the producer whose push brings the queue to the export threshold, and finds
//!   no wake-up already pending, delivers one. The consumer re-arms the flag
//!   before it looks at the queue again. The two sides form a
//!   store-buffering pair (producer: write queue, read flag; consumer: write
//!   flag, read queue) and a `SeqCst` fence on each side guarantees that at
//!   least one of them sees the other: either the consumer sees the item, or
//!   the producer sees the flag cleared and wakes it.
//! * [`SubmitGate`]: submitters announce themselves (`enter`) before checking
//!   `closed`, and the closer sets `closed` before waiting for the announced
//!   count to reach zero (a Dekker pair, with a `SeqCst` fence between the
//!   write and the read on both sides; fences rather than `SeqCst` accesses,
//!   which is also what loom models exactly). After
//!   `close` returns and the count is zero, no submitter can still be about to
//!   enqueue, so the queue holds every accepted task.

use crate::sync::{AtomicBool, AtomicUsize, Ordering, fence};

/// A coalescing wake-up request from producers to one consumer.
#[derive(Debug)]
pub struct WakeFlag {
    requested: AtomicBool,
}

impl Default for WakeFlag {
    fn default() -> Self {
        Self::new()
    }
}

impl WakeFlag {
    /// A flag with no wake-up pending.
    pub fn new() -> Self {
        Self {
            requested: AtomicBool::new(false),
        }
    }

    /// Producer side, called after a successful push that left the queue at
    /// or above the consumer's threshold. Returns `true` when the caller must
    /// deliver the wake-up (for example `Notify::notify_one`); at most one
    /// caller gets `true` per [`rearm`](Self::rearm).
    #[inline]
    pub fn should_wake(&self) -> bool {
        fence(Ordering::SeqCst);
        // The flag carries no data (the queue publishes its items itself)
        // and the fences order it against the queue, so the swap could be
        // Relaxed: the flag's modification order alone lets one swap per
        // rearm win (`wake-flag-swap-relaxed`, a correct weakening in
        // xtask's mutation list).
        !self.requested.load(Ordering::Relaxed) && !self.requested.swap(true, Ordering::AcqRel)
    }

    /// Consumer side: clear the request before looking at the queue again.
    #[inline]
    pub fn rearm(&self) {
        // Store only when set: an idle loop then leaves the producers' copy
        // of this line alone. Reading `false` is as good as writing it: any
        // later `true` comes from a producer's swap, which wakes us.
        if self.requested.load(Ordering::Relaxed) {
            self.requested.store(false, Ordering::Relaxed);
        }
        fence(Ordering::SeqCst);
    }
}

/// Lets many submitters race one closer without losing a task.
#[derive(Debug)]
pub struct SubmitGate {
    closed: AtomicBool,
    active: AtomicUsize,
}

impl Default for SubmitGate {
    fn default() -> Self {
        Self::new()
    }
}

impl SubmitGate {
    /// An open gate with nobody inside.
    pub fn new() -> Self {
        Self {
            closed: AtomicBool::new(false),
            active: AtomicUsize::new(0),
        }
    }

    /// Announces a submitter. `false` means the gate is closed and the
    /// caller must hand its task back; `true` means the caller may enqueue
    /// and must call [`leave`](Self::leave) afterwards.
    #[inline]
    pub fn enter(&self) -> bool {
        self.active.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.closed.load(Ordering::Relaxed) {
            self.leave();
            false
        } else {
            true
        }
    }

    /// Ends a submission started by a successful [`enter`](Self::enter).
    #[inline]
    pub fn leave(&self) {
        self.active.fetch_sub(1, Ordering::Release);
    }

    /// Closes the gate; later `enter` calls fail. Returns `true` for the
    /// call that closed it.
    pub fn close(&self) -> bool {
        !self.closed.swap(true, Ordering::AcqRel)
    }

    /// Whether the gate is closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// After [`close`](Self::close): whether every admitted submitter has
    /// left, so everything they enqueued is visible to the caller.
    pub fn is_quiescent(&self) -> bool {
        fence(Ordering::SeqCst);
        // `Acquire` pairs with `leave`'s `Release`: what a submitter enqueued
        // before leaving is visible once its exit is seen.
        self.active.load(Ordering::Acquire) == 0
    }
}
