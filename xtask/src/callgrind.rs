//! Instruction counts of the single-thread scenarios under callgrind.
//!
//! The `icount` bench target lists its scenarios (`ID ELEMENTS ITERS`) and
//! runs one with `--run ID ITERS`. Each scenario runs twice under
//! `valgrind --tool=callgrind`, for ITERS and for 2 × ITERS iterations; the
//! difference of the two totals over ITERS × ELEMENTS is the count per
//! element, with setup, process start and exit cancelled. The results are
//! kept in `<criterion home>/callgrind.json` so that `cargo xtask report`
//! can rebuild the page.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::report::OURS;

/// The file the counts are kept in, under the criterion home.
pub const RESULTS_FILE: &str = "callgrind.json";

/// One scenario as `icount --list` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcountScenario {
    /// `group/scenario/impl`, the id of the criterion benchmark it mirrors.
    pub id: String,
    /// Elements one iteration handles (the criterion throughput).
    pub elements: u64,
    /// The smaller of the two iteration counts.
    pub iters: u64,
}

/// Instructions per element of one scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Icount {
    pub group: String,
    pub scenario: String,
    pub imp: String,
    pub per_op: f64,
}

/// Every count, with the valgrind that measured them.
#[derive(Debug, Clone, PartialEq)]
pub struct IcountReport {
    /// `valgrind --version`, e.g. `valgrind-3.19.0`.
    pub valgrind: String,
    /// Sorted by group, scenario, then ours first.
    pub results: Vec<Icount>,
}

/// Parses `icount --list` output: one `ID ELEMENTS ITERS` per line.
pub fn parse_list(text: &str) -> Result<Vec<IcountScenario>, String> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [id, elements, iters] = fields[..] else {
                return Err(format!("icount --list: unexpected line `{line}`"));
            };
            let number = |text: &str| {
                text.parse::<u64>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("icount --list: `{text}` in `{line}` is not a count"))
            };
            Ok(IcountScenario {
                id: id.to_owned(),
                elements: number(elements)?,
                iters: number(iters)?,
            })
        })
        .collect()
}

/// The total instruction count (event `Ir`) of a callgrind output file: the
/// `totals:` line, else the `summary:` line, read at the position `events:`
/// gives `Ir`.
pub fn parse_total(text: &str) -> Result<u64, String> {
    let events: Vec<&str> = text
        .lines()
        .find_map(|l| l.strip_prefix("events:"))
        .ok_or("callgrind output has no `events:` line")?
        .split_whitespace()
        .collect();
    let column = events
        .iter()
        .position(|&e| e == "Ir")
        .ok_or("callgrind output does not count `Ir`")?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .or_else(|| text.lines().find_map(|l| l.strip_prefix("summary:")))
        .ok_or("callgrind output has neither `totals:` nor `summary:`")?;
    line.split_whitespace()
        .nth(column)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("callgrind output: bad totals `{}`", line.trim()))
}

/// Instructions per element from the totals of a run of `iters` iterations
/// (`small`) and one of `2 × iters` (`large`).
pub fn per_op(small: u64, large: u64, iters: u64, elements: u64) -> Result<f64, String> {
    if large < small {
        return Err(format!(
            "{large} instructions for 2×{iters} iterations, fewer than {small} for {iters}"
        ));
    }
    let ops = iters
        .checked_mul(elements)
        .filter(|&n| n > 0)
        .ok_or("no operations counted")?;
    Ok((large - small) as f64 / ops as f64)
}

