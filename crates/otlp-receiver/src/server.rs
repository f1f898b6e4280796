//! The server: one hyper connection handler per accepted socket (HTTP/1.1
//! and HTTP/2 on the same port), dispatching by path to OTLP/HTTP
//! (protobuf or JSON, answered in the request's encoding) or to
//! opentelemetry-proto's generated tonic services.
//!
//! The gRPC path reads and checks the body itself before tonic sees it
//! (size limit, read timeout, framing, `grpc-encoding`), then hands tonic an
//! uncompressed frame. Tonic's codec answers a protobuf decode failure with
//! INTERNAL; OTLP wants INVALID_ARGUMENT for a malformed request, so a
//! failure that comes back before the handler ran is rewritten to it.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tonic::Code;
use tonic::codegen::Service;

use crate::ReceiverConfig;
use crate::count::{Counters, Encoding, Protocol};
use crate::decode::{self, Decoded, Format, Rejection, SignalKind};
use crate::sink::{self, SinkRequest, Verdict};

type Body = tonic::body::Body;

const TRACES_GRPC: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
const LOGS_GRPC: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const METRICS_GRPC: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// At most this many `x-` headers per request are recorded.
const CUSTOM_HEADERS: usize = 8;

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) counters: Counters,
    pub(crate) config: ReceiverConfig,
    /// Set when serving TLS.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// Where accepted requests go instead of the counters.
    pub(crate) sink: Option<Arc<dyn crate::Sink>>,
}

impl std::fmt::Debug for dyn crate::Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sink")
    }
}

/// What the body check learned, handed to the gRPC handler through the
/// request's extensions.
#[derive(Debug, Clone)]
struct WireInfo {
    wire_bytes: usize,
    message_bytes: usize,
    encoding: Encoding,
    custom_headers: Arc<Vec<String>>,
    /// Set by the handler: a failure answered without it is tonic's decode.
    handled: Arc<AtomicBool>,
}

/// The generated services' implementation: decode and count.
#[derive(Debug, Clone)]
struct Counting(Arc<Core>);

/// A refusal on purpose (`fail_ratio`).
struct Refused;

impl Core {
    /// Counts (or refuses) a decoded request, then waits the configured
    /// latency.
    async fn finish(
        &self,
        protocol: Protocol,
        decoded: &Decoded,
        wire_bytes: usize,
        message_bytes: usize,
        encoding: Encoding,
        custom_headers: &[String],
    ) -> Result<(), Refused> {
        let refused = self.counters.should_refuse(self.config.fail_ratio);
        if !refused {
            self.counters.accept(
                protocol,
                decoded,
                wire_bytes,
                message_bytes,
                encoding,
                custom_headers,
            );
        }
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        if refused { Err(Refused) } else { Ok(()) }
    }
}

impl Counting {
    async fn grpc<T>(
        &self,
        request: tonic::Request<T>,
        wrap: fn(T) -> Decoded,
    ) -> Result<(), tonic::Status> {
        let Some(info) = request.extensions().get::<WireInfo>().cloned() else {
            return Err(tonic::Status::internal(
                "request did not pass the body check",
            ));
        };
        info.handled.store(true, Ordering::Release);
        let decoded = wrap(request.into_inner());
        self.0
            .finish(
                Protocol::Grpc,
                &decoded,
                info.wire_bytes,
                info.message_bytes,
                info.encoding,
                &info.custom_headers,
            )
            .await
            .map_err(|Refused| {
                if self.0.config.grpc_retry_info {
                    let message = "refused by the receiver's fail ratio; retry after the delay";
                    let details = crate::decode::rpc_status_with_retry_info(
                        tonic::Code::ResourceExhausted as i32,
                        message,
                        self.0.config.retry_after,
                    );
                    tonic::Status::with_details(
                        tonic::Code::ResourceExhausted,
                        message,
                        details.into(),
                    )
                } else {
                    tonic::Status::unavailable("refused by the receiver's fail ratio; retry")
                }
            })
    }
}

