//! Turning criterion's output into comparisons of ours against each peer.
//!
//! Criterion writes `<home>/<group>/<function>/<value>/new/benchmark.json`
//! (ids) and `.../new/estimates.json` (statistics). Our benches name every
//! benchmark `group/scenario/impl` with `impl = "ours"` for ours, so each
//! scenario compares `ours` with every other `impl`. Measurements that are
//! not times per iteration come from `<home>/otlp-extra/*.json`.
//!
//! `cargo xtask bench` gives every round its own home,
//! `<criterion>/rounds/round-N`; [`collect_rounds`] reads them all and
//! [`merge`] turns the readings into one [`Series`] per benchmark.

mod render;

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::stats::{Spread, Verdict, median};

pub use render::{Machine, icount_table, markdown, svg, table};

/// The id segment that marks our implementation.
pub const OURS: &str = "ours";

/// Where the rounds live under the criterion home.
pub const ROUNDS_DIR: &str = "rounds";

/// What a value measures, which decides how it is printed and compared.
#[derive(Debug, Clone, PartialEq)]
pub enum Unit {
    /// Nanoseconds per iteration (criterion); `elements` per iteration when
    /// the bench declared a throughput.
    Time { elements: Option<u64> },
    /// Something else (`cpu_ms`, `bytes`, `items/s`, `%`); lower is better
    /// unless it is a rate (ends in `/s`) or a share of the work done (`%`).
    Extra(String),
}

impl Unit {
    /// Whether a larger value is the better one.
    pub fn higher_is_better(&self) -> bool {
        matches!(self, Unit::Extra(unit) if unit.ends_with("/s") || unit == "%")
    }
}

/// One benchmark result of one round.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub group: String,
    pub scenario: String,
    pub imp: String,
    /// Median for times (ns per iteration), the recorded value for extras.
    pub value: f64,
    pub unit: Unit,
}

/// One benchmark over every round that measured it.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub group: String,
    pub scenario: String,
    pub imp: String,
    pub unit: Unit,
    /// `(round index, that round's value)`, in round order.
    pub rounds: Vec<(usize, f64)>,
}

impl Series {
    /// The median of the per-round values (for times: of the per-round
    /// criterion medians).
    pub fn value(&self) -> f64 {
        let values: Vec<f64> = self.rounds.iter().map(|&(_, v)| v).collect();
        median(&values).unwrap_or(f64::NAN)
    }

    /// Items per second at the median, for timed benches that declared a
    /// throughput.
    pub fn items_per_sec(&self) -> Option<f64> {
        let value = self.value();
        match self.unit {
            Unit::Time { elements: Some(n) } if value > 0.0 => Some(n as f64 * 1e9 / value),
            _ => None,
        }
    }

    /// The crate a result belongs to: its group's prefix (`lockfree_stack`
    /// belongs to `lockfree`).
    pub fn section(&self) -> &str {
        self.group.split('_').next().unwrap_or(&self.group)
    }

    /// The value measured in round `round`, if that round measured it.
    fn in_round(&self, round: usize) -> Option<f64> {
        self.rounds
            .iter()
            .find_map(|&(r, v)| (r == round).then_some(v))
    }
}

/// Ours against one peer in one scenario, over the rounds that measured both.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison<'a> {
    pub ours: &'a Series,
    pub peer: &'a Series,
    /// ours / peer in each round that has both (positive) values.
    pub ratios: Vec<f64>,
}

impl Comparison<'_> {
    /// Median and range of the per-round ratio ours/peer.
    pub fn ratio(&self) -> Spread {
        Spread::of(&self.ratios).unwrap_or(Spread {
            median: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
            rounds: 0,
        })
    }

    /// How many times better ours is at the median ratio (below 1: the peer
    /// is better).
    pub fn advantage(&self) -> f64 {
        let ratio = self.ratio().median;
        if self.ours.unit.higher_is_better() {
            ratio
        } else {
            1.0 / ratio
        }
    }

    /// The verdict rule of [`Verdict::of`] applied to this pair.
    pub fn verdict(&self) -> Verdict {
        Verdict::of(&self.ratio(), self.ours.unit.higher_is_better())
    }
}

