//! Batch buffers handed back for the next batch, per thread.
//!
//! A batch of 512 spans is a 180 KB vector. glibc's allocator serves a
//! block that large from fresh pages and returns them to the kernel when it
//! is freed (by `mmap`, or by trimming the thread's arena), so every batch
//! the processor filled cost one page fault per 4 KB: measured on the
//! pipeline bench, 89 % of the process's page faults, in the copy out of
//! the queue. Here the vector comes back instead: our OTLP span exporter
//! returns each batch it has encoded, and our processors take the next
//! batch's buffer from the same thread's pool. With `ExportMode::Inline`
//! both happen on the processor's thread, so one or two buffers go round;
//! elsewhere the pool of the exporting thread fills up (two buffers at
//! most) and the rest are freed as before.

use std::cell::RefCell;

use opentelemetry_sdk::trace::SpanData;

use crate::log::Record;

/// Buffers kept per thread and item type: one being filled, one being
/// encoded.
const KEPT: usize = 2;

/// A buffer larger than this many items (a batch size set very high) is
/// freed rather than kept, so the pool never holds more than a few
/// megabytes per thread.
const MAX_KEPT_ITEMS: usize = 8192;

/// A per-thread pool of empty vectors of one item type.
pub(crate) struct Pool<T: 'static> {
    key: &'static std::thread::LocalKey<RefCell<Vec<Vec<T>>>>,
}

impl<T> Pool<T> {
    /// An empty buffer with room for `capacity` items: a kept one if this
    /// thread has one large enough, else a new one.
    pub(crate) fn take(&self, capacity: usize) -> Vec<T> {
        self.key
            .try_with(|kept| {
                let mut kept = kept.borrow_mut();
                let fits = kept.iter().rposition(|v| v.capacity() >= capacity)?;
                Some(kept.swap_remove(fits))
            })
            .ok()
            .flatten()
            .unwrap_or_else(|| Vec::with_capacity(capacity))
    }

    /// Drops `buffer`'s items here, then keeps the allocation for the next
    /// [`take`](Self::take) on this thread, unless enough are kept already.
    pub(crate) fn give_back(&self, mut buffer: Vec<T>) {
        // Items first, outside the pool's borrow: their `Drop` is the
        // user's code, and could come back here.
        buffer.clear();
        if buffer.capacity() == 0 || buffer.capacity() > MAX_KEPT_ITEMS {
            return;
        }
        let _ = self.key.try_with(|kept| {
            if let Ok(mut kept) = kept.try_borrow_mut()
                && kept.len() < KEPT
            {
                kept.push(buffer);
            }
        });
    }
}

thread_local! {
    static SPAN_BATCHES: RefCell<Vec<Vec<SpanData>>> = const { RefCell::new(Vec::new()) };
}

/// The pool of span batches.
pub(crate) const SPANS: Pool<SpanData> = Pool { key: &SPAN_BATCHES };

thread_local! {
    static LOG_BATCHES: RefCell<Vec<Vec<Record>>> = const { RefCell::new(Vec::new()) };
}

/// The pool of log batches (the log processor lends its batches to the
/// exporter, so it gives them back itself).
pub(crate) const LOGS: Pool<Record> = Pool { key: &LOG_BATCHES };

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static NUMBERS: RefCell<Vec<Vec<u64>>> = const { RefCell::new(Vec::new()) };
    }
    const POOL: Pool<u64> = Pool { key: &NUMBERS };

    #[test]
    fn a_returned_buffer_is_reused_empty_and_at_most_two_are_kept() {
        let mut a = POOL.take(100);
        a.extend(0..100);
        let address = a.as_ptr();
        POOL.give_back(a);
        let again = POOL.take(50);
        assert!(again.is_empty());
        assert_eq!(again.as_ptr(), address, "the same allocation came back");
        // Too small for the request: a fresh one.
        POOL.give_back(again);
        assert!(POOL.take(1000).capacity() >= 1000);
        for _ in 0..5 {
            POOL.give_back(Vec::with_capacity(10));
        }
        NUMBERS.with(|kept| assert_eq!(kept.borrow().len(), KEPT));
        POOL.give_back(Vec::with_capacity(MAX_KEPT_ITEMS + 1));
        NUMBERS.with(|kept| {
            assert!(kept.borrow().iter().all(|v| v.capacity() <= MAX_KEPT_ITEMS));
        });
    }

    #[test]
    fn buffers_stay_on_their_thread() {
        POOL.give_back(Vec::with_capacity(10));
        std::thread::spawn(|| {
            NUMBERS.with(|kept| assert!(kept.borrow().is_empty()));
        })
        .join()
        .unwrap();
    }
}
