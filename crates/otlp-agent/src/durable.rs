//! The disk queue in the agent: requests are appended to their signal's
//! [`DiskLog`] before they are acknowledged, many at a time (one committer
//! task per signal takes every append waiting and writes them with one
//! write and, with `--fsync always`, one fsync), and acknowledged in the log
//! once exported or dropped. Payloads stay in memory too until exported:
//! the disk is what survives a crash, not extra room.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use otlp_receiver::Verdict;
use tokio::sync::{mpsc, oneshot};

use crate::config::{DiskQueue, Fsync};
use crate::disk::{self, DiskLog, LogConfig, LogError, RecordId, Recovered};
use crate::queue::{Reservation, SignalQueue};
use crate::stats::{self, Counters};
use crate::wire::Signal;

/// Appends waiting for the committer at most; past it, accepting waits.
const WAITING: usize = 4096;
/// Most appends written together.
const GROUP: usize = 1024;

/// Why an append did not make it to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AppendError {
    /// The disk cap or the filesystem is full: come back later.
    Full(String),
    /// Anything else (an I/O error, the agent stopping).
    Failed(String),
}

/// A request waiting for the committer, with the room it took. The
/// committer queues it and counts it itself once it is on disk, so a
/// client that goes away meanwhile changes nothing but who hears the
/// answer.
struct Append {
    message: Bytes,
    items: u64,
    reservation: Reservation,
    reply: oneshot::Sender<Verdict>,
}

/// What the committer needs to queue and count what it wrote.
struct Committer {
    log: Arc<DiskLog>,
    queue: Arc<SignalQueue>,
    counters: Arc<Counters>,
    retry_after: Duration,
}

/// One signal's log and its committer.
pub(crate) struct Durable {
    pub(crate) log: Arc<DiskLog>,
    appends: mpsc::Sender<Append>,
    retry_after: Duration,
    /// Failed acknowledgements, logged at most once per interval.
    warnings: otlp_async::LogThrottle,
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

    /// Starts the committer (and, for `--fsync interval`, the timer that
    /// syncs) on the current runtime.
    pub(crate) fn start(
        log: DiskLog,
        fsync: Fsync,
        queue: Arc<SignalQueue>,
        counters: Arc<Counters>,
        retry_after: Duration,
    ) -> Durable {
        let log = Arc::new(log);
        let (appends, waiting) = mpsc::channel(WAITING);
        let committer = Committer {
            log: Arc::clone(&log),
            queue,
            counters,
            retry_after,
        };
        tokio::spawn(commit(committer, waiting));
        if let Fsync::Interval(every) = fsync {
            tokio::spawn(sync_every(Arc::downgrade(&log), every));
        }
        Durable {
            log,
            appends,
            retry_after,
            warnings: otlp_async::LogThrottle::default(),
        }
    }

    /// Appends one request in the room `reservation` took; once it is
    /// written (and fsynced, with `--fsync always`) it is queued, counted,
    /// and the answer is the verdict.
    pub(crate) async fn append(
        &self,
        message: Bytes,
        items: u64,
        reservation: Reservation,
    ) -> Verdict {
        let (reply, answer) = oneshot::channel();
        let stopped = || Verdict::Unavailable {
            reason: "the disk queue is stopping".to_owned(),
            retry_after: self.retry_after,
        };
        let sent = self.appends.send(Append {
            message,
            items,
            reservation,
            reply,
        });
        if sent.await.is_err() {
            return stopped();
        }
        answer.await.unwrap_or_else(|_| stopped())
    }

    /// Marks records done (exported or dropped) in the log, off the
    /// runtime's threads.
    pub(crate) async fn ack(&self, records: Vec<RecordId>) {
        if records.is_empty() {
            return;
        }
        let log = Arc::clone(&self.log);
        let done = tokio::task::spawn_blocking(move || log.ack(&records)).await;
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
    } = committer;
    while let Some(first) = waiting.recv().await {
        let mut group = vec![first];
        while group.len() < GROUP {
            match waiting.try_recv() {
                Ok(append) => group.push(append),
                Err(_) => break,
            }
        }
        let payloads: Vec<(Bytes, u64)> =
            group.iter().map(|a| (a.message.clone(), a.items)).collect();
        let writer = Arc::clone(&log);
        let written = tokio::task::spawn_blocking(move || {
            let batch: Vec<(&[u8], u64)> = payloads.iter().map(|(b, i)| (&b[..], *i)).collect();
            writer.append(&batch)
        })
        .await;
        stats::add(&counters.disk_writes, 1);
        let failure = match written {
            Ok(Ok(ids)) => {
                for (append, id) in group.into_iter().zip(ids) {
                    let Append {
                        message,
                        items,
                        reservation,
                        reply,
                    } = append;
                    // On disk but not queued if the agent began shutting
                    // down meanwhile: replayed at the next start, and the
                    // client, told to retry, may send it again (at least
                    // once).
                    let outcome = queue.push(reservation, message, Some(id));
                    let _ = reply.send(crate::sink::answer(&counters, items, outcome, retry_after));
                }
                continue;
            }
            Ok(Err(LogError::Full { needed, free })) => AppendError::Full(format!(
                "the disk queue is full ({needed} bytes needed, {free} free under the cap)"
            )),
            Ok(Err(e)) => {
                if let Some(held_back) = counters.warnings.admit() {
                    tracing::warn!(similar_since_last_warning = held_back, "disk queue: {e}");
                }
                AppendError::Failed(format!("the disk queue failed: {e}"))
            }
            Err(e) => AppendError::Failed(format!("the disk queue's writer: {e}")),
        };
        for append in group {
            let verdict = match &failure {
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
