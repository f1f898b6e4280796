//! The log proper.
//!
//! Layout of `dir`:
//! - `lock`: held with `flock(LOCK_EX|LOCK_NB)` for the life of a `DiskLog`.
//! - `NNNNNNNNNNNNNNNNNNNN.seg`: append-only records (see `record.rs`),
//!   numbered from 1, never rewritten; only a torn tail of the newest segment
//!   is cut off at open.
//! - `NNNNNNNNNNNNNNNNNNNN.ack`: append-only ack entries for the segment of
//!   the same number, each the offset of one acknowledged record. Keeping ack
//!   state per segment means it is deleted together with its segment, so it
//!   never needs compaction. The segment is deleted first and the ack file
//!   second, so a crash in between leaves an orphan ack file (removed at the
//!   next open) and never a segment without its acks.
//!
//! Every open starts a fresh segment, so appends never land after bytes that
//! recovery had to judge. Segment numbers keep growing across opens because
//! the new number is one past every `.seg`/`.ack` name seen, which also keeps
//! a stale ack file from ever matching a new segment.

use crate::disk::error::LogError;
use crate::disk::files::{
    ack_path, create_segment, load_acks, lock_dir, parse_name, read_file, remove_if_exists,
    seg_path, sync_dir,
};
use crate::disk::record::{self, HEADER};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{IoSlice, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a log lives and how much it may hold.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The log's directory, created if missing; locked while the log lives.
    pub dir: PathBuf,
    /// A segment is rolled before a batch would push it past this; a single
    /// batch may still overshoot it when it starts a segment.
    pub segment_bytes: u64,
    /// Cap on the bytes of all live segments; appends past it get `Full`.
    pub max_bytes: u64,
    /// Whether appends and acks reach stable storage before returning.
    pub fsync: Fsync,
}

/// Durability of each call. With `Never` the caller gets interval syncing by
/// calling `DiskLog::sync` on a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Every append and ack is fsynced before it returns.
    Always,
    /// Only [`DiskLog::sync`] fsyncs.
    Never,
}

/// Identity of a record; ordering matches append order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId {
    /// The segment's number (its file name).
    pub segment: u64,
    /// Where the record starts in the segment.
    pub offset: u64,
}

/// Segment fsyncs so far; see [`DiskLog::fsync_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsyncStats {
    /// How many.
    pub count: u64,
    /// Time spent in them, all together.
    pub total: std::time::Duration,
    /// The longest.
    pub max: std::time::Duration,
}

impl FsyncStats {
    /// The mean time of one; zero before the first.
    pub fn mean(&self) -> std::time::Duration {
        match u32::try_from(self.count) {
            Ok(0) => std::time::Duration::ZERO,
            Ok(n) => self.total / n,
            Err(_) => self.total / u32::MAX,
        }
    }
}

/// What `open` found on disk.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Unacknowledged records in append order: (id, items, payload
    /// length). Payloads stay on disk until [`DiskLog::read`] loads them,
    /// so a backlog larger than memory can be reopened.
    pub records: Vec<(RecordId, u64, u32)>,
    /// Bytes cut from the newest segment's torn tail.
    pub truncated_bytes: u64,
    /// Bad stretches skipped by resync (each may cover several records).
    pub corrupt_records: u64,
    /// Each bad stretch's segment file and byte offset.
    pub corrupt_at: Vec<(PathBuf, u64)>,
}

struct Segment {
    bytes: u64,
    /// offset -> items of records not yet acked.
    live: BTreeMap<u64, u64>,
    /// Opened on first ack; kept so `sync` can flush `Fsync::Never` acks.
    ack_file: Option<File>,
    ack_dirty: bool,
}

struct Inner {
    segments: BTreeMap<u64, Segment>,
    current: u64,
    current_file: File,
    /// Set when a failed append may have left bytes we could not cut off:
    /// the next append starts a new segment instead of writing after them.
    must_roll: bool,
}

// DiskLog is shared across exporter and receiver threads.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DiskLog>();
};

