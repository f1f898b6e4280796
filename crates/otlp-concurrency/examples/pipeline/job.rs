//! The main job: parse, pick the endpoint, run one processor (or both with
//! `--compare`), report, and choose the exit status.
//!
//! Exit status: 0 when every item is accounted for and no export failed;
//! 1 when items were lost to failed exports, the accounting does not hold,
//! or the run could not start; 2 for a usage or configuration error; 130
//! after Ctrl-C once the flush and the report are done.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry::logs::LoggerProvider as _;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter as _;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use otlp_agent::{Agent, AgentConfig, DiskQueue, Fsync, QueueMode};
use otlp_concurrency::sdk::{BatchConfig, ExportMode, Signal, StatsReader};
use otlp_receiver::{Receiver, ReceiverConfig, ReceiverTls};

use super::cli::{
    self, AgentFsync, AgentQueue, Batching, ExportModeFlag, Options, Parsed, ProcessorKind,
    Protocol, SignalKind,
};
use super::exporters::{self, Counted, Tally, Target};
use super::producers::{self, Shared};
use super::report::{self, AgentDisk, AgentHop, MetricShape, Outcome, RunReport, Sample, Tick};
use super::{http, system};

/// Why the job did not produce a report.
#[derive(Debug)]
pub enum JobError {
    /// Bad flags or environment: exit status 2.
    Usage(String),
    /// Could not start or run: exit status 1.
    Failed(String),
}

/// The whole program, minus `std::process::exit`: returns the exit status.
pub fn main<I: IntoIterator<Item = String>>(args: I) -> u8 {
    let options = match cli::parse(args) {
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Help) => {
            print!("{}", cli::USAGE);
            return 0;
        }
        Err(message) => {
            eprintln!("pipeline: {message}\nsee `pipeline --help`");
            return 2;
        }
    };
    if let Err(message) = system::catch_sigint() {
        eprintln!("pipeline: {message}");
        return 1;
    }
    match run(&options) {
        Ok(outcome) => {
            if options.json {
                println!("{}", outcome.to_json());
            } else {
                println!("{outcome}");
            }
            for problem in outcome.problems() {
                eprintln!("pipeline: {problem}");
            }
            outcome.exit_code()
        }
        Err(JobError::Usage(message)) => {
            eprintln!("pipeline: {message}");
            2
        }
        Err(JobError::Failed(message)) => {
            eprintln!("pipeline: {message}");
            1
        }
    }
}

/// Where the exports go.
#[derive(Debug, Clone, PartialEq)]
enum Destination {
    /// `--endpoint`.
    Flag(String),
    /// An `OTEL_EXPORTER_OTLP_*ENDPOINT` variable, read by opentelemetry-otlp.
    Environment,
    /// A fresh embedded receiver per run.
    Embedded,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn signal_var(signal: SignalKind, what: &str) -> String {
    let signal = match signal {
        SignalKind::Traces => "TRACES",
        SignalKind::Logs => "LOGS",
        SignalKind::Metrics => "METRICS",
    };
    format!("OTEL_EXPORTER_OTLP_{signal}_{what}")
}

/// The protocol: the flag, else the signal's variable, else the general
/// one, else gRPC.
fn protocol(options: &Options) -> Result<Protocol, JobError> {
    if let Some(p) = options.protocol {
        return Ok(p);
    }
    for var in [
        signal_var(options.signal, "PROTOCOL"),
        "OTEL_EXPORTER_OTLP_PROTOCOL".to_owned(),
    ] {
        if let Some(value) = env_var(&var) {
            let protocol =
                Protocol::parse(&value).map_err(|e| JobError::Usage(format!("{var}: {e}")))?;
            return Ok(protocol);
        }
    }
    Ok(Protocol::Grpc)
}

/// The metric export interval: the flag, else `OTEL_METRIC_EXPORT_INTERVAL`
/// (milliseconds; a value that is not a positive number is ignored), else
/// 1 s (not the SDK's 60 s: a run lasts seconds).
pub fn metrics_interval(options: &Options) -> Duration {
    options.metrics_interval.unwrap_or_else(|| {
        env_var("OTEL_METRIC_EXPORT_INTERVAL")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map_or(Duration::from_secs(1), Duration::from_millis)
    })
}

/// Data points in a full collection of `--signal metrics`: every
/// instrument with every attribute set.
pub fn points_per_export() -> u64 {
    producers::METRIC_INSTRUMENTS * producers::METRIC_ATTRIBUTE_SETS
}

/// `--tls`: a CA and a server certificate for 127.0.0.1 and localhost made
/// at start, as PEM.
pub struct Generated {
    pub ca_pem: String,
    pub server: ReceiverTls,
}

/// Makes [`Generated`] with rcgen.
pub fn generate_certificates() -> Result<Generated, String> {
    let failed = |e: rcgen::Error| format!("--tls: making a certificate: {e}");
    let ca_key = rcgen::KeyPair::generate().map_err(failed)?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "otlp-pipeline CA (made at start)",
    );
    let ca_pem = ca_params.self_signed(&ca_key).map_err(failed)?.pem();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .map_err(failed)?
        .signed_by(&key, &issuer)
        .map_err(failed)?;
    Ok(Generated {
        ca_pem,
        server: ReceiverTls {
            certificate_chain_pem: cert.pem().into_bytes(),
            private_key_pem: key.serialize_pem().into_bytes(),
            client_ca_pem: None,
        },
    })
}

