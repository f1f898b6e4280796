//! The `OTEL_EXPORTER_OTLP_*` and `OTEL_SERVICE_NAME` variables reach the
//! wire: endpoint, protocol, headers, compression and service name, for
//! the general and the signal-specific names. One test in its own binary,
//! because it changes the process environment.

mod pipeline;

use otlp_receiver::{Receiver, ReceiverConfig};
use pipeline::job::JobError;

const VARS: [&str; 8] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_SERVICE_NAME",
];

fn set(vars: &[(&str, &str)]) {
    for var in VARS {
        // SAFETY: this binary's only test runs alone; no other thread reads
        // or writes the environment while it changes (each job run starts
        // its threads after this and has joined them before it returns).
        unsafe { std::env::remove_var(var) };
    }
    for (k, v) in vars {
        // SAFETY: as above.
        unsafe { std::env::set_var(k, v) };
    }
}

#[test]
fn otel_exporter_otlp_variables_are_honoured() {
    let args = "--duration 300ms --rate 5000 --delay 50ms";

    // General names: HTTP, gzip, a header, the service name.
    let receiver = Receiver::start(ReceiverConfig::default()).expect("receiver");
    set(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=blue"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_SERVICE_NAME", "env-checkout"),
    ]);
    let outcome = pipeline::run(args);
    let stats = receiver.stop();
    let r = &outcome.runs[0];
    assert!(
        !r.embedded,
        "an endpoint variable means no embedded receiver"
    );
    assert!(outcome.conserved() && outcome.exit_code() == 0, "{outcome}");
    assert_eq!(stats.spans, r.exported);
    assert!(
        stats.http_requests > 0 && stats.grpc_requests == 0,
        "{stats:?}"
    );
    assert_eq!(stats.gzip_requests, stats.http_requests);
    assert_eq!(
        stats.custom_headers.get("x-tenant: blue"),
        Some(&stats.http_requests)
    );
    assert_eq!(stats.service_names.get("env-checkout"), Some(&stats.spans));

    // Signal-specific names win: gRPC to the traces endpoint.
    let receiver = Receiver::start(ReceiverConfig::default()).expect("receiver");
    set(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=green"),
    ]);
    let outcome = pipeline::run(args);
    let stats = receiver.stop();
    assert!(outcome.conserved() && outcome.exit_code() == 0, "{outcome}");
    assert_eq!(stats.spans, outcome.runs[0].exported);
    assert!(
        stats.grpc_requests > 0 && stats.http_requests == 0,
        "{stats:?}"
    );
    assert_eq!(
        stats.custom_headers.get("x-tenant: green"),
        Some(&stats.grpc_requests)
    );
    assert_eq!(stats.service_names.get("otlp-pipeline"), Some(&stats.spans));

    // A protocol the variables name but nobody speaks: a usage error.
    set(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")]);
    match pipeline::job::run(&pipeline::options(args)) {
        Err(JobError::Usage(message)) => {
            assert!(message.contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{message}")
        }
        other => panic!("expected a usage error, got {other:?}"),
    }
    set(&[]);
}
