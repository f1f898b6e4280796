//! TLS for `https://` endpoints: what the user configures ([`TlsConfig`]),
//! the rustls client configuration built from it once, when the exporter is
//! built, and the connector both transports dial through (hyper's client
//! for OTLP/HTTP, tonic's channel for OTLP/gRPC), so that a TLS failure is
//! recognised the same way on both.
//!
//! A TLS failure can surface late: under TLS 1.3 a server that wants a
//! client certificate says so with an alert after the client considers
//! the handshake done, and the client reads it as an error on the
//! connection, wrapped by hyper or h2 in their own errors. So the streams
//! this connector hands out note every rustls error they see in a
//! [`FailureLog`], and an attempt that failed asks the log whether a TLS
//! failure happened while it ran.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::config::OtlpConfigError;

/// Where a certificate or key comes from, and which setting named it (for
/// the error when it cannot be used).
#[derive(Clone)]
pub(crate) enum Pem {
    File { path: PathBuf, setting: String },
    Memory { pem: Vec<u8>, setting: String },
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        match self {
            Pem::File { path, setting } => write!(f, "{setting}({})", path.display()),
            Pem::Memory { pem, setting } => write!(f, "{setting}({} bytes)", pem.len()),
        }
    }
}

impl Pem {
    pub(crate) fn file(path: impl Into<PathBuf>, setting: impl Into<String>) -> Self {
        Pem::File {
            path: path.into(),
            setting: setting.into(),
        }
    }

    fn error(&self, reason: impl Into<String>) -> OtlpConfigError {
        let (setting, path) = match self {
            Pem::File { path, setting } => (setting, Some(path.display().to_string())),
            Pem::Memory { setting, .. } => (setting, None),
        };
        OtlpConfigError::Certificate {
            setting: setting.clone(),
            path,
            reason: reason.into(),
        }
    }

    /// The file's bytes (read once, so a certificate and its key come from
    /// the same moment's files).
    fn bytes(&self) -> Result<Vec<u8>, OtlpConfigError> {
        match self {
            Pem::File { path, .. } => std::fs::read(path).map_err(|e| self.error(e.to_string())),
            Pem::Memory { pem, .. } => Ok(pem.clone()),
        }
    }

    fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, OtlpConfigError> {
        let bytes = self.bytes()?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(format!("not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(self.error("no PEM certificate (-----BEGIN CERTIFICATE-----) in it"));
        }
        Ok(certs)
    }

    fn private_key(&self) -> Result<PrivateKeyDer<'static>, OtlpConfigError> {
        let bytes = self.bytes()?;
        PrivateKeyDer::from_pem_slice(&bytes)
            .map_err(|e| self.error(format!("no PEM private key in it: {e}")))
    }
}

/// TLS settings of an exporter, for [`with_tls`]: the CA certificates the
/// server's certificate must chain to, a client certificate and key for
/// mutual TLS, and the name the server's certificate must carry.
///
/// They apply to `https://` endpoints (and to gRPC endpoints given without
/// a scheme, unless insecure). Unset parts come from the environment:
/// `OTEL_EXPORTER_OTLP_{TRACES_,LOGS_,}CERTIFICATE`, `…CLIENT_CERTIFICATE`
/// and `…CLIENT_KEY`, each a path to a PEM file. Files are read and checked
/// when the exporter is built; a file that cannot be read or holds no
/// usable PEM is an [`OtlpConfigError::Certificate`] naming the setting and
/// the path.
///
/// [`with_tls`]: super::OtlpExporterBuilder::with_tls
///
/// ```
/// use otlp_sdk::otlp::TlsConfig;
///
/// let tls = TlsConfig::new()
///     .with_ca_certificate_file("/etc/otel/ca.pem")
///     .with_client_identity_files("/etc/otel/client.pem", "/etc/otel/client.key")
///     .with_server_name("collector.internal");
/// # let _ = tls;
/// ```
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    pub(crate) ca: Option<Pem>,
    pub(crate) client_cert: Option<Pem>,
    pub(crate) client_key: Option<Pem>,
    pub(crate) server_name: Option<String>,
}

impl TlsConfig {
    /// Nothing set: the default trust store, no client certificate, the
    /// endpoint's host as the server name.
    pub fn new() -> Self {
        Self::default()
    }

    /// A PEM file of one or more CA certificates. The server's certificate
    /// must chain to one of them; they replace the default trust store.
    pub fn with_ca_certificate_file(mut self, path: impl AsRef<Path>) -> Self {
        self.ca = Some(Pem::file(
            path.as_ref(),
            "TlsConfig::with_ca_certificate_file",
        ));
        self
    }

