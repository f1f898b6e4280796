//! Backpressure instead of silent loss: a full queue refuses with the
//! answers OTLP clients retry, an upstream outage is ridden out, and every
//! item that does not arrive is counted by cause.
// Sockets and child processes: Miri runs the crate's unit tests and the
// disk log's model test instead.
#![cfg(not(miri))]

mod common;

use std::time::Duration;

use common::*;
use otlp_agent::SignalKind;
use otlp_receiver::{Receiver, ReceiverConfig};
use otlp_sdk::otlp::{Protocol, SendError};

#[test]
fn a_full_queue_refuses_with_retry_advice_then_recovers_with_nothing_lost() {
    let (dead, endpoint) = dead_endpoint();
    let agent = agent(&endpoint, |c| {
        c.queue_max_items = 10;
        c.retry_after = Duration::from_secs(2);
        c.max_elapsed = Duration::from_secs(60);
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let grpc = client(
        &runtime,
        &agent.endpoint(),
        Protocol::Grpc,
        SignalKind::Traces,
    );
    let four = request(SignalKind::Traces, "full", 4);
    runtime.block_on(async {
        grpc.send(grpc.prepare(four.clone())).await.unwrap();
        grpc.send(grpc.prepare(four.clone())).await.unwrap();
        match grpc.send(grpc.prepare(four.clone())).await {
            Err(SendError::Retryable {
                retry_after,
                reason,
            }) => {
                assert_eq!(retry_after, Some(Duration::from_secs(2)), "{reason}");
                assert!(
                    reason.contains("RESOURCE_EXHAUSTED")
                        || reason.contains("ResourceExhausted")
                        || reason.contains("no room"),
                    "{reason}"
                );
            }
            other => panic!("a full queue must refuse with RetryInfo, got {other:?}"),
        }
    });
    let (status, headers, _) = http(
        agent.addrs()[0],
        "POST",
        "/v1/traces",
        "application/x-protobuf",
        &four,
    );
    assert_eq!(status, 429);
    assert!(
        headers.contains(&("retry-after".to_owned(), "2".to_owned())),
        "{headers:?}"
    );
    let stats = agent.stats().traces;
    assert_eq!((stats.accepted_items, stats.refused_full_requests), (8, 2));
    assert_eq!(stats.queued_items, 8);
    // The upstream comes up where the agent has been retrying.
    let upstream = Receiver::start(ReceiverConfig {
        addr: revive(dead),
        ..ReceiverConfig::default()
    })
    .unwrap();
    wait_for("the queued spans to arrive", || upstream.stats().spans == 8);
    wait_for("room again", || agent.stats().traces.queued_items == 0);
    runtime.block_on(async { grpc.send(grpc.prepare(four.clone())).await.unwrap() });
    wait_for("the next spans", || upstream.stats().spans == 12);
    let report = agent.shutdown();
    let t = report.stats.traces;
    assert_eq!(
        (t.accepted_items, t.exported_items, t.dropped_items()),
        (12, 12, 0)
    );
    assert!(t.retries > 0, "the outage was retried");
    assert_eq!(t.unaccounted(), 0);
}

#[test]
fn a_permanent_refusal_is_dropped_and_counted_not_retried() {
    // Well-formed on the wire, but a span name that is not UTF-8: the
    // agent's walk passes it, the upstream's decoder refuses it for good.
    let upstream = Receiver::start(ReceiverConfig::default()).unwrap();
    let agent = agent(&upstream.endpoint(), |_| {});
    let mut bad = request(SignalKind::Traces, "utf8", 1);
    let at = bad
        .windows(6)
        .position(|w| w == b"utf8-0")
        .expect("the span name is in the request");
    bad[at] = 0xff;
    send_one(&agent.endpoint(), Protocol::Grpc, SignalKind::Traces, bad).unwrap();
    wait_for("the drop to be counted", || {
        agent.stats().traces.dropped_permanent_items == 1
    });
    let t = agent.stats().traces;
    assert_eq!((t.attempts, t.retries, t.errors_permanent), (1, 0, 1));
    assert_eq!(t.unaccounted(), 0);
    agent.shutdown();
    assert_eq!(upstream.stop().rejected_malformed, 1);
}

#[test]
fn malformed_requests_are_refused_and_never_forwarded() {
    let upstream = Receiver::start(ReceiverConfig::default()).unwrap();
    let agent = agent(&upstream.endpoint(), |_| {});
    let garbage = b"\x0a\xff\xff\xff\xff\x0fnot protobuf".to_vec();
    let (status, _, _) = http(
        agent.addrs()[0],
        "POST",
        "/v1/logs",
        "application/x-protobuf",
        &garbage,
    );
    assert_eq!(status, 400);
    let (status, _, _) = http(
        agent.addrs()[0],
        "POST",
        "/v1/traces",
        "application/json",
        b"{",
    );
    assert_eq!(status, 400);
    match send_one(
        &agent.endpoint(),
        Protocol::Grpc,
        SignalKind::Metrics,
        garbage,
    ) {
        Err(SendError::Permanent(reason)) => {
            assert!(reason.to_lowercase().contains("invalid"), "{reason}")
        }
        other => panic!("malformed gRPC must be INVALID_ARGUMENT, got {other:?}"),
    }
    let stats = agent.stats();
    assert_eq!(stats.logs.malformed_requests, 1);
    assert_eq!(stats.traces.malformed_requests, 1);
    assert_eq!(stats.metrics.malformed_requests, 1);
    agent.shutdown();
    assert_eq!(upstream.stop().items(), 0);
}

#[test]
fn an_upstream_partial_success_is_counted_as_rejected_upstream() {
    let upstream = Receiver::start(ReceiverConfig {
        partial_reject: 2,
        ..ReceiverConfig::default()
    })
    .unwrap();
    let agent = agent(&upstream.endpoint(), |_| {});
    send_one(
        &agent.endpoint(),
        Protocol::Grpc,
        SignalKind::Logs,
        request(SignalKind::Logs, "p", 5),
    )
    .unwrap();
    wait_for("the export to end", || agent.stats().logs.queued_items == 0);
    let l = agent.stats().logs;
    assert_eq!((l.exported_items, l.rejected_upstream_items), (3, 2));
    assert_eq!(l.unaccounted(), 0);
    agent.shutdown();
}

#[test]
fn retries_stop_at_max_elapsed_and_the_batch_is_counted() {
    let (_, endpoint) = dead_endpoint();
    let agent = agent(&endpoint, |c| c.max_elapsed = Duration::from_millis(300));
    send_one(
        &agent.endpoint(),
        Protocol::HttpProtobuf,
        SignalKind::Traces,
        request(SignalKind::Traces, "gone", 6),
    )
    .unwrap();
    wait_for("the drop", || {
        agent.stats().traces.dropped_max_elapsed_items == 6
    });
    let t = agent.stats().traces;
    assert!(t.attempts >= 2 && t.errors_retryable >= 2, "{t:?}");
    assert_eq!(t.unaccounted(), 0);
    agent.shutdown();
}

#[test]
fn a_shutdown_that_cannot_flush_counts_what_it_left() {
    let (_, endpoint) = dead_endpoint();
    let agent = agent(&endpoint, |c| {
        c.shutdown_timeout = Duration::from_millis(200);
        c.upstream = c.upstream.clone().with_timeout(Duration::from_millis(200));
    });
    send_one(
        &agent.endpoint(),
        Protocol::Grpc,
        SignalKind::Metrics,
        request(SignalKind::Metrics, "left", 5),
    )
    .unwrap();
    let report = agent.shutdown();
    assert_eq!(report.left_items, 5);
    let m = report.stats.metrics;
    assert_eq!(
        (m.accepted_items, m.dropped_shutdown_items, m.queued_items),
        (5, 5, 0)
    );
    assert_eq!(m.unaccounted(), 0);
}

#[test]
fn metrics_health_and_readiness_are_served() {
    let upstream = Receiver::start(ReceiverConfig::default()).unwrap();
    let agent = agent(&upstream.endpoint(), |c| {
        c.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    });
    send_one(
        &agent.endpoint(),
        Protocol::Grpc,
        SignalKind::Traces,
        request(SignalKind::Traces, "m", 7),
    )
    .unwrap();
    wait_for("the export", || agent.stats().traces.exported_items == 7);
    let admin = agent.metrics_addr().unwrap();
    let (status, _, body) = http(admin, "GET", "/metrics", "text/plain", b"");
    let text = String::from_utf8(body).unwrap();
    assert_eq!(status, 200);
    for line in [
        "otlp_agent_accepted_items_total{signal=\"traces\"} 7",
        "otlp_agent_exported_items_total{signal=\"traces\"} 7",
        "otlp_agent_dropped_items_total{signal=\"traces\",cause=\"max_elapsed\"} 0",
        "otlp_agent_queue_items{signal=\"logs\"} 0",
        "otlp_agent_export_traces_tasks_completed_total 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert_eq!(http(admin, "GET", "/healthz", "text/plain", b"").0, 200);
    assert_eq!(http(admin, "GET", "/readyz", "text/plain", b"").0, 200);
    agent.shutdown();
}
