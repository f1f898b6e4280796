//! Command-line flags of the pipeline example; bad input is a usage error
//! (exit status 2), never a panic.

use std::net::SocketAddr;
use std::time::Duration;

pub const USAGE: &str = "\
usage: pipeline [OPTIONS]

Producer threads create spans (or log records) through the OpenTelemetry
API on an SdkTracerProvider / SdkLoggerProvider; a batch processor hands
them to an OTLP exporter (otlp_sdk's by default, or opentelemetry-otlp's),
which ships them over OTLP/gRPC or OTLP/HTTP. With --signal metrics they
record to counters and a histogram on an SdkMeterProvider whose
PeriodicReader exports through otlp_sdk's OtlpMetricExporter. With no
endpoint, an embedded OTLP receiver on a loopback port decodes and counts
every request.

what runs:
  --duration D            how long producers run: 10, 10s, 500ms, 2m (default 10s)
  --producers N           producer threads, 1 to 10000 (default 2)
  --rate N                target items/s over all producers, 0 = flat out (default 100000)
  --signal S              traces, logs or metrics (default traces); metrics: each
                          measurement counts against --rate, the report counts
                          data points; not with --compare, --processor sdk
                          or --exporter opentelemetry-otlp
  --metrics-interval D    metrics: the PeriodicReader's export interval
                          (default: OTEL_METRIC_EXPORT_INTERVAL, else 1s)
  --processor P           ours (otlp_sdk's) or sdk (opentelemetry_sdk's own) (default ours)
  --compare               run ours, then sdk, with the same settings; print both and the ratios
  --exporter E            ours (otlp_sdk::otlp's encoder, tonic / hyper) or
                          opentelemetry-otlp (its transform + prost) (default ours);
                          the same exporter serves both processors

where it goes:
  --endpoint URL          OTLP endpoint, e.g. http://collector:4317 (gRPC) or
                          http://collector:4318/v1/traces (HTTP); without it the
                          OTEL_EXPORTER_OTLP_* variables, else the embedded receiver
  --protocol P            grpc, http/protobuf or http/json (default: OTEL_EXPORTER_OTLP_PROTOCOL, else grpc)
  --compression C         none, gzip or zstd (default: OTEL_EXPORTER_OTLP_COMPRESSION, else none)
  --export-timeout D      the exporter's timeout, retries included
                          (default: OTEL_EXPORTER_OTLP_TIMEOUT, else 10s)
  --tls                   the embedded receiver (the agent's listener with
                          --via-agent) serves TLS with a certificate made at
                          start; the exporter sends to https://127.0.0.1:PORT
                          and trusts the generated CA (ours only; not with
                          --endpoint)

batching (both processors; a flag wins over OTEL_BSP_* for traces or
OTEL_BLRP_* for logs, which win over the default shown; metrics have no
batch processor and ignore these):
  --batch-size N          max items per export (MAX_EXPORT_BATCH_SIZE; default 512)
  --queue-size N          processor queue capacity (MAX_QUEUE_SIZE; default 65536)
  --delay D               scheduled delay between exports (SCHEDULE_DELAY, in ms; default 200ms)
  --concurrent-exports N  exports in flight at once, ours only
                          (MAX_CONCURRENT_EXPORTS; default 4)
  --shutdown-timeout D    how long the final flush may take (default 10s)
  --export-mode M         threaded or inline, ours only (default: inline with
                          our exporter, which never blocks; threaded with
                          opentelemetry-otlp's)

through the agent:
  --via-agent             send to an otlp-agent started in process (otlp_agent::Agent)
                          that forwards to the embedded receiver (over gRPC, or
                          HTTP/protobuf with --protocol http/protobuf); the report
                          checks conservation across both hops (not with --endpoint)
  --agent-queue-size N    the agent's queue, in items; past it the agent refuses
                          with RESOURCE_EXHAUSTED / 429 and the exporter retries
                          (default 1048576)
  --agent-queue Q         memory or disk (default memory); disk: the agent's
                          durable queue (otlp_agent::QueueMode::Disk) in a fresh
                          directory under the system's temporary directory,
                          removed at the end; the report adds its bytes on
                          disk, backlog held on disk only, replays and fsyncs
  --agent-fsync F         with --agent-queue disk: always (each acknowledgement
                          waits for its fsync), interval (every 100ms) or never
                          (default always)

embedded receiver:
  --receiver-latency D    wait before answering each request (default 0)
  --receiver-fail R       share of requests refused as retryable, 0..1 (default 0)
  --receiver-retry-after D  Retry-After on HTTP refusals, whole seconds (default 1s)
  --receiver-threads N    receiver runtime threads (default 1)

output:
  --json                  print the final report as JSON on stdout
  --metrics-addr A        serve Prometheus text on http://A/metrics while running (loopback)
  -h, --help              this text
";

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

impl Protocol {
    /// Reads the value OTLP's `OTEL_EXPORTER_OTLP_PROTOCOL` uses.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" | "http" => Ok(Protocol::HttpProtobuf),
            "http/json" => Ok(Protocol::HttpJson),
            other => Err(format!(
                "unknown protocol `{other}`: use grpc, http/protobuf or http/json"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::HttpJson => "http/json",
        }
    }
}

/// Which telemetry the producers make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    Traces,
    Logs,
    Metrics,
}

impl SignalKind {
    pub fn name(self) -> &'static str {
        match self {
            SignalKind::Traces => "traces",
            SignalKind::Logs => "logs",
            SignalKind::Metrics => "metrics",
        }
    }

    /// What one item is called in the report.
    pub fn item(self) -> &'static str {
        match self {
            SignalKind::Traces => "spans",
            SignalKind::Logs => "log records",
            SignalKind::Metrics => "data points",
        }
    }
}

