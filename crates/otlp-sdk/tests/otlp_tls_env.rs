#![cfg(feature = "otlp")]
//! The TLS variables (`OTEL_EXPORTER_OTLP_{,TRACES_,LOGS_}{CERTIFICATE,
//! CLIENT_CERTIFICATE,CLIENT_KEY,INSECURE}`) and `COMPRESSION=zstd`, in
//! their own test binary: the environment is process-wide, so the cases run
//! one after the other in a single test.

mod pki;

use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter as _};
use otlp_receiver::{Receiver, ReceiverConfig};
use otlp_sdk::otlp::{
    OtlpConfigError, OtlpLogExporter, OtlpSpanExporter, Protocol, TlsConfig, TlsFailure,
};
use pki::{Ca, TempDir, receiver_tls};

const VARS: [&str; 14] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_INSECURE",
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
    "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
    "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY",
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

/// One export of one span.
fn export_span(exporter: &OtlpSpanExporter) -> OTelSdkResult {
    let memory = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(memory.clone())
        .build();
    drop(provider.tracer("env").start("span"));
    let spans = memory.get_finished_spans().unwrap();
    provider.shutdown().unwrap();
    block_on(exporter.export(spans))
}

/// One log record through a provider (which flushes at shutdown).
fn send_log(exporter: OtlpLogExporter) -> OTelSdkResult {
    let provider = SdkLoggerProvider::builder()
        .with_batch_exporter(exporter)
        .build();
    let logger = provider.logger("env");
    let mut record = logger.create_log_record();
    record.set_body("from the environment".into());
    logger.emit(record);
    provider.shutdown()
}

#[test]
fn the_tls_variables_configure_what_code_leaves_unset() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let other_ca = Ca::new("another CA");
    let client = client_ca.client();
    let dir = TempDir::new("tls-env");
    let ca_file = dir.write("ca.pem", &server_ca.pem);
    let other_ca_file = dir.write("other-ca.pem", &other_ca.pem);
    let cert_file = dir.write("client.pem", &client.cert);
    let key_file = dir.write("client.key", &client.key);
    let missing = dir.0.join("missing.key").display().to_string();
    let mtls = Receiver::start(ReceiverConfig {
        tls: Some(receiver_tls(&server_ca.server(), Some(&client_ca))),
        ..ReceiverConfig::default()
    })
    .unwrap();
    let endpoint = mtls.endpoint();

    // The general variables: CA, client certificate and key, for both
    // signals, over both protocols; zstd from COMPRESSION.
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        set(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.as_str()),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca_file),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert_file),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &key_file),
        ]);
        let spans = OtlpSpanExporter::from_env().unwrap();
        export_span(&spans).unwrap_or_else(|e| panic!("{protocol:?}: {e}"));
        send_log(OtlpLogExporter::from_env().unwrap())
            .unwrap_or_else(|e| panic!("{protocol:?}: {e}"));
    }
    let stats = mtls.stats();
    assert_eq!((stats.spans, stats.log_records), (2, 2));
    assert_eq!(stats.zstd_requests, stats.requests());

    // A signal's own variable wins over the general one: traces trust
    // another CA and fail; logs still use the general one.
    set(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca_file),
        ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", &other_ca_file),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert_file),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &key_file),
    ]);
    let spans = OtlpSpanExporter::from_env().unwrap();
    assert!(export_span(&spans).is_err());
    assert_eq!(
        spans.stats_reader().last_tls_error().map(|e| e.failure),
        Some(TlsFailure::UnknownIssuer)
    );
    send_log(OtlpLogExporter::from_env().unwrap()).expect("logs use the general CA");

    // Code wins over both: the CA set in code, the client identity still
    // from the variables.
    let spans = OtlpSpanExporter::builder()
        .with_tls(TlsConfig::new().with_ca_certificate_pem(server_ca.pem.clone()))
        .build_span_exporter()
        .unwrap();
    export_span(&spans).expect("the CA from code");

    // Without the client key the server refuses the handshake; a signal's
    // own key variable fills the gap for that signal only.
    set(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca_file),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert_file),
        ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", &key_file),
    ]);
    match OtlpSpanExporter::from_env() {
        Err(OtlpConfigError::Certificate { setting, path, .. }) => {
            assert_eq!(setting, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE");
            assert_eq!(path.as_deref(), Some(cert_file.as_str()));
        }
        other => panic!("a certificate without its key: {other:?}"),
    }
    send_log(OtlpLogExporter::from_env().unwrap()).expect("the logs' own key");

    // An unreadable file is named with its variable.
    set(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert_file),
        ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", &missing),
    ]);
    match OtlpSpanExporter::from_env() {
        Err(OtlpConfigError::Certificate { setting, path, .. }) => {
            assert_eq!(setting, "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY");
            assert_eq!(path.as_deref(), Some(missing.as_str()));
        }
        other => panic!("a missing key file: {other:?}"),
    }
    let stats = mtls.stop();
    assert_eq!((stats.spans, stats.log_records), (3, 4));

    // INSECURE decides for a gRPC endpoint without a scheme; the signal's
    // variable first.
    let plain = Receiver::start(ReceiverConfig::default()).unwrap();
    let bare = plain.addr().to_string();
    set(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &bare),
        ("OTEL_EXPORTER_OTLP_INSECURE", "false"),
        ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "true"),
    ]);
    let spans = OtlpSpanExporter::from_env().unwrap();
    assert_eq!(spans.endpoint(), format!("http://{bare}/"));
    export_span(&spans).expect("plain text");
    let logs = OtlpLogExporter::from_env().unwrap();
    assert_eq!(logs.endpoint(), format!("https://{bare}/"));
    set(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &bare)]);
    let spans = OtlpSpanExporter::from_env().unwrap();
    assert_eq!(
        spans.endpoint(),
        format!("https://{bare}/"),
        "TLS by default"
    );
    assert_eq!(plain.stop().spans, 1);
    set(&[]);
}
