#![cfg(feature = "otlp")]
//! The exporters over TLS and mutual TLS, against the embedded receiver
//! serving certificates made here (rcgen), over real loopback sockets: both
//! protocols, every TLS failure (typed, not retried, ending the export
//! before its timeout), unusable certificate files, a certificate rotated
//! between two exporters, and zstd.

mod pki;

use std::time::Duration;

use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter as _};
use otlp_receiver::{Receiver, ReceiverConfig, ReceiverTls};
use otlp_sdk::otlp::{
    Compression, OtlpConfigError, OtlpExporterBuilder, OtlpSpanExporter, Protocol, TlsConfig,
    TlsFailure,
};
use pki::{Ca, TempDir, receiver_tls};

const PROTOCOLS: [Protocol; 2] = [Protocol::Grpc, Protocol::HttpProtobuf];

/// Far longer than any TLS failure takes: an export that fails says why,
/// not "timed out".
const TIMEOUT: Duration = Duration::from_secs(20);

fn receiver(tls: ReceiverTls) -> Receiver {
    Receiver::start(ReceiverConfig {
        tls: Some(tls),
        ..ReceiverConfig::default()
    })
    .expect("receiver starts on a loopback port")
}

fn builder(receiver: &Receiver, protocol: Protocol, tls: TlsConfig) -> OtlpExporterBuilder {
    OtlpExporterBuilder::new()
        .without_env()
        .with_protocol(protocol)
        .with_endpoint(receiver.endpoint())
        .with_timeout(TIMEOUT)
        .with_tls(tls)
}

fn trusting(ca: &Ca) -> TlsConfig {
    TlsConfig::new().with_ca_certificate_pem(ca.pem.clone())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn batch(n: usize) -> Vec<SpanData> {
    let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("tls");
    for i in 0..n {
        tracer.start(format!("span {i}")).end();
    }
    let spans = exporter.get_finished_spans().unwrap();
    provider.shutdown().unwrap();
    spans
}

/// One export of `n` spans, straight to the exporter.
fn export(exporter: &OtlpSpanExporter, n: usize) -> Result<(), OTelSdkError> {
    block_on(exporter.export(batch(n)))
}

#[test]
fn spans_and_logs_cross_tls_over_both_protocols() {
    let ca = Ca::new("test CA");
    let receiver = receiver(receiver_tls(&ca.server(), None));
    assert!(receiver.endpoint().starts_with("https://"));
    for protocol in PROTOCOLS {
        let exporter = builder(&receiver, protocol, trusting(&ca))
            .build_span_exporter()
            .unwrap();
        assert!(exporter.endpoint().starts_with("https://"));
        export(&exporter, 3).unwrap_or_else(|e| panic!("{protocol:?}: {e}"));
        // The connection is kept: a second export reuses it.
        export(&exporter, 2).unwrap_or_else(|e| panic!("{protocol:?}: {e}"));
        let stats = exporter.stats_reader();
        assert_eq!((stats.stats().requests, stats.stats().retries), (2, 0));
        assert_eq!(stats.last_tls_error(), None);

        let logs = builder(&receiver, protocol, trusting(&ca))
            .build_log_exporter()
            .unwrap();
        let provider = SdkLoggerProvider::builder()
            .with_batch_exporter(logs)
            .build();
        let logger = provider.logger("tls");
        let mut record = logger.create_log_record();
        record.set_body("over TLS".into());
        logger.emit(record);
        provider.shutdown().expect("log exported");
    }
    let stats = receiver.stop();
    assert_eq!(stats.spans, 10);
    assert_eq!(stats.log_records, 2);
    assert_eq!((stats.grpc_requests, stats.http_requests), (3, 3));
}

#[test]
fn mutual_tls_over_both_protocols() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let receiver = receiver(receiver_tls(&server_ca.server(), Some(&client_ca)));
    let client = client_ca.client();
    let dir = TempDir::new("mtls");
    let (cert, key) = (
        dir.write("client.pem", &client.cert),
        dir.write("client.key", &client.key),
    );
    for protocol in PROTOCOLS {
        // From memory and from files alike.
        for tls in [
            trusting(&server_ca).with_client_identity_pem(client.cert.clone(), client.key.clone()),
            trusting(&server_ca).with_client_identity_files(&cert, &key),
        ] {
            let exporter = builder(&receiver, protocol, tls)
                .build_span_exporter()
                .unwrap();
            export(&exporter, 4).unwrap_or_else(|e| panic!("{protocol:?}: {e}"));
        }
    }
    assert_eq!(receiver.stop().spans, 16);
}

/// One TLS failure: what the receiver serves, what the exporter is told,
/// and the failure it must report.
struct Case {
    name: &'static str,
    server: ReceiverTls,
    client: TlsConfig,
    expected: fn(&TlsFailure) -> bool,
}

