//! The main job end to end over loopback gRPC and HTTP, in process: every
//! span or log record emitted is received or counted as dropped,
//! `service.name` arrives, refusals are retried, a dead endpoint fails
//! cleanly and names itself, and both processors run side by side.

mod pipeline;

use otlp_receiver::{Receiver, ReceiverConfig};
use pipeline::{closed_port, job, run};

/// Slow enough for a debug build on a loaded machine to keep up.
const SHORT: &str = "--duration 400ms --rate 5000 --delay 50ms";

fn assert_clean(outcome: &pipeline::report::Outcome) {
    assert!(outcome.conserved(), "{outcome}");
    assert_eq!(outcome.problems(), Vec::<String>::new(), "{outcome}");
    assert_eq!(outcome.exit_code(), 0);
    for r in &outcome.runs {
        assert!(r.exported > 0, "{outcome}");
        assert_eq!(r.received, Some(r.exported), "{outcome}");
        assert_eq!(r.rejected, Some(0));
    }
}

#[test]
fn spans_over_grpc_are_all_received_with_service_name() {
    let outcome = run(SHORT);
    assert_clean(&outcome);
    let r = &outcome.runs[0];
    assert_eq!(r.protocol, pipeline::cli::Protocol::Grpc);
    assert!(r.embedded);
    assert_eq!(r.emitted, r.exported + r.dropped.total());
    assert_eq!(
        r.service_names.get("otlp-pipeline").copied(),
        r.received,
        "every span carries service.name"
    );
    assert!(r.latency_p99_ns.is_some() && r.requests.is_some_and(|n| n > 0));
    assert!(outcome.to_json().contains("\"conserved\":true"));
}

#[test]
fn spans_over_http_are_all_received() {
    let outcome = run(&format!("{SHORT} --protocol http/protobuf"));
    assert_clean(&outcome);
    assert_eq!(
        outcome.runs[0].service_names.get("otlp-pipeline").copied(),
        outcome.runs[0].received
    );
}

#[test]
fn logs_over_grpc_and_http_are_all_received() {
    for (protocol, processor) in [("grpc", "ours"), ("http/protobuf", "ours"), ("grpc", "sdk")] {
        let outcome = run(&format!(
            "{SHORT} --signal logs --protocol {protocol} --processor {processor}"
        ));
        assert_clean(&outcome);
        assert_eq!(outcome.runs[0].signal, pipeline::cli::SignalKind::Logs);
        assert_eq!(
            outcome.runs[0].service_names.get("otlp-pipeline").copied(),
            outcome.runs[0].received
        );
    }
}

#[test]
fn gzip_over_http_to_an_explicit_endpoint() {
    let receiver = Receiver::start(ReceiverConfig::default()).expect("receiver");
    let outcome = run(&format!(
        "{SHORT} --protocol http/protobuf --compression gzip --endpoint {}",
        receiver.traces_url()
    ));
    let stats = receiver.stop();
    let r = &outcome.runs[0];
    assert!(!r.embedded && r.received.is_none());
    assert!(outcome.conserved() && outcome.exit_code() == 0, "{outcome}");
    assert_eq!(stats.spans, r.exported);
    assert!(stats.http_requests > 0);
    assert_eq!(
        stats.gzip_requests, stats.http_requests,
        "every request gzip"
    );
}

#[test]
fn zstd_over_both_protocols_with_both_exporters() {
    for exporter in ["ours", "opentelemetry-otlp"] {
        for protocol in ["grpc", "http/protobuf"] {
            let receiver = Receiver::start(ReceiverConfig::default()).expect("receiver");
            // opentelemetry-otlp posts to an HTTP endpoint set in code as given.
            let endpoint = match protocol {
                "grpc" => receiver.endpoint(),
                _ => receiver.traces_url(),
            };
            let outcome = run(&format!(
                "{SHORT} --exporter {exporter} --protocol {protocol} --compression zstd \
                 --endpoint {endpoint}"
            ));
            let stats = receiver.stop();
            let what = format!("{exporter} over {protocol}");
            assert!(
                outcome.conserved() && outcome.exit_code() == 0,
                "{what}: {outcome}"
            );
            assert_eq!(stats.spans, outcome.runs[0].exported, "{what}");
            assert!(stats.requests() > 0, "{what}");
            assert_eq!(stats.zstd_requests, stats.requests(), "{what}");
        }
    }
}