fn destination(options: &Options) -> Destination {
    match &options.endpoint {
        Some(url) => Destination::Flag(url.clone()),
        // The exporter sends to the agent, the agent to the embedded
        // receiver: an endpoint in the environment has no part in it.
        None if options.via_agent => Destination::Embedded,
        None if env_var(&signal_var(options.signal, "ENDPOINT")).is_some()
            || env_var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() =>
        {
            Destination::Environment
        }
        None => Destination::Embedded,
    }
}

/// The exporter's own timeout (its retries included): the flag, else the
/// first of `OTEL_EXPORTER_OTLP_{SIGNAL_,}TIMEOUT` that is set, in
/// milliseconds, else 10 s; a set value that is not a positive number
/// counts as 10 s. Both exporters resolve it the same way, so the
/// processor's deadline (this plus 2 s) stays behind the exporter's.
fn exporter_timeout(options: &Options) -> Duration {
    const DEFAULT: Duration = Duration::from_secs(10);
    options.export_timeout.unwrap_or_else(|| {
        [
            signal_var(options.signal, "TIMEOUT"),
            "OTEL_EXPORTER_OTLP_TIMEOUT".to_owned(),
        ]
        .iter()
        .find_map(|var| env_var(var))
        .map_or(DEFAULT, |value| match value.trim().parse::<u64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => DEFAULT,
        })
    })
}

/// Runs what `options` asks for: one processor, or both with `--compare`.
pub fn run(options: &Options) -> Result<Outcome, JobError> {
    let protocol = protocol(options)?;
    let destination = destination(options);
    let kinds: &[ProcessorKind] = if options.compare {
        &[ProcessorKind::Ours, ProcessorKind::Sdk]
    } else {
        std::slice::from_ref(&options.processor)
    };
    let metrics = Arc::new(Mutex::new(String::new()));
    let _metrics_server = match options.metrics_addr {
        Some(addr) => {
            let text = Arc::clone(&metrics);
            let server = http::MetricsServer::start(addr, move || {
                text.lock().unwrap_or_else(|e| e.into_inner()).clone()
            })
            .map_err(|e| JobError::Failed(format!("--metrics-addr {addr}: {e}")))?;
            eprintln!(
                "serving Prometheus metrics on http://{}/metrics",
                server.addr()
            );
            Some(server)
        }
        None => None,
    };
    let mut runs = Vec::new();
    for &kind in kinds {
        if system::interrupted() {
            break;
        }
        runs.push(run_one(options, kind, protocol, &destination, &metrics)?);
    }
    Ok(Outcome {
        runs,
        compare: options.compare,
    })
}

