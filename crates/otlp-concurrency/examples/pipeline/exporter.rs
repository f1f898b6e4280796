//! The pipeline's exporter: each batch the processor hands over is encoded as
//! an OTLP `ExportTraceServiceRequest` on the work-stealing pool, into a
//! buffer recycled through a `LockFreeStack`, with the bytes in flight
//! bounded by a semaphore.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use otlp_concurrency::async_rt::{ExportError, Exporter};
use otlp_concurrency::lockfree::{ConcurrentHashMap, LockFreeStack};
use otlp_concurrency::monitor::ConcurrencyMonitor;
use otlp_concurrency::sched::WorkStealingScheduler;
use otlp_concurrency::sync::{Mutex, Semaphore};

use super::encode::{self, PIPELINE_ORIGIN};
use super::span::Span;

/// Upper bound of one span's encoded size with our vocabulary (the largest
/// is about 190 bytes); used to reserve in-flight bytes before encoding.
pub const MAX_SPAN_BYTES: usize = 256;

/// Buffers kept for reuse; more than the pool can have in flight at once.
const POOLED_BUFFERS: usize = 64;

/// What the encoding side shares between the exporter and pool tasks.
#[derive(Debug)]
pub struct EncodeSide {
    buffers: LockFreeStack<Vec<u8>>,
    /// Spans per name, aggregated across every batch.
    pub counts: ConcurrentHashMap<&'static str, u64>,
    output: Option<Mutex<BufWriter<File>>>,
    /// Bytes of encoded requests.
    pub bytes: AtomicU64,
    /// Requests encoded.
    pub requests: AtomicU64,
    /// Spans encoded.
    pub spans: AtomicU64,
    /// Buffers that had to be allocated because the pool was empty.
    pub buffers_allocated: AtomicU64,
}

impl EncodeSide {
    pub fn new(output: Option<File>) -> Self {
        EncodeSide {
            buffers: LockFreeStack::new(),
            counts: ConcurrentHashMap::new(),
            output: output.map(|f| Mutex::new(BufWriter::with_capacity(1 << 20, f))),
            bytes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            spans: AtomicU64::new(0),
            buffers_allocated: AtomicU64::new(0),
        }
    }

    /// Encodes one batch (runs on a pool worker).
    fn encode_batch(&self, spans: &[Span]) -> std::io::Result<()> {
        let mut buffer = match self.buffers.pop() {
            Some(buffer) => buffer,
            None => {
                self.buffers_allocated.fetch_add(1, Ordering::Relaxed);
                Vec::with_capacity(spans.len() * MAX_SPAN_BYTES)
            }
        };
        buffer.clear();
        let len = encode::encode_request(&mut buffer, &PIPELINE_ORIGIN, spans);

        // Count per name locally first: one map update per distinct name,
        // not one per span.
        let mut local: Vec<(&'static str, u64)> = Vec::with_capacity(8);
        for span in spans {
            match local.iter_mut().find(|(name, _)| *name == span.name) {
                Some((_, n)) => *n += 1,
                None => local.push((span.name, 1)),
            }
        }
        for (name, n) in local {
            self.counts
                .compute(name, |slot| *slot.get_or_insert(0) += n);
        }

        let written = match &self.output {
            Some(output) => {
                let mut frame = Vec::with_capacity(len + 10);
                encode::put_delimited(&mut frame, &buffer);
                output.lock().write_all(&frame)
            }
            None => Ok(()),
        };
        self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.spans.fetch_add(spans.len() as u64, Ordering::Relaxed);
        // A racy bound is fine: it only caps how much memory the pool keeps.
        if self.buffers.len() < POOLED_BUFFERS {
            self.buffers.push(buffer);
        }
        written
    }

    /// Flushes the `--output` file, if any.
    pub fn flush_output(&self) -> std::io::Result<()> {
        match &self.output {
            Some(output) => output.lock().flush(),
            None => Ok(()),
        }
    }
}

/// The `Exporter` the batch processor calls.
#[derive(Debug)]
pub struct PoolExporter {
    pub pool: Arc<WorkStealingScheduler>,
    pub side: Arc<EncodeSide>,
    pub in_flight_bytes: Arc<Semaphore>,
    /// Batch latency: from the processor handing the batch over to the
    /// encoded request being written.
    pub batches: Arc<ConcurrencyMonitor>,
}

impl Exporter<Span> for PoolExporter {
    async fn export(&self, batch: &[Span]) -> Result<(), ExportError> {
        let timer = self.batches.start_task_owned();
        let reserve = (batch.len() * MAX_SPAN_BYTES).min(self.in_flight_bytes.total());
        let permit = self
            .in_flight_bytes
            .acquire_owned(reserve)
            .await
            .map_err(|e| ExportError::permanent(format!("in-flight byte budget: {e}")))?;
        let spans = batch.to_vec();
        let side = Arc::clone(&self.side);
        let handle = self
            .pool
            .submit(move || side.encode_batch(&spans))
            .map_err(|_| ExportError::Shutdown)?;
        let result = handle.await;
        drop(permit);
        match result {
            Ok(Ok(())) => {
                timer.finish();
                Ok(())
            }
            Ok(Err(io)) => {
                timer.fail();
                Err(ExportError::permanent(format!("writing the output: {io}")))
            }
            Err(task) => {
                timer.fail();
                Err(ExportError::permanent(format!(
                    "encoder task failed: {task}"
                )))
            }
        }
    }
}
