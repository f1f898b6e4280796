//! Request bodies kept between exports. A body is handed to the transport
//! as `Bytes` that owns the buffer; when the last copy is dropped (the
//! export is over, its retries included) the buffer comes back here with
//! its capacity, so a steady stream of batches stops allocating and freeing
//! a body-sized block per export.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// At most this many idle buffers are kept: enough for the exports that
/// overlap in practice; past it a buffer is freed as usual.
const KEEP: usize = 8;
/// A buffer that grew past this (an unusually large batch) is not kept.
const MAX_KEPT_CAPACITY: usize = 8 << 20;

#[derive(Debug, Default)]
pub(crate) struct Bodies(Arc<Mutex<Vec<Vec<u8>>>>);

impl Bodies {
    /// An empty buffer, reused when one is idle.
    pub(crate) fn take(&self) -> Vec<u8> {
        let reused = self.0.lock().unwrap_or_else(PoisonError::into_inner).pop();
        reused.unwrap_or_default()
    }

    /// Gives a buffer back without sending it.
    pub(crate) fn give_back(&self, buffer: Vec<u8>) {
        give_back(&self.0, buffer);
    }

    /// Lends `body` out as `Bytes` that return the buffer here once the
    /// last copy is dropped.
    pub(crate) fn lend(&self, body: Vec<u8>) -> Bytes {
        Bytes::from_owner(Owned {
            buffer: body,
            home: Arc::clone(&self.0),
        })
    }
}

fn give_back(home: &Mutex<Vec<Vec<u8>>>, mut buffer: Vec<u8>) {
    if buffer.capacity() > MAX_KEPT_CAPACITY {
        return;
    }
    buffer.clear();
    let mut idle = home.lock().unwrap_or_else(PoisonError::into_inner);
    if idle.len() < KEEP {
        idle.push(buffer);
    }
}

struct Owned {
    buffer: Vec<u8>,
    home: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        give_back(&self.home, std::mem::take(&mut self.buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_body_comes_back_with_its_capacity() {
        let bodies = Bodies::default();
        let mut body = bodies.take();
        body.extend_from_slice(&[7; 1000]);
        let capacity = body.capacity();
        let bytes = bodies.lend(body);
        let copy = bytes.clone();
        assert_eq!(&copy[..3], &[7, 7, 7]);
        drop(bytes);
        assert_eq!(bodies.0.lock().unwrap().len(), 0, "a copy is still alive");
        drop(copy);
        let again = bodies.take();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), capacity);
    }

    #[test]
    fn only_a_few_modest_buffers_are_kept() {
        let bodies = Bodies::default();
        for _ in 0..KEEP + 4 {
            bodies.give_back(Vec::with_capacity(16));
        }
        assert_eq!(bodies.0.lock().unwrap().len(), KEEP);
        let bodies = Bodies::default();
        bodies.give_back(Vec::with_capacity(MAX_KEPT_CAPACITY + 1));
        assert!(bodies.0.lock().unwrap().is_empty());
    }
}
