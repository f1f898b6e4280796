#![cfg(feature = "otlp")]
//! The `OTEL_EXPORTER_OTLP_*` variables, in their own test binary: the
//! environment is process-wide, so the cases run one after the other in a
//! single test.

use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use otlp_receiver::{Receiver, ReceiverConfig};
use otlp_sdk::otlp::{
    OtlpConfigError, OtlpExporterBuilder, OtlpLogExporter, OtlpSpanExporter, Protocol,
};

const VARS: [&str; 12] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
];

fn set(vars: &[(&str, &str)]) {
    for var in VARS {
        // SAFETY: this test binary has one test, and only its thread reads
        // the environment (exporters resolve it in `build`, on this
        // thread); the other threads alive here (the receiver's runtime,
        // exporters' I/O threads, processor loops) never call getenv.
        unsafe { std::env::remove_var(var) };
    }
    for (var, value) in vars {
        // SAFETY: as above.
        unsafe { std::env::set_var(var, value) };
    }
}

fn send_logs(exporter: OtlpLogExporter, n: usize) {
    let provider = SdkLoggerProvider::builder()
        .with_log_processor(otlp_sdk::BatchLogProcessor::new(exporter))
        .build();
    let logger = provider.logger("env");
    for i in 0..n {
        let mut record = logger.create_log_record();
        record.set_body(format!("record {i}").into());
        logger.emit(record);
    }
    provider.shutdown().expect("exported");
}

fn send(exporter: OtlpSpanExporter, n: usize) {
    let provider = SdkTracerProvider::builder()
        .with_span_processor(otlp_sdk::BatchSpanProcessor::new(exporter))
        .build();
    let tracer = provider.tracer("env");
    for _ in 0..n {
        tracer.start("span").end();
    }
    provider.shutdown().expect("exported");
}

#[test]
fn the_environment_configures_what_code_leaves_unset() {
    let receiver = Receiver::start(ReceiverConfig::default()).unwrap();

    // General variables: HTTP, base endpoint gets /v1/traces, headers
    // (percent-decoded), gzip, timeout.
    set(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-team=a%20b,x-env=ci"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "3000"),
    ]);
    let exporter = OtlpSpanExporter::from_env().unwrap();
    assert_eq!(exporter.endpoint(), receiver.traces_url());
    send(exporter, 50);
    let stats = receiver.stats();
    assert_eq!(stats.spans, 50);
    assert_eq!(stats.http_requests, stats.gzip_requests);
    assert!(stats.http_requests >= 1);
    assert_eq!(
        stats.custom_headers.get("x-team: a b"),
        Some(&stats.http_requests)
    );

    // Signal-specific variables win over general ones, and a signal's own
    // HTTP endpoint is used as given.
    set(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://192.0.2.1:1"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-general=1"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-specific=2"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
    ]);
    let before = receiver.stats();
    send(OtlpSpanExporter::from_env().unwrap(), 40);
    let after = receiver.stats();
    assert_eq!(after.spans - before.spans, 40);
    let grpc = after.grpc_requests - before.grpc_requests;
    assert!(grpc >= 1, "sent over gRPC");
    assert_eq!(after.gzip_requests, before.gzip_requests, "not compressed");
    assert_eq!(after.custom_headers.get("x-specific: 2"), Some(&grpc));
    assert_eq!(after.custom_headers.get("x-general: 1"), None);

    // `http/json` from the general variable: OTLP/JSON to the signal path.
    set(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
    ]);
    let before = receiver.stats();
    let exporter = OtlpSpanExporter::from_env().unwrap();
    assert_eq!(exporter.endpoint(), receiver.traces_url());
    send(exporter, 30);
    let after = receiver.stats();
    assert_eq!(after.spans - before.spans, 30);
    let json = after.json_requests - before.json_requests;
    assert!(json >= 1, "sent as OTLP/JSON");
    assert_eq!(after.http_requests - before.http_requests, json);
    assert_eq!(after.gzip_requests - before.gzip_requests, json);

    // A signal's own protocol variable: logs over http/json while traces
    // stay on gRPC.
    set(&[
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
    ]);
    let before = receiver.stats();
    send(OtlpSpanExporter::from_env().unwrap(), 5);
    let logs = OtlpLogExporter::from_env().unwrap();
    assert_eq!(logs.endpoint(), receiver.logs_url());
    send_logs(logs, 7);
    let after = receiver.stats();
    assert_eq!(after.spans - before.spans, 5);
    assert_eq!(after.log_records - before.log_records, 7);
    assert_eq!(
        after.json_requests - before.json_requests,
        after.http_requests - before.http_requests,
        "the logs, all as JSON"
    );
    assert!(after.grpc_requests > before.grpc_requests, "the spans");

    // Code beats the environment.
    set(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://192.0.2.1:1")]);
    let exporter = OtlpExporterBuilder::new()
        .with_protocol(Protocol::Grpc)
        .with_endpoint(receiver.endpoint())
        .build_span_exporter()
        .unwrap();
    assert_eq!(exporter.endpoint(), format!("{}/", receiver.endpoint()));
    drop(exporter);

    // Bad values: an unsupported protocol or a malformed endpoint is an
    // error; a malformed timeout or compression is ignored with a warning.
    set(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/xml")]);
    assert!(matches!(
        OtlpSpanExporter::from_env(),
        Err(OtlpConfigError::UnsupportedProtocol(p)) if p == "http/xml"
    ));
    // (`collector:4317` is a valid gRPC endpoint: TLS unless insecure.)
    set(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318"),
    ]);
    assert!(matches!(
        OtlpSpanExporter::from_env(),
        Err(OtlpConfigError::InvalidEndpoint { .. })
    ));
    set(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
    ]);
    let before = receiver.stats().spans;
    send(OtlpSpanExporter::from_env().unwrap(), 10);
    assert_eq!(receiver.stats().spans - before, 10);

    // The logs exporter reads the LOGS_ variables, not the TRACES_ ones.
    set(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://192.0.2.1:1"),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", &receiver.endpoint()),
    ]);
    let logs = OtlpExporterBuilder::new().build_log_exporter().unwrap();
    assert_eq!(logs.endpoint(), format!("{}/", receiver.endpoint()));
    set(&[]);
    receiver.stop();
}
