#![cfg(feature = "otlp")]
//! `OtlpSpanExporter` / `OtlpLogExporter` over real loopback sockets,
//! against the embedded OTLP receiver (which decodes every request with
//! opentelemetry-proto's generated code), behind our processors and the
//! SDK's own.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter as _};
use otlp_receiver::{Receiver, ReceiverConfig};
use otlp_sdk::otlp::{
    Compression, OtlpConfigError, OtlpExporterBuilder, OtlpSpanExporter, Protocol, RetryPolicy,
};
use otlp_sdk::{BatchConfig, BatchLogProcessor, BatchSpanProcessor, Signal};

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

fn resource() -> Resource {
    Resource::builder_empty()
        .with_service_name("exporter-test")
        .build()
}

/// Ends `n` spans through a provider whose processor is ours, then shuts
/// the provider down (which flushes).
fn send_spans(exporter: OtlpSpanExporter, n: usize) {
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfig::from_env(Signal::Spans)
                .with_max_export_batch_size(128)
                .with_max_concurrent_exports(2),
        )
        .build()
        .unwrap();
    let provider = SdkTracerProvider::builder()
        .with_resource(resource())
        .with_span_processor(processor)
        .build();
    let tracer = provider.tracer("test");
    for i in 0..n {
        let mut span = tracer.start(format!("span {i}"));
        span.set_attribute(KeyValue::new("i", i as i64));
        span.end();
    }
    provider.shutdown().expect("every span exported");
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn one_span_batch() -> Vec<opentelemetry_sdk::trace::SpanData> {
    let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    provider.tracer("t").start("one").end();
    let spans = exporter.get_finished_spans().unwrap();
    provider.shutdown().unwrap();
    spans
}

#[test]
fn spans_arrive_over_grpc_with_their_resource() {
    let receiver = receiver(ReceiverConfig::default());
    let exporter = builder(&receiver, Protocol::Grpc)
        .build_span_exporter()
        .unwrap();
    let stats = exporter.stats_reader();
    send_spans(exporter, 1000);
    let received = receiver.stop();
    assert_eq!(received.spans, 1000);
    assert_eq!(received.service_names.get("exporter-test"), Some(&1000));
    assert!(received.grpc_requests >= 8, "batches of 128");
    let sent = stats.stats();
    assert_eq!(sent.failed_exports, 0);
    assert_eq!(sent.requests, received.grpc_requests);
    assert_eq!(sent.retries, 0);
}

#[test]
fn spans_arrive_over_http_gzipped_with_headers() {
    let receiver = receiver(ReceiverConfig::default());
    let exporter = builder(&receiver, Protocol::HttpProtobuf)
        .with_compression(Compression::Gzip)
        .with_header("x-tenant", "blue")
        .build_span_exporter()
        .unwrap();
    assert_eq!(exporter.endpoint(), receiver.traces_url());
    let stats = exporter.stats_reader();
    send_spans(exporter, 700);
    let received = receiver.stop();
    assert_eq!(received.spans, 700);
    assert_eq!(received.service_names.get("exporter-test"), Some(&700));
    assert_eq!(received.gzip_requests, received.http_requests);
    assert_eq!(
        received.custom_headers.get("x-tenant: blue"),
        Some(&received.http_requests)
    );
    assert_eq!(stats.stats().bytes_sent, received.wire_bytes);
}

#[test]
fn grpc_gzip_and_metadata_arrive() {
    let receiver = receiver(ReceiverConfig::default());
    let exporter = builder(&receiver, Protocol::Grpc)
        .with_compression(Compression::Gzip)
        .with_header("x-tenant", "green")
        .build_span_exporter()
        .unwrap();
    send_spans(exporter, 300);
    let received = receiver.stop();
    assert_eq!(received.spans, 300);
    assert_eq!(received.gzip_requests, received.grpc_requests);
    assert_eq!(
        received.custom_headers.get("x-tenant: green"),
        Some(&received.grpc_requests)
    );
}

#[test]
fn the_sdk_processor_drives_it_without_a_tokio_context() {
    // The SDK's BatchSpanProcessor polls exports with a plain
    // `futures_executor::block_on` on its own thread.
    let receiver = receiver(ReceiverConfig::default());
    let exporter = builder(&receiver, Protocol::Grpc)
        .build_span_exporter()
        .unwrap();
    let provider = SdkTracerProvider::builder()
        .with_resource(resource())
        .with_batch_exporter(exporter)
        .build();
    let tracer = provider.tracer("test");
    for _ in 0..600 {
        tracer.start("sdk-driven").end();
    }
    provider.shutdown().unwrap();
    assert_eq!(receiver.stop().spans, 600);
}

