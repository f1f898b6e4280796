//! The pipeline example's flag parsing: defaults, every flag, and a clear
//! usage error (never a panic) for bad input.

#[allow(dead_code)]
#[path = "../examples/pipeline/cli.rs"]
mod cli;

use std::time::Duration;

use cli::{Options, Parsed, parse, parse_duration};

fn args(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

fn run(text: &str) -> Options {
    match parse(args(text)) {
        Ok(Parsed::Run(options)) => options,
        other => panic!("`{text}` parsed as {other:?}"),
    }
}

#[test]
fn defaults_match_the_usage_text() {
    let options = run("");
    assert_eq!(options, Options::default());
    assert_eq!(options.duration, Duration::from_secs(10));
    assert_eq!(options.batch_size, 512);
    assert!(cli::USAGE.contains("default 10s") && cli::USAGE.contains("default 512"));
}

#[test]
fn every_flag_is_read() {
    let options = run(
        "--duration 500ms --producers 3 --workers 4 --rate 1000 --batch-size 64 --queue-size 128 \
         --output /tmp/x.bin --json --metrics-addr 127.0.0.1:9464",
    );
    assert_eq!(options.duration, Duration::from_millis(500));
    assert_eq!((options.producers, options.workers), (3, Some(4)));
    assert_eq!(
        (options.rate, options.batch_size, options.queue_size),
        (1000, 64, 128)
    );
    assert_eq!(
        options.output.as_deref(),
        Some(std::path::Path::new("/tmp/x.bin"))
    );
    assert!(options.json);
    assert_eq!(
        options.metrics_addr,
        Some("127.0.0.1:9464".parse().expect("addr"))
    );
    assert_eq!(run("--rate=0 --duration=2m").rate, 0);
    assert_eq!(parse(args("--help")), Ok(Parsed::Help));
}

#[test]
fn bad_input_is_a_usage_error_naming_the_flag() {
    for (text, needle) in [
        ("--producers 0", "--producers must be at least 1"),
        ("--workers many", "--workers"),
        ("--duration soon", "--duration"),
        ("--duration 0s", "--duration"),
        ("--rate -5", "--rate"),
        (
            "--batch-size 1024 --queue-size 512",
            "larger than --queue-size",
        ),
        ("--metrics-addr 8.8.8.8:80", "not a loopback"),
        ("--metrics-addr nowhere", "--metrics-addr"),
        ("--output", "--output needs a value"),
        ("--frobnicate", "unknown option"),
    ] {
        let err = parse(args(text)).expect_err(text);
        assert!(err.contains(needle), "`{text}` gave `{err}`");
    }
}

#[test]
fn durations_take_units() {
    assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert!(parse_duration("-1s").is_err() && parse_duration("inf").is_err());
}
