//! The log record processor's contract, driven through the real SDK API
//! (`SdkLoggerProvider::builder().with_log_processor(..)`).

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Behaviour, TestExporter, eventually};
use opentelemetry::logs::{LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use otlp_sdk::{BatchConfig, BatchLogProcessor, ExportMode, StatsReader};

fn config() -> BatchConfig {
    BatchConfig::default()
        .with_max_queue_size(256)
        .with_max_export_batch_size(32)
        .with_scheduled_delay(Duration::from_millis(20))
        .with_export_timeout(Duration::from_secs(5))
        // Whole batches only (clamped to the batch size): these tests
        // count exports in batches of `max_export_batch_size`.
        .with_export_threshold(usize::MAX)
}

fn provider(exporter: TestExporter, config: BatchConfig) -> (SdkLoggerProvider, StatsReader) {
    let processor = BatchLogProcessor::builder(exporter)
        .with_batch_config(config)
        .with_export_mode(ExportMode::Threaded)
        .build()
        .unwrap();
    let stats = processor.stats_reader();
    let provider = SdkLoggerProvider::builder()
        .with_resource(Resource::builder().with_service_name("checkout").build())
        .with_log_processor(processor)
        .build();
    (provider, stats)
}

fn emit(provider: &SdkLoggerProvider, n: usize) {
    let logger = provider.logger("test");
    for i in 0..n {
        let mut record = logger.create_log_record();
        record.set_severity_number(Severity::Info);
        record.set_body(format!("line {i}").into());
        logger.emit(record);
    }
}

#[test]
fn every_record_is_exported_or_counted_as_dropped() {
    let exporter = TestExporter::new(Behaviour::BlockingSleep(Duration::from_millis(1)));
    let record = Arc::clone(&exporter.record);
    let config = config()
        .with_max_queue_size(64)
        .with_max_export_batch_size(16);
    let (provider, stats) = provider(exporter, config);
    let provider = Arc::new(provider);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let provider = Arc::clone(&provider);
            std::thread::spawn(move || emit(&provider, 1000))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    provider
        .shutdown_with_timeout(Duration::from_secs(10))
        .unwrap();
    let stats = stats.stats();
    assert_eq!(stats.emitted, 4000, "{stats:?}");
    assert_eq!(
        stats.emitted,
        stats.exported + stats.dropped + stats.in_doubt,
        "{stats:?}"
    );
    assert_eq!(stats.exported, record.items.load(Ordering::SeqCst) as u64);
    assert_eq!(record.shutdowns.load(Ordering::SeqCst), 1);
}

#[test]
fn resource_flush_and_shutdown_from_a_current_thread_runtime() {
    let exporter = TestExporter::new(Behaviour::AsyncSleep(Duration::from_millis(1)));
    let record = Arc::clone(&exporter.record);
    let config = config().with_scheduled_delay(Duration::from_secs(3600));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (provider, stats) = provider(exporter, config);
        emit(&provider, 50);
        provider.force_flush().unwrap();
        assert_eq!(record.items.load(Ordering::SeqCst), 50);
        provider.shutdown().unwrap();
        assert_eq!(stats.stats().exported, 50);
    });
    let names = record.names_at_export.lock().unwrap().clone();
    assert!(
        names.iter().all(|n| n.as_deref() == Some("checkout")),
        "{names:?}"
    );
}

#[test]
fn a_hung_exporter_does_not_hold_up_the_next_batch_or_shutdown() {
    let exporter = TestExporter::new(Behaviour::HangFirstBlocking);
    let record = Arc::clone(&exporter.record);
    let config = config()
        .with_max_export_batch_size(10)
        .with_export_timeout(Duration::from_millis(100));
    let (provider, stats) = provider(exporter, config);
    emit(&provider, 10);
    eventually("the first export started", || {
        record.calls.load(Ordering::SeqCst) >= 1
    });
    emit(&provider, 10);
    eventually("the next batch was exported", || {
        record.items.load(Ordering::SeqCst) == 10
    });
    provider
        .shutdown_with_timeout(Duration::from_secs(5))
        .unwrap();
    let stats = stats.stats();
    assert_eq!(stats.exported, 10, "{stats:?}");
    assert_eq!(stats.in_doubt, 10, "{stats:?}");
}

#[test]
fn concurrent_exports_overlap_for_a_blocking_exporter() {
    let exporter = TestExporter::new(Behaviour::BlockingSleep(Duration::from_millis(150)));
    let record = Arc::clone(&exporter.record);
    let config = config()
        .with_max_export_batch_size(10)
        .with_max_concurrent_exports(3);
    let (provider, _) = provider(exporter, config);
    emit(&provider, 30);
    provider.force_flush().unwrap();
    assert_eq!(record.max_running.load(Ordering::SeqCst), 3);
    provider.shutdown().unwrap();
}

#[test]
fn a_second_shutdown_is_reported() {
    let (provider, _) = provider(TestExporter::new(Behaviour::Ok), config());
    provider.shutdown().unwrap();
    assert!(matches!(
        provider.shutdown(),
        Err(OTelSdkError::AlreadyShutdown)
    ));
}
