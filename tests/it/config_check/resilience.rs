//! Issue 22's keys: `rate_limit` (route and `[defaults]`), `deadline`, `[upstreams.X.retry]`,
//! `[limits] header_timeout`, `[upstreams.X.health_check]`, `[admin] readiness_upstreams`.

use crate::config_check::helpers::{assert_errors, assert_ok, check_text, UPSTREAM};

#[test]
fn a_rate_limit_is_valid_on_a_route_and_under_defaults() {
    let text = format!(
        "{UPSTREAM}\n[defaults]\nrate_limit = {{ requests = 10, per = \"1m\" }}\n\n\
         [[routes]]\nname = \"api\"\nrate_limit = {{ burst = 20, key = \"header:X-Api-Key\" }}\n"
    );
    assert_ok(&check_text(&text));
}

#[test]
fn deadline_is_a_duration_under_defaults_and_on_routes() {
    let text = format!(
        "{UPSTREAM}\n[defaults]\ndeadline = \"2s\"\n\n[[routes]]\nname = \"api\"\ndeadline = \"0s\"\n"
    );
    assert_ok(&check_text(&text));
    // Line 5: `deadline = "soon"`: the value at column 12.
    let text = format!("{UPSTREAM}\n[defaults]\ndeadline = \"soon\"\n");
    assert_errors(&check_text(&text), &[(5, 12, "defaults.deadline", "")]);
}

#[test]
fn rate_limit_errors_are_located_at_their_key() {
    // Line 6: `rate_limit = { requests = 5, per = "500ms", burst = 0, key = "cookie:x" }`;
    // semantic errors point at the value: `per`'s at column 36, `burst`'s at 53, `key`'s at 62.
    let text = format!(
        "{UPSTREAM}\n[[routes]]\nname = \"api\"\n\
         rate_limit = {{ requests = 5, per = \"500ms\", burst = 0, key = \"cookie:x\" }}\n"
    );
    let run = check_text(&text);
    assert_errors(
        &run,
        &[
            (6, 36, "routes[0].rate_limit.per", "whole number of seconds"),
            (6, 53, "routes[0].rate_limit.burst", "at least 1"),
            (
                6,
                62,
                "routes[0].rate_limit.key",
                "\"client-ip\" or \"header:NAME\"",
            ),
        ],
    );
}

#[test]
fn rate_limit_unknown_keys_and_bad_header_names_are_errors() {
    // Line 5: `rate_limit = { requests = 5, window = "1s" }`: `window` at column 30.
    let text =
        format!("{UPSTREAM}\n[defaults]\nrate_limit = {{ requests = 5, window = \"1s\" }}\n");
    assert_errors(
        &check_text(&text),
        &[(
            5,
            30,
            "defaults.rate_limit.window",
            "unknown field `window`",
        )],
    );
    // Line 5: `rate_limit = { requests = 5, key = "header:bad name" }`: its value at column 36.
    let text = format!(
        "{UPSTREAM}\n[defaults]\nrate_limit = {{ requests = 5, key = \"header:bad name\" }}\n"
    );
    assert_errors(
        &check_text(&text),
        &[(5, 36, "defaults.rate_limit.key", "invalid key")],
    );
}

#[test]
fn retry_is_validated_key_by_key() {
    let ok = format!(
        "{UPSTREAM}\n[upstreams.app.retry]\nattempts = 3\non = [\"connect-failure\", \"reset\", \"timeout\", \"502\", \"503\", \"504\"]\n\
         idempotent_only = false\nbackoff = \"25ms\"\nbudget = \"20%\"\n"
    );
    assert_ok(&check_text(&ok));
    // Lines 5-7: `attempts = 0` (value at column 12), `on = ["reset", "404"]` (the second item
    // at column 16), `budget = "lots"` (value at column 10).
    let text = format!(
        "{UPSTREAM}\n[upstreams.app.retry]\nattempts = 0\non = [\"reset\", \"404\"]\nbudget = \"lots\"\n"
    );
    assert_errors(
        &check_text(&text),
        &[
            (5, 12, "upstreams.app.retry.attempts", "must be 1-10"),
            (6, 16, "upstreams.app.retry.on[1]", "unknown \"404\""),
            (7, 10, "upstreams.app.retry.budget", "invalid percentage"),
        ],
    );
    // Line 5: `retries = 3` is not a key of the table.
    let text = format!("{UPSTREAM}\n[upstreams.app.retry]\nretries = 3\n");
    assert_errors(
        &check_text(&text),
        &[(
            5,
            1,
            "upstreams.app.retry.retries",
            "unknown field `retries`",
        )],
    );
}

#[test]
fn header_timeout_must_be_positive() {
    assert_ok(&check_text(&format!(
        "{UPSTREAM}\n[limits]\nheader_timeout = \"2s\"\n"
    )));
    // Line 5: `header_timeout = "0s"`: the value at column 18.
    let text = format!("{UPSTREAM}\n[limits]\nheader_timeout = \"0s\"\n");
    assert_errors(
        &check_text(&text),
        &[(5, 18, "limits.header_timeout", "greater than zero")],
    );
}

#[test]
fn health_check_and_readiness_upstreams_are_validated() {
    let ok = format!(
        "[admin]\nreadiness_upstreams = [\"app\"]\n\n{UPSTREAM}\n[upstreams.app.health_check]\n\
         path = \"/healthz\"\ninterval = \"5s\"\ntimeout = \"1s\"\nhealthy_threshold = 2\n\
         unhealthy_threshold = 3\nexpect_status = [200, 204]\n"
    );
    assert_ok(&check_text(&ok));
    // Line 2: `readiness_upstreams = ["api"]`: the item at column 24. Lines 7-10 of the
    // health check: `path = "healthz"` (value at 8), `timeout = "10s"` (at 11, above the
    // interval), `unhealthy_threshold = 0` (at 23), `expect_status = [200, 999]` (999 at 23).
    let text = format!(
        "[admin]\nreadiness_upstreams = [\"api\"]\n\n{UPSTREAM}\n[upstreams.app.health_check]\n\
         path = \"healthz\"\ntimeout = \"10s\"\nunhealthy_threshold = 0\nexpect_status = [200, 999]\n"
    );
    assert_errors(
        &check_text(&text),
        &[
            (
                2,
                24,
                "admin.readiness_upstreams[0]",
                "no upstream named \"api\"",
            ),
            (
                8,
                8,
                "upstreams.app.health_check.path",
                "must start with '/'",
            ),
            (
                9,
                11,
                "upstreams.app.health_check.timeout",
                "must not exceed interval",
            ),
            (
                10,
                23,
                "upstreams.app.health_check.unhealthy_threshold",
                "at least 1",
            ),
            (
                11,
                23,
                "upstreams.app.health_check.expect_status[1]",
                "not an HTTP status",
            ),
        ],
    );
}
