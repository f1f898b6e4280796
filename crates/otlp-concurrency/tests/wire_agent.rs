//! The main job with `--via-agent`: producers -> exporter -> an otlp-agent
//! in process -> the embedded receiver, with every hop conserved.

mod pipeline;

use pipeline::cli::{self, AgentFsync, AgentQueue, Protocol};
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

/// The number after `"key":` in `json` (the first occurrence).
fn json_number(json: &str, key: &str) -> u64 {
    let at = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {json}"));
    let digits: String = json[at + key.len() + 3..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

#[test]
fn spans_cross_the_agent_through_its_disk_queue() {
    let outcome = run("--via-agent --agent-queue disk --duration 1 --rate 5000 --delay 50ms");
    assert_both_hops(&outcome, Protocol::Grpc);
    let r = &outcome.runs[0];
    let agent = r.agent.as_ref().expect("the agent hop");
    let disk = agent.disk.as_ref().expect("the disk queue's figures");
    let s = &agent.stats;
    assert_eq!(disk.fsync, AgentFsync::Always);
    // Every acknowledged request was written and fsynced first.
    assert!(s.disk_writes > 0 && s.fsyncs > 0, "{outcome}");
    assert!(s.fsync_max_micros >= s.fsync_mean_micros, "{outcome}");
    assert!(disk.peak_disk_bytes >= s.disk_bytes, "{outcome}");
    assert!(disk.peak_disk_only_items >= s.disk_only_items, "{outcome}");
    // A fresh directory: nothing to replay, nothing left behind.
    assert_eq!((s.replayed_requests, s.replayed_items), (0, 0));
    assert_eq!(s.left_on_disk_items, 0, "{outcome}");
    assert_eq!(disk.removal_error, None);
    assert!(
        disk.dir.starts_with(std::env::temp_dir()),
        "{}",
        disk.dir.display()
    );
    assert!(!disk.dir.exists(), "{} is still there", disk.dir.display());

    let json = outcome.to_json();
    for expected in [
        "\"conserved\":true",
        "\"accounted\":true",
        "\"delivered\":true",
        "\"agent_accounted\":true",
        "\"queue\":\"disk\"",
        "\"fsync\":\"always\"",
        "\"dir_removed\":true",
    ] {
        assert!(json.contains(expected), "{expected} in {json}");
    }
    for key in [
        "disk_bytes",
        "peak_disk_bytes",
        "disk_only_items",
        "peak_disk_only_items",
        "replayed_requests",
        "replayed_items",
        "disk_writes",
        "fsync_mean_micros",
        "fsync_max_micros",
    ] {
        json_number(&json, key);
    }
    assert!(json_number(&json, "fsyncs") > 0, "{json}");
    let text = outcome.to_string();
    assert!(text.contains("agent: fsync mean / max"), "{text}");
}

#[test]
fn the_memory_queue_reports_no_disk() {
    let outcome = run(&format!("{SHORT} --agent-queue memory"));
    assert_both_hops(&outcome, Protocol::Grpc);
    assert!(outcome.runs[0].agent.as_ref().unwrap().disk.is_none());
    let json = outcome.to_json();
    assert!(
        json.contains("\"queue\":\"memory\",\"disk\":null"),
        "{json}"
    );
}

#[test]
fn agent_queue_flag_errors() {
    let parse = |text: &str| cli::parse(text.split_whitespace().map(str::to_owned));
    let args = |text: &str| {
        text.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // A usage error, exit status 2, as the binary would exit.
    assert_eq!(pipeline::job::main(args("--agent-queue disk")), 2);
    assert_eq!(
        pipeline::job::main(args("--via-agent --agent-fsync never")),
        2
    );
    let err = parse("--agent-queue disk").unwrap_err();
    assert!(err.contains("--via-agent"), "{err}");
    let err = parse("--via-agent --agent-fsync interval").unwrap_err();
    assert!(err.contains("--agent-queue disk"), "{err}");
    let err = parse("--via-agent --agent-queue memory --agent-fsync always").unwrap_err();
    assert!(err.contains("--agent-queue disk"), "{err}");
    assert!(parse("--via-agent --agent-queue tape").is_err());
    assert!(parse("--via-agent --agent-queue disk --agent-fsync sometimes").is_err());
    match parse("--via-agent --agent-queue disk --agent-fsync interval") {
        Ok(cli::Parsed::Run(o)) => {
            assert_eq!(o.agent_queue(), AgentQueue::Disk);
            assert_eq!(o.agent_fsync(), AgentFsync::Interval);
        }
        other => panic!("{other:?}"),
    }
    match parse("--via-agent") {
        Ok(cli::Parsed::Run(o)) => {
            assert_eq!(o.agent_queue(), AgentQueue::Memory);
            assert_eq!(o.agent_fsync(), AgentFsync::Always);
        }
        other => panic!("{other:?}"),
    }
}
