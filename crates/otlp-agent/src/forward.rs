//! Sending batches upstream: one loop per signal takes an export slot,
//! then the next due batch, and spawns its export; an export retries
//! within `max_elapsed` and ends with every item of its batch counted
//! once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use otlp_monitor::ConcurrencyMonitor;
use otlp_sdk::otlp::{OtlpRequestSender, SendError};
use otlp_sync::Semaphore;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::durable::Durable;
use crate::queue::{Batch, SignalQueue};
use crate::stats::{self, Counters};

/// How an export ended: delivered (counted as it was read), dropped with
/// the counter of its cause, or given up by a shutdown.
enum Outcome<'a> {
    Exported,
    Dropped(&'a AtomicU64),
    /// A shutdown's time ran out.
    GaveUp,
}

/// What one signal's exports share.
pub(crate) struct Forwarder {
    pub(crate) queue: Arc<SignalQueue>,
    pub(crate) sender: OtlpRequestSender,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) monitor: Arc<ConcurrencyMonitor>,
    pub(crate) max_elapsed: Duration,
    /// Becomes `true` when a shutdown's time is up: retries stop and what
    /// is left is counted as dropped by the shutdown.
    pub(crate) give_up: watch::Receiver<bool>,
    /// Spreads the jitter of concurrent retries.
    pub(crate) seed: AtomicU64,
    /// The disk queue: records are acknowledged there once their batch is
    /// exported or dropped, and left there by a shutdown.
    pub(crate) durable: Option<Arc<Durable>>,
}

impl Forwarder {
    /// Runs until the queue is closed and empty; exports still in flight
    /// then finish on their own tasks.
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            let Ok(slot) = self.slots.acquire_owned(1).await else {
                return;
            };
            let Some(batch) = self.queue.next_batch().await else {
                return;
            };
            let this = Arc::clone(&self);
            tokio::spawn(async move {
                this.export(batch).await;
                drop(slot);
                this.queue.export_ended();
            });
        }
    }

    async fn export(&self, mut batch: Batch) {
        let items = batch.items;
        let started = Instant::now();
        let body = self.sender.prepare(batch.concatenate());
        let mut give_up = self.give_up.clone();
        let mut retry = 0u32;
        let outcome = loop {
            if *give_up.borrow() {
                break Outcome::GaveUp;
            }
            stats::add(&self.counters.attempts, 1);
            let timer = self.monitor.start_task();
            let error = match self.sender.send(body.clone()).await {
                Ok(delivered) => {
                    timer.finish();
                    let rejected = delivered.rejected_items.min(items);
                    stats::add(&self.counters.exported_items, items - rejected);
                    stats::add(&self.counters.rejected_upstream_items, rejected);
                    stats::add(&self.counters.exported_requests, 1);
                    stats::add(&self.counters.exported_bytes, batch.bytes as u64);
                    if rejected > 0
                        && let Some(held_back) = self.counters.warnings.admit()
                    {
                        tracing::warn!(
                            similar_since_last_warning = held_back,
                            "upstream rejected {rejected} of {items} item(s): {}",
                            delivered.message
                        );
                    }
                    break Outcome::Exported;
                }
                Err(error) => {
                    timer.fail();
                    error
                }
            };
            let after = match &error {
                SendError::Permanent(reason) => {
                    stats::add(&self.counters.errors_permanent, 1);
                    if let Some(held_back) = self.counters.warnings.admit() {
                        tracing::warn!(
                            similar_since_last_warning = held_back,
                            "upstream refused a batch of {items} item(s) for good: {reason}"
                        );
                    }
                    break Outcome::Dropped(&self.counters.dropped_permanent_items);
                }
                SendError::Retryable { retry_after, .. } => {
                    stats::add(&self.counters.errors_retryable, 1);
                    *retry_after
                }
                SendError::Tls(_) => {
                    stats::add(&self.counters.errors_tls, 1);
                    None
                }
                SendError::TimedOut(_) => {
                    stats::add(&self.counters.errors_timeout, 1);
                    None
                }
                _ => None,
            };
            let seed = self.seed.fetch_add(0x9E37_79B9, Ordering::Relaxed);
            let wait = after.unwrap_or_else(|| self.sender.backoff(retry, seed));
            if started.elapsed() + wait > self.max_elapsed {
                if let Some(held_back) = self.counters.warnings.admit() {
                    tracing::warn!(
                        similar_since_last_warning = held_back,
                        "dropping a batch of {items} item(s) after {:?} of retries: {error}",
                        started.elapsed()
                    );
                }
                break Outcome::Dropped(&self.counters.dropped_max_elapsed_items);
            }
            retry += 1;
            stats::add(&self.counters.retries, 1);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = give_up.wait_for(|up| *up) => {}
            }
        };
        let ack = match outcome {
            Outcome::Exported => true,
            Outcome::Dropped(cause) => {
                stats::add(cause, items);
                true
            }
            // The disk queue still has it: it goes out after the next start.
            Outcome::GaveUp if self.durable.is_some() => {
                stats::add(&self.counters.left_on_disk_items, items);
                false
            }
            Outcome::GaveUp => {
                stats::add(&self.counters.dropped_shutdown_items, items);
                false
            }
        };
        stats::sub(&self.counters.queued_items, items);
        stats::sub(&self.counters.queued_bytes, batch.bytes as u64);
        let records = std::mem::take(&mut batch.records);
        drop(batch);
        if let Some(durable) = &self.durable
            && ack
        {
            durable.ack(records).await;
        }
    }
}
