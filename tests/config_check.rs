//! `outrider check`: the real binary on real files, and the compiled values behind it.
//!
//! Every error test writes a small conf file, runs `outrider check --config FILE`, and asserts
//! the exit status and the exact `FILE:LINE:COL: key.path: ` prefix of each error line. The
//! line and column numbers were counted by hand from the TOML text in each test (1-based,
//! columns in characters), so a regression in error location fails here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use http::Method;
use outrider::config::policy::{HostMatch, KeyQueryPolicy};
use outrider::config::{compile, schema, Policy};

const UPSTREAM: &str = "[upstreams.app]\nendpoints = [\"127.0.0.1:3000\"]\n";

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The binary with a clean environment for what it reads.
fn outrider() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_outrider"));
    cmd.env_remove("OUTRIDER_CONFIG").env_remove("RUST_LOG");
    cmd
}

struct Run {
    /// The path as the binary prints it.
    file: String,
    out: Output,
    // Keeps the temp file alive until the assertions are done.
    _tmp: Option<tempfile::NamedTempFile>,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }
}

fn write_temp(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .prefix("outrider-check-")
        .suffix(".toml")
        .tempfile()
        .expect("temp file");
    f.write_all(text.as_bytes()).expect("write temp file");
    f.flush().unwrap();
    f
}

/// `outrider check --config <tempfile holding text>`.
fn check_text(text: &str) -> Run {
    let tmp = write_temp(text);
    let file = tmp.path().display().to_string();
    let out = outrider()
        .args(["check", "--config", &file])
        .output()
        .expect("run outrider");
    Run {
        file,
        out,
        _tmp: Some(tmp),
    }
}

fn check_path(path: &Path) -> Run {
    let file = path.display().to_string();
    let out = outrider()
        .args(["check", "--config", &file])
        .output()
        .expect("run outrider");
    Run {
        file,
        out,
        _tmp: None,
    }
}

/// One expected error: line, column, key path ("" for syntax errors), a fragment of the message.
type Expect<'a> = (usize, usize, &'a str, &'a str);

/// Asserts exit 1, nothing on stdout, and exactly these error lines (in this order) on stderr,
/// followed by the `N error(s) found` line.
fn assert_errors(run: &Run, expected: &[Expect<'_>]) {
    let stderr = run.stderr();
    assert_eq!(run.code(), Some(1), "exit status; stderr:\n{stderr}");
    assert_eq!(run.stdout(), "", "stdout must be empty on error");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        expected.len() + 1,
        "expected {} error lines plus the count; got:\n{stderr}",
        expected.len()
    );
    for (got, (line, col, key, fragment)) in lines.iter().zip(expected) {
        let prefix = if key.is_empty() {
            format!("{}:{line}:{col}: ", run.file)
        } else {
            format!("{}:{line}:{col}: {key}: ", run.file)
        };
        assert!(
            got.starts_with(&prefix),
            "expected prefix {prefix:?}\n      got line {got:?}\nfull stderr:\n{stderr}"
        );
        assert!(
            got[prefix.len()..].contains(fragment),
            "expected {fragment:?} in the message of {got:?}"
        );
    }
    let n = expected.len();
    let count = format!("{n} error{} found", if n == 1 { "" } else { "s" });
    assert_eq!(lines.last().copied(), Some(count.as_str()), "{stderr}");
}

fn assert_ok(run: &Run) {
    assert_eq!(
        run.code(),
        Some(0),
        "exit status; stderr:\n{}\nstdout:\n{}",
        run.stderr(),
        run.stdout()
    );
    assert_eq!(run.stderr(), "", "stderr must be empty on success");
    let stdout = run.stdout();
    assert_eq!(
        stdout.lines().next(),
        Some(format!("{}: ok", run.file).as_str()),
        "{stdout}"
    );
}

// === error classes ===

