//! An OTLP forwarding agent built from the otlp-concurrency crates: it
//! receives OTLP/gRPC and OTLP/HTTP (protobuf or JSON, gzip or zstd) for
//! traces, logs and metrics, and forwards them upstream without decoding
//! them.
//!
//! - **Forwarding without re-encoding.** Each request is checked and its
//!   items counted by a protobuf wire walk that allocates nothing
//!   ([`wire::count_items`]); requests of one signal are batched by
//!   concatenating their bytes (a serialized `Export*ServiceRequest` is one
//!   repeated field, so the concatenation is a valid request holding both)
//!   and sent with otlp-sdk's transports ([`otlp_sdk::otlp::OtlpRequestSender`]):
//!   gRPC or HTTP/protobuf, gzip or zstd, headers, TLS.
//! - **Backpressure, never silent loss.** The queue is bounded in items and
//!   bytes; past it a request is refused with gRPC `RESOURCE_EXHAUSTED` +
//!   `RetryInfo` or HTTP 429 + `Retry-After`, which OTLP clients retry. An
//!   acknowledged item is exported, rejected by the upstream in a partial
//!   success, or dropped with its cause counted ([`SignalStats`]): a
//!   permanent refusal, `max_elapsed` of retries, or a shutdown that ran
//!   out of time.
//! - **Durable, if asked.** With [`QueueMode::Disk`] (`--queue disk`) a
//!   request is appended to its signal's log ([`disk::DiskLog`]) before it
//!   is acknowledged, many requests per write and fsync, and whatever was
//!   not exported is replayed at the next start. A backlog beyond the
//!   memory it may use ([`DiskQueue::memory_bytes`]) waits on disk only
//!   and is read back as exports make room; a full disk refuses (or, with
//!   [`OnFull::DropOldest`], drops its oldest segment and counts it).
//! - **Observable.** [`Agent::stats`], and Prometheus text on
//!   `metrics_addr` (`/metrics`, `/healthz`, `/readyz`).
//!
//! The binary (`otlp-agent --endpoint http://collector:4317`) wraps this
//! library; see docs/agent.md for its flags.
//!
//! ```
//! use otlp_agent::{Agent, AgentConfig};
//! use otlp_receiver::{Receiver, ReceiverConfig};
//! use otlp_sdk::otlp::OtlpExporterBuilder;
//!
//! // An upstream to forward to, and an agent on free loopback ports.
//! let upstream = Receiver::start(ReceiverConfig::default()).unwrap();
//! let agent = Agent::start(AgentConfig {
//!     listen: "127.0.0.1:0".parse().unwrap(),
//!     listen_http: None,
//!     upstream: OtlpExporterBuilder::new().with_endpoint(upstream.endpoint()).without_env(),
//!     ..AgentConfig::default()
//! })
//! .unwrap();
//! println!("forwarding {} -> {}", agent.endpoint(), upstream.endpoint());
//! let report = agent.shutdown();
//! assert_eq!(report.left_items, 0);
//! ```

mod admin;
pub mod config;
pub mod disk;
mod durable;
mod forward;
mod queue;
mod sink;
mod stats;
pub mod wire;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use otlp_monitor::ConcurrencyMonitor;
use otlp_receiver::{Receiver, ReceiverConfig, ReceiverStats, ThreadCpu};
use otlp_sync::Semaphore;
use tokio::sync::watch;

pub use config::{AgentConfig, CliOptions, ConfigError, DiskQueue, Fsync, OnFull, QueueMode};

pub use otlp_receiver::SignalKind;
pub use stats::{AgentStats, SignalStats};

use durable::Durable;
use forward::Forwarder;
use queue::{Room, SignalQueue};
use sink::AgentSink;
use stats::Counters;

const SIGNALS: [SignalKind; 3] = [SignalKind::Traces, SignalKind::Logs, SignalKind::Metrics];

/// Why an agent did not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum AgentError {
    /// A setting that cannot work.
    Config(ConfigError),
    /// The upstream settings cannot work (endpoint, TLS files, ...).
    Upstream(otlp_sdk::otlp::OtlpConfigError),
    /// A listening port could not be bound, or a runtime not started.
    Io(String),
    /// The disk queue could not be opened: its directory is used by
    /// another live agent, or cannot be created or read.
    Disk(disk::LogError),
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentError::Config(e) => write!(f, "invalid agent setting: {e}"),
            AgentError::Upstream(e) => write!(f, "invalid upstream: {e}"),
            AgentError::Io(e) => write!(f, "starting the agent: {e}"),
            AgentError::Disk(e) => write!(f, "opening the disk queue: {e}"),
        }
    }
}

impl std::error::Error for AgentError {}

