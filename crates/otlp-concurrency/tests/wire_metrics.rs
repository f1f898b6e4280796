//! The main job with `--signal metrics`: producers record to counters and
//! a histogram on an `SdkMeterProvider`, a `PeriodicReader` exports through
//! otlp_sdk's `OtlpMetricExporter`, and the report counts data points: the
//! receiver got every data point of every successful export, and no export
//! held more than a full collection (instruments × attribute sets).

mod pipeline;

use pipeline::cli::SignalKind;
use pipeline::report::Outcome;
use pipeline::{job, run};

/// Slow enough for a debug build on a loaded machine to keep up; several
/// collections in the run.
const SHORT: &str = "--signal metrics --duration 400ms --rate 5000 --metrics-interval 100ms";

fn assert_points_delivered(outcome: &Outcome) {
    assert!(outcome.conserved(), "{outcome}");
    assert_eq!(outcome.problems(), Vec::<String>::new(), "{outcome}");
    assert_eq!(outcome.exit_code(), 0, "{outcome}");
    let r = &outcome.runs[0];
    assert_eq!(r.signal, SignalKind::Metrics);
    let m = r.metrics.as_ref().expect("the metrics shape is reported");
    assert_eq!(m.points_per_export, m.instruments * m.attribute_sets);
    assert_eq!(m.points_per_export, job::points_per_export());
    assert!(m.exports >= 2, "{outcome}");
    assert!(m.full_exports >= 1, "{outcome}");
    assert_eq!(m.over_full_exports, 0, "{outcome}");
    assert!(r.exported > 0 && r.exported <= m.expected(), "{outcome}");
    assert_eq!(m.handed, r.exported, "{outcome}");
    // Delivered: the receiver's data points are the exporter's.
    assert_eq!(r.received, Some(r.exported), "{outcome}");
    assert_eq!(
        r.service_names.get("otlp-pipeline").copied(),
        r.received,
        "every data point carries service.name"
    );
    let text = outcome.to_string();
    assert!(text.contains("data points exported"), "{text}");
    assert!(!text.contains("VIOLATED"), "{text}");
    let json = outcome.to_json();
    assert!(json.contains("\"signal\":\"metrics\""), "{json}");
    assert!(
        json.contains(&format!("\"exported\":{},", r.exported)),
        "{json}"
    );
    assert!(json.contains("\"points_per_export\":"), "{json}");
}

#[test]
fn metrics_over_grpc_are_all_received() {
    assert_points_delivered(&run(SHORT));
}

#[test]
fn metrics_over_http_protobuf_are_all_received() {
    let outcome = run(&format!(
        "{SHORT} --protocol http/protobuf --compression zstd"
    ));
    assert_points_delivered(&outcome);
    assert!(outcome.runs[0].endpoint.ends_with("/v1/metrics"));
}

#[test]
fn metrics_cross_the_agent() {
    for protocol in ["grpc", "http/protobuf"] {
        let outcome = run(&format!("{SHORT} --via-agent --protocol {protocol}"));
        assert_points_delivered(&outcome);
        let r = &outcome.runs[0];
        let agent = r.agent.as_ref().expect("the agent hop");
        assert_eq!(agent.stats.accepted_items, r.exported, "{outcome}");
        assert_eq!(agent.stats.exported_items, r.exported, "{outcome}");
    }
}

#[test]
fn metrics_over_http_json_are_all_received() {
    let outcome = run(&format!("{SHORT} --protocol http/json --compression gzip"));
    assert_points_delivered(&outcome);
    assert!(outcome.runs[0].endpoint.ends_with("/v1/metrics"));
}

#[test]
fn metrics_over_http_json_cross_the_agent() {
    // The agent takes OTLP/JSON in and forwards protobuf.
    let outcome = run(&format!("{SHORT} --via-agent --protocol http/json"));
    assert_points_delivered(&outcome);
    let r = &outcome.runs[0];
    let agent = r.agent.as_ref().expect("the agent hop");
    assert_eq!(agent.stats.accepted_items, r.exported, "{outcome}");
    assert_eq!(agent.stats.exported_items, r.exported, "{outcome}");
}

#[test]
fn what_metrics_do_not_go_with_is_a_usage_error() {
    let args = |text: &str| {
        text.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    for text in [
        "--signal metrics --compare",
        "--signal metrics --processor sdk",
        "--signal metrics --exporter opentelemetry-otlp",
        "--metrics-interval 1s",
        "--signal metrics --metrics-interval 0s",
    ] {
        assert_eq!(job::main(args(text)), 2, "{text}");
    }
}
