//! The crate's loom facade: every atomic the crate's own protocols use comes
//! from here, so that `--cfg loom` swaps them for loom's model-checked ones.
//!
//! Only the small wake-up protocols ([`crate::wake`]) and the task manager's
//! submit gate are modelled; the rest of the crate builds on tokio and
//! `otlp-lockfree`, which carry their own verification.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