/// What every part of a running agent shares.
pub(crate) struct Shared {
    counters: [Arc<Counters>; 3],
    monitors: [Arc<ConcurrencyMonitor>; 3],
    queues: [Arc<SignalQueue>; 3],
    room: Arc<Room>,
    closing: AtomicBool,
    durable: Option<[Arc<Durable>; 3]>,
}

impl Shared {
    fn stats(&self) -> AgentStats {
        let signal = |i: usize| {
            let mut stats = self.counters[i].snapshot();
            if let Some(durable) = &self.durable {
                let log = &durable[i].log;
                stats.disk_bytes = log.used_bytes();
                let fsync = log.fsync_stats();
                let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                stats.fsyncs = fsync.count;
                stats.fsync_mean_micros = micros(fsync.mean());
                stats.fsync_max_micros = micros(fsync.max);
            }
            stats
        };
        AgentStats {
            traces: signal(0),
            logs: signal(1),
            metrics: signal(2),
        }
    }

    pub(crate) fn prometheus(&self) -> String {
        let monitors: Vec<_> = SIGNALS
            .iter()
            .zip(&self.monitors)
            .map(|(s, m)| (*s, &**m))
            .collect();
        stats::prometheus(&self.stats(), &monitors)
    }

    /// Why the agent should not be sent more now, if so.
    pub(crate) fn not_ready(&self) -> Option<&'static str> {
        if self.closing.load(Ordering::Acquire) {
            return Some("shutting down");
        }
        match &self.durable {
            // Memory full only means the backlog waits on disk.
            Some(durable) => durable
                .iter()
                .any(|d| d.log.used_bytes() >= d.log.max_bytes())
                .then_some("disk queue full"),
            None => (self.room.items.available() == 0 || self.room.bytes.available() == 0)
                .then_some("queue full"),
        }
    }

    fn queued_items(&self) -> u64 {
        self.counters
            .iter()
            .map(|c| c.queued_items.load(Ordering::Relaxed))
            .sum()
    }
}

/// Opens every signal's log under `settings.dir` (refused if another
/// agent holds it), queues what they held again, and starts their
/// committers on `runtime`.
fn open_disk_queue(
    settings: &DiskQueue,
    config: &AgentConfig,
    runtime: &tokio::runtime::Runtime,
    queues: &[Arc<SignalQueue>; 3],
    counters: &[Arc<Counters>; 3],
) -> Result<[Arc<Durable>; 3], AgentError> {
    let max_bytes = config.queue_max_bytes as u64;
    let mut durables = Vec::with_capacity(3);
    for (i, signal) in SIGNALS.into_iter().enumerate() {
        let (log, recovered) =
            Durable::open(settings, signal, max_bytes).map_err(AgentError::Disk)?;
        let c = &counters[i];
        stats::add(&c.corrupt_records, recovered.corrupt_records);
        stats::add(&c.truncated_bytes, recovered.truncated_bytes);
        for (path, offset) in &recovered.corrupt_at {
            tracing::warn!(
                "disk queue: skipped a damaged record in {} at byte {offset}",
                path.display()
            );
        }
        // Replayed in order as memory allows: the payloads stay on disk
        // until they are read back for export.
        for (record, items, len) in recovered.records {
            stats::add(&c.replayed_requests, 1);
            stats::add(&c.replayed_items, items);
            queues[i].recovered(record, items, len as usize);
        }
        let _inside = runtime.enter();
        durables.push(Arc::new(Durable::start(
            log,
            settings,
            Arc::clone(&queues[i]),
            Arc::clone(c),
            config.retry_after,
        )));
    }
    let [t, l, m]: [Arc<Durable>; 3] = durables
        .try_into()
        .map_err(|_| AgentError::Io("the disk queue opened the wrong number of logs".to_owned()))?;
    Ok([t, l, m])
}

/// What a shutdown left behind.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Items still queued or in flight when the shutdown's time ran out:
    /// dropped by the shutdown with the memory queue, left for the next
    /// start with the disk queue; 0 when everything was flushed.
    pub left_items: u64,
    /// How long the flush took.
    pub flush_time: Duration,
    /// The final figures.
    pub stats: AgentStats,
}

