//! Tidy checks that read the source (ARCHITECTURE.md, "Invariants"): `flows/` knows nothing about HTTP, and the
//! crate's top-level modules depend on each other in one direction only (no cycle), so that every endpoint's
//! decision is in core, its orchestration in one flow file, and its HTTP in `web/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file as the build sees it outside tests: comment lines dropped, and nothing from the first
/// `#[cfg(test)]` on (test modules sit at the end of a file, by the house style).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level module a file belongs to (`flows` for `src/flows/authorize.rs`, `app` for `src/app.rs`).
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// What `crate::<name>` paths a piece of code names.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        // `latchkey_core::…` and the like are other crates, not this one.
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c}`.
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found
}

#[test]
fn flows_know_nothing_about_http() {
    let mut files = Vec::new();
    rust_files(&src().join("flows"), &mut files);
    assert!(files.len() > 10, "found the flow files: {files:?}");
    let banned = ["axum", "askama", "tower", "http::", "hyper", "crate::web"];
    let mut offences = Vec::new();
    for path in &files {
        let code = code(path);
        for word in banned {
            if code.contains(word) {
                offences.push(format!("{} names {word}", path.display()));
            }
        }
    }
    assert!(offences.is_empty(), "{offences:#?}");
}

#[test]
fn the_top_level_modules_depend_on_each_other_without_a_cycle() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &files {
        let from = module_of(path);
        if from == "lib" || from == "main" {
            continue;
        }
        let deps = graph.entry(from.clone()).or_default();
        for to in crate_paths(&code(path)) {
            if to != from {
                deps.insert(to);
            }
        }
    }
    assert!(graph.contains_key("flows") && graph.contains_key("web"));
    assert!(
        graph["web"].contains("flows"),
        "the scan sees web calling flows: {graph:?}"
    );
    // Depth-first search for a cycle; the path to it is the message.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("a dependency cycle: {}\n{graph:#?}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_scan_finds_paths_however_they_are_written() {
    let found = crate_paths(
        "use crate::store::X;\nuse crate::{app::AppState, keys};\nmy_crate::no::f();\n crate::web::f()",
    );
    let expected: BTreeSet<String> = ["app", "keys", "store", "web"].map(String::from).into();
    assert_eq!(found, expected);
}