#[test]
fn toml_syntax_error_is_located_without_key() {
    // Line 2 is `endpoints = ["127.0.0.1:3000"` (29 characters); the parser wants `]` right
    // after it, at column 30.
    let run = check_text("[upstreams.app]\nendpoints = [\"127.0.0.1:3000\"\n");
    assert_errors(&run, &[(2, 30, "", "unclosed array")]);
}

#[test]
fn several_syntax_errors_are_reported_in_position_order() {
    // The parser finds the missing `=` after `é` (6:2) before the invalid key itself (6:1).
    let run = check_text("[server]\nthreads = 2 3\n\n[log]\nlevel = \"info\"\né\n");
    assert_errors(
        &run,
        &[
            (2, 11, "", "string values must be quoted"),
            (6, 1, "", "invalid unquoted key"),
            (6, 2, "", "key with no value"),
        ],
    );
}

#[test]
fn unknown_top_level_key() {
    let text = format!("{UPSTREAM}\n[logging]\nlevel = \"debug\"\n");
    let run = check_text(&text);
    assert_errors(&run, &[(4, 2, "logging", "unknown field `logging`")]);
}

#[test]
fn unknown_key_in_an_upstream() {
    let text = format!("{UPSTREAM}retries = 3\n");
    let run = check_text(&text);
    assert_errors(
        &run,
        &[(3, 1, "upstreams.app.retries", "unknown field `retries`")],
    );
}

#[test]
fn unknown_key_in_a_route_inline_table() {
    // `match = { path_prefix = "/api/", verb = "GET" }`: `verb` starts at column 34.
    let text = format!(
        "{UPSTREAM}\n[[routes]]\nname = \"api\"\nmatch = {{ path_prefix = \"/api/\", verb = \"GET\" }}\n"
    );
    let run = check_text(&text);
    assert_errors(
        &run,
        &[(6, 34, "routes[0].match.verb", "unknown field `verb`")],
    );
}

#[test]
fn wrong_types() {
    let text = "[server]\n\
                threads = \"two\"\n\
                \n\
                [upstreams.app]\n\
                endpoints = [\"127.0.0.1:3000\"]\n\
                tls = \"yes\"\n\
                connect_timeout = 5\n";
    let run = check_text(text);
    assert_errors(
        &run,
        &[
            (2, 11, "server.threads", "invalid type: string \"two\""),
            (6, 7, "upstreams.app.tls", "invalid type: string \"yes\""),
            // A bare number is no duration: seconds or milliseconds?
            (
                7,
                19,
                "upstreams.app.connect_timeout",
                "invalid type: integer `5`, expected a duration string",
            ),
        ],
    );
}

#[test]
fn bad_durations() {
    // `cache = { enabled = true, default_ttl = "5 parsecs" }`: the value starts at column 41.
    let text = "[upstreams.app]\n\
                endpoints = [\"127.0.0.1:3000\"]\n\
                read_timeout = \"5 parsecs\"\n\
                \n\
                [[routes]]\n\
                name = \"api\"\n\
                cache = { enabled = true, default_ttl = \"5 parsecs\" }\n";
    let run = check_text(text);
    assert_errors(
        &run,
        &[
            (
                3,
                16,
                "upstreams.app.read_timeout",
                "invalid duration \"5 parsecs\"",
            ),
            (
                7,
                41,
                "routes[0].cache.default_ttl",
                "invalid duration \"5 parsecs\"",
            ),
        ],
    );
}

#[test]
fn bad_sizes() {
    let text = format!(
        "{UPSTREAM}\n[cache]\nmax_size = \"12 parsecs\"\n\n[defaults.etag]\nmax_body = \"lots\"\n"
    );
    let run = check_text(&text);
    assert_errors(
        &run,
        &[
            (5, 12, "cache.max_size", "invalid size \"12 parsecs\""),
            (8, 12, "defaults.etag.max_body", "invalid size \"lots\""),
        ],
    );
}

