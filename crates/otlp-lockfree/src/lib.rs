//! Lock-free data structures for telemetry hot paths.
//!
//! (Crate documentation is being written; see the module docs.)

mod bounded;
mod error;
mod sync;

pub use bounded::BoundedQueue;
pub use crossbeam_utils::{Backoff, CachePadded};
pub use error::CapacityError;
