//! The layout rule of STYLE.md §1: the pure modules (HTTP semantics, the breaker, the config)
//! never use Pingora, so they stay testable and fuzzable on their own. Comments may name it.

use std::fs;
use std::path::{Path, PathBuf};

const PURE: [&str; 6] = [
    "cache",
    "breaker",
    "compress",
    "conditional",
    "config",
    "limits",
];

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

/// The code of a line, without its `//` comment (good enough: these files have no `//` in
/// string literals that would hide a use of Pingora after it).
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

#[test]
fn pure_modules_do_not_use_pingora() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut checked = 0;
    for module in PURE {
        let mut files = Vec::new();
        let single = src.join(format!("{module}.rs"));
        if single.is_file() && !src.join(module).is_dir() {
            files.push(single);
        } else {
            rust_files(&src.join(module), &mut files);
        }
        for file in files {
            checked += 1;
            let text = fs::read_to_string(&file).expect("readable source");
            for (n, line) in text.lines().enumerate() {
                if code(line).contains("pingora") {
                    offenders.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        checked >= PURE.len(),
        "no sources found under {}",
        src.display()
    );
    assert!(
        offenders.is_empty(),
        "pure modules must not use Pingora (STYLE.md §1):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_check_sees_a_use_of_pingora() {
    assert!(code("use pingora::cache::CacheKey; // a use").contains("pingora"));
    assert!(!code("//! wired into pingora-cache by proxy/").contains("pingora"));
}