#[tonic::async_trait]
impl TraceService for Counting {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.grpc(request, Decoded::Traces).await?;
        Ok(tonic::Response::new(traces_answer(&self.0.config)))
    }
}

#[tonic::async_trait]
impl LogsService for Counting {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.grpc(request, Decoded::Logs).await?;
        Ok(tonic::Response::new(logs_answer(&self.0.config)))
    }
}

#[tonic::async_trait]
impl MetricsService for Counting {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.grpc(request, Decoded::Metrics).await?;
        Ok(tonic::Response::new(metrics_answer(&self.0.config)))
    }
}

/// The message of a partial success on purpose.
const PARTIAL_MESSAGE: &str = "rejected by the receiver's partial_reject setting";

/// The answer to an accepted traces request: a partial success when the
/// receiver is set to reject items.
fn traces_answer(config: &ReceiverConfig) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (config.partial_reject > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::from(config.partial_reject),
            error_message: PARTIAL_MESSAGE.to_owned(),
        }),
    }
}

/// As [`traces_answer`], for logs.
fn logs_answer(config: &ReceiverConfig) -> ExportLogsServiceResponse {
    ExportLogsServiceResponse {
        partial_success: (config.partial_reject > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: i64::from(config.partial_reject),
            error_message: PARTIAL_MESSAGE.to_owned(),
        }),
    }
}

/// The answer to an accepted OTLP/JSON request: `{}`, or the partial
/// success in the proto3 JSON mapping.
fn json_answer(kind: SignalKind, config: &ReceiverConfig) -> Vec<u8> {
    sink::response_json(kind, config.partial_reject.into(), PARTIAL_MESSAGE)
}

/// As [`traces_answer`], for metrics (`rejected_data_points`).
fn metrics_answer(config: &ReceiverConfig) -> ExportMetricsServiceResponse {
    ExportMetricsServiceResponse {
        partial_success: (config.partial_reject > 0).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: i64::from(config.partial_reject),
            error_message: PARTIAL_MESSAGE.to_owned(),
        }),
    }
}

/// Everything a connection needs to answer requests.
#[derive(Clone)]
struct Handler {
    core: Arc<Core>,
    traces: TraceServiceServer<Counting>,
    logs: LogsServiceServer<Counting>,
    metrics: MetricsServiceServer<Counting>,
}

fn header_str<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn custom_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-"))
        .take(CUSTOM_HEADERS)
        .map(|(name, value)| {
            let value: String = String::from_utf8_lossy(value.as_bytes())
                .chars()
                .take(64)
                .collect();
            format!("{name}: {value}")
        })
        .collect()
}

