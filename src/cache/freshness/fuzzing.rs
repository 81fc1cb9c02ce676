//! The cache semantics' fuzz check: what must hold for any request and response fields.

// A fuzzing model reports a bug by panicking: that is how libFuzzer and proptest see it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use http::header::{CONTENT_LOCATION, LOCATION};

use super::super::key::primary_key;
use super::super::status::{CacheStatus, Fwd};
use super::*;
use crate::config::policy::KeyQueryPolicy;

/// The body of `fuzz/fuzz_targets/cache_control.rs`, here so that `cargo test` runs it on
/// random input too. Not an API.
///
/// Layout: byte 0 picks the method (bits 0-1) and the route policy (bits 2-6: default TTL,
/// override TTL, stale-while-revalidate, stale-if-error, cache_authorized); byte 1 the
/// status; byte 2 the response delay and the ages tried against `hit_acceptable`. The rest is
/// split on `\n` into header lines: each line's first byte picks the field (request or
/// response side), the remaining bytes are its value.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    const STATUSES: [u16; 16] = [
        200, 203, 204, 206, 301, 302, 304, 307, 404, 410, 500, 503, 100, 299, 600, 0,
    ];
    /// `(name, on the request)`.
    const FIELDS: [(&str, bool); 17] = [
        ("cache-control", false),
        ("cache-control", true),
        ("outrider-cache-control", false),
        ("cdn-cache-control", false),
        ("expires", false),
        ("date", false),
        ("age", false),
        ("last-modified", false),
        ("etag", false),
        ("vary", false),
        ("set-cookie", false),
        ("location", false),
        ("content-location", false),
        ("pragma", true),
        ("authorization", true),
        ("host", true),
        (":path", true),
    ];
    let Some((&[knobs, status_byte, time_byte], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let method = match knobs & 0b11 {
        0 => Method::GET,
        1 => Method::HEAD,
        2 => Method::POST,
        _ => Method::DELETE,
    };
    let secs = |on: bool, n: u64| Duration::from_secs(if on { n } else { 0 });
    let policy = RouteCachePolicy {
        enabled: true,
        default_ttl: secs(knobs & 0x04 != 0, 60),
        override_ttl: (knobs & 0x08 != 0).then_some(Duration::from_secs(30)),
        stale_while_revalidate: secs(knobs & 0x10 != 0, 10),
        stale_if_error: secs(knobs & 0x20 != 0, 300),
        cache_authorized: knobs & 0x40 != 0,
        tag_header: String::new(),
        tag_header_name: None,
        targeted_names: Vec::new(),
        targeted_cache_control: vec![
            "Outrider-Cache-Control".to_string(),
            "CDN-Cache-Control".to_string(),
        ],
        stale_on_open: (knobs & 0x80 != 0).then_some(Duration::from_secs(600)),
        key_query: KeyQueryPolicy::All,
        store_set_cookie: false,
        heuristic_freshness_bp: 0,
        heuristic_max: Duration::from_secs(86_400),
        normalize_vary: false,
    };
    let status = if status_byte & 0x80 != 0 {
        u16::from(status_byte & 0x7f) * 5
    } else {
        STATUSES[usize::from(status_byte) % STATUSES.len()]
    };

    let mut req_headers = HeaderMap::new();
    let mut rsp_headers = HeaderMap::new();
    let mut host = "example.com";
    let mut path_and_query = "/";
    for line in rest.split(|&b| b == b'\n') {
        let Some((&selector, value)) = line.split_first() else {
            continue;
        };
        let (name, on_request) = FIELDS[usize::from(selector) % FIELDS.len()];
        if name == "host" || name == ":path" {
            if let Ok(text) = std::str::from_utf8(value) {
                if name == "host" {
                    host = text;
                } else {
                    path_and_query = text;
                }
            }
            continue;
        }
        let Ok(value) = HeaderValue::from_bytes(value) else {
            continue;
        };
        let headers = if on_request {
            &mut req_headers
        } else {
            &mut rsp_headers
        };
        headers.append(HeaderName::from_static(name), value);
    }

    // Parsing is deterministic.
    let names = &policy.targeted_cache_control;
    let cc = CacheControl::from_headers(&rsp_headers);
    assert_eq!(cc, CacheControl::from_headers(&rsp_headers));
    let chosen = targeted(&rsp_headers, names);
    assert_eq!(chosen, targeted(&rsp_headers, names));
    assert!(chosen.as_ref().is_none_or(|(i, _)| *i < names.len()));
    let req = RequestFacts::from_parts(&method, &req_headers);
    let rsp = ResponseFacts::from_headers(status, &rsp_headers, names);
    assert_eq!(
        rsp,
        ResponseFacts::from_headers(status, &rsp_headers, names)
    );
    for d in [
        cc.max_age,
        cc.s_maxage,
        cc.stale_while_revalidate,
        cc.stale_if_error,
    ] {
        assert!(d.is_none_or(|d| d.as_secs() <= MAX_DELTA_SECONDS));
    }

    let bypass = request_bypass(&req, &policy);
    assert_eq!(
        bypass == Some(BypassReason::Method),
        !(method == Method::GET || method == Method::HEAD)
    );

    let request_time = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let times = ExchangeTimes {
        request_time,
        response_time: request_time + Duration::from_secs(u64::from(time_byte & 0x0f)),
    };
    let decision = storability(&req, &rsp, &policy, times);
    assert_eq!(decision, storability(&req, &rsp, &policy, times));
    let effective = rsp.effective_cc();
    match &decision {
        Storability::Store(f) => {
            assert!(matches!(method, Method::GET | Method::HEAD));
            assert!(!req.cc.no_store);
            assert!(ever_stored(status));
            assert!(!effective.no_store || effective.must_understand, "{rsp:?}");
            assert!(!effective.private, "{rsp:?}");
            assert!(!req.authorization || policy.cache_authorized);
            assert!(!rsp.set_cookie || rsp.fields_to_strip().contains(&SET_COOKIE));
            assert_ne!(rsp.vary, Vary::Star);
            assert!(f.lifetime.as_secs() <= MAX_DELTA_SECONDS, "{f:?}");
            assert!(f.initial_age.as_secs() <= MAX_DELTA_SECONDS, "{f:?}");
            if f.always_revalidate {
                assert!(f.lifetime.is_zero() && f.must_revalidate);
            }
            if effective.no_cache || effective.must_revalidate || effective.proxy_revalidate {
                assert!(f.stale_while_revalidate.is_zero() && f.stale_if_error.is_zero());
                assert!(f.stale_on_open.is_zero());
                assert!(f.must_revalidate);
            }
            assert_eq!(f.must_revalidate, rsp.must_revalidate());
            let rt = times.response_time;
            assert!(f.created(rt) <= rt);
            assert!(f.fresh_until(rt) >= f.created(rt));
            assert!(f.expires(rt) >= f.fresh_until(rt));
            assert!(
                rsp.has_validator
                    || f.lifetime > f.initial_age
                    || !f.stale_while_revalidate.is_zero()
                    || !f.stale_if_error.is_zero()
                    || !f.stale_on_open.is_zero()
            );
            if f.must_revalidate {
                assert_eq!(f.stale_on_open, f.stale_if_error);
            } else if let Some(window) = policy.stale_on_open {
                assert_eq!(f.stale_on_open, window);
            }

            let ages = [
                Duration::ZERO,
                f.lifetime,
                f.lifetime.saturating_sub(Duration::from_secs(1)),
                f.lifetime + Duration::from_secs(u64::from(time_byte >> 4)),
            ];
            for age in ages {
                let verdict = hit_acceptable(
                    &req.cc,
                    req.pragma_no_cache,
                    age,
                    f.lifetime,
                    f.must_revalidate,
                );
                assert_eq!(
                    verdict,
                    hit_acceptable(
                        &req.cc,
                        req.pragma_no_cache,
                        age,
                        f.lifetime,
                        f.must_revalidate
                    )
                );
                match verdict {
                    HitVerdict::Fresh => assert!(age < f.lifetime),
                    HitVerdict::StaleAccepted => {
                        assert!(age >= f.lifetime && !f.must_revalidate)
                    }
                    HitVerdict::Stale => assert!(age >= f.lifetime),
                    HitVerdict::RequestRevalidate => {}
                }
                if req.cc.no_cache || req.pragma_no_cache {
                    assert_eq!(verdict, HitVerdict::RequestRevalidate);
                }
            }
        }
        Storability::DontStore(reason) => {
            let status = CacheStatus {
                fwd: Some(Fwd::UriMiss),
                fwd_status: Some(rsp.status),
                detail: Some(reason.as_str().into()),
                ..CacheStatus::default()
            };
            let value = status.to_header_value("outrider");
            assert!(HeaderValue::from_str(&value).is_ok(), "{value}");
        }
    }

    // Invalidation: only unsafe methods, only same-origin targets, request URL first.
    let request_url = format!("http://{host}{path_and_query}");
    let header_text = |name: HeaderName| {
        rsp_headers
            .get(name)
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
    };
    let targets = invalidation_targets(
        &method,
        status,
        &request_url,
        header_text(LOCATION),
        header_text(CONTENT_LOCATION),
    );
    if method.is_safe() || !(200..400).contains(&status) {
        assert!(targets.is_empty());
    } else {
        assert_eq!(targets.first(), Some(&request_url));
        if let Some(base) = UrlParts::parse(&request_url) {
            for target in &targets[1..] {
                let parsed = UrlParts::parse(target).expect("targets are absolute URLs");
                assert!(parsed.same_origin(&base), "{target} vs {request_url}");
            }
        }
    }

    // Keys: deterministic, and normalising twice changes nothing.
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    for rule in [
        KeyQueryPolicy::All,
        KeyQueryPolicy::None,
        KeyQueryPolicy::Allow(vec!["a".into(), "b".into()]),
    ] {
        let key = primary_key("HTTP", host, path, query, &rule);
        assert_eq!(key, primary_key("HTTP", host, path, query, &rule));
        assert!(key.starts_with("http://"));
        let normalized_query = key.split_once('?').map(|(_, q)| q);
        if rule == KeyQueryPolicy::None {
            assert_eq!(normalized_query, None);
        }
        assert_eq!(
            key,
            primary_key("http", host, path, normalized_query, &rule),
            "{path_and_query:?}"
        );
    }
}
