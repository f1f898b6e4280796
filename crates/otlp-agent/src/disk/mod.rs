//! The disk queue's log: one [`DiskLog`] per signal directory, an
//! append-only run of segment files whose records (one accepted request
//! each, with its item count and a crc32c) survive a crash and come back,
//! unacknowledged ones only, when the log is opened again. See `log.rs` for
//! the layout on disk and how acknowledgements are kept.
//!
//! ```
//! use otlp_agent::disk::{DiskLog, Fsync, LogConfig};
//!
//! let dir = std::env::temp_dir().join(format!("otlp-agent-doc-{}", std::process::id()));
//! let config = LogConfig { dir: dir.clone(), segment_bytes: 1 << 20, max_bytes: 8 << 20, fsync: Fsync::Always };
//! let (log, recovered) = DiskLog::open(config.clone()).unwrap();
//! assert!(recovered.records.is_empty());
//! let ids = log.append(&[(b"request one", 3), (b"request two", 5)]).unwrap();
//! log.ack(&ids[..1]).unwrap();
//! drop(log); // a crash, as far as the log can tell
//! let (_log, recovered) = DiskLog::open(config).unwrap();
//! assert_eq!(recovered.records.len(), 1);
//! assert_eq!(recovered.records[0].1, 5);
//! # drop(_log);
//! # std::fs::remove_dir_all(dir).unwrap();
//! ```

mod error;
mod files;
mod log;
mod record;

pub use error::LogError;
pub use log::{DiskLog, Fsync, FsyncStats, LogConfig, RecordId, Recovered};
