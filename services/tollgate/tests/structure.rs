// Marks the whole file as test code, helpers included, for clippy's test allowances.
#![cfg(test)]

//! The workspace keeps the shape ARCHITECTURE.md draws: `common` at the bottom; the services
//! (`gateway`, `auth`, `cache`, `billing`, `guardrails`) on it and never on each other;
//! `admin` above them; the binary on top, wiring. The support crates (mock servers, load generator) stand alone.
//! A crate that imports upward or sideways, in its manifest or its source, fails here, as does
//! a module that is both a file and a folder.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Each crate, by its folder, and the workspace crates its library and binaries may use.
const GRAPH: &[(&str, &[&str])] = &[
    ("services/common", &[]),
    ("services/gateway", &["common"]),
    ("services/auth", &["common"]),
    ("services/cache", &["common"]),
    ("services/billing", &["common"]),
    ("services/guardrails", &["common"]),
    (
        "services/admin",
        &[
            "common",
            "gateway",
            "auth",
            "cache",
            "billing",
            "guardrails",
        ],
    ),
    (
        "services/tollgate",
        &[
            "common",
            "gateway",
            "auth",
            "cache",
            "billing",
            "guardrails",
            "admin",
        ],
    ),
    ("support/mock-provider", &[]),
    ("support/mock-stripe", &[]),
    ("support/loadgen", &[]),
];

/// Every workspace crate's short name (`tollgate-billing` is `billing`).
const CRATES: &[&str] = &[
    "common",
    "gateway",
    "auth",
    "cache",
    "billing",
    "guardrails",
    "admin",
    "mock-provider",
    "mock-stripe",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The workspace crates a manifest's `[dependencies]` and `[build-dependencies]` name (dev
/// dependencies are for tests, which may use anything).
fn manifest_dependencies(manifest: &str) -> Vec<String> {
    let mut section = String::new();
    let mut found = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.to_owned();
            continue;
        }
        if section != "[dependencies]" && section != "[build-dependencies]" {
            continue;
        }
        if let Some(name) = line.strip_prefix("tollgate-") {
            let name: String = name
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            found.push(name);
        }
    }
    found
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// The workspace crates a source file refers to as a path (`tollgate_billing::Charge`,
/// `use tollgate_auth;`), outside comments and its unit tests (the `#[cfg(test)]` module that
/// ends a file: tests may use anything, as dev dependencies say); a collection named
/// `tollgate_cache` in a string is not a use.
fn source_references(source: &str) -> Vec<&'static str> {
    let code: Vec<&str> = source
        .lines()
        .map(str::trim_start)
        .take_while(|line| *line != "#[cfg(test)]")
        .filter(|line| !line.starts_with("//"))
        .collect();
    CRATES
        .iter()
        .copied()
        .filter(|name| {
            let ident = format!("tollgate_{}", name.replace('-', "_"));
            code.iter().any(|line| {
                line.match_indices(&ident).any(|(at, _)| {
                    let before = line[..at].chars().next_back();
                    let after = &line[at + ident.len()..];
                    !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '"')
                        && (after.starts_with("::") || after.starts_with(';'))
                })
            })
        })
        .collect()
}

#[test]
fn no_crate_depends_upward_or_sideways() {
    let mut wrong = Vec::new();
    for (folder, allowed) in GRAPH {
        let manifest = fs::read_to_string(root().join(folder).join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("{folder}/Cargo.toml: {e}"));
        for dependency in manifest_dependencies(&manifest) {
            if !allowed.contains(&dependency.as_str()) {
                wrong.push(format!(
                    "{folder}/Cargo.toml depends on tollgate-{dependency}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "upward dependencies:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_source_file_imports_upward_or_sideways() {
    let mut wrong = Vec::new();
    for (folder, allowed) in GRAPH {
        let own = folder.rsplit('/').next().unwrap_or_default();
        let mut files = Vec::new();
        rust_files(&root().join(folder).join("src"), &mut files);
        assert!(!files.is_empty(), "{folder}/src has no Rust files");
        for file in files {
            let source = fs::read_to_string(&file).unwrap_or_default();
            for name in source_references(&source) {
                if name != own && !allowed.contains(&name) {
                    wrong.push(format!("{} uses tollgate_{name}", file.display()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "upward imports:\n{}", wrong.join("\n"));
}

#[test]
fn every_workspace_crate_is_placed_in_the_graph() {
    let manifest = fs::read_to_string(root().join("Cargo.toml")).unwrap_or_default();
    let members: Vec<&str> = manifest
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix('"')?.strip_suffix("\",").or(None))
        .filter(|path| path.starts_with("services/") || path.starts_with("support/"))
        .collect();
    assert!(!members.is_empty(), "the workspace lists its members");
    let placed: BTreeMap<&str, ()> = GRAPH.iter().map(|(folder, _)| (*folder, ())).collect();
    for member in members {
        assert!(
            placed.contains_key(member),
            "{member} is a workspace member the graph does not place"
        );
    }
}

#[test]
fn a_module_is_a_file_or_a_folder_never_both() {
    let mut both = Vec::new();
    for (folder, _) in GRAPH {
        let mut files = Vec::new();
        rust_files(&root().join(folder), &mut files);
        for file in files {
            let stem = file.with_extension("");
            let name = stem
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if matches!(name, "mod" | "lib" | "main") {
                continue;
            }
            if stem.is_dir() && has_rust_files(&stem) {
                both.push(file.display().to_string());
            }
        }
    }
    assert!(
        both.is_empty(),
        "modules that are a file and a folder at once:\n{}",
        both.join("\n")
    );
}

fn has_rust_files(dir: &Path) -> bool {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    !files.is_empty()
}

#[test]
fn the_checks_see_what_they_look_for() {
    let manifest = "[dependencies]\ntollgate-common.workspace = true\ntollgate-auth = { path = \"x\" }\n\n[dev-dependencies]\ntollgate-billing.workspace = true\n";
    assert_eq!(manifest_dependencies(manifest), ["common", "auth"]);
    assert_eq!(
        source_references("use tollgate_billing::Charge;\nlet x = my_tollgate_auth::y;"),
        ["billing"]
    );
    assert!(
        source_references(
            "// tollgate_gateway::x\nlet c = \"tollgate_cache\";\n/// `tollgate_auth=debug`"
        )
        .is_empty()
    );
    assert_eq!(
        source_references("tollgate_mock_stripe::start()"),
        ["mock-stripe"]
    );
}
