//! Telemetry produced while exporting must not become the next batch.
//!
//! Each exporter here starts a span and emits a log record, through the
//! same providers it exports for, every time it exports: without
//! suppression one application span turns into an export every
//! `scheduled_delay`, forever. With it, every export the processor runs is
//! suppressed (as the SDK's processors do), so one item in gives exactly one
//! export, for our processor in both export modes and for the SDK's.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
use otlp_sdk::{BatchConfig, BatchLogProcessor, BatchSpanProcessor, ExportMode, Signal};

/// Where an exporter's own telemetry goes, and what it has exported.
#[derive(Default)]
struct Chatter {
    tracer: OnceLock<SdkTracer>,
    logger: OnceLock<SdkLogger>,
    exports: AtomicUsize,
    items: AtomicUsize,
}

impl Chatter {
    /// What an exporter that logs and traces its own work does per export.
    fn chat(&self, items: usize) {
        self.exports.fetch_add(1, Ordering::SeqCst);
        self.items.fetch_add(items, Ordering::SeqCst);
        if let Some(tracer) = self.tracer.get() {
            tracer.in_span("exporting a batch", |_cx| {});
        }
        if let Some(logger) = self.logger.get() {
            let mut record = logger.create_log_record();
            record.set_body("exported a batch".into());
            logger.emit(record);
        }
    }
}

#[derive(Clone)]
struct ChattySpans(Arc<Chatter>);

impl fmt::Debug for ChattySpans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChattySpans")
    }
}

impl SpanExporter for ChattySpans {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.chat(batch.len());
        Ok(())
    }
}

#[derive(Clone)]
struct ChattyLogs(Arc<Chatter>);

impl fmt::Debug for ChattyLogs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChattyLogs")
    }
}

impl LogExporter for ChattyLogs {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        self.0.chat(batch.iter().count());
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Processor {
    Ours(ExportMode),
    Sdk,
}

fn config(signal: Signal) -> BatchConfig {
    BatchConfig::from_env(signal).with_scheduled_delay(Duration::from_millis(10))
}

/// A tracer provider and a logger provider, each with `processor` around a
/// chatty exporter that talks to both providers.
fn providers(
    processor: Processor,
) -> (
    SdkTracerProvider,
    SdkLoggerProvider,
    Arc<Chatter>,
    Arc<Chatter>,
) {
    let (spans, logs) = (Arc::new(Chatter::default()), Arc::new(Chatter::default()));
    let tracer_provider = match processor {
        Processor::Ours(mode) => SdkTracerProvider::builder().with_span_processor(
            BatchSpanProcessor::builder(ChattySpans(Arc::clone(&spans)))
                .with_batch_config(config(Signal::Spans))
                .with_export_mode(mode)
                .build()
                .unwrap(),
        ),
        Processor::Sdk => SdkTracerProvider::builder().with_span_processor(
            opentelemetry_sdk::trace::BatchSpanProcessor::builder(ChattySpans(Arc::clone(&spans)))
                .build(),
        ),
    }
    .build();
    let logger_provider = match processor {
        Processor::Ours(mode) => SdkLoggerProvider::builder().with_log_processor(
            BatchLogProcessor::builder(ChattyLogs(Arc::clone(&logs)))
                .with_batch_config(config(Signal::Logs))
                .with_export_mode(mode)
                .build()
                .unwrap(),
        ),
        Processor::Sdk => SdkLoggerProvider::builder().with_log_processor(
            opentelemetry_sdk::logs::BatchLogProcessor::builder(ChattyLogs(Arc::clone(&logs)))
                .build(),
        ),
    }
    .build();
    for chatter in [&spans, &logs] {
        let _ = chatter.tracer.set(tracer_provider.tracer("exporter"));
        let _ = chatter.logger.set(logger_provider.logger("exporter"));
    }
    (tracer_provider, logger_provider, spans, logs)
}

/// Flushes both providers twice: anything an export produced during the
/// first round would be exported by the second.
fn flush_twice(tracers: &SdkTracerProvider, loggers: &SdkLoggerProvider) {
    for _ in 0..2 {
        tracers.force_flush().expect("span flush");
        loggers.force_flush().expect("log flush");
    }
}

fn one_item_one_export(processor: Processor) {
    let (tracers, loggers, spans, logs) = providers(processor);

    tracers.tracer("app").in_span("application span", |_cx| {});
    flush_twice(&tracers, &loggers);
    assert_eq!(spans.exports.load(Ordering::SeqCst), 1, "{processor:?}");
    assert_eq!(spans.items.load(Ordering::SeqCst), 1, "{processor:?}");
    assert_eq!(logs.exports.load(Ordering::SeqCst), 0, "{processor:?}");

    let logger = loggers.logger("app");
    let mut record = logger.create_log_record();
    record.set_body("application record".into());
    logger.emit(record);
    flush_twice(&tracers, &loggers);
    assert_eq!(logs.exports.load(Ordering::SeqCst), 1, "{processor:?}");
    assert_eq!(logs.items.load(Ordering::SeqCst), 1, "{processor:?}");
    assert_eq!(spans.exports.load(Ordering::SeqCst), 1, "{processor:?}");

    tracers.shutdown().expect("span shutdown");
    loggers.shutdown().expect("log shutdown");
    // Shutdown's final flush found nothing new either.
    assert_eq!(spans.items.load(Ordering::SeqCst), 1, "{processor:?}");
    assert_eq!(logs.items.load(Ordering::SeqCst), 1, "{processor:?}");
}

#[test]
fn ours_threaded_exports_what_the_application_produced_once() {
    one_item_one_export(Processor::Ours(ExportMode::Threaded));
}

#[test]
fn ours_inline_exports_what_the_application_produced_once() {
    one_item_one_export(Processor::Ours(ExportMode::Inline));
}

/// The SDK's own processors, for comparison: they suppress every export.
#[test]
fn the_sdk_processors_also_export_once() {
    one_item_one_export(Processor::Sdk);
}

/// The processor's loop thread and blocking pool are suppressed for their
/// whole life, not only around the export call.
#[test]
fn the_processor_threads_are_suppressed() {
    use opentelemetry::Context;

    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    #[derive(Debug)]
    struct Probe(Arc<std::sync::Mutex<Vec<(String, bool)>>>);
    impl SpanExporter for Probe {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            // A thread of the processor's blocking pool, outside the
            // export's own suppressed scope.
            let thread = std::thread::current().name().unwrap_or("").to_owned();
            let suppressed = tokio::task::spawn_blocking(Context::is_current_telemetry_suppressed)
                .await
                .unwrap_or(false);
            self.0.lock().unwrap().push((thread, suppressed));
            Ok(())
        }
    }
    for mode in [ExportMode::Inline, ExportMode::Threaded] {
        let provider = SdkTracerProvider::builder()
            .with_span_processor(
                BatchSpanProcessor::builder(Probe(Arc::clone(&record)))
                    .with_export_mode(mode)
                    .build()
                    .unwrap(),
            )
            .build();
        provider.tracer("app").in_span("one", |_cx| {});
        provider.force_flush().unwrap();
        provider.shutdown().unwrap();
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (thread, suppressed) in seen.iter() {
        assert!(
            suppressed,
            "a blocking-pool thread under {thread:?} was not suppressed"
        );
    }
}
