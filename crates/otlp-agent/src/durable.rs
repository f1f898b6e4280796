//! The disk queue in the agent: requests are appended to their signal's
//! [`DiskLog`] before they are acknowledged, many at a time (one committer
//! task per signal takes every append waiting and writes them with one
//! write and, with `--fsync always`, one fsync), and acknowledged in the log
//! once exported or dropped. A request is also kept in memory while the
//! memory room allows; past it, it waits on disk only and the signal's
//! loader reads it back, oldest first, as exports free room: the backlog an
//! upstream outage builds is bounded by the disk cap, not by memory.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use otlp_receiver::Verdict;
use tokio::sync::{mpsc, oneshot};

use crate::config::{DiskQueue, Fsync, OnFull};
use crate::disk::{self, DiskLog, LogConfig, LogError, RecordId, Recovered};
use crate::queue::{OnDisk, Reservation, SignalQueue};
use crate::stats::{self, Counters};
use crate::wire::Signal;

/// Appends waiting for the committer at most; past it, accepting waits.
const WAITING: usize = 4096;
/// Most appends written together.
const GROUP: usize = 1024;
/// Most bytes the loader reads back in one go.
const LOAD_BYTES: usize = 4 << 20;
/// Most records the loader reads back in one go.
const LOAD_RECORDS: usize = 1024;

/// Why an append did not make it to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AppendError {
    /// The disk cap or the filesystem is full: come back later.
    Full(String),
    /// Anything else (an I/O error, the agent stopping).
    Failed(String),
}

/// A request waiting for the committer. The committer queues it and
/// counts it itself once it is on disk, so a client that goes away
/// meanwhile changes nothing but who hears the answer.
struct Append {
    message: Bytes,
    items: u64,
    reply: oneshot::Sender<Verdict>,
}

/// What the committer needs to queue and count what it wrote.
struct Committer {
    log: Arc<DiskLog>,
    queue: Arc<SignalQueue>,
    counters: Arc<Counters>,
    retry_after: Duration,
    on_full: OnFull,
    inline_io: bool,
}

/// One signal's log and its committer.
pub(crate) struct Durable {
    pub(crate) log: Arc<DiskLog>,
    appends: mpsc::Sender<Append>,
    retry_after: Duration,
    /// Failed acknowledgements, logged at most once per interval.
    warnings: otlp_async::LogThrottle,
    /// Whether appends and acks are written on the runtime's own tasks.
    inline_io: bool,
}

/// Whether the log's writes may run on the runtime's tasks: without an
/// fsync on the write path a write only copies into the page cache, which
/// costs less than handing it to the blocking pool and back (two thread
/// wake-ups per group). With `--fsync always` every write waits for the
/// device, so it goes to the blocking pool.
fn inline_io(fsync: Fsync) -> bool {
    !matches!(fsync, Fsync::Always)
}

fn name(signal: Signal) -> &'static str {
    crate::stats::signal_name(signal)
}

impl Durable {
    /// Opens (and locks) `DIR/<signal>` and returns what it held. Call
    /// [`start`](Self::start) inside the runtime that will run the
    /// committer.
    pub(crate) fn open(
        settings: &DiskQueue,
        signal: Signal,
        max_bytes: u64,
    ) -> Result<(DiskLog, Recovered), LogError> {
        DiskLog::open(LogConfig {
            dir: settings.dir.join(name(signal)),
            segment_bytes: settings.segment_bytes,
            max_bytes,
            fsync: match settings.fsync {
                Fsync::Always => disk::Fsync::Always,
                Fsync::Interval(_) | Fsync::Never => disk::Fsync::Never,
            },
        })
    }

    /// Starts the committer, the loader (and, for `--fsync interval`, the
    /// timer that syncs) on the current runtime.
    pub(crate) fn start(
        log: DiskLog,
        settings: &DiskQueue,
        queue: Arc<SignalQueue>,
        counters: Arc<Counters>,
        retry_after: Duration,
    ) -> Durable {
        let log = Arc::new(log);
        let (appends, waiting) = mpsc::channel(WAITING);
        tokio::spawn(load(
            Arc::clone(&log),
            Arc::clone(&queue),
            Arc::clone(&counters),
        ));
        let committer = Committer {
            log: Arc::clone(&log),
            queue,
            counters,
            retry_after,
            on_full: settings.on_full,
            inline_io: inline_io(settings.fsync),
        };
        tokio::spawn(commit(committer, waiting));
        if let Fsync::Interval(every) = settings.fsync {
            tokio::spawn(sync_every(Arc::downgrade(&log), every));
        }
        Durable {
            inline_io: inline_io(settings.fsync),
            log,
            appends,
            retry_after,
            warnings: otlp_async::LogThrottle::default(),
        }
    }

