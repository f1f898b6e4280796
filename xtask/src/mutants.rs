//! `cargo xtask loom --mutants`: proves that the loom models can fail.
//!
//! Each entry of [`crate::mutant_list::MUTANTS`] weakens one line of a
//! protocol (an ordering, a fence, a notify, a reset). The harness applies
//! one mutant at a time, rebuilds the crate's loom models, runs them and
//! restores the file:
//!
//! * a mutant listed as [`Verdict::Caught`] must make every model it names
//!   fail (other models failing too is reported, not an error);
//! * a mutant listed as [`Verdict::Correct`] is a weakening the code's
//!   comment argues is sound: every model must still pass.
//!
//! A mutant whose line is missing or ambiguous, or that no longer builds,
//! is an error too: the list is kept in step with the code.
//!
//! The file being mutated is backed up under `target/loom-mutants/` before
//! it is written, and restored from there at the start of the next run if
//! an earlier run was killed mid-mutant.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::loom::loom_command;
use crate::mutant_list::{MUTANTS, Mutant, SUBSET, Verdict};
use crate::workspace::{self, CrateInfo};

/// Longest a single mutant's build and run may take before it counts as
/// not caught (a model that cannot finish proves nothing).
const MUTANT_TIMEOUT: Duration = Duration::from_secs(900);

/// What one mutant did.
#[derive(Debug)]
pub struct Outcome {
    pub id: &'static str,
    /// Models (`loom_file::test`) that failed with the mutant applied.
    pub failed: Vec<String>,
    /// Whether the outcome matches the list's verdict.
    pub ok: bool,
    /// Why not, when `ok` is false.
    pub problem: Option<String>,
    pub elapsed: Duration,
}

/// Options of a mutants run.
#[derive(Debug, Default)]
pub struct Options {
    /// Only the [`SUBSET`] ids (what `cargo xtask ci` runs).
    pub subset: bool,
    /// Only these ids (`--only ID`, repeatable).
    pub only: Vec<String>,
}

pub fn run(crates: &[&CrateInfo], opts: &Options, preemptions: &str) -> Result<(), String> {
    let root = workspace::root();
    let backup_dir = root.join("target/loom-mutants");
    restore_leftover(&root, &backup_dir)?;
    let selected: Vec<&Mutant> = MUTANTS
        .iter()
        .filter(|m| crates.iter().any(|c| c.name == m.krate))
        .filter(|m| !opts.subset || SUBSET.contains(&m.id))
        .filter(|m| opts.only.is_empty() || opts.only.iter().any(|o| o == m.id))
        .collect();
    if selected.is_empty() {
        return Err("no mutant matches the selection".to_owned());
    }
    for m in &selected {
        locate(&root, m)?;
    }
    let start = Instant::now();
    let mut outcomes = Vec::new();
    for (i, m) in selected.iter().enumerate() {
        let krate = crates
            .iter()
            .find(|c| c.name == m.krate)
            .ok_or_else(|| format!("{}: unknown crate {}", m.id, m.krate))?;
        eprintln!(
            "\n==> [mutant {}/{}] {} ({}): `{}` -> `{}`",
            i + 1,
            selected.len(),
            m.id,
            m.file,
            m.line,
            m.to
        );
        let outcome = run_one(&root, &backup_dir, krate, m, opts.subset, preemptions)?;
        let verdict = if outcome.ok { "ok" } else { "FAILED" };
        eprintln!(
            "<== [mutant {}] {verdict} in {:.1} s; failing models: {}{}",
            m.id,
            outcome.elapsed.as_secs_f64(),
            if outcome.failed.is_empty() {
                "none".to_owned()
            } else {
                outcome.failed.join(", ")
            },
            outcome
                .problem
                .as_ref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default()
        );
        outcomes.push(outcome);
    }
    let report = render_report(&selected, &outcomes, preemptions, start.elapsed(), opts);
    let report_path = root.join(if opts.subset {
        "target/loom-mutants/subset.md"
    } else if opts.only.is_empty() {
        "target/loom-mutants/full.md"
    } else {
        "target/loom-mutants/only.md"
    });
    fs::create_dir_all(&backup_dir).map_err(|e| format!("{}: {e}", backup_dir.display()))?;
    fs::write(&report_path, &report).map_err(|e| format!("{}: {e}", report_path.display()))?;
    eprintln!("\n{report}");
    eprintln!("(written to {})", report_path.display());
    let bad: Vec<&str> = outcomes.iter().filter(|o| !o.ok).map(|o| o.id).collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} mutants did not behave as listed: {}",
            bad.len(),
            outcomes.len(),
            bad.join(", ")
        ))
    }
}

