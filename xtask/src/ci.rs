//! `cargo xtask ci`: everything CI checks, in order, each step timed.

use std::process::Command;
use std::time::Instant;

use crate::cmd::{StepResult, cargo, run_step, summarize};
use crate::{loom, miri, publish, tsan, workspace};

/// The steps, in the order they run (cheap and likely-to-fail first).
const STEPS: &[&str] = &[
    "fmt",
    "clippy",
    "test",
    "hwloc",
    "bench-build",
    "publish",
    "loom",
    "miri",
    "tsan",
];

/// Preemption bound for loom in CI: 2 keeps every model in seconds while
/// still covering the two-preemption interleavings most bugs need.
const CI_PREEMPTIONS: &str = "2";
/// Seeds per Miri test binary in CI.
const CI_MIRI_SEEDS: &str = "2";

pub fn run(args: &[String]) -> Result<(), String> {
    let skip = parse_skip(args)?;
    let root = workspace::root();
    let mut results = Vec::new();
    for &step in STEPS.iter().filter(|s| !skip.contains(&s.to_string())) {
        if step == "publish" {
            results.extend(publish::dry_run_steps(&root));
            continue;
        }
        let result = match step {
            "fmt" => run_step(
                "fmt",
                cargo()
                    .current_dir(&root)
                    .args(["fmt", "--all", "--", "--check"]),
            ),
            "clippy" => run_step(
                "clippy",
                cargo().current_dir(&root).args([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ]),
            ),
            "test" => run_step(
                "test",
                cargo().current_dir(&root).args(["test", "--workspace"]),
            ),
            "hwloc" => hwloc_step(&root),
            "bench-build" => run_step(
                "bench-build",
                cargo()
                    .current_dir(&root)
                    .args(["bench", "-p", "otlp-benches", "--no-run"]),
            ),
            "loom" => nested("loom", || {
                with_default_env("LOOM_MAX_PREEMPTIONS", CI_PREEMPTIONS);
                loom::run(&[])?;
                // A few mutations per crate, each of which a model must
                // catch: the models can still fail (the full list runs on
                // demand, `cargo xtask loom --mutants`).
                loom::run(&["--mutants".to_owned(), "--subset".to_owned()])
            }),
            "miri" => nested("miri", || {
                with_default_env("OTLP_MIRI_SEEDS", CI_MIRI_SEEDS);
                miri::run(&[])
            }),
            "tsan" => nested("tsan", || tsan::run(&[])),
            other => unreachable!("unknown step {other}"),
        };
        results.push(result);
    }
    summarize("ci", &results)
}

/// The hwloc backend is built and tested when the C library is installed
/// (`.ci/run` installs it); otherwise the step says why it was skipped.
fn hwloc_step(root: &std::path::Path) -> StepResult {
    let found = Command::new("pkg-config")
        .args(["--exists", "hwloc"])
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!(
            "\n==> [hwloc] skipped: pkg-config finds no hwloc (apt-get install libhwloc-dev libudev-dev pkg-config)"
        );
        return StepResult {
            name: "hwloc (skipped: no libhwloc)".to_owned(),
            ok: true,
            elapsed: std::time::Duration::ZERO,
            log: None,
        };
    }
    run_step(
        "hwloc",
        cargo()
            .current_dir(root)
            .args(["test", "-p", "otlp-numa", "--features", "hwloc"]),
    )
}

fn nested(name: &str, body: impl FnOnce() -> Result<(), String>) -> StepResult {
    let start = Instant::now();
    let result = body();
    if let Err(message) = &result {
        eprintln!("xtask: {name}: {message}");
    }
    StepResult {
        name: name.to_owned(),
        ok: result.is_ok(),
        elapsed: start.elapsed(),
        log: None,
    }
}

fn with_default_env(key: &str, value: &str) {
    if std::env::var_os(key).is_none() {
        // SAFETY: xtask is single-threaded at this point; no other thread
        // reads or writes the environment concurrently.
        unsafe { std::env::set_var(key, value) };
    }
}

fn parse_skip(args: &[String]) -> Result<Vec<String>, String> {
    let mut skip = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let value = match arg.as_str() {
            "--skip" => iter.next().ok_or("--skip needs a step name")?.as_str(),
            other => other
                .strip_prefix("--skip=")
                .ok_or_else(|| format!("unknown ci argument `{other}`"))?,
        };
        for step in value.split(',') {
            if !STEPS.contains(&step) {
                return Err(format!(
                    "unknown step `{step}` (steps: {})",
                    STEPS.join(", ")
                ));
            }
            skip.push(step.to_owned());
        }
    }
    Ok(skip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_accepts_known_steps_only() {
        let args = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            parse_skip(&args(&["--skip", "test,tsan"])).expect("ok"),
            vec!["test", "tsan"]
        );
        assert_eq!(
            parse_skip(&args(&["--skip=miri"])).expect("ok"),
            vec!["miri"]
        );
        assert!(parse_skip(&args(&["--skip", "nope"])).is_err());
        assert!(parse_skip(&args(&["--fast"])).is_err());
    }
}