#[test]
fn route_naming_a_missing_upstream() {
    let text = format!(
        "{UPSTREAM}\n[defaults]\nupstream = \"ghost\"\n\n[[routes]]\nname = \"api\"\nupstream = \"nope\"\n"
    );
    let run = check_text(&text);
    assert_errors(
        &run,
        &[
            (
                5,
                12,
                "defaults.upstream",
                "no upstream named \"ghost\" (have: app)",
            ),
            (
                9,
                12,
                "routes[0].upstream",
                "no upstream named \"nope\" (have: app)",
            ),
        ],
    );
}

#[test]
fn duplicate_route_names() {
    let text = format!(
        "{UPSTREAM}\n[[routes]]\nname = \"api\"\nmatch = {{ path_prefix = \"/api/\" }}\n\n\
         [[routes]]\nname = \"api\"\nmatch = {{ path_prefix = \"/v2/\" }}\n"
    );
    let run = check_text(&text);
    assert_errors(
        &run,
        &[(9, 8, "routes[1].name", "duplicate route name \"api\"")],
    );
}

#[test]
fn invalid_regex() {
    // `match = { path_regex = "^/(unclosed" }`: the value starts at column 24.
    let text = format!(
        "{UPSTREAM}\n[[routes]]\nname = \"r\"\nmatch = {{ path_regex = \"^/(unclosed\" }}\n"
    );
    let run = check_text(&text);
    assert_errors(
        &run,
        &[(
            6,
            24,
            "routes[0].match.path_regex",
            "invalid regex \"^/(unclosed\"",
        )],
    );
}

#[test]
fn empty_endpoint_list() {
    let run = check_text("[server]\nthreads = 2\n\n[upstreams.app]\nendpoints = []\n");
    assert_errors(
        &run,
        &[(
            5,
            13,
            "upstreams.app.endpoints",
            "needs at least one \"host:port\" endpoint",
        )],
    );
}

#[test]
fn missing_endpoints_point_at_the_upstream_table() {
    let run = check_text("[server]\nthreads = 2\n\n[upstreams.app]\ntls = false\n");
    assert_errors(
        &run,
        &[(
            4,
            1,
            "upstreams.app.endpoints",
            "needs at least one \"host:port\" endpoint",
        )],
    );
}

#[test]
fn unparsable_endpoint_addresses() {
    // `endpoints = ["127.0.0.1:3000", "localhost", "127.0.0.1:0"]`: the items after the first
    // start at columns 32 and 45.
    let text = "[upstreams.app]\n\
                endpoints = [\"127.0.0.1:3000\", \"localhost\", \"127.0.0.1:0\"]\n";
    let run = check_text(text);
    assert_errors(
        &run,
        &[
            (
                2,
                32,
                "upstreams.app.endpoints[1]",
                "invalid endpoint \"localhost\": expected \"host:port\"",
            ),
            (
                2,
                45,
                "upstreams.app.endpoints[2]",
                "invalid endpoint \"127.0.0.1:0\"",
            ),
        ],
    );
}

#[test]
fn unparsable_listen_addresses() {
    // `listen = ["127.0.0.1:8080", "0.0.0.0"]`: the second item starts at column 29.
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:8080\", \"0.0.0.0\"]\n\n\
         [admin]\nlisten = \"localhost:9901\"\n\n{UPSTREAM}"
    );
    let run = check_text(&text);
    assert_errors(
        &run,
        &[
            (
                2,
                29,
                "server.listen[1]",
                "invalid listen address \"0.0.0.0\"",
            ),
            (
                5,
                10,
                "admin.listen",
                "invalid listen address \"localhost:9901\"",
            ),
        ],
    );
}