fn plain(status: StatusCode, text: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(Body::new(Full::new(Bytes::from(text.into()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    response
}

/// An OTLP/HTTP answer whose `body` is a message encoded as `format`.
fn answer(status: StatusCode, body: Vec<u8>, format: Format) -> Response<Body> {
    let mut response = Response::new(Body::new(Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(match format {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }),
    );
    response
}

/// Reads a whole body, at most `limit` bytes, within `timeout`.
async fn read_body(body: Incoming, limit: usize, timeout: Duration) -> Result<Bytes, Rejection> {
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(Rejection::TimedOut),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(Rejection::TooLarge { limit })
        }
        Ok(Err(e)) => Err(Rejection::Malformed(format!("the body ended early: {e}"))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, &header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok())
}

impl Handler {
    async fn handle(self, request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
        let path = request.uri().path();
        Ok(match path {
            TRACES_GRPC => {
                let service = self.traces.clone();
                self.grpc(request, SignalKind::Traces, service).await
            }
            LOGS_GRPC => {
                let service = self.logs.clone();
                self.grpc(request, SignalKind::Logs, service).await
            }
            "/v1/traces" => self.http(request, SignalKind::Traces).await,
            METRICS_GRPC => {
                let service = self.metrics.clone();
                self.grpc(request, SignalKind::Metrics, service).await
            }
            "/v1/logs" => self.http(request, SignalKind::Logs).await,
            "/v1/metrics" => self.http(request, SignalKind::Metrics).await,
            _ if is_grpc(request.headers()) => {
                tonic::Status::unimplemented(format!("no OTLP service at {path}")).into_http()
            }
            _ => plain(
                StatusCode::NOT_FOUND,
                "OTLP/HTTP lives at /v1/traces, /v1/logs and /v1/metrics\n",
            ),
        })
    }

    async fn grpc<S>(
        &self,
        request: Request<Incoming>,
        kind: SignalKind,
        mut service: S,
    ) -> Response<Body>
    where
        S: Service<Request<Full<Bytes>>, Response = Response<Body>, Error = Infallible>,
    {
        if request.method() != Method::POST {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "gRPC calls are POSTs\n");
        }
        if !is_grpc(request.headers()) {
            // gRPC over HTTP/2: a wrong content type is answered with 415.
            let why = Rejection::UnsupportedMediaType(
                header_str(request.headers(), &header::CONTENT_TYPE)
                    .unwrap_or("")
                    .to_owned(),
            );
            self.core.counters.reject(&why);
            return plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("{why}\n"));
        }
        if let Some(sink) = &self.core.sink {
            return self.grpc_to_sink(request, kind, Arc::clone(sink)).await;
        }
        let limit = self.core.config.max_body_bytes;
        let encoding = request
            .headers()
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let custom = custom_headers(request.headers());
        let (mut parts, body) = request.into_parts();
        let checked = match read_body(body, limit.saturating_add(5), self.core.config.body_timeout)
            .await
        {
            Ok(bytes) => decode::unframe_grpc(&bytes, encoding.as_deref(), limit).map(|message| {
                let wire = bytes.len();
                // An uncompressed frame goes to tonic as it came.
                let frame = if bytes.first() == Some(&0) {
                    bytes
                } else {
                    Bytes::from(decode::frame_grpc(&message))
                };
                (frame, wire, message.len())
            }),
            Err(why) => Err(why),
        };
        let (frame, wire_bytes, message_bytes) = match checked {
            Ok(checked) => checked,
            Err(why) => {
                self.core.counters.reject(&why);
                return grpc_rejection(&why).into_http();
            }
        };
        parts.headers.remove("grpc-encoding");
        let info = WireInfo {
            wire_bytes,
            message_bytes,
            encoding: Encoding::of(encoding.as_deref()),
            custom_headers: Arc::new(custom),
            handled: Arc::new(AtomicBool::new(false)),
        };
        let handled = Arc::clone(&info.handled);
        parts.extensions.insert(info);
        // The generated services are always ready (`poll_ready` returns
        // Ready), so `call` needs no readiness wait.
        let Ok(mut response) = service
            .call(Request::from_parts(parts, Full::new(frame)))
            .await;
        let failed = response
            .headers()
            .get("grpc-status")
            .is_some_and(|status| status.as_bytes() != b"0");
        if failed && !handled.load(Ordering::Acquire) {
            let why = Rejection::Malformed("the message is not valid protobuf".to_owned());
            self.core.counters.reject(&why);
            response.headers_mut().insert(
                "grpc-status",
                header::HeaderValue::from(Code::InvalidArgument as i32),
            );
        }
        response
    }

    async fn http(&self, request: Request<Incoming>, kind: SignalKind) -> Response<Body> {
        if request.method() != Method::POST {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "OTLP/HTTP takes POST\n");
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("POST"));
            return response;
        }
        let limit = self.core.config.max_body_bytes;
        let headers = request.headers();
        let content_type = header_str(headers, &header::CONTENT_TYPE).map(str::to_owned);
        let content_encoding = header_str(headers, &header::CONTENT_ENCODING).map(str::to_owned);
        let custom = custom_headers(headers);
        // Refuse what cannot succeed before reading a byte of the body. A
        // content type that is neither is answered in protobuf.
        let format = match decode::media_format(content_type.as_deref()) {
            Ok(format) => format,
            Err(why) => {
                self.core.counters.reject(&why);
                return http_rejection(&why, Format::Protobuf);
            }
        };
        if declared_length(headers).is_some_and(|n| n > limit as u64) {
            let why = Rejection::TooLarge { limit };
            self.core.counters.reject(&why);
            return http_rejection(&why, format);
        }
        if let Some(sink) = &self.core.sink {
            let sink = Arc::clone(sink);
            return self.http_to_sink(request, kind, format, sink).await;
        }
        let result =
            match read_body(request.into_body(), limit, self.core.config.body_timeout).await {
                Ok(body) => decode::decode_http(
                    kind,
                    content_type.as_deref(),
                    content_encoding.as_deref(),
                    &body,
                    limit,
                )
                .map(|(decoded, message_bytes)| (decoded, body.len(), message_bytes)),
                Err(why) => Err(why),
            };
        let (decoded, wire_bytes, message_bytes) = match result {
            Ok(ok) => ok,
            Err(why) => {
                self.core.counters.reject(&why);
                return http_rejection(&why, format);
            }
        };
        let encoding = Encoding::of(content_encoding.as_deref());
        let protocol = match format {
            Format::Protobuf => Protocol::HttpProtobuf,
            Format::Json => Protocol::HttpJson,
        };
        match self
            .core
            .finish(
                protocol,
                &decoded,
                wire_bytes,
                message_bytes,
                encoding,
                &custom,
            )
            .await
        {
            Ok(()) => answer(
                StatusCode::OK,
                match (format, kind) {
                    (Format::Json, kind) => json_answer(kind, &self.core.config),
                    (Format::Protobuf, SignalKind::Traces) => {
                        traces_answer(&self.core.config).encode_to_vec()
                    }
                    (Format::Protobuf, SignalKind::Logs) => {
                        logs_answer(&self.core.config).encode_to_vec()
                    }
                    (Format::Protobuf, SignalKind::Metrics) => {
                        metrics_answer(&self.core.config).encode_to_vec()
                    }
                },
                format,
            ),
            Err(Refused) => {
                let mut response = answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    rpc_status(
                        format,
                        Code::Unavailable,
                        "refused by the receiver's fail ratio; retry",
                    ),
                    format,
                );
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    header::HeaderValue::from(self.core.config.retry_after.as_secs()),
                );
                response
            }
        }
    }
}

