//! Issue #21's config rules: the breaker's default `max_open_for` adapts to a longer
//! `open_for`, and the cache's opt-in conformance keys are validated like every key.

use std::time::Duration;

use outrider::config::{compile, Policy};

use crate::config_check::helpers::{assert_errors, check_text, UPSTREAM};

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

/// The cache's opt-in keys compile to their policy values, off by default.
#[test]
fn cache_conformance_keys_compile() {
    let p = policy(&format!(
        "{UPSTREAM}\n[[routes]]\nname = \"r\"\n\
         cache = {{ enabled = true, store_set_cookie = true, heuristic_freshness = \"12.5%\", \
         heuristic_max = \"2h\", normalize_vary = true }}\n"
    ));
    let route = p.all_routes().next().expect("the route");
    let cache = &route.cache;
    assert!(cache.store_set_cookie && cache.normalize_vary);
    assert_eq!(cache.heuristic_freshness_bp, 1250);
    assert_eq!(cache.heuristic_max, Duration::from_secs(7200));

    let p = policy(&format!("{UPSTREAM}\n[[routes]]\nname = \"r\"\n"));
    let route = p.all_routes().next().expect("the route");
    let cache = &route.cache;
    assert!(!cache.store_set_cookie && !cache.normalize_vary);
    assert_eq!(cache.heuristic_freshness_bp, 0);
    assert_eq!(cache.heuristic_max, Duration::from_secs(86_400));
}

/// A bad percentage, duration or type is reported at the value, like every key.
#[test]
fn cache_conformance_keys_are_validated_with_their_position() {
    // `cache = { heuristic_freshness = "ten", heuristic_max = "soon", normalize_vary = 1 }`
    let text = format!(
        "{UPSTREAM}\n[[routes]]\nname = \"r\"\n\
         cache = {{ heuristic_freshness = \"ten\", heuristic_max = \"soon\", normalize_vary = 1 }}\n"
    );
    let run = check_text(&text);
    assert_errors(
        &run,
        &[
            (
                6,
                33,
                "routes[0].cache.heuristic_freshness",
                "invalid percentage \"ten\"",
            ),
            (
                6,
                56,
                "routes[0].cache.heuristic_max",
                "invalid duration \"soon\"",
            ),
            (6, 81, "routes[0].cache.normalize_vary", "invalid type"),
        ],
    );
    let text = format!(
        "{UPSTREAM}\n[[routes]]\nname = \"r\"\ncache = {{ heuristic_freshness = \"101%\" }}\n"
    );
    let run = check_text(&text);
    assert_errors(
        &run,
        &[(
            6,
            33,
            "routes[0].cache.heuristic_freshness",
            "invalid percentage \"101%\"",
        )],
    );
}