/// A token no `Authorization: Bearer` header could carry would lock the operator out of every
/// mutating endpoint: it is refused, and a plain one is accepted.
#[test]
fn admin_tokens_a_header_cannot_carry() {
    for (token, problem) in [
        (" s3cret", "' ' at position 0"),
        ("s3cret ", "' ' at position 6"),
        ("s3 cret", "' ' at position 2"),
        ("s3\\tcret", "'\\t' at position 2"),
        ("s3cr\u{e9}t", "'\u{e9}' at position 4"),
    ] {
        let text = format!("[admin]\ntoken = \"{token}\"\n\n{UPSTREAM}");
        let run = check_text(&text);
        assert_errors(&run, &[(2, 9, "admin.token", problem)]);
    }
    let run = check_text(&format!(
        "[admin]\ntoken = \"Zm9v.YmFy-_~+/=\"\n\n{UPSTREAM}"
    ));
    assert_ok(&run);
}

#[test]
fn routes_without_a_name() {
    let text = format!(
        "{UPSTREAM}\n[[routes]]\nname = \"a\"\n\n[[routes]]\nmatch = {{ path_prefix = \"/b/\" }}\n\n\
         [[routes]]\nname = \" \"\n"
    );
    let run = check_text(&text);
    assert_errors(
        &run,
        &[
            (7, 1, "routes[1]", "every route needs a `name`"),
            (11, 8, "routes[2].name", "must not be empty"),
        ],
    );
}

#[test]
fn several_schema_errors_are_all_reported_in_line_order() {
    let text = "[upstreams.app]\n\
                endpoints = [\"127.0.0.1:3000\"]\n\
                connect_timeout = 5\n\
                \n\
                [log]\n\
                access_log = \"yes\"\n\
                colour = true\n\
                \n\
                [[routes]]\n\
                name = \"x\"\n\
                cache = { default_ttl = \"forever\" }\n";
    let run = check_text(text);
    assert_errors(
        &run,
        &[
            (3, 19, "upstreams.app.connect_timeout", "invalid type"),
            (6, 14, "log.access_log", "invalid type: string \"yes\""),
            (7, 1, "log.colour", "unknown field `colour`"),
            (
                11,
                25,
                "routes[0].cache.default_ttl",
                "invalid duration \"forever\"",
            ),
        ],
    );
}

#[test]
fn several_semantic_errors_are_all_reported_in_line_order() {
    // Validation visits [server] first and [[routes]] last; the report is in file order anyway.
    let text = "[[routes]]\n\
                name = \"r\"\n\
                upstream = \"nope\"\n\
                match = { path_regex = \"(\" }\n\
                \n\
                [upstreams.app]\n\
                endpoints = [\"127.0.0.1:3000\", \"bad\"]\n\
                \n\
                [server]\n\
                listen = \"nope\"\n\
                threads = 0\n";
    let run = check_text(text);
    assert_errors(
        &run,
        &[
            (3, 12, "routes[0].upstream", "no upstream named \"nope\""),
            (4, 24, "routes[0].match.path_regex", "invalid regex \"(\""),
            (
                7,
                32,
                "upstreams.app.endpoints[1]",
                "invalid endpoint \"bad\"",
            ),
            (10, 10, "server.listen", "invalid listen address \"nope\""),
            (11, 11, "server.threads", "must be at least 1"),
        ],
    );
    let lines: Vec<(usize, usize)> = run
        .stderr()
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&run.file)?.strip_prefix(':')?;
            let mut it = rest.splitn(3, ':');
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect();
    assert_eq!(lines.len(), 5);
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
}

