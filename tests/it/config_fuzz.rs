//! Stable-toolchain fuzzing of `config::compile` (the cargo-fuzz target in `fuzz/` needs
//! nightly): arbitrary text and mutations of the reference config never panic, and every error
//! is located inside the text.

use outrider::config::{compile, ConfigError};
use proptest::prelude::*;

const REFERENCE: &str = include_str!("../../conf/outrider.toml");

/// Every error names `fuzz.toml` and a line and column that exist in `text` (a column may be
/// one past the end of its line: errors at a line's end or at the end of the file).
fn assert_located(text: &str, errors: &[ConfigError]) {
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(!errors.is_empty(), "an Err holds at least one error");
    for e in errors {
        assert_eq!(e.file, "fuzz.toml");
        assert!(
            e.line >= 1 && e.line <= lines.len(),
            "line {} outside 1..={} in {e}",
            e.line,
            lines.len()
        );
        let width = lines[e.line - 1].chars().count();
        assert!(
            e.column >= 1 && e.column <= width + 1,
            "column {} outside 1..={} in {e}",
            e.column,
            width + 1
        );
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("fuzz.toml:{}:{}: ", e.line, e.column)),
            "{shown}"
        );
    }
    assert!(
        errors
            .windows(2)
            .all(|w| (w[0].line, w[0].column) <= (w[1].line, w[1].column)),
        "errors are sorted by position: {errors:?}"
    );
}

fn compile_checked(text: &str) {
    if let Err(errors) = compile(text, "fuzz.toml") {
        assert_located(text, &errors);
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    DeleteBytes(usize, usize),
    InsertText(usize, String),
    ReplaceByte(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let any_idx = any::<usize>();
    prop_oneof![
        any_idx.prop_map(Mutation::DeleteLine),
        any_idx.prop_map(Mutation::DuplicateLine),
        (any_idx, any_idx).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any_idx, 1usize..40).prop_map(|(at, n)| Mutation::DeleteBytes(at, n)),
        (
            any_idx,
            prop_oneof![
                // TOML punctuation and fragments that change structure.
                prop::sample::select(vec![
                    "[",
                    "]",
                    "[[",
                    "]]",
                    "{",
                    "}",
                    "=",
                    "\"",
                    "'",
                    ",",
                    ".",
                    "#",
                    "\n",
                    "\r\n",
                    "\t",
                    "\\",
                    "\"\"\"",
                    "0",
                    "-1",
                    "1e400",
                    "true",
                    "é",
                    "\u{feff}",
                    "[routes]\n",
                    "[[routes]]\n",
                    "[upstreams.x]\n",
                    "name = \"api\"\n",
                    "upstream = \"nope\"\n",
                    "endpoints = []\n",
                    "x = 1\n",
                ])
                .prop_map(String::from),
                ".{0,8}",
            ]
        )
            .prop_map(|(at, s)| Mutation::InsertText(at, s)),
        (any_idx, any::<u8>()).prop_map(|(at, b)| Mutation::ReplaceByte(at, b)),
    ]
}

/// Applies mutations to the text's bytes; the result is made UTF-8 again lossily, since
/// `compile` takes `&str` (the binary reads files with `read_to_string`).
fn mutate(text: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<Vec<u8>> = text.split('\n').map(|l| l.as_bytes().to_vec()).collect();
    for m in mutations {
        match m {
            Mutation::DeleteLine(i) if lines.len() > 1 => {
                let i = i % lines.len();
                lines.remove(i);
            }
            Mutation::DuplicateLine(i) => {
                let i = i % lines.len();
                let line = lines[i].clone();
                lines.insert(i, line);
            }
            Mutation::SwapLines(a, b) => {
                let (a, b) = (a % lines.len(), b % lines.len());
                lines.swap(a, b);
            }
            Mutation::DeleteBytes(at, n) => {
                let mut bytes = lines.join(&b'\n');
                if !bytes.is_empty() {
                    let start = at % bytes.len();
                    let end = (start + n).min(bytes.len());
                    bytes.drain(start..end);
                }
                lines = split_lines(&bytes);
            }
            Mutation::InsertText(at, s) => {
                let mut bytes = lines.join(&b'\n');
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, s.bytes());
                lines = split_lines(&bytes);
            }
            Mutation::ReplaceByte(at, b) => {
                let mut bytes = lines.join(&b'\n');
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] = *b;
                }
                lines = split_lines(&bytes);
            }
            _ => {}
        }
    }
    String::from_utf8_lossy(&lines.join(&b'\n')).into_owned()
}

fn split_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
}