/// Whose batch processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessorKind {
    /// `otlp_sdk::BatchSpanProcessor` / `BatchLogProcessor`.
    Ours,
    /// `opentelemetry_sdk`'s own thread-based batch processors.
    Sdk,
}

impl ProcessorKind {
    pub fn name(self) -> &'static str {
        match self {
            ProcessorKind::Ours => "ours",
            ProcessorKind::Sdk => "sdk",
        }
    }
}

/// Whose OTLP exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExporterKind {
    /// `otlp_sdk::otlp::OtlpSpanExporter` / `OtlpLogExporter`.
    Ours,
    /// opentelemetry-otlp's `SpanExporter` / `LogExporter`.
    OpentelemetryOtlp,
}

impl ExporterKind {
    pub fn name(self) -> &'static str {
        match self {
            ExporterKind::Ours => "ours",
            ExporterKind::OpentelemetryOtlp => "opentelemetry-otlp",
        }
    }
}

impl Options {
    /// Where our processor polls exports: as asked, else inline for our
    /// exporter (it encodes, then only awaits its I/O thread) and on the
    /// blocking pool for opentelemetry-otlp's (its HTTP client may block).
    pub fn export_mode(&self) -> ExportModeFlag {
        self.export_mode.unwrap_or(match self.exporter {
            ExporterKind::Ours => ExportModeFlag::Inline,
            ExporterKind::OpentelemetryOtlp => ExportModeFlag::Threaded,
        })
    }
}

/// The most producer threads (each is an OS thread with a small stack).
pub const MAX_PRODUCERS: usize = 10_000;

/// The batching settings in force: flag, else environment, else default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    pub batch_size: usize,
    pub queue_size: usize,
    pub delay: Duration,
    pub concurrent_exports: usize,
}

impl Options {
    /// Resolves the batching settings for `signal`: a flag, else the
    /// signal's variable (`OTEL_BSP_*` for traces, `OTEL_BLRP_*` for logs;
    /// a value that is not a positive whole number is ignored with a
    /// warning, as the specification asks), else this job's default. A
    /// batch larger than the queue is a usage error.
    pub fn batching(&self, signal: SignalKind) -> Result<Batching, String> {
        self.batching_from(signal, |name| std::env::var(name).ok())
    }