#[test]
fn limits_out_of_range_are_located() {
    let text = "[upstreams.app]\n\
                endpoints = [\"127.0.0.1:3000\"]\n\
                \n\
                [limits]\n\
                max_request_line = \"128KiB\"\n\
                max_header_bytes = \"64KiB\"\n\
                max_headers = 300\n\
                body_timeout = \"0s\"\n\
                idle_timeout = \"500ms\"\n";
    let run = check_text(text);
    assert_errors(
        &run,
        &[
            (
                5,
                20,
                "limits.max_request_line",
                "must not exceed limits.max_header_bytes",
            ),
            (7, 15, "limits.max_headers", "between 1 and 256"),
            (8, 16, "limits.body_timeout", "greater than zero"),
            (9, 16, "limits.idle_timeout", "at least 1s"),
        ],
    );
    let above_parser = check_text(
        "[upstreams.app]\nendpoints = [\"127.0.0.1:3000\"]\n[limits]\nmax_header_bytes = \"2MiB\"\n",
    );
    assert_errors(
        &above_parser,
        &[(
            4,
            20,
            "limits.max_header_bytes",
            "above the HTTP parser's own ceiling",
        )],
    );
}

#[test]
fn empty_file_needs_an_upstream() {
    let run = check_text("");
    assert_errors(
        &run,
        &[(
            1,
            1,
            "upstreams",
            "at least one [upstreams.NAME] table is required",
        )],
    );
}

// === valid files ===

#[test]
fn one_upstream_table_is_a_whole_config() {
    let run = check_text("[upstreams.x]\nendpoints = [\"127.0.0.1:3000\"]\n");
    assert_ok(&run);
    let stdout = run.stdout();
    assert!(
        stdout.contains("listen 0.0.0.0:8080 (2 threads), admin 127.0.0.1:9901"),
        "{stdout}"
    );
    assert!(stdout.contains("upstreams (1):"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("x ") && l.contains("127.0.0.1:3000")),
        "{stdout}"
    );
    // No routes: everything goes to the one upstream.
    assert!(stdout.contains("routes (1, in match order):"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("default") && l.contains("-> x")),
        "{stdout}"
    );
}

#[test]
fn reference_config_is_valid() {
    let run = check_path(&repo_file("conf/outrider.toml"));
    assert_ok(&run);
    let stdout = run.stdout();
    assert!(stdout.contains("127.0.0.1:3000"), "{stdout}");
    let routes: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("routes ("))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(routes, ["api", "static", "default"], "{stdout}");
}

#[test]
fn demo_config_is_valid() {
    assert_ok(&check_path(&repo_file("conf/demo.toml")));
}

#[test]
fn missing_file_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let run = check_path(&path);
    assert_errors(&run, &[(1, 1, "", "cannot read: ")]);
}

#[test]
fn outrider_config_env_is_the_fallback_for_check() {
    let good = write_temp(UPSTREAM);
    let good_path = good.path().display().to_string();
    let out = outrider()
        .arg("check")
        .env("OUTRIDER_CONFIG", good.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().next(),
        Some(format!("{good_path}: ok").as_str())
    );

    // The env var names the file the errors are reported against.
    let bad = write_temp("[upstreams.app]\nendpoints = []\n");
    let bad_path = bad.path().display().to_string();
    let out = outrider()
        .arg("check")
        .env("OUTRIDER_CONFIG", bad.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!("{bad_path}:2:13: upstreams.app.endpoints: ")),
        "{stderr}"
    );

    // --config wins over the env var.
    let out = outrider()
        .args(["check", "--config", &good_path])
        .env("OUTRIDER_CONFIG", bad.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// === the reference config documents every key, at its default ===

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap()
}