/// Append-only log of OTLP requests for one signal.
///
/// All mutation goes through one mutex; appends serialize on it, which is the
/// group commit (callers hand whole batches). No user code (callbacks,
/// iterators, drops of caller values) runs while it is held.
#[allow(missing_debug_implementations)] // holds files and a lock; nothing useful to print
pub struct DiskLog {
    config: LogConfig,
    inner: Mutex<Inner>,
    /// Mirrors the live segment bytes so `used_bytes` needs no lock.
    used: AtomicU64,
    /// Segment fsyncs: how many, nanoseconds in all, the longest.
    fsyncs: [AtomicU64; 3],
    _lock: File,
}

impl DiskLog {
    /// Locks `config.dir`, recovers every segment and starts a new one.
    pub fn open(config: LogConfig) -> Result<(DiskLog, Recovered), LogError> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(|e| LogError::io("create dir", &dir, e))?;
        let lock = lock_dir(&dir)?;

        let mut segs = BTreeSet::new();
        let mut acks = BTreeSet::new();
        let entries = fs::read_dir(&dir).map_err(|e| LogError::io("list", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| LogError::io("list", &dir, e))?;
            let Some((n, is_seg)) = entry.file_name().to_str().and_then(parse_name) else {
                continue;
            };
            if is_seg {
                segs.insert(n)
            } else {
                acks.insert(n)
            };
        }
        let next = segs.iter().chain(&acks).max().copied().unwrap_or(0) + 1;
        let newest = segs.last().copied();