    /// [`batching`](Self::batching) with the environment given as a lookup.
    pub fn batching_from(
        &self,
        signal: SignalKind,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Batching, String> {
        let prefix = match signal {
            SignalKind::Traces => "OTEL_BSP_",
            SignalKind::Logs => "OTEL_BLRP_",
            // No batch processor: the settings are reported, not used.
            SignalKind::Metrics => "",
        };
        let var = |name: &str| -> Option<(String, u64)> {
            if signal == SignalKind::Metrics {
                return None;
            }
            let name = format!("{prefix}{name}");
            let text = env(&name)?;
            let text = text.trim();
            if text.is_empty() {
                return None;
            }
            match text.parse::<u64>() {
                Ok(n) if (1..=1 << 24).contains(&n) => Some((name, n)),
                _ => {
                    eprintln!("pipeline: ignoring {name}={text:?}: not a positive whole number");
                    None
                }
            }
        };
        let count = |flag: Option<usize>, name: &str, default: usize| {
            flag.or_else(|| var(name).map(|(_, n)| n as usize))
                .unwrap_or(default)
        };
        let batching = Batching {
            batch_size: count(self.batch_size, "MAX_EXPORT_BATCH_SIZE", 512),
            queue_size: count(self.queue_size, "MAX_QUEUE_SIZE", 65_536),
            delay: self
                .delay
                .or_else(|| var("SCHEDULE_DELAY").map(|(_, ms)| Duration::from_millis(ms)))
                .unwrap_or(Duration::from_millis(200)),
            concurrent_exports: count(self.concurrent_exports, "MAX_CONCURRENT_EXPORTS", 4),
        };
        if batching.batch_size > batching.queue_size {
            return Err(format!(
                "the batch size {} is larger than the queue size {} (flags, then {prefix}*)",
                batching.batch_size, batching.queue_size
            ));
        }
        Ok(batching)
    }
}

/// `--agent-queue`: where the in-process agent keeps what it acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentQueue {
    /// `QueueMode::Memory`.
    Memory,
    /// `QueueMode::Disk`, in a temporary directory made for the run.
    Disk,
}

impl AgentQueue {
    pub fn name(self) -> &'static str {
        match self {
            AgentQueue::Memory => "memory",
            AgentQueue::Disk => "disk",
        }
    }
}

/// `--agent-fsync`: the disk queue's `otlp_agent::Fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentFsync {
    /// `Fsync::Always`: acknowledged once fsynced.
    Always,
    /// `Fsync::Interval` of [`AGENT_FSYNC_INTERVAL`].
    Interval,
    /// `Fsync::Never`.
    Never,
}

/// The timer of `--agent-fsync interval` (the agent's own default).
pub const AGENT_FSYNC_INTERVAL: Duration = Duration::from_millis(100);

impl AgentFsync {
    pub fn name(self) -> &'static str {
        match self {
            AgentFsync::Always => "always",
            AgentFsync::Interval => "interval",
            AgentFsync::Never => "never",
        }
    }
}

impl Options {
    /// The agent's queue: `--agent-queue`, else memory.
    pub fn agent_queue(&self) -> AgentQueue {
        self.agent_queue.unwrap_or(AgentQueue::Memory)
    }

    /// The disk queue's fsync policy: `--agent-fsync`, else always.
    pub fn agent_fsync(&self) -> AgentFsync {
        self.agent_fsync.unwrap_or(AgentFsync::Always)
    }
}

/// Where ours runs each export (`otlp_sdk::ExportMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportModeFlag {
    Threaded,
    Inline,
}