/// The provider a run drives, with our processor's stats where it is ours.
enum Provider {
    Traces(SdkTracerProvider),
    Logs(SdkLoggerProvider),
    Metrics(SdkMeterProvider),
}

impl Provider {
    fn shutdown(&self, timeout: Duration) -> Result<(), String> {
        match self {
            Provider::Traces(p) => p.shutdown_with_timeout(timeout),
            Provider::Logs(p) => p.shutdown_with_timeout(timeout),
            Provider::Metrics(p) => p.shutdown_with_timeout(timeout),
        }
        .map_err(|e| e.to_string())
    }
}

fn resource() -> Resource {
    let builder = Resource::builder();
    // OTEL_SERVICE_NAME, when set, is the SDK's to apply.
    if env_var("OTEL_SERVICE_NAME").is_some() {
        builder.build()
    } else {
        builder.with_service_name("otlp-pipeline").build()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("otlp-pipeline")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

fn ours_config(batching: &Batching, signal: Signal, export_timeout: Duration) -> BatchConfig {
    BatchConfig::from_env(signal)
        .with_max_queue_size(batching.queue_size)
        .with_max_export_batch_size(batching.batch_size)
        .with_scheduled_delay(batching.delay)
        .with_max_concurrent_exports(batching.concurrent_exports)
        // The exporter's own deadline (retries included) fires first.
        .with_export_timeout(export_timeout + Duration::from_secs(2))
}

fn ours_mode(options: &Options) -> ExportMode {
    match options.export_mode() {
        ExportModeFlag::Threaded => ExportMode::Threaded,
        ExportModeFlag::Inline => ExportMode::Inline,
    }
}

/// Builds the provider with the chosen processor around the `Counted`
/// chosen exporter; runs inside `io`'s context.
fn provider(
    options: &Options,
    batching: &Batching,
    kind: ProcessorKind,
    target: &Target,
    io: &tokio::runtime::Runtime,
    tally: &Arc<Tally>,
) -> Result<(Provider, Option<StatsReader>), JobError> {
    let _inside = io.enter();
    let timeout = exporter_timeout(options);
    let bad =
        |e: otlp_concurrency::sdk::ConfigError| JobError::Usage(format!("batch settings: {e}"));
    Ok(match options.signal {
        SignalKind::Traces => {
            let (exporter, otlp) =
                exporters::span_exporter(options.exporter, target).map_err(JobError::Usage)?;
            if let Some(otlp) = otlp {
                let _ = tally.otlp.set(otlp);
            }
            let exporter = Counted::new(exporter, io.handle().clone(), Arc::clone(tally));
            let builder = SdkTracerProvider::builder().with_resource(resource());
            match kind {
                ProcessorKind::Ours => {
                    let processor = otlp_concurrency::sdk::BatchSpanProcessor::builder(exporter)
                        .with_batch_config(ours_config(batching, Signal::Spans, timeout))
                        .with_export_mode(ours_mode(options))
                        .build()
                        .map_err(bad)?;
                    let stats = processor.stats_reader();
                    (
                        Provider::Traces(builder.with_span_processor(processor).build()),
                        Some(stats),
                    )
                }
                ProcessorKind::Sdk => {
                    let config = opentelemetry_sdk::trace::BatchConfigBuilder::default()
                        .with_max_queue_size(batching.queue_size)
                        .with_max_export_batch_size(batching.batch_size)
                        .with_scheduled_delay(batching.delay)
                        .build();
                    let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
                        .with_batch_config(config)
                        .build();
                    (
                        Provider::Traces(builder.with_span_processor(processor).build()),
                        None,
                    )
                }
            }
        }
        SignalKind::Logs => {
            let (exporter, otlp) =
                exporters::log_exporter(options.exporter, target).map_err(JobError::Usage)?;
            if let Some(otlp) = otlp {
                let _ = tally.otlp.set(otlp);
            }
            let exporter = Counted::new(exporter, io.handle().clone(), Arc::clone(tally));
            let builder = SdkLoggerProvider::builder().with_resource(resource());
            match kind {
                ProcessorKind::Ours => {
                    let processor = otlp_concurrency::sdk::BatchLogProcessor::builder(exporter)
                        .with_batch_config(ours_config(batching, Signal::Logs, timeout))
                        .with_export_mode(ours_mode(options))
                        .build()
                        .map_err(bad)?;
                    let stats = processor.stats_reader();
                    (
                        Provider::Logs(builder.with_log_processor(processor).build()),
                        Some(stats),
                    )
                }
                ProcessorKind::Sdk => {
                    let config = opentelemetry_sdk::logs::BatchConfigBuilder::default()
                        .with_max_queue_size(batching.queue_size)
                        .with_max_export_batch_size(batching.batch_size)
                        .with_scheduled_delay(batching.delay)
                        .build();
                    let processor = opentelemetry_sdk::logs::BatchLogProcessor::builder(exporter)
                        .with_batch_config(config)
                        .build();
                    (
                        Provider::Logs(builder.with_log_processor(processor).build()),
                        None,
                    )
                }
            }
        }
        SignalKind::Metrics => {
            // cli refused --compare, --processor sdk and opentelemetry-otlp.
            let (exporter, otlp) = exporters::metric_exporter(target).map_err(JobError::Usage)?;
            let _ = tally.otlp.set(otlp);
            let _ = tally.temporality.set(match exporter.temporality() {
                opentelemetry_sdk::metrics::Temporality::Delta => "delta",
                opentelemetry_sdk::metrics::Temporality::LowMemory => "low memory",
                _ => "cumulative",
            });
            tally
                .points_per_export
                .store(points_per_export(), std::sync::atomic::Ordering::Relaxed);
            let exporter = Counted::new(exporter, io.handle().clone(), Arc::clone(tally));
            let reader = PeriodicReader::builder(exporter)
                .with_interval(metrics_interval(options))
                .build();
            (
                Provider::Metrics(
                    SdkMeterProvider::builder()
                        .with_resource(resource())
                        .with_reader(reader)
                        .build(),
                ),
                None,
            )
        }
    })
}

/// Shuts the provider down (its final flush), printing a line a second on
/// what is left and the time left, since a dead endpoint can make this
/// take the whole shutdown timeout.
fn flush(
    provider: &Provider,
    options: &Options,
    shared: &Shared,
    tally: &Tally,
    stats: Option<&StatsReader>,
    mut on_wait: impl FnMut(),
) -> Option<String> {
    let timeout = options.shutdown_timeout;
    let started = Instant::now();
    thread::scope(|scope| {
        let shutdown = scope.spawn(|| provider.shutdown(timeout));
        let mut next_line = Duration::from_secs(1);
        while !shutdown.is_finished() {
            thread::sleep(Duration::from_millis(20));
            on_wait();
            if started.elapsed() >= next_line && options.signal == SignalKind::Metrics {
                eprintln!(
                    "[flush] the final collection is being exported; {:.0} s of the {:.0} s shutdown timeout left",
                    timeout.saturating_sub(started.elapsed()).as_secs_f64(),
                    timeout.as_secs_f64(),
                );
                next_line += Duration::from_secs(1);
            } else if started.elapsed() >= next_line {
                let now = Sample::take(started.elapsed(), shared, tally, stats, None);
                eprintln!(
                    "[flush] {} {} not yet exported or counted as dropped; {:.0} s of the {:.0} s shutdown timeout left",
                    report::thousands(now.unfinished()),
                    options.signal.item(),
                    timeout.saturating_sub(started.elapsed()).as_secs_f64(),
                    timeout.as_secs_f64(),
                );
                next_line += Duration::from_secs(1);
            }
        }
        match shutdown.join() {
            Ok(result) => result.err(),
            Err(_) => Some("the provider's shutdown panicked".to_owned()),
        }
    })
}

/// The protocol of the agent's hop to the receiver: the exporter's when it
/// is gRPC or HTTP/protobuf; gRPC for HTTP/JSON (the agent takes JSON in
/// and forwards protobuf).
fn agent_upstream_protocol(protocol: Protocol) -> Protocol {
    match protocol {
        Protocol::HttpProtobuf => Protocol::HttpProtobuf,
        Protocol::Grpc | Protocol::HttpJson => Protocol::Grpc,
    }
}

/// `--agent-queue disk`: a fresh directory under the system's temporary
/// directory for the agent's disk queue, removed (with what the agent left
/// in it) by [`remove`](Self::remove) or when dropped.
pub struct QueueDir {
    path: Option<std::path::PathBuf>,
}

impl QueueDir {
    /// Makes `otlp-pipeline-agent-PID-NANOS-N` (`create_dir`, so never a
    /// directory that already exists).
    pub fn create() -> Result<QueueDir, String> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        let mut last = None;
        for _ in 0..16 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let path = base.join(format!(
                "otlp-pipeline-agent-{}-{nanos:x}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(QueueDir { path: Some(path) }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        Err(format!(
            "no fresh directory under {}: {}",
            base.display(),
            last.map_or_else(String::new, |e| e.to_string())
        ))
    }

    pub fn path(&self) -> &std::path::Path {
        self.path.as_deref().unwrap_or(std::path::Path::new(""))
    }

    /// Removes the directory and everything in it; call after the agent
    /// that used it has shut down (it holds a lock file there).
    pub fn remove(mut self) -> Result<(), String> {
        match self.path.take() {
            Some(path) => {
                std::fs::remove_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))
            }
            None => Ok(()),
        }
    }
}