/// The path of requests when a [`Sink`](crate::Sink) takes them: the same checks,
/// then the sink's verdict as the protocol's answer.
impl Handler {
    async fn grpc_to_sink(
        &self,
        request: Request<Incoming>,
        signal: SignalKind,
        sink: Arc<dyn crate::Sink>,
    ) -> Response<Body> {
        let limit = self.core.config.max_body_bytes;
        let (parts, body) = request.into_parts();
        let encoding = header_str(
            &parts.headers,
            &header::HeaderName::from_static("grpc-encoding"),
        )
        .map(str::to_owned);
        let message =
            match read_body(body, limit.saturating_add(5), self.core.config.body_timeout).await {
                Ok(bytes) => decode::unframe_grpc_bytes(&bytes, encoding.as_deref(), limit)
                    .map(|message| (message, bytes.len())),
                Err(why) => Err(why),
            };
        let (message, wire_bytes) = match message {
            Ok(ok) => ok,
            Err(why) => {
                self.core.counters.reject(&why);
                return grpc_rejection(&why).into_http();
            }
        };
        let verdict = sink
            .export(SinkRequest {
                signal,
                protocol: Protocol::Grpc,
                format: Format::Protobuf,
                message,
                wire_bytes,
                headers: parts.headers,
            })
            .await;
        match verdict {
            Verdict::Accepted {
                rejected_items,
                message,
            } => grpc_ok(&sink::response_message(signal, rejected_items, &message)),
            Verdict::Malformed(why) => {
                let why = Rejection::Malformed(why);
                self.core.counters.reject(&why);
                grpc_rejection(&why).into_http()
            }
            Verdict::Busy {
                reason,
                retry_after,
            } => retry_status(Code::ResourceExhausted, &reason, retry_after).into_http(),
            Verdict::Unavailable {
                reason,
                retry_after,
            } => retry_status(Code::Unavailable, &reason, retry_after).into_http(),
        }
    }

