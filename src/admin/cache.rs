//! `GET /cache` (what the store holds, how well it serves) and `POST /cache/purge`.
//!
//! Purge bodies are JSON with exactly one selector:
//! - `{"key": "http://host/path?query"}`: every variant of that URL. The URL goes through the
//!   same key normalisation as requests (the matching route's `key_query`), so it may be
//!   written the way clients send it. A bare path (`"/path?query"`) purges that path on every
//!   host.
//! - `{"prefix": "/path/"}`: every URL whose path starts with it, on any host; a prefix with a
//!   scheme (`"http://host/path/"`) is matched against the whole URL instead.
//! - `{"tag": "t"}`: every object whose tag header listed `t`.
//! - `{"all": true}`.

use http::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{json, AdminRequest};
use crate::cache::key::primary_key;
use crate::cache::purge_log::PurgeRecord;
use crate::cache::shared::PurgeTarget;
use crate::config::policy::KeyQueryPolicy;
use crate::metrics::shared_cache::{SharedOp, SharedResult};
use crate::proxy::shared_tier::listener::purge_locally;
use crate::proxy::Shared;

/// What a purge request selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Key(String),
    Prefix(String),
    Tag(String),
    All,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeBody {
    key: Option<String>,
    prefix: Option<String>,
    tag: Option<String>,
    all: Option<bool>,
}

