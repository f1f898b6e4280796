//! The receiver over real loopback sockets: valid requests are counted, and
//! hostile ones (malformed, truncated, wrong type, bad gzip, too large,
//! stalled) get the OTLP-specified answer while the server keeps serving.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use otlp_receiver::decode::Decoded;
use otlp_receiver::{Receiver, ReceiverConfig};
use prost::Message;

/// Bounds every read so a server bug fails the test instead of hanging it.
const READ_BOUND: Duration = Duration::from_secs(20);

fn request(spans: usize) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("checkout".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (0..spans)
                    .map(|i| Span {
                        name: format!("span-{i}"),
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).expect("in memory");
    enc.finish().expect("in memory")
}

/// One HTTP/1.1 exchange on a fresh connection; returns the status line's
/// code and the whole response text (headers and body, lossily).
fn http1(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(READ_BOUND)).expect("timeout");
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut response = Vec::new();
    // The server closes after answering (Connection: close), or on error.
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, response)
}

fn post(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    extra: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    http1(addr, &head, body)
}

fn small_limits() -> ReceiverConfig {
    ReceiverConfig {
        max_body_bytes: 4096,
        header_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        ..ReceiverConfig::default()
    }
}

#[test]
fn http_requests_are_decoded_and_counted() {
    let receiver = Receiver::start(ReceiverConfig::default()).expect("start");
    let addr = receiver.addr();
    let body = request(3);
    let (code, _) = post(
        addr,
        "/v1/traces",
        "application/x-protobuf",
        "X-Tenant: blue\r\n",
        &body,
    );
    assert_eq!(code, 200);
    let (code, _) = post(
        addr,
        "/v1/traces",
        "application/x-protobuf",
        "Content-Encoding: gzip\r\n",
        &gzip(&body),
    );
    assert_eq!(code, 200);
    let stats = receiver.stop();
    assert_eq!(
        (stats.spans, stats.http_requests, stats.gzip_requests),
        (6, 2, 1)
    );
    assert_eq!(stats.service_names.get("checkout"), Some(&6));
    assert_eq!(stats.custom_headers.get("x-tenant: blue"), Some(&1));
    assert_eq!(stats.message_bytes, 2 * body.len() as u64);
    assert_eq!(stats.rejected(), 0);
}