/// A running agent; [`shutdown`](Self::shutdown) flushes and stops it.
pub struct Agent {
    receivers: Vec<Receiver>,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    give_up: watch::Sender<bool>,
    admin_stop: watch::Sender<bool>,
    metrics_addr: Option<SocketAddr>,
    shutdown_timeout: Duration,
    attempt_timeout: Duration,
    upstream: String,
    cpu: Arc<ThreadCpu>,
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("listening", &self.addrs())
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

/// Keeps the agent's threads out of OpenTelemetry: a process that forwards
/// and also instruments itself must not turn the agent's own `tracing`
/// events into telemetry it then forwards.
fn suppress_telemetry() {
    std::mem::forget(opentelemetry::Context::enter_telemetry_suppressed_scope());
}

impl Agent {
    /// Starts the export runtime, one sender per signal, and the
    /// listener(s); returns once they accept connections.
    pub fn start(config: AgentConfig) -> Result<Agent, AgentError> {
        config.validate().map_err(AgentError::Config)?;
        let cpu = Arc::new(ThreadCpu::default());
        let (started_cpu, stopped_cpu) = (Arc::clone(&cpu), Arc::clone(&cpu));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.export_threads)
            .thread_name("otlp-agent-export")
            .on_thread_start(move || {
                started_cpu.thread_started();
                suppress_telemetry();
            })
            .on_thread_stop(move || stopped_cpu.thread_stopped())
            .enable_all()
            .build()
            .map_err(|e| AgentError::Io(e.to_string()))?;
        let semaphore = |n: usize, key: &str| {
            Semaphore::new(n).map(Arc::new).map_err(|e| {
                AgentError::Config(ConfigError {
                    key: key.to_owned(),
                    source: "the configuration".to_owned(),
                    reason: e.to_string(),
                })
            })
        };
        let room = Arc::new(Room {
            items: semaphore(
                usize::try_from(config.queue_max_items).unwrap_or(usize::MAX),
                "queue-max-items",
            )?,
            bytes: semaphore(config.memory_room().1, config.memory_room().0)?,
        });
        let counters: [Arc<Counters>; 3] = Default::default();
        let monitors: [Arc<ConcurrencyMonitor>; 3] = Default::default();
        let queues = counters.clone().map(|counters| {
            Arc::new(SignalQueue::new(
                Arc::clone(&room),
                config.batch_max_items,
                config.batch_max_bytes,
                config.batch_timeout,
                counters,
            ))
        });
        let durable = match &config.queue {
            QueueMode::Memory => None,
            QueueMode::Disk(settings) => Some(open_disk_queue(
                settings, &config, &runtime, &queues, &counters,
            )?),
        };
        let (give_up, give_up_rx) = watch::channel(false);
        let mut senders = Vec::with_capacity(3);
        {
            let _inside = runtime.enter();
            for signal in SIGNALS {
                let sdk_signal = match signal {
                    SignalKind::Traces => otlp_sdk::otlp::Signal::Spans,
                    SignalKind::Logs => otlp_sdk::otlp::Signal::Logs,
                    SignalKind::Metrics => otlp_sdk::otlp::Signal::Metrics,
                };
                senders.push(
                    config
                        .upstream
                        .build_request_sender(sdk_signal)
                        .map_err(AgentError::Upstream)?,
                );
            }
        }
        let upstream = senders[0].endpoint().to_owned();
        let attempt_timeout = senders[0].timeout();
        for (i, sender) in senders.into_iter().enumerate() {
            let forwarder = Arc::new(Forwarder {
                queue: Arc::clone(&queues[i]),
                sender,
                slots: semaphore(config.max_concurrent_exports, "max-concurrent-exports")?,
                counters: Arc::clone(&counters[i]),
                monitor: Arc::clone(&monitors[i]),
                max_elapsed: config.max_elapsed,
                give_up: give_up_rx.clone(),
                seed: AtomicU64::new(i as u64),
                durable: durable.as_ref().map(|d| Arc::clone(&d[i])),
            });
            runtime.spawn(forwarder.run());
        }
        let shared = Arc::new(Shared {
            counters: counters.clone(),
            monitors,
            queues: queues.clone(),
            room,
            closing: AtomicBool::new(false),
            durable: durable.clone(),
        });
        let (admin_stop, admin_rx) = watch::channel(false);
        let metrics_addr = match config.metrics_addr {
            None => None,
            Some(addr) => {
                let listener = std::net::TcpListener::bind(addr)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .map_err(|e| AgentError::Io(format!("binding metrics-addr {addr}: {e}")))?;
                let bound = listener
                    .local_addr()
                    .map_err(|e| AgentError::Io(e.to_string()))?;
                let listener = {
                    let _inside = runtime.enter();
                    tokio::net::TcpListener::from_std(listener)
                        .map_err(|e| AgentError::Io(e.to_string()))?
                };
                runtime.spawn(admin::serve(listener, Arc::clone(&shared), admin_rx));
                Some(bound)
            }
        };
        let sink: Arc<dyn otlp_receiver::Sink> = Arc::new(AgentSink {
            queues,
            counters,
            retry_after: config.retry_after,
            durable,
        });
        let mut receivers = Vec::new();
        for addr in std::iter::once(config.listen).chain(config.listen_http) {
            let receiver_config = ReceiverConfig {
                addr,
                max_body_bytes: config.max_body_bytes,
                worker_threads: config.worker_threads,
                tls: config.tls.clone(),
                ..ReceiverConfig::default()
            };
            let receiver = Receiver::start_with_sink(receiver_config, Arc::clone(&sink))
                .map_err(|e| AgentError::Io(format!("listening on {addr}: {e}")))?;
            receivers.push(receiver);
        }
        Ok(Agent {
            receivers,
            shared,
            runtime: Some(runtime),
            give_up,
            admin_stop,
            metrics_addr,
            shutdown_timeout: config.shutdown_timeout,
            attempt_timeout,
            upstream,
            cpu,
        })
    }