/// `valgrind --version`, or `None` when valgrind is not installed.
pub fn valgrind_version() -> Option<String> {
    let out = Command::new("valgrind").arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Lists the scenarios of `exe` matching `filter` (a regex, as criterion's).
pub fn list(exe: &Path, filter: Option<&str>) -> Result<Vec<IcountScenario>, String> {
    let mut command = Command::new(exe);
    command.arg("--list").args(filter);
    let out = command
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} --list failed: {}",
            exe.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_list(&String::from_utf8_lossy(&out.stdout))
}

/// Counts one scenario: two callgrind runs, output files under `scratch`.
pub fn count(exe: &Path, scenario: &IcountScenario, scratch: &Path) -> Result<f64, String> {
    let total = |iters: u64| -> Result<u64, String> {
        let file = scratch.join(format!("{}-{iters}.out", scenario.id.replace('/', "__")));
        let out = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg("-q")
            .arg(format!("--callgrind-out-file={}", file.display()))
            .arg(exe)
            .args(["--run", &scenario.id, &iters.to_string()])
            .output()
            .map_err(|e| format!("cannot run valgrind: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{} under callgrind failed: {}",
                scenario.id,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let _ = std::fs::remove_file(&file);
        parse_total(&text).map_err(|e| format!("{}: {e}", file.display()))
    };
    let small = total(scenario.iters)?;
    let large = total(2 * scenario.iters)?;
    per_op(small, large, scenario.iters, scenario.elements)
        .map_err(|e| format!("{}: {e}", scenario.id))
}

/// Reads `<home>/callgrind.json`; `None` when it is not there.
pub fn load(home: &Path) -> Result<Option<IcountReport>, String> {
    let path = home.join(RESULTS_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let json: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = || format!("{}: unexpected layout", path.display());
    let valgrind = json["valgrind"].as_str().ok_or_else(bad)?.to_owned();
    let mut results = Vec::new();
    for r in json["results"].as_array().ok_or_else(bad)? {
        let text = |name: &str| r[name].as_str().map(str::to_owned).ok_or_else(bad);
        results.push(Icount {
            group: text("group")?,
            scenario: text("scenario")?,
            imp: text("impl")?,
            per_op: r["per_op"].as_f64().ok_or_else(bad)?,
        });
    }
    Ok(Some(IcountReport { valgrind, results }))
}

/// Writes `report` to `<home>/callgrind.json`.
pub fn save(home: &Path, report: &IcountReport) -> Result<PathBuf, String> {
    let path = home.join(RESULTS_FILE);
    let results: Vec<Value> = report
        .results
        .iter()
        .map(|r| {
            json!({
                "group": r.group,
                "scenario": r.scenario,
                "impl": r.imp,
                "per_op": r.per_op,
            })
        })
        .collect();
    let json = json!({ "valgrind": report.valgrind, "results": results });
    let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(home).map_err(|e| format!("{}: {e}", home.display()))?;
    std::fs::write(&path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Puts `new` counts into `report`, replacing those with the same id, and
/// keeps the order: group, scenario, ours first.
pub fn merge(report: &mut IcountReport, new: Vec<Icount>) {
    for r in new {
        report
            .results
            .retain(|o| (&o.group, &o.scenario, &o.imp) != (&r.group, &r.scenario, &r.imp));
        report.results.push(r);
    }
    report.results.sort_by(|a, b| {
        (&a.group, &a.scenario, a.imp != OURS, &a.imp).cmp(&(
            &b.group,
            &b.scenario,
            b.imp != OURS,
            &b.imp,
        ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head and tail of a real callgrind 3.19 output file.
    const OUTPUT: &str = "# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\n\
        pid: 19833\ncmd:  /bin/true\npart: 1\n\npositions: line\nevents: Ir\n\
        summary: 126545\n\n\nfn=(1) 0x0000000000001090 ???\n0 3\n\ntotals: 126545\n";

    #[test]
    fn parses_the_instruction_total() {
        assert_eq!(parse_total(OUTPUT), Ok(126_545));
    }

    #[test]
    fn reads_ir_at_its_column_and_falls_back_to_summary() {
        let text = "events: Dr Ir Dw\nsummary: 5 700 9\n";
        assert_eq!(parse_total(text), Ok(700));
        assert!(parse_total("events: Dr\nsummary: 5\n").is_err());
        assert!(parse_total("summary: 5\n").is_err());
        assert!(parse_total("events: Ir\n").is_err());
        assert!(parse_total("events: Ir\ntotals: many\n").is_err());
    }

    #[test]
    fn per_op_is_the_difference_over_the_extra_operations() {
        // 1000 pairs more cost 499_000 instructions more: 499 per pair.
        assert_eq!(per_op(1_212_046, 1_711_046, 10, 100), Ok(499.0));
        assert!(
            per_op(10, 5, 1, 1).is_err(),
            "a shrinking total is an error"
        );
        assert!(per_op(1, 2, 0, 1).is_err());
    }

    #[test]
    fn parses_the_scenario_list() {
        let list = parse_list("a/b/ours 100 20\n\na/b/peer 1 2000\n").expect("list");
        assert_eq!(
            list[1],
            IcountScenario {
                id: "a/b/peer".to_owned(),
                elements: 1,
                iters: 2000
            }
        );
        assert!(parse_list("a/b/ours 100\n").is_err());
        assert!(parse_list("a/b/ours 0 5\n").is_err());
    }

    #[test]
    fn results_round_trip_and_merge_by_id() {
        let home = std::env::temp_dir().join(format!("xtask-callgrind-{}", std::process::id()));
        let one = |imp: &str, per_op: f64| Icount {
            group: "sync_mutex".to_owned(),
            scenario: "lock_1t".to_owned(),
            imp: imp.to_owned(),
            per_op,
        };
        let mut report = IcountReport {
            valgrind: "valgrind-3.19.0".to_owned(),
            results: vec![one("std", 40.0), one(OURS, 30.0)],
        };
        merge(
            &mut report,
            vec![one("std", 41.0), one("parking_lot", 20.0)],
        );
        let imps: Vec<(&str, f64)> = report
            .results
            .iter()
            .map(|r| (r.imp.as_str(), r.per_op))
            .collect();
        assert_eq!(imps, [(OURS, 30.0), ("parking_lot", 20.0), ("std", 41.0)]);
        save(&home, &report).expect("save");
        assert_eq!(load(&home), Ok(Some(report)));
        let _ = std::fs::remove_dir_all(&home);
        assert_eq!(load(&home), Ok(None));
    }
}
