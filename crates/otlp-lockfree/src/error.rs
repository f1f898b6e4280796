//! Error types.

use core::fmt;

/// A capacity given to a bounded structure's constructor cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CapacityError {
    /// The capacity was zero; a bounded structure must hold at least one item.
    Zero,
    /// The capacity is larger than this structure can index or allocate.
    TooLarge {
        /// The capacity that was asked for.
        requested: usize,
        /// The largest capacity this element type allows.
        max: usize,
    },
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapacityError::Zero => f.write_str("capacity must be at least 1, got 0"),
            CapacityError::TooLarge { requested, max } => {
                write!(
                    f,
                    "capacity {requested} is too large (at most {max} for this element type)"
                )
            }
        }
    }
}

impl std::error::Error for CapacityError {}
