//! The agent's modules depend one way: fails on an import cycle among the
//! top-level modules of `agent/src` (`crate::x` paths in code and doc
//! links; plain comments ignored), and on a module reaching for an item of the crate root, which
//! depends on every module.
//!
//! Why: adapters (fleet, panel, AWS monitor) and the controller grew into a
//! seven-module cycle once; with a one-way graph a new actor can only read
//! snapshots and post actions.
// An integration test crate is test code throughout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::tests_outside_test_module)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module name → the modules its code names through `crate::`.
type Graph = BTreeMap<String, BTreeSet<String>>;

const ROOT: &str = "(crate root)";

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to (`None` for the binary's files).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" => Some(ROOT.to_owned()),
        // The binary is a separate crate that uses the library's public API.
        "main.rs" | "bin" => None,
        f => Some(f.trim_end_matches(".rs").to_owned()),
    }
}

/// Every `crate::name` in `code` outside comments; `crate::{a, b}` too.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in code.lines() {
        // Doc comments count (an intra-doc link is a dependency of the
        // docs); plain comments do not.
        let trimmed = line.trim_start();
        let line =
            if trimmed.starts_with("///") || trimmed.starts_with("//!") { trimmed } else { line.split("//").next().unwrap_or("") };
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            let before = rest[..i].chars().last();
            rest = &rest[i + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // `edge_crate::`, not ours
            }
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for part in group[..end].split(',') {
                    let name: String = part.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() {
                        names.insert(name);
                    }
                }
            } else {
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    names.insert(name);
                }
            }
        }
    }
    names
}

fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(src, f)).collect();
    let mut g = Graph::new();
    for f in &files {
        let Some(m) = module_of(src, f) else { continue };
        let code = std::fs::read_to_string(f).unwrap_or_default();
        let deps = g.entry(m.clone()).or_default();
        for name in crate_paths(&code) {
            let target = if modules.contains(&name) { name } else { ROOT.to_owned() };
            if target != m {
                deps.insert(target);
            }
        }
    }
    // The root declares every module.
    let all: BTreeSet<String> = modules.iter().filter(|m| m.as_str() != ROOT).cloned().collect();
    g.entry(ROOT.to_owned()).or_default().extend(all);
    g
}

/// One cycle, as the path that closes it, if there is any.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(g: &Graph, n: &str, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_owned());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_owned());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, d, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    g.keys().find_map(|n| visit(g, n, &mut Vec::new(), &mut done))
}

#[test]
fn agent_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    assert!(g.len() > 10, "found only {} modules under {}", g.len(), src.display());
    if let Some(cycle) = find_cycle(&g) {
        let edges: Vec<String> =
            g.iter().map(|(m, d)| format!("  {m} -> {}", d.iter().cloned().collect::<Vec<_>>().join(", "))).collect();
        panic!("import cycle among agent/src modules: {}\nall edges:\n{}", cycle.join(" -> "), edges.join("\n"));
    }
}

#[test]
fn the_check_finds_a_cycle_and_a_reach_into_the_root() {
    let code =
        "use crate::{a, b::X};\n// crate::c in a comment\nlet x = crate::d::f();\nuse edge_crate::z;\n/// [`crate::e`] is a link";
    assert_eq!(crate_paths(code), ["a", "b", "d", "e"].iter().map(|s| s.to_string()).collect());
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    if let Some(d) = g.get_mut("c") {
        d.clear();
    }
    assert_eq!(find_cycle(&g), None);
    g.entry(ROOT.into()).or_default().insert("a".into());
    if let Some(d) = g.get_mut("c") {
        d.insert(ROOT.into());
    }
    assert!(find_cycle(&g).is_some(), "a module using a root item closes a cycle through the root");
}