/// Keys of a serialized schema section (`None`s included, as JSON nulls).
fn json_keys<T: serde::Serialize>(v: &T) -> Vec<String> {
    let mut keys: Vec<String> = json(v)
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn toml_keys(t: &toml::Table, path: &[&str]) -> Vec<String> {
    let mut v = t;
    for p in path {
        v = v[*p]
            .as_table()
            .unwrap_or_else(|| panic!("[{}] is a table", path.join(".")));
    }
    let mut keys: Vec<String> = v.keys().cloned().collect();
    keys.sort();
    keys
}

#[test]
fn reference_config_lists_every_key_of_the_schema() {
    let text = std::fs::read_to_string(repo_file("conf/outrider.toml")).unwrap();
    let file: toml::Table = text.parse().unwrap();
    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (vec![], json_keys(&schema::File::default())),
        (vec!["server"], json_keys(&schema::Server::default())),
        (vec!["admin"], json_keys(&schema::Admin::default())),
        (vec!["log"], json_keys(&schema::Log::default())),
        (
            vec!["upstreams", "app"],
            json_keys(&schema::Upstream::default()),
        ),
        (
            vec!["upstreams", "app", "breaker"],
            json_keys(&schema::Breaker::default()),
        ),
        (vec!["cache"], json_keys(&schema::CacheStore::default())),
        (vec!["defaults"], json_keys(&schema::Defaults::default())),
        (
            vec!["defaults", "compression"],
            json_keys(&schema::Compression::default()),
        ),
        (
            vec!["defaults", "etag"],
            json_keys(&schema::Etag::default()),
        ),
        (
            vec!["defaults", "cache"],
            json_keys(&schema::RouteCache::default()),
        ),
    ];
    for (path, expected) in cases {
        assert_eq!(
            toml_keys(&file, &path),
            expected,
            "keys of [{}]",
            path.join(".")
        );
    }
    // Across the example routes, every route key and every match key is shown.
    let routes = file["routes"].as_array().unwrap();
    let mut route_keys: Vec<String> = routes
        .iter()
        .flat_map(|r| r.as_table().unwrap().keys().cloned())
        .collect();
    route_keys.sort();
    route_keys.dedup();
    assert_eq!(route_keys, json_keys(&schema::Route::default()));
    let mut match_keys: Vec<String> = routes
        .iter()
        .flat_map(|r| r["match"].as_table().unwrap().keys().cloned())
        .collect();
    match_keys.sort();
    match_keys.dedup();
    assert_eq!(match_keys, json_keys(&schema::Match::default()));
}

/// The reference is the documentation: every key outside the example routes says what it
/// does on its own line, so a key added to the schema without a word fails here (and the test
/// above fails when it is missing altogether).
#[test]
fn reference_config_documents_every_key() {
    let text = std::fs::read_to_string(repo_file("conf/outrider.toml")).unwrap();
    let mut table = String::new();
    let mut undocumented = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let mut entry = line.trim().to_string();
        if entry.starts_with('[') {
            table = entry;
            continue;
        }
        // A list written over several lines carries its comment on the last one.
        while entry.matches('[').count() > entry.matches(']').count() {
            match lines.next() {
                Some((_, more)) => entry.push_str(more),
                None => break,
            }
        }
        let is_key = entry
            .split_once('=')
            .is_some_and(|(k, _)| !k.trim().is_empty() && !k.contains('#') && !k.contains('"'));
        if is_key && table != "[[routes]]" && !entry.contains(" # ") {
            undocumented.push(format!("{}: {entry}", n + 1));
        }
    }
    assert!(
        undocumented.is_empty(),
        "keys without a comment in conf/outrider.toml:\n{}",
        undocumented.join("\n")
    );
}

#[test]
fn reference_config_values_are_the_defaults() {
    let reference = compile(
        &std::fs::read_to_string(repo_file("conf/outrider.toml")).unwrap(),
        "conf/outrider.toml",
    )
    .unwrap();
    // The same file with every key left out.
    let minimal = compile(&format!("{UPSTREAM}[defaults]\nupstream = \"app\"\n"), "m").unwrap();
    assert_eq!(json(&reference.server), json(&minimal.server));
    assert_eq!(json(&reference.admin), json(&minimal.admin));
    assert_eq!(reference.admin.token, minimal.admin.token);
    assert_eq!(json(&reference.log), json(&minimal.log));
    assert_eq!(json(&reference.cache_store), json(&minimal.cache_store));
    assert_eq!(json(&reference.upstreams), json(&minimal.upstreams));
    // The fallback route is built from [defaults] alone.
    let fallback = |p: &Policy| json(p.all_routes().last().unwrap());
    assert_eq!(fallback(&reference), fallback(&minimal));
}