#[test]
fn spans_and_logs_over_http_json_arrive_as_json_with_both_exporters() {
    for exporter in ["ours", "opentelemetry-otlp"] {
        for signal in ["traces", "logs"] {
            let receiver = Receiver::start(ReceiverConfig::default()).expect("receiver");
            // opentelemetry-otlp posts to an HTTP endpoint set in code as given.
            let endpoint = match signal {
                "traces" => receiver.traces_url(),
                _ => receiver.logs_url(),
            };
            let outcome = run(&format!(
                "{SHORT} --exporter {exporter} --signal {signal} --protocol http/json \
                 --compression gzip --endpoint {endpoint}"
            ));
            let stats = receiver.stop();
            let what = format!("{exporter}, {signal}");
            assert!(
                outcome.conserved() && outcome.exit_code() == 0,
                "{what}: {outcome}"
            );
            assert_eq!(outcome.runs[0].protocol, pipeline::cli::Protocol::HttpJson);
            assert_eq!(stats.items(), outcome.runs[0].exported, "{what}");
            assert!(stats.json_requests > 0, "{what}");
            assert_eq!(stats.json_requests, stats.requests(), "{what}: all JSON");
            assert_eq!(stats.gzip_requests, stats.requests(), "{what}: all gzip");
            assert_eq!(stats.rejected(), 0, "{what}");
            assert_eq!(
                stats.service_names.get("otlp-pipeline").copied(),
                Some(stats.items()),
                "{what}"
            );
        }
    }
}

#[test]
fn the_sdk_processor_runs_the_same_pipeline() {
    for protocol in ["grpc", "http/protobuf"] {
        let outcome = run(&format!("{SHORT} --processor sdk --protocol {protocol}"));
        assert_clean(&outcome);
        assert_eq!(outcome.runs[0].processor, pipeline::cli::ProcessorKind::Sdk);
    }
}

#[test]
fn opentelemetry_otlp_exporter_runs_the_same_pipeline() {
    for (protocol, processor, signal) in [
        ("grpc", "ours", "traces"),
        ("http/protobuf", "ours", "traces"),
        ("grpc", "sdk", "traces"),
        ("http/protobuf", "sdk", "logs"),
    ] {
        let outcome = run(&format!(
            "{SHORT} --exporter opentelemetry-otlp --protocol {protocol} --processor {processor} \
             --signal {signal}"
        ));
        assert_clean(&outcome);
        let r = &outcome.runs[0];
        assert_eq!(r.exporter, "opentelemetry-otlp");
        assert_eq!(r.retries, None, "only our exporter reports retries");
        assert_eq!(
            r.service_names.get("otlp-pipeline").copied(),
            r.received,
            "{protocol} {processor} {signal}"
        );
    }
}

#[test]
fn compare_runs_both_and_prints_ratios() {
    let outcome = run(&format!("{SHORT} --compare --duration 300ms"));
    assert_clean(&outcome);
    assert_eq!(outcome.runs.len(), 2);
    let text = outcome.to_string();
    assert!(text.contains("ours / sdk"), "{text}");
    let json = outcome.to_json();
    assert!(json.contains("\"ratios_ours_over_sdk\":{") && json.ends_with("\"conserved\":true}"));
}

#[test]
fn refused_requests_are_retried() {
    for protocol in ["grpc", "http/protobuf"] {
        let outcome = run(&format!(
            "{SHORT} --protocol {protocol} --receiver-fail 0.2 --receiver-retry-after 0 --batch-size 64"
        ));
        let r = &outcome.runs[0];
        let refused = r.refused.expect("embedded receiver");
        assert!(refused > 0, "{outcome}");
        // Without retries every refusal would end its batch as failed.
        assert!(refused > r.failed_batches, "{outcome}");
        // Our exporter retried each refusal, or gave its batch up.
        let retries = r.retries.expect("our exporter counts retries");
        assert!(retries > 0 && retries <= refused, "{outcome}");
        assert!(outcome.conserved(), "{outcome}");
        assert_eq!(r.received, Some(r.exported));
    }
}

#[test]
fn a_receiver_that_refuses_everything_does_not_hang_the_job() {
    for protocol in ["grpc", "http/protobuf"] {
        let outcome = run(&format!(
            "--duration 300ms --rate 2000 --protocol {protocol} --receiver-fail 1 \
             --receiver-retry-after 0 --export-timeout 1s --shutdown-timeout 5s"
        ));
        let r = &outcome.runs[0];
        assert_eq!((r.exported, r.received), (0, Some(0)), "{outcome}");
        assert!(r.dropped.export_failed > 0, "{outcome}");
        assert!(outcome.conserved(), "{outcome}");
        assert_eq!(outcome.exit_code(), 1, "failed exports are a failure");
    }
}

