//! An embedded OTLP receiver: OTLP/gRPC (opentelemetry-proto's generated
//! tonic `TraceService` / `LogsService` / `MetricsService`) and OTLP/HTTP,
//! protobuf or JSON (`POST /v1/traces`, `POST /v1/logs`, `POST /v1/metrics`;
//! `application/x-protobuf`, or `application/json` for traces and logs,
//! answered in kind), on one loopback port, decoding every request and
//! counting what arrived; in plain text, or over TLS or mutual TLS
//! ([`ReceiverConfig::tls`]). OTLP/JSON is decoded with opentelemetry-proto's
//! serde support, independent of any encoder under test;
//! [`Receiver::keep_requests`] keeps what was decoded for a test to compare
//! with what it sent.
//!
//! By itself it decodes and counts, so the pipeline example runs end to
//! end with no other process and tests can check what really crossed the
//! socket: items, `service.name`, requests and bytes, span-end to arrival
//! latency, and the CPU its own threads used (to keep it out of a sender's
//! figures). Started with a [`Sink`] ([`Receiver::start_with_sink`]) it
//! hands each checked request's bytes to the sink instead and answers with
//! the sink's [`Verdict`]: how otlp-agent receives what it forwards.
//!
//! Hostile input is answered as OTLP specifies and never panics: malformed
//! or truncated protobuf or JSON → HTTP 400 / gRPC INVALID_ARGUMENT (over
//! HTTP with a `google.rpc.Status` body, JSON for a JSON request); a wrong content
//! type → 415; gzip or zstd that does not inflate → 400 / INVALID_ARGUMENT; a body
//! (compressed or inflated) over [`ReceiverConfig::max_body_bytes`] → 413 /
//! RESOURCE_EXHAUSTED; a client that stalls before its protocol is known
//! (nothing sent, or part of the HTTP/2 preface) or in its HTTP/1 headers →
//! the connection is closed after `header_timeout`; one that stalls in its
//! body → 408 / DEADLINE_EXCEEDED (body timeout); a TLS handshake that fails
//! or does not end within the header timeout closes the connection.
//!
//! ```
//! use otlp_receiver::{Receiver, ReceiverConfig};
//!
//! let receiver = Receiver::start(ReceiverConfig::default()).expect("loopback port");
//! println!("OTLP/gRPC and OTLP/HTTP on {}", receiver.endpoint());
//! let stats = receiver.stop();
//! assert_eq!(stats.spans, 0);
//! ```

mod count;
mod cpu;
pub mod decode;
mod server;
mod sink;
mod tls;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use count::{Protocol, ReceiverStats};
pub use cpu::ThreadCpu;
pub use decode::{Format, SignalKind};
pub use otlp_monitor::Histogram;
pub use sink::{Sink, SinkRequest, Verdict, VerdictFuture};
pub use tls::ReceiverTls;

use count::Counters;
use server::Core;

/// How the receiver listens and behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverConfig {
    /// Where to listen; `127.0.0.1:0` (a free loopback port) by default.
    pub addr: SocketAddr,
    /// Added before answering every request, as a loaded collector would.
    pub latency: Duration,
    /// Share of well-formed requests refused with a retryable answer (gRPC
    /// UNAVAILABLE, HTTP 503 with `Retry-After`), in `0.0..=1.0`.
    pub fail_ratio: f64,
    /// The `Retry-After` an HTTP refusal carries (whole seconds), and the
    /// delay of a gRPC refusal's `RetryInfo` when `grpc_retry_info` is set.
    pub retry_after: Duration,
    /// gRPC refusals are `RESOURCE_EXHAUSTED` with a `google.rpc.RetryInfo`
    /// of `retry_after` (how a loaded collector asks for a pause) instead
    /// of a bare `UNAVAILABLE`.
    pub grpc_retry_info: bool,
    /// When non-zero, every accepted request is answered with an OTLP
    /// partial success rejecting this many items (the request is still
    /// counted as received), to exercise a client's partial-success path.
    pub partial_reject: u32,
    /// Largest request body, compressed or inflated.
    pub max_body_bytes: usize,
    /// How long a connection may take to show its protocol (the whole
    /// HTTP/2 preface, or a first byte that cannot start it), and an HTTP/1
    /// request its headers.
    pub header_timeout: Duration,
    /// How long a request may take to send its body.
    pub body_timeout: Duration,
    /// Threads of the receiver's runtime.
    pub worker_threads: usize,
    /// Serve TLS (mutual TLS with a client CA) instead of plain text; the
    /// handshake must end within `header_timeout`.
    pub tls: Option<ReceiverTls>,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            latency: Duration::ZERO,
            fail_ratio: 0.0,
            retry_after: Duration::from_secs(1),
            grpc_retry_info: false,
            partial_reject: 0,
            max_body_bytes: 16 << 20,
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            worker_threads: 1,
            tls: None,
        }
    }
}

