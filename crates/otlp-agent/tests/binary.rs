//! The `otlp-agent` program: it announces its ports, forwards, flushes on
//! SIGTERM, and refuses a bad setting with exit status 2.
// Sockets and child processes: Miri runs the crate's unit tests and the
// disk log's model test instead.
#![cfg(not(miri))]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use common::*;
use otlp_agent::SignalKind;
use otlp_receiver::{Receiver, ReceiverConfig};
use otlp_sdk::otlp::Protocol;

const AGENT: &str = env!("CARGO_BIN_EXE_otlp-agent");

fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let start = line.find(&format!("\"{name}\":\"")).expect(name) + name.len() + 4;
    let end = line[start..].find('"').unwrap() + start;
    &line[start..end]
}

#[test]
fn sigterm_flushes_what_was_acknowledged() {
    // The upstream answers slowly, so spans are still queued or in flight
    // when the signal comes.
    let upstream = Receiver::start(ReceiverConfig {
        latency: std::time::Duration::from_millis(200),
        ..ReceiverConfig::default()
    })
    .unwrap();
    let mut child = Command::new(AGENT)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--listen-http",
            "none",
            "--max-concurrent-exports",
            "1",
            "--worker-threads",
            "1",
            "--export-threads",
            "1",
            "--metrics-addr",
            "127.0.0.1:0",
            "--endpoint",
            &upstream.endpoint(),
        ])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let grpc = field(&line, "grpc").to_owned();
    assert_eq!(field(&line, "http"), grpc, "one port serves both: {line}");
    assert!(line.contains("\"metrics\":\"127.0.0.1:"), "{line}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = client(
        &runtime,
        &format!("http://{grpc}"),
        Protocol::Grpc,
        SignalKind::Traces,
    );
    runtime.block_on(async {
        for i in 0..20 {
            let message = request(SignalKind::Traces, &format!("t{i}"), 10);
            client.send(client.prepare(message)).await.unwrap();
        }
    });
    // SAFETY: `kill` with a child's pid and a valid signal number has no
    // memory effects in this process.
    let killed = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(killed, 0);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("accepted 200, exported 200"), "{stderr}");
    assert!(stderr.contains("left unsent 0"), "{stderr}");
    assert_eq!(upstream.stop().unique_items(), 200);
}

#[test]
fn a_bad_setting_exits_2_naming_the_key() {
    let output = Command::new(AGENT)
        .args(["--batch-max-items", "lots"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("batch-max-items"), "{stderr}");
    let output = Command::new(AGENT)
        .env("OTLP_AGENT_MAX_ELAPSED", "a while")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("OTLP_AGENT_MAX_ELAPSED"),
        "{output:?}"
    );
    let help = Command::new(AGENT).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--queue-max-bytes"));
}