#[test]
fn an_unreachable_endpoint_fails_and_names_itself() {
    let port = closed_port();
    for (protocol, url) in [
        ("grpc", format!("http://127.0.0.1:{port}")),
        (
            "http/protobuf",
            format!("http://127.0.0.1:{port}/v1/traces"),
        ),
    ] {
        let outcome = run(&format!(
            "--duration 200ms --rate 1000 --protocol {protocol} --endpoint {url} \
             --export-timeout 1s --shutdown-timeout 5s"
        ));
        let r = &outcome.runs[0];
        assert_eq!(r.exported, 0);
        assert!(r.dropped.export_failed > 0, "{outcome}");
        let error = r.first_error.as_deref().expect("an error message");
        assert!(error.contains(&url), "names the endpoint: {error}");
        assert!(outcome.conserved(), "{outcome}");
        assert_eq!(outcome.exit_code(), 1);
        assert!(outcome.problems().iter().any(|p| p.contains(&url)));
    }
}

#[test]
fn bad_endpoints_and_protocols_are_usage_errors() {
    for args in [
        "--protocol bogus",
        "--protocol http/xml",
        "--endpoint not-a-url",
        "--endpoint ftp://example.com",
        "--endpoint http://",
    ] {
        let argv = args.split_whitespace().map(str::to_owned);
        assert_eq!(job::main(argv), 2, "{args}");
    }
    // Parses, but when opentelemetry-otlp is built without a TLS feature
    // it refuses an https endpoint when it is built: a configuration
    // error, still exit status 2, before anything runs. Whether it has one
    // depends on the build: `cargo test --workspace` unifies features, and
    // the benches turn on `tls-ring`. (Ours speaks TLS either way:
    // otlp-sdk's tests/otlp_tls.rs.)
    let refused = {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let _inside = runtime.enter();
        use opentelemetry_otlp::WithExportConfig as _;
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint("https://127.0.0.1:4317")
            .build()
            .is_err()
    };
    if refused {
        let argv =
            "--endpoint https://127.0.0.1:4317 --duration 100ms --exporter opentelemetry-otlp"
                .split_whitespace()
                .map(str::to_owned);
        assert_eq!(job::main(argv), 2);
    }
}

#[test]
fn a_timed_out_export_that_arrived_is_in_doubt_not_a_violation() {
    // The receiver takes the request, then answers after the exporter has
    // given up: the export timed out, yet the spans arrived.
    let outcome = run(
        "--duration 300ms --rate 2000 --delay 50ms --receiver-latency 2s --export-timeout 500ms \
         --shutdown-timeout 10s",
    );
    let r = &outcome.runs[0];
    assert!(r.in_doubt > 0, "{outcome}");
    assert_eq!(r.dropped.export_failed, 0, "{outcome}");
    let received = r.received.expect("embedded receiver");
    assert!(received > 0, "{outcome}");
    assert!(r.accounted() && r.delivered(), "{outcome}");
    assert!(outcome.conserved(), "{outcome}");
    assert!(outcome.to_json().contains("\"conserved\":true"));
}

#[test]
fn the_sdk_processors_batch_in_flight_at_a_timed_out_shutdown_is_counted() {
    // A dead endpoint and an exporter timeout longer than the shutdown
    // timeout: the SDK's processor gives up with a batch in the exporter.
    let url = format!("http://127.0.0.1:{}", closed_port());
    let outcome = run(&format!(
        "--processor sdk --duration 300ms --rate 5000 --delay 50ms --endpoint {url} \
         --export-timeout 3s --shutdown-timeout 1s"
    ));
    let r = &outcome.runs[0];
    assert!(r.in_doubt > 0, "{outcome}");
    assert!(r.accounted(), "{outcome}");
    assert!(outcome.conserved(), "{outcome}");
    assert_eq!(outcome.exit_code(), 1, "items were lost to failed exports");
}

#[test]
fn many_producers_keep_the_rate_and_the_live_line() {
    let outcome = run("--producers 2000 --rate 20000 --duration 1500ms --delay 50ms");
    let r = &outcome.runs[0];
    // Paced producers are never ahead of their share of the rate.
    assert!(r.emitted as f64 <= 20_000.0 * 1.5 * 1.02, "{outcome}");
    assert!(r.emitted > 0, "{outcome}");
    assert!(!r.ticks.is_empty(), "a live line every second");
    assert!(outcome.conserved(), "{outcome}");
}
