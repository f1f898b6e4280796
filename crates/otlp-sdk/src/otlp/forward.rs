//! Sending requests that are already OTLP protobuf: what a forwarding
//! agent needs from our transports. One call is one attempt; the caller
//! owns the retry loop, because a forwarder retries for as long as its
//! queue allows, where an exporter stops at its export timeout.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::answer::{self, Failure};
use super::bodies::Bodies;
use super::config::{OtlpConfigError, Protocol, Resolved, RetryPolicy, Settings, Signal};
use super::tls::TlsError;
use super::transport::Transport;

/// Sends serialized `Export*ServiceRequest` messages of one signal to one
/// endpoint, over gRPC or HTTP/protobuf, with the builder's compression,
/// headers, TLS and per-attempt timeout; built by
/// [`OtlpExporterBuilder::build_request_sender`](super::OtlpExporterBuilder::build_request_sender).
///
/// It holds no thread of its own: its connections live on the Tokio
/// runtime it was built in, and [`send`](Self::send) runs there.
pub struct OtlpRequestSender {
    transport: Transport,
    endpoint: Arc<str>,
    timeout: Duration,
    retry: RetryPolicy,
    bodies: Bodies,
}

/// What a server answered to a request it accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivered {
    /// Items it accepted the request for but rejected (an OTLP partial
    /// success); not to be retried, as the specification says.
    pub rejected_items: u64,
    /// The partial success's message, when there was one.
    pub message: String,
}

/// How an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// Worth another attempt (UNAVAILABLE, RESOURCE_EXHAUSTED, 429, 503,
    /// a refused connection, ...); `retry_after` is the delay the server
    /// asked for (`RetryInfo`, `Retry-After`), if it did.
    Retryable {
        /// What happened, for logs.
        reason: String,
        /// The server's requested delay.
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help: the server refused the request itself
    /// (INVALID_ARGUMENT, 400, UNAUTHENTICATED, ...).
    Permanent(String),
    /// The TLS connection failed (unknown CA, name mismatch, expired or
    /// missing client certificate).
    Tls(TlsError),
    /// The attempt's timeout passed while the request was on the wire: the
    /// server may have received it.
    TimedOut(Duration),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retryable { reason, .. } => write!(f, "retryable: {reason}"),
            Self::Permanent(reason) => write!(f, "refused: {reason}"),
            Self::Tls(e) => write!(f, "{e}"),
            Self::TimedOut(t) => write!(f, "no answer within {t:?}"),
        }
    }
}

impl std::error::Error for SendError {}

impl fmt::Debug for OtlpRequestSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpRequestSender")
            .field("endpoint", &self.endpoint)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl OtlpRequestSender {
    pub(crate) fn new(settings: &Settings, signal: Signal) -> Result<Self, OtlpConfigError> {
        let config: Resolved = settings.resolve(signal)?;
        if config.protocol == Protocol::HttpJson {
            return Err(OtlpConfigError::UnsupportedProtocol(
                "http/json (a request sender forwards protobuf: grpc or http/protobuf)".to_owned(),
            ));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(OtlpConfigError::Runtime(
                "a request sender is built inside the Tokio runtime that will carry its \
                 connections"
                    .to_owned(),
            ));
        }
        Ok(OtlpRequestSender {
            transport: Transport::new(&config, signal)?,
            endpoint: config.url.to_string().into(),
            timeout: config.timeout,
            retry: config.retry,
            bodies: Bodies::default(),
        })
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The most one attempt may take (the builder's timeout).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The wait before retry number `retry` (0 for the first): the
    /// builder's [`RetryPolicy`] backoff, exponential with jitter drawn
    /// from `seed`.
    pub fn backoff(&self, retry: u32, seed: u64) -> Duration {
        answer::backoff(
            retry,
            self.retry.initial_backoff,
            self.retry.max_backoff,
            seed,
        )
    }

    /// Makes a serialized request ready for [`send`](Self::send): compressed
    /// here for HTTP (once, however often it is sent), left for tonic to
    /// compress over gRPC.
    pub fn prepare(&self, message: Vec<u8>) -> Bytes {
        self.transport.prepare(message, &self.bodies)
    }

    /// One attempt, bounded by the timeout. Cheap to call concurrently:
    /// gRPC multiplexes on one connection, HTTP keeps a pool.
    pub async fn send(&self, body: Bytes) -> Result<Delivered, SendError> {
        let attempt = self.transport.send(body, self.timeout);
        match tokio::time::timeout(self.timeout, attempt).await {
            Err(_elapsed) => Err(SendError::TimedOut(self.timeout)),
            Ok(Ok(response)) => {
                let partial = answer::partial_success(&response);
                Ok(Delivered {
                    rejected_items: partial.rejected,
                    message: partial.message,
                })
            }
            Ok(Err(Failure::Retryable { reason, after })) => Err(SendError::Retryable {
                reason: format!("{}: {reason}", self.endpoint),
                retry_after: after,
            }),
            Ok(Err(Failure::Permanent(reason))) => {
                Err(SendError::Permanent(format!("{}: {reason}", self.endpoint)))
            }
            Ok(Err(Failure::Tls(failure))) => Err(SendError::Tls(TlsError {
                endpoint: self.endpoint.to_string(),
                failure,
            })),
        }
    }
}
