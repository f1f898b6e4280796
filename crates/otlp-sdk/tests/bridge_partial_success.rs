#![cfg(feature = "otlp")]
//! Our exporter's partial-success warning is logged on its own I/O thread,
//! outside any processor's suppressed export scope. Behind the SDK's own
//! batch processor, with `tracing` bridged to OpenTelemetry logs at WARN,
//! that warning must not become the next batch: the I/O thread is
//! suppressed for its whole life. (This test owns the process's global
//! `tracing` subscriber, so it lives alone in its binary.)

use std::time::Duration;

use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use otlp_receiver::{Receiver, ReceiverConfig};
use otlp_sdk::otlp::{OtlpExporterBuilder, Protocol};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;

#[test]
fn partial_success_warnings_do_not_feed_the_sdk_processor() {
    let receiver = Receiver::start(ReceiverConfig {
        partial_reject: 1,
        ..ReceiverConfig::default()
    })
    .expect("receiver");
    let exporter = OtlpExporterBuilder::new()
        .without_env()
        .with_protocol(Protocol::Grpc)
        .with_endpoint(receiver.endpoint())
        .with_timeout(Duration::from_secs(10))
        .build_log_exporter()
        .expect("exporter");
    let exporter_stats = exporter.stats_reader();
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(opentelemetry_sdk::logs::BatchLogProcessor::builder(exporter).build())
        .build();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(OpenTelemetryTracingBridge::new(&provider).with_filter(LevelFilter::WARN)),
    )
    .expect("the only subscriber of this test binary");

    tracing::warn!("the application's one record");
    for _ in 0..3 {
        provider.force_flush().expect("the receiver accepts");
    }
    provider.shutdown().expect("shutdown");
    let received = receiver.stop();
    let stats = exporter_stats.stats();
    assert_eq!(stats.exports, 1, "{stats:?}");
    assert_eq!(stats.rejected_items, 1, "{stats:?}");
    assert_eq!(received.grpc_requests, 1, "{received:?}");
    assert_eq!(received.log_records, 1, "{received:?}");
}