#[test]
fn tls_failures_are_typed_not_retried_and_end_the_export() {
    let ca = Ca::new("test CA");
    let other = Ca::new("another CA");
    let client_ca = Ca::new("client CA");
    let cases = [
        Case {
            name: "unknown CA (the default trust store)",
            server: receiver_tls(&ca.server(), None),
            client: TlsConfig::new(),
            expected: |f| *f == TlsFailure::UnknownIssuer,
        },
        Case {
            name: "unknown CA (another CA configured)",
            server: receiver_tls(&ca.server(), None),
            client: trusting(&other),
            expected: |f| *f == TlsFailure::UnknownIssuer,
        },
        Case {
            name: "name mismatch",
            server: receiver_tls(&ca.server_for("collector.example"), None),
            client: trusting(&ca),
            expected: |f| matches!(f, TlsFailure::NameMismatch { server_name } if server_name == "127.0.0.1"),
        },
        Case {
            name: "name mismatch (server name set)",
            server: receiver_tls(&ca.server(), None),
            client: trusting(&ca).with_server_name("collector.example"),
            expected: |f| matches!(f, TlsFailure::NameMismatch { server_name } if server_name == "collector.example"),
        },
        Case {
            name: "expired certificate",
            server: receiver_tls(&ca.expired_server(), None),
            client: trusting(&ca),
            expected: |f| *f == TlsFailure::Expired,
        },
        Case {
            name: "client certificate required",
            server: receiver_tls(&ca.server(), Some(&client_ca)),
            client: trusting(&ca),
            expected: |f| *f == TlsFailure::ClientCertificateRequired,
        },
        Case {
            name: "client certificate from a CA the server does not trust",
            server: receiver_tls(&ca.server(), Some(&client_ca)),
            client: {
                let stranger = other.client();
                trusting(&ca).with_client_identity_pem(stranger.cert, stranger.key)
            },
            expected: |f| matches!(f, TlsFailure::ClientCertificateRejected(_)),
        },
    ];
    for case in cases {
        let receiver = receiver(case.server);
        for protocol in PROTOCOLS {
            let what = format!("{} over {protocol:?}", case.name);
            let exporter = builder(&receiver, protocol, case.client.clone())
                .build_span_exporter()
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let endpoint = exporter.endpoint().to_owned();
            let reader = exporter.stats_reader();
            let error = export(&exporter, 1).expect_err(&what);
            let OTelSdkError::InternalFailure(message) = &error else {
                panic!("{what}: {error:?}");
            };
            assert!(message.contains(&endpoint), "{what}: {message}");
            assert!(message.contains("not retried"), "{what}: {message}");
            assert!(!message.contains("timed out"), "{what}: {message}");
            let tls = reader.last_tls_error().unwrap_or_else(|| panic!("{what}"));
            assert_eq!(tls.endpoint, endpoint, "{what}");
            assert!((case.expected)(&tls.failure), "{what}: {:?}", tls.failure);
            let stats = reader.stats();
            assert_eq!(
                (stats.requests, stats.retries, stats.failed_exports),
                (1, 0, 1),
                "{what}"
            );
        }
        assert_eq!(receiver.stop().requests(), 0, "{}", case.name);
    }
}

#[test]
fn unusable_certificate_files_fail_the_build_naming_method_and_path() {
    let ca = Ca::new("test CA");
    let client = ca.client();
    let dir = TempDir::new("bad-pem");
    let missing = dir.0.join("missing.pem").display().to_string();
    let junk = dir.write("junk.pem", "this is not PEM\n");
    let key_only = dir.write("key.pem", &client.key);
    let cert_only = dir.write("cert.pem", &client.cert);
    let other_key = dir.write("other.key", &ca.client().key);
    let build = |tls: TlsConfig| {
        OtlpExporterBuilder::new()
            .without_env()
            .with_endpoint("https://127.0.0.1:4317")
            .with_tls(tls)
            .build_span_exporter()
    };
    let cases = [
        (
            TlsConfig::new().with_ca_certificate_file(&missing),
            "TlsConfig::with_ca_certificate_file",
            &missing,
        ),
        (
            TlsConfig::new().with_ca_certificate_file(&junk),
            "TlsConfig::with_ca_certificate_file",
            &junk,
        ),
        (
            // A key where the CA certificate should be.
            TlsConfig::new().with_ca_certificate_file(&key_only),
            "TlsConfig::with_ca_certificate_file",
            &key_only,
        ),
        (
            TlsConfig::new().with_client_identity_files(&cert_only, &junk),
            "TlsConfig::with_client_identity_files",
            &junk,
        ),
        (
            TlsConfig::new().with_client_identity_files(&cert_only, &other_key),
            "TlsConfig::with_client_identity_files",
            &other_key,
        ),
    ];
    for (tls, method, path) in cases {
        match build(tls) {
            Err(OtlpConfigError::Certificate {
                setting,
                path: Some(p),
                reason,
            }) => {
                assert_eq!(setting, method, "{path}: {reason}");
                assert_eq!(&p, path, "{reason}");
            }
            other => panic!("{path}: {other:?}"),
        }
    }
    // In memory: named by the method, no path.
    assert!(matches!(
        build(TlsConfig::new().with_ca_certificate_pem("junk")),
        Err(OtlpConfigError::Certificate { setting, path: None, .. })
            if setting == "TlsConfig::with_ca_certificate_pem"
    ));
    assert!(matches!(
        build(TlsConfig::new().with_server_name("not a name!")),
        Err(OtlpConfigError::Tls(_))
    ));
    // TLS settings on a plain endpoint are not read: nothing to fail.
    assert!(
        OtlpExporterBuilder::new()
            .without_env()
            .with_endpoint("http://127.0.0.1:4317")
            .with_tls(TlsConfig::new().with_ca_certificate_file(&missing))
            .build_span_exporter()
            .is_ok()
    );
}