/// Parsed flags.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub duration: Duration,
    pub producers: usize,
    pub rate: u64,
    pub signal: SignalKind,
    pub processor: ProcessorKind,
    pub exporter: ExporterKind,
    pub compare: bool,
    /// Checked: `http` or `https`, with a host.
    pub endpoint: Option<String>,
    pub protocol: Option<Protocol>,
    /// `None`: the environment.
    pub compression: Option<otlp_sdk::otlp::Compression>,
    pub export_timeout: Option<Duration>,
    /// The batching flags; `None` leaves it to the environment, then the
    /// default ([`Options::batching`]).
    pub batch_size: Option<usize>,
    pub queue_size: Option<usize>,
    pub delay: Option<Duration>,
    pub shutdown_timeout: Duration,
    pub concurrent_exports: Option<usize>,
    /// `None`: chosen by the exporter ([`Options::export_mode`]).
    pub export_mode: Option<ExportModeFlag>,
    pub receiver_latency: Duration,
    pub receiver_fail: f64,
    pub receiver_retry_after: Duration,
    pub receiver_threads: usize,
    pub json: bool,
    pub metrics_addr: Option<SocketAddr>,
    /// `--via-agent`: an in-process otlp-agent between the exporter and the
    /// embedded receiver.
    pub via_agent: bool,
    /// `--agent-queue-size`; `None`: the agent's default.
    pub agent_queue_size: Option<u64>,
    /// `--agent-queue`; `None`: memory ([`Options::agent_queue`]).
    pub agent_queue: Option<AgentQueue>,
    /// `--agent-fsync`; `None`: always ([`Options::agent_fsync`]).
    pub agent_fsync: Option<AgentFsync>,
    /// `--metrics-interval`; `None`: `OTEL_METRIC_EXPORT_INTERVAL`, else 1 s.
    pub metrics_interval: Option<Duration>,
    /// `--tls`: the embedded receiver (or the agent) serves TLS.
    pub tls: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            duration: Duration::from_secs(10),
            producers: 2,
            rate: 100_000,
            signal: SignalKind::Traces,
            processor: ProcessorKind::Ours,
            exporter: ExporterKind::Ours,
            compare: false,
            endpoint: None,
            protocol: None,
            compression: None,
            export_timeout: None,
            batch_size: None,
            queue_size: None,
            delay: None,
            shutdown_timeout: Duration::from_secs(10),
            concurrent_exports: None,
            export_mode: None,
            receiver_latency: Duration::ZERO,
            receiver_fail: 0.0,
            receiver_retry_after: Duration::from_secs(1),
            receiver_threads: 1,
            json: false,
            metrics_addr: None,
            via_agent: false,
            agent_queue_size: None,
            agent_queue: None,
            agent_fsync: None,
            metrics_interval: None,
            tls: false,
        }
    }
}

/// What parsing decided.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    Run(Box<Options>),
    Help,
}

