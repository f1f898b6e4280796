//! What an exporter is told: protocol, endpoint, headers, timeout,
//! compression, retry and TLS, from code first, then the signal's
//! `OTEL_EXPORTER_OTLP_TRACES_*` / `_LOGS_*` variable, then the general
//! `OTEL_EXPORTER_OTLP_*` one, then the specification's defaults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::uri::{PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use super::tls::{Pem, TlsClient, TlsConfig};

/// The telemetry an exporter sends: picks its `OTEL_EXPORTER_OTLP_<SIGNAL>_*`
/// variables, its HTTP path and its gRPC service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Spans: `TRACES`, `/v1/traces`, `TraceService`.
    Spans,
    /// Log records: `LOGS`, `/v1/logs`, `LogsService`.
    Logs,
    /// Metrics: `METRICS`, `/v1/metrics`, `MetricsService`.
    Metrics,
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (`grpc`), default port 4317.
    Grpc,
    /// OTLP/HTTP with binary protobuf bodies (`http/protobuf`), default
    /// port 4318, paths `/v1/traces` and `/v1/logs`.
    HttpProtobuf,
    /// OTLP/HTTP with JSON bodies (`http/json`, `Content-Type:
    /// application/json`): the specification's JSON encoding (the proto3
    /// JSON mapping, with hex trace and span ids and enums as integers).
    /// Port and paths as `http/protobuf`.
    HttpJson,
}

impl Protocol {
    /// The value `OTEL_EXPORTER_OTLP_PROTOCOL` takes for this protocol.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
            Self::HttpJson => "http/json",
        }
    }

    /// Parses an `OTEL_EXPORTER_OTLP_PROTOCOL` value.
    pub fn parse(value: &str) -> Result<Self, OtlpConfigError> {
        match value.trim() {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            "http/json" => Ok(Self::HttpJson),
            other => Err(OtlpConfigError::UnsupportedProtocol(other.to_owned())),
        }
    }
}

/// Request body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Bodies sent as encoded (`none`).
    None,
    /// gzip (`gzip`): `Content-Encoding: gzip` over HTTP, the `gzip`
    /// message encoding over gRPC.
    Gzip,
    /// Zstandard (`zstd`): `Content-Encoding: zstd` over HTTP, the `zstd`
    /// message encoding over gRPC.
    Zstd,
}

impl Compression {
    /// The value `OTEL_EXPORTER_OTLP_COMPRESSION` takes for this
    /// compression, which is also its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }

    /// Parses an `OTEL_EXPORTER_OTLP_COMPRESSION` value; `None` for one
    /// that is not `none`, `gzip` or `zstd`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "none" => Some(Self::None),
            "gzip" => Some(Self::Gzip),
            "zstd" => Some(Self::Zstd),
            _ => None,
        }
    }
}