#[test]
fn a_certificate_rotated_between_two_exporters() {
    // The CA file an operator rotates: the first exporter reads the old
    // CA when built, the second the new one.
    let old_ca = Ca::new("old CA");
    let new_ca = Ca::new("new CA");
    let dir = TempDir::new("rotation");
    let ca_file = dir.write("ca.pem", &old_ca.pem);
    let tls = || TlsConfig::new().with_ca_certificate_file(&ca_file);

    let before = receiver(receiver_tls(&old_ca.server(), None));
    let addr = before.addr();
    let first: Vec<_> = PROTOCOLS
        .map(|p| builder(&before, p, tls()).build_span_exporter().unwrap())
        .into();
    for exporter in &first {
        export(exporter, 1).expect("the old certificate is trusted");
    }
    assert_eq!(before.stop().spans, 2);

    // The server comes back on the same address with a certificate from
    // the new CA, and the file is rotated.
    dir.write("ca.pem", &new_ca.pem);
    let after = Receiver::start(ReceiverConfig {
        addr,
        tls: Some(receiver_tls(&new_ca.server(), None)),
        ..ReceiverConfig::default()
    })
    .expect("the same port again");
    let second: Vec<_> = PROTOCOLS
        .map(|p| builder(&after, p, tls()).build_span_exporter().unwrap())
        .into();
    for (old, new) in first.iter().zip(&second) {
        export(new, 1).expect("the new certificate is trusted");
        assert!(
            export(old, 1).is_err(),
            "the old exporter trusts the old CA only"
        );
        assert_eq!(
            old.stats_reader().last_tls_error().map(|e| e.failure),
            Some(TlsFailure::UnknownIssuer)
        );
    }
    assert_eq!(after.stop().spans, 2);
}

#[test]
fn zstd_over_both_protocols_plain_and_tls() {
    let ca = Ca::new("test CA");
    let plain = Receiver::start(ReceiverConfig::default()).unwrap();
    let secure = receiver(receiver_tls(&ca.server(), None));
    for receiver in [&plain, &secure] {
        for protocol in PROTOCOLS {
            let exporter = builder(receiver, protocol, trusting(&ca))
                .with_compression(Compression::Zstd)
                .build_span_exporter()
                .unwrap();
            export(&exporter, 100).unwrap_or_else(|e| panic!("{protocol:?}: {e}"));
        }
        let stats = receiver.stats();
        assert_eq!(stats.spans, 200);
        assert_eq!(stats.zstd_requests, 2);
        assert!(stats.wire_bytes < stats.message_bytes, "{stats:?}");
    }
}

#[test]
fn a_server_that_never_answers_the_handshake_ends_the_export_at_its_timeout() {
    // Connections complete in the kernel's backlog; nothing ever answers
    // the ClientHello.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("https://{}", silent.local_addr().expect("addr"));
    let ca = Ca::new("test CA");
    for protocol in PROTOCOLS {
        let exporter = OtlpExporterBuilder::new()
            .without_env()
            .with_protocol(protocol)
            .with_endpoint(endpoint.clone())
            .with_timeout(Duration::from_millis(300))
            .with_tls(trusting(&ca))
            .build_span_exporter()
            .unwrap();
        // Ends (the test does not hang) with the time running out: the
        // export's own timeout, or the connect timeout (the same length)
        // that tonic reports as an elapsed deadline.
        let error = export(&exporter, 1).expect_err("no handshake").to_string();
        assert!(
            error.contains("timed out") || error.contains("deadline has elapsed"),
            "{protocol:?}: {error}"
        );
        assert_eq!(exporter.stats_reader().last_tls_error(), None);
    }
}
