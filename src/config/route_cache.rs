//! A route's `cache` table: `[defaults.cache]` layered under the route's own, validated.

use std::time::Duration;

use super::compile::{at, Problems};
use super::diagnostics::Seg;
use super::policy::{KeyQueryPolicy, RouteCachePolicy};
use super::schema;

pub(super) fn route_cache(
    d: &schema::RouteCache,
    r: &schema::RouteCache,
    base: &[Seg],
    p: &mut Problems,
) -> RouteCachePolicy {
    let base = at(base, &["cache"]);
    let stale_if_error = r.stale_if_error.or(d.stale_if_error).unwrap_or_default().0;
    let key_query = match r.key_query.clone().or_else(|| d.key_query.clone()) {
        None => KeyQueryPolicy::All,
        Some(schema::KeyQuery::Mode(m)) => {
            match m.as_str() {
                "all" => KeyQueryPolicy::All,
                "none" => KeyQueryPolicy::None,
                other => {
                    p.add(
                    at(&base, &["key_query"]),
                    format!("invalid value {other:?}; \"all\", \"none\" or a list of parameter names"),
                );
                    KeyQueryPolicy::All
                }
            }
        }
        Some(schema::KeyQuery::Allow(mut names)) => {
            names.sort();
            names.dedup();
            KeyQueryPolicy::Allow(names)
        }
    };
    let tag_header = r
        .tag_header
        .clone()
        .or_else(|| d.tag_header.clone())
        .unwrap_or_else(|| "Surrogate-Key".into());
    let tag_header_name = http::HeaderName::from_bytes(tag_header.as_bytes()).ok();
    if tag_header_name.is_none() {
        p.add(
            at(&base, &["tag_header"]),
            format!("{tag_header:?} is not a valid header name"),
        );
    }
    let targeted = r
        .targeted_cache_control
        .clone()
        .or_else(|| d.targeted_cache_control.clone())
        .unwrap_or_else(|| vec!["Outrider-Cache-Control".into(), "CDN-Cache-Control".into()]);
    let mut targeted_names = Vec::with_capacity(targeted.len());
    for (i, h) in targeted.iter().enumerate() {
        match http::HeaderName::from_bytes(h.as_bytes()) {
            Ok(name) => targeted_names.push(name),
            Err(_) => {
                let mut path = at(&base, &["targeted_cache_control"]);
                path.push(Seg::Index(i));
                p.add(path, format!("{h:?} is not a valid header name"));
            }
        }
    }
    RouteCachePolicy {
        enabled: r.enabled.or(d.enabled).unwrap_or(false),
        default_ttl: r.default_ttl.or(d.default_ttl).unwrap_or_default().0,
        override_ttl: r.override_ttl.or(d.override_ttl).and_then(|o| o.0),
        stale_while_revalidate: r
            .stale_while_revalidate
            .or(d.stale_while_revalidate)
            .unwrap_or_default()
            .0,
        stale_if_error,
        cache_authorized: r.cache_authorized.or(d.cache_authorized).unwrap_or(false),
        tag_header_name,
        tag_header,
        targeted_names,
        targeted_cache_control: targeted,
        stale_on_open: r.stale_on_open.or(d.stale_on_open).and_then(|o| o.0),
        key_query,
        store_set_cookie: r.store_set_cookie.or(d.store_set_cookie).unwrap_or(false),
        heuristic_freshness_bp: heuristic_share(d, r, &base, p),
        heuristic_max: r
            .heuristic_max
            .or(d.heuristic_max)
            .map_or(Duration::from_secs(86_400), |m| m.0),
        normalize_vary: r.normalize_vary.or(d.normalize_vary).unwrap_or(false),
    }
}

/// `heuristic_freshness = "10%"` in basis points: a percentage from 0 to 100 with at most two
/// decimals, so that it is exact in basis points.
fn heuristic_share(
    d: &schema::RouteCache,
    r: &schema::RouteCache,
    base: &[Seg],
    p: &mut Problems,
) -> u32 {
    let Some(text) = r
        .heuristic_freshness
        .as_ref()
        .or(d.heuristic_freshness.as_ref())
    else {
        return 0;
    };
    match crate::config::units::percent_basis_points(text) {
        Some(bp) => bp,
        None => {
            p.add(
                at(base, &["heuristic_freshness"]),
                format!("invalid percentage {text:?}; use e.g. \"10%\" (0% to 100%)"),
            );
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::compile;

    /// The names the request path uses are the ones written, parsed once at compile time.
    #[test]
    fn header_names_are_parsed_for_the_request_path() {
        let text = r#"
[upstreams.app]
endpoints = ["127.0.0.1:1"]

[defaults.cache]
enabled = true
targeted_cache_control = ["Outrider-Cache-Control", "CDN-Cache-Control", "X-Mine"]

[[routes]]
name = "tagged"
match = { path_prefix = "/" }
cache = { tag_header = "X-Tags" }
"#;
        let policy = compile(text, "test.toml").expect("valid");
        let cache = &policy.all_routes().next().expect("one route").cache;
        assert_eq!(
            cache.tag_header_name.as_ref().map(|n| n.as_str()),
            Some("x-tags")
        );
        let targeted: Vec<&str> = cache.targeted_names.iter().map(|n| n.as_str()).collect();
        assert_eq!(
            targeted,
            ["outrider-cache-control", "cdn-cache-control", "x-mine"]
        );
    }
}
