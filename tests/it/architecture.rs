//! The layout rules of STYLE.md §1, read off the sources:
//! - the pure modules (HTTP semantics, the breaker, the config, the alert rules) never use Pingora, nor any
//!   module that does (the data plane, its state, the server, the admin plane, the reloader,
//!   metrics, logging), so they stay testable and fuzzable on their own;
//! - the top-level modules import each other without a circle, so each layer can be read,
//!   tested and changed knowing only the layers below it.
//!
//! Comments may name anything. Each rule has a test that feeds it a planted violation.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const PURE: [&str; 9] = [
    "advisor",
    "cache",
    "breaker",
    "compress",
    "conditional",
    "config",
    "limits",
    "resilience",
    "slo",
];

/// What a pure module may not import: everything that runs, binds or reports.
const IMPURE: [&str; 9] = [
    "proxy", "state", "server", "admin", "reload", "metrics", "logging", "demo", "main",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules of the crate (`src/NAME.rs` or `src/NAME/`), without `lib` and `main`.
fn top_level_modules() -> Vec<String> {
    let mut names = BTreeSet::new();
    for entry in fs::read_dir(src()).expect("src/ is readable") {
        let path = entry.expect("directory entry").path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("UTF-8 file name");
        if (path.is_dir() || path.extension().is_some_and(|e| e == "rs"))
            && name != "lib"
            && name != "main"
        {
            names.insert(name.to_string());
        }
    }
    names.into_iter().collect()
}

/// The files of one top-level module: `src/NAME.rs` and everything below `src/NAME/`.
fn module_files(module: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let single = src().join(format!("{module}.rs"));
    if single.is_file() {
        files.push(single);
    }
    let dir = src().join(module);
    if dir.is_dir() {
        rust_files(&dir, &mut files);
    }
    files
}

/// The code of a line, without its `//` comment (good enough: these files have no `//` in
/// string literals that would hide an import after it).
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

/// The top-level modules a piece of code names through `crate::`: `crate::proxy::Shared`,
/// `crate::{proxy, admin::X}` and `use crate::{\n proxy,\n ...}` across lines.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if !preceded_by_ident {
            if let Some(group) = after.strip_prefix('{') {
                let mut depth = 1;
                let mut item_start = true;
                let mut name = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 {
                        break;
                    }
                    if depth == 1 && c == ',' {
                        item_start = true;
                        continue;
                    }
                    if item_start {
                        if c.is_alphanumeric() || c == '_' {
                            name.push(c);
                        } else if !name.is_empty() {
                            found.insert(std::mem::take(&mut name));
                            item_start = false;
                        }
                    }
                }
                if !name.is_empty() {
                    found.insert(name);
                }
            } else {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        }
        rest = after;
    }
    found
}

/// The code of a file with comments removed, joined so that grouped imports spanning lines
/// are read whole.
fn code_of(text: &str) -> String {
    text.lines().map(code).collect::<Vec<_>>().join("\n")
}

/// Violations of the purity rule in one file's text: uses of Pingora and imports of impure
/// modules, as `LINE: reason`.
fn purity_violations(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = code(line);
        if code.contains("pingora") {
            found.push(format!("{}: uses Pingora: {}", n + 1, line.trim()));
        }
    }
    for name in crate_paths(&code_of(text)) {
        if IMPURE.contains(&name.as_str()) {
            found.push(format!("imports crate::{name}"));
        }
    }
    found
}

#[test]
fn pure_modules_use_neither_pingora_nor_the_modules_that_run() {
    let mut offenders = Vec::new();
    let mut checked = 0;
    for module in PURE {
        for file in module_files(module) {
            checked += 1;
            let text = fs::read_to_string(&file).expect("readable source");
            for v in purity_violations(&text) {
                offenders.push(format!("{}: {v}", file.display()));
            }
        }
    }
    assert!(
        checked >= PURE.len(),
        "no sources found under {}",
        src().display()
    );
    assert!(
        offenders.is_empty(),
        "pure modules must use neither Pingora nor the modules that run (STYLE.md §1):\n{}",
        offenders.join("\n")
    );
}

/// The first circle in `graph`, as the path of module names that closes it.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_string());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(circle) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(circle);
        }
    }
    None
}

#[test]
fn top_level_modules_import_each_other_without_a_circle() {
    let modules = top_level_modules();
    assert!(modules.len() >= 10, "modules found: {modules:?}");
    let mut graph = BTreeMap::new();
    for module in &modules {
        let mut uses = BTreeSet::new();
        for file in module_files(module) {
            let text = fs::read_to_string(&file).expect("readable source");
            uses.extend(
                crate_paths(&code_of(&text))
                    .into_iter()
                    .filter(|m| m != module && modules.contains(m)),
            );
        }
        graph.insert(module.clone(), uses);
    }
    assert!(
        graph["proxy"].contains("config"),
        "the graph was not read: {graph:?}"
    );
    if let Some(circle) = find_circle(&graph) {
        panic!(
            "top-level modules import each other in a circle: {}\n(graph: {graph:?})",
            circle.join(" → ")
        );
    }
}

#[test]
fn the_purity_check_sees_planted_violations() {
    assert!(!purity_violations("use pingora::cache::CacheKey; // a use").is_empty());
    assert!(purity_violations("//! wired into pingora-cache by proxy/").is_empty());
    assert!(!purity_violations("use crate::proxy::Shared;").is_empty());
    assert!(!purity_violations("use crate::{config::Policy, reload::Trigger};").is_empty());
    assert!(
        !purity_violations("use crate::{\n    config::Policy,\n    state::Shared,\n};").is_empty()
    );
    assert!(!purity_violations("let m = crate::metrics::Metrics::new();").is_empty());
    assert!(purity_violations("use crate::config::Policy; // not crate::proxy").is_empty());
    assert!(purity_violations("use crate::{config::{self, Policy}, limits};").is_empty());
    assert!(purity_violations("let x = mycrate::proxy::thing;").is_empty());
}

#[test]
fn the_circle_check_sees_a_planted_circle() {
    let edge = |a: &str, bs: &[&str]| {
        (
            a.to_string(),
            bs.iter().map(|b| b.to_string()).collect::<BTreeSet<_>>(),
        )
    };
    let acyclic: BTreeMap<_, _> = [
        edge("config", &[]),
        edge("proxy", &["config", "metrics"]),
        edge("metrics", &["config"]),
        edge("reload", &["proxy", "config"]),
    ]
    .into_iter()
    .collect();
    assert_eq!(find_circle(&acyclic), None);
    let circular: BTreeMap<_, _> = [
        edge("config", &["state"]),
        edge("state", &["proxy"]),
        edge("proxy", &["config"]),
    ]
    .into_iter()
    .collect();
    let circle = find_circle(&circular).expect("a circle");
    assert_eq!(circle.first(), circle.last());
    assert_eq!(circle.len(), 4, "{circle:?}");
}
