#![cfg(feature = "otlp")]
//! The metric exporter's variables (`OTEL_EXPORTER_OTLP_METRICS_*` before
//! `OTEL_EXPORTER_OTLP_*`, TLS ones included, and
//! `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`), in their own test
//! binary: the environment is process-wide, so the cases run one after the
//! other in a single test.

mod pki;

use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter as _;
use opentelemetry_sdk::metrics::{
    InMemoryMetricExporter, PeriodicReader, SdkMeterProvider, Temporality,
};
use otlp_receiver::{Receiver, ReceiverConfig};
use otlp_sdk::otlp::{OtlpExporterBuilder, OtlpMetricExporter, OtlpSpanExporter, TlsFailure};
use pki::{Ca, TempDir, receiver_tls};

const VARS: [&str; 17] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_INSECURE",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
    "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_METRICS_INSECURE",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];

fn set(vars: &[(&str, &str)]) {
    for var in VARS {
        // SAFETY: this test binary has one test, and only its thread reads
        // the environment (exporters resolve it when built, on this
        // thread); the other threads alive here (the receivers' runtimes,
        // the exporters' I/O threads) never call getenv.
        unsafe { std::env::remove_var(var) };
    }
    for (var, value) in vars {
        // SAFETY: as above.
        unsafe { std::env::set_var(var, value) };
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// One export of one collection holding one data point.
fn export(exporter: &OtlpMetricExporter) -> OTelSdkResult {
    let memory = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(memory.clone()).build())
        .build();
    provider
        .meter("env")
        .u64_counter("c")
        .build()
        .add(1, &[KeyValue::new("k", "v")]);
    provider.shutdown().unwrap();
    let collection = memory.get_finished_metrics().unwrap().remove(0);
    block_on(exporter.export(&collection))
}

fn temporality() -> Temporality {
    OtlpMetricExporter::from_env().unwrap().temporality()
}

#[test]
fn the_metrics_variables_configure_what_code_leaves_unset() {
    let receiver = Receiver::start(ReceiverConfig::default()).unwrap();

    // The general variables: HTTP, a base endpoint gets /v1/metrics,
    // headers, gzip.
    set(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-team=general"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
    ]);
    let exporter = OtlpMetricExporter::from_env().unwrap();
    assert_eq!(exporter.endpoint(), receiver.metrics_url());
    export(&exporter).expect("general variables");
    let stats = receiver.stats();
    assert_eq!((stats.data_points, stats.http_requests), (1, 1));
    assert_eq!(stats.gzip_requests, 1);
    assert_eq!(stats.custom_headers.get("x-team: general"), Some(&1));

    // The signal's own variables win: its endpoint is used as given, its
    // protocol, headers and compression replace the general ones; the
    // traces' variables do not touch metrics.
    set(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-team=general"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            &receiver.metrics_url(),
        ),
        ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-team=metrics"),
        ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "zstd"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:10"),
    ]);
    let exporter = OtlpMetricExporter::from_env().unwrap();
    assert_eq!(exporter.endpoint(), receiver.metrics_url());
    export(&exporter).expect("the metrics' own variables");
    let stats = receiver.stats();
    assert_eq!((stats.data_points, stats.http_requests), (2, 2));
    assert_eq!(stats.zstd_requests, 1);
    assert_eq!(stats.custom_headers.get("x-team: metrics"), Some(&1));

    // Temporality preference: spec values in any case; anything else is
    // ignored (cumulative); code wins; without_env ignores it.
    for (value, expected) in [
        ("delta", Temporality::Delta),
        ("LowMemory", Temporality::LowMemory),
        ("CUMULATIVE", Temporality::Cumulative),
        ("sometimes", Temporality::Cumulative),
    ] {
        set(&[("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", value)]);
        assert_eq!(temporality(), expected, "{value}");
    }
    set(&[("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")]);
    let from_code = OtlpExporterBuilder::new()
        .with_temporality(Temporality::Cumulative)
        .build_metric_exporter()
        .unwrap();
    assert_eq!(from_code.temporality(), Temporality::Cumulative);
    let no_env = OtlpExporterBuilder::new()
        .without_env()
        .build_metric_exporter()
        .unwrap();
    assert_eq!(no_env.temporality(), Temporality::Cumulative);

    // The delta preference from the environment reaches the SDK: a second
    // collection without new measurements sends no data point again.
    set(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta"),
    ]);
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(OtlpMetricExporter::from_env().unwrap()).build())
        .build();
    provider.meter("env").u64_counter("c").build().add(5, &[]);
    provider.force_flush().unwrap();
    provider.force_flush().unwrap();
    provider.shutdown().unwrap();
    assert_eq!(receiver.stop().data_points, 3);

    // TLS: the metrics' own CA, client certificate and key win over the
    // general CA (another CA, with which spans fail).
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let other_ca = Ca::new("another CA");
    let client = client_ca.client();
    let dir = TempDir::new("metrics-tls-env");
    let ca_file = dir.write("ca.pem", &server_ca.pem);
    let other_ca_file = dir.write("other-ca.pem", &other_ca.pem);
    let cert_file = dir.write("client.pem", &client.cert);
    let key_file = dir.write("client.key", &client.key);
    let mtls = Receiver::start(ReceiverConfig {
        tls: Some(receiver_tls(&server_ca.server(), Some(&client_ca))),
        ..ReceiverConfig::default()
    })
    .unwrap();
    set(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &mtls.endpoint()),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", &other_ca_file),
        ("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", &ca_file),
        ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE", &cert_file),
        ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", &key_file),
    ]);
    export(&OtlpMetricExporter::from_env().unwrap()).expect("mutual TLS from METRICS_ variables");
    let spans = OtlpSpanExporter::from_env().unwrap();
    let memory = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    {
        use opentelemetry::trace::{Tracer as _, TracerProvider as _};
        use opentelemetry_sdk::trace::SpanExporter as _;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(memory.clone())
            .build();
        drop(provider.tracer("env").start("span"));
        provider.shutdown().unwrap();
        assert!(block_on(spans.export(memory.get_finished_spans().unwrap())).is_err());
    }
    assert_eq!(
        spans.stats_reader().last_tls_error().map(|e| e.failure),
        Some(TlsFailure::UnknownIssuer)
    );
    // Without the metrics' client identity the server refuses the
    // handshake.
    set(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &mtls.endpoint()),
        ("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", &ca_file),
    ]);
    let exporter = OtlpMetricExporter::from_env().unwrap();
    assert!(export(&exporter).is_err());
    assert!(exporter.stats_reader().last_tls_error().is_some());
    assert_eq!(mtls.stop().data_points, 1);

    // METRICS_INSECURE decides for a gRPC endpoint without a scheme.
    let plain = Receiver::start(ReceiverConfig::default()).unwrap();
    let bare = plain.addr().to_string();
    set(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &bare),
        ("OTEL_EXPORTER_OTLP_INSECURE", "false"),
        ("OTEL_EXPORTER_OTLP_METRICS_INSECURE", "true"),
    ]);
    let exporter = OtlpMetricExporter::from_env().unwrap();
    assert_eq!(exporter.endpoint(), format!("http://{bare}/"));
    export(&exporter).expect("plain text");
    assert_eq!(plain.stop().data_points, 1);
    set(&[]);
}
