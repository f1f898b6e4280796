//! `cargo xtask bench`: run the benches in rounds, count instructions, then
//! write the report.
//!
//! How the rounds interleave ours and the peers: criterion measures one
//! benchmark at a time (warm-up, then its samples), so the finest grain at
//! which two implementations can alternate is one benchmark. Every round
//! runs every scenario's implementations back to back, each benchmark in a
//! process of its own (`--exact ID`), ours first in odd rounds and last in
//! even rounds: A B, B A, A B … Each ratio ours/peer is taken within one
//! round, from two measurements seconds apart, so a slow minute on a shared
//! machine moves both sides of a ratio; the order flip cancels what running
//! first or second does (a warm CPU, a fresh heap), and separate processes
//! keep what one benchmark leaves behind (threads, heap state) from
//! touching the next. The spread over rounds then shows how far a ratio
//! moves from run to run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::callgrind::{self, IcountReport};
use crate::cmd::{cargo, run_step};
use crate::report;
use crate::workspace;

/// Criterion settings for `--quick`: enough samples for a stable median,
/// short enough that every bench of every crate fits in a few minutes a
/// round.
const QUICK: &[&str] = &[
    "--warm-up-time",
    "0.5",
    "--measurement-time",
    "1",
    "--sample-size",
    "10",
];

/// Rounds when `--rounds` is not given.
pub const DEFAULT_ROUNDS: usize = 3;

/// The bench target that holds the callgrind scenarios, not criterion ones.
const ICOUNT_TARGET: &str = "icount";

/// What `otlp_benches::EXTRAS_ENV` is set to while one criterion benchmark
/// runs: a regex that matches no id, so no standalone extra runs alongside.
const NO_EXTRAS: &str = "$^";

/// An `--exact` filter no benchmark has, for the pass that runs only the
/// standalone extras.
const NO_BENCHMARK: &str = "xtask: standalone extras only";

/// The variable the benches read (`otlp_benches::EXTRAS_ENV`).
const EXTRAS_ENV: &str = "OTLP_BENCH_EXTRAS";

/// The variable the benches take their thread counts from
/// (`otlp_benches::THREADS_ENV`).
const THREADS_ENV: &str = "OTLP_BENCH_THREADS";

/// Thread counts when `--threads` is not given: the benches' own default
/// (`otlp_benches::DEFAULT_THREADS`), the `_2t` rows.
pub const DEFAULT_THREADS: &[usize] = &[2];

/// `cargo xtask bench` options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub quick: bool,
    pub no_run: bool,
    pub rounds: usize,
    pub callgrind: bool,
    /// Whether the timed rounds run (`--callgrind-only` turns them off).
    pub timing: bool,
    /// Where benchmarks.md and .svg go (default `docs/`).
    pub out: Option<PathBuf>,
    pub filter: Option<String>,
    /// Thread counts of the multi-thread scenarios, ascending, no repeats.
    pub threads: Vec<usize>,
}

impl Options {
    /// Parses `[--quick] [--no-run] [--rounds N] [--threads LIST]
    /// [--no-callgrind | --callgrind-only] [--out DIR] [FILTER]`.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options {
            quick: false,
            no_run: false,
            rounds: DEFAULT_ROUNDS,
            callgrind: true,
            timing: true,
            out: None,
            filter: None,
            threads: DEFAULT_THREADS.to_vec(),
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
                _ => (arg.as_str(), None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| args.next().cloned())
                    .ok_or_else(|| format!("`{name}` needs a value"))
            };
            match flag {
                "--quick" => options.quick = true,
                "--no-run" => options.no_run = true,
                "--no-callgrind" => options.callgrind = false,
                "--callgrind-only" => options.timing = false,
                "--rounds" => {
                    let text = value("--rounds")?;
                    options.rounds = text
                        .parse()
                        .ok()
                        .filter(|&n| n >= 1)
                        .ok_or_else(|| format!("`--rounds {text}`: need a whole number ≥ 1"))?;
                }
                "--threads" => options.threads = parse_threads(&value("--threads")?)?,
                "--out" => options.out = Some(PathBuf::from(value("--out")?)),
                flag if flag.starts_with('-') => {
                    return Err(format!("unknown bench flag `{flag}`"));
                }
                text => {
                    if let Some(first) = &options.filter {
                        return Err(format!("one FILTER only (`{first}`, then `{text}`)"));
                    }
                    options.filter = Some(text.to_owned());
                }
            }
        }
        if !options.callgrind && !options.timing {
            return Err("`--no-callgrind` and `--callgrind-only` leave nothing to run".to_owned());
        }
        Ok(options)
    }

    /// The command line as the report's header names it.
    fn describe(&self) -> String {
        let mut text = "cargo xtask bench".to_owned();
        if self.quick {
            text.push_str(" --quick");
        }
        text.push_str(&format!(" --rounds {}", self.rounds));
        // Left out at the default so the header reads as it always has.
        if self.threads != DEFAULT_THREADS {
            text.push_str(&format!(" --threads {}", self.threads_list()));
        }
        if let Some(filter) = &self.filter {
            text.push(' ');
            text.push_str(filter);
        }
        text
    }
}

