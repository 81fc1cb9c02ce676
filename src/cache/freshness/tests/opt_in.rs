//! The route's opt-in conformance keys (issue #21): `store_set_cookie` and the §4.2.2
//! heuristic.

use super::*;

fn heuristic(bp: u32, max: u64) -> RouteCachePolicy {
    RouteCachePolicy {
        heuristic_freshness_bp: bp,
        heuristic_max: s(max),
        ..policy()
    }
}

fn decide_on(policy: &RouteCachePolicy, status: u16, rsp: &str) -> Result<u64, N> {
    lifetime(decide_with(&Method::GET, "", status, rsp, policy))
}

#[test]
fn store_set_cookie_lets_the_response_be_stored_with_its_field() {
    let rsp = "cache-control: max-age=60\nset-cookie: a=1";
    assert_eq!(decide_on(&policy(), 200, rsp), Err(N::SetCookie));
    let on = RouteCachePolicy {
        store_set_cookie: true,
        ..policy()
    };
    assert_eq!(decide_on(&on, 200, rsp), Ok(60));
    // The field is replayed: nothing asks the adapter to strip it.
    let facts = ResponseFacts::from_headers(200, &fields(rsp), &on.targeted_cache_control);
    assert!(facts.fields_to_strip().is_empty());
    // The other prohibitions still apply.
    let private = "cache-control: private, max-age=60\nset-cookie: a=1";
    assert_eq!(decide_on(&on, 200, private), Err(N::Private));
}

/// Date is T0 − 9 (MINUS_9) or the response time T0 + 1; Last-Modified an hour before T0.
#[test]
fn heuristic_freshness_is_a_share_of_the_time_since_last_modified() {
    let lm = format!("last-modified: {MINUS_3600}\ndate: {MINUS_9}");
    // 10% of 3591 s.
    assert_eq!(decide_on(&heuristic(1000, 86_400), 200, &lm), Ok(359));
    // Capped by heuristic_max.
    assert_eq!(decide_on(&heuristic(1000, 60), 200, &lm), Ok(60));
    // Off (the default): no freshness, not stored.
    assert_eq!(decide_on(&policy(), 200, &lm), Err(N::NoFreshness));
    // Without Date, from the response time: 10% of 3601 s.
    let no_date = format!("last-modified: {MINUS_3600}");
    assert_eq!(decide_on(&heuristic(1000, 86_400), 200, &no_date), Ok(360));
    // No Last-Modified, or one after Date: no heuristic, the route's default_ttl stands.
    let with_default = RouteCachePolicy {
        default_ttl: s(5),
        ..heuristic(1000, 86_400)
    };
    assert_eq!(decide_on(&with_default, 200, "etag: \"a\""), Ok(5));
    let future = format!("last-modified: {PLUS_1000}\ndate: {MINUS_9}");
    assert_eq!(decide_on(&with_default, 200, &future), Ok(5));
}

#[test]
fn heuristic_freshness_never_overrides_explicit_freshness_or_no_cache() {
    let p = heuristic(1000, 86_400);
    let lm = format!("last-modified: {MINUS_3600}\ndate: {MINUS_9}");
    assert_eq!(
        decide_on(&p, 200, &format!("{lm}\ncache-control: max-age=7")),
        Ok(7)
    );
    assert_eq!(
        decide_on(&p, 200, &format!("{lm}\nexpires: {PLUS_101}")),
        Ok(110)
    );
    assert_eq!(
        decide_on(&p, 200, &format!("{lm}\ncache-control: no-cache")),
        Ok(0)
    );
}

/// RFC 9110 §15.1: only the heuristically cacheable codes get it.
#[test]
fn heuristic_freshness_only_for_heuristically_cacheable_statuses() {
    let p = heuristic(1000, 86_400);
    let lm = format!("last-modified: {MINUS_3600}\ndate: {MINUS_9}");
    for status in [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] {
        assert_eq!(decide_on(&p, status, &lm), Ok(359), "{status}");
    }
    for status in [201, 302, 307, 403, 500, 503] {
        assert_eq!(decide_on(&p, status, &lm), Err(N::Status), "{status}");
    }
}