    /// Appends one request; once it is written (and fsynced, with
    /// `--fsync always`) it is queued, counted, and the answer is the
    /// verdict.
    pub(crate) async fn append(&self, message: Bytes, items: u64) -> Verdict {
        let (reply, answer) = oneshot::channel();
        let stopped = || Verdict::Unavailable {
            reason: "the disk queue is stopping".to_owned(),
            retry_after: self.retry_after,
        };
        let sent = self.appends.send(Append {
            message,
            items,
            reply,
        });
        if sent.await.is_err() {
            return stopped();
        }
        answer.await.unwrap_or_else(|_| stopped())
    }

    /// Marks records done (exported or dropped) in the log: off the
    /// runtime's threads when it fsyncs, on the calling task otherwise.
    pub(crate) async fn ack(&self, records: Vec<RecordId>) {
        if records.is_empty() {
            return;
        }
        let done = if self.inline_io {
            Ok(self.log.ack(&records))
        } else {
            let log = Arc::clone(&self.log);
            tokio::task::spawn_blocking(move || log.ack(&records)).await
        };
        if let Ok(Err(e)) = done {
            // The records stay on disk and come back at the next start:
            // exported twice, never lost.
            if let Some(held_back) = self.warnings.admit() {
                tracing::warn!(
                    similar_since_last_warning = held_back,
                    "disk queue: acknowledging exported records failed: {e}"
                );
            }
        }
    }
}

async fn commit(committer: Committer, mut waiting: mpsc::Receiver<Append>) {
    let Committer {
        log,
        queue,
        counters,
        retry_after,
        on_full,
        inline_io,
    } = committer;
    // Space has its own throttle: it must not be hidden by upstream
    // warnings, which come at the same time when an outage fills the disk.
    let space_warnings = otlp_async::LogThrottle::default();
    let mut out_of_space = false;
    while let Some(first) = waiting.recv().await {
        let mut group = vec![first];
        while group.len() < GROUP {
            match waiting.try_recv() {
                Ok(append) => group.push(append),
                Err(_) => break,
            }
        }
        let written = if inline_io {
            let batch: Vec<(&[u8], u64)> =
                group.iter().map(|a| (&a.message[..], a.items)).collect();
            Ok(append_making_room(&log, &batch, on_full))
        } else {
            let payloads: Vec<(Bytes, u64)> =
                group.iter().map(|a| (a.message.clone(), a.items)).collect();
            let writer = Arc::clone(&log);
            tokio::task::spawn_blocking(move || {
                let batch: Vec<(&[u8], u64)> = payloads.iter().map(|(b, i)| (&b[..], *i)).collect();
                append_making_room(&writer, &batch, on_full)
            })
            .await
        };
        stats::add(&counters.disk_writes, 1);
        let (written, dropped) = match written {
            Ok(done) => done,
            Err(e) => {
                let failure = AppendError::Failed(format!("the disk queue's writer: {e}"));
                refuse(group, &failure, &counters, retry_after);
                continue;
            }
        };
        if !dropped.is_empty() {
            let items = queue.forget_on_disk(&dropped);
            stats::add(&counters.dropped_disk_full_items, items);
            if let Some(held_back) = counters.warnings.admit() {
                tracing::warn!(
                    similar_since_last_warning = held_back,
                    "disk queue full: dropped the oldest segment ({} record(s); {items} item(s) not yet exported)",
                    dropped.len()
                );
            }
        }
        if written.as_ref().is_err_and(LogError::is_space) {
            out_of_space = true;
        } else if std::mem::take(&mut out_of_space) {
            tracing::info!("disk queue: {} has room again", log.dir().display());
        }
        let failure = match written {
            Ok(ids) => {
                for (append, id) in group.into_iter().zip(ids) {
                    let Append {
                        message,
                        items,
                        reply,
                    } = append;
                    // On disk but not queued if the agent began shutting
                    // down meanwhile: replayed at the next start, and the
                    // client, told to retry, may send it again (at least
                    // once).
                    let outcome = queue.push_durable(message, items, id);
                    let _ = reply.send(crate::sink::answer(&counters, items, outcome, retry_after));
                }
                continue;
            }
            Err(LogError::Full { needed, free }) => {
                if let Some(held_back) = space_warnings.admit() {
                    tracing::warn!(
                        similar_since_last_warning = held_back,
                        "disk queue {} reached its cap ({} bytes): refusing requests as busy until exports free room",
                        log.dir().display(),
                        log.max_bytes()
                    );
                }
                AppendError::Full(format!(
                    "the disk queue is full ({needed} bytes needed, {free} free under the cap)"
                ))
            }
            Err(e @ LogError::NoSpace { .. }) => {
                if let Some(held_back) = space_warnings.admit() {
                    tracing::warn!(
                        similar_since_last_warning = held_back,
                        "disk queue: {e}; refusing requests as busy until space frees"
                    );
                }
                AppendError::Full(format!("the disk queue's device is full: {e}"))
            }
            Err(e) => {
                if let Some(held_back) = counters.warnings.admit() {
                    tracing::warn!(similar_since_last_warning = held_back, "disk queue: {e}");
                }
                AppendError::Failed(format!("the disk queue failed: {e}"))
            }
        };
        refuse(group, &failure, &counters, retry_after);
    }
}