/// Why the receiver did not start.
#[derive(Debug)]
pub enum ReceiverError {
    /// A setting that cannot work, named.
    InvalidConfig(String),
    /// Binding the address or starting the runtime failed.
    Io(std::io::Error),
}

impl fmt::Display for ReceiverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReceiverError::InvalidConfig(why) => write!(f, "invalid receiver config: {why}"),
            ReceiverError::Io(e) => write!(f, "starting the receiver: {e}"),
        }
    }
}

impl std::error::Error for ReceiverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReceiverError::Io(e) => Some(e),
            ReceiverError::InvalidConfig(_) => None,
        }
    }
}

impl ReceiverConfig {
    fn validate(&self) -> Result<(), ReceiverError> {
        let bad = |why: String| Err(ReceiverError::InvalidConfig(why));
        if !(0.0..=1.0).contains(&self.fail_ratio) {
            return bad(format!(
                "fail ratio {} is not within 0..=1",
                self.fail_ratio
            ));
        }
        if self.max_body_bytes == 0 || self.max_body_bytes > u32::MAX as usize {
            return bad(format!(
                "body limit {} is not within 1..=4 GiB",
                self.max_body_bytes
            ));
        }
        if self.worker_threads == 0 {
            return bad("zero worker threads".to_owned());
        }
        if self.header_timeout.is_zero() || self.body_timeout.is_zero() {
            return bad("zero header or body timeout".to_owned());
        }
        Ok(())
    }
}

/// What a stopped receiver saw; see [`Receiver::finish`].
#[derive(Debug, Clone)]
pub struct Finished {
    /// The final counts.
    pub stats: ReceiverStats,
    /// Span-end (log timestamp) to arrival latency, nanoseconds.
    pub latency: Histogram,
    /// CPU time of the receiver's threads; `None` off Linux.
    pub cpu_time: Option<Duration>,
}

/// A running receiver; [`stop`](Self::stop) (or drop) ends it.
pub struct Receiver {
    addr: SocketAddr,
    core: Arc<Core>,
    cpu: Arc<ThreadCpu>,
    shutdown: tokio::sync::watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .field("config", &self.core.config)
            .finish_non_exhaustive()
    }
}

/// Keeps the receiver's threads out of OpenTelemetry for their whole life:
/// a process that receives and also exports its own telemetry (a test, the
/// pipeline example) must not turn hyper's or tonic's `tracing` events on
/// these threads into spans or log records. The guard is never dropped, so
/// the thread stays suppressed; the context is freed with the thread.
fn suppress_telemetry() {
    std::mem::forget(opentelemetry::Context::enter_telemetry_suppressed_scope());
}

impl Receiver {
    /// Binds `config.addr` and serves on the receiver's own runtime
    /// threads (named `otlp-receiver`).
    pub fn start(config: ReceiverConfig) -> Result<Receiver, ReceiverError> {
        Self::serve(config, None)
    }

    /// Binds `config.addr` and hands every accepted request to `sink`
    /// instead of decoding and counting it: the server's checks (sizes,
    /// framing, compression, timeouts, TLS) still run, and requests they
    /// refuse are still counted in [`stats`](Self::stats)' `rejected_*`.
    /// `fail_ratio`, `latency` and `partial_reject` do not apply: the sink
    /// answers.
    pub fn start_with_sink(
        config: ReceiverConfig,
        sink: Arc<dyn Sink>,
    ) -> Result<Receiver, ReceiverError> {
        Self::serve(config, Some(sink))
    }

