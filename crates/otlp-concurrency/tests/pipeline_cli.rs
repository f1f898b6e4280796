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
    assert_eq!(options.rate, 100_000);
    let no_env = |_: &str| None;
    let batching = options
        .batching_from(SignalKind::Traces, no_env)
        .expect("valid");
    assert_eq!(
        (
            batching.batch_size,
            batching.queue_size,
            batching.concurrent_exports
        ),
        (512, 65_536, 4)
    );
    assert_eq!(batching.delay, Duration::from_millis(200));
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
    assert_eq!(
        (options.batch_size, options.queue_size),
        (Some(64), Some(128))
    );
    assert_eq!(options.delay, Some(Duration::from_secs(1)));
    assert_eq!(options.shutdown_timeout, Duration::from_secs(2));
    assert_eq!(options.concurrent_exports, Some(8));
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
    assert_eq!(
        run("--protocol http/json").protocol,
        Some(Protocol::HttpJson)
    );
    let theirs = run("--exporter opentelemetry-otlp");
    assert_eq!(theirs.exporter, ExporterKind::OpentelemetryOtlp);
    assert_eq!(theirs.export_mode(), ExportModeFlag::Threaded, "may block");
    assert_eq!(
        run("--exporter opentelemetry-otlp --export-mode inline").export_mode(),
        ExportModeFlag::Inline
    );
    let metrics = run("--signal metrics --metrics-interval 250ms --protocol http/protobuf --tls");
    assert_eq!(metrics.signal, SignalKind::Metrics);
    assert_eq!(metrics.metrics_interval, Some(Duration::from_millis(250)));
    assert!(metrics.tls);
    assert!(!run("").tls && run("").metrics_interval.is_none());
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
        ("--endpoint not-a-url", "--endpoint"),
        ("--endpoint ftp://host:21", "scheme `ftp`"),
        ("--endpoint localhost:4317", "--endpoint"),
        ("--signal profiles", "--signal"),
        ("--signal metrics --compare", "--compare"),
        ("--signal metrics --processor sdk", "--processor sdk"),
        (
            "--signal metrics --exporter opentelemetry-otlp",
            "opentelemetry-otlp",
        ),
        ("--metrics-interval 1s", "--signal metrics"),
        (
            "--signal metrics --metrics-interval soon",
            "--metrics-interval",
        ),
        ("--tls --endpoint https://collector:4317", "--endpoint"),
        ("--tls --exporter opentelemetry-otlp", "our exporter"),
        ("--agent-queue disk", "needs --via-agent"),
        ("--via-agent --agent-queue tape", "--agent-queue"),
        (
            "--via-agent --agent-fsync never",
            "needs --agent-queue disk",
        ),
        (
            "--via-agent --agent-queue disk --agent-fsync soon",
            "--agent-fsync",
        ),
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

/// Batching: a flag wins over the signal's `OTEL_BSP_*` / `OTEL_BLRP_*`
/// variable, which wins over the job's default; bad values are ignored.
#[test]
fn batching_flags_then_environment_then_defaults() {
    let env = |name: &str| {
        match name {
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" => Some("256"),
            "OTEL_BSP_MAX_QUEUE_SIZE" => Some("4096"),
            "OTEL_BSP_SCHEDULE_DELAY" => Some("50"),
            "OTEL_BSP_MAX_CONCURRENT_EXPORTS" => Some("not a number"),
            "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE" => Some("32"),
            _ => None,
        }
        .map(str::to_owned)
    };
    let from_env = run("").batching_from(SignalKind::Traces, env).unwrap();
    assert_eq!(
        (
            from_env.batch_size,
            from_env.queue_size,
            from_env.concurrent_exports
        ),
        (256, 4096, 4)
    );
    assert_eq!(from_env.delay, Duration::from_millis(50));
    let flags = run("--batch-size 64 --delay 1s")
        .batching_from(SignalKind::Traces, env)
        .unwrap();
    assert_eq!((flags.batch_size, flags.queue_size), (64, 4096));
    assert_eq!(flags.delay, Duration::from_secs(1));
    let logs = run("").batching_from(SignalKind::Logs, env).unwrap();
    assert_eq!((logs.batch_size, logs.queue_size), (32, 65_536));
    // A batch larger than the queue, once resolved, is a usage error.
    let err = run("--queue-size 100")
        .batching_from(SignalKind::Traces, env)
        .unwrap_err();
    assert!(err.contains("256") && err.contains("100"), "{err}");
    assert!(
        cli::USAGE.contains("OTEL_BSP_"),
        "--help names the variables"
    );
}

#[test]
fn producers_are_bounded() {
    assert_eq!(run("--producers 10000").producers, 10_000);
    let err = parse(args("--producers 10001")).unwrap_err();
    assert!(
        err.contains("--producers") && err.contains("10000"),
        "{err}"
    );
}