/// The byte range of the mutant's line in `text`: the `nth` line whose
/// trimmed text equals `line`. Errors if there are not exactly `of` such
/// lines, so an edit that adds or removes a twin is noticed.
pub fn find_line(text: &str, m: &Mutant) -> Result<(usize, usize), String> {
    let mut matches = Vec::new();
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let body = raw.trim_end_matches('\n');
        if body.trim() == m.line {
            matches.push((offset, offset + body.len()));
        }
        offset += raw.len();
    }
    if matches.len() != m.of {
        return Err(format!(
            "mutant {}: {} lines of {} read `{}`, the list expects {}",
            m.id,
            matches.len(),
            m.file,
            m.line,
            m.of
        ));
    }
    matches.get(m.nth).copied().ok_or_else(|| {
        format!(
            "mutant {}: no occurrence {} of `{}` in {}",
            m.id, m.nth, m.line, m.file
        )
    })
}

/// Applies `m` to `text`: the line keeps its indentation, its trimmed text
/// becomes `m.to` (an empty `to` removes the statement).
pub fn apply(text: &str, m: &Mutant) -> Result<String, String> {
    let (start, end) = find_line(text, m)?;
    let line = &text[start..end];
    let indent = &line[..line.len() - line.trim_start().len()];
    let replacement = if m.to.is_empty() {
        format!("{indent}// mutant {}: line removed", m.id)
    } else {
        format!("{indent}{}", m.to)
    };
    Ok(format!("{}{}{}", &text[..start], replacement, &text[end..]))
}

fn locate(root: &Path, m: &Mutant) -> Result<(), String> {
    let path = root.join(m.file);
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    find_line(&text, m).map(|_| ())
}

/// Restores a file left mutated by a run that was killed.
fn restore_leftover(root: &Path, backup_dir: &Path) -> Result<(), String> {
    let marker = backup_dir.join("in-flight");
    let Ok(rel) = fs::read_to_string(&marker) else {
        return Ok(());
    };
    if rel.trim().is_empty() {
        // The marker was being written when the run stopped (a full disk):
        // no file had been mutated yet.
        return fs::remove_file(&marker).map_err(|e| format!("{}: {e}", marker.display()));
    }
    let backup = backup_dir.join("original");
    let original = fs::read(&backup).map_err(|e| format!("{}: {e}", backup.display()))?;
    let target = root.join(rel.trim());
    fs::write(&target, original).map_err(|e| format!("{}: {e}", target.display()))?;
    eprintln!(
        "xtask: restored {} left mutated by an interrupted run",
        target.display()
    );
    fs::remove_file(&marker).map_err(|e| format!("{}: {e}", marker.display()))
}

/// Puts the original text back when dropped, whatever happened.
struct Restore {
    path: PathBuf,
    original: String,
    marker: PathBuf,
}

impl Drop for Restore {
    fn drop(&mut self) {
        if let Err(err) = fs::write(&self.path, &self.original) {
            eprintln!(
                "xtask: CANNOT RESTORE {}: {err} (backup in target/loom-mutants/original)",
                self.path.display()
            );
            return;
        }
        let _ = fs::remove_file(&self.marker);
    }
}