impl Options {
    /// The thread counts as `--threads` and the benches' variable take them.
    fn threads_list(&self) -> String {
        let counts: Vec<String> = self.threads.iter().map(usize::to_string).collect();
        counts.join(",")
    }

    /// The most threads a scenario will run, when that is more than `cpus`.
    fn oversubscribed(&self, cpus: usize) -> Option<usize> {
        self.threads
            .iter()
            .copied()
            .max()
            .filter(|&most| most > cpus)
    }
}

/// Parses `--threads LIST`: comma-separated whole numbers ≥ 1, returned
/// ascending without repeats (a repeat would run the same ids twice).
fn parse_threads(text: &str) -> Result<Vec<usize>, String> {
    let mut counts = Vec::new();
    for part in text.split(',') {
        let count = part.trim().parse().ok().filter(|&n: &usize| n >= 1);
        counts
            .push(count.ok_or_else(|| {
                format!("`--threads {text}`: `{part}` is not a whole number ≥ 1")
            })?);
    }
    counts.sort_unstable();
    counts.dedup();
    Ok(counts)
}

/// What the report says about thread counts above the CPU count, if any:
/// such rows measure time-slicing, not scaling.
fn oversubscription_note(options: &Options, cpus: usize) -> Option<String> {
    options.oversubscribed(cpus).map(|most| {
        format!(
            "{most} threads on {cpus} CPUs: the rows above {cpus} threads share CPUs, \
             so they show oversubscription, not scaling"
        )
    })
}

/// One criterion bench target and what it will run.
#[derive(Debug)]
struct Target {
    name: String,
    exe: PathBuf,
    /// `(group/scenario, ids in listed order)`, scenarios in listed order.
    scenarios: Vec<(String, Vec<String>)>,
    /// Whether it has standalone extras the filter selects.
    extras: bool,
}