/// How failed requests are retried.
///
/// Only answers the OTLP specification calls retryable are retried: gRPC
/// `UNAVAILABLE`, `CANCELLED`, `DEADLINE_EXCEEDED`, `ABORTED`,
/// `OUT_OF_RANGE`, `DATA_LOSS`, and `RESOURCE_EXHAUSTED` when the server
/// sends a `RetryInfo`; HTTP 429, 502, 503 and 504; and failures to
/// connect. A server's `RetryInfo` / `Retry-After` delay replaces the
/// backoff for that attempt. Every attempt and every wait stays inside the
/// exporter's timeout, so one export never takes longer than it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Requests per export, the first included; `1` disables retry.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled per retry up to `max_backoff`,
    /// each wait drawn at random from its upper half (jitter).
    pub initial_backoff: Duration,
    /// Longest wait between attempts unless the server asks for longer.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Six attempts, 50 ms doubling to at most 5 s.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtlpConfigError {
    /// The endpoint is not an absolute `http://` or `https://`
    /// `host[:port][/path]` URL (over gRPC, `host:port` alone is accepted
    /// too).
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A CA certificate, client certificate or client key that cannot be
    /// used: unreadable, no PEM in it, or a key that does not fit its
    /// certificate.
    Certificate {
        /// The variable (`OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE`, ...) or
        /// the [`TlsConfig`] method that named it.
        setting: String,
        /// The file, when it came from one.
        path: Option<String>,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS settings that cannot work: a server name that is neither a DNS
    /// name nor an IP address, or no TLS protocol version available.
    Tls(String),
    /// A protocol other than `grpc`, `http/protobuf` or `http/json`.
    UnsupportedProtocol(String),
    /// A header name or value set in code that HTTP cannot carry.
    InvalidHeader(String),
    /// A retry policy with no attempt, or a timeout of zero.
    InvalidSetting(&'static str),
    /// The exporter's I/O runtime could not start.
    Runtime(String),
}

impl fmt::Display for OtlpConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidEndpoint { endpoint, reason } => {
                write!(f, "invalid OTLP endpoint {endpoint:?}: {reason}")
            }
            Self::Certificate {
                setting,
                path: Some(path),
                reason,
            } => write!(f, "OTLP TLS: {setting} names {path:?}: {reason}"),
            Self::Certificate {
                setting,
                path: None,
                reason,
            } => write!(f, "OTLP TLS: {setting}: {reason}"),
            Self::Tls(why) => write!(f, "OTLP TLS: {why}"),
            Self::UnsupportedProtocol(p) => write!(
                f,
                "unsupported OTLP protocol {p:?}: expected \"grpc\", \"http/protobuf\" or \
                 \"http/json\""
            ),
            Self::InvalidHeader(h) => write!(f, "invalid OTLP header {h:?}"),
            Self::InvalidSetting(what) => write!(f, "invalid OTLP exporter setting: {what}"),
            Self::Runtime(e) => write!(f, "starting the OTLP exporter's runtime: {e}"),
        }
    }
}

impl std::error::Error for OtlpConfigError {}

/// Everything an exporter needs to send, resolved and checked.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub protocol: Protocol,
    /// gRPC: the server's origin; HTTP: the full URL posted to.
    pub url: Uri,
    pub headers: HeaderMap,
    pub timeout: Duration,
    pub compression: Compression,
    pub retry: RetryPolicy,
    /// Set for an `https` endpoint.
    pub tls: Option<Arc<TlsClient>>,
}

/// Settings set in code; `None` means "from the environment, else the
/// default".
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    pub protocol: Option<Protocol>,
    pub endpoint: Option<String>,
    pub headers: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    pub compression: Option<Compression>,
    pub retry: RetryPolicy,
    pub tls: TlsConfig,
    pub insecure: Option<bool>,
    pub ignore_env: bool,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

fn signal_word(signal: Signal) -> &'static str {
    match signal {
        Signal::Spans => "TRACES",
        Signal::Logs => "LOGS",
        Signal::Metrics => "METRICS",
    }
}

/// The HTTP path of a signal.
pub(crate) fn signal_path(signal: Signal) -> &'static str {
    match signal {
        Signal::Spans => "/v1/traces",
        Signal::Logs => "/v1/logs",
        Signal::Metrics => "/v1/metrics",
    }
}

/// A variable's value and name: the signal's own first, then the general
/// one. Empty values count as unset, as the specification says.
fn env(signal: Signal, name: &str) -> Option<(String, String, bool)> {
    let specific = format!("OTEL_EXPORTER_OTLP_{}_{name}", signal_word(signal));
    let general = format!("OTEL_EXPORTER_OTLP_{name}");
    [(specific, true), (general, false)]
        .into_iter()
        .find_map(|(var, is_specific)| {
            std::env::var(&var)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| (v, var, is_specific))
        })
}