    fn serve(
        config: ReceiverConfig,
        sink: Option<Arc<dyn Sink>>,
    ) -> Result<Receiver, ReceiverError> {
        config.validate()?;
        let tls = config
            .tls
            .as_ref()
            .map(ReceiverTls::server_config)
            .transpose()?;
        let cpu = Arc::new(ThreadCpu::default());
        let runtime = {
            let (started, stopped) = (Arc::clone(&cpu), Arc::clone(&cpu));
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.worker_threads)
                .max_blocking_threads(1)
                .thread_name("otlp-receiver")
                .on_thread_start(move || {
                    started.thread_started();
                    suppress_telemetry();
                })
                .on_thread_stop(move || stopped.thread_stopped())
                .enable_all()
                .build()
                .map_err(ReceiverError::Io)?
        };
        let listener = std::net::TcpListener::bind(config.addr).map_err(ReceiverError::Io)?;
        listener.set_nonblocking(true).map_err(ReceiverError::Io)?;
        let addr = listener.local_addr().map_err(ReceiverError::Io)?;
        let listener = {
            let _inside = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(ReceiverError::Io)?
        };
        let core = Arc::new(Core {
            counters: Counters::new(),
            config,
            tls,
            sink,
        });
        let (shutdown, watch) = tokio::sync::watch::channel(false);
        runtime.spawn(server::serve(listener, Arc::clone(&core), watch));
        Ok(Receiver {
            addr,
            core,
            cpu,
            shutdown,
            runtime: Some(runtime),
        })
    }

    /// The bound address (the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` (`https://ADDR` when serving TLS): the gRPC
    /// endpoint, and the base of the OTLP/HTTP ones.
    pub fn endpoint(&self) -> String {
        let scheme = if self.core.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The OTLP/HTTP URL for traces, `http://ADDR/v1/traces`.
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.endpoint())
    }

    /// The OTLP/HTTP URL for logs, `http://ADDR/v1/logs`.
    pub fn logs_url(&self) -> String {
        format!("{}/v1/logs", self.endpoint())
    }

    /// The OTLP/HTTP URL for metrics, `http://ADDR/v1/metrics`.
    pub fn metrics_url(&self) -> String {
        format!("{}/v1/metrics", self.endpoint())
    }

    /// The configuration in force.
    pub fn config(&self) -> &ReceiverConfig {
        &self.core.config
    }

    /// Keeps a copy of each of the next `n` accepted requests as decoded
    /// (gRPC, protobuf or JSON alike), for [`take_requests`](Self::take_requests);
    /// replaces an earlier count. Off (`0`) by default.
    pub fn keep_requests(&self, n: usize) {
        self.core.counters.keep(n);
    }

    /// The requests kept since the last call, in the order they were
    /// accepted.
    pub fn take_requests(&self) -> Vec<decode::Decoded> {
        self.core.counters.take_kept()
    }

    /// What has arrived so far.
    pub fn stats(&self) -> ReceiverStats {
        self.core.counters.stats()
    }

    /// Span-end (log timestamp) to arrival latency of every accepted item,
    /// in nanoseconds.
    pub fn latency(&self) -> Histogram {
        self.core.counters.latency()
    }

    /// The same latency for the items accepted since the last call.
    pub fn take_window_latency(&self) -> Histogram {
        self.core.counters.take_window_latency()
    }

    /// CPU time the receiver's threads have used; `None` where the platform
    /// has no per-thread CPU clocks (only Linux is read).
    pub fn cpu_time(&self) -> Option<Duration> {
        self.cpu.total()
    }

    /// Stops serving (open connections are dropped) and returns the final
    /// counts. From a plain thread it waits (up to 2 s) for the receiver's
    /// threads to end; from async code it cannot block, and they end in the
    /// background.
    pub fn stop(mut self) -> ReceiverStats {
        self.shut();
        self.stats()
    }

    /// Stops serving and returns the final counts, the latency of every
    /// accepted item and the CPU time the receiver's threads used in all.
    pub fn finish(mut self) -> Finished {
        self.shut();
        Finished {
            stats: self.stats(),
            latency: self.latency(),
            cpu_time: self.cpu_time(),
        }
    }

    fn shut(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            let _ = self.shutdown.send(true);
            if tokio::runtime::Handle::try_current().is_ok() {
                // Called from async code, where a runtime may not block to
                // shut down: its threads finish in the background (the
                // counts are final already; only `cpu_time` may still grow).
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(Duration::from_secs(2));
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shut();
    }
}

/// The code blocks of this crate's `README.md`, compiled and run as
/// doctests (the README is part of the published package).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
