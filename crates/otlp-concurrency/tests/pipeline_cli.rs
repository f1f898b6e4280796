//! The pipeline example's flag parsing: defaults, every flag, and a clear
//! usage error (never a panic) for bad input.

#[allow(dead_code)]
#[path = "../examples/pipeline/cli.rs"]
mod cli;

use std::time::Duration;

use cli::{
    ExportModeFlag, ExporterKind, Options, Parsed, ProcessorKind, Protocol, SignalKind, parse,
};

fn args(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

fn run(text: &str) -> Options {
    match parse(args(text)) {
        Ok(Parsed::Run(options)) => *options,
        other => panic!("`{text}` parsed as {other:?}"),
    }
}

#[test]
fn defaults_match_the_usage_text() {
    let options = run("");
    assert_eq!(options, Options::default());
    assert_eq!(options.duration, Duration::from_secs(10));
    assert_eq!((options.batch_size, options.rate), (512, 100_000));
    assert_eq!(options.processor, ProcessorKind::Ours);
    assert_eq!(options.exporter, ExporterKind::Ours);
    assert_eq!(options.export_mode(), ExportModeFlag::Inline);
    assert!(options.endpoint.is_none() && options.protocol.is_none());
    for text in [
        "default 10s",
        "default 512",
        "default 100000",
        "default 4",
        "default 200ms",
    ] {
        assert!(cli::USAGE.contains(text), "{text}");
    }
}

#[test]
fn every_flag_is_read() {
    let options = run(
        "--duration 500ms --producers 3 --rate 1000 --signal logs --processor sdk --compare \
         --endpoint http://collector:4318/v1/logs --protocol http/protobuf --compression gzip \
         --export-timeout 3s --batch-size 64 --queue-size 128 --delay 1s --shutdown-timeout 2s \
         --concurrent-exports 8 --export-mode inline --receiver-latency 5ms --receiver-fail 0.01 \
         --receiver-retry-after 0 --receiver-threads 2 --json --metrics-addr 127.0.0.1:9464",
    );
    assert_eq!(options.duration, Duration::from_millis(500));
    assert_eq!((options.producers, options.rate), (3, 1000));
    assert_eq!(
        (options.signal, options.processor),
        (SignalKind::Logs, ProcessorKind::Sdk)
    );
    assert!(options.compare && options.json);
    assert_eq!(
        options.endpoint.as_deref(),
        Some("http://collector:4318/v1/logs")
    );
    assert_eq!(options.protocol, Some(Protocol::HttpProtobuf));
    assert_eq!(options.compression, Some(otlp_sdk::otlp::Compression::Gzip));
    assert_eq!(options.export_timeout, Some(Duration::from_secs(3)));
    assert_eq!((options.batch_size, options.queue_size), (64, 128));
    assert_eq!(options.delay, Duration::from_secs(1));
    assert_eq!(options.shutdown_timeout, Duration::from_secs(2));
    assert_eq!(options.concurrent_exports, 8);
    assert_eq!(options.export_mode, Some(ExportModeFlag::Inline));
    assert_eq!(options.receiver_latency, Duration::from_millis(5));
    assert_eq!(options.receiver_fail, 0.01);
    assert_eq!(options.receiver_retry_after, Duration::ZERO);
    assert_eq!(options.receiver_threads, 2);
    assert_eq!(
        options.metrics_addr,
        Some("127.0.0.1:9464".parse().expect("addr"))
    );
    assert_eq!(run("--rate=0 --duration=2m").rate, 0);
    assert_eq!(run("--protocol grpc").protocol, Some(Protocol::Grpc));
    let theirs = run("--exporter opentelemetry-otlp");
    assert_eq!(theirs.exporter, ExporterKind::OpentelemetryOtlp);
    assert_eq!(theirs.export_mode(), ExportModeFlag::Threaded, "may block");
    assert_eq!(
        run("--exporter opentelemetry-otlp --export-mode inline").export_mode(),
        ExportModeFlag::Inline
    );
    assert_eq!(parse(args("--help")), Ok(Parsed::Help));
}

#[test]
fn bad_input_is_a_usage_error_naming_the_flag() {
    for (text, needle) in [
        ("--producers 0", "--producers must be at least 1"),
        ("--duration soon", "--duration"),
        ("--duration 0s", "--duration"),
        ("--rate -5", "--rate"),
        (
            "--batch-size 1024 --queue-size 512",
            "larger than --queue-size",
        ),
        ("--metrics-addr 8.8.8.8:80", "not a loopback"),
        ("--metrics-addr nowhere", "--metrics-addr"),
        ("--protocol bogus", "unknown protocol"),
        ("--protocol http/json", "not supported"),
        ("--endpoint not-a-url", "--endpoint"),
        ("--endpoint ftp://host:21", "scheme `ftp`"),
        ("--endpoint localhost:4317", "--endpoint"),
        ("--signal metrics", "--signal"),
        ("--processor theirs", "--processor"),
        ("--exporter reqwest", "--exporter"),
        ("--compression brotli", "--compression"),
        ("--export-mode fast", "--export-mode"),
        ("--receiver-fail 2", "--receiver-fail"),
        ("--receiver-fail nan", "--receiver-fail"),
        ("--endpoint", "--endpoint needs a value"),
        ("--frobnicate", "unknown option"),
    ] {
        let err = parse(args(text)).expect_err(text);
        assert!(err.contains(needle), "`{text}` gave `{err}`");
    }
}

#[test]
fn durations_take_units() {
    let d = |t| cli::duration_or_zero("--x", t);
    assert_eq!(d("10"), Ok(Duration::from_secs(10)));
    assert_eq!(d("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(d("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(d("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(d("0"), Ok(Duration::ZERO));
    assert!(d("-1s").is_err() && d("inf").is_err());
}
