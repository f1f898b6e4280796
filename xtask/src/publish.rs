//! `cargo xtask publish [--dry-run]`: every publishable crate, packaged and
//! verified (or published) in dependency order.
//!
//! Before cargo runs, the workspace's manifests are checked for what
//! `cargo package` lets through but a published crate cannot live with: a
//! publishable crate that depends (dev-dependencies included) on a crate
//! with `publish = false`, or on a sibling by path alone. Cargo strips a
//! path-only dev-dependency from the packaged manifest, so the package
//! still verifies (verification builds only the library and binaries), yet
//! the tests and examples it ships no longer build from the published
//! source: how the facade's pipeline example lost `otlp-receiver`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use crate::cmd::{StepResult, cargo, run_step, summarize};
use crate::workspace;

/// What the dry run's verification builds into: one directory for every
/// package, so dependencies shared between the crates compile once, kept
/// apart from `target/debug` because the packages resolve their features
/// one at a time, not unified across the workspace.
pub const VERIFY_TARGET_DIR: &str = "target/publish";

/// A workspace member as `cargo metadata` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Package name.
    pub name: String,
    /// Whether `publish` allows any registry (`publish = false` does not).
    pub publishable: bool,
    /// Its dependencies on other workspace members.
    pub deps: Vec<LocalDep>,
}

/// A dependency of one workspace member on another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDep {
    /// The member depended on.
    pub name: String,
    /// `normal`, `dev` or `build`.
    pub kind: String,
    /// Whether the dependency states a version (without one, cargo drops it
    /// from the packaged manifest).
    pub has_version: bool,
}

/// `cargo xtask publish [--dry-run]`: the order, the manifests' check,
/// then `cargo publish` (or its dry run) over every publishable crate.
pub fn run(args: &[String]) -> Result<(), String> {
    let dry_run = parse_args(args)?;
    let root = workspace::root();
    let members = members(&root)?;
    let order = publish_order(&members)?;
    eprintln!("publish order: {}", order.join(" -> "));
    let step = if dry_run {
        dry_run_step(&root, &order)
    } else {
        // The real thing: cargo publishes them in this order itself,
        // waiting for each to appear in the index before the next.
        let mut command = cargo();
        command.current_dir(&root).arg("publish");
        for name in &order {
            command.args(["-p", name]);
        }
        run_step("publish", &mut command)
    };
    summarize("publish", &[step])
}

/// `cargo publish --dry-run` over every publishable crate at once: each is
/// packaged, then unpacked and built, its not-yet-published siblings
/// resolved from a local registry holding the freshly packaged crates.
/// `--allow-dirty` because what is checked is the working tree as it is.
pub fn dry_run_step(root: &Path, order: &[String]) -> StepResult {
    let mut command = cargo();
    command
        .current_dir(root)
        .env("CARGO_TARGET_DIR", root.join(VERIFY_TARGET_DIR))
        .args(["publish", "--dry-run", "--allow-dirty"]);
    for name in order {
        command.args(["-p", name]);
    }
    run_step("publish --dry-run", &mut command)
}

fn parse_args(args: &[String]) -> Result<bool, String> {
    match args {
        [] => Ok(false),
        [flag] if flag == "--dry-run" => Ok(true),
        other => Err(format!(
            "unknown publish arguments `{}` (usage: cargo xtask publish [--dry-run])",
            other.join(" ")
        )),
    }
}

