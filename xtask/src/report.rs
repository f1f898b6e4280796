//! Turning criterion's output into comparisons of ours against each peer.
//!
//! Criterion writes `<home>/<group>/<function>/<value>/new/benchmark.json`
//! (ids) and `.../new/estimates.json` (statistics). Our benches name every
//! benchmark `group/scenario/impl` with `impl = "ours"` for ours, so each
//! scenario compares `ours` with every other `impl`. Measurements that are
//! not times per iteration come from `<home>/otlp-extra/*.json`.

mod render;

use std::fs;
use std::path::Path;

use serde_json::Value;

pub use render::{Machine, markdown, svg, table};

/// The id segment that marks our implementation.
pub const OURS: &str = "ours";

/// What a value measures, which decides how it is printed and compared.
#[derive(Debug, Clone, PartialEq)]
pub enum Unit {
    /// Nanoseconds per iteration (criterion); `elements` per iteration when
    /// the bench declared a throughput.
    Time { elements: Option<u64> },
    /// Something else (`cpu_ms`, `bytes`, `items/s`); lower is better unless
    /// it ends in `/s`.
    Extra(String),
}

impl Unit {
    /// Whether a larger value is the better one.
    pub fn higher_is_better(&self) -> bool {
        matches!(self, Unit::Extra(unit) if unit.ends_with("/s"))
    }
}

/// One benchmark result.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub group: String,
    pub scenario: String,
    pub imp: String,
    /// Median for times (ns per iteration), the recorded value for extras.
    pub value: f64,
    pub unit: Unit,
}

impl Measurement {
    /// Items per second, for timed benches that declared a throughput.
    pub fn items_per_sec(&self) -> Option<f64> {
        match self.unit {
            Unit::Time { elements: Some(n) } if self.value > 0.0 => {
                Some(n as f64 * 1e9 / self.value)
            }
            _ => None,
        }
    }

    /// The crate a result belongs to: its group's prefix (`lockfree_stack`
    /// belongs to `lockfree`).
    pub fn section(&self) -> &str {
        self.group.split('_').next().unwrap_or(&self.group)
    }
}

/// Ours against one peer in one scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison<'a> {
    pub ours: &'a Measurement,
    pub peer: &'a Measurement,
}

impl Comparison<'_> {
    /// ours / peer of the measured values (for times: of the medians).
    pub fn ratio(&self) -> f64 {
        self.ours.value / self.peer.value
    }

    /// How many times better ours is (below 1: the peer is better).
    pub fn advantage(&self) -> f64 {
        if self.ours.unit.higher_is_better() {
            self.ratio()
        } else {
            1.0 / self.ratio()
        }
    }
}

/// Every result under `home`, sorted by group, scenario, then `ours` first.
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

/// Pairs `ours` with every peer of the same scenario.
pub fn comparisons(results: &[Measurement]) -> Vec<Comparison<'_>> {
    let mut pairs = Vec::new();
    for ours in results.iter().filter(|m| m.imp == OURS) {
        for peer in results
            .iter()
            .filter(|m| m.imp != OURS && m.group == ours.group && m.scenario == ours.scenario)
        {
            if peer.value > 0.0 && ours.value > 0.0 {
                pairs.push(Comparison { ours, peer });
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
    use std::path::PathBuf;

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-report-{}", std::process::id()));
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

    #[test]
    fn criterion_results_become_ratios_of_ours_to_each_peer() {
        let home = scratch();
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
        let extra = home.join("otlp-extra");
        fs::create_dir_all(&extra).expect("mkdir");
        fs::write(
            extra.join("sched_idle__cpu__ours.json"),
            "{\"group\":\"sched_idle\",\"scenario\":\"cpu\",\"impl\":\"ours\",\"value\":2.0,\"unit\":\"cpu_ms\"}",
        )
        .expect("write");
        fs::write(
            extra.join("sched_idle__cpu__rayon.json"),
            "{\"group\":\"sched_idle\",\"scenario\":\"cpu\",\"impl\":\"rayon\",\"value\":80.0,\"unit\":\"cpu_ms\"}",
        )
        .expect("write");

        let results = collect(&home).expect("collect");
        assert_eq!(results.len(), 8);
        assert_eq!(results[0].group, "lockfree_queue");
        let pairs = comparisons(&results);
        let find = |peer: &str| {
            pairs
                .iter()
                .find(|c| c.peer.imp == peer)
                .unwrap_or_else(|| panic!("no comparison with {peer}"))
        };
        assert!((find("mutex_vec").ratio() - 0.5).abs() < 1e-9);
        assert!((find("mutex_vec").advantage() - 2.0).abs() < 1e-9);
        assert!((find("segqueue").ratio() - 2.0).abs() < 1e-9);
        assert!((find("arrayqueue").ratio() - 0.25).abs() < 1e-9);
        assert!((find("rayon").advantage() - 40.0).abs() < 1e-9);
        assert_eq!(
            pairs.len(),
            4,
            "a scenario with no peer gives no comparison"
        );
        let batch = results
            .iter()
            .find(|m| m.scenario == "batch" && m.imp == OURS);
        let per_sec = batch
            .and_then(Measurement::items_per_sec)
            .expect("throughput");
        assert!((per_sec - 64e6).abs() < 1.0);
        assert_eq!(results[0].section(), "lockfree");
        let _ = fs::remove_dir_all(&home);
    }

    #[test]
    fn higher_is_better_only_for_rates() {
        assert!(Unit::Extra("items/s".to_owned()).higher_is_better());
        assert!(!Unit::Extra("cpu_ms".to_owned()).higher_is_better());
        assert!(!Unit::Time { elements: Some(1) }.higher_is_better());
    }
}
