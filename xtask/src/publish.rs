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
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cmd::{StepResult, cargo, run_step, run_step_logged, summarize};
use crate::workspace;

/// What the dry run's verification builds into: one directory for every
/// package, so dependencies shared between the crates compile once, kept
/// apart from `target/debug` because the packages resolve their features
/// one at a time, not unified across the workspace.
pub const VERIFY_TARGET_DIR: &str = "target/publish";

/// Where the packaged crates are unpacked side by side, as one workspace,
/// for the check of their tests and examples.
const SCRATCH_DIR: &str = "target/publish/scratch";

/// A workspace member as `cargo metadata` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Package name.
    pub name: String,
    /// Package version.
    pub version: String,
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
    if dry_run {
        return summarize("publish --dry-run", &dry_run_steps(&root));
    }
    let members = members(&root)?;
    let order = publish_order(&members)?;
    eprintln!("publish order: {}", order.join(" -> "));
    // The real thing: cargo publishes them in this order itself, waiting
    // for each to appear in the index before the next that needs it.
    let mut command = cargo();
    command.current_dir(&root).arg("publish");
    for name in &order {
        command.args(["-p", name]);
    }
    summarize("publish", &[run_step("publish", &mut command)])
}

/// The whole dry run, as steps: the manifests' check and the order, then
/// [`dry_run_step`], then (if it passed) [`packaged_targets_step`].
pub fn dry_run_steps(root: &Path) -> Vec<StepResult> {
    let checked = members(root).and_then(|members| {
        let order = publish_order(&members)?;
        Ok((members, order))
    });
    let (members, order) = match checked {
        Ok(found) => found,
        Err(message) => {
            eprintln!("xtask: publish: {message}");
            return vec![failed("publish order")];
        }
    };
    eprintln!("publish order: {}", order.join(" -> "));
    forget_compiled_packages(root, &members, &order);
    let packaged = dry_run_step(root, &order);
    if !packaged.ok {
        return vec![packaged];
    }
    let targets = packaged_targets_step(root, &members, &order);
    vec![packaged, targets]
}

/// Forgets what an earlier dry run compiled of our own crates in
/// `target/publish`, so that verification compiles them again.
///
/// Verification builds a package's not-yet-published siblings as registry
/// dependencies, from a local registry cargo lays over crates.io. Cargo
/// treats a registry package as immutable: its fingerprint checks the name,
/// version and source, never the files. The sibling compiled by an earlier
/// run (same name, same version, older code) is therefore reused, and a
/// checkout whose `target/` outlives a run fails with errors about items
/// that do exist, as two CI runs did (`no OtlpRequestSender in otlp`).
/// Removing their fingerprints costs a rebuild of our crates only; the
/// third-party dependencies stay compiled.
fn forget_compiled_packages(root: &Path, members: &[Member], order: &[String]) {
    let fingerprints = root
        .join(VERIFY_TARGET_DIR)
        .join("debug")
        .join(".fingerprint");
    let Ok(entries) = fs::read_dir(&fingerprints) else {
        return;
    };
    let names: Vec<&str> = members
        .iter()
        .filter(|m| order.contains(&m.name))
        .map(|m| m.name.as_str())
        .collect();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if names.iter().any(|name| is_unit_of(file_name, name))
            && let Err(err) = fs::remove_dir_all(entry.path())
        {
            eprintln!("publish: cannot remove {}: {err}", entry.path().display());
        }
    }
}