    async fn http_to_sink(
        &self,
        request: Request<Incoming>,
        signal: SignalKind,
        format: Format,
        sink: Arc<dyn crate::Sink>,
    ) -> Response<Body> {
        let limit = self.core.config.max_body_bytes;
        let (parts, body) = request.into_parts();
        let content_encoding = header_str(&parts.headers, &header::CONTENT_ENCODING);
        let message = match read_body(body, limit, self.core.config.body_timeout).await {
            Ok(bytes) => {
                let wire_bytes = bytes.len();
                decode::inflate_http(content_encoding, bytes, limit)
                    .map(|message| (message, wire_bytes))
            }
            Err(why) => Err(why),
        };
        let (message, wire_bytes) = match message {
            Ok(ok) => ok,
            Err(why) => {
                self.core.counters.reject(&why);
                return http_rejection(&why, format);
            }
        };
        let protocol = match format {
            Format::Protobuf => Protocol::HttpProtobuf,
            Format::Json => Protocol::HttpJson,
        };
        let verdict = sink
            .export(SinkRequest {
                signal,
                protocol,
                format,
                message,
                wire_bytes,
                headers: parts.headers,
            })
            .await;
        let (status, code, reason, retry_after) = match verdict {
            Verdict::Accepted {
                rejected_items,
                message,
            } => {
                let body = match format {
                    Format::Protobuf => sink::response_message(signal, rejected_items, &message),
                    Format::Json => sink::response_json(signal, rejected_items, &message),
                };
                return answer(StatusCode::OK, body, format);
            }
            Verdict::Malformed(why) => {
                let why = Rejection::Malformed(why);
                self.core.counters.reject(&why);
                return http_rejection(&why, format);
            }
            Verdict::Busy {
                reason,
                retry_after,
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                Code::ResourceExhausted,
                reason,
                retry_after,
            ),
            Verdict::Unavailable {
                reason,
                retry_after,
            } => (
                StatusCode::SERVICE_UNAVAILABLE,
                Code::Unavailable,
                reason,
                retry_after,
            ),
        };
        let mut response = answer(status, rpc_status(format, code, &reason), format);
        // Whole seconds, rounded up: a client told 0 would come straight back.
        let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(seconds.max(1)),
        );
        response
    }
}

/// A gRPC OK answer carrying `message`: one frame, then `grpc-status: 0`
/// in the trailers.
fn grpc_ok(message: &[u8]) -> Response<Body> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", header::HeaderValue::from_static("0"));
    let body = Full::new(Bytes::from(decode::frame_grpc(message)))
        .with_trailers(async move { Some(Ok(trailers)) });
    let mut response = Response::new(Body::new(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/grpc"),
    );
    response
}

/// A gRPC refusal with a `google.rpc.RetryInfo` asking for `delay`.
fn retry_status(code: Code, reason: &str, delay: Duration) -> tonic::Status {
    let details = decode::rpc_status_with_retry_info(code as i32, reason, delay);
    tonic::Status::with_details(code, reason, details.into())
}

fn is_grpc(headers: &HeaderMap) -> bool {
    header_str(headers, &header::CONTENT_TYPE).is_some_and(|ct| {
        let ct = ct.trim();
        ct == "application/grpc"
            || ct.starts_with("application/grpc+")
            || ct.starts_with("application/grpc;")
    })
}

