//! `otlp-agent`: the forwarding agent as a program. See docs/agent.md.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use otlp_agent::{Agent, AgentConfig, AgentStats, SignalKind, config::KEYS};

fn usage() -> String {
    let mut text = String::from(
        "otlp-agent: receives OTLP (gRPC and HTTP) and forwards it upstream\n\n\
         usage: otlp-agent [--key value]...\n\n\
         Each key is also read from OTLP_AGENT_<KEY> and from the --config file;\n\
         flags win over variables, variables over the file. Upstream settings not\n\
         given here come from OTEL_EXPORTER_OTLP_*.\n\n",
    );
    for (key, help) in KEYS {
        text.push_str(&format!("  --{key:<24} {help}\n"));
    }
    text
}

/// Totals over the signals: accepted, exported, queued, refused, dropped.
fn totals(stats: &AgentStats) -> [u64; 5] {
    let mut t = [0; 5];
    for signal in [SignalKind::Traces, SignalKind::Logs, SignalKind::Metrics] {
        let s = stats.signal(signal);
        t[0] += s.accepted_items;
        t[1] += s.exported_items;
        t[2] += s.queued_items;
        t[3] += s.refused_full_requests + s.refused_shutdown_requests + s.malformed_requests;
        t[4] += s.dropped_items() + s.rejected_upstream_items;
    }
    t
}

/// Waits for SIGINT or SIGTERM, printing a live line every second.
fn wait_for_signal(agent: &Agent, quiet: bool) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let mut last = totals(&agent.stats());
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = term.recv() => return Ok(()),
                _ = tick.tick() => {
                    let now = totals(&agent.stats());
                    if !quiet {
                        eprintln!(
                            "accepted {}/s  exported {}/s  queued {}  refused requests {}  dropped {}",
                            now[0] - last[0], now[1] - last[1], now[2], now[3], now[4]
                        );
                    }
                    last = now;
                }
            }
        }
    })
}

fn main() -> ExitCode {
    // The library's warnings (a full disk, a failing upstream, damaged
    // records skipped at start) go to stderr, throttled where they repeat.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_target(false)
        .with_ansi(false)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, options) = match AgentConfig::from_sources(&args, |name| std::env::var(name).ok())
    {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("otlp-agent: {e}");
            return ExitCode::from(2);
        }
    };
    if options.help {
        print!("{}", usage());
        return ExitCode::SUCCESS;
    }
    let agent = match Agent::start(config) {
        Ok(agent) => agent,
        Err(e) => {
            eprintln!("otlp-agent: {e}");
            return ExitCode::from(match e {
                otlp_agent::AgentError::Config(_) | otlp_agent::AgentError::Upstream(_) => 2,
                _ => 1,
            });
        }
    };
    let addrs = agent.addrs();
    let http = addrs.get(1).unwrap_or(&addrs[0]);
    let metrics = agent
        .metrics_addr()
        .map_or(String::new(), |a| format!(",\"metrics\":\"{a}\""));
    println!("{{\"grpc\":\"{}\",\"http\":\"{http}\"{metrics}}}", addrs[0]);
    let _ = std::io::stdout().flush();
    if !options.quiet {
        eprintln!("otlp-agent: forwarding to {}", agent.upstream());
    }
    if let Err(e) = wait_for_signal(&agent, options.quiet) {
        eprintln!("otlp-agent: waiting for signals: {e}");
    }
    if !options.quiet {
        eprintln!("otlp-agent: shutting down, flushing");
    }
    let report = agent.shutdown();
    let [accepted, exported, _, refused, dropped] = totals(&report.stats);
    let on_disk: u64 = [SignalKind::Traces, SignalKind::Logs, SignalKind::Metrics]
        .iter()
        .map(|s| report.stats.signal(*s).left_on_disk_items)
        .sum();
    eprintln!(
        "otlp-agent: stopped after {:?} of flushing; accepted {accepted}, exported {exported}, \
         refused requests {refused}, dropped or rejected {dropped}, left unsent {} \
         ({on_disk} in the disk queue for the next start)",
        report.flush_time, report.left_items
    );
    ExitCode::SUCCESS
}
