//! Errors for bad configuration or export input.

use std::fmt;

/// What was wrong with a monitor configuration or an export request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MonitorError {
    /// [`MonitorBuilder::shards`](crate::MonitorBuilder::shards) was given 0
    /// or more than [`MAX_SHARDS`](crate::MAX_SHARDS).
    InvalidShardCount {
        /// The count that was asked for.
        requested: usize,
        /// The largest count accepted.
        max: usize,
    },
    /// A Prometheus metric prefix that is not a valid metric name
    /// (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
    InvalidMetricName {
        /// The rejected prefix.
        name: String,
    },
    /// Prometheus bucket bounds that are empty, not finite, not positive or
    /// not strictly increasing.
    InvalidBuckets {
        /// Which rule the bounds broke.
        reason: &'static str,
    },
}

impl fmt::Display for MonitorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidShardCount { requested, max } => {
                write!(f, "invalid shard count {requested}: expected 1..={max}")
            }
            Self::InvalidMetricName { name } => write!(
                f,
                "invalid Prometheus metric prefix {name:?}: expected [a-zA-Z_:][a-zA-Z0-9_:]*"
            ),
            Self::InvalidBuckets { reason } => {
                write!(f, "invalid Prometheus histogram buckets: {reason}")
            }
        }
    }
}

impl std::error::Error for MonitorError {}