fn grpc_rejection(why: &Rejection) -> tonic::Status {
    let code = match why {
        Rejection::Malformed(_) | Rejection::BadGzip(_) | Rejection::BadZstd(_) => {
            Code::InvalidArgument
        }
        Rejection::TooLarge { .. } => Code::ResourceExhausted,
        Rejection::UnsupportedEncoding(_) => Code::Unimplemented,
        Rejection::TimedOut => Code::DeadlineExceeded,
        Rejection::UnsupportedMediaType(_) => Code::InvalidArgument,
    };
    tonic::Status::new(code, why.to_string())
}

/// A `google.rpc.Status` encoded as `format`.
fn rpc_status(format: Format, code: Code, message: &str) -> Vec<u8> {
    match format {
        Format::Protobuf => decode::rpc_status(code as i32, message),
        Format::Json => decode::rpc_status_json(code as i32, message),
    }
}

/// The answer to a refused OTLP/HTTP request: the status the specification
/// asks for, with a `google.rpc.Status` body encoded as the request was.
fn http_rejection(why: &Rejection, format: Format) -> Response<Body> {
    let (status, code) = match why {
        Rejection::Malformed(_) | Rejection::BadGzip(_) | Rejection::BadZstd(_) => {
            (StatusCode::BAD_REQUEST, Code::InvalidArgument)
        }
        Rejection::UnsupportedMediaType(_) | Rejection::UnsupportedEncoding(_) => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, Code::InvalidArgument)
        }
        Rejection::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, Code::ResourceExhausted),
        Rejection::TimedOut => (StatusCode::REQUEST_TIMEOUT, Code::DeadlineExceeded),
    };
    answer(status, rpc_status(format, code, &why.to_string()), format)
}

/// Accepts connections until `shutdown` changes.
pub(crate) async fn serve(
    listener: TcpListener,
    core: Arc<Core>,
    mut shutdown: watch::Receiver<bool>,
) {
    let sink = Counting(Arc::clone(&core));
    let limit = core.config.max_body_bytes;
    let handler = Handler {
        traces: TraceServiceServer::new(sink.clone()).max_decoding_message_size(limit),
        logs: LogsServiceServer::new(sink.clone()).max_decoding_message_size(limit),
        metrics: MetricsServiceServer::new(sink).max_decoding_message_size(limit),
        core: Arc::clone(&core),
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(core.config.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(10)))
        .keep_alive_timeout(core.config.header_timeout);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let (builder, handler, wait) =
                        (builder.clone(), handler.clone(), core.config.header_timeout);
                    match &core.tls {
                        Some(tls) => {
                            let tls = tokio_rustls::TlsAcceptor::from(Arc::clone(tls));
                            tokio::spawn(tls_connection(stream, tls, builder, handler, wait))
                        }
                        None => tokio::spawn(connection(stream, builder, handler, wait)),
                    };
                }
                // Out of descriptors and the like: back off, keep serving.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

async fn connection(
    stream: TcpStream,
    builder: hyper_util::server::conn::auto::Builder<TokioExecutor>,
    handler: Handler,
    detect_timeout: Duration,
) {
    let _ = stream.set_nodelay(true);
    // hyper's HTTP/1 header timeout starts only once the protocol is known,
    // and HTTP/2 has none before the preface: a client that sends nothing,
    // or part of the preface, would hold its socket forever. Detection as a
    // whole is bounded instead.
    match tokio::time::timeout(detect_timeout, detect(&stream)).await {
        Ok(Ok(())) => {}
        _ => return,
    }
    let service = hyper::service::service_fn(move |request| handler.clone().handle(request));
    // Errors here are the client's (a reset, a protocol violation); they
    // end only this connection.
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// The client preface every HTTP/2 connection starts with (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How often a connection that has sent part of the HTTP/2 preface is
/// looked at again. Peeking leaves the socket readable, so waiting for
/// readiness would spin; a client that splits the preface is rare.
const PREFACE_POLL: Duration = Duration::from_millis(5);

/// Waits, without consuming anything, until the bytes on `stream` tell
/// HTTP/1 (anything that is not a prefix of the preface) from HTTP/2 (the
/// whole preface). Fails on end of stream or a socket error.
async fn detect(stream: &TcpStream) -> std::io::Result<()> {
    let mut probe = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut probe).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if protocol_known(&probe[..n]) {
            return Ok(());
        }
        tokio::time::sleep(PREFACE_POLL).await;
    }
}