    /// The same as [`with_ca_certificate_file`](Self::with_ca_certificate_file)
    /// with the PEM text in memory.
    pub fn with_ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca = Some(Pem::Memory {
            pem: pem.into(),
            setting: "TlsConfig::with_ca_certificate_pem".to_owned(),
        });
        self
    }

    /// A client certificate (PEM, leaf first, then any intermediates) and
    /// its private key (PEM: PKCS#8, PKCS#1 or SEC1), presented to servers
    /// that ask for one (mutual TLS).
    pub fn with_client_identity_files(
        mut self,
        certificate: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Self {
        let setting = "TlsConfig::with_client_identity_files";
        self.client_cert = Some(Pem::file(certificate.as_ref(), setting));
        self.client_key = Some(Pem::file(key.as_ref(), setting));
        self
    }

    /// The same as [`with_client_identity_files`](Self::with_client_identity_files)
    /// with the PEM text in memory.
    pub fn with_client_identity_pem(
        mut self,
        certificate: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        let setting = "TlsConfig::with_client_identity_pem";
        self.client_cert = Some(Pem::Memory {
            pem: certificate.into(),
            setting: setting.to_owned(),
        });
        self.client_key = Some(Pem::Memory {
            pem: key.into(),
            setting: setting.to_owned(),
        });
        self
    }

    /// The DNS name (or IP address) the server's certificate must be valid
    /// for, and the SNI sent; the endpoint's host by default.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }
}

/// A checked client configuration: what a connection needs.
#[derive(Debug)]
pub(crate) struct TlsClient {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

/// The trust anchors used when no CA is configured.
fn default_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    #[cfg(feature = "webpki-roots")]
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    #[cfg(not(feature = "webpki-roots"))]
    {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!("reading the system's trust store: {error}");
        }
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        if ignored > 0 {
            tracing::debug!("{ignored} certificate(s) of the system's trust store are unusable");
        }
        if added == 0 {
            // Every handshake will fail with an unknown issuer, which names
            // the problem where it bites; a CA from TlsConfig or
            // OTEL_EXPORTER_OTLP_CERTIFICATE avoids the store altogether.
            tracing::warn!(
                "the system's trust store has no usable certificate; https endpoints need a CA \
                 certificate (OTEL_EXPORTER_OTLP_CERTIFICATE or TlsConfig)"
            );
        }
    }
    roots
}

impl TlsClient {
    /// Reads and checks everything; `alpn` is the protocol offered (`h2`
    /// for gRPC, `http/1.1` for OTLP/HTTP).
    pub(crate) fn new(
        tls: &TlsConfig,
        host: &str,
        alpn: &'static [u8],
    ) -> Result<Self, OtlpConfigError> {
        let roots = match &tls.ca {
            None => default_roots(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in ca.certificates()? {
                    roots
                        .add(cert)
                        .map_err(|e| ca.error(format!("not a usable CA certificate: {e}")))?;
                }
                roots
            }
        };
        // ring, not aws-lc-rs: it builds with a C compiler alone (no cmake,
        // no NASM, a far shorter build). rustls 0.23.48 deprecates ring's
        // provider for lacking post-quantum key exchange, which only means
        // the handshake offers the classical groups (X25519, P-256, P-384).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| OtlpConfigError::Tls(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match (&tls.client_cert, &tls.client_key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = cert.certificates()?;
                let key_der = key.private_key()?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| key.error(format!("the key does not fit the certificate: {e}")))?
            }
            (Some(cert), None) => {
                return Err(cert.error("a client certificate needs its key (CLIENT_KEY)"));
            }
            (None, Some(key)) => {
                return Err(key.error("a client key needs its certificate (CLIENT_CERTIFICATE)"));
            }
        };
        config.alpn_protocols = vec![alpn.to_vec()];
        let name = tls.server_name.clone().unwrap_or_else(|| {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned()
        });
        let server_name = ServerName::try_from(name.clone()).map_err(|_| {
            OtlpConfigError::Tls(format!(
                "server name {name:?} is neither a DNS name nor an IP address"
            ))
        })?;
        Ok(TlsClient {
            config: Arc::new(config),
            server_name,
        })
    }
}

