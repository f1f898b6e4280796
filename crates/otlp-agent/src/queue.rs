//! One signal's queue: accepted requests joined into batches by
//! concatenation, bounded in items and bytes by two semaphores that all
//! signals share.
//!
//! A serialized `Export*ServiceRequest` is one repeated field (1), so two
//! of them written one after the other are one valid request holding both:
//! a batch is its requests' bytes in order, never decoded.
//!
//! When a batch leaves: as soon as it is full; at once when no export of
//! the signal is in flight (an idle upstream takes what there is, so a
//! lone request waits for nothing); otherwise when it is `batch_timeout`
//! old. Batches grow only while the upstream is busy.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use otlp_sync::{OwnedPermit, Semaphore};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::disk::RecordId;
use crate::stats::{self, Counters};

/// Requests joined for one upstream request; holds their queue permits,
/// so dropping it (exported, dropped or abandoned) frees their room.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) parts: Vec<Bytes>,
    pub(crate) items: u64,
    pub(crate) bytes: usize,
    first_at: Option<Instant>,
    permits: Vec<OwnedPermit>,
    /// The requests' records in the disk queue, to acknowledge once the
    /// batch is done with.
    pub(crate) records: Vec<RecordId>,
}

impl Batch {
    fn new() -> Self {
        Batch {
            parts: Vec::new(),
            items: 0,
            bytes: 0,
            first_at: None,
            permits: Vec::new(),
            records: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The batch as one request body.
    pub(crate) fn concatenate(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.bytes);
        for part in &self.parts {
            body.extend_from_slice(part);
        }
        body
    }
}

/// Room taken for one request, given back if it is not queued.
#[derive(Debug)]
pub(crate) struct Reservation {
    permits: Vec<OwnedPermit>,
    items: u64,
    bytes: usize,
}

/// Why a request was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No room for its items or bytes.
    Full,
    /// The agent is shutting down.
    Closed,
}

#[derive(Debug)]
struct State {
    open: Batch,
    sealed: VecDeque<Batch>,
    in_flight: usize,
    closed: bool,
}

/// The room every signal's queue draws from.
#[derive(Debug)]
pub(crate) struct Room {
    pub(crate) items: Arc<Semaphore>,
    pub(crate) bytes: Arc<Semaphore>,
}

/// One signal's queue.
#[derive(Debug)]
pub(crate) struct SignalQueue {
    state: Mutex<State>,
    wake: Notify,
    room: Arc<Room>,
    max_items: u64,
    max_bytes: usize,
    batch_timeout: Duration,
    counters: Arc<Counters>,
}

impl SignalQueue {
    pub(crate) fn new(
        room: Arc<Room>,
        max_items: u64,
        max_bytes: usize,
        batch_timeout: Duration,
        counters: Arc<Counters>,
    ) -> Self {
        SignalQueue {
            state: Mutex::new(State {
                open: Batch::new(),
                sealed: VecDeque::new(),
                in_flight: 0,
                closed: false,
            }),
            wake: Notify::new(),
            room,
            max_items,
            max_bytes,
            batch_timeout,
            counters,
        }
    }

    /// Queues one validated request of `items` items.
    pub(crate) fn offer(&self, message: Bytes, items: u64) -> Result<(), Refusal> {
        let reservation = self.reserve(items, message.len())?;
        self.push(reservation, message, None)
    }

    /// Takes room for a request of `items` items and `bytes` bytes, without
    /// waiting: two semaphore tries, no lock.
    pub(crate) fn reserve(&self, items: u64, bytes: usize) -> Result<Reservation, Refusal> {
        let item_permit = self
            .room
            .items
            .try_acquire_owned(usize::try_from(items).unwrap_or(usize::MAX))
            .map_err(|_| Refusal::Full)?;
        let byte_permit = self
            .room
            .bytes
            .try_acquire_owned(bytes)
            .map_err(|_| Refusal::Full)?;
        Ok(Reservation {
            permits: vec![item_permit, byte_permit],
            items,
            bytes,
        })
    }

    /// A request recovered from the disk queue: it was acknowledged in an
    /// earlier life, so it is queued whether or not there is room (the
    /// room is taken when there is, so new requests still see the bound).
    pub(crate) fn replay(&self, message: Bytes, items: u64, record: RecordId) {
        let reservation = self.reserve(items, message.len()).unwrap_or(Reservation {
            permits: Vec::new(),
            items,
            bytes: message.len(),
        });
        // A fresh queue is open: replay runs before the listeners start.
        let _ = self.push(reservation, message, Some(record));
    }

    /// Queues a request in the room `reservation` took for it.
    pub(crate) fn push(
        &self,
        reservation: Reservation,
        message: Bytes,
        record: Option<RecordId>,
    ) -> Result<(), Refusal> {
        let Reservation {
            permits,
            items,
            bytes,
        } = reservation;
        stats::add(&self.counters.queued_items, items);
        stats::add(&self.counters.queued_bytes, bytes as u64);
        let now = Instant::now();
        let wake = {
            let mut state = self.state.lock();
            if state.closed {
                drop(state);
                stats::sub(&self.counters.queued_items, items);
                stats::sub(&self.counters.queued_bytes, bytes as u64);
                return Err(Refusal::Closed);
            }
            let state = &mut *state;
            let open = &mut state.open;
            if !open.is_empty()
                && (open.items + items > self.max_items || open.bytes + bytes > self.max_bytes)
            {
                let full = std::mem::replace(open, Batch::new());
                state.sealed.push_back(full);
            }
            let open = &mut state.open;
            let was_empty = open.is_empty();
            open.first_at.get_or_insert(now);
            open.parts.push(message);
            open.items += items;
            open.bytes += bytes;
            open.permits.extend(permits);
            open.records.extend(record);
            if open.items >= self.max_items || open.bytes >= self.max_bytes {
                let full = std::mem::replace(open, Batch::new());
                state.sealed.push_back(full);
            }
            was_empty || !state.sealed.is_empty()
        };
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Whether the queue stopped accepting.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// The next batch to export, when one is due; `None` once the queue is
    /// closed and empty. The caller holds an export slot, so a batch taken
    /// here leaves at once.
    pub(crate) async fn next_batch(&self) -> Option<Batch> {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let due = {
                let mut state = self.state.lock();
                if let Some(batch) = state.sealed.pop_front() {
                    state.in_flight += 1;
                    return Some(batch);
                }
                match state.open.first_at {
                    Some(first) => {
                        let due = first + self.batch_timeout;
                        if state.in_flight == 0 || state.closed || Instant::now() >= due {
                            state.in_flight += 1;
                            return Some(std::mem::replace(&mut state.open, Batch::new()));
                        }
                        Some(due)
                    }
                    None if state.closed => return None,
                    None => None,
                }
            };
            match due {
                Some(due) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(due) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// An export taken with [`next_batch`](Self::next_batch) has ended
    /// (its batch counted and dropped): a partial batch may go now.
    pub(crate) fn export_ended(&self) {
        self.state.lock().in_flight -= 1;
        self.wake.notify_one();
    }

    /// Stops accepting; what is queued still leaves, at once.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    /// Exports in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.state.lock().in_flight
    }
}
