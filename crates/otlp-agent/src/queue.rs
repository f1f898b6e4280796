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
use std::sync::atomic::{AtomicBool, Ordering};
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

/// A record of the disk queue held on disk only, waiting for room.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OnDisk {
    pub(crate) record: RecordId,
    pub(crate) items: u64,
    pub(crate) bytes: usize,
}

#[derive(Debug)]
struct State {
    open: Batch,
    sealed: VecDeque<Batch>,
    in_flight: usize,
    closed: bool,
    /// Disk queue records not in memory, oldest first.
    waiting_on_disk: VecDeque<OnDisk>,
    /// Records taken from `waiting_on_disk` and being read back.
    loading: usize,
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
    /// Wakes the disk queue's loader when a record waits on disk.
    disk_wake: Notify,
    /// Whether records wait on disk or are being loaded (a hint read
    /// without the lock; decided again under it).
    backlog: AtomicBool,
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
                waiting_on_disk: VecDeque::new(),
                loading: 0,
            }),
            wake: Notify::new(),
            disk_wake: Notify::new(),
            backlog: AtomicBool::new(false),
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

    /// Queues a request in the room `reservation` took for it.
    pub(crate) fn push(
        &self,
        reservation: Reservation,
        message: Bytes,
        record: Option<RecordId>,
    ) -> Result<(), Refusal> {
        let (items, bytes) = (reservation.items, reservation.bytes);
        // Counted before it can be taken, so an export never subtracts first.
        self.count_queued(items, bytes, 1);
        let mut state = self.state.lock();
        if state.closed {
            drop(state);
            self.count_queued(items, bytes, -1);
            return Err(Refusal::Closed);
        }
        let wake = self.enqueue(&mut state, reservation, message, record);
        drop(state);
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Queues a request its signal's disk log holds as `record`: in memory
    /// when there is room and nothing older waits on disk, otherwise on
    /// disk only (the payload is let go here and read back by
    /// [`next_on_disk`](Self::next_on_disk)'s caller once room frees), so
    /// the backlog is bounded by the disk, not by memory.
    pub(crate) fn push_durable(
        &self,
        message: Bytes,
        items: u64,
        record: RecordId,
    ) -> Result<(), Refusal> {
        let bytes = message.len();
        // Room is tried outside the lock: a failed try releases what it
        // took, which may wake another signal's loader.
        let reservation = if self.backlog.load(Ordering::Relaxed) {
            None
        } else {
            self.reserve(items, bytes).ok()
        };
        self.count_queued(items, bytes, 1);
        let mut state = self.state.lock();
        if state.closed {
            drop(state);
            self.count_queued(items, bytes, -1);
            return Err(Refusal::Closed);
        }
        let in_order = state.waiting_on_disk.is_empty() && state.loading == 0;
        match reservation {
            Some(reservation) if in_order => {
                let wake = self.enqueue(&mut state, reservation, message, Some(record));
                drop(state);
                if wake {
                    self.wake.notify_one();
                }
            }
            unused => {
                self.wait_on_disk(
                    &mut state,
                    OnDisk {
                        record,
                        items,
                        bytes,
                    },
                );
                drop(state);
                drop(unused);
                drop(message);
                self.disk_wake.notify_one();
            }
        }
        Ok(())
    }

    /// A record recovered from the disk log at start: queued on disk only,
    /// loaded in order as room frees.
    pub(crate) fn recovered(&self, record: RecordId, items: u64, bytes: usize) {
        self.count_queued(items, bytes, 1);
        let mut state = self.state.lock();
        self.wait_on_disk(
            &mut state,
            OnDisk {
                record,
                items,
                bytes,
            },
        );
        drop(state);
        self.disk_wake.notify_one();
    }

    /// The oldest record waiting on disk, taken for loading; waits for one.
    pub(crate) async fn next_on_disk(&self) -> OnDisk {
        loop {
            let notified = self.disk_wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state.lock();
                if let Some(next) = state.waiting_on_disk.pop_front() {
                    state.loading += 1;
                    return next;
                }
            }
            notified.await;
        }
    }

    /// The oldest record waiting on disk with room for it, if room can be
    /// had without waiting.
    pub(crate) fn try_next_on_disk(&self) -> Option<(OnDisk, Reservation)> {
        let front = self.state.lock().waiting_on_disk.front().copied()?;
        let reservation = self.reserve(front.items, front.bytes).ok()?;
        let mut state = self.state.lock();
        if state.waiting_on_disk.front().map(|d| d.record) != Some(front.record) {
            // Dropped meanwhile (drop-oldest): the room goes back.
            drop(state);
            drop(reservation);
            return None;
        }
        state.waiting_on_disk.pop_front();
        state.loading += 1;
        Some((front, reservation))
    }

    /// Room for a record read back from disk, waiting for it; a record
    /// larger than the whole room takes all of it.
    pub(crate) async fn reserve_waiting(&self, items: u64, bytes: usize) -> Reservation {
        let clamp = |n: usize, semaphore: &Semaphore| n.min(semaphore.total());
        let item_count = clamp(
            usize::try_from(items).unwrap_or(usize::MAX),
            &self.room.items,
        );
        let byte_count = clamp(bytes, &self.room.bytes);
        // The room's semaphores are never closed: these cannot fail.
        let permits = [
            self.room.items.acquire_owned(item_count).await,
            self.room.bytes.acquire_owned(byte_count).await,
        ]
        .into_iter()
        .flatten()
        .collect();
        Reservation {
            permits,
            items,
            bytes,
        }
    }

    /// A record read back from disk joins the batches, even after `close`
    /// (a flush drains what waits on disk too).
    pub(crate) fn push_loaded(&self, reservation: Reservation, message: Bytes, record: RecordId) {
        stats::sub(&self.counters.disk_only_items, reservation.items);
        let mut state = self.state.lock();
        state.loading -= 1;
        let wake = self.enqueue(&mut state, reservation, message, Some(record));
        self.note_backlog(&state);
        drop(state);
        if wake {
            self.wake.notify_one();
        }
    }

    /// A record taken for loading could not be read back: it leaves the
    /// queue (the caller counts why).
    pub(crate) fn load_failed(&self, record: &OnDisk) {
        stats::sub(&self.counters.disk_only_items, record.items);
        self.count_queued(record.items, record.bytes, -1);
        let mut state = self.state.lock();
        state.loading -= 1;
        self.note_backlog(&state);
        drop(state);
        // A flush waiting for the queue to empty may be done now.
        self.wake.notify_one();
    }

    /// Forgets the records the disk log discarded (drop-oldest) that were
    /// waiting on disk; returns their items. Those already in memory stay
    /// queued and are exported.
    pub(crate) fn forget_on_disk(&self, dropped: &[(RecordId, u64)]) -> u64 {
        let gone: std::collections::HashSet<RecordId> = dropped.iter().map(|d| d.0).collect();
        let (mut items, mut bytes) = (0, 0);
        let mut state = self.state.lock();
        state.waiting_on_disk.retain(|d| {
            let keep = !gone.contains(&d.record);
            if !keep {
                items += d.items;
                bytes += d.bytes;
            }
            keep
        });
        self.note_backlog(&state);
        drop(state);
        stats::sub(&self.counters.disk_only_items, items);
        self.count_queued(items, bytes, -1);
        self.wake.notify_one();
        items
    }

    /// Queues a record on disk only, behind the others there.
    fn wait_on_disk(&self, state: &mut State, record: OnDisk) {
        stats::add(&self.counters.disk_only_items, record.items);
        state.waiting_on_disk.push_back(record);
        self.note_backlog(state);
    }

    /// Refreshes the lock-free hint of whether anything waits on disk or
    /// is being loaded; called under the lock whenever either changes.
    fn note_backlog(&self, state: &State) {
        self.backlog.store(
            !state.waiting_on_disk.is_empty() || state.loading > 0,
            Ordering::Relaxed,
        );
    }

    fn count_queued(&self, items: u64, bytes: usize, sign: i8) {
        if sign > 0 {
            stats::add(&self.counters.queued_items, items);
            stats::add(&self.counters.queued_bytes, bytes as u64);
        } else {
            stats::sub(&self.counters.queued_items, items);
            stats::sub(&self.counters.queued_bytes, bytes as u64);
        }
    }

    /// Adds a request to the open batch, sealing batches that are full;
    /// returns whether the exporter should look now.
    fn enqueue(
        &self,
        state: &mut State,
        reservation: Reservation,
        message: Bytes,
        record: Option<RecordId>,
    ) -> bool {
        let Reservation {
            permits,
            items,
            bytes,
        } = reservation;
        let open = &mut state.open;
        if !open.is_empty()
            && (open.items + items > self.max_items || open.bytes + bytes > self.max_bytes)
        {
            let full = std::mem::replace(open, Batch::new());
            state.sealed.push_back(full);
        }
        let open = &mut state.open;
        let was_empty = open.is_empty();
        open.first_at.get_or_insert_with(Instant::now);
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
                    None if state.closed
                        && state.waiting_on_disk.is_empty()
                        && state.loading == 0 =>
                    {
                        return None;
                    }
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