pub fn run(args: &[String]) -> Result<(), String> {
    let options = Options::parse(args)?;
    let root = workspace::root();
    let executables = build(&root)?;
    if options.no_run {
        return Ok(());
    }
    let home = root.join("target/criterion");
    let filter = options.filter.as_deref();
    let mut failures = Vec::new();
    let icount = executables.iter().find(|(n, _)| n == ICOUNT_TARGET);

    if !options.timing {
        // Counts only: load-independent, so safe on a busy machine. The page
        // is left alone; `cargo xtask report` puts the counts into it.
        let (_, exe) = icount.ok_or(format!("no `{ICOUNT_TARGET}` bench target"))?;
        if filter.is_none() {
            let _ = std::fs::remove_file(home.join(callgrind::RESULTS_FILE));
        }
        if let Some(counts) = count_instructions(exe, &home, &options, &[], &mut failures)? {
            print!("{}", report::icount_table(&counts));
        }
        return finish(failures);
    }

    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let note = oversubscription_note(&options, cpus);
    if let Some(note) = &note {
        eprintln!("xtask: warning: {note}");
    }
    let mut targets = Vec::new();
    for (name, exe) in executables.iter().filter(|(n, _)| n != ICOUNT_TARGET) {
        targets.push(list_target(&root, &home, name, exe, &options)?);
    }
    let benchmarks: usize = targets
        .iter()
        .flat_map(|t| &t.scenarios)
        .map(|(_, ids)| ids.len())
        .sum();
    if benchmarks == 0 && !targets.iter().any(|t| t.extras) {
        return Err(format!(
            "no benchmark matches {}",
            filter.map_or("(no filter)".to_owned(), |f| format!("`{f}`"))
        ));
    }
    prepare_rounds(&home, &options)?;

    for round in 1..=options.rounds {
        let round_home = home.join(report::ROUNDS_DIR).join(format!("round-{round}"));
        let mut done = 0;
        for target in &targets {
            for (_, ids) in &target.scenarios {
                for id in round_order(ids, round) {
                    done += 1;
                    let name = format!(
                        "round {round}/{}, {done}/{benchmarks}: {id}",
                        options.rounds
                    );
                    let mut command = bench_command(&root, &target.exe, &round_home, &options);
                    command.env(EXTRAS_ENV, NO_EXTRAS);
                    if options.quick {
                        command.args(QUICK);
                    }
                    command.args(["--exact", id]);
                    if !run_step(&name, &mut command).ok {
                        failures.push(format!("round {round}: {id}"));
                    }
                }
            }
            if target.extras {
                let name = format!(
                    "round {round}/{}: standalone extras of {}",
                    options.rounds, target.name
                );
                let mut command = bench_command(&root, &target.exe, &round_home, &options);
                command
                    .env(EXTRAS_ENV, filter.unwrap_or(""))
                    .args(["--exact", NO_BENCHMARK]);
                if !run_step(&name, &mut command).ok {
                    failures.push(format!("round {round}: extras of {}", target.name));
                }
            }
        }
    }

    if options.callgrind {
        let timed: Vec<&str> = targets
            .iter()
            .flat_map(|t| &t.scenarios)
            .flat_map(|(_, ids)| ids.iter().map(String::as_str))
            .collect();
        match icount {
            Some((_, exe)) => {
                count_instructions(exe, &home, &options, &timed, &mut failures)?;
            }
            None => eprintln!("xtask: no `{ICOUNT_TARGET}` bench target; no instruction counts"),
        }
    }

    write_report(
        &root,
        &home,
        &options.describe(),
        note.as_deref(),
        options.out.as_deref(),
    )?;
    finish(failures)
}

/// Success, or an error naming every run that failed.
fn finish(failures: Vec<String>) -> Result<(), String> {
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} runs failed (the report has the rest): {}",
            failures.len(),
            failures.join("; ")
        ))
    }
}

/// `cargo xtask report`: rebuild the report from results already on disk.
pub fn report_only() -> Result<(), String> {
    let root = workspace::root();
    write_report(
        &root,
        &root.join("target/criterion"),
        "cargo xtask report",
        None,
        None,
    )
}

/// Builds every bench target of `otlp-benches` and returns `(name, exe)`
/// pairs sorted by name.
fn build(root: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let mut command = cargo();
    command
        .current_dir(root)
        .args(["bench", "-p", "otlp-benches", "--benches", "--no-run"])
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    eprintln!("\n==> [bench build] cargo bench -p otlp-benches --benches --no-run");
    let out = command
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err("the benches did not build".to_owned());
    }
    let executables = bench_executables(&String::from_utf8_lossy(&out.stdout));
    if executables.is_empty() {
        return Err("cargo built no bench executable".to_owned());
    }
    Ok(executables)
}

/// The bench executables in cargo's JSON messages, sorted by target name.
fn bench_executables(messages: &str) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = messages
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "bench"))
        })
        .filter_map(|m| {
            let name = m["target"]["name"].as_str()?.to_owned();
            let exe = m["executable"].as_str()?;
            Some((name, PathBuf::from(exe)))
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// A command that runs one bench executable the way `cargo bench` does
/// (from the package directory, `--bench`), results into `home`, at the
/// thread counts of `options`.
fn bench_command(root: &Path, exe: &Path, home: &Path, options: &Options) -> Command {
    let mut command = Command::new(exe);
    // Always set, so a value left in the caller's environment cannot make
    // the listing and the rounds disagree with the report's header.
    command
        .current_dir(root.join("benches"))
        .env("CRITERION_HOME", home)
        .env(THREADS_ENV, options.threads_list())
        .arg("--bench");
    command
}

/// Asks a target which benchmarks and extras the filter selects.
fn list_target(
    root: &Path,
    home: &Path,
    name: &str,
    exe: &Path,
    options: &Options,
) -> Result<Target, String> {
    let filter = options.filter.as_deref();
    let mut command = bench_command(root, exe, &home.join("list"), options);
    command
        .env(EXTRAS_ENV, filter.unwrap_or(""))
        .arg("--list")
        .args(filter)
        .stderr(Stdio::inherit());
    let out = command
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!("{name} --list failed"));
    }
    let (ids, extras) = parse_listing(&String::from_utf8_lossy(&out.stdout));
    Ok(Target {
        name: name.to_owned(),
        exe: exe.to_owned(),
        scenarios: group_scenarios(&ids),
        extras: !extras.is_empty(),
    })
}