/// Whether a fingerprint directory `NAME-HASH` belongs to package `name`.
fn is_unit_of(dir: &str, name: &str) -> bool {
    dir.strip_prefix(name)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn failed(name: &str) -> StepResult {
    StepResult {
        name: name.to_owned(),
        ok: false,
        elapsed: Duration::ZERO,
        log: None,
    }
}

/// `cargo publish --dry-run` over every publishable crate at once: each is
/// packaged, then unpacked and built, its not-yet-published siblings
/// resolved from a local registry holding the freshly packaged crates.
/// `--allow-dirty` because what is checked is the working tree as it is.
///
/// Its output is kept in `target/publish/dry-run.log` and quoted after the
/// summary when it fails. Verification resolves every package's
/// dependencies afresh from the registry's index (the workspace's lock does
/// not apply to a package), so a failed run is tried once more before it
/// counts: a registry that did not answer is not a packaging defect, and a
/// real one fails twice.
pub fn dry_run_step(root: &Path, order: &[String]) -> StepResult {
    let run = |attempt: &str| {
        let mut command = cargo();
        command
            .current_dir(root)
            .env("CARGO_TARGET_DIR", root.join(VERIFY_TARGET_DIR))
            .args(["publish", "--dry-run", "--allow-dirty"]);
        for name in order {
            command.args(["-p", name]);
        }
        let log = root
            .join(VERIFY_TARGET_DIR)
            .join(format!("dry-run{attempt}.log"));
        run_step_logged("publish --dry-run", &mut command, &log)
    };
    let first = run("");
    if first.ok {
        return first;
    }
    eprintln!("xtask: publish --dry-run failed; trying once more (see above for why)");
    let second = run("-retry");
    StepResult {
        elapsed: first.elapsed + second.elapsed,
        ..second
    }
}

/// Cargo's verification builds a package's library and binaries only, so a
/// test or example that needs a dependency the packaged manifest lost
/// would pass it. Here every target of every package (tests, examples,
/// benches) is type-checked from the packages themselves: they are
/// unpacked side by side into one scratch workspace whose
/// `[patch.crates-io]` points each sibling at its unpacked package, with
/// the repository's `Cargo.lock`, built in the same `target/publish`.
pub fn packaged_targets_step(root: &Path, members: &[Member], order: &[String]) -> StepResult {
    let name = "packaged tests and examples";
    match unpack_packages(root, members, order) {
        Ok(scratch) => run_step_logged(
            name,
            cargo()
                .current_dir(scratch)
                .env("CARGO_TARGET_DIR", root.join(VERIFY_TARGET_DIR))
                .args(["check", "--workspace", "--all-targets"]),
            &root.join(VERIFY_TARGET_DIR).join("packaged.log"),
        ),
        Err(message) => {
            eprintln!("xtask: publish: {message}");
            failed(name)
        }
    }
}

/// Unpacks the `.crate` files the dry run left and writes the scratch
/// workspace's manifest; returns its directory.
fn unpack_packages(root: &Path, members: &[Member], order: &[String]) -> Result<PathBuf, String> {
    let scratch = root.join(SCRATCH_DIR);
    if scratch.exists() {
        fs::remove_dir_all(&scratch)
            .map_err(|err| format!("cannot clear {}: {err}", scratch.display()))?;
    }
    fs::create_dir_all(&scratch)
        .map_err(|err| format!("cannot create {}: {err}", scratch.display()))?;
    let mut packages = Vec::new();
    for name in order {
        let member = members
            .iter()
            .find(|m| &m.name == name)
            .ok_or_else(|| format!("{name} is not a workspace member"))?;
        let dir = format!("{}-{}", member.name, member.version);
        let file = crate_file(root, &dir)?;
        // `-m`: the files get the time of unpacking. Cargo packs them with
        // one fixed old mtime, which would make a changed package look
        // unchanged to the fingerprints in the shared target directory.
        let status = Command::new("tar")
            .arg("-xzmf")
            .arg(&file)
            .arg("-C")
            .arg(&scratch)
            .status()
            .map_err(|err| format!("cannot run tar: {err}"))?;
        if !status.success() {
            return Err(format!("tar could not unpack {}", file.display()));
        }
        packages.push((name.clone(), dir));
    }
    fs::write(scratch.join("Cargo.toml"), scratch_manifest(&packages))
        .map_err(|err| format!("cannot write the scratch manifest: {err}"))?;
    fs::copy(root.join("Cargo.lock"), scratch.join("Cargo.lock"))
        .map_err(|err| format!("cannot copy Cargo.lock: {err}"))?;
    Ok(scratch)
}

/// The `.crate` file of `stem` (`name-version`): `cargo publish --dry-run`
/// leaves it in `package/tmp-crate`, `cargo package` in `package/`.
fn crate_file(root: &Path, stem: &str) -> Result<PathBuf, String> {
    let package = root.join(VERIFY_TARGET_DIR).join("package");
    [package.join("tmp-crate"), package]
        .iter()
        .map(|dir| dir.join(format!("{stem}.crate")))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            format!(
                "no {stem}.crate under {}",
                root.join(VERIFY_TARGET_DIR).display()
            )
        })
}

