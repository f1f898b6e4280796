//! One request, already encoded, to an OTLP server: gRPC through tonic with
//! a codec that passes the bytes through, or OTLP/HTTP (protobuf or JSON
//! bodies) through hyper;
//! both dial through the [`Connector`] of `tls.rs` (plain TCP, or TLS for
//! `https`). An attempt ends with the response body or a classified
//! [`Failure`]; retrying is the caller's business.

use std::error::Error as _;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use super::answer::{self, Failure};
use super::bodies::Bodies;
use super::config::Signal;
use super::config::{Compression, OtlpConfigError, Protocol, Resolved};
use super::tls::{Connector, FailureLog};

/// The most of a response body read: OTLP answers are a few bytes, an
/// error body a few hundred.
const RESPONSE_LIMIT: usize = 1 << 20;

/// How much later than the exporter's own deadline tonic's is: the
/// exporter's fires first (see `GrpcTransport::send`).
const DEADLINE_SLACK: Duration = Duration::from_millis(100);

/// zstd level of HTTP bodies: the fastest, as gzip's is.
const ZSTD_LEVEL: i32 = 1;

pub(crate) struct Transport {
    kind: Kind,
    /// TLS failures the transport's connections met.
    log: Arc<FailureLog>,
}

/// Both boxed: one is built per exporter, and their sizes depend on the
/// features tonic and hyper were built with.
enum Kind {
    Grpc(Box<GrpcTransport>),
    Http(Box<HttpTransport>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.kind {
            Kind::Grpc(_) => "Transport::Grpc",
            Kind::Http(_) => "Transport::Http",
        })
    }
}

impl Transport {
    /// Must run inside the runtime that will carry the connections (tonic's
    /// channel starts its worker there).
    pub(crate) fn new(config: &Resolved, signal: Signal) -> Result<Self, OtlpConfigError> {
        let log = Arc::new(FailureLog::default());
        let connector = Connector::new(config.timeout, config.tls.clone(), Arc::clone(&log));
        let kind = match config.protocol {
            Protocol::Grpc => Kind::Grpc(Box::new(GrpcTransport::new(config, signal, connector)?)),
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                Kind::Http(Box::new(HttpTransport::new(config, connector)))
            }
        };
        Ok(Transport { kind, log })
    }

    /// Whether bodies and answers are OTLP/JSON rather than protobuf.
    pub(crate) fn is_json(&self) -> bool {
        matches!(&self.kind, Kind::Http(http) if http.json)
    }

    /// Prepares a body for the wire. gRPC compresses inside tonic; HTTP
    /// bodies are compressed here, once for every attempt. Either way the
    /// buffer returns to `bodies` when the export is done with it.
    pub(crate) fn prepare(&self, encoded: Vec<u8>, bodies: &Bodies) -> Bytes {
        let compression = match &self.kind {
            Kind::Http(http) => http.compression,
            Kind::Grpc(_) => Compression::None,
        };
        let mut compressed = match compression {
            Compression::None => return bodies.lend(encoded),
            Compression::Gzip | Compression::Zstd => bodies.take(),
        };
        compressed.reserve(encoded.len() / 4 + 64);
        // Writing into a Vec cannot fail; an encoder that could not start
        // (zstd out of memory) leaves the body empty, which the server
        // refuses, rather than sending it mislabelled.
        let compressed = if compression == Compression::Gzip {
            let mut gz = flate2::write::GzEncoder::new(compressed, flate2::Compression::fast());
            let _ = gz.write_all(&encoded);
            gz.finish().ok()
        } else {
            zstd::stream::write::Encoder::new(compressed, ZSTD_LEVEL)
                .and_then(|mut z| {
                    z.write_all(&encoded)?;
                    z.finish()
                })
                .ok()
        };
        bodies.give_back(encoded);
        match compressed {
            Some(compressed) => bodies.lend(compressed),
            None => Bytes::new(),
        }
    }

    /// One attempt. Whatever error hyper or tonic wrapped it in, a TLS
    /// failure met on the way is reported as one.
    pub(crate) async fn send(&self, body: Bytes, timeout: Duration) -> Result<Bytes, Failure> {
        let started = Instant::now();
        let result = match &self.kind {
            Kind::Grpc(grpc) => grpc.send(body, timeout).await,
            Kind::Http(http) => http.send(body).await,
        };
        match result {
            Err(_) => match self.log.since(started) {
                Some(tls) => Err(Failure::Tls(tls)),
                None => result,
            },
            ok => ok,
        }
    }
}

/// Error text with its causes, which is where hyper and tonic say what
/// actually went wrong ("Connection refused").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

pub(crate) struct GrpcTransport {
    client: tonic::client::Grpc<Channel>,
    path: PathAndQuery,
    metadata: MetadataMap,
}

