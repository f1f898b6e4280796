//! OpenTelemetry SDK processors on `otlp-async`: a drop-in
//! [`BatchSpanProcessor`] and [`BatchLogProcessor`] for `opentelemetry_sdk`
//! 0.33 that wrap any SDK [`SpanExporter`](opentelemetry_sdk::trace::SpanExporter)
//! or [`LogExporter`](opentelemetry_sdk::logs::LogExporter), the
//! opentelemetry-otlp exporters included.
//!
//! # The one-line swap
//!
//! Any SDK exporter works. The examples on these pages use
//! opentelemetry-stdout's, which needs no collector; with these lines in
//! your `Cargo.toml` they compile as written:
//!
//! ```toml
//! [dependencies]
//! otlp-sdk = "0.1"
//! opentelemetry = "0.33"
//! opentelemetry_sdk = "0.33"
//! opentelemetry-stdout = "0.33"
//! ```
//!
//! ```
//! use opentelemetry_sdk::trace::SdkTracerProvider;
//!
//! let exporter = opentelemetry_stdout::SpanExporter::default();
//! let provider = SdkTracerProvider::builder()
//!     // was: .with_batch_exporter(exporter)
//!     .with_span_processor(otlp_sdk::BatchSpanProcessor::new(exporter))
//!     .build();
//! provider.shutdown().unwrap();
//! ```
//!
//! # What differs from the SDK's processors, and why
//!
//! Read in opentelemetry_sdk 0.33's source and measured (figures in
//! `docs/sdk.md` and `docs/benchmarks.md`):
//!
//! * **Concurrent exports with a timeout.** The SDK's thread-based
//!   processors export one batch at a time with `futures_executor::block_on`
//!   and apply no export timeout, so an exporter that hangs stops all
//!   export. Here up to `max_concurrent_exports` exports overlap and each is
//!   cut at `export_timeout` (counted as in doubt; the next batch goes out),
//!   also when the exporter blocks its thread ([`ExportMode::Threaded`]).
//! * **Flush and shutdown that cannot hang.** The loop lives on its own
//!   thread and enforces the callers' time limits; `shutdown_with_timeout`
//!   returns by its timeout whatever the exporter does. (The SDK's
//!   experimental async-runtime processors hang in `force_flush` on a
//!   current-thread runtime and inside a task on a one-worker runtime.)
//! * **A lock-free queue.** `on_end` / `emit` push into
//!   `otlp_lockfree::BoundedQueue` and signal the loop once per batch (the
//!   SDK's `sync_channel` also signals once per batch, through an atomic
//!   counter and flag). Under overload the loop drains in whole batches, so
//!   fewer items are dropped.
//! * **Smart batching.** A free export slot starts an export once two
//!   thirds of a batch are queued (`BatchConfig::with_export_threshold`), so
//!   batches leave early while the exporter keeps up and grow to full while
//!   it does not; the schedule delay still bounds the wait at low rates.
//! * **Accounting.** [`BatchSpanProcessor::stats`] says where every item
//!   went: `emitted == exported + dropped + in_doubt`, with drops split by
//!   cause and exports that timed out (which may have been delivered)
//!   counted apart from those that were refused.
//! * **No telemetry feedback loops.** Like the SDK's processors, every
//!   export runs with telemetry suppressed, so spans and logs produced
//!   while exporting are dropped instead of becoming the next batch.
//!   Beyond the SDK, every thread these processors and the OTLP exporters
//!   create is suppressed for its whole life (see
//!   [`suppress_telemetry_on_this_thread`]), so `tracing` events of
//!   hyper, h2 or tonic on them never reach a provider either, and our
//!   own warnings are rate-limited.
//! * **Self-observability by the conventions.** `with_meter_provider` on
//!   the processor builders and on `otlp::OtlpExporterBuilder` reports the
//!   semantic conventions' SDK metrics through your `MeterProvider`
//!   (`otel.sdk.processor.span.processed` by `error.type`, queue size and
//!   capacity, `otel.sdk.exporter.span.exported`, `….inflight`,
//!   `otel.sdk.exporter.operation.duration`, and their log and metric
//!   forms); off unless called. The counts are observable instruments over
//!   the counters [`stats`](BatchSpanProcessor::stats) already keeps, so
//!   emitting costs nothing more.
//! * **Opt-in back-pressure.** [`OverflowPolicy::Block`] makes a producer
//!   wait (bounded) for room instead of dropping.
//!
//! `set_resource` reaches the exporter before its first export, so an OTLP
//! exporter behind these processors sends `service.name`.
//!
//! # Example: logs
//!
//! ```
//! use std::time::Duration;
//! use opentelemetry::logs::{LogRecord, Logger, LoggerProvider};
//! use opentelemetry_sdk::logs::SdkLoggerProvider;
//! use otlp_sdk::{BatchConfig, BatchLogProcessor, Signal};
//!
//! let exporter = opentelemetry_stdout::LogExporter::default();
//! let processor = BatchLogProcessor::builder(exporter)
//!     .with_batch_config(
//!         BatchConfig::from_env(Signal::Logs)
//!             .with_max_export_batch_size(256)
//!             .with_max_concurrent_exports(2),
//!     )
//!     .build()
//!     .expect("a valid configuration");
//! let stats = processor.stats_reader(); // still readable after the provider owns it
//! let provider = SdkLoggerProvider::builder()
//!     .with_log_processor(processor)
//!     .build();
//! let logger = provider.logger("example");
//! for i in 0..10 {
//!     let mut record = logger.create_log_record();
//!     record.set_body(format!("line {i}").into());
//!     logger.emit(record);
//! }
//! provider.force_flush().unwrap();
//! assert_eq!(stats.stats().exported, 10);
//! provider.shutdown_with_timeout(Duration::from_secs(5)).unwrap();
//! ```
//!
//! # OTLP exporters (feature `otlp`)
//!
//! With the `otlp` feature, the module `otlp_sdk::otlp` adds
//! `OtlpSpanExporter` and `OtlpLogExporter`: OTLP over gRPC (tonic),
//! HTTP/protobuf or HTTP/JSON (hyper), encoded straight from the SDK's data
//! (byte-identical to opentelemetry-otlp's output, in a sixth of the time),
//! with their own I/O thread, so any processor can drive them; TLS and
//! mutual TLS through rustls for `https://` endpoints, gzip or zstd. The
//! `webpki-roots` feature makes `https://` trust Mozilla's roots compiled in
//! instead of the system's store.
//!
//! See `docs/sdk.md` in the repository for the guide: when to use these
//! instead of the SDK's, the configuration and environment variables, the
//! OTLP exporters, and the measured figures.

mod export;
mod log;
mod recycle;
mod self_metrics;
mod span;
mod suppress;

pub use export::ExportMode;
pub use log::{BatchLogProcessor, BatchLogProcessorBuilder};
pub use otlp_async::{
    BatchConfig, ConfigError, OverflowPolicy, ProcessorError, ProcessorStats, Signal, StatsReader,
};
pub use span::{BatchSpanProcessor, BatchSpanProcessorBuilder};
pub use suppress::suppress_telemetry_on_this_thread;

#[cfg(feature = "otlp")]
pub mod otlp;

/// The code blocks of this crate's `README.md`, compiled and run as
/// doctests (the README is part of the published package).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