impl Settings {
    pub(crate) fn resolve(&self, signal: Signal) -> Result<Resolved, OtlpConfigError> {
        let env = |name: &str| {
            if self.ignore_env {
                None
            } else {
                env(signal, name)
            }
        };
        let protocol = match self.protocol {
            Some(p) => p,
            None => match env("PROTOCOL") {
                Some((value, _, _)) => Protocol::parse(&value)?,
                None => Protocol::Grpc,
            },
        };
        // A URL from code or a signal's own variable is used as given; the
        // general variable names a base, to which HTTP adds the signal's
        // path (the specification's rule). An HTTP URL from code with no
        // path gets the signal's path too.
        let (endpoint, is_base) = match &self.endpoint {
            Some(url) => (url.clone(), true),
            None => match env("ENDPOINT") {
                Some((value, _, specific)) => (value, !specific),
                None => (
                    match protocol {
                        Protocol::Grpc => "http://localhost:4317",
                        Protocol::HttpProtobuf | Protocol::HttpJson => "http://localhost:4318",
                    }
                    .to_owned(),
                    true,
                ),
            },
        };
        let insecure = match self.insecure {
            Some(insecure) => insecure,
            None => env("INSECURE").is_some_and(|(value, var, _)| {
                match value.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        tracing::warn!("ignoring {var}={value:?}: expected \"true\" or \"false\"");
                        false
                    }
                }
            }),
        };
        let url = parse_endpoint(
            &endpoint,
            protocol,
            signal,
            is_base,
            self.endpoint.is_some(),
            insecure,
        )?;
        let tls = if url.scheme() == Some(&Scheme::HTTPS) {
            // Each part from code, else the signal's variable, else the
            // general one; files are read and checked here, once.
            let from_env = |name: &str| env(name).map(|(path, var, _)| Pem::file(path.trim(), var));
            let config = TlsConfig {
                ca: self.tls.ca.clone().or_else(|| from_env("CERTIFICATE")),
                client_cert: self
                    .tls
                    .client_cert
                    .clone()
                    .or_else(|| from_env("CLIENT_CERTIFICATE")),
                client_key: self
                    .tls
                    .client_key
                    .clone()
                    .or_else(|| from_env("CLIENT_KEY")),
                server_name: self.tls.server_name.clone(),
            };
            let alpn: &'static [u8] = match protocol {
                Protocol::Grpc => b"h2",
                Protocol::HttpProtobuf | Protocol::HttpJson => b"http/1.1",
            };
            let host = url.host().unwrap_or_default();
            Some(Arc::new(TlsClient::new(&config, host, alpn)?))
        } else {
            None
        };

        let mut headers = HeaderMap::new();
        if let Some((value, var, _)) = env("HEADERS") {
            for (name, value) in parse_header_list(&value, &var) {
                headers.append(name, value);
            }
        }
        for (name, value) in &self.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| OtlpConfigError::InvalidHeader(name.clone()))?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|_| OtlpConfigError::InvalidHeader(format!("{name}: {value}")))?;
            headers.insert(name, value);
        }

        let timeout = match self.timeout {
            Some(t) => t,
            None => env("TIMEOUT")
                .and_then(|(value, var, _)| match value.trim().parse::<u64>() {
                    Ok(ms) if ms > 0 => Some(Duration::from_millis(ms)),
                    _ => {
                        tracing::warn!(
                            "ignoring {var}={value:?}: not a positive number of milliseconds"
                        );
                        None
                    }
                })
                .unwrap_or(DEFAULT_TIMEOUT),
        };
        if timeout.is_zero() {
            return Err(OtlpConfigError::InvalidSetting(
                "timeout must be above zero",
            ));
        }
        let compression = match self.compression {
            Some(c) => c,
            None => match env("COMPRESSION") {
                Some((value, var, _)) => Compression::parse(&value).unwrap_or_else(|| {
                    tracing::warn!(
                        "ignoring {var}={value:?}: expected \"gzip\", \"zstd\" or \"none\""
                    );
                    Compression::None
                }),
                None => Compression::None,
            },
        };
        if self.retry.max_attempts == 0 {
            return Err(OtlpConfigError::InvalidSetting(
                "retry max_attempts must be at least 1",
            ));
        }
        Ok(Resolved {
            protocol,
            url,
            headers,
            timeout,
            compression,
            retry: self.retry,
            tls,
        })
    }
}

/// The metric exporter's temporality: from code, else
/// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` (`cumulative`,
/// `delta` or `lowmemory`, any case, as opentelemetry-otlp reads it), else
/// cumulative. A value that is none of these is ignored with a warning.
pub(crate) fn resolve_temporality(
    from_code: Option<opentelemetry_sdk::metrics::Temporality>,
    ignore_env: bool,
) -> opentelemetry_sdk::metrics::Temporality {
    use opentelemetry_sdk::metrics::Temporality;
    const VAR: &str = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";
    if let Some(t) = from_code {
        return t;
    }
    if ignore_env {
        return Temporality::Cumulative;
    }
    match std::env::var(VAR) {
        Ok(value) if !value.trim().is_empty() => value.trim().parse().unwrap_or_else(|()| {
            tracing::warn!(
                "ignoring {VAR}={value:?}: expected \"cumulative\", \"delta\" or \"lowmemory\""
            );
            Temporality::Cumulative
        }),
        _ => Temporality::Cumulative,
    }
}