#[test]
fn hostile_http_gets_the_specified_status_and_the_server_keeps_serving() {
    let receiver = Receiver::start(small_limits()).expect("start");
    let addr = receiver.addr();
    let body = request(2);
    let pb = "application/x-protobuf";

    assert_eq!(
        post(addr, "/v1/traces", pb, "", &[0xff, 0xff, 0xff, 0xff]).0,
        400,
        "malformed"
    );
    assert_eq!(
        post(addr, "/v1/traces", pb, "", &body[..body.len() - 3]).0,
        400,
        "truncated"
    );
    assert_eq!(
        post(addr, "/v1/traces", "application/x-yaml", "", b"{}").0,
        415,
        "yaml"
    );
    assert_eq!(
        post(addr, "/v1/traces", "text/plain", "", &body).0,
        415,
        "text"
    );
    assert_eq!(
        post(
            addr,
            "/v1/traces",
            pb,
            "Content-Encoding: gzip\r\n",
            b"definitely not gzip"
        )
        .0,
        400,
        "bad gzip"
    );
    assert_eq!(
        post(addr, "/v1/traces", pb, "Content-Encoding: br\r\n", &body).0,
        415,
        "br"
    );
    assert_eq!(
        post(addr, "/v1/traces", pb, "", &request(200)).0,
        413,
        "too large"
    );
    // A gzip bomb: small on the wire, over the limit once inflated.
    let bomb = gzip(&vec![0u8; 1 << 20]);
    assert!(bomb.len() < 4096);
    assert_eq!(
        post(addr, "/v1/traces", pb, "Content-Encoding: gzip\r\n", &bomb).0,
        413,
        "bomb"
    );
    // Chunked, no Content-Length: the limit still holds while reading.
    let big = request(200);
    let chunked = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: {pb}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
        big.len()
    );
    let mut chunk = big.clone();
    chunk.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(http1(addr, &chunked, &chunk).0, 413, "chunked too large");
    // Stalls mid-body: says 10 bytes, sends 2, then nothing.
    let stalled = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: {pb}\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(http1(addr, &stalled, &[0x0a, 0x00]).0, 408, "stalled body");
    // Stalls in its headers: the connection is closed, no answer.
    let (code, response) = http1(addr, "POST /v1/traces HTTP/1.1\r\nHost:", &[]);
    assert!(
        code == 0 || code == 408,
        "stalled headers answered {code}: {response:?}"
    );
    // Connects and sends nothing: closed.
    let (code, _) = http1(addr, "", &[]);
    assert_eq!(code, 0, "silent client");
    // Wrong method and path.
    assert_eq!(
        http1(
            addr,
            "GET /v1/traces HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            &[]
        )
        .0,
        405
    );
    assert_eq!(post(addr, "/v2/whatever", pb, "", &body).0, 404);

    // Still serving.
    assert_eq!(post(addr, "/v1/traces", pb, "", &body).0, 200);
    let stats = receiver.stop();
    assert_eq!(stats.spans, 2);
    assert_eq!(stats.rejected_malformed, 2);
    assert_eq!(stats.rejected_media_type, 2);
    assert_eq!(stats.rejected_bad_gzip, 1);
    assert_eq!(stats.rejected_encoding, 1);
    assert_eq!(stats.rejected_too_large, 3);
    assert_eq!(stats.rejected_timed_out, 1);
}

/// Sends `bytes` and stops: the server must close the connection (a read
/// sees end of stream) rather than hold it until the test's read bound.
fn closed_after_stall(addr: SocketAddr, bytes: &[u8]) -> bool {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(READ_BOUND)).expect("timeout");
    stream.write_all(bytes).expect("write");
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // Anything the server says (an HTTP/1 408) before closing.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn a_client_stalling_in_the_http2_preface_is_disconnected() {
    let receiver = Receiver::start(small_limits()).expect("receiver starts");
    let addr = receiver.addr();
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    assert!(closed_after_stall(addr, b"P"), "stalled after `P`");
    assert!(
        closed_after_stall(addr, &preface[..18]),
        "stalled after 18 bytes of the preface"
    );
    // Still serving, both protocols.
    let body = request(1);
    assert_eq!(
        post(addr, "/v1/traces", "application/x-protobuf", "", &body).0,
        200
    );
    let stats = receiver.stop();
    assert_eq!(stats.spans, 1);
}

#[test]
fn a_request_sent_twice_is_counted_as_a_duplicate() {
    let receiver = Receiver::start(ReceiverConfig::default()).expect("receiver starts");
    let addr = receiver.addr();
    let pb = "application/x-protobuf";
    let once = request(3);
    assert_eq!(post(addr, "/v1/traces", pb, "", &once).0, 200);
    assert_eq!(post(addr, "/v1/traces", pb, "", &once).0, 200);
    // Different spans: not a duplicate, though the request has the same size.
    let mut other = ExportTraceServiceRequest::decode(once.as_slice()).expect("decodes");
    other.resource_spans[0].scope_spans[0].spans[0].span_id = vec![9; 8];
    assert_eq!(
        post(addr, "/v1/traces", pb, "", &other.encode_to_vec()).0,
        200
    );
    let stats = receiver.stop();
    assert_eq!(stats.spans, 9);
    assert_eq!(stats.duplicate_requests, 1);
    assert_eq!(stats.duplicate_items, 3);
    assert_eq!(stats.unique_items(), 6);
}

