//! Certificates made in the test with rcgen: CAs, server certificates
//! (valid, expired, for another name) and client certificates, as PEM.
#![allow(dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    date_time_ymd,
};

/// A certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Identity {
    pub cert: String,
    pub key: String,
}

/// A certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's own certificate, PEM: what a peer trusts.
    pub pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let pem = params.self_signed(&key).expect("CA certificate").pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose, expired: bool) -> Identity {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.extended_key_usages = vec![usage];
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        Identity {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self) -> Identity {
        self.issue(
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
            false,
        )
    }

    /// A server certificate for another name only.
    pub fn server_for(&self, name: &str) -> Identity {
        self.issue(&[name], ExtendedKeyUsagePurpose::ServerAuth, false)
    }

    /// A server certificate for 127.0.0.1 that expired in 2021.
    pub fn expired_server(&self) -> Identity {
        self.issue(
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
            true,
        )
    }

    /// A client certificate.
    pub fn client(&self) -> Identity {
        self.issue(
            &["exporter.test"],
            ExtendedKeyUsagePurpose::ClientAuth,
            false,
        )
    }
}

/// The receiver's TLS: `server`, and for mutual TLS the CA clients need.
pub fn receiver_tls(server: &Identity, client_ca: Option<&Ca>) -> otlp_receiver::ReceiverTls {
    otlp_receiver::ReceiverTls {
        certificate_chain_pem: server.cert.clone().into_bytes(),
        private_key_pem: server.key.clone().into_bytes(),
        client_ca_pem: client_ca.map(|ca| ca.pem.clone().into_bytes()),
    }
}

/// A directory of its own under the target's temporary directory, removed
/// when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("otlp-sdk-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    /// Writes `contents` to `name` in the directory; returns its path.
    pub fn write(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write");
        path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
