//! Where accepted requests go when the receiver is not counting them: a
//! [`Sink`] gets each request's message bytes once the server has checked
//! its size, framing, encoding and timeouts, and answers with a
//! [`Verdict`] that the server turns into the OTLP answer of the request's
//! protocol.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

use crate::count::Protocol;
use crate::decode::{Format, SignalKind};

/// One accepted request, handed to a [`Sink`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SinkRequest {
    /// The signal, from the path (`/v1/traces`, `TraceService/Export`, ...).
    pub signal: SignalKind,
    /// How it arrived.
    pub protocol: Protocol,
    /// How `message` is encoded: protobuf for gRPC, protobuf or OTLP/JSON
    /// over HTTP as the content type said.
    pub format: Format,
    /// The request message, inflated (no gRPC frame, no compression);
    /// not yet validated.
    pub message: Bytes,
    /// Bytes on the wire (compressed, gRPC frame included).
    pub wire_bytes: usize,
    /// The request's headers (gRPC metadata over gRPC).
    pub headers: HeaderMap,
}

/// A sink's answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Taken: OK, with an OTLP partial success when `rejected_items` is
    /// not zero.
    Accepted {
        /// Items of the request the sink refused for good.
        rejected_items: u64,
        /// Why, when some were.
        message: String,
    },
    /// Not a valid request: HTTP 400 / gRPC `INVALID_ARGUMENT`; the client
    /// must not retry.
    Malformed(String),
    /// Not now, come back later: HTTP 429 with `Retry-After` / gRPC
    /// `RESOURCE_EXHAUSTED` with a `google.rpc.RetryInfo` of `retry_after`
    /// (how OTLP asks a client to slow down).
    Busy {
        /// Why, for the client's logs.
        reason: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// Cannot take anything (shutting down, storage failed): HTTP 503 with
    /// `Retry-After` / gRPC `UNAVAILABLE`; retryable.
    Unavailable {
        /// Why, for the client's logs.
        reason: String,
        /// When to try again.
        retry_after: Duration,
    },
}

impl Verdict {
    /// Everything taken.
    pub fn accepted() -> Self {
        Verdict::Accepted {
            rejected_items: 0,
            message: String::new(),
        }
    }
}

/// The future a [`Sink`] answers with.
pub type VerdictFuture = Pin<Box<dyn Future<Output = Verdict> + Send + 'static>>;

/// What a receiver started with [`Receiver::start_with_sink`](crate::Receiver::start_with_sink)
/// does with the requests it accepts, instead of decoding and counting
/// them.
///
/// `export` runs on the receiver's runtime threads; the request is
/// answered when its future completes, so a sink that must wait (for
/// room in a queue, for a disk write) waits there, and a sink that
/// answers at once costs the client nothing. If the connection goes away
/// first, the future is dropped.
pub trait Sink: Send + Sync + 'static {
    /// Takes one request and says how to answer it.
    fn export(&self, request: SinkRequest) -> VerdictFuture;
}

/// The protobuf response message of `signal`: empty, or a partial success.
pub(crate) fn response_message(signal: SignalKind, rejected: u64, message: &str) -> Vec<u8> {
    let rejected = i64::try_from(rejected).unwrap_or(i64::MAX);
    let partial = rejected > 0;
    let error_message = message.to_owned();
    match signal {
        SignalKind::Traces => ExportTraceServiceResponse {
            partial_success: partial.then_some(ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message,
            }),
        }
        .encode_to_vec(),
        SignalKind::Logs => ExportLogsServiceResponse {
            partial_success: partial.then_some(ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message,
            }),
        }
        .encode_to_vec(),
        SignalKind::Metrics => ExportMetricsServiceResponse {
            partial_success: partial.then_some(ExportMetricsPartialSuccess {
                rejected_data_points: rejected,
                error_message,
            }),
        }
        .encode_to_vec(),
    }
}

/// The same response in the proto3 JSON mapping.
pub(crate) fn response_json(signal: SignalKind, rejected: u64, message: &str) -> Vec<u8> {
    if rejected == 0 {
        return b"{}".to_vec();
    }
    let field = match signal {
        SignalKind::Traces => "rejectedSpans",
        SignalKind::Logs => "rejectedLogRecords",
        SignalKind::Metrics => "rejectedDataPoints",
    };
    let mut partial = serde_json::Map::new();
    partial.insert(
        field.to_owned(),
        serde_json::Value::String(rejected.to_string()),
    );
    partial.insert(
        "errorMessage".to_owned(),
        serde_json::Value::String(message.to_owned()),
    );
    serde_json::json!({ "partialSuccess": partial })
        .to_string()
        .into_bytes()
}