/// Splits criterion's `--list` output into benchmark ids and the extras the
/// benches print (`ID: extra`); anything else a bench prints is ignored.
fn parse_listing(text: &str) -> (Vec<String>, Vec<String>) {
    let mut ids = Vec::new();
    let mut extras = Vec::new();
    for line in text.lines() {
        if let Some(id) = line.strip_suffix(": benchmark") {
            ids.push(id.to_owned());
        } else if let Some(id) = line.strip_suffix(": extra") {
            extras.push(id.to_owned());
        }
    }
    (ids, extras)
}

/// Groups `group/scenario/impl` ids by `group/scenario`, keeping the listed
/// order of scenarios, with ours first in each. An id outside the
/// convention is a scenario of its own.
fn group_scenarios(ids: &[String]) -> Vec<(String, Vec<String>)> {
    let mut scenarios: Vec<(String, Vec<String>)> = Vec::new();
    for id in ids {
        let key = match id.rsplit_once('/') {
            Some((scenario, _)) if scenario.contains('/') => scenario.to_owned(),
            _ => id.clone(),
        };
        match scenarios.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(id.clone()),
            None => scenarios.push((key, vec![id.clone()])),
        }
    }
    for (key, members) in &mut scenarios {
        let ours = format!("{key}/{}", report::OURS);
        if let Some(at) = members.iter().position(|m| *m == ours) {
            let ours = members.remove(at);
            members.insert(0, ours);
        }
    }
    scenarios
}

/// The order a scenario's benchmarks run in round `round` (1-based): as
/// listed (ours first) in odd rounds, reversed in even ones.
fn round_order(ids: &[String], round: usize) -> Vec<&str> {
    let mut order: Vec<&str> = ids.iter().map(String::as_str).collect();
    if round.is_multiple_of(2) {
        order.reverse();
    }
    order
}

/// Clears what this run replaces. Without a filter every earlier round and
/// count goes; with one, results of other benchmarks stay (as a filtered
/// criterion run keeps them) but rounds past `--rounds` go, so that no
/// benchmark mixes this run's rounds with an older run's extra ones.
fn prepare_rounds(home: &Path, options: &Options) -> Result<(), String> {
    let remove = |dir: &Path| match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot clear {}: {e}", dir.display()))
        }
        _ => Ok(()),
    };
    if options.filter.is_none() {
        remove(&home.join(report::ROUNDS_DIR))?;
        if options.callgrind {
            let _ = std::fs::remove_file(home.join(callgrind::RESULTS_FILE));
        }
        return Ok(());
    }
    for (n, dir) in report::round_dirs(home) {
        if n > options.rounds {
            remove(&dir)?;
        }
    }
    Ok(())
}

