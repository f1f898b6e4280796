//! The disk queue in the agent: requests are appended to their signal's
//! [`DiskLog`] before they are acknowledged, many at a time (one committer
//! task per signal takes every append waiting and writes them with one
//! write and, with `--fsync always`, one fsync), and acknowledged in the log
//! once exported or dropped. Payloads stay in memory too until exported:
//! the disk is what survives a crash, not extra room.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::config::{DiskQueue, Fsync};
use crate::disk::{self, DiskLog, LogConfig, LogError, RecordId, Recovered};
use crate::stats::{self, Counters};
use crate::wire::Signal;

/// Appends waiting for the committer at most; past it, accepting waits.
const WAITING: usize = 4096;
/// Most appends written together.
const GROUP: usize = 1024;

/// Why an append did not make it to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AppendError {
    /// The disk cap or the filesystem is full: come back later.
    Full(String),
    /// Anything else (an I/O error, the agent stopping).
    Failed(String),
}

struct Append {
    message: Bytes,
    items: u64,
    reply: oneshot::Sender<Result<RecordId, AppendError>>,
}

/// One signal's log and its committer.
pub(crate) struct Durable {
    pub(crate) log: Arc<DiskLog>,
    appends: mpsc::Sender<Append>,
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
    pub(crate) fn start(log: DiskLog, fsync: Fsync, counters: Arc<Counters>) -> Durable {
        let log = Arc::new(log);
        let (appends, waiting) = mpsc::channel(WAITING);
        tokio::spawn(commit(Arc::clone(&log), waiting, Arc::clone(&counters)));
        if let Fsync::Interval(every) = fsync {
            tokio::spawn(sync_every(Arc::downgrade(&log), every));
        }
        Durable { log, appends }
    }

    /// Appends one request; resolves once it is written (and fsynced, with
    /// `--fsync always`).
    pub(crate) async fn append(&self, message: Bytes, items: u64) -> Result<RecordId, AppendError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || AppendError::Failed("the disk queue is stopping".to_owned());
        self.appends
            .send(Append {
                message,
                items,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
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
            tracing::warn!("disk queue: acknowledging exported records failed: {e}");
        }
    }
}

async fn commit(log: Arc<DiskLog>, mut waiting: mpsc::Receiver<Append>, counters: Arc<Counters>) {
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
        let result = match written {
            Ok(Ok(ids)) => Ok(ids),
            Ok(Err(LogError::Full { needed, free })) => Err(AppendError::Full(format!(
                "the disk queue is full ({needed} bytes needed, {free} free under the cap)"
            ))),
            Ok(Err(e)) => {
                tracing::warn!("disk queue: {e}");
                Err(AppendError::Failed(format!("the disk queue failed: {e}")))
            }
            Err(e) => Err(AppendError::Failed(format!("the disk queue's writer: {e}"))),
        };
        match result {
            Ok(ids) => {
                for (append, id) in group.into_iter().zip(ids) {
                    let _ = append.reply.send(Ok(id));
                }
            }
            Err(e) => {
                for append in group {
                    let _ = append.reply.send(Err(e.clone()));
                }
            }
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
