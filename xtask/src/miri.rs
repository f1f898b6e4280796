//! `cargo xtask miri`: the unsafe crates' tests under Miri, many seeds.

use crate::cmd::{cargo_nightly, ensure_nightly_component, run_step, summarize};
use crate::workspace;

/// Seeds per test binary when neither `--seeds` nor `OTLP_MIRI_SEEDS` says.
const DEFAULT_SEEDS: u32 = 8;

pub fn run(args: &[String]) -> Result<(), String> {
    let (seeds, names) = parse_args(args)?;
    ensure_nightly_component("miri")?;
    ensure_nightly_component("rust-src")?;
    let root = workspace::root();
    let all = workspace::crates(&root)?;
    let selected = workspace::select(&all, &names)?;
    // With no names given, only crates that contain unsafe code: Miri adds
    // nothing over `cargo test` for safe code built on checked crates.
    let chosen: Vec<_> = selected
        .into_iter()
        .filter(|c| !names.is_empty() || c.has_unsafe)
        .collect();
    if chosen.is_empty() {
        return Err("no crate with unsafe code selected".to_owned());
    }
    let mut steps = Vec::new();
    for krate in chosen {
        let mut command = cargo_nightly();
        command
            .current_dir(&root)
            .env("MIRIFLAGS", miri_flags(krate.miri_flags.as_deref(), seeds))
            .env("CARGO_TARGET_DIR", root.join("target/miri"))
            .args(["miri", "test", "-p", &krate.name, "--lib", "--tests"]);
        steps.push(run_step(&format!("miri {}", krate.name), &mut command));
    }
    summarize(&format!("miri ({seeds} seeds)"), &steps)
}

/// Miri flags for crates that do not set their own: strict provenance
/// catches pointer/integer round trips in our code.
const DEFAULT_FLAGS: &str = "-Zmiri-strict-provenance";

/// The MIRIFLAGS for a run over `seeds` seeds: the crate's own flags (from
/// `[package.metadata.otlp] miri-flags`) or the default ones. The seeds vary
/// scheduling and weak-memory choices, so a race in one interleaving fails.
pub fn miri_flags(crate_flags: Option<&str>, seeds: u32) -> String {
    let base = crate_flags.unwrap_or(DEFAULT_FLAGS);
    format!("{base} -Zmiri-many-seeds=0..{seeds}")
}

fn parse_args(args: &[String]) -> Result<(u32, Vec<String>), String> {
    let mut seeds = match std::env::var("OTLP_MIRI_SEEDS") {
        Ok(text) => parse_seeds(&text)?,
        Err(_) => DEFAULT_SEEDS,
    };
    let mut names = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--seeds" {
            let value = iter.next().ok_or("--seeds needs a number")?;
            seeds = parse_seeds(value)?;
        } else if let Some(value) = arg.strip_prefix("--seeds=") {
            seeds = parse_seeds(value)?;
        } else {
            names.push(arg.clone());
        }
    }
    Ok((seeds, names))
}

fn parse_seeds(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) | Err(_) => Err(format!(
            "seed count must be a positive integer, got `{text}`"
        )),
        Ok(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_come_from_the_flag_and_must_be_positive() {
        let args = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let (seeds, names) = parse_args(&args(&["--seeds", "3", "lockfree"])).expect("ok");
        assert_eq!((seeds, names), (3, vec!["lockfree".to_owned()]));
        assert_eq!(parse_args(&args(&["--seeds=5"])).expect("ok").0, 5);
        assert!(parse_args(&args(&["--seeds", "0"])).is_err());
        assert!(parse_args(&args(&["--seeds"])).is_err());
        assert_eq!(
            miri_flags(None, 4),
            "-Zmiri-strict-provenance -Zmiri-many-seeds=0..4"
        );
        assert_eq!(
            miri_flags(Some("-Zmiri-tree-borrows"), 2),
            "-Zmiri-tree-borrows -Zmiri-many-seeds=0..2"
        );
    }
}