/// Why a TLS connection to the server failed. None of these is retried:
/// the next attempt would meet the same certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The server's certificate does not chain to a trusted CA (the
    /// configured CA certificates, else the default trust store).
    UnknownIssuer,
    /// The server's certificate is not valid for the name connected to.
    NameMismatch {
        /// The name the certificate was checked against.
        server_name: String,
    },
    /// The server's certificate has expired.
    Expired,
    /// The server's certificate is not valid yet.
    NotYetValid,
    /// The server requires a client certificate and none is configured.
    ClientCertificateRequired,
    /// The server refused the client certificate presented (it does not
    /// trust its issuer, or finds it expired or unfit); the server's alert.
    ClientCertificateRejected(String),
    /// Any other TLS failure, as rustls words it.
    Other(String),
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownIssuer => {
                f.write_str("the server's certificate is not signed by a trusted CA")
            }
            Self::NameMismatch { server_name } => write!(
                f,
                "the server's certificate is not valid for the name {server_name:?}"
            ),
            Self::Expired => f.write_str("the server's certificate has expired"),
            Self::NotYetValid => f.write_str("the server's certificate is not valid yet"),
            Self::ClientCertificateRequired => f.write_str(
                "the server requires a client certificate and none is configured \
                 (CLIENT_CERTIFICATE / CLIENT_KEY)",
            ),
            Self::ClientCertificateRejected(alert) => {
                write!(f, "the server refused the client certificate ({alert})")
            }
            Self::Other(why) => write!(f, "TLS failed: {why}"),
        }
    }
}

impl TlsFailure {
    fn from_rustls(error: &rustls::Error, server_name: &ServerName<'_>) -> Self {
        use rustls::Error;
        match error {
            Error::InvalidCertificate(cert) => match cert {
                CertificateError::UnknownIssuer => Self::UnknownIssuer,
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => Self::NameMismatch {
                    server_name: server_name.to_str().into_owned(),
                },
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    Self::Expired
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    Self::NotYetValid
                }
                other => Self::Other(format!("invalid server certificate: {other:?}")),
            },
            Error::AlertReceived(AlertDescription::CertificateRequired) => {
                Self::ClientCertificateRequired
            }
            Error::AlertReceived(
                alert @ (AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::AccessDenied),
            ) => Self::ClientCertificateRejected(format!("{alert:?}")),
            other => Self::Other(other.to_string()),
        }
    }
}

/// A TLS failure and the endpoint it happened with; what
/// [`OtlpStatsReader::last_tls_error`](super::OtlpStatsReader::last_tls_error)
/// returns, and what a failed export's message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    /// The endpoint the exporter sends to.
    pub endpoint: String,
    /// What went wrong.
    pub failure: TlsFailure,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS with {}: {}", self.endpoint, self.failure)
    }
}

impl std::error::Error for TlsError {}

/// The TLS failures the connections of one transport have met, with when:
/// an attempt asks for one that happened after it started.
#[derive(Debug, Default)]
pub(crate) struct FailureLog(Mutex<Option<(Instant, TlsFailure)>>);

impl FailureLog {
    fn note(&self, failure: TlsFailure) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), failure));
    }

    /// A TLS failure met at or after `started`.
    pub(crate) fn since(&self, started: Instant) -> Option<TlsFailure> {
        let last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match &*last {
            Some((at, failure)) if *at >= started => Some(failure.clone()),
            _ => None,
        }
    }
}

/// Notes a rustls error carried by `error`, if it carries one.
fn note_io(error: &io::Error, log: &FailureLog, server_name: &ServerName<'_>) {
    if let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        log.note(TlsFailure::from_rustls(tls, server_name));
    }
}

/// Dials TCP (hyper's connector: DNS, nodelay, connect timeout), then TLS
/// for `https` URIs when a client configuration is set.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    tcp: HttpConnector,
    tls: Option<Arc<TlsClient>>,
    log: Arc<FailureLog>,
    /// TLS whatever the URI's scheme says (see [`Connector::behind_tonic`]).
    tls_for_every_scheme: bool,
}

