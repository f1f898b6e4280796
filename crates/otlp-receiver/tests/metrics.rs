//! Metrics over real loopback sockets: `POST /v1/metrics` and
//! `MetricsService/Export` are decoded and counted (metrics and data points
//! of every aggregation), and hostile requests get the same answers as for
//! traces and logs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
    metric::Data,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use otlp_receiver::{Receiver, ReceiverConfig};
use prost::Message;

const READ_BOUND: Duration = Duration::from_secs(20);
const PB: &str = "application/x-protobuf";
const GRPC_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

fn attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn point(i: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: vec![attr("i", &i.to_string())],
        time_unix_nano: 1_700_000_000_000_000_000 + i,
        ..Default::default()
    }
}

/// One metric of each aggregation; `points` data points in the sum, one in
/// each of the others: `points + 4` data points in 5 metrics.
fn request(points: u64, tag: u64) -> Vec<u8> {
    let metric = |name: &str, data: Data| Metric {
        name: name.into(),
        data: Some(data),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![attr("service.name", "meter")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    metric(
                        "sum",
                        Data::Sum(Sum {
                            data_points: (0..points).map(|i| point(i + tag)).collect(),
                            aggregation_temporality: 2,
                            is_monotonic: true,
                        }),
                    ),
                    metric(
                        "gauge",
                        Data::Gauge(Gauge {
                            data_points: vec![point(tag)],
                        }),
                    ),
                    metric(
                        "histogram",
                        Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                count: 2,
                                time_unix_nano: tag,
                                ..Default::default()
                            }],
                            aggregation_temporality: 1,
                        }),
                    ),
                    metric(
                        "exponential",
                        Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![ExponentialHistogramDataPoint {
                                count: 3,
                                time_unix_nano: tag,
                                ..Default::default()
                            }],
                            aggregation_temporality: 1,
                        }),
                    ),
                    metric(
                        "summary",
                        Data::Summary(Summary {
                            data_points: vec![SummaryDataPoint {
                                count: 1,
                                time_unix_nano: tag,
                                ..Default::default()
                            }],
                        }),
                    ),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn post(addr: SocketAddr, content_type: &str, extra: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(READ_BOUND)).expect("timeout");
    let head = format!(
        "POST /v1/metrics HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let code = String::from_utf8_lossy(&response)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, response)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("in memory");
    enc.finish().expect("in memory")
}

fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// One unary gRPC call to `MetricsService/Export`; the `grpc-status`.
async fn grpc_call(addr: SocketAddr, encoding: Option<&str>, body: Vec<u8>) -> Option<String> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(connection);
    let mut builder = http::Request::post(format!("http://{addr}{GRPC_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(encoding) = encoding {
        builder = builder.header("grpc-encoding", encoding);
    }
    let request = builder.body(Full::new(Bytes::from(body))).expect("request");
    let response = tokio::time::timeout(READ_BOUND, sender.send_request(request))
        .await
        .expect("answered in time")
        .expect("response");
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
    in_headers.or(in_trailers)
}

#[test]
fn http_metrics_are_counted_by_metric_and_data_point() {
    let receiver = Receiver::start(ReceiverConfig::default()).expect("start");
    let addr = receiver.addr();
    assert_eq!(receiver.metrics_url(), format!("http://{addr}/v1/metrics"));
    let body = request(3, 0);
    assert_eq!(post(addr, PB, "", &body).0, 200);
    let other = request(3, 100);
    assert_eq!(
        post(addr, PB, "Content-Encoding: gzip\r\n", &gzip(&other)).0,
        200
    );
    // The same request again: a duplicate.
    assert_eq!(post(addr, PB, "", &body).0, 200);
    let stats = receiver.stop();
    assert_eq!((stats.metrics, stats.data_points), (15, 21));
    assert_eq!(stats.items(), 21);
    assert_eq!((stats.duplicate_requests, stats.duplicate_items), (1, 7));
    assert_eq!(stats.unique_items(), 14);
    assert_eq!(stats.service_names.get("meter"), Some(&21));
    assert_eq!((stats.http_requests, stats.gzip_requests), (3, 1));
    assert_eq!(stats.spans + stats.log_records, 0);
}

#[test]
fn hostile_metrics_requests_get_the_specified_status() {
    let receiver = Receiver::start(ReceiverConfig {
        max_body_bytes: 4096,
        ..ReceiverConfig::default()
    })
    .expect("start");
    let addr = receiver.addr();
    let body = request(2, 0);
    assert_eq!(post(addr, PB, "", &[0xff; 9]).0, 400, "malformed");
    assert_eq!(
        post(addr, PB, "", &body[..body.len() - 3]).0,
        400,
        "truncated"
    );
    assert_eq!(post(addr, "text/plain", "", &body).0, 415, "content type");
    assert_eq!(
        post(addr, PB, "Content-Encoding: gzip\r\n", b"not gzip").0,
        400,
        "bad gzip"
    );
    assert_eq!(post(addr, PB, "", &request(400, 0)).0, 413, "too large");
    // Still serving.
    assert_eq!(post(addr, PB, "", &body).0, 200);
    let stats = receiver.stop();
    assert_eq!(stats.data_points, 6);
    assert_eq!(stats.rejected_malformed, 2);
    assert_eq!(stats.rejected_media_type, 1);
    assert_eq!(stats.rejected_bad_gzip, 1);
    assert_eq!(stats.rejected_too_large, 1);
}

#[test]
fn a_partial_reject_names_data_points() {
    let receiver = Receiver::start(ReceiverConfig {
        partial_reject: 2,
        ..ReceiverConfig::default()
    })
    .expect("start");
    let (code, response) = post(receiver.addr(), PB, "", &request(1, 0));
    assert_eq!(code, 200);
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a body");
    let answer = ExportMetricsServiceResponse::decode(&response[split + 4..]).expect("decodes");
    assert_eq!(
        answer.partial_success.map(|p| p.rejected_data_points),
        Some(2)
    );
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_metrics_valid_and_hostile_calls() {
    let receiver = Receiver::start(ReceiverConfig {
        max_body_bytes: 4096,
        ..ReceiverConfig::default()
    })
    .expect("start");
    let addr = receiver.addr();
    let body = request(4, 0);
    assert_eq!(
        grpc_call(addr, None, frame(0, &body)).await.as_deref(),
        Some("0")
    );
    assert_eq!(
        grpc_call(addr, Some("gzip"), frame(1, &gzip(&request(4, 9))))
            .await
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        grpc_call(addr, None, frame(0, &[0xff; 6])).await.as_deref(),
        Some("3"),
        "malformed"
    );
    assert_eq!(
        grpc_call(addr, None, frame(0, &request(400, 0)))
            .await
            .as_deref(),
        Some("8"),
        "too large"
    );
    let stats = receiver.stop();
    assert_eq!((stats.metrics, stats.data_points), (10, 16));
    assert_eq!(stats.grpc_requests, 2);
    assert_eq!(stats.rejected_malformed, 1);
    assert_eq!(stats.rejected_too_large, 1);
}