#[test]
fn an_http_error_body_is_a_google_rpc_status() {
    let receiver = Receiver::start(ReceiverConfig::default()).expect("start");
    let (code, response) = post(
        receiver.addr(),
        "/v1/traces",
        "application/x-protobuf",
        "",
        &[0xff; 8],
    );
    assert_eq!(code, 400);
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    let body = &response[split + 4..];
    let mut buf = body;
    let (tag, wire) = prost::encoding::decode_key(&mut buf).expect("key");
    let mut status_code = 0i32;
    prost::encoding::int32::merge(wire, &mut status_code, &mut buf, Default::default())
        .expect("code");
    assert_eq!((tag, status_code), (1, 3), "INVALID_ARGUMENT");
}

/// The body of a whole HTTP/1.1 response, and whether its content type
/// is JSON.
fn response_body(response: &[u8]) -> (&[u8], bool) {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    (
        &response[split + 4..],
        head.contains("content-type: application/json"),
    )
}

fn json_of(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("a JSON body")
}

/// An OTLP/JSON traces request written by hand, as the specification's
/// example is: hex ids, string timestamps, integer enums.
const JSON_SPANS: &str = r#"{"resourceSpans":[{"resource":{"attributes":[
    {"key":"service.name","value":{"stringValue":"checkout"}}]},
    "scopeSpans":[{"scope":{"name":"lib","version":"1.0"},"spans":[
    {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
     "parentSpanId":"eee19b7ec3c1b173","name":"a","kind":2,
     "startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
     "attributes":[{"key":"n","value":{"intValue":"42"}}],"status":{}},
    {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175",
     "name":"b","kind":3}]}]}]}"#;

#[test]
fn json_requests_are_decoded_counted_kept_and_answered_in_json() {
    let receiver = Receiver::start(ReceiverConfig::default()).expect("start");
    receiver.keep_requests(8);
    let addr = receiver.addr();
    let body = JSON_SPANS.as_bytes();
    let (code, response) = post(addr, "/v1/traces", "application/json", "", body);
    assert_eq!(code, 200);
    let (answer, is_json) = response_body(&response);
    assert!(is_json, "a JSON request gets a JSON answer");
    assert_eq!(json_of(answer), serde_json::json!({}));
    let (code, _) = post(
        addr,
        "/v1/traces",
        "Application/JSON; charset=utf-8",
        "Content-Encoding: gzip\r\n",
        &gzip(body),
    );
    assert_eq!(code, 200);
    let logs = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[
        {"timeUnixNano":"1","severityNumber":9,"body":{"stringValue":"hi"}}]}]}]}"#;
    let (code, response) = post(addr, "/v1/logs", "application/json", "", logs);
    assert_eq!(code, 200);
    assert!(response_body(&response).1);
    // Protobuf next to it is still answered in protobuf.
    let (code, response) = post(
        addr,
        "/v1/traces",
        "application/x-protobuf",
        "",
        &request(1),
    );
    assert_eq!(code, 200);
    assert!(!response_body(&response).1);

    let kept = receiver.take_requests();
    assert_eq!(kept.len(), 4);
    let Decoded::Traces(first) = &kept[0] else {
        panic!("the first request kept is the traces one");
    };
    assert_eq!(kept[0], kept[1], "gzip changes nothing");
    let span = &first.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(
        span.trace_id,
        [
            0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f,
            0xc6, 0x0c
        ]
    );
    assert_eq!(
        span.parent_span_id,
        [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x73]
    );
    assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
    assert!(matches!(kept[2], Decoded::Logs(_)));
    let stats = receiver.stop();
    assert_eq!(
        (
            stats.spans,
            stats.log_records,
            stats.http_requests,
            stats.json_requests
        ),
        (5, 1, 4, 3)
    );
    assert_eq!(stats.gzip_requests, 1);
    assert_eq!(stats.service_names.get("checkout"), Some(&5));
    assert_eq!(
        stats.message_bytes,
        2 * body.len() as u64 + logs.len() as u64 + request(1).len() as u64
    );
}

