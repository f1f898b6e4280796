//! `cargo xtask snippets`: which Markdown files' Rust snippets are compiled,
//! and by which crate's doctests.
//!
//! Every crate's `README.md` is included by its own `src/lib.rs` as a
//! `#[cfg(doctest)]` item; the root `README.md` and every `docs/*.md` by
//! the unpublished `docs/snippets` crate (`otlp-docs`). The command lists
//! each file with its snippets counted the way rustdoc sees them, and fails
//! when a file is included by nothing, so a new guide cannot slip past the
//! doctests. `cargo test --workspace` compiles and runs them.

use std::fs;
use std::path::{Path, PathBuf};

use crate::workspace;

/// The crate whose doctests hold the root README and the guides.
const GUIDES_LIB: &str = "docs/snippets/src/lib.rs";

/// How rustdoc treats one fenced code block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snippet {
    /// Compiled and run.
    Run,
    /// Compiled only (`no_run`), or expected not to compile (`compile_fail`).
    CompileOnly,
    /// Rust, skipped (`ignore`).
    Ignored,
    /// Another language (`text`, `sh`, `toml`, ...): not a doctest.
    NotRust,
}

/// One Markdown file and what covers it.
#[derive(Debug, Clone)]
pub struct Covered {
    /// Path relative to the workspace root.
    pub file: PathBuf,
    /// The crate whose doctests include it; `None` when nothing does.
    pub by: Option<String>,
    /// Its fenced blocks, in order.
    pub snippets: Vec<Snippet>,
}

/// `cargo xtask snippets`: prints the coverage table; an error names the
/// Markdown files no doctest includes.
pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(arg) = args.first() {
        return Err(format!("unknown snippets argument `{arg}`"));
    }
    let root = workspace::root();
    let covered = coverage(&root)?;
    let count = |c: &Covered, kind: Snippet| c.snippets.iter().filter(|s| **s == kind).count();
    println!(
        "{:<36} {:<18} {:>4} {:>8} {:>7}",
        "file", "doctests of", "run", "no_run", "ignore"
    );
    let mut totals = [0; 3];
    for c in &covered {
        let row = [
            count(c, Snippet::Run),
            count(c, Snippet::CompileOnly),
            count(c, Snippet::Ignored),
        ];
        for (total, n) in totals.iter_mut().zip(row) {
            *total += n;
        }
        println!(
            "{:<36} {:<18} {:>4} {:>8} {:>7}",
            c.file.display(),
            c.by.as_deref().unwrap_or("NOTHING"),
            row[0],
            row[1],
            row[2]
        );
    }
    println!(
        "{:<36} {:<18} {:>4} {:>8} {:>7}",
        "total", "", totals[0], totals[1], totals[2]
    );
    let missing: Vec<String> = covered
        .iter()
        .filter(|c| c.by.is_none())
        .map(|c| c.file.display().to_string())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "not compiled by any doctest: {} (crate READMEs: a #[cfg(doctest)] item with \
             #[doc = include_str!(\"../README.md\")] in src/lib.rs; guides: {GUIDES_LIB})",
            missing.join(", ")
        ))
    }
}

