//! Compiled values at library level: route tables over defaults, match order, host patterns.

use http::Method;
use outrider::config::policy::{HostMatch, KeyQueryPolicy};
use outrider::config::{compile, Policy};

use crate::config_check::helpers::{assert_errors, check_text, UPSTREAM};

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