impl GrpcTransport {
    fn new(
        config: &Resolved,
        signal: Signal,
        connector: Connector,
    ) -> Result<Self, OtlpConfigError> {
        let invalid = |e: &dyn std::error::Error| OtlpConfigError::InvalidEndpoint {
            endpoint: config.url.to_string(),
            reason: chain(e),
        };
        let origin = config.url.clone();
        // tonic dials an `http://` URI (see `Connector::behind_tonic`); the
        // requests keep the endpoint's own origin, `https` included.
        let mut dialed = origin.clone().into_parts();
        if dialed.scheme == Some(http::uri::Scheme::HTTPS) {
            dialed.scheme = Some(http::uri::Scheme::HTTP);
        }
        let dialed = Uri::from_parts(dialed).map_err(|e| invalid(&e))?;
        let endpoint = Endpoint::from(dialed).connect_timeout(config.timeout);
        let channel = endpoint.connect_with_connector_lazy(connector.behind_tonic());
        let mut client = tonic::client::Grpc::with_origin(channel, origin);
        match config.compression {
            Compression::None => {}
            Compression::Gzip => client = client.send_compressed(CompressionEncoding::Gzip),
            Compression::Zstd => client = client.send_compressed(CompressionEncoding::Zstd),
        }
        let path = PathAndQuery::from_static(match signal {
            Signal::Spans => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        });
        Ok(GrpcTransport {
            client,
            path,
            metadata: metadata(&config.headers)?,
        })
    }

    async fn send(&self, body: Bytes, timeout: Duration) -> Result<Bytes, Failure> {
        let mut client = self.client.clone();
        client.ready().await.map_err(|e| Failure::Retryable {
            reason: format!("connecting: {}", chain(&e)),
            after: None,
        })?;
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = self.metadata.clone();
        // The server learns the deadline (`grpc-timeout`); the exporter's
        // own timer, a little earlier, ends the wait, so that a request
        // left unanswered is reported as in doubt rather than as tonic's
        // CANCELLED, which reads as a refusal.
        request.set_timeout(timeout + DEADLINE_SLACK);
        match client.unary(request, self.path.clone(), PassThrough).await {
            Ok(response) => Ok(response.into_inner()),
            Err(status) => {
                let message = match status.source().map(chain) {
                    Some(causes) if causes.contains(status.message()) => causes,
                    Some(causes) => format!("{}: {causes}", status.message()),
                    None => status.message().to_owned(),
                };
                Err(answer::grpc_failure(
                    status.code(),
                    &message,
                    status.details(),
                ))
            }
        }
    }
}

fn metadata(headers: &HeaderMap) -> Result<MetadataMap, OtlpConfigError> {
    let mut map = MetadataMap::new();
    for (name, value) in headers {
        // Binary metadata (`-bin`) is base64 on the wire; OTLP headers are
        // text, so such names are refused rather than mangled.
        let key = MetadataKey::from_bytes(name.as_str().as_bytes())
            .map_err(|_| OtlpConfigError::InvalidHeader(format!("{name} (not gRPC metadata)")))?;
        let value = MetadataValue::try_from(value.as_bytes()).map_err(|_| {
            OtlpConfigError::InvalidHeader(format!("{name} (a value gRPC metadata cannot carry)"))
        })?;
        map.append(key, value);
    }
    Ok(map)
}

/// A codec for messages that are already protobuf: the request is copied
/// into tonic's frame as it is, the response handed back undecoded.
#[derive(Debug, Clone, Copy, Default)]
struct PassThrough;

impl Codec for PassThrough {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = PassThrough;
    type Decoder = PassThrough;

    fn encoder(&mut self) -> Self::Encoder {
        PassThrough
    }

    fn decoder(&mut self) -> Self::Decoder {
        PassThrough
    }
}

impl Encoder for PassThrough {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for PassThrough {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

pub(crate) struct HttpTransport {
    client: Client<Connector, Full<Bytes>>,
    url: Uri,
    headers: HeaderMap,
    compression: Compression,
    /// `http/json`: JSON bodies, JSON answers.
    json: bool,
}

impl HttpTransport {
    fn new(config: &Resolved, connector: Connector) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let mut headers = config.headers.clone();
        let json = config.protocol == Protocol::HttpJson;
        headers.insert(
            CONTENT_TYPE,
            http::HeaderValue::from_static(if json {
                "application/json"
            } else {
                "application/x-protobuf"
            }),
        );
        let compression = config.compression;
        if compression != Compression::None {
            headers.insert(
                CONTENT_ENCODING,
                http::HeaderValue::from_static(compression.as_str()),
            );
        }
        HttpTransport {
            client,
            url: config.url.clone(),
            headers,
            compression,
            json,
        }
    }

    async fn send(&self, body: Bytes) -> Result<Bytes, Failure> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.url.clone();
        *request.headers_mut() = self.headers.clone();
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| Failure::Retryable {
                reason: chain(&e),
                after: None,
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(answer::retry_after);
        // A body that cannot be read leaves only the status to go by.
        let body = Limited::new(response.into_body(), RESPONSE_LIMIT)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if status.is_success() {
            Ok(body)
        } else {
            Err(answer::http_failure(status, retry_after, &body, self.json))
        }
    }
}