/// Parses `args` (without the program name).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Parsed, String> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--json" => options.json = true,
            "--compare" => options.compare = true,
            "--via-agent" => options.via_agent = true,
            "--tls" => options.tls = true,
            "--metrics-interval" => {
                options.metrics_interval = Some(duration(
                    "--metrics-interval",
                    &value("--metrics-interval")?,
                )?)
            }
            "--agent-queue-size" => {
                options.agent_queue_size =
                    Some(positive("--agent-queue-size", &value("--agent-queue-size")?)? as u64)
            }
            "--agent-queue" => {
                options.agent_queue = Some(match value("--agent-queue")?.as_str() {
                    "memory" => AgentQueue::Memory,
                    "disk" => AgentQueue::Disk,
                    other => {
                        return Err(format!("--agent-queue: `{other}` is not memory or disk"));
                    }
                })
            }
            "--agent-fsync" => {
                options.agent_fsync = Some(match value("--agent-fsync")?.as_str() {
                    "always" => AgentFsync::Always,
                    "interval" => AgentFsync::Interval,
                    "never" => AgentFsync::Never,
                    other => {
                        return Err(format!(
                            "--agent-fsync: `{other}` is not always, interval or never"
                        ));
                    }
                })
            }
            "--duration" => options.duration = duration("--duration", &value("--duration")?)?,
            "--producers" => {
                options.producers = positive("--producers", &value("--producers")?)?;
                if options.producers > MAX_PRODUCERS {
                    return Err(format!(
                        "--producers {}: at most {MAX_PRODUCERS} (each is a thread)",
                        options.producers
                    ));
                }
            }
            "--rate" => {
                let text = value("--rate")?;
                options.rate = text.parse().map_err(|_| {
                    format!("--rate: `{text}` is not a whole number of items per second")
                })?;
            }
            "--signal" => {
                options.signal = match value("--signal")?.as_str() {
                    "traces" | "spans" => SignalKind::Traces,
                    "logs" => SignalKind::Logs,
                    "metrics" => SignalKind::Metrics,
                    other => {
                        return Err(format!(
                            "--signal: `{other}` is not traces, logs or metrics"
                        ));
                    }
                }
            }
            "--exporter" => {
                options.exporter = match value("--exporter")?.as_str() {
                    "ours" => ExporterKind::Ours,
                    "opentelemetry-otlp" | "otlp" => ExporterKind::OpentelemetryOtlp,
                    other => {
                        return Err(format!(
                            "--exporter: `{other}` is not ours or opentelemetry-otlp"
                        ));
                    }
                };
            }
            "--processor" => {
                options.processor = match value("--processor")?.as_str() {
                    "ours" => ProcessorKind::Ours,
                    "sdk" => ProcessorKind::Sdk,
                    other => return Err(format!("--processor: `{other}` is not ours or sdk")),
                }
            }
            "--endpoint" => options.endpoint = Some(endpoint(&value("--endpoint")?)?),
            "--protocol" => {
                options.protocol = Some(
                    Protocol::parse(&value("--protocol")?)
                        .map_err(|e| format!("--protocol: {e}"))?,
                )
            }
            "--compression" => {
                let name = value("--compression")?;
                options.compression =
                    Some(otlp_sdk::otlp::Compression::parse(&name).ok_or_else(|| {
                        format!("--compression: `{name}` is not none, gzip or zstd")
                    })?)
            }
            "--export-timeout" => {
                options.export_timeout =
                    Some(duration("--export-timeout", &value("--export-timeout")?)?)
            }
            "--batch-size" => {
                options.batch_size = Some(positive("--batch-size", &value("--batch-size")?)?)
            }
            "--queue-size" => {
                options.queue_size = Some(positive("--queue-size", &value("--queue-size")?)?)
            }
            "--delay" => options.delay = Some(duration("--delay", &value("--delay")?)?),
            "--shutdown-timeout" => {
                options.shutdown_timeout =
                    duration("--shutdown-timeout", &value("--shutdown-timeout")?)?
            }
            "--concurrent-exports" => {
                options.concurrent_exports = Some(positive(
                    "--concurrent-exports",
                    &value("--concurrent-exports")?,
                )?)
            }
            "--export-mode" => {
                options.export_mode = Some(match value("--export-mode")?.as_str() {
                    "threaded" => ExportModeFlag::Threaded,
                    "inline" => ExportModeFlag::Inline,
                    other => {
                        return Err(format!(
                            "--export-mode: `{other}` is not threaded or inline"
                        ));
                    }
                })
            }
            "--receiver-latency" => {
                options.receiver_latency =
                    duration_or_zero("--receiver-latency", &value("--receiver-latency")?)?
            }
            "--receiver-fail" => {
                let text = value("--receiver-fail")?;
                options.receiver_fail = match text.parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => r,
                    _ => return Err(format!("--receiver-fail: `{text}` is not a ratio in 0..=1")),
                };
            }
            "--receiver-retry-after" => {
                options.receiver_retry_after =
                    duration_or_zero("--receiver-retry-after", &value("--receiver-retry-after")?)?
            }
            "--receiver-threads" => {
                options.receiver_threads =
                    positive("--receiver-threads", &value("--receiver-threads")?)?
            }
            "--metrics-addr" => {
                let text = value("--metrics-addr")?;
                let addr: SocketAddr = text.parse().map_err(|_| {
                    format!("--metrics-addr: `{text}` is not an address like 127.0.0.1:9464")
                })?;
                if !addr.ip().is_loopback() {
                    return Err(format!("--metrics-addr: {addr} is not a loopback address"));
                }
                options.metrics_addr = Some(addr);
            }
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    if let (Some(batch), Some(queue)) = (options.batch_size, options.queue_size)
        && batch > queue
    {
        return Err(format!(
            "--batch-size {batch} is larger than --queue-size {queue}"
        ));
    }
    if options.via_agent && options.endpoint.is_some() {
        return Err(
            "--via-agent forwards to the embedded receiver; it does not go with --endpoint"
                .to_owned(),
        );
    }
    if options.agent_queue_size.is_some() && !options.via_agent {
        return Err("--agent-queue-size needs --via-agent".to_owned());
    }
    if let Some(queue) = options.agent_queue.filter(|_| !options.via_agent) {
        return Err(format!("--agent-queue {} needs --via-agent", queue.name()));
    }
    if let Some(fsync) = options.agent_fsync
        && options.agent_queue() != AgentQueue::Disk
    {
        return Err(format!(
            "--agent-fsync {} needs --agent-queue disk (the memory queue writes nothing)",
            fsync.name()
        ));
    }
    if options.signal == SignalKind::Metrics {
        metrics_usage(&options)?;
    } else if options.metrics_interval.is_some() {
        return Err("--metrics-interval needs --signal metrics".to_owned());
    }
    if options.tls {
        if options.endpoint.is_some() {
            return Err(
                "--tls makes the embedded receiver serve TLS; it does not go with --endpoint \
                 (an https:// endpoint is trusted through OTEL_EXPORTER_OTLP_CERTIFICATE)"
                    .to_owned(),
            );
        }
        if options.exporter == ExporterKind::OpentelemetryOtlp {
            return Err(
                "--tls needs our exporter (the generated CA is given to otlp_sdk's TlsConfig); \
                 not with --exporter opentelemetry-otlp"
                    .to_owned(),
            );
        }
    }
    Ok(Parsed::Run(Box::new(options)))
}

