//! The main job with `--tls`: the embedded receiver (or, with
//! `--via-agent`, the agent's listener) serves TLS with a certificate made
//! at start, and the exporter trusts the generated CA through
//! `otlp_sdk::otlp::TlsConfig`.

mod pipeline;

use pipeline::report::Outcome;
use pipeline::{job, run};

/// Slow enough for a debug build on a loaded machine to keep up.
const SHORT: &str = "--tls --duration 400ms --rate 5000 --delay 50ms";

fn assert_clean_over_tls(outcome: &Outcome) {
    assert!(outcome.conserved(), "{outcome}");
    assert_eq!(outcome.problems(), Vec::<String>::new(), "{outcome}");
    assert_eq!(outcome.exit_code(), 0, "{outcome}");
    let r = &outcome.runs[0];
    assert!(r.exported > 0, "{outcome}");
    assert_eq!(r.received, Some(r.exported), "{outcome}");
    assert!(r.endpoint.starts_with("https://127.0.0.1:"), "{outcome}");
    assert!(r.tls.is_some(), "{outcome}");
    assert!(outcome.to_string().contains("TLS"), "{outcome}");
    assert!(outcome.to_json().contains("\"tls\":\""));
}

#[test]
fn spans_over_grpc_with_tls() {
    assert_clean_over_tls(&run(SHORT));
}

#[test]
fn spans_over_http_protobuf_with_tls() {
    let outcome = run(&format!("{SHORT} --protocol http/protobuf"));
    assert_clean_over_tls(&outcome);
    assert!(outcome.runs[0].endpoint.ends_with("/v1/traces"));
}

#[test]
fn logs_and_metrics_with_tls() {
    assert_clean_over_tls(&run(&format!(
        "{SHORT} --signal logs --protocol http/protobuf --compression zstd"
    )));
    assert_clean_over_tls(&run(
        "--tls --signal metrics --duration 300ms --rate 5000 --metrics-interval 100ms",
    ));
}

#[test]
fn the_agent_serves_tls_and_forwards_in_plain_text() {
    let outcome = run(&format!("{SHORT} --via-agent"));
    assert_clean_over_tls(&outcome);
    let r = &outcome.runs[0];
    let agent = r.agent.as_ref().expect("the agent hop");
    assert!(agent.endpoint.starts_with("https://"), "{outcome}");
    assert!(agent.upstream.starts_with("http://"), "{outcome}");
    assert!(r.tls.as_deref().is_some_and(|t| t.contains("plain")));
}

#[test]
fn tls_flag_errors() {
    let args = |text: &str| {
        text.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        job::main(args("--tls --endpoint https://127.0.0.1:4317")),
        2
    );
    assert_eq!(job::main(args("--tls --exporter opentelemetry-otlp")), 2);
}

#[test]
fn the_generated_certificate_is_for_loopback() {
    let generated = job::generate_certificates().expect("certificates");
    assert!(generated.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(!generated.server.certificate_chain_pem.is_empty());
    assert!(generated.server.client_ca_pem.is_none());
}