impl Drop for QueueDir {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// `--via-agent`: an otlp-agent on a free loopback port forwarding to
/// `receiver`; with `--agent-queue disk` its queue is on disk under `dir`.
fn start_agent(
    options: &Options,
    protocol: Protocol,
    receiver: &Receiver,
    tls: Option<ReceiverTls>,
    dir: Option<&QueueDir>,
) -> Result<Agent, JobError> {
    let upstream = otlp_sdk::otlp::OtlpExporterBuilder::new()
        .with_endpoint(receiver.endpoint())
        .with_protocol(match agent_upstream_protocol(protocol) {
            Protocol::HttpProtobuf => otlp_sdk::otlp::Protocol::HttpProtobuf,
            _ => otlp_sdk::otlp::Protocol::Grpc,
        })
        .without_env();
    let defaults = AgentConfig::default();
    let queue = match dir {
        Some(dir) => {
            let mut disk = DiskQueue::new(dir.path());
            disk.fsync = match options.agent_fsync() {
                AgentFsync::Always => Fsync::Always,
                AgentFsync::Interval => Fsync::Interval(cli::AGENT_FSYNC_INTERVAL),
                AgentFsync::Never => Fsync::Never,
            };
            QueueMode::Disk(disk)
        }
        None => QueueMode::Memory,
    };
    Agent::start(AgentConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        listen_http: None,
        upstream,
        queue_max_items: options.agent_queue_size.unwrap_or(defaults.queue_max_items),
        shutdown_timeout: options.shutdown_timeout,
        worker_threads: options.receiver_threads,
        export_threads: options.receiver_threads,
        metrics_addr: None,
        // `--tls`: the agent's listener serves TLS; its hop to the
        // receiver stays plain.
        tls,
        queue,
        ..defaults
    })
    .map_err(|e| JobError::Failed(format!("the agent: {e}")))
}

