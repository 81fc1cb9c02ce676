//! Error classes: each is reported once, at its `FILE:LINE:COL: key.path`.

use crate::config_check::helpers::{assert_errors, assert_ok, check_text, UPSTREAM};

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
