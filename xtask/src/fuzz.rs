//! `cargo xtask fuzz [--seconds N] [TARGET...]`: runs cargo-fuzz targets for
//! a bounded time each. Not part of `cargo test` or `xtask ci` by default:
//! it needs nightly, cargo-fuzz and minutes of CPU.

use std::process::Command;

use crate::cmd::{cargo, cargo_nightly, run_step, summarize};
use crate::workspace;

/// Where the fuzz crates live, relative to the workspace root, and their
/// targets.
const FUZZ_DIRS: &[(&str, &[&str])] = &[("crates/otlp-receiver/fuzz", &["request_decoding"])];

/// Seconds per target when neither `--seconds` nor `OTLP_FUZZ_SECONDS` says.
const DEFAULT_SECONDS: u64 = 60;

pub fn run(args: &[String]) -> Result<(), String> {
    let (seconds, names) = parse_args(args)?;
    ensure_cargo_fuzz()?;
    let root = workspace::root();
    let mut steps = Vec::new();
    let mut matched = false;
    for (dir, targets) in FUZZ_DIRS {
        for target in targets
            .iter()
            .filter(|t| names.is_empty() || names.iter().any(|n| n == *t))
        {
            matched = true;
            let fuzz_dir = root.join(dir);
            let mut command = cargo_nightly();
            command
                .current_dir(&root)
                .args(["fuzz", "run", "--fuzz-dir"])
                .arg(&fuzz_dir)
                .arg(target)
                .arg("--")
                .arg(format!("-max_total_time={seconds}"))
                // Inputs past a few KiB only repeat what smaller ones reach.
                .arg("-max_len=8192");
            steps.push(run_step(
                &format!("fuzz {target} ({seconds} s)"),
                &mut command,
            ));
        }
    }
    if !matched {
        return Err(format!("no fuzz target named {}", names.join(", ")));
    }
    summarize("fuzz", &steps)
}

fn parse_args(args: &[String]) -> Result<(u64, Vec<String>), String> {
    let mut seconds = match std::env::var("OTLP_FUZZ_SECONDS") {
        Ok(text) => parse_seconds(&text)?,
        Err(_) => DEFAULT_SECONDS,
    };
    let mut names = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--seconds" {
            seconds = parse_seconds(iter.next().ok_or("--seconds needs a number")?)?;
        } else if arg.starts_with('-') {
            return Err(format!("unknown fuzz option `{arg}`"));
        } else {
            names.push(arg.clone());
        }
    }
    Ok((seconds, names))
}

fn parse_seconds(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(0) | Err(_) => Err(format!("`{text}` is not a positive number of seconds")),
        Ok(n) => Ok(n),
    }
}

/// Installs cargo-fuzz from crates.io when `cargo fuzz` is missing.
fn ensure_cargo_fuzz() -> Result<(), String> {
    let present = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    let step = run_step(
        "install cargo-fuzz",
        cargo().args(["install", "cargo-fuzz", "--locked"]),
    );
    if step.ok {
        Ok(())
    } else {
        Err("could not install cargo-fuzz".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn seconds_and_targets_are_read() {
        let (seconds, names) =
            parse_args(&strings(&["--seconds", "5", "request_decoding"])).expect("parses");
        assert_eq!((seconds, names), (5, strings(&["request_decoding"])));
        assert!(parse_args(&strings(&["--seconds", "0"])).is_err());
        assert!(parse_args(&strings(&["--seconds"])).is_err());
        assert!(parse_args(&strings(&["--frobnicate"])).is_err());
    }

    #[test]
    fn every_listed_fuzz_dir_exists() {
        let root = workspace::root();
        for (dir, targets) in FUZZ_DIRS {
            for target in *targets {
                let file = root
                    .join(dir)
                    .join("fuzz_targets")
                    .join(format!("{target}.rs"));
                assert!(file.is_file(), "{}", file.display());
            }
        }
    }
}
