//! Serving TLS: the rustls server configuration built from
//! [`ReceiverTls`] when the receiver starts.

use std::fmt;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::ReceiverError;

/// The receiver's TLS: its certificate and key, and optionally the CAs a
/// client's certificate must chain to (mutual TLS). All PEM text, as a test
/// makes them (rcgen) or reads them from files.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceiverTls {
    /// The server's certificate chain, leaf first (PEM).
    pub certificate_chain_pem: Vec<u8>,
    /// The server certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub private_key_pem: Vec<u8>,
    /// CA certificates (PEM). When set, every client must present a
    /// certificate that chains to one of them.
    pub client_ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for ReceiverTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs.
        f.debug_struct("ReceiverTls")
            .field("certificate_chain_pem", &self.certificate_chain_pem.len())
            .field("private_key_pem", &"<redacted>")
            .field("mutual", &self.client_ca_pem.is_some())
            .finish()
    }
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, ReceiverError> {
    let bad = |why: String| ReceiverError::InvalidConfig(format!("TLS {what}: {why}"));
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".to_owned()));
    }
    Ok(certs)
}

impl ReceiverTls {
    /// The server configuration, offering HTTP/2 and HTTP/1.1 by ALPN.
    pub(crate) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, ReceiverError> {
        let bad = |why: String| ReceiverError::InvalidConfig(format!("TLS: {why}"));
        let chain = certificates(&self.certificate_chain_pem, "certificate chain")?;
        let key = PrivateKeyDer::from_pem_slice(&self.private_key_pem)
            .map_err(|e| bad(format!("no PEM private key: {e}")))?;
        // The same provider as otlp-sdk's exporters (see its tls.rs for
        // why ring although rustls 0.23.48 deprecates it).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?;
        let builder = match &self.client_ca_pem {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates(pem, "client CA")? {
                    roots
                        .add(cert)
                        .map_err(|e| bad(format!("client CA: {e}")))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| bad(format!("client CA: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| bad(format!("the key does not fit the certificate: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