fn parse_endpoint(
    endpoint: &str,
    protocol: Protocol,
    signal: Signal,
    is_base: bool,
    from_code: bool,
    insecure: bool,
) -> Result<Uri, OtlpConfigError> {
    let invalid = |reason: &str| OtlpConfigError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    let mut uri: Uri = endpoint
        .trim()
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    match uri.scheme() {
        Some(s) if *s == Scheme::HTTP || *s == Scheme::HTTPS => {}
        Some(_) => return Err(invalid("the scheme must be http or https")),
        // The specification: a gRPC endpoint without a scheme uses TLS
        // unless OTEL_EXPORTER_OTLP_INSECURE is true.
        None if protocol == Protocol::Grpc && uri.authority().is_some() => {
            let mut parts = uri.into_parts();
            parts.scheme = Some(if insecure {
                Scheme::HTTP
            } else {
                Scheme::HTTPS
            });
            parts.path_and_query = Some(PathAndQuery::from_static("/"));
            uri = Uri::from_parts(parts).map_err(|e| invalid(&e.to_string()))?;
        }
        None => return Err(invalid("not an absolute URL (http://host:port)")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    let path = uri.path();
    let full_path = match protocol {
        // gRPC names its method in the path; the endpoint is an origin.
        Protocol::Grpc => "/".to_owned(),
        Protocol::HttpProtobuf | Protocol::HttpJson
            if is_base && !(from_code && path.len() > 1) =>
        {
            let query = uri.query().map_or_else(String::new, |q| format!("?{q}"));
            format!(
                "{}{}{query}",
                path.trim_end_matches('/'),
                signal_path(signal)
            )
        }
        Protocol::HttpProtobuf | Protocol::HttpJson => uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
    };
    let mut parts = uri.into_parts();
    parts.path_and_query =
        Some(PathAndQuery::try_from(full_path.as_str()).map_err(|e| invalid(&e.to_string()))?);
    Uri::from_parts(parts).map_err(|e| invalid(&e.to_string()))
}

/// `key1=value1,key2=value2` with percent-encoded values, as the
/// specification defines `OTEL_EXPORTER_OTLP_HEADERS`. An entry that is
/// not a valid header is skipped with a warning (the others still apply).
fn parse_header_list(list: &str, var: &str) -> Vec<(HeaderName, HeaderValue)> {
    list.split(',')
        .filter(|entry| !entry.trim().is_empty())
        .filter_map(|entry| {
            let parsed = entry.split_once('=').and_then(|(k, v)| {
                let name = HeaderName::try_from(percent_decode(k.trim())?).ok()?;
                let value = HeaderValue::try_from(percent_decode(v.trim())?).ok()?;
                Some((name, value))
            });
            if parsed.is_none() {
                tracing::warn!("ignoring the entry {entry:?} of {var}: not key=value");
            }
            parsed
        })
        .collect()
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(protocol: Protocol, endpoint: &str, signal: Signal) -> Result<Uri, OtlpConfigError> {
        Settings {
            protocol: Some(protocol),
            endpoint: Some(endpoint.to_owned()),
            ignore_env: true,
            ..Settings::default()
        }
        .resolve(signal)
        .map(|r| r.url)
    }

    #[test]
    fn http_endpoints_get_the_signal_path_only_when_they_have_none() {
        let http = Protocol::HttpProtobuf;
        let url = resolve(http, "http://127.0.0.1:4318", Signal::Spans).unwrap();
        assert_eq!(url.to_string(), "http://127.0.0.1:4318/v1/traces");
        let url = resolve(http, "http://h:1/", Signal::Logs).unwrap();
        assert_eq!(url.to_string(), "http://h:1/v1/logs");
        let url = resolve(http, "http://h:1/?tenant=a", Signal::Spans).unwrap();
        assert_eq!(url.to_string(), "http://h:1/v1/traces?tenant=a");
        let url = resolve(http, "http://h:1/custom/path", Signal::Logs).unwrap();
        assert_eq!(url.to_string(), "http://h:1/custom/path");
        let url = resolve(Protocol::Grpc, "http://h:4317/ignored", Signal::Spans).unwrap();
        assert_eq!(url.to_string(), "http://h:4317/");
    }

    #[test]
    fn bad_endpoints_are_typed_errors() {
        for bad in ["not a url", "ftp://h:1", "http://"] {
            assert!(
                matches!(
                    resolve(Protocol::Grpc, bad, Signal::Spans),
                    Err(OtlpConfigError::InvalidEndpoint { .. })
                ),
                "{bad}"
            );
        }
        // Only gRPC takes an endpoint without a scheme.
        assert!(matches!(
            resolve(Protocol::HttpProtobuf, "127.0.0.1:4318", Signal::Spans),
            Err(OtlpConfigError::InvalidEndpoint { .. })
        ));
        assert_eq!(
            Protocol::parse("http/xml"),
            Err(OtlpConfigError::UnsupportedProtocol("http/xml".into()))
        );
    }

    #[test]
    fn a_grpc_endpoint_without_a_scheme_is_tls_unless_insecure() {
        let settings = |insecure| Settings {
            protocol: Some(Protocol::Grpc),
            endpoint: Some("127.0.0.1:4317".to_owned()),
            insecure: Some(insecure),
            ignore_env: true,
            ..Settings::default()
        };
        let secure = settings(false).resolve(Signal::Spans).unwrap();
        assert_eq!(secure.url.to_string(), "https://127.0.0.1:4317/");
        assert!(secure.tls.is_some());
        let plain = settings(true).resolve(Signal::Logs).unwrap();
        assert_eq!(plain.url.to_string(), "http://127.0.0.1:4317/");
        assert!(plain.tls.is_none());
        // A scheme decides by itself.
        let mut https = settings(true);
        https.endpoint = Some("https://collector:4317".to_owned());
        assert!(https.resolve(Signal::Spans).unwrap().tls.is_some());
    }

    #[test]
    fn protocol_names_round_trip_and_json_posts_to_the_signal_paths() {
        for p in [Protocol::Grpc, Protocol::HttpProtobuf, Protocol::HttpJson] {
            assert_eq!(Protocol::parse(p.as_str()), Ok(p));
        }
        assert_eq!(Protocol::parse(" http/json "), Ok(Protocol::HttpJson));
        let json = Protocol::HttpJson;
        let url = resolve(json, "http://127.0.0.1:4318", Signal::Spans).unwrap();
        assert_eq!(url.to_string(), "http://127.0.0.1:4318/v1/traces");
        let url = resolve(json, "http://h:1/", Signal::Logs).unwrap();
        assert_eq!(url.to_string(), "http://h:1/v1/logs");
        let url = resolve(json, "http://h:1/custom", Signal::Logs).unwrap();
        assert_eq!(url.to_string(), "http://h:1/custom");
        let default = Settings {
            protocol: Some(json),
            ignore_env: true,
            ..Settings::default()
        }
        .resolve(Signal::Spans)
        .unwrap();
        assert_eq!(default.url.to_string(), "http://localhost:4318/v1/traces");
    }

    #[test]
    fn compression_names_round_trip() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            assert_eq!(Compression::parse(c.as_str()), Some(c));
        }
        assert_eq!(Compression::parse(" zstd "), Some(Compression::Zstd));
        assert_eq!(Compression::parse("br"), None);
    }

    #[test]
    fn header_lists_are_percent_decoded_and_bad_entries_skipped() {
        let parsed = parse_header_list("api-key=a%20b, x-two = 2 ,broken,=x,k=%zz", "V");
        let pairs: Vec<(String, String)> = parsed
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("api-key".into(), "a b".into()),
                ("x-two".into(), "2".into())
            ]
        );
    }

    #[test]
    fn zero_attempts_or_timeout_are_rejected() {
        let mut s = Settings {
            ignore_env: true,
            ..Settings::default()
        };
        s.retry.max_attempts = 0;
        assert!(matches!(
            s.resolve(Signal::Spans),
            Err(OtlpConfigError::InvalidSetting(_))
        ));
        s.retry.max_attempts = 1;
        s.timeout = Some(Duration::ZERO);
        assert!(matches!(
            s.resolve(Signal::Spans),
            Err(OtlpConfigError::InvalidSetting(_))
        ));
    }
}