/// What `--signal metrics` does not go with: metrics are read by the SDK's
/// `PeriodicReader` (no batch processor to compare) and exported by
/// otlp_sdk's `OtlpMetricExporter` only.
fn metrics_usage(options: &Options) -> Result<(), String> {
    if options.compare || options.processor == ProcessorKind::Sdk {
        return Err(
            "--signal metrics has no batch processor (the SDK's PeriodicReader collects \
             and exports); --compare and --processor sdk do not apply"
                .to_owned(),
        );
    }
    if options.exporter == ExporterKind::OpentelemetryOtlp {
        return Err(
            "--signal metrics exports through otlp_sdk's OtlpMetricExporter; \
             --exporter opentelemetry-otlp does not apply"
                .to_owned(),
        );
    }
    Ok(())
}

fn positive(name: &str, text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err(format!("{name} must be at least 1")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{name}: `{text}` is not a positive whole number")),
    }
}

/// Checks an endpoint URL: `http` or `https`, a host, nothing else odd.
pub fn endpoint(text: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("--endpoint: `{text}` {why}"));
    let uri: http::Uri = match text.parse() {
        Ok(uri) => uri,
        Err(e) => return bad(&format!("is not a URL ({e})")),
    };
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return bad(&format!("has scheme `{other}`; OTLP uses http or https")),
        None => return bad("has no scheme; write http://HOST:PORT"),
    }
    match uri.host() {
        Some(host) if !host.is_empty() => Ok(text.to_owned()),
        _ => bad("has no host"),
    }
}

fn duration(name: &str, text: &str) -> Result<Duration, String> {
    match duration_or_zero(name, text)? {
        d if d.is_zero() => Err(format!("{name}: must be more than zero")),
        d => Ok(d),
    }
}

/// `10`, `10s`, `500ms`, `2m`, or `0`.
pub fn duration_or_zero(name: &str, text: &str) -> Result<Duration, String> {
    let bad = || format!("{name}: `{text}` is not a duration like 10s, 500ms or 2m");
    let (number, scale_ms) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1_000)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000)
    } else {
        (text, 1_000)
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    if !value.is_finite() || value < 0.0 || value * scale_ms as f64 > 86_400_000.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(value * scale_ms as f64 / 1_000.0))
}
