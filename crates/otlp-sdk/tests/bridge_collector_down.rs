#![cfg(feature = "otlp")]
//! The usual production setup: `tracing` bridged to OpenTelemetry logs at
//! WARN (opentelemetry-appender-tracing), our processor and our OTLP
//! exporter, and the collector down. Our own "batch export failed" warning
//! (on the processor's loop thread) and whatever hyper, h2 or tonic log on
//! the exporter's I/O thread must not become the next batch: one
//! application record gives one export, however often the pipeline is
//! flushed. (This test owns the process's global `tracing` subscriber, so
//! it lives alone in its binary.)

use std::time::Duration;

use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use otlp_sdk::otlp::{OtlpExporterBuilder, Protocol, RetryPolicy};
use otlp_sdk::{BatchConfig, BatchLogProcessor, Signal};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;

/// A loopback address nothing listens on: a port bound, then released.
fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    drop(listener);
    format!("http://{addr}")
}

#[test]
fn our_failure_warnings_do_not_feed_the_pipeline() {
    let exporter = OtlpExporterBuilder::new()
        .without_env()
        .with_protocol(Protocol::Grpc)
        .with_endpoint(dead_endpoint())
        .with_timeout(Duration::from_millis(500))
        .with_retry(RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        })
        .build_log_exporter()
        .expect("exporter");
    let exporter_stats = exporter.stats_reader();
    let processor = BatchLogProcessor::builder(exporter)
        .with_batch_config(
            BatchConfig::from_env(Signal::Logs).with_scheduled_delay(Duration::from_millis(20)),
        )
        .build()
        .expect("processor");
    let stats = processor.stats_reader();
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(processor)
        .build();
    // Global: the warnings come from the processor's and the exporter's
    // own threads.
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(OpenTelemetryTracingBridge::new(&provider).with_filter(LevelFilter::WARN)),
    )
    .expect("the only subscriber of this test binary");

    tracing::warn!("the application's one record");
    // The record's export fails: nothing listens.
    assert!(provider.force_flush().is_err());
    for _ in 0..2 {
        // Whatever that failure logged would be queued by now, and its
        // export would fail this flush too.
        provider.force_flush().expect("nothing new to export");
    }
    let _ = provider.shutdown_with_timeout(Duration::from_secs(5));
    let stats = stats.stats();
    assert_eq!(stats.emitted, 1, "{stats:?}");
    assert_eq!(stats.dropped_export_failed, 1, "{stats:?}");
    assert_eq!(exporter_stats.stats().exports, 1);
}
