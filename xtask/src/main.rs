//! Workspace automation for otlp-concurrency, run as `cargo xtask <command>`.
//!
//! Every subcommand is a thin, logged wrapper around cargo so that what CI
//! runs and what a developer runs are the same commands. See `--help`.

mod bench;
mod callgrind;
mod ci;
mod cmd;
mod fuzz;
mod loom;
mod miri;
mod mutant_list;
mod mutants;
mod publish;
mod report;
mod snippets;
mod stats;
mod tsan;
mod workspace;

use std::process::ExitCode;

const HELP: &str = "\
cargo xtask <COMMAND> [ARGS]

Commands:
  loom [CRATE...]           run every tests/loom_*.rs model in release with --cfg loom
                            (LOOM_MAX_PREEMPTIONS, default 3)
  loom --count [CRATE...]   the same, printing how many executions loom explored per model
  loom --mutants [--subset] [--only ID]... [CRATE...]
                            apply each protocol mutation of xtask/src/mutant_list.rs in turn,
                            rebuild, run the crate's models and fail if a mutation that must be
                            caught survives (or a listed correct weakening fails a model);
                            --subset: the few that `ci` runs. Report in target/loom-mutants/
  miri [--seeds N] [CRATE...]
                            run the unsafe crates' tests under Miri with -Zmiri-many-seeds=0..N
                            (default N = 8; installs the miri component when missing)
  tsan [CRATE...]           run tests/stress.rs of each crate under ThreadSanitizer (nightly, -Zbuild-std)
  bench [--quick] [--rounds N] [--threads LIST] [--no-callgrind | --callgrind-only] [--out DIR]
        [--no-run] [FILTER]
                            run every criterion bench in benches/ in N rounds (default 3), one
                            process per benchmark, ours and the peers alternating (ours first in
                            odd rounds, last in even); count the single-thread scenarios'
                            instructions under callgrind; write docs/benchmarks.md and .svg
                            (median over rounds, median and range of the ratio ours/peer, a
                            verdict only when the range stays on one side of 1.0).
                            --quick: fewer criterion samples. --callgrind-only: just the counts
                            (load-independent), printed; the page is left alone. --out DIR:
                            write the page there instead of docs/. --threads 1,2,4,8,16: run
                            each multi-thread scenario at these thread counts (default 2; ids
                            name the count: mpmc_4t), through OTLP_BENCH_THREADS; counts above
                            the CPU count are flagged in the page as oversubscribed, not
                            scaling. FILTER: a criterion regex over group/scenario/impl
  fuzz [--seconds N] [TARGET...]
                            run the cargo-fuzz targets (otlp-receiver's request decoding) for N
                            seconds each (default 60, or OTLP_FUZZ_SECONDS; nightly; installs
                            cargo-fuzz when missing); not part of ci
  report                    rebuild docs/benchmarks.md and .svg from the rounds on disk
  snippets                  list README.md, docs/*.md and crates/*/README.md with the crate whose
                            doctests compile their Rust snippets (run / no_run / ignore counts);
                            fails if a file is compiled by none
  publish [--dry-run]       package every publishable crate in dependency order and verify it
                            (--dry-run: cargo publish --dry-run, unpublished siblings from a
                            local registry, then every target of the packages type-checked from
                            the packages; built in target/publish); without it, publish them.
                            Fails first if a publishable crate depends on an unpublished one
  ci [--skip STEP...]       everything CI runs: fmt, clippy, test, hwloc, bench-build,
                            publish (dry run), loom, miri, tsan
  help                      this text

CRATE is a package name (otlp-lockfree) or its short name (lockfree).
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(command) = args.next() else {
        eprint!("{HELP}");
        return ExitCode::from(2);
    };
    let rest: Vec<String> = args.collect();
    let result = match command.as_str() {
        "loom" => loom::run(&rest),
        "miri" => miri::run(&rest),
        "tsan" => tsan::run(&rest),
        "bench" => bench::run(&rest),
        "fuzz" => fuzz::run(&rest),
        "report" => bench::report_only(),
        "snippets" => snippets::run(&rest),
        "publish" => publish::run(&rest),
        "ci" => ci::run(&rest),
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}
