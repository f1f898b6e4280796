//! What the agent's tests share: requests of every signal, an agent in
//! front of an upstream, clients, and a bounded wait.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use otlp_agent::{Agent, AgentConfig, SignalKind};
use otlp_receiver::decode::Decoded;
use otlp_sdk::otlp::{OtlpExporterBuilder, OtlpRequestSender, Protocol, Signal};
use prost::Message;

fn resource(tag: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![KeyValue {
            key: "service.name".to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(tag.to_owned())),
            }),
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// A request of `signal` with `items` items, all tagged `tag`, encoded.
pub fn request(signal: SignalKind, tag: &str, items: usize) -> Vec<u8> {
    match signal {
        SignalKind::Traces => ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: resource(tag),
                scope_spans: vec![ScopeSpans {
                    spans: (0..items)
                        .map(|i| Span {
                            trace_id: vec![7; 16],
                            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                            name: format!("{tag}-{i}"),
                            start_time_unix_nano: 1,
                            end_time_unix_nano: 2,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec(),
        SignalKind::Logs => ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource(tag),
                scope_logs: vec![ScopeLogs {
                    log_records: (0..items)
                        .map(|i| LogRecord {
                            time_unix_nano: i as u64 + 1,
                            body: Some(AnyValue {
                                value: Some(any_value::Value::StringValue(format!("{tag}-{i}"))),
                            }),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec(),
        SignalKind::Metrics => ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: resource(tag),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: format!("{tag}.gauge"),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: (0..items)
                                .map(|i| NumberDataPoint {
                                    time_unix_nano: i as u64 + 1,
                                    value: Some(number_data_point::Value::AsInt(i as i64)),
                                    ..Default::default()
                                })
                                .collect(),
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec(),
    }
}

/// The top-level entries (ResourceSpans / ResourceLogs / ResourceMetrics)
/// of a request or of several concatenated, each re-encoded, sorted: what
/// must be equal on both sides of the agent whatever its batching.
pub fn entries(signal: SignalKind, messages: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for message in messages {
        match signal {
            SignalKind::Traces => out.extend(
                ExportTraceServiceRequest::decode(&message[..])
                    .unwrap()
                    .resource_spans
                    .iter()
                    .map(Message::encode_to_vec),
            ),
            SignalKind::Logs => out.extend(
                ExportLogsServiceRequest::decode(&message[..])
                    .unwrap()
                    .resource_logs
                    .iter()
                    .map(Message::encode_to_vec),
            ),
            SignalKind::Metrics => out.extend(
                ExportMetricsServiceRequest::decode(&message[..])
                    .unwrap()
                    .resource_metrics
                    .iter()
                    .map(Message::encode_to_vec),
            ),
        }
    }
    out.sort();
    out
}

/// The same entries from what an upstream receiver kept.
pub fn kept_entries(signal: SignalKind, kept: Vec<otlp_receiver::decode::Decoded>) -> Vec<Vec<u8>> {
    use otlp_receiver::decode::Decoded;
    let messages: Vec<Vec<u8>> = kept
        .into_iter()
        .map(|decoded| match decoded {
            Decoded::Traces(r) => r.encode_to_vec(),
            Decoded::Logs(r) => r.encode_to_vec(),
            Decoded::Metrics(r) => r.encode_to_vec(),
        })
        .collect();
    entries(signal, &messages)
}

/// An agent on a free loopback port forwarding to `upstream` over gRPC.
pub fn agent(upstream: &str, tweak: impl FnOnce(&mut AgentConfig)) -> Agent {
    let mut config = AgentConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        listen_http: None,
        upstream: OtlpExporterBuilder::new()
            .with_endpoint(upstream)
            .with_timeout(Duration::from_secs(2))
            .without_env(),
        worker_threads: 1,
        export_threads: 1,
        shutdown_timeout: Duration::from_secs(5),
        ..AgentConfig::default()
    };
    tweak(&mut config);
    Agent::start(config).expect("agent starts")
}

/// Ports [`dead_endpoint`] holds: bound, never listening.
static HELD: std::sync::Mutex<Vec<(SocketAddr, socket2::Socket)>> =
    std::sync::Mutex::new(Vec::new());

/// An address nothing listens on, held until [`revive`]: a socket bound
/// to it but not listening refuses every connection, and while it is
/// bound no other test (an upstream started on port 0) can be given the
/// port. A port merely bound and released could be, and a test's dead
/// upstream would then be another test's live one.
pub fn dead_endpoint() -> (SocketAddr, String) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    HELD.lock().unwrap().push((addr, socket));
    (addr, format!("http://{addr}"))
}

/// Lets go of a port [`dead_endpoint`] holds, so an upstream can be
/// started on it ("the upstream comes back"); returns it.
pub fn revive(addr: SocketAddr) -> SocketAddr {
    HELD.lock().unwrap().retain(|(held, _)| *held != addr);
    addr
}

pub fn sdk_signal(signal: SignalKind) -> Signal {
    match signal {
        SignalKind::Traces => Signal::Spans,
        SignalKind::Logs => Signal::Logs,
        SignalKind::Metrics => Signal::Metrics,
    }
}

/// A client of our transports (inside `runtime`), one attempt per send.
pub fn client(
    runtime: &tokio::runtime::Runtime,
    endpoint: &str,
    protocol: Protocol,
    signal: SignalKind,
) -> OtlpRequestSender {
    let _inside = runtime.enter();
    OtlpExporterBuilder::new()
        .with_endpoint(endpoint)
        .with_protocol(protocol)
        .with_timeout(Duration::from_secs(5))
        .without_env()
        .build_request_sender(sdk_signal(signal))
        .unwrap()
}

/// Sends one request to `endpoint` with our transports, on a runtime of
/// its own; the attempt's outcome.
pub fn send_one(
    endpoint: &str,
    protocol: Protocol,
    signal: SignalKind,
    message: Vec<u8>,
) -> Result<otlp_sdk::otlp::Delivered, otlp_sdk::otlp::SendError> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = client(&runtime, endpoint, protocol, signal);
    runtime.block_on(client.send(client.prepare(message)))
}

pub fn path(signal: SignalKind) -> &'static str {
    match signal {
        SignalKind::Traces => "/v1/traces",
        SignalKind::Logs => "/v1/logs",
        SignalKind::Metrics => "/v1/metrics",
    }
}

/// One HTTP/1.1 request; returns the status, the headers (lower-cased
/// names) and the body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: {content_type}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, response[split + 4..].to_vec())
}

/// Waits up to 20 s for `done`.
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A directory under the system's temporary one, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "otlp-agent-{tag}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Span names of everything an upstream kept.
pub fn names(kept: Vec<Decoded>) -> Vec<String> {
    let mut out = Vec::new();
    for decoded in kept {
        if let Decoded::Traces(request) = decoded {
            for rs in request.resource_spans {
                for ss in rs.scope_spans {
                    out.extend(ss.spans.into_iter().map(|s| s.name));
                }
            }
        }
    }
    out
}

/// The gRPC endpoint an agent binary started with piped stdout names in
/// its first line (`{"grpc":"ADDR",...}`).
pub fn grpc_endpoint(child: &mut std::process::Child) -> String {
    use std::io::BufRead as _;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .unwrap();
    let start = line.find("\"grpc\":\"").expect("the address line") + 8;
    let end = line[start..].find('"').unwrap() + start;
    format!("http://{}", &line[start..end])
}