/// Sequences of TOML punctuation, schema keys and values: far more of these get past the
/// parser into the schema and semantic checks than arbitrary strings do.
fn toml_soup() -> impl Strategy<Value = String> {
    let tokens = prop::sample::select(vec![
        "[",
        "]",
        "[[",
        "]]",
        "{ ",
        " }",
        " = ",
        ", ",
        ".",
        "\"",
        "'",
        "# c",
        "\n",
        "\n",
        "\n",
        " ",
        "upstreams",
        "app",
        "endpoints",
        "[\"127.0.0.1:3000\"]",
        "\"127.0.0.1:0\"",
        "routes",
        "name",
        "\"r\"",
        "match",
        "path_prefix",
        "\"/a/\"",
        "path_regex",
        "\"(\"",
        "host",
        "\"*.x.com\"",
        "methods",
        "[\"GET\"]",
        "upstream",
        "cache",
        "defaults",
        "enabled",
        "true",
        "default_ttl",
        "\"5s\"",
        "\"5 parsecs\"",
        "max_size",
        "\"1KiB\"",
        "server",
        "listen",
        "\"0.0.0.0:8080\"",
        "threads",
        "0",
        "2",
        "-1",
        "1.5",
        "breaker",
        "key_query",
        "[\"a\"]",
        "compression",
        "algorithms",
        "é",
    ]);
    let soup = prop::collection::vec(tokens, 0..120).prop_map(|t| t.concat());
    prop_oneof![soup, toml_lines()]
}

/// Well-formed-ish TOML: headers and `key = value` lines drawn from the schema's names, so that
/// most inputs parse and exercise the schema and semantic checks.
fn toml_lines() -> impl Strategy<Value = String> {
    let header = prop::sample::select(vec![
        "[server]",
        "[admin]",
        "[log]",
        "[upstreams.app]",
        "[upstreams.b]",
        "[upstreams.app.breaker]",
        "[cache]",
        "[defaults]",
        "[defaults.compression]",
        "[defaults.etag]",
        "[defaults.cache]",
        "[[routes]]",
        "[routes.match]",
        "[bogus]",
    ])
    .prop_map(String::from);
    let key = prop::sample::select(vec![
        "listen",
        "threads",
        "grace_period",
        "token",
        "level",
        "format",
        "access_log",
        "endpoints",
        "tls",
        "sni",
        "connect_timeout",
        "read_timeout",
        "max_concurrent",
        "enabled",
        "failure_rate",
        "window",
        "open_for",
        "max_open_for",
        "failure_statuses",
        "max_size",
        "max_object_size",
        "upstream",
        "server_timing",
        "algorithms",
        "min_size",
        "gzip_level",
        "content_types",
        "max_body",
        "default_ttl",
        "override_ttl",
        "stale_on_open",
        "tag_header",
        "key_query",
        "name",
        "match",
        "cache",
        "compression",
        "etag",
        "nonsense",
    ]);
    let value = prop::sample::select(vec![
        "\"127.0.0.1:3000\"",
        "[\"127.0.0.1:3000\"]",
        "[\"127.0.0.1:3000\", \"bad\"]",
        "[]",
        "\"0.0.0.0:8080\"",
        "\"app\"",
        "\"b\"",
        "\"nope\"",
        "\"\"",
        "\"5s\"",
        "\"5 parsecs\"",
        "\"64KiB\"",
        "\"12 parsecs\"",
        "0",
        "1",
        "7",
        "-3",
        "0.5",
        "2.0",
        "true",
        "false",
        "[502, 900]",
        "[\"zstd\", \"lz4\"]",
        "[\"text/*\", \"bad\"]",
        "\"all\"",
        "\"some\"",
        "[\"q\"]",
        "\"X Bad\"",
        "{ path_prefix = \"/a/\" }",
        "{ path_regex = \"(\" }",
        "{ host = \"*.x.com\", methods = [\"GET\", \"\"] }",
        "{ enabled = true, default_ttl = \"1s\" }",
        "{ brotli_level = 12 }",
        "{ bogus = 1 }",
    ]);
    let kv = (key, value).prop_map(|(k, v)| format!("{k} = {v}"));
    let line = prop_oneof![1 => header, 4 => kv];
    prop::collection::vec(line, 0..15).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>()) {
        compile_checked(&text);
    }

    #[test]
    fn toml_like_token_soup_never_panics(text in toml_soup()) {
        compile_checked(&text);
    }

    #[test]
    fn mutated_reference_configs_never_panic(
        mutations in prop::collection::vec(mutation(), 1..6)
    ) {
        let text = mutate(REFERENCE, &mutations);
        compile_checked(&text);
    }
}

#[test]
fn the_unmutated_reference_compiles() {
    // The mutation test starts from a valid file, so what it finds are the mutations' doing.
    assert!(compile(REFERENCE, "fuzz.toml").is_ok());
    assert_eq!(mutate(REFERENCE, &[]), REFERENCE);
}

#[test]
fn errors_at_the_end_of_the_file_are_in_range() {
    for text in [
        "[",
        "[upstreams.app]\nendpoints = [\"127.0.0.1:3000\"",
        "a = \"",
        "é",
        "\n\n\n",
        "x = 1\r\n",
        "[upstreams.app]\nendpoints = [\"127.0.0.1:3000\"]\n[[routes]]",
    ] {
        match compile(text, "fuzz.toml") {
            Ok(_) => panic!("{text:?} should not compile"),
            Err(errors) => assert_located(text, &errors),
        }
    }
}
