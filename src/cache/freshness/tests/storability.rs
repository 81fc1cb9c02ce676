//! What is stored and what bypasses the cache: the request side, the response's directives
//! and fields, Authorization, Cookie.

use super::*;

/// §3, §5.2.1: the request's side. Each row: method, request fields, decision for a
/// `200` with `max-age=60`.
#[test]
fn storability_by_request() {
    let rows: &[(Method, &str, Result<u64, N>)] = &[
        (Method::GET, "", Ok(60)),
        (Method::HEAD, "", Ok(60)),
        // §3: only methods whose responses this cache stores.
        (Method::POST, "", Err(N::Method)),
        (Method::OPTIONS, "", Err(N::Method)),
        // §5.2.1.5.
        (
            Method::GET,
            "cache-control: no-store",
            Err(N::RequestNoStore),
        ),
        (
            Method::GET,
            "cache-control: No-Store, max-age=5",
            Err(N::RequestNoStore),
        ),
        // Request no-cache does not affect storing.
        (Method::GET, "cache-control: no-cache", Ok(60)),
        // §3.5: Authorization on a route without cache_authorized.
        (
            Method::GET,
            "authorization: Bearer x",
            Err(N::Authorization),
        ),
    ];
    for (method, req, expected) in rows {
        let got = decide_with(method, req, 200, "cache-control: max-age=60", &policy());
        assert_eq!(lifetime(got), *expected, "{method} {req:?}");
    }
}

/// §3, §5.2.2: the response's directives. Each row: status, Cache-Control, decision for
/// a plain GET.
#[test]
fn storability_by_response_directives() {
    let rows: &[(u16, &str, Result<u64, N>)] = &[
        (200, "max-age=60", Ok(60)),
        // §5.2.2.5: no-store, on any line.
        (200, "max-age=60, no-store", Err(N::NoStore)),
        (200, "max-age=60\ncache-control: NO-STORE", Err(N::NoStore)),
        // §5.2.2.3: must-understand lets a status this cache implements through no-store.
        (200, "max-age=60, no-store, must-understand", Ok(60)),
        (
            299,
            "max-age=60, no-store, must-understand",
            Err(N::MustUnderstand),
        ),
        (299, "max-age=60, must-understand", Err(N::MustUnderstand)),
        // §5.2.2.7: private; qualified forms store the rest.
        (200, "max-age=60, private", Err(N::Private)),
        (200, "max-age=60, private=\"x-user\"", Ok(60)),
        (200, "max-age=60, private=\"\"", Err(N::Private)),
        (200, "max-age=60, private=\"bad name\"", Err(N::Private)),
        // Status codes: 206, 304, 1xx and out of range never.
        (206, "max-age=60", Err(N::Status)),
        (304, "max-age=60", Err(N::Status)),
        (100, "max-age=60", Err(N::Status)),
        (600, "max-age=60", Err(N::Status)),
        // Others than RFC 9110 §15.1's list need explicit freshness; public is not enough.
        (302, "max-age=60", Ok(60)),
        (503, "s-maxage=5", Ok(5)),
        (302, "", Err(N::Status)),
        (302, "public", Err(N::Status)),
        (500, "no-cache", Err(N::Status)),
        // Heuristic statuses without freshness and without a route default.
        (404, "", Err(N::NoFreshness)),
        (200, "public", Err(N::NoFreshness)),
    ];
    for (status, cc, expected) in rows {
        let got = decide(*status, &format!("cache-control: {cc}"));
        assert_eq!(lifetime(got), *expected, "{status} {cc:?}");
    }
}

/// Set-Cookie and Vary. Each row: response fields, decision for a plain GET.
#[test]
fn storability_by_response_fields() {
    let rows: &[(&str, Result<u64, N>)] = &[
        // A shared cache never replays a cookie the origin did not mark private.
        (
            "cache-control: max-age=60\nset-cookie: a=1",
            Err(N::SetCookie),
        ),
        (
            "cache-control: max-age=60, private=\"Set-Cookie\"\nset-cookie: a=1",
            Ok(60),
        ),
        (
            "cache-control: max-age=60, no-cache=\"set-cookie\"\nset-cookie: a=1",
            Ok(60),
        ),
        (
            "cache-control: max-age=60, private=\"x-a\"\nset-cookie: a=1",
            Err(N::SetCookie),
        ),
        // §4.1: Vary: * never matches; neither does a Vary we cannot read.
        (
            "cache-control: max-age=60\nvary: accept, *",
            Err(N::VaryStar),
        ),
        (
            "cache-control: max-age=60\nvary: accept\nvary: *",
            Err(N::VaryStar),
        ),
        ("cache-control: max-age=60\nvary: a b", Err(N::VaryStar)),
        ("cache-control: max-age=60\nvary: Accept-Encoding", Ok(60)),
    ];
    for (rsp, expected) in rows {
        assert_eq!(lifetime(decide(200, rsp)), *expected, "{rsp:?}");
    }
}