fn run_one(
    root: &Path,
    backup_dir: &Path,
    krate: &CrateInfo,
    m: &Mutant,
    subset: bool,
    preemptions: &str,
) -> Result<Outcome, String> {
    let path = root.join(m.file);
    let original = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mutated = apply(&original, m)?;
    fs::create_dir_all(backup_dir).map_err(|e| format!("{}: {e}", backup_dir.display()))?;
    fs::write(backup_dir.join("original"), &original).map_err(|e| e.to_string())?;
    let marker = backup_dir.join("in-flight");
    fs::write(&marker, m.file).map_err(|e| e.to_string())?;
    let restore = Restore {
        path: path.clone(),
        original,
        marker,
    };
    fs::write(&path, mutated).map_err(|e| format!("{}: {e}", path.display()))?;

    // In the subset only the files of the models that must catch the
    // mutant run; the full run runs every model of the crate, so the report
    // shows every model that catches it.
    let files: Vec<String> = match (&m.verdict, subset) {
        (Verdict::Caught(models), true) => {
            let mut files: Vec<String> = models
                .iter()
                .map(|model| model.split("::").next().unwrap_or(model).to_owned())
                .collect();
            files.sort();
            files.dedup();
            files
        }
        _ => krate.loom_tests.clone(),
    };
    let mut command = loom_command(root, krate, preemptions, &files);
    command.arg("--no-fail-fast");
    let start = Instant::now();
    let (status, output) = run_captured(command, MUTANT_TIMEOUT)?;
    let mut failed = failing_models(&output);
    // A model that crashes its test binary (a mutated protocol can hand
    // out a dangling index, which loom does not catch as a panic; a lost
    // wake-up's deadlock report can abort while loom cleans up) takes the
    // binary's other results with it: run that binary again, with the
    // mutant still applied, one test at a time to name the model that
    // crashed, and go on past each crashed model until the rest has run.
    for file in crashed_binaries(&output) {
        let mut skip: Vec<String> = Vec::new();
        for _ in 0..16 {
            let mut again = loom_command(root, krate, preemptions, std::slice::from_ref(&file));
            again.args(["--", "--test-threads=1", "--exact"]);
            for test in &skip {
                again.args(["--skip", test]);
            }
            let (_, rerun) = run_captured(again, MUTANT_TIMEOUT)?;
            failed.extend(
                failing_models(&rerun)
                    .into_iter()
                    .map(|m| m.rsplit("::").next().unwrap_or(&m).to_owned())
                    .map(|test| format!("{file}::{test}")),
            );
            match crashed_test(&rerun) {
                Some(test) => {
                    failed.push(format!("{file}::{test}"));
                    skip.push(test);
                }
                None => break,
            }
        }
    }
    // Only now: the reruns above must see the mutant too.
    drop(restore);
    let elapsed = start.elapsed();
    failed.sort();
    failed.dedup();
    let built = !output.contains("could not compile") && !output.contains("error[E");
    let (ok, problem) = if !built {
        let log = backup_dir.join(format!("{}.log", m.id));
        let _ = fs::write(&log, &output);
        (
            false,
            Some(format!("does not build; see {}", log.display())),
        )
    } else if status.is_none() {
        (
            false,
            Some(format!("timed out after {} s", MUTANT_TIMEOUT.as_secs())),
        )
    } else {
        match &m.verdict {
            Verdict::Caught(models) => {
                let missed: Vec<&str> = models
                    .iter()
                    .copied()
                    .filter(|model| !failed.iter().any(|f| f == model))
                    .collect();
                if missed.is_empty() {
                    (true, None)
                } else {
                    let log = backup_dir.join(format!("{}.log", m.id));
                    let _ = fs::write(&log, &output);
                    (false, Some(format!("SURVIVED in {}", missed.join(", "))))
                }
            }
            Verdict::Correct(_) => {
                if status == Some(true) && failed.is_empty() {
                    (true, None)
                } else {
                    let log = backup_dir.join(format!("{}.log", m.id));
                    let _ = fs::write(&log, &output);
                    (
                        false,
                        Some(
                            "listed as a correct weakening, but a model fails: fix the model or the list"
                                .to_owned(),
                        ),
                    )
                }
            }
        }
    };
    Ok(Outcome {
        id: m.id,
        failed,
        ok,
        problem,
        elapsed,
    })
}

/// Runs `command` with stdout and stderr merged; `None` status on timeout.
pub fn run_captured(
    mut command: Command,
    timeout: Duration,
) -> Result<(Option<bool>, String), String> {
    let (mut reader, writer) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let writer2 = writer.try_clone().map_err(|e| format!("pipe: {e}"))?;
    command.stdin(Stdio::null()).stdout(writer).stderr(writer2);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start cargo: {e}"))?;
    // The command holds the write ends; drop it so EOF arrives.
    drop(command);
    let collector = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = reader.read_to_string(&mut text);
        text
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break Some(status.success()),
            None if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let output = collector.join().unwrap_or_default();
    Ok((status, output))
}

/// `loom_file::test` for every `test NAME ... FAILED` line, attributed to
/// the test binary announced by cargo's preceding `Running tests/X.rs`.
pub fn failing_models(output: &str) -> Vec<String> {
    let mut file = String::new();
    let mut failed = Vec::new();
    for line in output.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Running tests/")
            && let Some(stem) = rest.split(".rs").next()
        {
            stem.clone_into(&mut file);
        } else if let Some(rest) = line.strip_prefix("test ")
            && let Some(name) = rest.strip_suffix(" ... FAILED")
        {
            failed.push(format!("{file}::{name}"));
        }
    }
    failed.sort();
    failed.dedup();
    failed
}