// === compiled values (library level) ===

fn policy(text: &str) -> Policy {
    compile(text, "test.toml").unwrap_or_else(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        panic!("config errors:\n{}", lines.join("\n"))
    })
}

#[test]
fn route_tables_override_defaults_key_by_key() {
    let p = policy(&format!(
        r#"{UPSTREAM}
[defaults]
server_timing = true

[defaults.compression]
algorithms = ["gzip"]
gzip_level = 3
min_size = "2KiB"

[defaults.etag]
generate = false

[defaults.cache]
enabled = true
default_ttl = "30s"
stale_if_error = "1m"
key_query = "none"

[[routes]]
name = "tuned"
server_timing = false
compression = {{ brotli_level = 9, gzip_level = 8 }}
etag = {{ max_body = "4MiB" }}
cache = {{ default_ttl = "5s", key_query = ["page", "id", "page"] }}

[[routes]]
name = "plain"
"#
    ));
    let tuned = p.route_by_id(0).unwrap();
    assert_eq!(&*tuned.name, "tuned");
    assert!(!tuned.server_timing);
    // Overridden by the route.
    assert_eq!(tuned.compression.brotli_level, 9);
    assert_eq!(tuned.compression.gzip_level, 8);
    assert_eq!(tuned.etag.max_body, 4 * 1024 * 1024);
    assert_eq!(tuned.cache.default_ttl.as_secs(), 5);
    assert_eq!(
        tuned.cache.key_query,
        KeyQueryPolicy::Allow(vec!["id".into(), "page".into()])
    );
    // Left out by the route: [defaults], then the built-in default.
    assert_eq!(
        serde_json::to_value(&tuned.compression.algorithms).unwrap(),
        serde_json::json!(["gzip"])
    );
    assert_eq!(tuned.compression.min_size, 2048);
    assert_eq!(tuned.compression.zstd_level, 3);
    assert!(tuned.compression.enabled);
    assert!(!tuned.etag.generate);
    assert!(tuned.cache.enabled);
    assert_eq!(tuned.cache.stale_if_error.as_secs(), 60);
    // stale_on_open unset: each stored response's own stale-if-error window applies.
    assert_eq!(tuned.cache.stale_on_open, None);
    assert_eq!(tuned.cache.tag_header, "Surrogate-Key");

    // A route with no tables is [defaults] over the built-ins.
    let plain = p.route_by_id(1).unwrap();
    assert_eq!(&*plain.name, "plain");
    assert!(plain.server_timing);
    assert_eq!(plain.compression.gzip_level, 3);
    assert_eq!(plain.compression.brotli_level, 4);
    assert_eq!(plain.etag.max_body, 1024 * 1024);
    assert_eq!(plain.cache.default_ttl.as_secs(), 30);
    assert_eq!(plain.cache.key_query, KeyQueryPolicy::None);
    // Both routes fall back on the only upstream; no explicit [defaults] upstream, so no
    // fallback route.
    assert_eq!(p.upstream_of(plain).name.as_ref(), "app");
    assert_eq!(p.all_routes().count(), 2);
}