/// §3.5: with the route's permission, an authorized response needs the response's too.
#[test]
fn authorization_with_cache_authorized() {
    let allowed = RouteCachePolicy {
        cache_authorized: true,
        ..policy()
    };
    let rows: &[(&str, Result<u64, N>)] = &[
        ("max-age=60", Err(N::Authorization)),
        ("public, max-age=60", Ok(60)),
        ("s-maxage=60", Ok(60)),
        ("must-revalidate, max-age=60", Ok(60)),
    ];
    for (cc, expected) in rows {
        let rsp = format!("cache-control: {cc}");
        let got = decide_with(&Method::GET, "authorization: x", 200, &rsp, &allowed);
        assert_eq!(lifetime(got), *expected, "{cc}");
    }
}

/// A response to a request with `Cookie` is shared only when the origin says so.
#[test]
fn cookie_requests_need_an_explicitly_shared_response() {
    let targeted = RouteCachePolicy {
        targeted_cache_control: vec!["cdn-cache-control".to_string()],
        ..policy()
    };
    let rows: &[(&str, &RouteCachePolicy, Result<u64, N>)] = &[
        ("cache-control: max-age=60", &policy(), Err(N::Cookie)),
        ("cache-control: public, max-age=60", &policy(), Ok(60)),
        ("cache-control: s-maxage=60", &policy(), Ok(60)),
        ("cache-control: max-age=60\nvary: Cookie", &policy(), Ok(60)),
        (
            "cache-control: max-age=60\nvary: accept, cookie",
            &policy(),
            Ok(60),
        ),
        (
            "cache-control: max-age=60\nvary: accept",
            &policy(),
            Err(N::Cookie),
        ),
        ("cdn-cache-control: max-age=60", &targeted, Ok(60)),
        (
            "cache-control: must-revalidate, max-age=60",
            &policy(),
            Err(N::Cookie),
        ),
        (
            "cache-control: private, max-age=60",
            &policy(),
            Err(N::Private),
        ),
    ];
    for (rsp, policy, expected) in rows {
        let got = decide_with(&Method::GET, "cookie: sid=1", 200, rsp, policy);
        assert_eq!(lifetime(got), *expected, "{rsp}");
    }
    // Without a cookie the same response is stored.
    assert_eq!(lifetime(decide(200, "cache-control: max-age=60")), Ok(60));
    assert_eq!(N::Cookie.as_str(), "cookie");
}

#[test]
fn bypass_rules() {
    let with_auth = RouteCachePolicy {
        cache_authorized: true,
        ..policy()
    };
    // (method, request fields, route allows Authorization, bypass)
    let rows: &[(Method, &str, bool, Option<BypassReason>)] = &[
        (Method::GET, "", false, None),
        (Method::HEAD, "", false, None),
        (Method::POST, "", false, Some(BypassReason::Method)),
        (Method::PUT, "", true, Some(BypassReason::Method)),
        (Method::OPTIONS, "", false, Some(BypassReason::Method)),
        (
            Method::GET,
            "authorization: x",
            false,
            Some(BypassReason::Authorization),
        ),
        (Method::GET, "authorization: x", true, None),
        (
            Method::GET,
            "content-length: 6",
            false,
            Some(BypassReason::Body),
        ),
        (
            Method::HEAD,
            "transfer-encoding: chunked",
            false,
            Some(BypassReason::Body),
        ),
        (Method::GET, "content-length: 0", false, None),
        (Method::GET, "content-length: 00", false, None),
        // §5.2.1.5: request no-store still looks up (it only forbids storing).
        (Method::GET, "cache-control: no-store", false, None),
    ];
    for (method, req, allow_auth, expected) in rows {
        let policy = if *allow_auth { &with_auth } else { &policy() };
        let req_facts = RequestFacts::from_parts(method, &fields(req));
        assert_eq!(
            request_bypass(&req_facts, policy),
            *expected,
            "{method} {req}"
        );
    }
    assert_eq!(BypassReason::Authorization.as_str(), "authorization");
    assert_eq!(BypassReason::Method.as_str(), "method");
}