impl Connector {
    pub(crate) fn new(
        timeout: std::time::Duration,
        tls: Option<Arc<TlsClient>>,
        log: Arc<FailureLog>,
    ) -> Self {
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(timeout));
        // The scheme is ours to handle: https goes through TLS below.
        tcp.enforce_http(false);
        Connector {
            tcp,
            tls,
            log,
            tls_for_every_scheme: false,
        }
    }

    /// For tonic's channel, which is given an `http://` URI: when tonic is
    /// built with one of its own TLS features (any crate in the graph may
    /// turn one on, opentelemetry-otlp's `tls-ring` among them), its
    /// channel refuses an `https://` URI it has no TLS configuration of its
    /// own for, before our connector is asked. The TLS is ours either way:
    /// this connector then speaks TLS for every URI when it has a client
    /// configuration, and the requests still carry the `https` origin.
    pub(crate) fn behind_tonic(mut self) -> Self {
        self.tls_for_every_scheme = true;
        self
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Conn>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = if self.tls_for_every_scheme || uri.scheme_str() == Some("https") {
            self.tls.clone()
        } else {
            None
        };
        let https_without_tls = uri.scheme_str() == Some("https") && tls.is_none();
        let tcp = self.tcp.call(uri);
        let log = Arc::clone(&self.log);
        Box::pin(async move {
            if https_without_tls {
                return Err("an https URI with no TLS configuration".into());
            }
            let tcp = tcp.await?.into_inner();
            let Some(tls) = tls else {
                return Ok(TokioIo::new(Conn::Plain(tcp)));
            };
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config));
            match connector.connect(tls.server_name.clone(), tcp).await {
                Ok(stream) => Ok(TokioIo::new(Conn::Tls {
                    stream: Box::new(stream),
                    tls,
                    log,
                    failed: None,
                })),
                Err(e) => {
                    note_io(&e, &log, &tls.server_name);
                    Err(e.into())
                }
            }
        })
    }
}

/// A connection, plain or TLS; a TLS one notes the rustls errors its reads
/// and writes meet.
#[derive(Debug)]
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls {
        stream: Box<tokio_rustls::client::TlsStream<TcpStream>>,
        tls: Arc<TlsClient>,
        log: Arc<FailureLog>,
        /// A write or read error kept while the peer's alert is read.
        failed: Option<io::Error>,
    },
}

impl Conn {
    /// Notes the rustls error a read or write met. A plain I/O error (a
    /// reset, a broken pipe) on a TLS connection is often a server that
    /// sent an alert and closed, and a write that raced the alert fails
    /// before anyone read it: the alert is then read first (the peer has
    /// closed, so the read ends at once), and the write's error returned
    /// after.
    fn noted<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let Conn::Tls {
            stream,
            tls,
            log,
            failed,
        } = self
        else {
            return result;
        };
        let error = match result {
            Poll::Ready(Err(e)) if is_rustls(&e) => {
                note_io(&e, log, &tls.server_name);
                return Poll::Ready(Err(e));
            }
            // Only when the peer has gone, so the read ends at once; any
            // other error is returned as it is.
            Poll::Ready(Err(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                ) =>
            {
                e
            }
            other => return other,
        };
        *failed = Some(error);
        Self::read_alert(stream, tls, log, failed, cx)
    }

    /// Reads what the peer sent before closing, noting a rustls error;
    /// then returns the stashed I/O error.
    fn read_alert<T>(
        stream: &mut tokio_rustls::client::TlsStream<TcpStream>,
        tls: &TlsClient,
        log: &FailureLog,
        failed: &mut Option<io::Error>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        let mut scratch = [0u8; 512];
        // A peer that has gone sent at most a few records; one that keeps
        // sending is not waited for past 32 KiB.
        for _ in 0..64 {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut *stream).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => continue,
                Poll::Ready(Ok(())) => break,
                Poll::Ready(Err(alert)) => {
                    note_io(&alert, log, &tls.server_name);
                    break;
                }
            }
        }
        Poll::Ready(Err(failed
            .take()
            .unwrap_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))))
    }

    /// A stashed error still waiting for the alert read.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Option<Poll<io::Result<T>>> {
        match self {
            Conn::Tls {
                stream,
                tls,
                log,
                failed: failed @ Some(_),
            } => Some(Self::read_alert(stream, tls, log, failed, cx)),
            _ => None,
        }
    }
}

fn is_rustls(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<rustls::Error>())
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(stashed) = this.pending(cx) {
            return stashed;
        }
        let result = match this {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls { stream, .. } => Pin::new(stream.as_mut()).poll_read(cx, buf),
        };

        this.noted(cx, result)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(stashed) = this.pending(cx) {
            return stashed;
        }
        let result = match this {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls { stream, .. } => Pin::new(stream.as_mut()).poll_write(cx, buf),
        };
        this.noted(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(stashed) = this.pending(cx) {
            return stashed;
        }
        let result = match this {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls { stream, .. } => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        };
        this.noted(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls { stream, .. } => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(stashed) = this.pending(cx) {
            return stashed;
        }
        let result = match this {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls { stream, .. } => Pin::new(stream.as_mut()).poll_flush(cx),
        };
        this.noted(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls { stream, .. } => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        match self {
            Conn::Plain(s) => s.connected(),
            Conn::Tls { stream, .. } => {
                let connected = stream.get_ref().0.connected();
                if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        }
    }
}