#[test]
fn retryable_refusals_are_retried_until_everything_arrives() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let receiver = receiver(ReceiverConfig {
            fail_ratio: 0.4,
            // HTTP refusals carry `Retry-After: 0`: retried at once.
            retry_after: Duration::ZERO,
            ..ReceiverConfig::default()
        });
        let exporter = builder(&receiver, protocol)
            .with_retry(RetryPolicy {
                max_attempts: 40,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(5),
            })
            .build_span_exporter()
            .unwrap();
        let stats = exporter.stats_reader();
        send_spans(exporter, 2000);
        let received = receiver.stop();
        let sent = stats.stats();
        assert_eq!(received.spans, 2000, "{protocol:?}");
        assert!(received.refused > 0, "{protocol:?}: some requests refused");
        assert_eq!(
            sent.retries, received.refused,
            "{protocol:?}: each refusal retried once"
        );
        assert_eq!(sent.requests, sent.exports + sent.retries, "{protocol:?}");
        assert_eq!(sent.failed_exports, 0, "{protocol:?}");
    }
}

#[test]
fn a_retry_delay_the_server_asks_for_is_honoured() {
    // gRPC: RESOURCE_EXHAUSTED with RetryInfo; HTTP: 503 with Retry-After.
    // Asked to wait 30 s with a 1 s timeout, the exporter gives up after
    // the first attempt rather than retrying early.
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let receiver = receiver(ReceiverConfig {
            fail_ratio: 1.0,
            retry_after: Duration::from_secs(30),
            grpc_retry_info: true,
            ..ReceiverConfig::default()
        });
        let exporter = builder(&receiver, protocol)
            .with_timeout(Duration::from_secs(1))
            .build_span_exporter()
            .unwrap();
        let stats = exporter.stats_reader();
        let error = block_on(exporter.export(one_span_batch())).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("30s would pass"), "{protocol:?}: {text}");
        assert_eq!(stats.stats().requests, 1, "{protocol:?}");
        assert_eq!(stats.stats().failed_exports, 1, "{protocol:?}");
        assert_eq!(receiver.stop().refused, 1, "{protocol:?}");
    }
    // A short RetryInfo delay is waited out and the export succeeds.
    let receiver = receiver(ReceiverConfig {
        fail_ratio: 0.5,
        retry_after: Duration::from_millis(20),
        grpc_retry_info: true,
        ..ReceiverConfig::default()
    });
    let exporter = builder(&receiver, Protocol::Grpc)
        .with_retry(RetryPolicy {
            max_attempts: 40,
            ..RetryPolicy::default()
        })
        .build_span_exporter()
        .unwrap();
    send_spans(exporter, 1000);
    let received = receiver.stop();
    assert_eq!(received.spans, 1000);
    assert!(received.refused > 0);
}

#[test]
fn an_unreachable_endpoint_fails_within_the_timeout_naming_it() {
    // A port that was free a moment ago: nothing listens there.
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
            .build_span_exporter()
            .unwrap();
        let stats = exporter.stats_reader();
        let error = block_on(exporter.export(one_span_batch())).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(&endpoint), "{protocol:?}: {text}");
        assert!(stats.stats().requests >= 1);
        assert_eq!(stats.stats().failed_exports, 1);
    }
}

#[test]
fn a_permanent_failure_is_not_retried() {
    let receiver = receiver(ReceiverConfig::default());
    // An HTTP path the receiver does not serve: 404, final.
    let exporter = OtlpExporterBuilder::new()
        .without_env()
        .with_protocol(Protocol::HttpProtobuf)
        .with_endpoint(format!("{}/not/otlp", receiver.endpoint()))
        .build_span_exporter()
        .unwrap();
    let stats = exporter.stats_reader();
    let error = block_on(exporter.export(one_span_batch())).unwrap_err();
    assert!(error.to_string().contains("404"), "{error}");
    assert_eq!(stats.stats().requests, 1);
    assert_eq!(stats.stats().retries, 0);
    receiver.stop();
}

#[test]
fn after_shutdown_exports_are_refused_and_a_second_shutdown_is_reported() {
    let receiver = receiver(ReceiverConfig::default());
    let exporter = builder(&receiver, Protocol::Grpc)
        .build_span_exporter()
        .unwrap();
    block_on(exporter.export(one_span_batch())).unwrap();
    exporter.shutdown().unwrap();
    assert!(matches!(
        block_on(exporter.export(one_span_batch())),
        Err(OTelSdkError::AlreadyShutdown)
    ));
    assert!(matches!(
        exporter.shutdown(),
        Err(OTelSdkError::AlreadyShutdown)
    ));
    assert_eq!(receiver.stop().spans, 1);
}

