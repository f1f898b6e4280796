//! Lock-free data structures for telemetry hot paths.
//!
//! (Crate documentation is being written; see the module docs.)

mod bounded;
mod stack;
mod error;
mod sync;

pub use bounded::BoundedQueue;
pub use stack::{IntoIter as StackIntoIter, LockFreeStack};
pub use crossbeam_utils::{Backoff, CachePadded};
pub use error::CapacityError;