/// Parses a purge body; the error is the message the 400 carries.
pub fn parse_purge(body: &[u8]) -> Result<Selector, String> {
    // serde's derive would also read a JSON array as the struct's fields in order.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(
            r#"invalid purge body: a JSON object is expected, e.g. {"key": url}, {"prefix": "/path/"}, {"tag": "t"}, {"all": true}"#
                .to_string(),
        );
    }
    let body: PurgeBody = serde_json::from_slice(body).map_err(|e| {
        format!(r#"invalid purge body: {e}; expected one of {{"key": url}}, {{"prefix": "/path/"}}, {{"tag": "t"}}, {{"all": true}}"#)
    })?;
    let mut selected = Vec::new();
    if let Some(key) = body.key {
        selected.push(Selector::Key(key));
    }
    if let Some(prefix) = body.prefix {
        selected.push(Selector::Prefix(prefix));
    }
    if let Some(tag) = body.tag {
        selected.push(Selector::Tag(tag));
    }
    match body.all {
        Some(true) => selected.push(Selector::All),
        Some(false) => return Err(r#""all" must be true when given"#.to_string()),
        None => {}
    }
    match selected.len() {
        1 => {}
        0 => return Err(r#"a purge body needs one of "key", "prefix", "tag", "all""#.to_string()),
        _ => return Err(r#"give exactly one of "key", "prefix", "tag", "all""#.to_string()),
    }
    let selector = selected.remove(0);
    match &selector {
        Selector::Key(s) | Selector::Prefix(s) | Selector::Tag(s) if s.is_empty() => {
            Err("the selector must not be empty (use {\"all\": true} to purge everything)".into())
        }
        Selector::Tag(t) if t.chars().any(char::is_whitespace) => {
            Err("a tag has no whitespace (tags are space-separated in the tag header)".into())
        }
        _ => Ok(selector),
    }
}

pub(crate) fn purge(shared: &Shared, req: &AdminRequest) -> Response<Vec<u8>> {
    match purge_local(shared, req) {
        Ok((_, local)) => purged(local, None),
        Err(message) => json(StatusCode::BAD_REQUEST, &json!({ "error": message })),
    }
}

/// `POST /cache/purge` with a shared tier: the local purge, then the purge in Redis, which
/// also reaches every other replica through the purge channel.
pub(crate) async fn purge_everywhere(shared: &Shared, req: &AdminRequest) -> Response<Vec<u8>> {
    let (target, local) = match purge_local(shared, req) {
        Ok(done) => done,
        Err(message) => return json(StatusCode::BAD_REQUEST, &json!({ "error": message })),
    };
    let Some(tier) = shared.cache.tier.get() else {
        return purged(local, None);
    };
    let counts = tier.purge(&target).await;
    purged(local, Some(counts.shared))
}

/// The answer: `purged` (the local store's count); with a shared tier also `local` (the
/// same) and `shared` (null when Redis did not answer: the other replicas were not told).
fn purged(local: usize, shared: Option<Option<usize>>) -> Response<Vec<u8>> {
    let body = match shared {
        Some(shared) => json!({ "purged": local, "local": local, "shared": shared }),
        None => json!({ "purged": local }),
    };
    json(StatusCode::OK, &body)
}

/// Parses and applies a purge to the local store; what it selected, and how many objects
/// went. The error is the message a 400 carries.
fn purge_local(shared: &Shared, req: &AdminRequest) -> Result<(PurgeTarget, usize), String> {
    let selector = parse_purge(&req.body)?;
    let target = match &selector {
        Selector::Key(url) => match normalise_url(shared, url)? {
            Target::Url(key) => PurgeTarget::Url(key),
            Target::Path(path) => PurgeTarget::Path(path),
        },
        Selector::Prefix(prefix) => PurgeTarget::Prefix(prefix.clone()),
        Selector::Tag(tag) => PurgeTarget::Tag(tag.clone()),
        Selector::All => PurgeTarget::All,
    };
    let purged = purge_locally(shared.cache, &target);
    log::info!("cache purge {selector:?}: {purged} objects");
    let (kind, value) = match selector {
        Selector::Key(v) => ("key", v),
        Selector::Prefix(v) => ("prefix", v),
        Selector::Tag(v) => ("tag", v),
        Selector::All => ("all", String::new()),
    };
    shared.cache.purges.record(PurgeRecord {
        at: std::time::SystemTime::now(),
        kind,
        value,
        purged,
        received: false,
    });
    Ok((target, purged))
}

/// `GET /cache`'s `recent_purges`: each selector in the shape of the purge body that sent it.
fn recent_purges(shared: &Shared) -> serde_json::Value {
    let purges: Vec<serde_json::Value> = shared
        .cache
        .purges
        .recent()
        .into_iter()
        .map(|p| {
            let selector = match p.kind {
                "all" => json!({ "all": true }),
                kind => json!({ kind: p.value }),
            };
            json!({
                "at": humantime::format_rfc3339_millis(p.at).to_string(),
                "selector": selector,
                "purged": p.purged,
                "from": if p.received { "replica" } else { "admin" },
            })
        })
        .collect();
    serde_json::Value::Array(purges)
}

enum Target {
    Url(String),
    Path(String),
}

/// The stored key of `url`: normalised with the `key_query` of the route it would match, as
/// `proxy::cache` builds request keys.
fn normalise_url(shared: &Shared, url: &str) -> Result<Target, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("invalid key {url:?}: {e}"))?;
    let path = uri.path();
    let active = shared.policy();
    let host = uri.host().unwrap_or("");
    let key_query = active
        .policy
        .route(host, path, &http::Method::GET)
        .and_then(|id| active.policy.route_by_id(id))
        .map_or(KeyQueryPolicy::All, |r| r.cache.key_query.clone());
    let full = primary_key(
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map_or("", |a| a.as_str()),
        path,
        uri.query(),
        &key_query,
    );
    match uri.authority() {
        Some(_) => Ok(Target::Url(full)),
        None if url.starts_with('/') => {
            Ok(Target::Path(crate::cache::key::path_of(&full).to_string()))
        }
        None => Err(format!(
            "invalid key {url:?}: an absolute URL (http://host/path) or a path (/path)"
        )),
    }
}

pub(crate) fn report(shared: &Shared, _req: &AdminRequest) -> Response<Vec<u8>> {
    let stats = shared.cache.store.stats();
    let lookups = shared.cache.lookups();
    let served = lookups.hit + lookups.stale;
    let total = served + lookups.miss + lookups.revalidated + lookups.coalesced;
    let hit_ratio = if total == 0 {
        serde_json::Value::Null
    } else {
        json!((served + lookups.coalesced) as f64 / total as f64)
    };
    json(
        StatusCode::OK,
        &json!({
            "objects": stats.objects,
            "bytes": stats.bytes,
            "max_bytes": stats.max_bytes,
            "hit_ratio": hit_ratio,
            "lookups": {
                "hit": lookups.hit,
                "miss": lookups.miss,
                "stale": lookups.stale,
                "revalidated": lookups.revalidated,
                "coalesced": lookups.coalesced,
                "bypass": lookups.bypass,
            },
            "evictions": stats.evictions,
            "expired": stats.expired,
            "purged": stats.purged,
            "recent_purges": recent_purges(shared),
            "shared": shared_report(shared),
        }),
    )
}

/// The shared tier's state for `GET /cache`: null without one.
fn shared_report(shared: &Shared) -> serde_json::Value {
    let Some(tier) = shared.cache.tier.get() else {
        return serde_json::Value::Null;
    };
    let metrics = &tier.metrics;
    let count = |op, result| metrics.count(op, result);
    json!({
        "url": tier.policy.url.redacted(),
        "key_prefix": tier.policy.key_prefix,
        "up": tier.is_up(),
        "breaker": tier.breaker_state(),
        "subscribed": tier.subscribed.load(std::sync::atomic::Ordering::Relaxed),
        "purge_epoch": tier.known_epoch(),
        "gets": {
            "hit": count(SharedOp::Get, SharedResult::Hit),
            "miss": count(SharedOp::Get, SharedResult::Miss),
            "error": count(SharedOp::Get, SharedResult::Error),
            "timeout": count(SharedOp::Get, SharedResult::Timeout),
        },
        "sets": count(SharedOp::Set, SharedResult::Ok),
        "purges_received": metrics.purges_received.get(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_bodies() {
        let ok = |body: &str| parse_purge(body.as_bytes());
        assert_eq!(
            ok(r#"{"key": "http://a/b"}"#),
            Ok(Selector::Key("http://a/b".into()))
        );
        assert_eq!(
            ok(r#"{"prefix": "/api/"}"#),
            Ok(Selector::Prefix("/api/".into()))
        );
        assert_eq!(
            ok(r#"{"tag": "user-42"}"#),
            Ok(Selector::Tag("user-42".into()))
        );
        assert_eq!(ok(r#"{"all": true}"#), Ok(Selector::All));
        for bad in [
            "",
            "not json",
            "[]",
            "{}",
            r#"{"all": false}"#,
            r#"{"key": "/a", "tag": "t"}"#,
            r#"{"key": ""}"#,
            r#"{"tag": "a b"}"#,
            r#"{"keys": "/a"}"#,
            r#"{"key": 42}"#,
        ] {
            assert!(ok(bad).is_err(), "{bad:?} must be refused");
        }
    }

    proptest::proptest! {
        /// What the `purge_body` fuzz target checks, on random bytes and random JSON objects.
        #[test]
        fn purge_parsing_is_total(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
                                  key in "[a-z]{0,3}", value in ".{0,12}") {
            let json = format!("{{\"{key}\": \"{value}\"}}");
            for input in [bytes.as_slice(), json.as_bytes()] {
                let first = parse_purge(input);
                proptest::prop_assert_eq!(&first, &parse_purge(input));
                match first {
                    Ok(Selector::Key(s)) | Ok(Selector::Prefix(s)) => proptest::prop_assert!(!s.is_empty()),
                    Ok(Selector::Tag(t)) => proptest::prop_assert!(!t.is_empty() && !t.contains(char::is_whitespace)),
                    _ => {}
                }
            }
        }
    }
}
