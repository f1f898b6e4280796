//! otlp-async (being written).

mod config;
mod export;
mod processor;
mod retry;
mod stream;
mod sync;
mod wake;

pub use config::{BatchConfig, ConfigError, Signal};
pub use export::{ExportError, Exporter, ExporterFn, exporter_fn};
pub use processor::{BatchProcessor, ProcessorError, ProcessorStats};
pub use retry::{Backoff, Retry, RetryPolicy};
pub use stream::{AsyncDataStream, AsyncDataStreamBuilder, Batched, BatchedExt, SendError, StreamConfigError, StreamSender};