/// Every result under `home`, one round's worth, sorted by group, scenario,
/// then `ours` first.
pub fn collect(home: &Path) -> Result<Vec<Measurement>, String> {
    let mut results = Vec::new();
    if home.is_dir() {
        walk(home, &mut results)?;
        collect_extras(&home.join("otlp-extra"), &mut results)?;
    }
    results.sort_by(|a, b| {
        (&a.group, &a.scenario, a.imp != OURS, &a.imp).cmp(&(
            &b.group,
            &b.scenario,
            b.imp != OURS,
            &b.imp,
        ))
    });
    Ok(results)
}

/// The directories `<home>/rounds/round-N`, in order of N.
pub fn round_dirs(home: &Path) -> Vec<(usize, PathBuf)> {
    let mut dirs: Vec<(usize, PathBuf)> = fs::read_dir(home.join(ROUNDS_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let n = name.to_str()?.strip_prefix("round-")?.parse().ok()?;
            entry.path().is_dir().then(|| (n, entry.path()))
        })
        .collect();
    dirs.sort();
    dirs
}

/// Every round's results. Without round directories (results of a plain
/// `cargo bench`), the home itself is one round.
pub fn collect_rounds(home: &Path) -> Result<Vec<Vec<Measurement>>, String> {
    let dirs = round_dirs(home);
    if dirs.is_empty() {
        let single = collect(home)?;
        return Ok(if single.is_empty() {
            Vec::new()
        } else {
            vec![single]
        });
    }
    dirs.iter().map(|(_, dir)| collect(dir)).collect()
}

/// One series per benchmark from per-round results (`rounds[i]` is round
/// i), sorted by group, scenario, then `ours` first.
pub fn merge(rounds: &[Vec<Measurement>]) -> Vec<Series> {
    let mut series: Vec<Series> = Vec::new();
    for (round, results) in rounds.iter().enumerate() {
        for m in results {
            let same =
                |s: &&mut Series| s.group == m.group && s.scenario == m.scenario && s.imp == m.imp;
            match series.iter_mut().find(same) {
                Some(s) => s.rounds.push((round, m.value)),
                None => series.push(Series {
                    group: m.group.clone(),
                    scenario: m.scenario.clone(),
                    imp: m.imp.clone(),
                    unit: m.unit.clone(),
                    rounds: vec![(round, m.value)],
                }),
            }
        }
    }
    series.sort_by(|a, b| {
        (&a.group, &a.scenario, a.imp != OURS, &a.imp).cmp(&(
            &b.group,
            &b.scenario,
            b.imp != OURS,
            &b.imp,
        ))
    });
    series
}

/// Pairs `ours` with every peer of the same scenario, round by round; a pair
/// with no round where both values are positive gives no comparison.
pub fn comparisons(series: &[Series]) -> Vec<Comparison<'_>> {
    let mut pairs = Vec::new();
    for ours in series.iter().filter(|s| s.imp == OURS) {
        for peer in series
            .iter()
            .filter(|s| s.imp != OURS && s.group == ours.group && s.scenario == ours.scenario)
        {
            let ratios: Vec<f64> = ours
                .rounds
                .iter()
                .filter_map(|&(round, o)| {
                    let p = peer.in_round(round)?;
                    (o > 0.0 && p > 0.0).then(|| o / p)
                })
                .collect();
            if !ratios.is_empty() {
                pairs.push(Comparison { ours, peer, ratios });
            }
        }
    }
    pairs
}

