//! Issue #21's config rules: the breaker's default `max_open_for` adapts to a longer
//! `open_for`.

use std::time::Duration;

use outrider::config::{compile, Policy};

use crate::helpers::{assert_errors, check_text, UPSTREAM};

fn policy(text: &str) -> Policy {
    compile(text, "test.toml").unwrap_or_else(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        panic!("config errors:\n{}", lines.join("\n"))
    })
}

/// `open_for` above the default cap, with no `max_open_for` written: valid, and the cap is
/// `open_for` itself.
#[test]
fn a_long_open_for_without_max_open_for_is_valid() {
    let p = policy(&format!(
        "{UPSTREAM}\n[upstreams.app.breaker]\nopen_for = \"10m\"\n"
    ));
    let breaker = &p.upstreams[0].breaker;
    assert_eq!(breaker.open_for, Duration::from_secs(600));
    assert_eq!(breaker.max_open_for, Duration::from_secs(600));

    let p = policy(UPSTREAM);
    assert_eq!(
        p.upstreams[0].breaker.max_open_for,
        Duration::from_secs(300)
    );
}

/// A `max_open_for` the user wrote below `open_for` is a contradiction, reported at the key.
#[test]
fn an_explicit_max_open_for_below_open_for_is_an_error() {
    let text =
        format!("{UPSTREAM}\n[upstreams.app.breaker]\nopen_for = \"10m\"\nmax_open_for = \"5m\"\n");
    let run = check_text(&text);
    assert_errors(
        &run,
        &[(
            6,
            16,
            "upstreams.app.breaker.max_open_for",
            "must be at least open_for",
        )],
    );
}