#[test]
fn it_can_be_built_and_dropped_inside_an_async_context() {
    let receiver = receiver(ReceiverConfig::default());
    let endpoint = receiver.endpoint();
    block_on(async move {
        let exporter = OtlpExporterBuilder::new()
            .without_env()
            .with_endpoint(endpoint)
            .build_span_exporter()
            .unwrap();
        exporter.export(one_span_batch()).await.unwrap();
        drop(exporter);
    });
    assert_eq!(receiver.stop().spans, 1);
}

#[test]
fn bad_settings_are_typed_errors() {
    let b = OtlpExporterBuilder::new().without_env();
    // Without a scheme only a gRPC endpoint is valid (TLS unless
    // insecure); `https` endpoints are built (see tests/otlp_tls.rs).
    assert!(matches!(
        b.clone()
            .with_protocol(Protocol::HttpProtobuf)
            .with_endpoint("localhost:4318")
            .build_span_exporter(),
        Err(OtlpConfigError::InvalidEndpoint { .. })
    ));
    assert!(matches!(
        b.clone()
            .with_endpoint("ftp://collector:4317")
            .build_log_exporter(),
        Err(OtlpConfigError::InvalidEndpoint { .. })
    ));
    assert!(matches!(
        b.clone()
            .with_header("bad header", "v")
            .build_span_exporter(),
        Err(OtlpConfigError::InvalidHeader(_))
    ));
    assert!(matches!(
        b.clone()
            .with_header("x-ok", "line\nbreak")
            .build_span_exporter(),
        Err(OtlpConfigError::InvalidHeader(_))
    ));
    assert!(matches!(
        b.with_timeout(Duration::ZERO).build_span_exporter(),
        Err(OtlpConfigError::InvalidSetting(_))
    ));
}

#[test]
fn log_records_arrive_over_both_protocols() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let receiver = receiver(ReceiverConfig::default());
        let exporter = builder(&receiver, protocol)
            .with_compression(Compression::Gzip)
            .build_log_exporter()
            .unwrap();
        let stats = exporter.stats_reader();
        let provider = SdkLoggerProvider::builder()
            .with_resource(resource())
            .with_log_processor(BatchLogProcessor::builder(exporter).build().unwrap())
            .build();
        let logger = provider.logger("test");
        for i in 0..900 {
            let mut record = logger.create_log_record();
            record.set_body(format!("line {i}").into());
            record.set_severity_number(Severity::Info);
            record.add_attribute("i", i as i64);
            logger.emit(record);
        }
        provider.shutdown().unwrap();
        let received = receiver.stop();
        assert_eq!(received.log_records, 900, "{protocol:?}");
        assert_eq!(
            received.service_names.get("exporter-test"),
            Some(&900),
            "{protocol:?}"
        );
        assert_eq!(stats.stats().failed_exports, 0);
    }
}

#[test]
fn a_request_unanswered_at_the_timeout_is_in_doubt_not_failed() {
    // The receiver counts the request, then takes longer to answer than
    // the exporter waits: the export timed out, yet the data arrived.
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let receiver = receiver(ReceiverConfig {
            latency: Duration::from_secs(3),
            ..ReceiverConfig::default()
        });
        let exporter = builder(&receiver, protocol)
            .with_timeout(Duration::from_millis(300))
            .build_span_exporter()
            .unwrap();
        let stats = exporter.stats_reader();
        let error = block_on(exporter.export(one_span_batch())).unwrap_err();
        assert!(
            matches!(error, OTelSdkError::Timeout(_)),
            "{protocol:?}: {error:?}"
        );
        let sent = stats.stats();
        assert_eq!(sent.in_doubt_exports, 1, "{protocol:?}: {sent:?}");
        assert_eq!(sent.failed_exports, 0, "{protocol:?}: {sent:?}");
        assert_eq!(receiver.stop().spans, 1, "{protocol:?}");
    }
}

#[test]
fn behind_our_processor_a_timed_out_export_is_counted_in_doubt() {
    let receiver = receiver(ReceiverConfig {
        latency: Duration::from_secs(3),
        ..ReceiverConfig::default()
    });
    let exporter = builder(&receiver, Protocol::Grpc)
        .with_timeout(Duration::from_millis(300))
        .build_span_exporter()
        .unwrap();
    let processor = BatchSpanProcessor::builder(exporter).build().unwrap();
    let stats = processor.stats_reader();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    let tracer = provider.tracer("test");
    for i in 0..10 {
        tracer.start(format!("span {i}")).end();
    }
    assert!(provider.force_flush().is_err(), "the export timed out");
    provider.shutdown().unwrap();
    let stats = stats.stats();
    assert_eq!(stats.in_doubt, 10, "{stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(
        stats.emitted,
        stats.exported + stats.dropped + stats.in_doubt
    );
    assert_eq!(receiver.stop().spans, 10);
}