/// Test binaries (`loom_x`) that cargo reports killed by a signal.
pub fn crashed_binaries(output: &str) -> Vec<String> {
    let mut file = String::new();
    let mut crashed = Vec::new();
    for line in output.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Running tests/")
            && let Some(stem) = rest.split(".rs").next()
        {
            stem.clone_into(&mut file);
        } else if line.starts_with("process didn't exit successfully")
            && line.contains("(signal:")
            && !file.is_empty()
        {
            crashed.push(file.clone());
        }
    }
    crashed.dedup();
    crashed
}

/// With `--test-threads=1` libtest prints `test NAME ... ` when a test
/// starts and its result when it ends: the test that started last and has
/// no result is the one that took the process down. Cargo's report of the
/// crash (`error: test failed, …`, on stderr) lands on that same line when
/// stdout and stderr share a pipe, so anything that is not a libtest result
/// counts as none.
pub fn crashed_test(output: &str) -> Option<String> {
    let last = output
        .lines()
        .map(str::trim_end)
        .rfind(|line| line.starts_with("test ") && line.contains(" ..."))?;
    let (name, result) = last.strip_prefix("test ")?.split_once(" ...")?;
    let result = result.trim();
    let finished = result == "ok" || result == "FAILED" || result.starts_with("ignored");
    (!finished).then(|| name.to_owned())
}

