//! Checks of the repository itself, so its promises cannot drift: the
//! declared minimum Rust version is exactly the highest one any locked
//! dependency declares, and every crate of the workspace inherits it; every
//! test docs/OPERATIONS.md names as the proof of a guarantee exists.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn version(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

#[test]
fn rust_version_is_the_highest_any_locked_dependency_needs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let mut declared: Option<String> = None;
    let mut needed: Option<(Vec<u64>, String)> = None;
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let rv = p["rust_version"].as_str();
        if members.contains(&p["id"].as_str().unwrap()) {
            let rv = rv.unwrap_or_else(|| {
                panic!("{name} declares no rust-version: add `rust-version.workspace = true`")
            });
            match &declared {
                None => declared = Some(rv.to_owned()),
                Some(d) => assert_eq!(d, rv, "{name} declares another rust-version"),
            }
        } else if let Some(rv) = rv {
            let v = version(rv);
            if needed.as_ref().is_none_or(|(n, _)| v > *n) {
                needed = Some((v, format!("{name} {} needs {rv}", p["version"])));
            }
        }
    }
    let declared = declared.expect("workspace members");
    let (needed, by) = needed.expect("locked dependencies declare rust-version");
    assert_eq!(
        version(&declared),
        needed,
        "the workspace declares rust-version {declared}, but {by}: set [workspace.package] rust-version (and the README) to it"
    );
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("Rust {declared}+")),
        "README.md should say \"Rust {declared}+\""
    );
}

/// Every file of the repository (not build output or git's own), for checks
/// of what the repository says and reads.
fn repository_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            repository_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn nothing_refers_to_files_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    repository_files(&root, &mut files);
    assert!(files.len() > 50, "{} files", files.len());
    // Spelled in pieces so this file does not match itself.
    let needles = [format!("../{}/", "shared"), format!("/work/{}", "shared")];
    let mut found = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue; // binary
        };
        for needle in &needles {
            if text.contains(needle.as_str()) {
                found.push(format!("{} names {needle}", file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the repository must stand alone:\n{}",
        found.join("\n")
    );
}

/// docs/OPERATIONS.md, "Guarantees and the tests that prove them": each row
/// ends with `` `FILE`: `test`, `test`; `FILE`: `test` ``, and each such test
/// is a function of that file.
#[test]
fn the_guarantees_name_tests_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/OPERATIONS.md")).unwrap();
    let start = doc
        .find("## Guarantees and the tests that prove them")
        .expect("docs/OPERATIONS.md lists the guarantees");
    let section = &doc[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let mut named = 0;
    let mut missing = Vec::new();
    for row in section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| Guarantee"))
    {
        let proof = row.trim_end_matches('|').rsplit('|').next().unwrap();
        for group in proof.split(';') {
            let (file, tests) = group
                .split_once(':')
                .unwrap_or_else(|| panic!("no `FILE`: `test` in {group:?}"));
            let file = file.trim().trim_matches('`');
            let source = std::fs::read_to_string(root.join(file)).unwrap_or_default();
            for test in tests.split(',') {
                let test = test.trim().trim_matches('`');
                named += 1;
                if !source.contains(&format!("fn {test}(")) {
                    missing.push(format!("{file}: {test}"));
                }
            }
        }
    }
    assert!(named > 40, "only {named} tests named");
    assert!(
        missing.is_empty(),
        "named but not found:\n{}",
        missing.join("\n")
    );
}

/// `ccvault --version` names the formats the build writes, as
/// docs/FORMAT.md's section headings give them: an operator can tell
/// whether a binary will upgrade an archive (one-way) before running it.
#[test]
fn the_long_version_names_the_formats_of_the_document() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/FORMAT.md")).unwrap();
    // "## 3. Index (`index.redb`), index version 6" -> ("index", "6").
    let heading = |starts: &str, word: &str| -> String {
        let line = doc
            .lines()
            .find(|l| l.starts_with(starts))
            .unwrap_or_else(|| panic!("no heading {starts:?} in docs/FORMAT.md"));
        let at = line
            .rfind(word)
            .unwrap_or_else(|| panic!("{word:?} in {line:?}"));
        line[at + word.len()..].trim().to_owned()
    };
    let want = format!(
        "segment format {}, .segz container {}, index {}, projections {}, facts {}",
        heading("## 1. ", "format version"),
        heading("### 1.7 ", "container version").trim_end_matches(')'),
        heading("## 3. ", "index version"),
        heading("## 4. ", "projection version"),
        heading("## 5. ", "facts version"),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ccvault"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // The segment format's line also says which it reads.
    let said = text.replace(" (reads 1 and later)", "");
    assert!(said.contains(&want), "{text:?} does not say {want:?}");
}
