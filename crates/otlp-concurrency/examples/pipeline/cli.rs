//! Command-line flags of the pipeline example; bad input is a usage error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
usage: pipeline [OPTIONS]

An OTLP-shaped span pipeline: producer threads emit spans into a batch
processor, whose exporter encodes each batch as an OTLP/protobuf
ExportTraceServiceRequest on a work-stealing pool.

options:
  --duration D        how long producers run: 10, 10s, 500ms, 2m (default 10s)
  --producers N       producer threads (default 2)
  --workers N         encoder pool threads (default: the CPUs this process may use)
  --rate N            target spans/s over all producers, 0 = as fast as they can (default 500000)
  --batch-size N      max spans per export batch (default 512)
  --queue-size N      batch processor queue capacity (default 65536)
  --output FILE       write every request as a length-delimited protobuf stream
  --json              print the final report as JSON on stdout
  --metrics-addr A    serve Prometheus text on http://A/metrics while running (loopback)
  -h, --help          this text
";

/// Parsed flags.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub duration: Duration,
    pub producers: usize,
    pub workers: Option<usize>,
    pub rate: u64,
    pub batch_size: usize,
    pub queue_size: usize,
    pub output: Option<PathBuf>,
    pub json: bool,
    pub metrics_addr: Option<SocketAddr>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            duration: Duration::from_secs(10),
            producers: 2,
            workers: None,
            rate: 500_000,
            batch_size: 512,
            queue_size: 65_536,
            output: None,
            json: false,
            metrics_addr: None,
        }
    }
}

/// What parsing decided.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    Run(Options),
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
            "--duration" => options.duration = parse_duration(&value("--duration")?)?,
            "--producers" => options.producers = positive("--producers", &value("--producers")?)?,
            "--workers" => options.workers = Some(positive("--workers", &value("--workers")?)?),
            "--rate" => {
                let text = value("--rate")?;
                options.rate = text.parse().map_err(|_| {
                    format!("--rate: `{text}` is not a whole number of spans per second")
                })?;
            }
            "--batch-size" => {
                options.batch_size = positive("--batch-size", &value("--batch-size")?)?
            }
            "--queue-size" => {
                options.queue_size = positive("--queue-size", &value("--queue-size")?)?
            }
            "--output" => options.output = Some(PathBuf::from(value("--output")?)),
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
    if options.batch_size > options.queue_size {
        return Err(format!(
            "--batch-size {} is larger than --queue-size {}",
            options.batch_size, options.queue_size
        ));
    }
    Ok(Parsed::Run(options))
}

fn positive(name: &str, text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err(format!("{name} must be at least 1")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{name}: `{text}` is not a positive whole number")),
    }
}

/// `10`, `10s`, `500ms`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("--duration: `{text}` is not a duration like 10s, 500ms or 2m");
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
    if !value.is_finite() || value <= 0.0 || value * scale_ms as f64 > 86_400_000.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(value * scale_ms as f64 / 1_000.0))
}
