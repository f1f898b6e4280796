//! What the workspace holds: its crates, their loom models, stress tests and
//! unsafe code, found by looking at the files rather than by a list to keep
//! up to date.

use std::fs;
use std::path::{Path, PathBuf};

/// One member crate under `crates/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrateInfo {
    /// Package name, e.g. `otlp-lockfree`.
    pub name: String,
    /// Directory of the crate.
    pub dir: PathBuf,
    /// Test targets named `loom_*` (file stems under `tests/`), sorted.
    pub loom_tests: Vec<String>,
    /// Whether `tests/stress.rs` exists.
    pub has_stress: bool,
    /// Whether the crate depends on crossbeam-epoch, whose loom support
    /// needs `--cfg crossbeam_loom` as well.
    pub uses_epoch: bool,
    /// Whether any file under `src/` contains an `unsafe` block or impl.
    pub has_unsafe: bool,
    /// `miri-flags` from `[package.metadata.otlp]`: the crate's own Miri
    /// flags, replacing the default strict ones.
    pub miri_flags: Option<String>,
}

impl CrateInfo {
    /// The name without the `otlp-` prefix, e.g. `lockfree`.
    pub fn short(&self) -> &str {
        self.name.strip_prefix("otlp-").unwrap_or(&self.name)
    }
}

/// The workspace root (the parent of the xtask crate).
pub fn root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(manifest_dir)
}

/// Every crate under `<root>/crates`, sorted by name.
pub fn crates(root: &Path) -> Result<Vec<CrateInfo>, String> {
    let crates_dir = root.join("crates");
    let entries = fs::read_dir(&crates_dir)
        .map_err(|err| format!("cannot list {}: {err}", crates_dir.display()))?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        let manifest_path = dir.join("Cargo.toml");
        let Ok(manifest) = fs::read_to_string(&manifest_path) else {
            continue;
        };
        let Some(name) = package_name(&manifest) else {
            return Err(format!("no package name in {}", manifest_path.display()));
        };
        found.push(CrateInfo {
            name,
            loom_tests: loom_tests(&dir.join("tests")),
            has_stress: dir.join("tests/stress.rs").is_file(),
            uses_epoch: declares_dependency(&manifest, "crossbeam-epoch"),
            has_unsafe: contains_unsafe(&dir.join("src")),
            miri_flags: table_value(&manifest, "[package.metadata.otlp]", "miri-flags"),
            dir,
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// Picks the crates named in `args` (full or short names); all of them
/// when `args` is empty. An unknown name is an error.
pub fn select<'a>(all: &'a [CrateInfo], args: &[String]) -> Result<Vec<&'a CrateInfo>, String> {
    if args.is_empty() {
        return Ok(all.iter().collect());
    }
    args.iter()
        .map(|arg| {
            all.iter()
                .find(|c| c.name == *arg || c.short() == arg)
                .ok_or_else(|| {
                    let names: Vec<&str> = all.iter().map(CrateInfo::short).collect();
                    format!("no crate `{arg}` (known: {})", names.join(", "))
                })
        })
        .collect()
}

/// Whether a `name = ...` or `name.workspace = ...` dependency line names
/// `name` (comments that mention it do not count).
fn declares_dependency(manifest: &str, name: &str) -> bool {
    manifest.lines().any(|line| {
        line.trim_start()
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with([' ', '=', '.']))
    })
}

/// The `name = "..."` of the `[package]` table.
fn package_name(manifest: &str) -> Option<String> {
    table_value(manifest, "[package]", "name")
}

/// The string value of `key` in `table` (a simple `key = "value"` line).
fn table_value(manifest: &str, table: &str, key: &str) -> Option<String> {
    let mut in_table = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_table = line == table;
            continue;
        }
        if !in_table {
            continue;
        }
        if let Some(rest) = line.strip_prefix(key)
            && let Some(value) = rest.trim_start().strip_prefix('=')
        {
            return Some(value.trim().trim_matches('"').to_owned());
        }
    }
    None
}

fn loom_tests(tests_dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(tests_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let stem = path.file_stem()?.to_str()?;
            let is_rs = path.extension().is_some_and(|ext| ext == "rs");
            (is_rs && stem.starts_with("loom_")).then(|| stem.to_owned())
        })
        .collect();
    names.sort();
    names
}

fn contains_unsafe(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            return contains_unsafe(&path);
        }
        path.extension().is_some_and(|ext| ext == "rs")
            && fs::read_to_string(&path).is_ok_and(|text| {
                text.lines().any(|line| {
                    let code = line.trim_start();
                    !code.starts_with("//")
                        && (code.contains("unsafe {")
                            || code.contains("unsafe impl")
                            || code.contains("unsafe fn"))
                })
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-ws-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }

    #[test]
    fn finds_loom_models_stress_tests_and_unsafe() {
        let root = scratch("find");
        write(
            &root.join("crates/a/Cargo.toml"),
            "[package]\nname = \"otlp-a\"\n\n[dependencies]\ncrossbeam-epoch.workspace = true\n\n\
             [package.metadata.otlp]\nmiri-flags = \"-Zmiri-tree-borrows\"\n",
        );
        write(
            &root.join("crates/a/src/lib.rs"),
            "// unsafe { in a comment }\npub unsafe fn f() {}\n",
        );
        write(&root.join("crates/a/tests/loom_b.rs"), "");
        write(&root.join("crates/a/tests/loom_a.rs"), "");
        write(&root.join("crates/a/tests/stress.rs"), "");
        write(&root.join("crates/a/tests/loom_notes.txt"), "");
        write(&root.join("crates/a/tests/other.rs"), "");
        write(
            &root.join("crates/b/Cargo.toml"),
            "[package]\nname = \"otlp-b\"\n[dependencies]\nname = \"not this\"\n",
        );
        write(
            &root.join("crates/b/src/lib.rs"),
            "// unsafe { only a comment }\n",
        );

        let found = crates(&root).expect("crates");
        assert_eq!(found.len(), 2);
        let a = &found[0];
        assert_eq!(a.name, "otlp-a");
        assert_eq!(a.short(), "a");
        assert_eq!(a.loom_tests, vec!["loom_a", "loom_b"]);
        assert!(a.has_stress && a.uses_epoch && a.has_unsafe);
        assert_eq!(a.miri_flags.as_deref(), Some("-Zmiri-tree-borrows"));
        let b = &found[1];
        assert_eq!(b.name, "otlp-b");
        assert!(b.loom_tests.is_empty());
        assert!(!b.has_stress && !b.uses_epoch && !b.has_unsafe);
        assert_eq!(b.miri_flags, None);
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn selects_by_full_or_short_name_and_rejects_unknown() {
        let info = |name: &str| CrateInfo {
            name: name.to_owned(),
            dir: PathBuf::new(),
            loom_tests: Vec::new(),
            has_stress: false,
            uses_epoch: false,
            has_unsafe: false,
            miri_flags: None,
        };
        let all = vec![info("otlp-lockfree"), info("otlp-sync")];
        assert_eq!(select(&all, &[]).expect("all").len(), 2);
        let picked = select(&all, &["sync".to_owned(), "otlp-lockfree".to_owned()]).expect("two");
        assert_eq!(picked[0].name, "otlp-sync");
        assert_eq!(picked[1].name, "otlp-lockfree");
        let err = select(&all, &["nope".to_owned()]).expect_err("unknown");
        assert!(
            err.contains("no crate `nope`") && err.contains("lockfree"),
            "{err}"
        );
    }
}
