//! What an agent is told, and where it reads it: flags, then `OTLP_AGENT_*`
//! variables, then a TOML file (`--config`), then defaults. Every key has
//! one name in all three (`--batch-max-items`, `OTLP_AGENT_BATCH_MAX_ITEMS`,
//! `batch-max-items` or `batch_max_items` in the file), and every bad value
//! is an error naming the key and where it came from.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use otlp_receiver::ReceiverTls;
use otlp_sdk::otlp::{Compression, OtlpExporterBuilder, Protocol};

/// How an agent listens, queues and forwards.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Where OTLP/gRPC and OTLP/HTTP are served (one port serves both).
    pub listen: SocketAddr,
    /// A second port serving the same (by default `127.0.0.1:4318`, the
    /// OTLP/HTTP port); `None` for one port only.
    pub listen_http: Option<SocketAddr>,
    /// The upstream: endpoint, protocol, compression, headers, TLS and the
    /// timeout of one attempt. Settings it leaves unset come from
    /// `OTEL_EXPORTER_OTLP_*` when the agent starts.
    pub upstream: OtlpExporterBuilder,
    /// Most items (spans, log records, data points) in one forwarded request.
    pub batch_max_items: u64,
    /// Most bytes in one forwarded request (before compression).
    pub batch_max_bytes: usize,
    /// How long a partial batch waits for more while exports are in flight.
    pub batch_timeout: Duration,
    /// Exports in flight per signal.
    pub max_concurrent_exports: usize,
    /// Items accepted and not yet exported or dropped, all signals together;
    /// past it requests are refused with a retryable answer.
    pub queue_max_items: u64,
    /// The same bound in bytes (uncompressed requests).
    pub queue_max_bytes: usize,
    /// How long a batch is retried before it is dropped and counted.
    pub max_elapsed: Duration,
    /// The delay a refusal asks clients to wait (`RetryInfo`, `Retry-After`).
    pub retry_after: Duration,
    /// How long a shutdown may spend flushing what is queued.
    pub shutdown_timeout: Duration,
    /// Threads receiving requests.
    pub worker_threads: usize,
    /// Threads sending upstream.
    pub export_threads: usize,
    /// Largest request body, compressed or inflated.
    pub max_body_bytes: usize,
    /// Where `/metrics` (Prometheus text), `/healthz` and `/readyz` are
    /// served; `None` for nowhere.
    pub metrics_addr: Option<SocketAddr>,
    /// Serve TLS (mutual TLS with a client CA) instead of plain text.
    pub tls: Option<ReceiverTls>,
    /// Where accepted requests wait: memory (lost with the process), or a
    /// log on disk that survives a crash and is replayed at start.
    pub queue: QueueMode,
}

/// Where the agent keeps what it acknowledged and has not exported.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum QueueMode {
    /// In memory: a crash loses what is queued.
    #[default]
    Memory,
    /// A segmented log per signal under a directory.
    Disk(DiskQueue),
}

/// The disk queue's settings; [`DiskQueue::new`] gives the defaults.
///
/// With the disk queue, `queue_max_bytes` caps the disk each signal's log
/// may use, and `memory_bytes` how much of the queue is also held in
/// memory (all signals): a backlog beyond it waits on disk only and is
/// read back as exports make room.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskQueue {
    /// The directory (one subdirectory per signal); one live agent at a time.
    pub dir: PathBuf,
    /// A segment file rolls over past this size.
    pub segment_bytes: u64,
    /// When a request is on disk for good before it is acknowledged.
    pub fsync: Fsync,
    /// What a request finds when the disk cap (or the disk) is full.
    pub on_full: OnFull,
    /// Queued bytes held in memory at most, all signals.
    pub memory_bytes: usize,
}

impl DiskQueue {
    /// The defaults under `dir`: 64 MiB segments, `Fsync::Always`,
    /// backpressure when full, 64 MiB of memory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DiskQueue {
            dir: dir.into(),
            segment_bytes: 64 << 20,
            fsync: Fsync::Always,
            on_full: OnFull::Backpressure,
            memory_bytes: 64 << 20,
        }
    }
}