fn render_report(
    selected: &[&Mutant],
    outcomes: &[Outcome],
    preemptions: &str,
    elapsed: Duration,
    opts: &Options,
) -> String {
    let caught = outcomes
        .iter()
        .zip(selected)
        .filter(|(o, m)| o.ok && matches!(m.verdict, Verdict::Caught(_)))
        .count();
    let listed_caught = selected
        .iter()
        .filter(|m| matches!(m.verdict, Verdict::Caught(_)))
        .count();
    let correct = selected.len() - listed_caught;
    let correct_ok = outcomes
        .iter()
        .zip(selected)
        .filter(|(o, m)| o.ok && matches!(m.verdict, Verdict::Correct(_)))
        .count();
    let mut out = String::new();
    out.push_str(&format!(
        "loom mutants ({}), LOOM_MAX_PREEMPTIONS={preemptions}, {:.0} s\n\n",
        if opts.subset {
            "subset"
        } else if opts.only.is_empty() {
            "full list"
        } else {
            "selected"
        },
        elapsed.as_secs_f64()
    ));
    out.push_str(&format!(
        "{caught} of {listed_caught} mutants caught; {correct_ok} of {correct} correct weakenings pass\n\n"
    ));
    out.push_str("| mutant | crate | verdict | models that failed | s |\n|---|---|---|---|---|\n");
    for (m, o) in selected.iter().zip(outcomes) {
        let verdict = match (&m.verdict, o.ok) {
            (Verdict::Caught(_), true) => "caught".to_owned(),
            (Verdict::Correct(_), true) => "correct weakening, passes".to_owned(),
            (_, false) => format!(
                "**{}**",
                o.problem.clone().unwrap_or_else(|| "FAILED".to_owned())
            ),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} |\n",
            m.id,
            m.krate,
            verdict,
            if o.failed.is_empty() {
                "—".to_owned()
            } else {
                o.failed.join(", ")
            },
            o.elapsed.as_secs_f64()
        ));
    }
    let reasons: Vec<String> = selected
        .iter()
        .filter_map(|m| match m.verdict {
            Verdict::Correct(reason) => Some(format!("- {}: {reason}\n", m.id)),
            Verdict::Caught(_) => None,
        })
        .collect();
    if !reasons.is_empty() {
        out.push_str("\nCorrect weakenings (expected to pass):\n\n");
        out.extend(reasons);
    }
    // Per model: how many mutants it caught.
    let mut per_model: BTreeMap<&str, usize> = BTreeMap::new();
    for o in outcomes {
        for f in &o.failed {
            *per_model.entry(f.as_str()).or_default() += 1;
        }
    }
    out.push_str("\n| model | mutants it caught |\n|---|---|\n");
    for (model, n) in per_model {
        out.push_str(&format!("| {model} | {n} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mutant(line: &'static str, nth: usize, of: usize, to: &'static str) -> Mutant {
        Mutant {
            id: "t",
            krate: "otlp-x",
            file: "f.rs",
            line,
            nth,
            of,
            to,
            verdict: Verdict::Caught(&["loom_x::m"]),
        }
    }

    #[test]
    fn apply_keeps_indentation_and_picks_the_nth_twin() {
        let text = "fn f() {\n    a.store(1, Release);\n    a.store(1, Release);\n}\n";
        let m = mutant("a.store(1, Release);", 1, 2, "a.store(1, Relaxed);");
        assert_eq!(
            apply(text, &m).unwrap(),
            "fn f() {\n    a.store(1, Release);\n    a.store(1, Relaxed);\n}\n"
        );
        let removed = mutant("a.store(1, Release);", 0, 2, "");
        assert_eq!(
            apply(text, &removed).unwrap(),
            "fn f() {\n    // mutant t: line removed\n    a.store(1, Release);\n}\n"
        );
    }

    #[test]
    fn a_changed_twin_count_is_an_error() {
        let text = "x;\nx;\n";
        assert!(find_line(text, &mutant("x;", 0, 1, "y;")).is_err());
        assert!(find_line(text, &mutant("z;", 0, 1, "y;")).is_err());
        assert!(find_line(text, &mutant("x;", 2, 2, "y;")).is_err());
    }

    #[test]
    fn failing_models_are_attributed_to_their_file() {
        let out = "     Running tests/loom_a.rs (target/x)\n\nrunning 2 tests\ntest one ... ok\ntest two ... FAILED\n\
                   \n     Running tests/loom_b.rs (target/y)\ntest two ... FAILED\n";
        assert_eq!(failing_models(out), vec!["loom_a::two", "loom_b::two"]);
    }

    #[test]
    fn a_crashed_binary_is_rerun_and_its_last_started_test_named() {
        let out = "     Running tests/loom_a.rs (x)\n\nrunning 2 tests\nerror: test failed\n\nCaused by:\n  \
                   process didn't exit successfully: `x` (signal: 11, SIGSEGV: invalid memory reference)\n\
                   \n     Running tests/loom_b.rs (y)\ntest ok_one ... ok\n";
        assert_eq!(crashed_binaries(out), vec!["loom_a"]);
        let rerun = "running 2 tests\ntest first ... ok\ntest second ... ";
        assert_eq!(crashed_test(rerun).as_deref(), Some("second"));
        assert_eq!(crashed_test("test first ... ok\n"), None);
        assert_eq!(crashed_test("test first ... FAILED\n"), None);
        assert_eq!(crashed_test("test first ... ignored, slow\n"), None);
        // Cargo's stderr report of the crash on the crashed test's line.
        let merged = "test first ... ok\ntest second ... error: test failed, to rerun pass `-p x --test loom_a`\n\n\
                      Caused by:\n  process didn't exit successfully: `x` (signal: 11, SIGSEGV: invalid memory reference)\n";
        assert_eq!(crashed_test(merged).as_deref(), Some("second"));
    }

    /// The list stays in step with the code: every line exists exactly as
    /// often as the list says, every mutant changes its line, ids are
    /// unique, the subset names listed ids, and every model named exists.
    #[test]
    fn every_listed_mutant_applies_to_the_current_code() {
        let root = workspace::root();
        let mut ids = std::collections::HashSet::new();
        for m in MUTANTS {
            assert!(ids.insert(m.id), "duplicate mutant id {}", m.id);
            assert_ne!(m.line, m.to, "mutant {} changes nothing", m.id);
            let text = fs::read_to_string(root.join(m.file)).expect("mutated file exists");
            apply(&text, m).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                m.file.starts_with(&format!("crates/{}/", m.krate)),
                "mutant {}: {} is not in {}",
                m.id,
                m.file,
                m.krate
            );
            match &m.verdict {
                Verdict::Caught(models) => {
                    assert!(!models.is_empty(), "mutant {} names no model", m.id);
                    for model in *models {
                        let (file, test) = model.split_once("::").expect("file::test");
                        let src = fs::read_to_string(
                            root.join(format!("crates/{}/tests/{file}.rs", m.krate)),
                        )
                        .unwrap_or_else(|e| panic!("mutant {}: {model}: {e}", m.id));
                        assert!(
                            src.contains(&format!("fn {test}()")),
                            "mutant {}: no model {model}",
                            m.id
                        );
                    }
                }
                Verdict::Correct(reason) => {
                    assert!(!reason.is_empty(), "mutant {} needs a reason", m.id)
                }
            }
        }
        for id in SUBSET {
            assert!(ids.contains(id), "subset names unknown mutant {id}");
        }
    }
}