/// The workspace members and their dependencies on each other, from
/// `cargo metadata --no-deps` (no resolution, no network).
pub fn members(root: &Path) -> Result<Vec<Member>, String> {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .current_dir(root)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .output()
        .map_err(|err| format!("cannot run cargo metadata: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|err| format!("cargo metadata printed no JSON: {err}"))?;
    parse_metadata(&json)
}

/// Reads the members out of `cargo metadata`'s JSON.
fn parse_metadata(json: &serde_json::Value) -> Result<Vec<Member>, String> {
    let packages = json["packages"]
        .as_array()
        .ok_or("cargo metadata: no `packages` array")?;
    let names: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    packages
        .iter()
        .map(|package| {
            let name = package["name"]
                .as_str()
                .ok_or("cargo metadata: a package without a name")?;
            // `null`: any registry; `[]`: publish = false.
            let publishable = package["publish"]
                .as_array()
                .is_none_or(|registries| !registries.is_empty());
            let deps = package["dependencies"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|dep| {
                    let dep_name = dep["name"].as_str()?;
                    names.contains(dep_name).then(|| LocalDep {
                        name: dep_name.to_owned(),
                        kind: dep["kind"].as_str().unwrap_or("normal").to_owned(),
                        has_version: dep["req"].as_str().is_some_and(|req| req != "*"),
                    })
                })
                .collect();
            Ok(Member {
                name: name.to_owned(),
                publishable,
                deps,
            })
        })
        .collect()
}

/// The publishable members, each after every member it depends on
/// (dev-dependencies included: the registry must know a dev-dependency
/// before a crate naming it can be published), ties broken by name.
/// An error names every dependency a published package would lose, or a
/// cycle.
pub fn publish_order(members: &[Member]) -> Result<Vec<String>, String> {
    let by_name: BTreeMap<&str, &Member> = members.iter().map(|m| (m.name.as_str(), m)).collect();
    let mut problems = Vec::new();
    for member in members.iter().filter(|m| m.publishable) {
        for dep in &member.deps {
            let target_publishable = by_name
                .get(dep.name.as_str())
                .is_some_and(|m| m.publishable);
            if !target_publishable {
                problems.push(format!(
                    "{} has a {} dependency on {}, which has `publish = false`",
                    member.name, dep.kind, dep.name
                ));
            } else if !dep.has_version {
                problems.push(format!(
                    "{} depends on {} ({}) by path only; give it a version \
                     (`{}.workspace = true`)",
                    member.name, dep.name, dep.kind, dep.name
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "these would be missing from the published packages:\n  {}",
            problems.join("\n  ")
        ));
    }
    let mut waiting: BTreeMap<&str, BTreeSet<&str>> = members
        .iter()
        .filter(|m| m.publishable)
        .map(|m| {
            let deps = m
                .deps
                .iter()
                .map(|d| d.name.as_str())
                .filter(|d| *d != m.name)
                .collect();
            (m.name.as_str(), deps)
        })
        .collect();
    let mut order = Vec::new();
    while !waiting.is_empty() {
        let Some(ready) = waiting
            .iter()
            .find(|(_, deps)| deps.is_empty())
            .map(|(name, _)| *name)
        else {
            let stuck: Vec<&str> = waiting.keys().copied().collect();
            return Err(format!(
                "a dependency cycle among {}: no order publishes them",
                stuck.join(", ")
            ));
        };
        waiting.remove(ready);
        for deps in waiting.values_mut() {
            deps.remove(ready);
        }
        order.push(ready.to_owned());
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(name: &str, kind: &str, has_version: bool) -> LocalDep {
        LocalDep {
            name: name.to_owned(),
            kind: kind.to_owned(),
            has_version,
        }
    }

    fn member(name: &str, publishable: bool, deps: Vec<LocalDep>) -> Member {
        Member {
            name: name.to_owned(),
            publishable,
            deps,
        }
    }

    #[test]
    fn orders_by_dependencies_dev_included_and_skips_unpublished() {
        let members = vec![
            member("facade", true, vec![dep("sdk", "normal", true)]),
            member("sdk", true, vec![dep("receiver", "dev", true)]),
            member("receiver", true, vec![dep("monitor", "normal", true)]),
            member("monitor", true, vec![]),
            member("benches", false, vec![dep("sdk", "normal", false)]),
        ];
        assert_eq!(
            publish_order(&members).expect("an order"),
            vec!["monitor", "receiver", "sdk", "facade"]
        );
    }

    #[test]
    fn rejects_what_a_package_would_lose_and_cycles() {
        let unpublished_dev = vec![
            member("facade", true, vec![dep("receiver", "dev", true)]),
            member("receiver", false, vec![]),
        ];
        let err = publish_order(&unpublished_dev).expect_err("receiver is unpublished");
        assert!(
            err.contains("facade has a dev dependency on receiver"),
            "{err}"
        );
        let path_only = vec![
            member("facade", true, vec![dep("sdk", "dev", false)]),
            member("sdk", true, vec![]),
        ];
        let err = publish_order(&path_only).expect_err("no version");
        assert!(
            err.contains("facade depends on sdk (dev) by path only"),
            "{err}"
        );
        let cycle = vec![
            member("a", true, vec![dep("b", "dev", true)]),
            member("b", true, vec![dep("a", "normal", true)]),
        ];
        let err = publish_order(&cycle).expect_err("a cycle");
        assert!(err.contains("cycle among a, b"), "{err}");
    }

    #[test]
    fn reads_cargo_metadata_json() {
        let json = serde_json::json!({
            "packages": [
                {"name": "a", "publish": null, "dependencies": [
                    {"name": "b", "req": "^0.1.0", "kind": null},
                    {"name": "tokio", "req": "^1", "kind": null},
                    {"name": "c", "req": "*", "kind": "dev"}
                ]},
                {"name": "b", "publish": null, "dependencies": []},
                {"name": "c", "publish": [], "dependencies": []}
            ]
        });
        let members = parse_metadata(&json).expect("members");
        assert_eq!(
            members[0],
            member(
                "a",
                true,
                vec![dep("b", "normal", true), dep("c", "dev", false)]
            )
        );
        assert!(members[1].publishable && !members[2].publishable);
    }

    /// The workspace as it is: every publishable crate has an order, and
    /// none of them depends on an unpublished crate.
    #[test]
    fn this_workspace_publishes_in_order() {
        let members = members(&workspace::root()).expect("cargo metadata");
        let order = publish_order(&members).expect("publishable");
        for name in ["otlp-receiver", "otlp-sdk", "otlp-concurrency"] {
            assert!(order.iter().any(|n| n == name), "{name} missing: {order:?}");
        }
        let position = |name: &str| order.iter().position(|n| n == name);
        assert!(position("otlp-receiver") < position("otlp-sdk"));
        assert!(position("otlp-sdk") < position("otlp-concurrency"));
        assert!(!order.iter().any(|n| n == "otlp-benches" || n == "xtask"));
    }
}
