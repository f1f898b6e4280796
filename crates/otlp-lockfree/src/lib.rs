//! Lock-free data structures for telemetry hot paths.
//!
//! (Crate documentation is being written; see the module docs.)

mod bounded;
mod error;
mod map;
mod queue;
mod stack;
mod sync;
mod vec;

pub use bounded::BoundedQueue;
pub use crossbeam_utils::{Backoff, CachePadded};
pub use error::CapacityError;
pub use map::ConcurrentHashMap;
pub use queue::LockFreeQueue;
pub use stack::{IntoIter as StackIntoIter, LockFreeStack};
pub use vec::{ConcurrentVec, Iter as ConcurrentVecIter};