/// Answers every append of `group` with the refusal `failure` calls for.
fn refuse(group: Vec<Append>, failure: &AppendError, counters: &Counters, retry_after: Duration) {
    for append in group {
        let verdict = match failure {
            AppendError::Full(reason) => {
                stats::add(&counters.refused_full_requests, 1);
                stats::add(&counters.refused_full_items, append.items);
                Verdict::Busy {
                    reason: reason.clone(),
                    retry_after,
                }
            }
            AppendError::Failed(reason) => {
                stats::add(&counters.refused_disk_requests, 1);
                Verdict::Unavailable {
                    reason: reason.clone(),
                    retry_after,
                }
            }
        };
        let _ = append.reply.send(verdict);
    }
}

/// Records the log discarded to make room, with their items.
type Dropped = Vec<(RecordId, u64)>;

/// Appends `batch`; with `OnFull::DropOldest`, a lack of space drops the
/// oldest segment and tries again until the batch fits or nothing is left
/// to drop. Returns the records dropped on the way.
fn append_making_room(
    log: &DiskLog,
    batch: &[(&[u8], u64)],
    on_full: OnFull,
) -> (Result<Vec<RecordId>, LogError>, Dropped) {
    let mut dropped = Vec::new();
    loop {
        match log.append(batch) {
            Err(e) if e.is_space() && on_full == OnFull::DropOldest => {
                match log.drop_oldest_records() {
                    Ok(Some(records)) => dropped.extend(records),
                    Ok(None) => return (Err(e), dropped),
                    Err(drop_failed) => return (Err(drop_failed), dropped),
                }
            }
            written => return (written, dropped),
        }
    }
}

/// The signal's loader: reads records that wait on disk back into memory,
/// oldest first, as room frees (it waits for room for the oldest, then
/// takes every following one that fits at once, and reads them with one
/// blocking call).
async fn load(log: Arc<DiskLog>, queue: Arc<SignalQueue>, counters: Arc<Counters>) {
    loop {
        let first = queue.next_on_disk().await;
        let room = queue.reserve_waiting(first.items, first.bytes).await;
        let mut group: Vec<(OnDisk, Reservation)> = vec![(first, room)];
        let mut bytes = first.bytes;
        while group.len() < LOAD_RECORDS && bytes < LOAD_BYTES {
            let Some((next, room)) = queue.try_next_on_disk() else {
                break;
            };
            bytes += next.bytes;
            group.push((next, room));
        }
        let ids: Vec<RecordId> = group.iter().map(|(d, _)| d.record).collect();
        let reader = Arc::clone(&log);
        let Ok(read) = tokio::task::spawn_blocking(move || reader.read(&ids)).await else {
            // The runtime is stopping: the records stay queued, and a
            // shutdown counts them as left on disk for the next start.
            return;
        };
        let mut unreadable = Vec::new();
        for ((on_disk, room), payload) in group.into_iter().zip(read) {
            match payload {
                Ok(payload) => queue.push_loaded(room, payload.into(), on_disk.record),
                Err(e) => {
                    drop(room);
                    queue.load_failed(&on_disk);
                    let gone = matches!(&e, LogError::Io { source, .. }
                        if source.kind() == std::io::ErrorKind::NotFound);
                    if gone {
                        // Its segment was dropped (drop-oldest) while it
                        // was being read.
                        stats::add(&counters.dropped_disk_full_items, on_disk.items);
                    } else {
                        stats::add(&counters.dropped_unreadable_items, on_disk.items);
                        unreadable.push(on_disk.record);
                        if let Some(held_back) = counters.warnings.admit() {
                            tracing::warn!(
                                similar_since_last_warning = held_back,
                                "disk queue: dropping a record of {} item(s) that cannot be read back: {e}",
                                on_disk.items
                            );
                        }
                    }
                }
            }
        }
        if !unreadable.is_empty() {
            // Counted as dropped: it must not come back at the next start.
            let log = Arc::clone(&log);
            let _ = tokio::task::spawn_blocking(move || log.ack(&unreadable)).await;
        }
    }
}

async fn sync_every(log: std::sync::Weak<DiskLog>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let Some(log) = log.upgrade() else { return };
        let synced = tokio::task::spawn_blocking(move || log.sync()).await;
        if let Ok(Err(e)) = synced {
            tracing::warn!("disk queue: fsync failed: {e}");
        }
    }
}