#[test]
fn routes_match_in_file_order_then_the_fallback() {
    let p = policy(&format!(
        r#"{UPSTREAM}
[upstreams.other]
endpoints = ["127.0.0.1:3001"]

[defaults]
upstream = "app"

[[routes]]
name = "writes"
match = {{ path_prefix = "/api/", methods = ["post", "PUT"] }}
upstream = "other"

[[routes]]
name = "api"
match = {{ path_prefix = "/api/" }}

[[routes]]
name = "v2"
match = {{ path_prefix = "/api/v2/" }}

[[routes]]
name = "versioned"
match = {{ path_regex = "^/v[0-9]+/" }}
"#
    ));
    let route = |path: &str, method: Method| p.route("any.host", path, &method);
    assert_eq!(route("/api/x", Method::POST), Some(0));
    assert_eq!(route("/api/x", Method::PUT), Some(0));
    assert_eq!(route("/api/x", Method::GET), Some(1));
    // Shadowed by the earlier, broader "api".
    assert_eq!(route("/api/v2/x", Method::GET), Some(1));
    assert_eq!(route("/v3/x", Method::GET), Some(3));
    assert_eq!(route("/vx/x", Method::GET), Some(4));
    assert_eq!(route("/", Method::DELETE), Some(4));
    let fallback = p.route_by_id(4).unwrap();
    assert_eq!(&*fallback.name, "default");
    assert_eq!(p.upstream_of(fallback).name.as_ref(), "app");
    assert_eq!(
        p.upstream_of(p.route_by_id(0).unwrap()).name.as_ref(),
        "other"
    );
}

#[test]
fn with_routes_and_no_explicit_default_upstream_unmatched_is_none() {
    let p = policy(&format!(
        "{UPSTREAM}\n[[routes]]\nname = \"api\"\nmatch = {{ path_prefix = \"/api/\" }}\n"
    ));
    assert_eq!(p.route("h", "/api/a", &Method::GET), Some(0));
    assert_eq!(p.route("h", "/other", &Method::GET), None);
    // And without routes, everything goes to the only upstream.
    let p = policy(UPSTREAM);
    assert_eq!(p.route("h", "/other", &Method::PATCH), Some(0));
    assert_eq!(&*p.route_by_id(0).unwrap().name, "default");
}

#[test]
fn host_wildcards_match_names_below_the_domain() {
    let p = policy(&format!(
        r#"{UPSTREAM}
[[routes]]
name = "sub"
match = {{ host = "*.Example.com" }}

[[routes]]
name = "apex"
match = {{ host = "example.com", path_prefix = "/" }}
"#
    ));
    assert_eq!(
        p.route_by_id(0).unwrap().matcher.host,
        Some(HostMatch::Suffix(".example.com".into()))
    );
    let get = |host: &str| p.route(host, "/x", &Method::GET);
    assert_eq!(get("api.example.com"), Some(0));
    assert_eq!(get("a.b.EXAMPLE.com"), Some(0));
    assert_eq!(get("example.com"), Some(1));
    assert_eq!(get("EXAMPLE.COM"), Some(1));
    assert_eq!(get("badexample.com"), None);
    assert_eq!(get("example.com.evil"), None);
}

#[test]
fn invalid_host_pattern_is_an_error() {
    let errors = compile(
        &format!("{UPSTREAM}[[routes]]\nname = \"h\"\nmatch = {{ host = \"a.*.com\" }}\n"),
        "h.toml",
    )
    .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert_eq!(
        (e.line, e.column, e.key.as_str()),
        (5, 18, "routes[0].match.host")
    );
    assert!(
        e.to_string()
            .starts_with("h.toml:5:18: routes[0].match.host: invalid host pattern"),
        "{e}"
    );
}

/// Schema errors (types, unknown keys) and cross-section errors (references, uniqueness) come
/// in one report; a cross-section complaint about a key that already has a schema error is not
/// repeated.
#[test]
fn schema_and_cross_section_errors_are_reported_together() {
    let text = format!(
        "{UPSTREAM}connect_timeout = \"5 parsecs\"\n\n[[routes]]\nname = \"a\"\nupstream = \"nope\"\n\n[[routes]]\nname = 7\n"
    );
    let run = check_text(&text);
    assert_errors(
        &run,
        &[
            (
                3,
                19,
                "upstreams.app.connect_timeout",
                "invalid duration \"5 parsecs\"",
            ),
            (7, 12, "routes[0].upstream", "no upstream named \"nope\""),
            (10, 8, "routes[1].name", "invalid type"),
        ],
    );
}