    /// The bound listening addresses: `listen`, then `listen_http` if set
    /// (real ports when started on port 0).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.receivers.iter().map(Receiver::addr).collect()
    }

    /// `http://ADDR` (`https://` with TLS) of the first listener: both the
    /// gRPC endpoint and the base of the OTLP/HTTP URLs.
    pub fn endpoint(&self) -> String {
        self.receivers[0].endpoint()
    }

    /// Where `/metrics` is served, when it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The upstream URL (traces).
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The figures so far.
    pub fn stats(&self) -> AgentStats {
        self.shared.stats()
    }

    /// Requests the listeners refused before they reached the agent (too
    /// large, bad compression, wrong content type, slow bodies), summed over
    /// the listeners: `rejected_*` of each listener's [`ReceiverStats`].
    pub fn listener_rejections(&self) -> u64 {
        self.receivers
            .iter()
            .map(|r| ReceiverStats::rejected(&r.stats()))
            .sum()
    }

    /// CPU time the agent's own threads have used (receiving and sending);
    /// `None` where per-thread CPU time cannot be read (only Linux is).
    pub fn cpu_time(&self) -> Option<Duration> {
        let mut total = self.cpu.total()?;
        for receiver in &self.receivers {
            total += receiver.cpu_time()?;
        }
        Some(total)
    }

    /// The Prometheus text `/metrics` serves.
    pub fn prometheus(&self) -> String {
        self.shared.prometheus()
    }

    /// Stops accepting (new requests are answered UNAVAILABLE / 503 until
    /// the listeners close), flushes what is queued for up to
    /// `shutdown_timeout`, then gives up on what is left, counting it as
    /// dropped by the shutdown. Blocks; call it from a plain thread.
    pub fn shutdown(mut self) -> ShutdownReport {
        let started = Instant::now();
        self.shared.closing.store(true, Ordering::Release);
        for queue in &self.shared.queues {
            queue.close();
        }
        for receiver in self.receivers.drain(..) {
            receiver.stop();
        }
        let flushed = |shared: &Shared| {
            shared.queued_items() == 0 && shared.queues.iter().all(|q| q.in_flight() == 0)
        };
        let wait_until = |deadline: Instant| {
            while Instant::now() < deadline && !flushed(&self.shared) {
                std::thread::sleep(Duration::from_millis(2));
            }
        };
        wait_until(started + self.shutdown_timeout);
        let flush_time = started.elapsed();
        if !flushed(&self.shared) {
            // Retries stop at once; an attempt on the wire ends within its
            // timeout, then every export counts what it held.
            let _ = self.give_up.send(true);
            wait_until(Instant::now() + self.attempt_timeout + Duration::from_millis(100));
        }
        let _ = self.admin_stop.send(true);
        self.stop_runtime();
        // Whatever no export counted (its task was cut short) is dropped
        // by the shutdown; no task runs any more, so this cannot race.
        for counters in &self.shared.counters {
            let left = counters.queued_items.swap(0, Ordering::Relaxed);
            counters.queued_bytes.store(0, Ordering::Relaxed);
            match self.shared.durable {
                // Never acknowledged in the log: replayed at the next start.
                Some(_) => stats::add(&counters.left_on_disk_items, left),
                None => stats::add(&counters.dropped_shutdown_items, left),
            }
        }
        let stats = self.shared.stats();
        let left_items = SIGNALS
            .iter()
            .map(|s| {
                let s = stats.signal(*s);
                s.dropped_shutdown_items + s.left_on_disk_items
            })
            .sum();
        ShutdownReport {
            left_items,
            flush_time,
            stats,
        }
    }

    fn stop_runtime(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(Duration::from_secs(1));
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.admin_stop.send(true);
        self.stop_runtime();
    }
}

/// The code blocks of this crate's `README.md`, compiled and run as
/// doctests (the README is part of the published package).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