/// Runs the callgrind pass, merges its counts into `callgrind.json` and
/// returns them all; `None` when valgrind is not installed. `timed` are the
/// criterion ids this run measures (empty: no cross-check).
fn count_instructions(
    exe: &Path,
    home: &Path,
    options: &Options,
    timed: &[&str],
    failures: &mut Vec<String>,
) -> Result<Option<IcountReport>, String> {
    let Some(valgrind) = callgrind::valgrind_version() else {
        eprintln!("xtask: valgrind not found; no instruction counts (apt-get install valgrind)");
        return Ok(None);
    };
    let scenarios = callgrind::list(exe, options.filter.as_deref())?;
    let mirrors_nothing = |id: &str| !timed.is_empty() && !timed.contains(&id);
    for s in scenarios.iter().filter(|s| mirrors_nothing(&s.id)) {
        eprintln!(
            "xtask: warning: icount scenario {} mirrors no criterion benchmark run now",
            s.id
        );
    }
    let scratch = home.join("callgrind-out");
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let mut counts = Vec::new();
    for (i, s) in scenarios.iter().enumerate() {
        eprintln!(
            "==> [callgrind {}/{}] {} ({} and {} iterations)",
            i + 1,
            scenarios.len(),
            s.id,
            s.iters,
            2 * s.iters
        );
        let mut parts = s.id.splitn(3, '/');
        let (Some(group), Some(scenario), Some(imp)) = (parts.next(), parts.next(), parts.next())
        else {
            failures.push(format!("callgrind: `{}` is not group/scenario/impl", s.id));
            continue;
        };
        match callgrind::count(exe, s, &scratch) {
            Ok(per_op) => {
                eprintln!("<== {per_op:.1} instructions per element");
                counts.push(callgrind::Icount {
                    group: group.to_owned(),
                    scenario: scenario.to_owned(),
                    imp: imp.to_owned(),
                    per_op,
                });
            }
            Err(e) => {
                eprintln!("<== FAILED: {e}");
                failures.push(format!("callgrind: {e}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let mut report = callgrind::load(home)?.unwrap_or(IcountReport {
        valgrind: valgrind.clone(),
        results: Vec::new(),
    });
    report.valgrind = valgrind;
    callgrind::merge(&mut report, counts);
    callgrind::save(home, &report)?;
    Ok(Some(report))
}

/// Writes the page and chart from the rounds under `home`; `note` is a
/// warning for the header (oversubscribed thread counts).
fn write_report(
    root: &Path,
    home: &Path,
    command: &str,
    note: Option<&str>,
    out: Option<&Path>,
) -> Result<(), String> {
    let rounds = report::collect_rounds(home)?;
    let series = report::merge(&rounds);
    if series.is_empty() {
        return Err(format!("no criterion results under {}", home.display()));
    }
    let icounts = callgrind::load(home)?;
    let machine = report::Machine::detect();
    let docs = root.join("docs");
    let dir = out.map_or_else(|| docs.clone(), Path::to_path_buf);
    let md_path = dir.join("benchmarks.md");
    // The notes come from the page being replaced, else from docs/.
    let previous = std::fs::read_to_string(&md_path)
        .or_else(|_| std::fs::read_to_string(docs.join("benchmarks.md")))
        .unwrap_or_default();
    let markdown = report::markdown(
        &series,
        icounts.as_ref(),
        &machine,
        command,
        note,
        &previous,
    );
    let svg = report::svg(&series);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(&md_path, &markdown).map_err(|e| format!("{}: {e}", md_path.display()))?;
    let svg_path = dir.join("benchmarks.svg");
    std::fs::write(&svg_path, svg).map_err(|e| format!("{}: {e}", svg_path.display()))?;
    print!("{}", report::table(&series));
    eprintln!(
        "\nwrote {} and {} ({} benchmarks over {} rounds)",
        md_path.display(),
        svg_path.display(),
        series.len(),
        rounds.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_parse_rounds_quick_out_and_one_filter() {
        let o = Options::parse(&strings(&["--quick", "--rounds", "5", "monitor"])).expect("ok");
        assert!(o.quick && o.callgrind && !o.no_run);
        assert_eq!((o.rounds, o.filter.as_deref()), (5, Some("monitor")));
        assert_eq!(o.describe(), "cargo xtask bench --quick --rounds 5 monitor");
        let o = Options::parse(&strings(&[
            "--rounds=2",
            "--no-callgrind",
            "--out",
            "/tmp/x",
        ]))
        .expect("ok");
        assert_eq!(o.rounds, 2);
        assert!(!o.callgrind);
        assert_eq!(o.out, Some(PathBuf::from("/tmp/x")));
        let o = Options::parse(&[]).expect("ok");
        assert_eq!(o.rounds, DEFAULT_ROUNDS);
        assert!(Options::parse(&strings(&["--rounds", "0"])).is_err());
        assert!(Options::parse(&strings(&["--rounds"])).is_err());
        assert!(Options::parse(&strings(&["--rounds", "x"])).is_err());
        assert!(Options::parse(&strings(&["--fast"])).is_err());
        assert!(Options::parse(&strings(&["a", "b"])).is_err());
        let o = Options::parse(&strings(&["--callgrind-only", "lockfree_stack"])).expect("ok");
        assert!(!o.timing && o.callgrind);
        assert!(Options::parse(&strings(&["--callgrind-only", "--no-callgrind"])).is_err());
    }

    #[test]
    fn options_parse_threads_sorted_and_named_in_the_header() {
        let o = Options::parse(&[]).expect("ok");
        assert_eq!(o.threads, DEFAULT_THREADS);
        assert_eq!(o.describe(), "cargo xtask bench --rounds 3");
        assert_eq!(o.threads_list(), "2");
        let o = Options::parse(&strings(&["--threads", "16,1, 4,2,8,2", "mpmc"])).expect("ok");
        assert_eq!(o.threads, [1, 2, 4, 8, 16]);
        assert_eq!(o.threads_list(), "1,2,4,8,16");
        assert_eq!(
            o.describe(),
            "cargo xtask bench --rounds 3 --threads 1,2,4,8,16 mpmc"
        );
        let o = Options::parse(&strings(&["--threads=4"])).expect("ok");
        assert_eq!(o.threads, [4]);
        for bad in ["0", "1,0", "", "1,,2", "x", "-2", "2 4"] {
            let err = Options::parse(&strings(&["--threads", bad])).expect_err(bad);
            assert!(err.contains("--threads"), "{bad}: {err}");
        }
        assert!(Options::parse(&strings(&["--threads"])).is_err());
    }

    #[test]
    fn threads_above_the_cpus_are_noted() {
        let o = Options::parse(&strings(&["--threads", "1,2,16"])).expect("ok");
        assert_eq!(oversubscription_note(&o, 16), None);
        let note = oversubscription_note(&o, 2).expect("oversubscribed");
        assert!(note.starts_with("16 threads on 2 CPUs"), "{note}");
        assert_eq!(
            oversubscription_note(&Options::parse(&[]).expect("ok"), 2),
            None
        );
    }

    #[test]
    fn listing_separates_benchmarks_extras_and_noise() {
        let text = "sched_spawn/spawn_100k/ours: benchmark\nsetup chatter\n\
                    sched_idle/idle_1s_after_burst/ours: extra\n";
        let (ids, extras) = parse_listing(text);
        assert_eq!(ids, ["sched_spawn/spawn_100k/ours"]);
        assert_eq!(extras, ["sched_idle/idle_1s_after_burst/ours"]);
    }

    #[test]
    fn scenarios_group_with_ours_first_and_alternate_by_round() {
        let ids = strings(&["g/a/peer1", "g/a/ours", "g/b/ours", "g/a/peer2", "loose"]);
        let scenarios = group_scenarios(&ids);
        assert_eq!(scenarios.len(), 3);
        assert_eq!(scenarios[0].0, "g/a");
        assert_eq!(scenarios[0].1, ["g/a/ours", "g/a/peer1", "g/a/peer2"]);
        assert_eq!(scenarios[2].1, ["loose"]);
        assert_eq!(
            round_order(&scenarios[0].1, 1),
            ["g/a/ours", "g/a/peer1", "g/a/peer2"]
        );
        assert_eq!(
            round_order(&scenarios[0].1, 2),
            ["g/a/peer2", "g/a/peer1", "g/a/ours"]
        );
        assert_eq!(
            round_order(&scenarios[0].1, 3),
            round_order(&scenarios[0].1, 1)
        );
    }

    #[test]
    fn bench_executables_come_from_cargo_messages() {
        let messages = r#"{"reason":"compiler-artifact","target":{"name":"serde","kind":["lib"]},"executable":null}
{"reason":"compiler-artifact","target":{"name":"sync","kind":["bench"]},"executable":"/t/sync-1"}
{"reason":"compiler-artifact","target":{"name":"icount","kind":["bench"]},"executable":"/t/icount-2"}
{"reason":"build-finished","success":true}
not json"#;
        assert_eq!(
            bench_executables(messages),
            [
                ("icount".to_owned(), PathBuf::from("/t/icount-2")),
                ("sync".to_owned(), PathBuf::from("/t/sync-1"))
            ]
        );
    }
}
