#![cfg(feature = "otlp")]
//! `OtlpMetricExporter` over real loopback sockets, against the embedded
//! OTLP receiver (which decodes every request with opentelemetry-proto's
//! generated code), behind the SDK's `PeriodicReader`: counters and
//! histograms arrive over gRPC and HTTP, compressed or not; temporality
//! from code; failures and timeouts end as they do for spans.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter as _;
use opentelemetry_sdk::metrics::{
    InMemoryMetricExporter, PeriodicReader, SdkMeterProvider, Temporality,
};
use otlp_receiver::{Receiver, ReceiverConfig};
use otlp_sdk::otlp::{Compression, OtlpExporterBuilder, OtlpMetricExporter, Protocol, RetryPolicy};

fn receiver(config: ReceiverConfig) -> Receiver {
    Receiver::start(config).expect("receiver starts on a loopback port")
}

fn builder(receiver: &Receiver, protocol: Protocol) -> OtlpExporterBuilder {
    OtlpExporterBuilder::new()
        .without_env()
        .with_protocol(protocol)
        .with_endpoint(receiver.endpoint())
        .with_timeout(Duration::from_secs(10))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A provider reading into `exporter` only when flushed or shut down.
fn provider(exporter: OtlpMetricExporter) -> SdkMeterProvider {
    SdkMeterProvider::builder()
        .with_resource(
            Resource::builder_empty()
                .with_service_name("metric-exporter-test")
                .build(),
        )
        .with_reader(
            PeriodicReader::builder(exporter)
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .build()
}

/// Records a counter and a histogram under three attribute sets: two
/// metrics, six data points per collection.
fn record(provider: &SdkMeterProvider) {
    let meter = provider.meter("exporter-test");
    let counter = meter.u64_counter("requests").build();
    let histogram = meter.f64_histogram("latency").with_unit("s").build();
    for route in ["/a", "/b", "/c"] {
        let attrs = [KeyValue::new("route", route)];
        counter.add(2, &attrs);
        histogram.record(0.25, &attrs);
        histogram.record(3.0, &attrs);
    }
}

/// One real collection, for calling `export` directly.
fn one_collection() -> ResourceMetrics {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    provider
        .meter("one")
        .u64_counter("c")
        .build()
        .add(1, &[KeyValue::new("k", "v")]);
    provider.shutdown().unwrap();
    exporter
        .get_finished_metrics()
        .unwrap()
        .into_iter()
        .next()
        .expect("one collection")
}

#[test]
fn counters_and_histograms_arrive_over_both_protocols() {
    let cases = [
        (Protocol::Grpc, Compression::None),
        (Protocol::Grpc, Compression::Gzip),
        (Protocol::HttpProtobuf, Compression::None),
        (Protocol::HttpProtobuf, Compression::Zstd),
    ];
    for (protocol, compression) in cases {
        let receiver = receiver(ReceiverConfig::default());
        let exporter = builder(&receiver, protocol)
            .with_compression(compression)
            .build_metric_exporter()
            .unwrap();
        if protocol == Protocol::HttpProtobuf {
            assert_eq!(exporter.endpoint(), receiver.metrics_url());
        }
        let sent = exporter.stats_reader();
        let provider = provider(exporter);
        record(&provider);
        provider.shutdown().expect("exported at shutdown");
        let stats = receiver.stop();
        let case = format!("{protocol:?} {compression:?}");
        assert_eq!((stats.metrics, stats.data_points), (2, 6), "{case}");
        assert_eq!(stats.requests(), 1, "{case}");
        assert_eq!(
            stats.service_names.get("metric-exporter-test"),
            Some(&6),
            "{case}"
        );
        assert_eq!(stats.rejected(), 0, "{case}");
        let compressed = stats.gzip_requests + stats.zstd_requests;
        assert_eq!(
            compressed,
            u64::from(compression != Compression::None),
            "{case}"
        );
        let sent = sent.stats();
        assert_eq!((sent.exports, sent.failed_exports), (1, 0), "{case}");
    }
}

#[test]
fn temporality_from_code_decides_what_repeated_collections_send() {
    // Three collections, measurements only before the first: cumulative
    // sends the six points each time, delta only once.
    for (temporality, points) in [
        (Temporality::Cumulative, 18),
        (Temporality::Delta, 6),
        (Temporality::LowMemory, 6),
    ] {
        let receiver = receiver(ReceiverConfig::default());
        let exporter = builder(&receiver, Protocol::Grpc)
            .with_temporality(temporality)
            .build_metric_exporter()
            .unwrap();
        assert_eq!(exporter.temporality(), temporality);
        let provider = provider(exporter);
        record(&provider);
        provider.force_flush().unwrap();
        provider.force_flush().unwrap();
        provider.shutdown().unwrap();
        assert_eq!(receiver.stop().data_points, points, "{temporality:?}");
    }
    let receiver = receiver(ReceiverConfig::default());
    let default = builder(&receiver, Protocol::Grpc)
        .build_metric_exporter()
        .unwrap();
    assert_eq!(default.temporality(), Temporality::Cumulative);
}

#[test]
fn retryable_refusals_are_retried_until_the_collection_arrives() {
    let receiver = receiver(ReceiverConfig {
        fail_ratio: 0.5,
        retry_after: Duration::ZERO,
        ..ReceiverConfig::default()
    });
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let exporter = builder(&receiver, protocol)
            .with_retry(RetryPolicy {
                max_attempts: 30,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(5),
            })
            .build_metric_exporter()
            .unwrap();
        for _ in 0..4 {
            block_on(exporter.export(&one_collection())).expect("arrives after retries");
        }
    }
    let stats = receiver.stop();
    assert_eq!(stats.data_points, 8);
    assert!(stats.refused > 0, "{stats:?}");
}

#[test]
fn an_unreachable_endpoint_fails_within_the_timeout_naming_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let exporter = OtlpExporterBuilder::new()
            .without_env()
            .with_protocol(protocol)
            .with_endpoint(&endpoint)
            .with_timeout(Duration::from_millis(600))
            .build_metric_exporter()
            .unwrap();
        let stats = exporter.stats_reader();
        let error = block_on(exporter.export(&one_collection())).unwrap_err();
        assert!(
            error.to_string().contains(&endpoint),
            "{protocol:?}: {error}"
        );
        assert_eq!(stats.stats().failed_exports, 1);
    }
}