/// The scratch workspace: every unpacked package a member, and each
/// sibling's registry dependency patched to its unpacked package.
fn scratch_manifest(packages: &[(String, String)]) -> String {
    let mut text = String::from(
        "# Written by `cargo xtask publish --dry-run`: the packaged crates, as published.\n\
         [workspace]\nresolver = \"3\"\nmembers = [\n",
    );
    for (_, dir) in packages {
        text.push_str(&format!("    \"{dir}\",\n"));
    }
    text.push_str("]\n\n[patch.crates-io]\n");
    for (name, dir) in packages {
        text.push_str(&format!("{name} = {{ path = \"{dir}\" }}\n"));
    }
    text
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
                version: package["version"].as_str().unwrap_or_default().to_owned(),
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
            version: "0.1.0".to_owned(),
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
                {"name": "a", "version": "0.1.0", "publish": null, "dependencies": [
                    {"name": "b", "req": "^0.1.0", "kind": null},
                    {"name": "tokio", "req": "^1", "kind": null},
                    {"name": "c", "req": "*", "kind": "dev"}
                ]},
                {"name": "b", "version": "0.1.0", "publish": null, "dependencies": []},
                {"name": "c", "version": "0.1.0", "publish": [], "dependencies": []}
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

    #[test]
    fn scratch_workspace_patches_every_sibling_to_its_package() {
        let text = scratch_manifest(&[
            ("otlp-a".to_owned(), "otlp-a-0.1.0".to_owned()),
            ("otlp-b".to_owned(), "otlp-b-0.2.0".to_owned()),
        ]);
        assert!(text.contains("members = [\n    \"otlp-a-0.1.0\",\n    \"otlp-b-0.2.0\",\n]"));
        assert!(text.contains("[patch.crates-io]\notlp-a = { path = \"otlp-a-0.1.0\" }\n"));
        assert!(text.contains("otlp-b = { path = \"otlp-b-0.2.0\" }\n"));
    }

    /// The workspace as it is: every publishable crate has an order, and
    /// none of them depends on an unpublished crate.
    #[test]
    fn fingerprints_are_matched_by_whole_package_name() {
        assert!(is_unit_of("otlp-sdk-1d3cf4adf0082627", "otlp-sdk"));
        assert!(!is_unit_of("otlp-sdk-1d3cf4adf0082627", "otlp"));
        assert!(!is_unit_of("otlp-sync-1d3cf4adf0082627", "otlp-s"));
        assert!(!is_unit_of("otlp-sdk-extra-1d3cf4adf0082627", "otlp-sdk"));
    }

    #[test]
    fn this_workspace_publishes_in_order() {
        let members = members(&workspace::root()).expect("cargo metadata");
        let order = publish_order(&members).expect("publishable");
        for name in [
            "otlp-receiver",
            "otlp-sdk",
            "otlp-agent",
            "otlp-concurrency",
        ] {
            assert!(order.iter().any(|n| n == name), "{name} missing: {order:?}");
        }
        let position = |name: &str| order.iter().position(|n| n == name);
        assert!(position("otlp-receiver") < position("otlp-sdk"));
        assert!(position("otlp-sdk") < position("otlp-concurrency"));
        assert!(position("otlp-sdk") < position("otlp-agent"));
        assert!(!order.iter().any(|n| n == "otlp-benches" || n == "xtask"));
    }
}
