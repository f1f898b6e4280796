//! `cargo xtask loom`: every `tests/loom_*.rs` model, release mode, `--cfg loom`.
//!
//! `--count` prints how many executions loom explored per model;
//! `--mutants [--subset] [--only ID]` runs the mutation check
//! ([`crate::mutants`]).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::cmd::{cargo, run_step, summarize};
use crate::mutants;
use crate::workspace::{self, CrateInfo};

/// Preemption bound when `LOOM_MAX_PREEMPTIONS` is not set.
const DEFAULT_PREEMPTIONS: &str = "3";

pub fn run(args: &[String]) -> Result<(), String> {
    let root = workspace::root();
    let all = workspace::crates(&root)?;
    let args = parse_args(args)?;
    let selected = workspace::select(&all, &args.crates)?;
    let preemptions =
        std::env::var("LOOM_MAX_PREEMPTIONS").unwrap_or_else(|_| DEFAULT_PREEMPTIONS.to_owned());
    let with_models: Vec<&CrateInfo> = selected
        .into_iter()
        .filter(|c| !c.loom_tests.is_empty())
        .collect();
    if with_models.is_empty() {
        return Err("no tests/loom_*.rs models found in the selected crates".to_owned());
    }
    if args.mutants {
        return mutants::run(&with_models, &args.mutant_opts, &preemptions);
    }
    if args.count {
        return count(&root, &with_models, &preemptions);
    }
    let mut steps = Vec::new();
    for krate in with_models {
        steps.push(run_step(
            &format!("loom {}", krate.name),
            &mut loom_command(&root, krate, &preemptions, &krate.loom_tests),
        ));
    }
    summarize(
        &format!("loom (LOOM_MAX_PREEMPTIONS={preemptions})"),
        &steps,
    )
}

/// `cargo xtask loom` arguments: crate names and the mode flags.
#[derive(Debug, Default)]
struct Args {
    crates: Vec<String>,
    mutants: bool,
    count: bool,
    mutant_opts: mutants::Options,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut out = Args::default();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--mutants" => out.mutants = true,
            "--subset" => out.mutant_opts.subset = true,
            "--count" => out.count = true,
            "--only" => out
                .mutant_opts
                .only
                .push(iter.next().ok_or("--only needs a mutant id")?.clone()),
            flag if flag.starts_with("--") => {
                return Err(format!("unknown loom argument `{flag}`"));
            }
            name => out.crates.push(name.to_owned()),
        }
    }
    if (out.mutant_opts.subset || !out.mutant_opts.only.is_empty()) && !out.mutants {
        return Err("--subset and --only go with --mutants".to_owned());
    }
    if out.mutants && out.count {
        return Err("--mutants and --count are separate runs".to_owned());
    }
    Ok(out)
}

/// `--count`: runs the models one at a time and prints how many executions
/// loom explored in each (loom's own "Completed in N iterations" line).
fn count(root: &Path, crates: &[&CrateInfo], preemptions: &str) -> Result<(), String> {
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for krate in crates {
        let mut command = loom_command(root, krate, preemptions, &krate.loom_tests);
        command
            .env("LOOM_LOG", "loom::model=info")
            .args(["--", "--nocapture", "--test-threads=1"]);
        eprintln!("\n==> [loom --count {}]", krate.name);
        let (status, output) = mutants::run_captured(command, Duration::from_secs(3600))?;
        if status != Some(true) {
            eprintln!("{output}");
            failed.push(krate.name.clone());
        }
        rows.extend(
            executions(&output)
                .into_iter()
                .map(|(model, n)| (krate.name.clone(), model, n)),
        );
    }
    eprintln!("\nloom executions (LOOM_MAX_PREEMPTIONS={preemptions}):");
    for (krate, model, n) in &rows {
        eprintln!("  {krate:<14} {model:<60} {n:>8}");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "loom --count: models failed in {}",
            failed.join(", ")
        ))
    }
}

/// Sums loom's "Completed in N iterations" lines per model, attributing
/// each to the test libtest announced last (`--test-threads=1`).
fn executions(output: &str) -> Vec<(String, u64)> {
    let mut file = String::new();
    let mut current = String::new();
    let mut rows: Vec<(String, u64)> = Vec::new();
    for line in output.lines() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("Running tests/")
            && let Some(stem) = rest.split(".rs").next()
        {
            stem.clone_into(&mut file);
        }
        if let Some(rest) = trimmed.strip_prefix("test ")
            && let Some((name, _)) = rest.split_once(" ... ")
        {
            current = format!("{file}::{name}");
        }
        if let Some((_, tail)) = line.split_once("Completed in ") {
            let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse::<u64>() {
                match rows.last_mut() {
                    Some((model, total)) if *model == current => *total += n,
                    _ => rows.push((current.clone(), n)),
                }
            }
        }
    }
    rows
}

/// The RUSTFLAGS a crate's loom build needs.
pub fn rustflags(krate: &CrateInfo) -> &'static str {
    if krate.uses_epoch {
        // crossbeam-epoch's own loom support is switched on by this cfg plus
        // its `loom` feature (enabled in the crate's cfg(loom) dependencies).
        "--cfg loom --cfg crossbeam_loom"
    } else {
        "--cfg loom"
    }
}

/// `cargo test --release` of `tests` (loom model files) of `krate` with
/// the loom cfgs, in the loom target dir.
pub fn loom_command(
    root: &Path,
    krate: &CrateInfo,
    preemptions: &str,
    tests: &[String],
) -> Command {
    // One target dir per flag set, so loom builds never invalidate normal ones
    // and crates that need crossbeam_loom do not rebuild the others' deps.
    let target = if krate.uses_epoch {
        "target/loom-crossbeam"
    } else {
        "target/loom"
    };
    let mut command = cargo();
    command
        .current_dir(root)
        .env("RUSTFLAGS", rustflags(krate))
        .env("LOOM_MAX_PREEMPTIONS", preemptions)
        .env("CARGO_TARGET_DIR", root.join(target))
        .args(["test", "--release", "-p", &krate.name]);
    for test in tests {
        command.args(["--test", test]);
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn epoch_crates_get_the_crossbeam_cfg() {
        let mut krate = CrateInfo {
            name: "otlp-x".to_owned(),
            dir: PathBuf::new(),
            loom_tests: vec!["loom_x".to_owned()],
            has_stress: false,
            uses_epoch: false,
            has_unsafe: false,
            miri_flags: None,
        };
        assert_eq!(rustflags(&krate), "--cfg loom");
        krate.uses_epoch = true;
        assert_eq!(rustflags(&krate), "--cfg loom --cfg crossbeam_loom");
    }

    #[test]
    fn executions_are_summed_per_model() {
        let out = "     Running tests/loom_a.rs (x)\n\nrunning 2 tests\n\
                   test one ... \u{1b}[2m INFO\u{1b}[0m Completed in 12 iterations\nok\n\
                   test two ... INFO Completed in 3 iterations\nINFO Completed in 4 iterations\nok\n";
        assert_eq!(
            executions(out),
            vec![
                ("loom_a::one".to_owned(), 12),
                ("loom_a::two".to_owned(), 7)
            ]
        );
    }

    #[test]
    fn mode_flags_parse() {
        let args = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let a = parse_args(&args(&["--mutants", "--subset", "sync"])).unwrap();
        assert!(a.mutants && a.mutant_opts.subset && !a.count);
        assert_eq!(a.crates, vec!["sync"]);
        assert!(parse_args(&args(&["--subset"])).is_err());
        assert!(parse_args(&args(&["--mutants", "--count"])).is_err());
        assert!(parse_args(&args(&["--fast"])).is_err());
    }
}
