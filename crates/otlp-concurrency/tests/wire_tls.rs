//! The main job to an `https://` endpoint: the embedded receiver serving a
//! certificate made here, trusted through `OTEL_EXPORTER_OTLP_CERTIFICATE`,
//! over gRPC and HTTP. One test in its own binary, because it changes the
//! process environment.

mod pipeline;

use otlp_receiver::{Receiver, ReceiverConfig, ReceiverTls};

#[test]
fn https_endpoints_work_with_the_certificate_variable() {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = ca_params.self_signed(&ca_key).expect("CA").pem();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("certificate");
    let ca_file = std::env::temp_dir().join(format!("otlp-wire-tls-{}.pem", std::process::id()));
    std::fs::write(&ca_file, ca_pem).expect("write the CA");
    // SAFETY: this binary's only test runs alone; no other thread reads or
    // writes the environment while it changes (each job run starts its
    // threads after this and has joined them before it returns).
    unsafe { std::env::set_var("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca_file) };

    for protocol in ["grpc", "http/protobuf"] {
        let receiver = Receiver::start(ReceiverConfig {
            tls: Some(ReceiverTls {
                certificate_chain_pem: cert.pem().into_bytes(),
                private_key_pem: key.serialize_pem().into_bytes(),
                client_ca_pem: None,
            }),
            ..ReceiverConfig::default()
        })
        .expect("receiver");
        let outcome = pipeline::run(&format!(
            "--duration 300ms --rate 5000 --delay 50ms --protocol {protocol} --endpoint {}",
            receiver.endpoint()
        ));
        let stats = receiver.stop();
        assert!(
            outcome.conserved() && outcome.exit_code() == 0,
            "{protocol}: {outcome}"
        );
        assert!(outcome.runs[0].exported > 0, "{protocol}: {outcome}");
        assert_eq!(stats.spans, outcome.runs[0].exported, "{protocol}");
    }
    // SAFETY: as above.
    unsafe { std::env::remove_var("OTEL_EXPORTER_OTLP_CERTIFICATE") };
    let _ = std::fs::remove_file(&ca_file);
}
