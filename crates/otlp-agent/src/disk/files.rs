//! Filesystem helpers: names, locking, and the small durable steps the log
//! composes.

use crate::disk::error::LogError;
use crate::disk::log::Fsync;
use crate::disk::record;
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub(crate) fn seg_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.seg"))
}

pub(crate) fn ack_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:020}.ack"))
}

/// Parses `NNNNNNNNNNNNNNNNNNNN.seg` / `.ack`; anything else is ignored.
pub(crate) fn parse_name(name: &str) -> Option<(u64, bool)> {
    let (num, ext) = name.split_once('.')?;
    if num.len() != 20 || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match ext {
        "seg" => Some((num.parse().ok()?, true)),
        "ack" => Some((num.parse().ok()?, false)),
        _ => None,
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("sync dir", dir, e))
}

pub(crate) fn lock_dir(dir: &Path) -> Result<File, LogError> {
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LogError::io("open lock", &path, e))?;
    // SAFETY: flock only reads the descriptor number; `file` owns a valid open
    // descriptor for the duration of the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(LogError::Locked { dir: dir.into() });
        }
        return Err(LogError::io("flock", &path, err));
    }
    Ok(file)
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, LogError> {
    let mut buf = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .map_err(|e| LogError::io("read", path, e))?;
    Ok(buf)
}

pub(crate) fn remove_if_exists(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LogError::io("remove", path, e)),
        _ => Ok(()),
    }
}

pub(crate) fn create_segment(dir: &Path, n: u64, fsync: Fsync) -> Result<File, LogError> {
    let path = seg_path(dir, n);
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| LogError::io("create segment", &path, e))?;
    if fsync == Fsync::Always {
        sync_dir(dir)?;
    }
    Ok(file)
}

pub(crate) fn load_acks(path: &Path) -> Result<BTreeSet<u64>, LogError> {
    let buf = read_file(path)?;
    let (offsets, whole) = record::decode_acks(&buf);
    if whole != buf.len() as u64 {
        // A torn entry would misalign every later append to this file.
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(whole))
            .map_err(|e| LogError::io("truncate acks", path, e))?;
    }
    Ok(offsets.into_iter().collect())
}