/// The run's signal's figures in the agent's stats.
fn agent_signal(stats: otlp_agent::AgentStats, signal: SignalKind) -> otlp_agent::SignalStats {
    match signal {
        SignalKind::Traces => stats.traces,
        SignalKind::Logs => stats.logs,
        SignalKind::Metrics => stats.metrics,
    }
}

/// `--agent-queue disk`: the highest bytes on disk and items held on disk
/// only seen while the run went on (sampled every 50 ms at most, and every
/// 20 ms during the provider's flush).
#[derive(Debug, Default, Clone, Copy)]
struct DiskPeaks {
    disk_bytes: u64,
    disk_only_items: u64,
}

impl DiskPeaks {
    fn observe(&mut self, agent: &Agent, signal: SignalKind) -> otlp_agent::SignalStats {
        let s = agent_signal(agent.stats(), signal);
        self.disk_bytes = self.disk_bytes.max(s.disk_bytes);
        self.disk_only_items = self.disk_only_items.max(s.disk_only_items);
        s
    }
}

/// Shuts the agent down (its final flush to the receiver), then removes
/// the disk queue's directory, and keeps its figures for the run's signal.
fn finish_agent(
    agent: Agent,
    options: &Options,
    protocol: Protocol,
    dir: Option<QueueDir>,
    mut peaks: DiskPeaks,
) -> AgentHop {
    let endpoint = agent.endpoint();
    let upstream = agent.upstream().to_owned();
    if dir.is_some() {
        peaks.observe(&agent, options.signal);
    }
    let report = agent.shutdown();
    let stats = agent_signal(report.stats, options.signal);
    let disk = dir.map(|dir| {
        let path = dir.path().to_owned();
        AgentDisk {
            fsync: options.agent_fsync(),
            peak_disk_bytes: peaks.disk_bytes.max(stats.disk_bytes),
            peak_disk_only_items: peaks.disk_only_items.max(stats.disk_only_items),
            // The agent has stopped: its lock is released.
            removal_error: dir.remove().err(),
            dir: path,
        }
    });
    AgentHop {
        endpoint,
        upstream,
        upstream_protocol: agent_upstream_protocol(protocol),
        stats,
        left: report.left_items,
        flush_time: report.flush_time,
        disk,
    }
}

