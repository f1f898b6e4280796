use std::fmt;
use std::path::PathBuf;

/// Failures of the disk log. The caller backpressures on `Full` and `Io`
/// alike; `Full` only says the cause is known to be space.
#[derive(Debug)]
pub enum LogError {
    /// Another live `DiskLog` (this process or another) holds the directory.
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// A filesystem call failed; `op` names the step so logs are actionable.
    Io {
        /// The step that failed (`append`, `fsync`, `open segment`, ...).
        op: &'static str,
        /// The file or directory it was working on.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The batch does not fit: either `max_bytes` would be exceeded (nothing
    /// was written) or the filesystem reported ENOSPC (`free` is then 0).
    Full {
        /// Bytes the batch needed.
        needed: u64,
        /// Bytes left under the cap (0 on ENOSPC).
        free: u64,
    },
    /// A single record can never be stored: it exceeds `segment_bytes`
    /// (records never span segments) or the u32 length field.
    TooLarge {
        /// The record's size on disk.
        size: u64,
        /// The most a record may take.
        limit: u64,
    },
}

impl LogError {
    /// Maps ENOSPC to `Full` so the caller's space handling sees it.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        if source.raw_os_error() == Some(libc::ENOSPC) {
            return LogError::Full { needed: 0, free: 0 };
        }
        LogError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Locked { dir } => {
                write!(f, "disk log {} is locked by another process", dir.display())
            }
            LogError::Io { op, path, source } => {
                write!(f, "disk log {op} {}: {source}", path.display())
            }
            LogError::Full { needed, free } => {
                write!(f, "disk log full: need {needed} bytes, {free} free")
            }
            LogError::TooLarge { size, limit } => {
                write!(f, "record of {size} bytes exceeds limit of {limit}")
            }
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
