//! The one-way house: every top-level module of `src/` imports only the modules ARCHITECTURE.md
//! allows it (the table below is that page's "Import rules"). A new `crate::…` edge that is not
//! in the table fails here; so does a module the table does not know.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module → the modules it may import, bottom layer first.
const ALLOWED: &[(&str, &[&str])] = &[
    // Layer 1: foundations.
    ("error", &[]),
    ("digest", &[]),
    ("progress", &[]),
    ("loss", &[]),
    ("stats", &[]),
    ("store", &["error"]),
    ("metrics", &["error", "stats", "store"]),
    // Layer 2: experiments, networks, datasets, results read back, the figure toolkit.
    ("spec", &["error", "digest", "loss"]),
    ("model", &["spec", "digest"]),
    ("data", &["error", "spec"]),
    ("results", &["error", "loss", "stats", "store"]),
    ("figure", &["loss", "store"]),
    // Layer 3: training, feature extraction, analysis.
    ("train", &["data", "digest", "loss", "model", "spec", "store"]),
    ("extract", &["data", "error", "metrics", "model", "progress", "spec", "store"]),
    ("analysis", &["error", "figure", "loss", "store"]),
    // Layer 4: figures and reports, from the results alone.
    ("plot", &["analysis", "error", "figure", "loss", "results", "stats", "store"]),
    ("report", &["error", "loss", "results", "stats", "store"]),
    ("export", &["error", "extract", "model", "spec", "store"]),
    // Layer 5: orchestration and the command line.
    ("select", &["error", "spec", "stats", "store"]),
    (
        "runner",
        &["data", "digest", "error", "extract", "loss", "model", "progress", "select", "spec", "store", "train"],
    ),
    (
        "cli",
        &[
            "analysis", "data", "error", "export", "extract", "loss", "metrics", "model", "plot", "report", "results",
            "runner", "select", "spec", "store", "train",
        ],
    ),
];

/// The Rust files of a top-level module (`src/<m>.rs` or everything under `src/<m>/`).
fn files(src: &Path, module: &str) -> Vec<std::path::PathBuf> {
    let single = src.join(format!("{module}.rs"));
    if single.is_file() {
        return vec![single];
    }
    let mut out = Vec::new();
    let mut todo = vec![src.join(module)];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out
}

/// The top-level modules named by `crate::name` and `crate::{a, b::c}` in `text`, comments aside.
fn imports(text: &str) -> BTreeSet<String> {
    let code: String = text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let mut out = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name = ident(item.trim());
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out
}

#[test]
fn imports_follow_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut modules: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().trim_end_matches(".rs").to_string())
        .filter(|m| m != "main" && m != "lib")
        .collect();
    modules.sort();
    let mut violations = Vec::new();
    for module in &modules {
        let Some(ok) = allowed.get(module.as_str()) else {
            violations.push(format!("src/{module} is not in ARCHITECTURE.md's import rules (and this test's table)"));
            continue;
        };
        for file in files(&src, module) {
            let text = std::fs::read_to_string(&file).unwrap();
            for target in imports(&text) {
                if target != *module && modules.contains(&target) && !ok.contains(&target.as_str()) {
                    violations.push(format!("{}: `crate::{target}` ({module} may import {ok:?})", file.display()));
                }
            }
        }
    }
    assert!(violations.is_empty(), "forbidden imports:\n{}", violations.join("\n"));
}

#[test]
fn the_rules_are_acyclic() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    for (i, (module, deps)) in ALLOWED.iter().enumerate() {
        for dep in *deps {
            let position = ALLOWED.iter().position(|(m, _)| m == dep);
            assert!(position.is_some_and(|p| p < i), "{module} may import {dep}, which is not listed before it");
            assert!(allowed.contains_key(dep));
        }
    }
}

#[test]
fn the_import_scanner_sees_grouped_and_nested_paths() {
    let text = "use crate::{loss, store::schema};\nlet x = crate::spec::load(p); // crate::plot in a comment\n";
    let found: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(found, ["loss", "spec", "store"]);
}