#[test]
fn a_partial_success_and_a_refusal_are_answered_in_json() {
    let partial = Receiver::start(ReceiverConfig {
        partial_reject: 2,
        ..ReceiverConfig::default()
    })
    .expect("start");
    let (code, response) = post(
        partial.addr(),
        "/v1/traces",
        "application/json",
        "",
        JSON_SPANS.as_bytes(),
    );
    assert_eq!(code, 200);
    let answer = json_of(response_body(&response).0);
    assert_eq!(answer["partialSuccess"]["rejectedSpans"], "2");
    assert!(answer["partialSuccess"]["errorMessage"].is_string());

    let refusing = Receiver::start(ReceiverConfig {
        fail_ratio: 1.0,
        ..ReceiverConfig::default()
    })
    .expect("start");
    let (code, response) = post(
        refusing.addr(),
        "/v1/logs",
        "application/json",
        "",
        br#"{"resourceLogs":[]}"#,
    );
    assert_eq!(code, 503);
    let (body, is_json) = response_body(&response);
    assert!(is_json);
    assert_eq!(json_of(body)["code"], 14, "UNAVAILABLE");
}

#[test]
fn hostile_json_gets_400_with_a_json_google_rpc_status() {
    let receiver = Receiver::start(small_limits()).expect("start");
    let addr = receiver.addr();
    let json = "application/json";
    let deep = format!(
        "{{\"resourceSpans\":[{{\"resource\":{{\"attributes\":[{{\"key\":\"k\",\"value\":{}{}}}]}}}}]}}",
        "{\"arrayValue\":{\"values\":[".repeat(60),
        "]}}".repeat(60)
    );
    assert!(deep.len() < 4096);
    let malformed: [(&str, &[u8]); 7] = [
        ("not JSON", b"{\"resourceSpans\": [oops"),
        ("truncated", &JSON_SPANS.as_bytes()[..JSON_SPANS.len() - 3]),
        ("wrong shape", br#"{"resourceSpans":7}"#),
        ("base64 id", br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"W47/95gDgQPSabYzgT/GDA=="}]}]}]}"#),
        ("bad int", br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":{"intValue":"x"}}]}}]}"#),
        ("protobuf labelled JSON", &request(1)),
        ("nested past serde_json's limit", deep.as_bytes()),
    ];
    for (what, body) in malformed {
        let (code, response) = post(addr, "/v1/traces", json, "", body);
        assert_eq!(code, 400, "{what}");
        let (body, is_json) = response_body(&response);
        assert!(is_json, "{what}: the status is JSON");
        let status = json_of(body);
        assert_eq!(status["code"], 3, "{what}: INVALID_ARGUMENT");
        assert!(
            status["message"]
                .as_str()
                .is_some_and(|m| m.contains("OTLP/JSON")),
            "{what}: {status}"
        );
    }
    // A JSON bomb: small gzip on the wire, over the limit inflated.
    let mut bomb_json = b"{\"resourceSpans\":[],\"pad\":\"".to_vec();
    bomb_json.resize(1 << 20, b' ');
    bomb_json.extend_from_slice(b"\"}");
    let bomb = gzip(&bomb_json);
    assert!(bomb.len() < 4096);
    let (code, response) = post(
        addr,
        "/v1/traces",
        json,
        "Content-Encoding: gzip\r\n",
        &bomb,
    );
    assert_eq!(code, 413);
    assert_eq!(
        json_of(response_body(&response).0)["code"],
        8,
        "RESOURCE_EXHAUSTED"
    );

    // Still serving.
    assert_eq!(
        post(addr, "/v1/traces", json, "", JSON_SPANS.as_bytes()).0,
        200
    );
    let stats = receiver.stop();
    assert_eq!(stats.spans, 2);
    assert_eq!(stats.json_requests, 1);
    assert_eq!(stats.rejected_malformed, 7);
    assert_eq!(stats.rejected_too_large, 1);
}

