//! The pipeline example's modules, compiled into the tests so they can run
//! the job in process (its `main` is a thin wrapper around `job::main`).

#![allow(dead_code)]

#[path = "../../examples/pipeline/cli.rs"]
pub mod cli;
#[path = "../../examples/pipeline/exporters.rs"]
pub mod exporters;
#[path = "../../examples/pipeline/http.rs"]
pub mod http;
#[path = "../../examples/pipeline/job.rs"]
pub mod job;
#[path = "../../examples/pipeline/producers.rs"]
pub mod producers;
#[path = "../../examples/pipeline/report.rs"]
pub mod report;
#[path = "../../examples/pipeline/system.rs"]
pub mod system;

/// Parses `args` as the command line would.
pub fn options(args: &str) -> cli::Options {
    match cli::parse(args.split_whitespace().map(str::to_owned)) {
        Ok(cli::Parsed::Run(options)) => *options,
        other => panic!("`{args}` parsed as {other:?}"),
    }
}

/// Runs the job with `args`; panics if it produced no report.
pub fn run(args: &str) -> report::Outcome {
    match job::run(&options(args)) {
        Ok(outcome) => outcome,
        Err(e) => panic!("`{args}` did not run: {e:?}"),
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}