/// What the disk queue does when a request does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFull {
    /// Refuse it with a retryable answer (RESOURCE_EXHAUSTED + RetryInfo,
    /// HTTP 429 + Retry-After): the client keeps it.
    #[default]
    Backpressure,
    /// Delete the oldest segment (its records not yet exported are counted
    /// as `dropped_disk_full_items`) until the request fits.
    DropOldest,
}

/// When appended requests are flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Before the client is answered: a power loss loses nothing that was
    /// acknowledged. Appends that arrive together share one fsync.
    Always,
    /// On a timer: the client is answered once the write reached the
    /// operating system (a crash of the agent loses nothing); a power loss
    /// can lose what was acknowledged in the last interval.
    Interval(Duration),
    /// Never by the agent (tests; the operating system writes back when
    /// it will).
    Never,
}

impl Default for AgentConfig {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        AgentConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 4317)),
            listen_http: Some(SocketAddr::from(([127, 0, 0, 1], 4318))),
            upstream: OtlpExporterBuilder::new(),
            batch_max_items: 8192,
            batch_max_bytes: 4 << 20,
            batch_timeout: Duration::from_millis(200),
            max_concurrent_exports: 4,
            queue_max_items: 1 << 20,
            queue_max_bytes: 256 << 20,
            max_elapsed: Duration::from_secs(300),
            retry_after: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(10),
            worker_threads: threads,
            export_threads: threads.div_ceil(2),
            max_body_bytes: 16 << 20,
            metrics_addr: None,
            tls: None,
            queue: QueueMode::Memory,
        }
    }
}

/// A setting that cannot work, named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key (`batch-max-items`), or `args` for a malformed command line.
    pub key: String,
    /// Where the value came from: `--flag`, a variable, or the file.
    pub source: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (from {}): {}", self.key, self.source, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Settings of the binary that are not the agent's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliOptions {
    /// No live line on stderr.
    pub quiet: bool,
    /// `--help` was asked for.
    pub help: bool,
}

/// Every key: name, whether it takes a value, and its help line.
pub const KEYS: &[(&str, &str)] = &[
    ("config", "FILE  TOML file with any of these keys"),
    ("listen", "ADDR  gRPC and HTTP [127.0.0.1:4317]"),
    (
        "listen-http",
        "ADDR|none  a second port serving both [127.0.0.1:4318]",
    ),
    (
        "endpoint",
        "URL  upstream OTLP endpoint [OTEL_EXPORTER_OTLP_ENDPOINT]",
    ),
    ("protocol", "grpc|http/protobuf  upstream protocol [grpc]"),
    ("compression", "none|gzip|zstd  upstream compression [none]"),
    ("headers", "k=v,k=v  upstream headers"),
    ("timeout", "DURATION  one upstream attempt [10s]"),
    ("batch-max-items", "N  items per forwarded request [8192]"),
    (
        "batch-max-bytes",
        "SIZE  bytes per forwarded request [4MiB]",
    ),
    (
        "batch-timeout",
        "DURATION  partial batch wait while exports are busy [200ms]",
    ),
    (
        "max-concurrent-exports",
        "N  exports in flight per signal [4]",
    ),
    ("queue-max-items", "N  items queued, all signals [1048576]"),
    (
        "queue-max-bytes",
        "SIZE  bytes queued, all signals; disk per signal with --queue disk [256MiB]",
    ),
    (
        "max-elapsed",
        "DURATION  retrying a batch before dropping it [5m]",
    ),
    ("retry-after", "DURATION  delay a refusal asks for [1s]"),
    (
        "shutdown-timeout",
        "DURATION  flushing on SIGTERM/SIGINT [10s]",
    ),
    ("worker-threads", "N  receiving threads [CPUs]"),
    ("export-threads", "N  sending threads [CPUs/2]"),
    ("max-body-bytes", "SIZE  largest request [16MiB]"),
    ("metrics-addr", "ADDR  serve /metrics, /healthz, /readyz"),
    (
        "tls-cert",
        "FILE  serve TLS with this certificate chain (PEM)",
    ),
    ("tls-key", "FILE  and this key (PEM)"),
    (
        "tls-client-ca",
        "FILE  require client certificates from these CAs (PEM)",
    ),
    (
        "queue",
        "memory|disk  where acknowledged requests wait [memory]",
    ),
    (
        "queue-dir",
        "DIR  the disk queue's directory (with --queue disk)",
    ),
    ("segment-bytes", "SIZE  disk queue segment size [64MiB]"),
    (
        "fsync",
        "always|interval|never  disk queue flushing [always]",
    ),
    ("fsync-interval", "DURATION  with --fsync interval [100ms]"),
    (
        "on-full",
        "backpressure|drop-oldest  a full disk queue [backpressure]",
    ),
    (
        "queue-memory-bytes",
        "SIZE  disk queue bytes also held in memory [64MiB]",
    ),
    ("quiet", "no live line on stderr"),
];