#[test]
fn a_permanent_failure_is_not_retried() {
    let receiver = receiver(ReceiverConfig::default());
    let exporter = OtlpExporterBuilder::new()
        .without_env()
        .with_protocol(Protocol::HttpProtobuf)
        .with_endpoint(format!("{}/not/otlp", receiver.endpoint()))
        .build_metric_exporter()
        .unwrap();
    let stats = exporter.stats_reader();
    let error = block_on(exporter.export(&one_collection())).unwrap_err();
    assert!(error.to_string().contains("404"), "{error}");
    assert_eq!((stats.stats().requests, stats.stats().retries), (1, 0));
    receiver.stop();
}

#[test]
fn a_request_unanswered_at_the_timeout_is_in_doubt_not_failed() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let receiver = receiver(ReceiverConfig {
            latency: Duration::from_secs(3),
            ..ReceiverConfig::default()
        });
        let exporter = builder(&receiver, protocol)
            .with_timeout(Duration::from_millis(300))
            .build_metric_exporter()
            .unwrap();
        let stats = exporter.stats_reader();
        let error = block_on(exporter.export(&one_collection())).unwrap_err();
        assert!(
            matches!(error, OTelSdkError::Timeout(_)),
            "{protocol:?}: {error:?}"
        );
        let sent = stats.stats();
        assert_eq!(
            (sent.in_doubt_exports, sent.failed_exports),
            (1, 0),
            "{protocol:?}"
        );
        assert_eq!(receiver.stop().data_points, 1, "{protocol:?}");
    }
}

#[test]
fn a_partial_success_counts_rejected_data_points() {
    let receiver = receiver(ReceiverConfig {
        partial_reject: 1,
        ..ReceiverConfig::default()
    });
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let exporter = builder(&receiver, protocol)
            .build_metric_exporter()
            .unwrap();
        let stats = exporter.stats_reader();
        block_on(exporter.export(&one_collection())).expect("accepted");
        assert_eq!(stats.stats().rejected_items, 1, "{protocol:?}");
    }
    receiver.stop();
}

#[test]
fn after_shutdown_exports_are_refused() {
    let receiver = receiver(ReceiverConfig::default());
    let exporter = builder(&receiver, Protocol::Grpc)
        .build_metric_exporter()
        .unwrap();
    block_on(exporter.export(&one_collection())).unwrap();
    exporter.force_flush().unwrap();
    exporter.shutdown().unwrap();
    assert!(matches!(
        block_on(exporter.export(&one_collection())),
        Err(OTelSdkError::AlreadyShutdown)
    ));
    assert!(matches!(
        exporter.shutdown(),
        Err(OTelSdkError::AlreadyShutdown)
    ));
    assert_eq!(receiver.stop().data_points, 1);
}