        let mut rec = Recovered::default();
        let mut segments = BTreeMap::new();
        for &n in &segs {
            let path = seg_path(&dir, n);
            let acked = if acks.contains(&n) {
                load_acks(&ack_path(&dir, n))?
            } else {
                BTreeSet::new()
            };
            let buf = read_file(&path)?;
            let scan = record::scan(&buf, Some(n) == newest);
            let mut bytes = buf.len() as u64;
            if let Some(to) = scan.truncate_to {
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| {
                        f.set_len(to)?;
                        f.sync_all()
                    })
                    .map_err(|e| LogError::io("truncate", &path, e))?;
                rec.truncated_bytes += bytes - to;
                bytes = to;
            }
            rec.corrupt_records += scan.corrupt.len() as u64;
            rec.corrupt_at
                .extend(scan.corrupt.iter().map(|&o| (path.clone(), o)));
            let mut live = BTreeMap::new();
            for (off, d) in scan.records {
                if acked.contains(&off) {
                    continue;
                }
                live.insert(off, d.items);
                let id = RecordId {
                    segment: n,
                    offset: off,
                };
                let len = u32::try_from(d.payload.len()).expect("a record's length is a u32");
                rec.records.push((id, d.items, len));
            }
            if live.is_empty() {
                // Nothing left to deliver; its ack file goes with the orphans.
                remove_if_exists(&path)?;
                continue;
            }
            let seg = Segment {
                bytes,
                live,
                ack_file: None,
                ack_dirty: false,
            };
            segments.insert(n, seg);
        }
        // Removed segments must be durably gone before their acks go.
        sync_dir(&dir)?;
        for &n in acks.iter().filter(|n| !segments.contains_key(n)) {
            remove_if_exists(&ack_path(&dir, n))?;
        }

        let current_file = create_segment(&dir, next, config.fsync)?;
        let empty = Segment {
            bytes: 0,
            live: BTreeMap::new(),
            ack_file: None,
            ack_dirty: false,
        };
        segments.insert(next, empty);
        let used = segments.values().map(|s| s.bytes).sum();
        let inner = Inner {
            segments,
            current: next,
            current_file,
            must_roll: false,
        };
        let log = DiskLog {
            config,
            inner: Mutex::new(inner),
            used: AtomicU64::new(used),
            fsyncs: Default::default(),
            _lock: lock,
        };
        Ok((log, rec))
    }

    /// Appends a batch with one write (and one `sync_data` under
    /// `Fsync::Always`). Either every record gets an id or the call fails;
    /// on failure the bytes are cut back where possible, and at worst some
    /// records reappear at the next open (a duplicate, never a loss).
    pub fn append(&self, batch: &[(&[u8], u64)]) -> Result<Vec<RecordId>, LogError> {
        let limit = self
            .config
            .segment_bytes
            .min(u32::MAX as u64 + HEADER as u64);
        let mut total = 0u64;
        for (payload, _) in batch {
            let size = record::encoded_len(payload.len());
            if size > limit {
                return Err(LogError::TooLarge { size, limit });
            }
            total += size;
        }
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // Headers apart, payloads as they are: one vectored write, no copy.
        let headers: Vec<[u8; HEADER]> = batch
            .iter()
            .map(|(payload, items)| record::header(payload, *items))
            .collect();
        let buf: Vec<&[u8]> = headers
            .iter()
            .zip(batch)
            .flat_map(|(header, (payload, _))| [&header[..], payload])
            .collect();

        let mut inner = self.inner.lock();
        let current = &inner.segments[&inner.current];
        if self.used.load(Ordering::Relaxed) + total > self.config.max_bytes
            && current.bytes > 0
            && current.live.is_empty()
        {
            // The current segment holds only acknowledged records, which
            // count against the cap until it is deleted: roll past it.
            self.roll(&mut inner)?;
        }
        let used = self.used.load(Ordering::Relaxed);
        if used + total > self.config.max_bytes {
            let free = self.config.max_bytes.saturating_sub(used);
            return Err(LogError::Full {
                needed: total,
                free,
            });
        }
        let cur_bytes = inner.segments[&inner.current].bytes;
        if inner.must_roll || (cur_bytes > 0 && cur_bytes + total > self.config.segment_bytes) {
            self.roll(&mut inner)?;
        }
        let (n, start) = match self.write(&mut inner, &buf) {
            Err(LogError::NoSpace { .. })
                if inner.segments[&inner.current].live.is_empty()
                    && inner.segments[&inner.current].bytes > 0 =>
            {
                // The filesystem is full and the current segment holds only
                // acknowledged records: rolling past it deletes it.
                self.roll(&mut inner)?;
                self.write(&mut inner, &buf)?
            }
            written => written?,
        };

        let seg = inner
            .segments
            .get_mut(&n)
            .expect("current segment is tracked");
        let mut ids = Vec::with_capacity(batch.len());
        let mut off = start;
        for (payload, items) in batch {
            seg.live.insert(off, *items);
            ids.push(RecordId {
                segment: n,
                offset: off,
            });
            off += record::encoded_len(payload.len());
        }
        seg.bytes = off;
        self.used.fetch_add(total, Ordering::Relaxed);
        Ok(ids)
    }

    /// Writes `buf` at the end of the current segment (synced under
    /// `Fsync::Always`); returns the segment and where `buf` starts. On
    /// failure the bytes are cut back, or the next append rolls.
    fn write(&self, inner: &mut Inner, buf: &[&[u8]]) -> Result<(u64, u64), LogError> {
        let n = inner.current;
        let start = inner.segments[&n].bytes;
        let res = write_parts(&mut inner.current_file, buf).and_then(|()| {
            if self.config.fsync == Fsync::Always {
                self.timed_sync(&inner.current_file)
            } else {
                Ok(())
            }
        });
        if let Err(e) = res {
            if inner.current_file.set_len(start).is_err() {
                inner.must_roll = true;
            }
            return Err(LogError::io("append", seg_path(&self.config.dir, n), e));
        }
        Ok((n, start))
    }

    /// Flushes appended records and acks (the `Fsync::Never` timer hook).
    pub fn sync(&self) -> Result<(), LogError> {
        let mut inner = self.inner.lock();
        let n = inner.current;
        self.timed_sync(&inner.current_file)
            .map_err(|e| LogError::io("sync", seg_path(&self.config.dir, n), e))?;
        for (&n, seg) in inner.segments.iter_mut().filter(|(_, s)| s.ack_dirty) {
            if let Some(f) = &seg.ack_file {
                f.sync_data()
                    .map_err(|e| LogError::io("sync acks", ack_path(&self.config.dir, n), e))?;
            }
            seg.ack_dirty = false;
        }
        Ok(())
    }

    /// Marks records delivered (exported or dropped). Unknown or repeated ids
    /// are ignored. A segment whose records are all acked is deleted unless
    /// it is still being appended to (the deletion acknowledges all of it);
    /// otherwise the ack entries are written (and with `Fsync::Always`
    /// synced) before the call returns. An entry that cannot be written (a
    /// full disk) only means the record is exported again after a restart:
    /// the records count as done in this log either way, so their segment
    /// is still deleted once the rest of it is done, which is what frees a
    /// full disk. The first error is returned after every segment was seen.
    pub fn ack(&self, ids: &[RecordId]) -> Result<(), LogError> {
        let mut by_seg: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
        for id in ids {
            by_seg.entry(id.segment).or_default().insert(id.offset);
        }
        let mut inner = self.inner.lock();
        let mut first_error = None;
        for (n, offsets) in by_seg {
            let current = inner.current;
            let Some(seg) = inner.segments.get_mut(&n) else {
                continue;
            };
            let mut buf = Vec::new();
            for &o in &offsets {
                if seg.live.remove(&o).is_some() {
                    record::encode_ack(&mut buf, o);
                }
            }
            if buf.is_empty() {
                continue;
            }
            let done = if seg.live.is_empty() && n != current {
                self.delete_segment(&mut inner, n)
            } else {
                self.write_acks(n, seg, &buf)
            };
            if let Err(e) = done {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn write_acks(&self, n: u64, seg: &mut Segment, buf: &[u8]) -> Result<(), LogError> {
        let path = ack_path(&self.config.dir, n);
        let always = self.config.fsync == Fsync::Always;
        if seg.ack_file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| LogError::io("open acks", &path, e))?;
            seg.ack_file = Some(f);
            if always {
                sync_dir(&self.config.dir)?;
            }
        }
        let f = seg.ack_file.as_mut().expect("opened above");
        let before = f.metadata().map(|m| m.len());
        let res = f
            .write_all(buf)
            .and_then(|()| if always { f.sync_data() } else { Ok(()) });
        if let Err(e) = res {
            // A partial entry left in place would misalign every later entry
            // (their acks would be ignored: duplicates, not loss).
            if let Ok(len) = before {
                let _ = f.set_len(len);
            }
            return Err(LogError::io("write acks", &path, e));
        }
        seg.ack_dirty = !always;
        Ok(())
    }

    /// Deletes segment `n` (never the current one) and then its acks.
    fn delete_segment(&self, inner: &mut Inner, n: u64) -> Result<(), LogError> {
        debug_assert_ne!(n, inner.current);
        let dir = &self.config.dir;
        remove_if_exists(&seg_path(dir, n))?;
        if self.config.fsync == Fsync::Always {
            // The segment must be gone for good before its acks are.
            sync_dir(dir)?;
        }
        remove_if_exists(&ack_path(dir, n))?;
        if let Some(seg) = inner.segments.remove(&n) {
            self.used.fetch_sub(seg.bytes, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Starts a new current segment; the old one is deleted if fully acked.
    fn roll(&self, inner: &mut Inner) -> Result<(), LogError> {
        let old = inner.current;
        let next = old + 1;
        inner.current_file = create_segment(&self.config.dir, next, self.config.fsync)?;
        inner.current = next;
        inner.must_roll = false;
        let empty = Segment {
            bytes: 0,
            live: BTreeMap::new(),
            ack_file: None,
            ack_dirty: false,
        };
        inner.segments.insert(next, empty);
        if inner.segments[&old].live.is_empty() {
            self.delete_segment(inner, old)?;
        }
        Ok(())
    }

    /// Discards the oldest segment with its unacked records, for the
    /// drop-oldest overflow policy; returns (records, items) discarded.
    /// The segment being appended to is never deleted while current: if it
    /// is the only one holding records, the log first rolls past it, so
    /// drop-oldest can always make room. `None` when the log is empty.
    pub fn drop_oldest_segment(&self) -> Result<Option<(u64, u64)>, LogError> {
        Ok(self.drop_oldest_records()?.map(|records| {
            let items = records.iter().map(|(_, items)| items).sum();
            (records.len() as u64, items)
        }))
    }

    /// [`drop_oldest_segment`](Self::drop_oldest_segment), returning each
    /// discarded record with its items, so a caller can tell which of them
    /// it still held elsewhere.
    pub fn drop_oldest_records(&self) -> Result<Option<Vec<(RecordId, u64)>>, LogError> {
        let mut inner = self.inner.lock();
        // Fully acked non-current segments are normally already gone; skip
        // one left behind by a failed delete rather than report nothing.
        let Some(oldest) = inner
            .segments
            .iter()
            .find(|(_, s)| !s.live.is_empty())
            .map(|(&n, _)| n)
        else {
            return Ok(None);
        };
        if oldest == inner.current {
            self.roll(&mut inner)?;
        }
        let dropped = inner.segments[&oldest]
            .live
            .iter()
            .map(|(&offset, &items)| {
                let id = RecordId {
                    segment: oldest,
                    offset,
                };
                (id, items)
            })
            .collect();
        self.delete_segment(&mut inner, oldest)?;
        Ok(Some(dropped))
    }

    /// Reads back the payloads of unacknowledged records, each checked
    /// against its crc, without taking the log's lock (appends go on). A
    /// record whose segment was dropped meanwhile is an `Io` error with
    /// `NotFound`; one whose bytes changed is `Damaged`.
    pub fn read(&self, ids: &[RecordId]) -> Vec<Result<Vec<u8>, LogError>> {
        let mut open: Option<(u64, File)> = None;
        ids.iter()
            .map(|id| {
                let path = seg_path(&self.config.dir, id.segment);
                if open.as_ref().is_none_or(|(n, _)| *n != id.segment) {
                    let file = File::open(&path).map_err(|e| LogError::io("read", &path, e))?;
                    open = Some((id.segment, file));
                }
                let (_, file) = open.as_mut().expect("opened above");
                read_record(file, id.offset, self.config.segment_bytes)
                    .map_err(|e| LogError::io("read", &path, e))?
                    .ok_or(LogError::Damaged {
                        path,
                        offset: id.offset,
                    })
            })
            .collect()
    }

    /// `sync_data` of a segment, timed for [`fsync_stats`](Self::fsync_stats).
    fn timed_sync(&self, file: &File) -> std::io::Result<()> {
        let started = std::time::Instant::now();
        let synced = file.sync_data();
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let [count, total, max] = &self.fsyncs;
        count.fetch_add(1, Ordering::Relaxed);
        total.fetch_add(nanos, Ordering::Relaxed);
        max.fetch_max(nanos, Ordering::Relaxed);
        synced
    }

    /// How the segment fsyncs on the write path went (the acknowledgement
    /// waits for them with `Fsync::Always`; the timer runs them otherwise).
    pub fn fsync_stats(&self) -> FsyncStats {
        let [count, total, max] = &self.fsyncs;
        FsyncStats {
            count: count.load(Ordering::Relaxed),
            total: std::time::Duration::from_nanos(total.load(Ordering::Relaxed)),
            max: std::time::Duration::from_nanos(max.load(Ordering::Relaxed)),
        }
    }

    /// The directory the log lives in.
    pub fn dir(&self) -> &std::path::Path {
        &self.config.dir
    }

    /// The cap on [`used_bytes`](Self::used_bytes).
    pub fn max_bytes(&self) -> u64 {
        self.config.max_bytes
    }

    /// Bytes of all segments on disk, acked records included until their
    /// segment is deleted; this is what `max_bytes` limits.
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

/// Writes `parts` one after the other, with as few `writev` calls as the
/// system allows.
fn write_parts(file: &mut File, parts: &[&[u8]]) -> std::io::Result<()> {
    if cfg!(miri) {
        // Miri has no `writev`: the same bytes with one plain write.
        return file.write_all(&parts.concat());
    }
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The payload of the record at `offset`, `None` if it does not check out
/// (a length over `max`, what no append writes, is not trusted either).
fn read_record(file: &mut File, offset: u64, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0; HEADER];
    file.read_exact(&mut buf)?;
    let len = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if record::encoded_len(len as usize) > max {
        return Ok(None);
    }
    buf.resize(HEADER + len as usize, 0);
    match file.read_exact(&mut buf[HEADER..]) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    Ok(record::decode_at(&buf, 0).map(|d| {
        buf.truncate(d.payload.end);
        buf.drain(..d.payload.start);
        buf
    }))
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