fn walk(dir: &Path, out: &mut Vec<Measurement>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            if let Some(m) = read_criterion(&path)? {
                out.push(m);
            }
        } else if path
            .file_name()
            .is_some_and(|n| n != "otlp-extra" && n != "report")
        {
            walk(&path, out)?;
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads one criterion `new/` directory; `None` when the id does not follow
/// the `group/scenario/impl` convention.
fn read_criterion(new_dir: &Path) -> Result<Option<Measurement>, String> {
    let (bench, estimates) = (
        new_dir.join("benchmark.json"),
        new_dir.join("estimates.json"),
    );
    if !bench.is_file() || !estimates.is_file() {
        return Ok(None);
    }
    let bench = read_json(&bench)?;
    let estimates = read_json(&estimates)?;
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let (Some(group), Some(scenario), Some(imp)) = (
        text(&bench["group_id"]),
        text(&bench["function_id"]),
        text(&bench["value_str"]),
    ) else {
        return Ok(None);
    };
    let Some(median) = estimates["median"]["point_estimate"].as_f64() else {
        return Err(format!("{}: no median", new_dir.display()));
    };
    let elements = bench["throughput"]["Elements"].as_u64();
    Ok(Some(Measurement {
        group,
        scenario,
        imp,
        value: median,
        unit: Unit::Time { elements },
    }))
}

fn collect_extras(dir: &Path, out: &mut Vec<Measurement>) -> Result<(), String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let json = read_json(&path)?;
        let field = |name: &str| json[name].as_str().map(str::to_owned);
        match (
            field("group"),
            field("scenario"),
            field("impl"),
            json["value"].as_f64(),
            field("unit"),
        ) {
            (Some(group), Some(scenario), Some(imp), Some(value), Some(unit)) => {
                out.push(Measurement {
                    group,
                    scenario,
                    imp,
                    value,
                    unit: Unit::Extra(unit),
                })
            }
            _ => return Err(format!("{}: missing fields", path.display())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-report-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn fake(home: &Path, group: &str, scenario: &str, imp: &str, median: f64, elems: Option<u64>) {
        let dir = home.join(group).join(scenario).join(imp).join("new");
        fs::create_dir_all(&dir).expect("mkdir");
        let throughput = match elems {
            Some(n) => format!("{{\"Elements\":{n}}}"),
            None => "null".to_owned(),
        };
        let bench = format!(
            "{{\"group_id\":\"{group}\",\"function_id\":\"{scenario}\",\"value_str\":\"{imp}\",\
             \"throughput\":{throughput},\"full_id\":\"{group}/{scenario}/{imp}\"}}"
        );
        fs::write(dir.join("benchmark.json"), bench).expect("write");
        let estimates = format!(
            "{{\"mean\":{{\"point_estimate\":{}}},\"median\":{{\"point_estimate\":{median}}}}}",
            median * 1.1
        );
        fs::write(dir.join("estimates.json"), estimates).expect("write");
    }

    fn extra(home: &Path, group: &str, scenario: &str, imp: &str, value: f64, unit: &str) {
        let dir = home.join("otlp-extra");
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(
            dir.join(format!("{group}__{scenario}__{imp}.json")),
            format!(
                "{{\"group\":\"{group}\",\"scenario\":\"{scenario}\",\"impl\":\"{imp}\",\
                 \"value\":{value},\"unit\":\"{unit}\"}}"
            ),
        )
        .expect("write");
    }

    #[test]
    fn criterion_results_become_ratios_of_ours_to_each_peer() {
        let home = scratch("one");
        fake(&home, "lockfree_stack", "push_pop_1t", "ours", 10.0, None);
        fake(
            &home,
            "lockfree_stack",
            "push_pop_1t",
            "mutex_vec",
            20.0,
            None,
        );
        fake(
            &home,
            "lockfree_stack",
            "push_pop_1t",
            "segqueue",
            5.0,
            None,
        );
        fake(&home, "lockfree_queue", "batch", "ours", 1000.0, Some(64));
        fake(
            &home,
            "lockfree_queue",
            "batch",
            "arrayqueue",
            4000.0,
            Some(64),
        );
        fake(&home, "lockfree_queue", "alone", "ours", 7.0, None);
        extra(&home, "sched_idle", "cpu", "ours", 2.0, "cpu_ms");
        extra(&home, "sched_idle", "cpu", "rayon", 80.0, "cpu_ms");

        // No round directories: the home itself is the one round.
        let rounds = collect_rounds(&home).expect("collect");
        assert_eq!(rounds.len(), 1);
        assert_eq!(rounds[0].len(), 8);
        let series = merge(&rounds);
        assert_eq!(series[0].group, "lockfree_queue");
        let pairs = comparisons(&series);
        let find = |peer: &str| {
            pairs
                .iter()
                .find(|c| c.peer.imp == peer)
                .unwrap_or_else(|| panic!("no comparison with {peer}"))
        };
        assert!((find("mutex_vec").ratio().median - 0.5).abs() < 1e-9);
        assert!((find("mutex_vec").advantage() - 2.0).abs() < 1e-9);
        assert!((find("segqueue").ratio().median - 2.0).abs() < 1e-9);
        assert!((find("arrayqueue").ratio().median - 0.25).abs() < 1e-9);
        assert!((find("rayon").advantage() - 40.0).abs() < 1e-9);
        assert_eq!(
            pairs.len(),
            4,
            "a scenario with no peer gives no comparison"
        );
        let batch = series
            .iter()
            .find(|m| m.scenario == "batch" && m.imp == OURS);
        let per_sec = batch.and_then(Series::items_per_sec).expect("throughput");
        assert!((per_sec - 64e6).abs() < 1.0);
        assert_eq!(series[0].section(), "lockfree");
        let _ = fs::remove_dir_all(&home);
    }

    #[test]
    fn rounds_give_median_values_and_per_round_ratios() {
        let home = scratch("rounds");
        // Three rounds; the peer's second round is missing, and the stack
        // ratio flips in round 3, so its range crosses 1.0.
        let rounds = [
            (1, 10.0, Some(20.0), 1.0),
            (2, 12.0, None, 2.0),
            (3, 30.0, Some(25.0), 3.0),
        ];
        for (n, ours, peer, cpu) in rounds {
            let dir = home.join(ROUNDS_DIR).join(format!("round-{n}"));
            fake(&dir, "lockfree_stack", "push_pop_1t", "ours", ours, None);
            if let Some(peer) = peer {
                fake(
                    &dir,
                    "lockfree_stack",
                    "push_pop_1t",
                    "mutex_vec",
                    peer,
                    None,
                );
            }
            extra(&dir, "sched_idle", "cpu", "ours", cpu, "cpu_ms");
            extra(&dir, "sched_idle", "cpu", "rayon", 10.0 * cpu, "cpu_ms");
        }
        // Not a round directory: ignored.
        fs::create_dir_all(home.join(ROUNDS_DIR).join("scratch")).expect("mkdir");
        let per_round = collect_rounds(&home).expect("collect");
        assert_eq!(per_round.len(), 3);
        let series = merge(&per_round);
        let ours = series
            .iter()
            .find(|s| s.group == "lockfree_stack" && s.imp == OURS)
            .expect("ours");
        assert_eq!(ours.rounds, vec![(0, 10.0), (1, 12.0), (2, 30.0)]);
        assert_eq!(ours.value(), 12.0, "the median of the round medians");
        let pairs = comparisons(&series);
        let stack = pairs
            .iter()
            .find(|c| c.peer.imp == "mutex_vec")
            .expect("stack pair");
        assert_eq!(stack.ratios, vec![0.5, 1.2], "only rounds with both values");
        let ratio = stack.ratio();
        assert_eq!((ratio.min, ratio.max, ratio.rounds), (0.5, 1.2, 2));
        assert_eq!(stack.verdict(), Verdict::TooFewRounds(2));
        let idle = pairs
            .iter()
            .find(|c| c.peer.imp == "rayon")
            .expect("idle pair");
        assert_eq!(idle.ratios.len(), 3);
        assert!((idle.ratio().max - 0.1).abs() < 1e-12);
        assert!(matches!(idle.verdict(), Verdict::Better(x) if (x - 10.0).abs() < 1e-9));
        let _ = fs::remove_dir_all(&home);
    }

    #[test]
    fn higher_is_better_only_for_rates() {
        assert!(Unit::Extra("items/s".to_owned()).higher_is_better());
        assert!(!Unit::Extra("cpu_ms".to_owned()).higher_is_better());
        assert!(!Unit::Time { elements: Some(1) }.higher_is_better());
    }
}