/// Every Markdown file that should hold compiled snippets: `README.md`,
/// `docs/*.md` and `crates/*/README.md`, each with the crate that includes
/// it in its doctests.
pub fn coverage(root: &Path) -> Result<Vec<Covered>, String> {
    let guides_lib = fs::read_to_string(root.join(GUIDES_LIB))
        .map_err(|err| format!("cannot read {GUIDES_LIB}: {err}"))?;
    let mut files = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .map_err(|err| format!("cannot list docs/: {err}"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .filter_map(|p| Some(PathBuf::from("docs").join(p.file_name()?)))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut found = Vec::new();
    for path in files {
        let quoted = format!("\"{}\"", path.display());
        let by = guides_lib.contains(&quoted).then(|| "otlp-docs".to_owned());
        found.push(covered(root, path, by)?);
    }
    for krate in workspace::crates(root)? {
        let readme = krate.dir.join("README.md");
        if !readme.is_file() {
            continue;
        }
        let lib = fs::read_to_string(krate.dir.join("src/lib.rs")).unwrap_or_default();
        let by = includes_readme(&lib).then(|| krate.name.clone());
        let relative = readme.strip_prefix(root).unwrap_or(&readme).to_path_buf();
        found.push(covered(root, relative, by)?);
    }
    Ok(found)
}

fn covered(root: &Path, file: PathBuf, by: Option<String>) -> Result<Covered, String> {
    let text = fs::read_to_string(root.join(&file))
        .map_err(|err| format!("cannot read {}: {err}", file.display()))?;
    Ok(Covered {
        snippets: snippets(&text),
        file,
        by,
    })
}

/// Whether a `src/lib.rs` makes its README a doctest: an
/// `include_str!("../README.md")` in a `#[doc = ...]` attribute that is not
/// commented out.
fn includes_readme(lib: &str) -> bool {
    lib.lines().any(|line| {
        let code = line.trim_start();
        code.starts_with("#") && code.contains("include_str!(\"../README.md\")")
    })
}

/// The fenced code blocks of a Markdown text, classified as rustdoc does:
/// a block is Rust when its info string is empty or names `rust` or only
/// rustdoc's own attributes.
pub fn snippets(markdown: &str) -> Vec<Snippet> {
    let mut found = Vec::new();
    let mut open: Option<String> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        let Some(info) = trimmed.strip_prefix("```") else {
            continue;
        };
        match open.take() {
            // A closing fence is bare.
            Some(fence) if info.trim().is_empty() => {
                found.push(classify(&fence));
            }
            Some(fence) => open = Some(fence),
            None => open = Some(info.trim().to_owned()),
        }
    }
    found
}

fn classify(info: &str) -> Snippet {
    const RUSTDOC: &[&str] = &[
        "ignore",
        "no_run",
        "should_panic",
        "compile_fail",
        "test_harness",
        "edition2015",
        "edition2018",
        "edition2021",
        "edition2024",
    ];
    let tokens: Vec<&str> = info
        .split([',', ' ', '\t'])
        .filter(|t| !t.is_empty())
        .collect();
    let is_rust = tokens
        .iter()
        .all(|t| *t == "rust" || RUSTDOC.contains(t) || t.starts_with("ignore-"));
    if !is_rust {
        Snippet::NotRust
    } else if tokens
        .iter()
        .any(|t| *t == "ignore" || t.starts_with("ignore-"))
    {
        Snippet::Ignored
    } else if tokens
        .iter()
        .any(|t| *t == "no_run" || *t == "compile_fail")
    {
        Snippet::CompileOnly
    } else {
        Snippet::Run
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_fences_as_rustdoc_does() {
        let text = "intro\n```rust\nlet a = 1;\n```\n```\nbare is rust\n```\n\
                    ```rust,ignore\nx\n```\n```rust,no_run\ny\n```\n```toml\n[a]\n```\n\
                    ```sh\ncargo test\n```\n```text\n```rust inside text\n```\n";
        assert_eq!(
            snippets(text),
            vec![
                Snippet::Run,
                Snippet::Run,
                Snippet::Ignored,
                Snippet::CompileOnly,
                Snippet::NotRust,
                Snippet::NotRust,
                Snippet::NotRust,
            ]
        );
    }

    #[test]
    fn readme_include_must_be_live_code() {
        assert!(includes_readme(
            "#[cfg(doctest)]\n#[doc = include_str!(\"../README.md\")]\npub struct R;\n"
        ));
        assert!(includes_readme(
            "#![doc = include_str!(\"../README.md\")]\n"
        ));
        assert!(!includes_readme(
            "// #[doc = include_str!(\"../README.md\")]\n"
        ));
    }

    /// The workspace as it is: every README and guide is compiled by some
    /// crate's doctests, and the quick starts are among the run ones.
    #[test]
    fn every_markdown_file_is_a_doctest() {
        let covered = coverage(&workspace::root()).expect("coverage");
        let missing: Vec<_> = covered.iter().filter(|c| c.by.is_none()).collect();
        assert!(missing.is_empty(), "not covered: {missing:?}");
        for quick_start in ["docs/sdk.md", "crates/otlp-sdk/README.md"] {
            let c = covered
                .iter()
                .find(|c| c.file == Path::new(quick_start))
                .expect("listed");
            assert_eq!(
                c.snippets.first(),
                Some(&Snippet::NotRust),
                "{quick_start}: toml first"
            );
            assert_eq!(c.snippets.get(1), Some(&Snippet::Run), "{quick_start}");
        }
    }
}