#[test]
fn refusals_are_retryable_and_not_counted() {
    let receiver = Receiver::start(ReceiverConfig {
        fail_ratio: 1.0,
        retry_after: Duration::from_secs(2),
        ..ReceiverConfig::default()
    })
    .expect("start");
    let (code, response) = post(
        receiver.addr(),
        "/v1/traces",
        "application/x-protobuf",
        "",
        &request(1),
    );
    assert_eq!(code, 503);
    let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
    assert!(text.contains("retry-after: 2"), "{text}");
    let stats = receiver.stop();
    assert_eq!((stats.spans, stats.refused), (0, 1));
}

/// A raw HTTP/2 gRPC call: returns the HTTP status and the grpc-status
/// (from the headers of a trailers-only answer, or from the trailers).
async fn grpc_call(
    addr: SocketAddr,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (u16, Option<String>) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(connection);
    let mut builder = http::Request::post(format!(
        "http://{addr}/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    ))
    .header("content-type", content_type)
    .header("te", "trailers");
    if let Some(encoding) = encoding {
        builder = builder.header("grpc-encoding", encoding);
    }
    let request = builder.body(Full::new(Bytes::from(body))).expect("request");
    let response = tokio::time::timeout(READ_BOUND, sender.send_request(request))
        .await
        .expect("answered in time")
        .expect("response");
    let status = response.status().as_u16();
    let in_headers = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap_or("?").to_owned());
    let collected = tokio::time::timeout(READ_BOUND, response.into_body().collect())
        .await
        .expect("body in time")
        .expect("body");
    let in_trailers = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .map(|v| v.to_str().unwrap_or("?").to_owned());
    (status, in_headers.or(in_trailers))
}

fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_valid_and_hostile_calls() {
    let receiver = Receiver::start(small_limits()).expect("start");
    let addr = receiver.addr();
    let ct = "application/grpc";
    let body = request(4);

    assert_eq!(
        grpc_call(addr, ct, None, frame(0, &body)).await,
        (200, Some("0".into())),
        "valid"
    );
    assert_eq!(
        grpc_call(addr, ct, Some("gzip"), frame(1, &gzip(&body))).await,
        (200, Some("0".into())),
        "valid gzip"
    );
    // Malformed protobuf in a well-formed frame: tonic decodes and fails;
    // answered INVALID_ARGUMENT (3), not tonic's INTERNAL.
    assert_eq!(
        grpc_call(addr, ct, None, frame(0, &[0xff; 6]))
            .await
            .1
            .as_deref(),
        Some("3"),
        "malformed"
    );
    let mut truncated = frame(0, &body);
    truncated.truncate(truncated.len() - 2);
    assert_eq!(
        grpc_call(addr, ct, None, truncated).await.1.as_deref(),
        Some("3"),
        "truncated"
    );
    assert_eq!(
        grpc_call(addr, ct, Some("gzip"), frame(1, b"not gzip"))
            .await
            .1
            .as_deref(),
        Some("3"),
        "bad gzip"
    );
    assert_eq!(
        grpc_call(addr, ct, None, frame(0, &request(200)))
            .await
            .1
            .as_deref(),
        Some("8"),
        "RESOURCE_EXHAUSTED"
    );
    assert_eq!(
        grpc_call(addr, "application/json", None, frame(0, &body))
            .await
            .0,
        415,
        "content type"
    );

    let stats = receiver.stop();
    assert_eq!(
        (stats.spans, stats.grpc_requests, stats.gzip_requests),
        (8, 2, 1)
    );
    assert_eq!(stats.service_names.get("checkout"), Some(&8));
    assert_eq!(stats.rejected_malformed, 2);
    assert_eq!(stats.rejected_bad_gzip, 1);
    assert_eq!(stats.rejected_too_large, 1);
    assert_eq!(stats.rejected_media_type, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_refusals_are_unavailable() {
    let receiver = Receiver::start(ReceiverConfig {
        fail_ratio: 1.0,
        ..ReceiverConfig::default()
    })
    .expect("start");
    let answer = grpc_call(
        receiver.addr(),
        "application/grpc",
        None,
        frame(0, &request(1)),
    )
    .await;
    assert_eq!(answer.1.as_deref(), Some("14"), "UNAVAILABLE");
    assert_eq!(receiver.stop().refused, 1);
}

#[test]
fn bad_configs_are_typed_errors() {
    for config in [
        ReceiverConfig {
            fail_ratio: 1.5,
            ..ReceiverConfig::default()
        },
        ReceiverConfig {
            fail_ratio: f64::NAN,
            ..ReceiverConfig::default()
        },
        ReceiverConfig {
            worker_threads: 0,
            ..ReceiverConfig::default()
        },
        ReceiverConfig {
            max_body_bytes: 0,
            ..ReceiverConfig::default()
        },
    ] {
        assert!(matches!(
            Receiver::start(config),
            Err(otlp_receiver::ReceiverError::InvalidConfig(_))
        ));
    }
}

#[test]
fn receiver_threads_report_their_cpu_time() {
    let receiver = Receiver::start(ReceiverConfig::default()).expect("start");
    for _ in 0..20 {
        post(
            receiver.addr(),
            "/v1/traces",
            "application/x-protobuf",
            "",
            &request(50),
        );
    }
    let cpu = receiver.cpu_time();
    if cfg!(target_os = "linux") {
        assert!(cpu.is_some_and(|t| t > Duration::ZERO), "{cpu:?}");
    }
    assert_eq!(receiver.stop().spans, 1000);
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(bytes, 3).expect("in memory")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_inflates_under_the_body_limit_over_both_protocols() {
    let receiver = Receiver::start(small_limits()).expect("start");
    let addr = receiver.addr();
    let pb = "application/x-protobuf";
    let body = request(4);
    // A bomb: a few dozen bytes on the wire, 1 MiB inflated, limit 4 KiB.
    let bomb = zstd(&vec![0u8; 1 << 20]);
    assert!(bomb.len() < 4096);
    let zstd_header = "Content-Encoding: zstd\r\n";
    let http = tokio::task::spawn_blocking({
        let (body, bomb) = (body.clone(), bomb.clone());
        move || {
            [
                post(addr, "/v1/traces", pb, zstd_header, &zstd(&body)).0,
                post(addr, "/v1/traces", pb, zstd_header, &bomb).0,
                post(addr, "/v1/traces", pb, zstd_header, b"not zstd").0,
            ]
        }
    })
    .await
    .expect("no panic");
    assert_eq!(http, [200, 413, 400], "valid, bomb, corrupt");

    let ct = "application/grpc";
    assert_eq!(
        grpc_call(addr, ct, Some("zstd"), frame(1, &zstd(&body))).await,
        (200, Some("0".into())),
        "valid zstd"
    );
    assert_eq!(
        grpc_call(addr, ct, Some("zstd"), frame(1, &bomb))
            .await
            .1
            .as_deref(),
        Some("8"),
        "bomb: RESOURCE_EXHAUSTED"
    );
    assert_eq!(
        grpc_call(addr, ct, Some("zstd"), frame(1, b"not zstd"))
            .await
            .1
            .as_deref(),
        Some("3"),
        "corrupt: INVALID_ARGUMENT"
    );

    let stats = receiver.stop();
    assert_eq!(
        (stats.spans, stats.zstd_requests, stats.gzip_requests),
        (8, 2, 0)
    );
    assert_eq!(stats.rejected_too_large, 2);
    assert_eq!(stats.rejected_bad_zstd, 2);
}

/// A receiver serving TLS with a certificate made here, for 127.0.0.1.
fn tls_receiver() -> Receiver {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    Receiver::start(ReceiverConfig {
        header_timeout: Duration::from_millis(300),
        tls: Some(otlp_receiver::ReceiverTls {
            certificate_chain_pem: cert.pem().into_bytes(),
            private_key_pem: key.serialize_pem().into_bytes(),
            client_ca_pem: None,
        }),
        ..ReceiverConfig::default()
    })
    .expect("start")
}

#[test]
fn a_tls_receiver_closes_plain_text_and_silent_clients() {
    let receiver = tls_receiver();
    assert_eq!(receiver.endpoint(), format!("https://{}", receiver.addr()));
    assert!(receiver.traces_url().starts_with("https://"));
    // Plain HTTP to a TLS port: no HTTP answer, the connection closes.
    let (code, _) = post(
        receiver.addr(),
        "/v1/traces",
        "application/x-protobuf",
        "",
        &request(1),
    );
    assert_eq!(code, 0, "plain text answered");
    // Connects and never starts the handshake: closed at the header
    // timeout (the read ends with end of file, not the test's bound).
    let mut silent = TcpStream::connect(receiver.addr()).expect("connect");
    silent.set_read_timeout(Some(READ_BOUND)).expect("timeout");
    let mut buf = [0u8; 16];
    assert_eq!(silent.read(&mut buf).ok(), Some(0), "silent client kept");
    let stats = receiver.stop();
    assert_eq!(stats.requests(), 0);
}

#[test]
fn bad_tls_material_is_a_typed_error() {
    let key = rcgen::KeyPair::generate().expect("key");
    let other_key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let tls = |chain: &str, key: &str, ca: Option<&str>| ReceiverConfig {
        tls: Some(otlp_receiver::ReceiverTls {
            certificate_chain_pem: chain.as_bytes().to_vec(),
            private_key_pem: key.as_bytes().to_vec(),
            client_ca_pem: ca.map(|c| c.as_bytes().to_vec()),
        }),
        ..ReceiverConfig::default()
    };
    let (pem, key_pem) = (cert.pem(), key.serialize_pem());
    for (what, config) in [
        ("no certificate", tls("junk", &key_pem, None)),
        ("no key", tls(&pem, "junk", None)),
        ("wrong key", tls(&pem, &other_key.serialize_pem(), None)),
        ("bad client CA", tls(&pem, &key_pem, Some("junk"))),
    ] {
        match Receiver::start(config) {
            Err(otlp_receiver::ReceiverError::InvalidConfig(why)) => {
                assert!(why.contains("TLS"), "{what}: {why}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

/// Over TLS too, a client that completes the handshake, then sends part
/// of the HTTP/2 preface and stops, is disconnected at the header timeout.
#[test]
fn a_tls_client_stalling_in_the_http2_preface_is_disconnected() {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let receiver = Receiver::start(ReceiverConfig {
        header_timeout: Duration::from_millis(300),
        tls: Some(otlp_receiver::ReceiverTls {
            certificate_chain_pem: cert.pem().into_bytes(),
            private_key_pem: key.serialize_pem().into_bytes(),
            client_ca_pem: None,
        }),
        ..ReceiverConfig::default()
    })
    .expect("start");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).expect("trust the test CA");
    let config = std::sync::Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    for stall_after in [1, 18] {
        let tcp = TcpStream::connect(receiver.addr()).expect("connect");
        tcp.set_read_timeout(Some(READ_BOUND)).expect("timeout");
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let client =
            rustls::ClientConnection::new(std::sync::Arc::clone(&config), name).expect("client");
        let mut tls = rustls::StreamOwned::new(client, tcp);
        tls.write_all(&preface[..stall_after])
            .expect("handshake and write");
        tls.flush().expect("flush");
        let mut buf = [0u8; 64];
        let closed = match tls.read(&mut buf) {
            Ok(0) => true,
            Ok(n) => panic!("stalled after {stall_after} bytes: the server said {n} bytes"),
            // No close_notify: the server just closed the socket.
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        assert!(
            closed,
            "stalled after {stall_after} preface bytes: still open"
        );
    }
    assert_eq!(receiver.stop().requests(), 0);
}