/// One run of one processor, from a fresh receiver to the report.
fn run_one(
    options: &Options,
    kind: ProcessorKind,
    protocol: Protocol,
    destination: &Destination,
    metrics: &Mutex<String>,
) -> Result<RunReport, JobError> {
    let generated = if options.tls {
        Some(generate_certificates().map_err(JobError::Failed)?)
    } else {
        None
    };
    // `--tls`: the first listener the exporter reaches serves TLS.
    let (receiver_tls, agent_tls) = match &generated {
        Some(g) if options.via_agent => (None, Some(g.server.clone())),
        Some(g) => (Some(g.server.clone()), None),
        None => (None, None),
    };
    let receiver = match destination {
        Destination::Embedded => Some(
            Receiver::start(ReceiverConfig {
                latency: options.receiver_latency,
                fail_ratio: options.receiver_fail,
                retry_after: options.receiver_retry_after,
                worker_threads: options.receiver_threads,
                tls: receiver_tls,
                ..ReceiverConfig::default()
            })
            .map_err(|e| JobError::Failed(format!("embedded receiver: {e}")))?,
        ),
        _ => None,
    };
    // Made before the agent, so an early return drops (stops) the agent
    // before removing its directory.
    let queue_dir = match &receiver {
        Some(_) if options.via_agent && options.agent_queue() == AgentQueue::Disk => Some(
            QueueDir::create()
                .map_err(|e| JobError::Failed(format!("the agent's disk queue: {e}")))?,
        ),
        _ => None,
    };
    let agent = match &receiver {
        Some(r) if options.via_agent => Some(start_agent(
            options,
            protocol,
            r,
            agent_tls,
            queue_dir.as_ref(),
        )?),
        _ => None,
    };
    let mut peaks = DiskPeaks::default();
    let watch_disk = |peaks: &mut DiskPeaks| match (&agent, &queue_dir) {
        (Some(a), Some(_)) => Some(peaks.observe(a, options.signal)),
        _ => None,
    };
    let endpoint = match (destination, &receiver, &agent) {
        (Destination::Flag(url), _, _) => Some(url.clone()),
        // One port of the agent serves gRPC and OTLP/HTTP.
        (_, _, Some(a)) => Some(match (protocol, options.signal) {
            (Protocol::Grpc, _) => a.endpoint(),
            (Protocol::HttpProtobuf | Protocol::HttpJson, SignalKind::Traces) => {
                format!("{}/v1/traces", a.endpoint())
            }
            (Protocol::HttpProtobuf | Protocol::HttpJson, SignalKind::Logs) => {
                format!("{}/v1/logs", a.endpoint())
            }
            (Protocol::HttpProtobuf | Protocol::HttpJson, SignalKind::Metrics) => {
                format!("{}/v1/metrics", a.endpoint())
            }
        }),
        (_, Some(r), None) => Some(match (protocol, options.signal) {
            (Protocol::Grpc, _) => r.endpoint(),
            (Protocol::HttpProtobuf | Protocol::HttpJson, SignalKind::Traces) => r.traces_url(),
            (Protocol::HttpProtobuf | Protocol::HttpJson, SignalKind::Logs) => r.logs_url(),
            (Protocol::HttpProtobuf | Protocol::HttpJson, SignalKind::Metrics) => r.metrics_url(),
        }),
        _ => None,
    };
    let target = Target {
        protocol,
        endpoint,
        compression: options.compression,
        timeout: options.export_timeout,
        ca_pem: generated.as_ref().map(|g| g.ca_pem.clone().into_bytes()),
    };
    let tls = generated.as_ref().map(|_| {
        if agent.is_some() {
            "exporter -> agent over TLS (generated CA); agent -> receiver plain".to_owned()
        } else {
            "exporter -> receiver over TLS (generated CA)".to_owned()
        }
    });
    let batching = options.batching(options.signal).map_err(JobError::Usage)?;
    let io = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otlp-exporter-io")
        // opentelemetry-otlp's transport runs here: its events are not the
        // run's telemetry.
        .on_thread_start(otlp_concurrency::sdk::suppress_telemetry_on_this_thread)
        .enable_all()
        .build()
        .map_err(|e| JobError::Failed(format!("exporter runtime: {e}")))?;
    let tally = Arc::new(Tally::new(
        target.describe(options.signal),
        options.exporter,
    ));
    let cpu_before = system::process_cpu_time();
    let (provider, stats) = provider(options, &batching, kind, &target, &io, &tally)?;

    let batching_text = if options.signal == SignalKind::Metrics {
        format!(
            "PeriodicReader every {:.3} s, {} data points per full collection",
            metrics_interval(options).as_secs_f64(),
            points_per_export()
        )
    } else {
        format!(
            "processor {}, batch {} / queue {}",
            kind.name(),
            batching.batch_size,
            batching.queue_size
        )
    };
    eprintln!(
        "pipeline: {} over {}{} to {}{}{}, {batching_text}, exporter {}, {} producers at {}, for {:.1} s",
        options.signal.item(),
        protocol.name(),
        if tls.is_some() { " (TLS)" } else { "" },
        tally.endpoint,
        if agent.is_some() {
            " (an in-process otlp-agent)"
        } else if receiver.is_some() {
            " (embedded receiver)"
        } else {
            ""
        },
        match (&agent, &receiver) {
            (Some(_), Some(r)) => format!(
                " forwarding over {} to {} (embedded receiver)",
                agent_upstream_protocol(protocol).name(),
                r.endpoint()
            ),
            _ => String::new(),
        },
        options.exporter.name(),
        options.producers,
        if options.rate == 0 {
            "full speed".to_owned()
        } else {
            format!("{}/s", options.rate)
        },
        options.duration.as_secs_f64(),
    );

    let shared = Arc::new(Shared::default());
    let rate = options.rate as f64 / options.producers as f64;
    let sample =
        |at: Duration| Sample::take(at, &shared, &tally, stats.as_ref(), receiver.as_ref());
    // Before any producer starts: thousands take a while to start, and the
    // first live line covers that time too.
    let mut previous = sample(Duration::ZERO);
    let started = Instant::now();
    let handles = match &provider {
        Provider::Traces(p) => {
            let (tracer, mine) = (p.tracer_with_scope(scope()), Arc::clone(&shared));
            producers::start(options.producers, &shared, move |id| {
                producers::spans(id, &tracer, &mine, rate)
            })
        }
        Provider::Logs(p) => {
            let (logger, mine) = (p.logger_with_scope(scope()), Arc::clone(&shared));
            producers::start(options.producers, &shared, move |id| {
                producers::logs(id, &logger, &mine, rate)
            })
        }
        Provider::Metrics(p) => {
            let instruments = producers::Instruments::new(&p.meter_with_scope(scope()));
            let mine = Arc::clone(&shared);
            producers::start(options.producers, &shared, move |id| {
                producers::metrics(id, &instruments, &mine, rate)
            })
        }
    };
    let handles = match handles {
        Ok(handles) => handles,
        Err(e) => {
            let _ = provider.shutdown(options.shutdown_timeout);
            return Err(JobError::Failed(e));
        }
    };

    let mut ticks = Vec::new();
    let mut next_tick = Duration::from_secs(1);
    let interrupted = loop {
        if system::interrupted() {
            break true;
        }
        let disk = watch_disk(&mut peaks);
        // A tick is due every whole second, also when starting thousands
        // of producers took longer than one: the live line never goes
        // quiet for more than a second once the loop runs.
        if started.elapsed() >= next_tick {
            let now = sample(started.elapsed());
            let window = receiver.as_ref().map(|r| r.take_window_latency());
            let mut tick = Tick::between(&previous, &now, window.as_ref());
            tick.agent_disk = disk.map(|s| (s.disk_bytes, s.disk_only_items));
            eprintln!("{tick}");
            *metrics.lock().unwrap_or_else(|e| e.into_inner()) = now.prometheus(kind);
            ticks.push(tick);
            previous = now;
            next_tick = started.elapsed().max(next_tick) + Duration::from_secs(1);
            next_tick = Duration::from_secs(next_tick.as_secs());
        }
        let elapsed = started.elapsed();
        if elapsed >= options.duration {
            break false;
        }
        let wake = next_tick.min(options.duration);
        thread::sleep(wake.saturating_sub(elapsed).min(Duration::from_millis(50)));
    };
    if interrupted {
        eprintln!("pipeline: interrupted; stopping the producers and flushing");
    }
    producers::stop(&shared, &handles);
    let mut panicked = false;
    for handle in handles {
        panicked |= handle.join().is_err();
    }
    let produce_time = started.elapsed();
    let flush_started = Instant::now();
    let shutdown = flush(&provider, options, &shared, &tally, stats.as_ref(), || {
        watch_disk(&mut peaks);
    });
    let flush_time = flush_started.elapsed();
    drop(provider);
    let in_flight = tally.handed.load(std::sync::atomic::Ordering::Relaxed)
        > tally.exported.load(std::sync::atomic::Ordering::Relaxed)
            + tally.failed.load(std::sync::atomic::Ordering::Relaxed)
            + tally.in_doubt.load(std::sync::atomic::Ordering::Relaxed);
    if in_flight {
        // An export the shutdown gave up on is still being polled (the
        // SDK's processor thread, or a blocking-pool thread of ours) and
        // needs this runtime's timers and sockets until its own timeout:
        // shutting the runtime down under it makes it panic. It is left to
        // finish, or to end with the process.
        std::mem::forget(io);
    } else {
        io.shutdown_timeout(Duration::from_secs(1));
    }
    // The agent flushes what it holds to the receiver before the receiver
    // stops: after the exporter's last export, before the receiver's count.
    let agent = agent.map(|a| finish_agent(a, options, protocol, queue_dir, peaks));
    let finished = receiver.map(Receiver::finish);
    let cpu = system::process_cpu_time().saturating_sub(cpu_before);
    let end = Sample::take(
        produce_time + flush_time,
        &shared,
        &tally,
        stats.as_ref(),
        None,
    );
    *metrics.lock().unwrap_or_else(|e| e.into_inner()) = end.prometheus(kind);
    if panicked {
        return Err(JobError::Failed("a producer thread panicked".to_owned()));
    }
    let mut report = RunReport::new(
        options,
        &batching,
        kind,
        protocol,
        &tally,
        end,
        stats.map(|s| s.stats()),
        finished,
        cpu,
        produce_time,
        flush_time,
        interrupted,
        shutdown,
        ticks,
        agent,
    );
    report.tls = tls;
    if options.signal == SignalKind::Metrics {
        report.metrics = Some(MetricShape::new(&tally, metrics_interval(options)));
    }
    Ok(report)
}
