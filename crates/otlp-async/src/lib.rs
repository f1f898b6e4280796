//! otlp-async (being written).

mod config;
mod export;
mod manager;
mod processor;
mod retry;
mod stream;
mod sync;
mod util;
mod wake;

pub use config::{BatchConfig, ConfigError, Signal};
pub use export::{ExportError, Exporter, ExporterFn, exporter_fn};
pub use manager::{
    AsyncTaskManager, AsyncTaskManagerBuilder, HandlerFn, ManagerError, ManagerStats,
    ShutdownReport, SubmitError, TaskHandler, handler_fn,
};
pub use processor::{BatchProcessor, ProcessorError, ProcessorStats};
pub use retry::{Backoff, Retry, RetryPolicy};
pub use stream::{
    AsyncDataStream, AsyncDataStreamBuilder, Batched, BatchedExt, SendError, StreamConfigError,
    StreamSender,
};