/// Whether `head`, the first bytes of a connection, tells HTTP/1 (it is
/// not a prefix of the HTTP/2 preface) from HTTP/2 (it is the preface).
fn protocol_known(head: &[u8]) -> bool {
    head.len() >= H2_PREFACE.len() || head != &H2_PREFACE[..head.len()]
}

/// Reads from `stream` into `head` until [`protocol_known`]; fails on end
/// of stream or an error.
async fn read_protocol_head<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    head: &mut Vec<u8>,
) -> std::io::Result<()> {
    use tokio::io::AsyncReadExt as _;

    let mut chunk = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream
            .read(&mut chunk[..H2_PREFACE.len() - head.len()])
            .await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&chunk[..n]);
        if protocol_known(head) {
            return Ok(());
        }
    }
}

/// A stream whose first bytes were already read: `head` is read again
/// before the rest of `inner`; writes go straight to `inner`.
struct Prefixed<S> {
    head: Vec<u8>,
    read: usize,
    inner: S,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.read < this.head.len() {
            let n = (this.head.len() - this.read).min(buf.remaining());
            buf.put_slice(&this.head[this.read..this.read + n]);
            this.read += n;
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A TLS connection: the handshake and the first bytes of the first
/// request must come within the header timeout, as a plain connection's
/// first byte must; then it is served as any other.
async fn tls_connection(
    stream: TcpStream,
    tls: tokio_rustls::TlsAcceptor,
    builder: hyper_util::server::conn::auto::Builder<TokioExecutor>,
    handler: Handler,
    header_timeout: Duration,
) {
    use tokio::io::AsyncReadExt as _;
    use tokio::io::AsyncWriteExt as _;

    let _ = stream.set_nodelay(true);
    let mut stream =
        match tokio::time::timeout(header_timeout, tls.accept(stream).into_fallible()).await {
            Ok(Ok(stream)) => stream,
            // The client does not trust us, or has no certificate we trust:
            // rustls has written its alert. Closing at once with the
            // client's next bytes unread would send a reset that can
            // overtake the alert, so the client would see a reset instead
            // of the reason; close our side, then read what the client
            // still sends (at most 64 KiB, within the header timeout).
            Ok(Err((_, mut tcp))) => {
                let _ = tcp.shutdown().await;
                let mut sink = [0u8; 4096];
                let drain = async {
                    for _ in 0..16 {
                        if matches!(tcp.read(&mut sink).await, Ok(0) | Err(_)) {
                            break;
                        }
                    }
                };
                let _ = tokio::time::timeout(header_timeout, drain).await;
                return;
            }
            Err(_) => return,
        };
    // TLS streams cannot be peeked: the bytes that tell the protocol are
    // read, under the same bound as a plain connection's, and handed to
    // hyper ahead of the rest of the stream.
    let mut head = Vec::with_capacity(H2_PREFACE.len());
    match tokio::time::timeout(header_timeout, read_protocol_head(&mut stream, &mut head)).await {
        Ok(Ok(())) => {}
        _ => return,
    }
    let stream = Prefixed {
        head,
        read: 0,
        inner: stream,
    };
    let service = hyper::service::service_fn(move |request| handler.clone().handle(request));
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
