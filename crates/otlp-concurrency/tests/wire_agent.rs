//! The main job with `--via-agent`: producers -> exporter -> an otlp-agent
//! in process -> the embedded receiver, with every hop conserved.

mod pipeline;

use pipeline::cli::{self, Protocol};
use pipeline::report::Outcome;
use pipeline::run;

/// Slow enough for a debug build on a loaded machine to keep up.
const SHORT: &str = "--via-agent --duration 400ms --rate 5000 --delay 50ms";

fn assert_both_hops(outcome: &Outcome, upstream: Protocol) {
    assert!(outcome.conserved(), "{outcome}");
    assert_eq!(outcome.problems(), Vec::<String>::new(), "{outcome}");
    assert_eq!(outcome.exit_code(), 0, "{outcome}");
    for r in &outcome.runs {
        let agent = r.agent.as_ref().expect("the agent hop is reported");
        assert!(r.exported > 0, "{outcome}");
        assert!(r.agent_in() && r.agent_kept() && r.agent_out(), "{outcome}");
        assert_eq!(agent.stats.accepted_items, r.exported, "{outcome}");
        assert_eq!(agent.stats.exported_items, r.exported, "{outcome}");
        assert_eq!(agent.stats.unaccounted(), 0);
        assert_eq!(agent.left, 0);
        assert_eq!(r.received, Some(r.exported), "{outcome}");
        assert_eq!(agent.upstream_protocol, upstream);
        assert!(r.endpoint.starts_with(&agent.endpoint), "{outcome}");
    }
    let text = outcome.to_string();
    assert!(text.contains("hop exporter -> agent"), "{text}");
    assert!(!text.contains("VIOLATED"), "{text}");
    assert!(outcome.to_json().contains("\"agent_accounted\":true"));
}

#[test]
fn spans_over_grpc_cross_the_agent() {
    assert_both_hops(&run(SHORT), Protocol::Grpc);
}

#[test]
fn logs_over_http_protobuf_cross_the_agent_over_http() {
    let outcome = run(&format!("{SHORT} --signal logs --protocol http/protobuf"));
    assert_both_hops(&outcome, Protocol::HttpProtobuf);
}

#[test]
fn http_json_reaches_the_agent_and_leaves_it_over_grpc() {
    let outcome = run(&format!("{SHORT} --protocol http/json"));
    assert_both_hops(&outcome, Protocol::Grpc);
}

#[test]
fn opentelemetry_otlp_is_a_client_of_the_agent_too() {
    for (protocol, upstream) in [
        ("grpc", Protocol::Grpc),
        ("http/protobuf", Protocol::HttpProtobuf),
    ] {
        let outcome = run(&format!(
            "{SHORT} --exporter opentelemetry-otlp --processor sdk --protocol {protocol}"
        ));
        assert_both_hops(&outcome, upstream);
    }
}

#[test]
fn without_the_flag_there_is_no_agent_hop() {
    let outcome = run("--duration 200ms --rate 5000 --delay 50ms");
    assert!(outcome.runs.iter().all(|r| r.agent.is_none()));
    assert!(outcome.to_json().contains("\"agent\":null"));
}

#[test]
fn via_agent_flag_errors() {
    let parse = |text: &str| cli::parse(text.split_whitespace().map(str::to_owned));
    let err = parse("--via-agent --endpoint http://localhost:4317").unwrap_err();
    assert!(err.contains("--endpoint"), "{err}");
    let err = parse("--agent-queue-size 100").unwrap_err();
    assert!(err.contains("--via-agent"), "{err}");
    assert!(parse("--agent-queue-size 0 --via-agent").is_err());
    match parse("--via-agent --agent-queue-size 4096") {
        Ok(cli::Parsed::Run(o)) => {
            assert!(o.via_agent);
            assert_eq!(o.agent_queue_size, Some(4096));
        }
        other => panic!("{other:?}"),
    }
}
