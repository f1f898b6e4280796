//! When the batch processor's loop starts an export, and when a producer
//! must wake it to do so: the rule of [`BatchConfig::with_export_threshold`]
//! as one small protocol, compiled under loom (`tests/loom_trigger.rs`).
//!
//! Producers wake the loop through a [`WakeFlag`] once the queue holds the
//! export threshold. The loop re-arms the flag only while it has a free
//! export slot: with every slot busy it could not start an export anyway,
//! and it will look at the queue again when an export finishes. So under
//! overload a producer's check is one load of a line the loop leaves alone,
//! not a wake-up per push.
//!
//! [`BatchConfig::with_export_threshold`]: crate::BatchConfig::with_export_threshold

use crate::wake::WakeFlag;

/// The export trigger shared by a processor's producers and its loop.
#[derive(Debug)]
pub struct ExportTrigger {
    wake: WakeFlag,
    threshold: usize,
}

impl ExportTrigger {
    /// A trigger that fires at `threshold` queued items (at least 1).
    pub fn new(threshold: usize) -> Self {
        Self {
            wake: WakeFlag::new(),
            threshold: threshold.max(1),
        }
    }

    /// Producer side, after a successful push that left `queued` items:
    /// `true` when the caller must wake the loop. At most one caller gets
    /// `true` between two [`rearm_if_free`](Self::rearm_if_free) calls that
    /// re-armed.
    #[inline]
    pub fn pushed(&self, queued: usize) -> bool {
        queued >= self.threshold && self.wake.should_wake()
    }

    /// Producer side, when a push found the queue full: `true` when the
    /// caller must wake the loop (a full queue is past any threshold).
    #[inline]
    pub fn full(&self) -> bool {
        self.wake.should_wake()
    }

    /// Loop side, before it looks at the queue: with a free export slot,
    /// re-arm so that the next push reaching the threshold wakes the loop;
    /// with none, leave a pending request pending, so producers keep quiet
    /// until an export finishes (which wakes the loop by itself).
    #[inline]
    pub fn rearm_if_free(&self, slot_free: bool) {
        if slot_free {
            self.wake.rearm();
        }
    }

    /// Loop side: whether `queued` items are enough for an export now,
    /// given that a slot is free. `eager` is set when the timer, a flush or
    /// a shutdown wants even a short batch.
    #[inline]
    pub fn ready(&self, queued: usize, eager: bool) -> bool {
        queued > 0 && (eager || queued >= self.threshold)
    }
}