/// Where a raw value came from, for error messages.
#[derive(Debug, Clone)]
struct Raw {
    value: String,
    source: String,
}

fn canonical(key: &str) -> String {
    key.trim().replace('_', "-").to_ascii_lowercase()
}

fn env_name(key: &str) -> String {
    format!("OTLP_AGENT_{}", key.replace('-', "_").to_ascii_uppercase())
}

fn known(key: &str) -> bool {
    KEYS.iter().any(|(k, _)| *k == key)
}

/// The command line as key → value; `--key value`, `--key=value`, and a
/// bare `--quiet` / `--help`.
fn parse_args(args: &[String]) -> Result<(HashMap<String, Raw>, bool), ConfigError> {
    let mut out = HashMap::new();
    let mut help = false;
    let mut i = 0;
    let bad = |reason: String| ConfigError {
        key: "args".to_owned(),
        source: "the command line".to_owned(),
        reason,
    };
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(bad(format!("unexpected argument {arg:?}")));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (flag, None),
        };
        let key = canonical(name);
        if key == "help" {
            help = true;
            continue;
        }
        if !known(&key) {
            return Err(bad(format!("unknown flag --{name} (see --help)")));
        }
        let value = match (inline, key.as_str()) {
            (Some(value), _) => value,
            (None, "quiet") => "true".to_owned(),
            (None, _) => match args.get(i) {
                Some(value) => {
                    i += 1;
                    value.clone()
                }
                None => return Err(bad(format!("--{name} needs a value"))),
            },
        };
        out.insert(
            key,
            Raw {
                value,
                source: format!("--{name}"),
            },
        );
    }
    Ok((out, help))
}

fn parse_file(path: &str) -> Result<HashMap<String, Raw>, ConfigError> {
    let bad = |key: &str, reason: String| ConfigError {
        key: key.to_owned(),
        source: format!("the file {path}"),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad("config", e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| bad("config", e.to_string()))?;
    let mut out = HashMap::new();
    for (name, value) in table {
        let key = canonical(&name);
        if !known(&key) || key == "config" {
            return Err(bad(&name, "not a key of the agent".to_owned()));
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(bad(
                    &key,
                    format!("a {} is not a string, integer or boolean", other.type_str()),
                ));
            }
        };
        out.insert(
            key,
            Raw {
                value,
                source: format!("the file {path}"),
            },
        );
    }
    Ok(out)
}

