//! The agent forwards what it receives: every signal, over gRPC and
//! HTTP/protobuf (and OTLP/JSON in), arrives upstream as sent, whatever
//! the batching; and every acknowledged item is counted somewhere.
// Sockets and child processes: Miri runs the crate's unit tests and the
// disk log's model test instead.
#![cfg(not(miri))]

mod common;

use common::*;
use otlp_agent::SignalKind;
use otlp_receiver::{Receiver, ReceiverConfig};
use otlp_sdk::otlp::Protocol;

const SIGNALS: [SignalKind; 3] = [SignalKind::Traces, SignalKind::Logs, SignalKind::Metrics];

fn upstream() -> Receiver {
    let receiver = Receiver::start(ReceiverConfig::default()).unwrap();
    receiver.keep_requests(1000);
    receiver
}

#[test]
fn every_signal_over_grpc_and_http_arrives_as_sent() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let upstream = upstream();
        let agent = agent(&upstream.endpoint(), |_| {});
        for signal in SIGNALS {
            let sent: Vec<Vec<u8>> = (0..5)
                .map(|i| request(signal, &format!("{protocol:?}-{i}"), i + 1))
                .collect();
            let client = client(&runtime, &agent.endpoint(), protocol, signal);
            runtime.block_on(async {
                for message in &sent {
                    let delivered = client.send(client.prepare(message.clone())).await;
                    assert_eq!(delivered.unwrap().rejected_items, 0);
                }
            });
            let items = 15;
            wait_for("the upstream to receive everything", || {
                agent.stats().signal(signal).exported_items == items
            });
            let stats = agent.stats();
            let s = stats.signal(signal);
            assert_eq!(s.accepted_items, items, "{signal:?} over {protocol:?}");
            assert_eq!(s.accepted_requests, 5);
            assert_eq!(s.unaccounted(), 0);
            assert_eq!(
                kept_entries(signal, upstream.take_requests()),
                entries(signal, &sent),
                "{signal:?} over {protocol:?}: what arrived is what was sent"
            );
        }
        let report = agent.shutdown();
        assert_eq!(report.left_items, 0);
        let received = upstream.stop();
        assert_eq!(received.spans, 15);
        assert_eq!(received.log_records, 15);
        assert_eq!(received.data_points, 15);
        assert_eq!(received.duplicate_items, 0);
    }
}

#[test]
fn otlp_json_in_is_forwarded_as_protobuf() {
    let upstream = upstream();
    let agent = agent(&upstream.endpoint(), |_| {});
    let addr = agent.addrs()[0];
    let sent = request(SignalKind::Traces, "json", 3);
    let decoded = otlp_receiver::decode::decode_message(SignalKind::Traces, &sent).unwrap();
    let otlp_receiver::decode::Decoded::Traces(message) = decoded else {
        unreachable!()
    };
    let json = serde_json_string(&message);
    let (status, _, body) = http(
        addr,
        "POST",
        "/v1/traces",
        "application/json",
        json.as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    wait_for("the span to arrive", || {
        agent.stats().traces.exported_items == 3
    });
    assert_eq!(
        kept_entries(SignalKind::Traces, upstream.take_requests()),
        entries(SignalKind::Traces, &[sent])
    );
    agent.shutdown();
}

fn serde_json_string(
    message: &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
) -> String {
    serde_json::to_string(message).unwrap()
}

#[test]
fn batches_are_concatenations_and_respect_the_item_limit() {
    // A slow upstream keeps one export in flight, so later requests pile
    // up and leave as batches of at most 10 items.
    let upstream = Receiver::start(ReceiverConfig {
        latency: std::time::Duration::from_millis(100),
        ..ReceiverConfig::default()
    })
    .unwrap();
    upstream.keep_requests(1000);
    let agent = agent(&upstream.endpoint(), |c| {
        c.batch_max_items = 10;
        c.max_concurrent_exports = 1;
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = client(
        &runtime,
        &agent.endpoint(),
        Protocol::Grpc,
        SignalKind::Traces,
    );
    let sent: Vec<Vec<u8>> = (0..20)
        .map(|i| request(SignalKind::Traces, &format!("b{i}"), 3))
        .collect();
    runtime.block_on(async {
        for message in &sent {
            client.send(client.prepare(message.clone())).await.unwrap();
        }
    });
    wait_for("60 spans upstream", || {
        agent.stats().traces.exported_items == 60
    });
    let kept = upstream.take_requests();
    assert!(
        kept.len() < 20,
        "requests were joined: {} upstream requests",
        kept.len()
    );
    for request in &kept {
        let otlp_receiver::decode::Decoded::Traces(r) = request else {
            unreachable!()
        };
        let spans: usize = r
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum();
        assert!(
            spans <= 10,
            "a batch of {spans} spans passed the limit of 10"
        );
    }
    assert_eq!(
        kept_entries(SignalKind::Traces, kept),
        entries(SignalKind::Traces, &sent)
    );
    agent.shutdown();
}

#[test]
fn an_sdk_pipeline_through_the_agent_delivers_every_span() {
    use opentelemetry::trace::{Tracer, TracerProvider};
    let upstream = upstream();
    let agent = agent(&upstream.endpoint(), |_| {});
    let exporter = otlp_sdk::otlp::OtlpExporterBuilder::new()
        .with_endpoint(agent.endpoint())
        .without_env()
        .build_span_exporter()
        .unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(otlp_sdk::BatchSpanProcessor::new(exporter))
        .build();
    let tracer = provider.tracer("agent-test");
    for i in 0..1000 {
        tracer.in_span(format!("span-{i}"), |_| {});
    }
    provider.force_flush().unwrap();
    wait_for("1000 spans upstream", || upstream.stats().spans == 1000);
    provider.shutdown().unwrap();
    let report = agent.shutdown();
    assert_eq!(report.stats.traces.accepted_items, 1000);
    assert_eq!(report.stats.traces.exported_items, 1000);
    assert_eq!(upstream.stop().unique_items(), 1000);
}

#[test]
fn the_listeners_hostile_input_rules_hold_in_front_of_the_agent() {
    let upstream = upstream();
    let agent = agent(&upstream.endpoint(), |c| c.max_body_bytes = 1024);
    let addr = agent.addrs()[0];
    let big = request(SignalKind::Traces, "big", 100);
    assert!(big.len() > 1024);
    let (status, _, _) = http(addr, "POST", "/v1/traces", "application/x-protobuf", &big);
    assert_eq!(status, 413, "a body over the limit");
    let (status, _, _) = http(addr, "POST", "/v1/traces", "text/plain", b"hello");
    assert_eq!(status, 415, "a content type that is not OTLP");
    let (status, _, _) = http(addr, "GET", "/v1/traces", "application/x-protobuf", b"");
    assert_eq!(status, 405, "OTLP/HTTP takes POST");
    assert_eq!(
        agent.stats().traces.received_requests,
        0,
        "none reached the agent"
    );
    assert!(agent.listener_rejections() >= 2);
    agent.shutdown();
    assert_eq!(upstream.stop().items(), 0);
}
