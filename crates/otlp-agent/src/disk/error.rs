use std::fmt;
use std::path::PathBuf;

/// Failures of the disk log. The caller backpressures on `Full`,
/// `NoSpace` and `Io` alike; the first two say the cause is space.
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
    /// The batch does not fit under `max_bytes` (nothing was written).
    Full {
        /// Bytes the batch needed.
        needed: u64,
        /// Bytes left under the cap (0 on ENOSPC).
        free: u64,
    },
    /// The filesystem has no space left (ENOSPC): nothing of the batch is
    /// kept, and room comes back only when segments are deleted or the
    /// disk is freed by someone else.
    NoSpace {
        /// The file being written.
        path: PathBuf,
    },
    /// A record read back does not check out (its bytes changed on disk
    /// after they were written and checked at open).
    Damaged {
        /// The segment file.
        path: PathBuf,
        /// Where the record starts.
        offset: u64,
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
    /// Maps ENOSPC to `NoSpace` so the caller's space handling sees it.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.raw_os_error() == Some(libc::ENOSPC) {
            return LogError::NoSpace { path };
        }
        LogError::Io { op, path, source }
    }

    /// Whether the failure is a lack of space (the cap or the filesystem).
    pub fn is_space(&self) -> bool {
        matches!(self, LogError::Full { .. } | LogError::NoSpace { .. })
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
            LogError::NoSpace { path } => {
                write!(f, "no space left on the device writing {}", path.display())
            }
            LogError::Damaged { path, offset } => {
                write!(f, "damaged record in {} at byte {offset}", path.display())
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