/// A duration: `250ms`, `5s`, `2m`, `1h`, `100us`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 250ms, 5s or 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1e3,
        "us" | "µs" => number / 1e6,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        other => return Err(format!("unknown duration unit {other:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

/// A size: `4096`, `64KiB`, `4MiB`, `1GiB`, `10MB`.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 4096, 64KiB or 4MiB"))?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

impl AgentConfig {
    /// Reads the command line `args` (without the program name), then
    /// `OTLP_AGENT_*` through `env`, then the `--config` file, over the
    /// defaults. Each key is taken from the first source that has it.
    pub fn from_sources(
        args: &[String],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(AgentConfig, CliOptions), ConfigError> {
        let (flags, help) = parse_args(args)?;
        let mut env_values = HashMap::new();
        for (key, _) in KEYS {
            let name = env_name(key);
            if let Some(value) = env(&name).filter(|v| !v.trim().is_empty()) {
                env_values.insert(
                    (*key).to_owned(),
                    Raw {
                        value,
                        source: name,
                    },
                );
            }
        }
        let file_path = flags
            .get("config")
            .or_else(|| env_values.get("config"))
            .map(|raw| raw.value.clone());
        let file = match file_path {
            Some(path) => parse_file(&path)?,
            None => HashMap::new(),
        };
        let get = |key: &str| -> Option<&Raw> {
            flags
                .get(key)
                .or_else(|| env_values.get(key))
                .or_else(|| file.get(key))
        };
        let mut config = AgentConfig::default();
        let mut options = CliOptions {
            help,
            ..CliOptions::default()
        };
        let mut builder = OtlpExporterBuilder::new();
        let mut tls_files: [Option<(Vec<u8>, String)>; 3] = [None, None, None];
        let mut disk = DiskQueue::new(PathBuf::new());
        let (mut queue_kind, mut fsync_kind) = ("memory".to_owned(), "always".to_owned());
        let mut fsync_interval = Duration::from_millis(100);
        for (key, _) in KEYS {
            let Some(raw) = get(key) else { continue };
            let fail = |reason: String| ConfigError {
                key: (*key).to_owned(),
                source: raw.source.clone(),
                reason,
            };
            let v = raw.value.trim();
            let count = |v: &str| -> Result<u64, ConfigError> {
                match v.parse::<u64>() {
                    Ok(0) => Err(fail("must be at least 1".to_owned())),
                    Ok(n) => Ok(n),
                    Err(_) => Err(fail(format!("{v:?} is not a whole number"))),
                }
            };
            let addr = |v: &str| -> Result<SocketAddr, ConfigError> {
                v.parse()
                    .map_err(|_| fail(format!("{v:?} is not an address like 127.0.0.1:4317")))
            };
            let duration = |v: &str| parse_duration(v).map_err(&fail);
            let size = |v: &str| match parse_size(v) {
                Ok(0) => Err(fail("must be at least 1 byte".to_owned())),
                other => other.map_err(&fail),
            };
            match *key {
                "config" => {}
                "listen" => config.listen = addr(v)?,
                "listen-http" => {
                    config.listen_http = if v.eq_ignore_ascii_case("none") {
                        None
                    } else {
                        Some(addr(v)?)
                    }
                }
                "endpoint" => builder = builder.with_endpoint(v),
                "protocol" => match Protocol::parse(v).map_err(|e| fail(e.to_string()))? {
                    Protocol::HttpJson => {
                        return Err(fail(
                            "the agent forwards protobuf: grpc or http/protobuf".to_owned(),
                        ));
                    }
                    protocol => builder = builder.with_protocol(protocol),
                },
                "compression" => {
                    let compression = Compression::parse(v)
                        .ok_or_else(|| fail(format!("{v:?} is not none, gzip or zstd")))?;
                    builder = builder.with_compression(compression);
                }
                "headers" => {
                    for pair in v.split(',').filter(|p| !p.trim().is_empty()) {
                        let (name, value) = pair
                            .split_once('=')
                            .ok_or_else(|| fail(format!("{pair:?} is not name=value")))?;
                        builder = builder.with_header(name.trim(), value.trim());
                    }
                }
                "timeout" => builder = builder.with_timeout(duration(v)?),
                "batch-max-items" => config.batch_max_items = count(v)?,
                "batch-max-bytes" => config.batch_max_bytes = size(v)?,
                "batch-timeout" => config.batch_timeout = duration(v)?,
                "max-concurrent-exports" => config.max_concurrent_exports = count(v)? as usize,
                "queue-max-items" => config.queue_max_items = count(v)?,
                "queue-max-bytes" => config.queue_max_bytes = size(v)?,
                "max-elapsed" => config.max_elapsed = duration(v)?,
                "retry-after" => config.retry_after = duration(v)?,
                "shutdown-timeout" => config.shutdown_timeout = duration(v)?,
                "worker-threads" => config.worker_threads = count(v)? as usize,
                "export-threads" => config.export_threads = count(v)? as usize,
                "max-body-bytes" => config.max_body_bytes = size(v)?,
                "metrics-addr" => config.metrics_addr = Some(addr(v)?),
                "tls-cert" | "tls-key" | "tls-client-ca" => {
                    let pem = std::fs::read(v).map_err(|e| fail(format!("reading {v:?}: {e}")))?;
                    let slot = match *key {
                        "tls-cert" => 0,
                        "tls-key" => 1,
                        _ => 2,
                    };
                    tls_files[slot] = Some((pem, raw.source.clone()));
                }
                "queue" => match v {
                    "memory" | "disk" => queue_kind = v.to_owned(),
                    _ => return Err(fail(format!("{v:?} is not memory or disk"))),
                },
                "queue-dir" => disk.dir = PathBuf::from(v),
                "segment-bytes" => disk.segment_bytes = size(v)? as u64,
                "fsync" => match v {
                    "always" | "interval" | "never" => fsync_kind = v.to_owned(),
                    _ => return Err(fail(format!("{v:?} is not always, interval or never"))),
                },
                "on-full" => {
                    disk.on_full = match v {
                        "backpressure" => OnFull::Backpressure,
                        "drop-oldest" => OnFull::DropOldest,
                        _ => return Err(fail(format!("{v:?} is not backpressure or drop-oldest"))),
                    }
                }
                "queue-memory-bytes" => disk.memory_bytes = size(v)?,
                "fsync-interval" => match duration(v)? {
                    d if d.is_zero() => return Err(fail("must be above zero".to_owned())),
                    d => fsync_interval = d,
                },
                "quiet" => {
                    options.quiet = match v.to_ascii_lowercase().as_str() {
                        "true" | "1" | "yes" => true,
                        "false" | "0" | "no" => false,
                        _ => return Err(fail(format!("{v:?} is not true or false"))),
                    }
                }
                other => unreachable!("key {other} is in KEYS but not handled"),
            }
        }
        config.upstream = builder;
        disk.fsync = match fsync_kind.as_str() {
            "interval" => Fsync::Interval(fsync_interval),
            "never" => Fsync::Never,
            _ => Fsync::Always,
        };
        if queue_kind == "disk" {
            if disk.dir.as_os_str().is_empty() {
                let source = get("queue").map_or_else(String::new, |raw| raw.source.clone());
                return Err(ConfigError {
                    key: "queue-dir".to_owned(),
                    source,
                    reason: "--queue disk needs a directory".to_owned(),
                });
            }
            config.queue = QueueMode::Disk(disk);
        }
        let [cert, key, client_ca] = tls_files;
        config.tls = match (cert, key) {
            (Some((certificate_chain_pem, _)), Some((private_key_pem, _))) => Some(ReceiverTls {
                certificate_chain_pem,
                private_key_pem,
                client_ca_pem: client_ca.map(|(pem, _)| pem),
            }),
            (None, None) if client_ca.is_none() => None,
            (cert, key) => {
                let (key_name, source) = match (cert, key, client_ca) {
                    (Some((_, source)), None, _) => ("tls-key", source),
                    (None, Some((_, source)), _) => ("tls-cert", source),
                    (_, _, Some((_, source))) => ("tls-cert", source),
                    _ => ("tls-cert", String::new()),
                };
                return Err(ConfigError {
                    key: key_name.to_owned(),
                    source,
                    reason: "TLS needs both tls-cert and tls-key".to_owned(),
                });
            }
        };
        config.validate()?;
        Ok((config, options))
    }

    /// The bytes of queued requests held in memory at most, all signals,
    /// and the key that sets it.
    pub(crate) fn memory_room(&self) -> (&'static str, usize) {
        match &self.queue {
            QueueMode::Disk(disk) if disk.memory_bytes < self.queue_max_bytes => {
                ("queue-memory-bytes", disk.memory_bytes)
            }
            _ => ("queue-max-bytes", self.queue_max_bytes),
        }
    }

    /// Checks settings that only fail together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, reason: String| ConfigError {
            key: key.to_owned(),
            source: "the configuration".to_owned(),
            reason,
        };
        let (room_key, room) = self.memory_room();
        if self.batch_max_bytes > room {
            return Err(fail(
                "batch-max-bytes",
                format!("{} is larger than {room_key} {room}", self.batch_max_bytes),
            ));
        }
        if self.max_body_bytes > room {
            return Err(fail(
                "max-body-bytes",
                format!(
                    "{} is larger than {room_key} {room}: such a request could never be queued",
                    self.max_body_bytes
                ),
            ));
        }
        if let QueueMode::Disk(disk) = &self.queue {
            // A record never spans segments, so the largest request must
            // fit in one (20 bytes of record header).
            let largest = self.max_body_bytes as u64 + 20;
            if disk.segment_bytes < largest {
                return Err(fail(
                    "segment-bytes",
                    format!(
                        "{} cannot hold a request of max-body-bytes {} (and its 20-byte header)",
                        disk.segment_bytes, self.max_body_bytes
                    ),
                ));
            }
        }
        for (key, n) in [
            ("batch-max-items", self.batch_max_items),
            ("queue-max-items", self.queue_max_items),
            ("max-concurrent-exports", self.max_concurrent_exports as u64),
            ("worker-threads", self.worker_threads as u64),
            ("export-threads", self.export_threads as u64),
        ] {
            if n == 0 {
                return Err(fail(key, "must be at least 1".to_owned()));
            }
        }
        if self.batch_timeout.is_zero() || self.shutdown_timeout.is_zero() {
            return Err(fail(
                "batch-timeout",
                "batch-timeout and shutdown-timeout must be above zero".to_owned(),
            ));
        }
        Ok(())
    }
}

// Safe code: Miri runs the disk log's tests, not these.
#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn flags_beat_env_beat_file_beat_defaults() {
        let dir = std::env::temp_dir().join(format!("otlp-agent-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("agent.toml");
        std::fs::write(
            &file,
            "batch_max_items = 10\nqueue-max-items = 20\nmax-elapsed = \"7s\"\n",
        )
        .unwrap();
        let env = |name: &str| match name {
            "OTLP_AGENT_QUEUE_MAX_ITEMS" => Some("30".to_owned()),
            "OTLP_AGENT_MAX_ELAPSED" => Some("8s".to_owned()),
            "OTLP_AGENT_CONFIG" => Some(file.display().to_string()),
            _ => None,
        };
        let (config, options) =
            AgentConfig::from_sources(&args(&["--max-elapsed", "9s", "--quiet"]), env).unwrap();
        assert_eq!(config.batch_max_items, 10, "file over default");
        assert_eq!(config.queue_max_items, 30, "env over file");
        assert_eq!(config.max_elapsed, Duration::from_secs(9), "flag over env");
        assert_eq!(config.batch_timeout, Duration::from_millis(200), "default");
        assert!(options.quiet);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_values_name_the_key_and_the_source() {
        let none = |_: &str| None;
        let e = AgentConfig::from_sources(&args(&["--batch-max-items", "many"]), none).unwrap_err();
        assert_eq!(e.key, "batch-max-items");
        assert_eq!(e.source, "--batch-max-items");
        let env = |name: &str| (name == "OTLP_AGENT_BATCH_TIMEOUT").then(|| "soon".to_owned());
        let e = AgentConfig::from_sources(&[], env).unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.source.as_str()),
            ("batch-timeout", "OTLP_AGENT_BATCH_TIMEOUT")
        );
        let e = AgentConfig::from_sources(&args(&["--nope", "1"]), none).unwrap_err();
        assert!(e.reason.contains("--nope"), "{e}");
        let e = AgentConfig::from_sources(&args(&["--protocol", "http/json"]), none).unwrap_err();
        assert_eq!(e.key, "protocol");
        let e = AgentConfig::from_sources(&args(&["--tls-cert", "/nonexistent.pem"]), none)
            .unwrap_err();
        assert!(e.reason.contains("/nonexistent.pem"), "{e}");
        let e = AgentConfig::from_sources(&args(&["--queue-max-bytes", "1KiB"]), none).unwrap_err();
        assert_eq!(e.key, "batch-max-bytes");
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5 fortnights").is_err());
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }
}
