use super::*;
use crate::config::policy::KeyQueryPolicy;

use proptest::prelude::*;
use NotStoredReason as N;

/// The request time; the response arrives one second later.
const T0: u64 = 1_700_000_000;

// HTTP-dates around T0 (Tue, 14 Nov 2023 22:13:20 GMT), named by their offset from T0.
const MINUS_3600: &str = "Tue, 14 Nov 2023 21:13:20 GMT";
const MINUS_100: &str = "Tue, 14 Nov 2023 22:11:40 GMT";
const MINUS_99: &str = "Tue, 14 Nov 2023 22:11:41 GMT";
const MINUS_59: &str = "Tue, 14 Nov 2023 22:12:21 GMT";
const MINUS_9: &str = "Tue, 14 Nov 2023 22:13:11 GMT";
const PLUS_1: &str = "Tue, 14 Nov 2023 22:13:21 GMT";
const PLUS_101: &str = "Tue, 14 Nov 2023 22:15:01 GMT";
const PLUS_1000: &str = "Tue, 14 Nov 2023 22:30:00 GMT";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn policy() -> RouteCachePolicy {
    RouteCachePolicy {
        enabled: true,
        default_ttl: Duration::ZERO,
        override_ttl: None,
        stale_while_revalidate: Duration::ZERO,
        stale_if_error: Duration::ZERO,
        cache_authorized: false,
        tag_header: String::new(),
        tag_header_name: None,
        targeted_names: Vec::new(),
        targeted_cache_control: vec!["Outrider-Cache-Control".into(), "CDN-Cache-Control".into()],
        stale_on_open: None,
        key_query: KeyQueryPolicy::All,
        store_set_cookie: false,
        heuristic_freshness_bp: 0,
        heuristic_max: Duration::from_secs(86_400),
        normalize_vary: false,
    }
}

/// Header fields written as lines of `name: value`, so that a table row fits on a line.
fn fields(spec: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in spec.lines().filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(": ").unwrap_or((line, ""));
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("valid test name"),
            HeaderValue::from_str(value).expect("valid test value"),
        );
    }
    map
}

/// Request at T0, response at T0 + 1 s.
fn times() -> ExchangeTimes {
    ExchangeTimes {
        request_time: at(T0),
        response_time: at(T0 + 1),
    }
}

fn decide_with(
    method: &Method,
    req: &str,
    status: u16,
    rsp: &str,
    policy: &RouteCachePolicy,
) -> Storability {
    let req = RequestFacts::from_parts(method, &fields(req));
    let rsp = ResponseFacts::from_headers(status, &fields(rsp), &policy.targeted_cache_control);
    storability(&req, &rsp, policy, times())
}

fn decide(status: u16, rsp: &str) -> Storability {
    decide_with(&Method::GET, "", status, rsp, &policy())
}

/// The lifetime in seconds of a stored response, or the reason it is not stored.
fn lifetime(decision: Storability) -> Result<u64, N> {
    match decision {
        Storability::Store(f) => Ok(f.lifetime.as_secs()),
        Storability::DontStore(reason) => Err(reason),
    }
}

fn stored(decision: Storability) -> Freshness {
    match decision {
        Storability::Store(f) => f,
        Storability::DontStore(reason) => panic!("not stored: {}", reason.as_str()),
    }
}

mod opt_in;
mod storability;

/// §4.2.1: where the lifetime comes from. The response arrives at T0 + 1.
#[test]
fn lifetime_sources() {
    let rows: &[(String, Result<u64, N>)] = &[
        (
            String::from("cache-control: s-maxage=30, max-age=60"),
            Ok(30),
        ),
        (
            format!("cache-control: max-age=60\nexpires: {PLUS_101}"),
            Ok(60),
        ),
        (format!("expires: {PLUS_101}\ndate: {PLUS_1}"), Ok(100)),
        // Date absent or invalid: the response time stands in.
        (format!("expires: {PLUS_101}"), Ok(100)),
        (format!("expires: {PLUS_101}\ndate: yesterday"), Ok(100)),
        // Date a minute earlier: the lifetime counts from Date.
        (format!("expires: {PLUS_101}\ndate: {MINUS_59}"), Ok(160)),
        // Expires before Date: stale on arrival.
        (format!("expires: {MINUS_100}\netag: \"v1\""), Ok(0)),
        // §5.3: an invalid Expires (0 included) has expired; several are invalid.
        (String::from("expires: 0\netag: \"v1\""), Ok(0)),
        (
            format!("expires: {PLUS_101}\nexpires: {PLUS_101}\netag: \"v1\""),
            Ok(0),
        ),
        // ...and without a validator such a response could never be served.
        (String::from("expires: 0"), Err(N::StaleWithoutValidator)),
        // Origin lifetimes are capped at 2^31 s.
        (
            String::from("expires: Fri, 31 Dec 9999 23:59:59 GMT"),
            Ok(MAX_DELTA_SECONDS),
        ),
        // §4.2.1: an invalid or conflicting max-age is stale.
        (
            String::from("cache-control: max-age=ten\netag: \"v1\""),
            Ok(0),
        ),
        (
            String::from("cache-control: max-age=10, max-age=20\netag: \"v1\""),
            Ok(0),
        ),
        // Unqualified no-cache: stored with lifetime 0, every use revalidated.
        (
            String::from("cache-control: no-cache, max-age=60\netag: \"v1\""),
            Ok(0),
        ),
        (
            String::from("cache-control: no-cache"),
            Err(N::StaleWithoutValidator),
        ),
    ];
    for (rsp, expected) in rows {
        assert_eq!(lifetime(decide(200, rsp)), *expected, "{rsp:?}");
    }
    let f = stored(decide(200, "cache-control: no-cache\netag: \"v1\""));
    assert!(f.always_revalidate && f.must_revalidate);
}

/// The route's TTLs: the default only without explicit freshness, on heuristic statuses;
/// the override replaces the lifetime but none of the prohibitions.
#[test]
fn route_ttls() {
    let default_120 = RouteCachePolicy {
        default_ttl: s(120),
        ..policy()
    };
    let override_5 = RouteCachePolicy {
        override_ttl: Some(s(5)),
        ..policy()
    };
    let rows: &[(&RouteCachePolicy, u16, &str, Result<u64, N>)] = &[
        (&default_120, 200, "", Ok(120)),
        (&default_120, 404, "", Ok(120)),
        (&default_120, 200, "max-age=7", Ok(7)),
        (
            &default_120,
            200,
            "max-age=0",
            Err(N::StaleWithoutValidator),
        ),
        (&default_120, 302, "", Err(N::Status)),
        (&default_120, 503, "", Err(N::Status)),
        (&override_5, 200, "max-age=600", Ok(5)),
        (&override_5, 200, "", Ok(5)),
        (&override_5, 302, "", Err(N::Status)),
        (&override_5, 302, "max-age=600", Ok(5)),
        (&override_5, 200, "max-age=600, no-store", Err(N::NoStore)),
        (&override_5, 200, "max-age=600, private", Err(N::Private)),
        (&override_5, 200, "no-cache", Err(N::StaleWithoutValidator)),
    ];
    for (policy, status, cc, expected) in rows {
        let rsp = format!("cache-control: {cc}");
        let got = decide_with(&Method::GET, "", *status, &rsp, policy);
        assert_eq!(lifetime(got), *expected, "{status} {cc:?}");
    }
}

/// RFC 9213 §2.1: a valid targeted field replaces Cache-Control and Expires.
#[test]
fn targeted_field_replaces_cache_control() {
    // (Cache-Control, CDN-Cache-Control, Outrider-Cache-Control; "-" absent, decision)
    let rows: &[(&str, &str, &str, Result<u64, N>)] = &[
        ("no-store", "max-age=600", "-", Ok(600)),
        ("max-age=60", "no-store", "-", Err(N::NoStore)),
        ("max-age=60", "private", "-", Err(N::Private)),
        ("max-age=60", "max-age=600", "max-age=5", Ok(5)),
        (
            "max-age=60",
            "max-age=600",
            "no-store=?0",
            Err(N::NoFreshness),
        ),
        // Invalid or empty targeted fields fall back to the next, then Cache-Control.
        ("max-age=60", "Max-Age=600", "-", Ok(60)),
        ("max-age=60", "", "-", Ok(60)),
        ("max-age=60", "max-age=600", "max-age=5,", Ok(600)),
        // Expires is ignored too, which leaves no explicit freshness.
        ("-", "public", "-", Err(N::NoFreshness)),
    ];
    for (cc, cdn, outrider, expected) in rows {
        let mut rsp = format!("expires: {PLUS_101}\nother-cache-control: no-store");
        for (name, value) in [
            ("cache-control", cc),
            ("cdn-cache-control", cdn),
            ("outrider-cache-control", outrider),
        ] {
            if *value != "-" {
                rsp.push_str(&format!("\n{name}: {value}"));
            }
        }
        assert_eq!(lifetime(decide(200, &rsp)), *expected, "{rsp:?}");
    }
}

/// §4.2.3: the age a response has on arrival; the exchange took 1 s.
#[test]
fn initial_age_calculation() {
    // (Date and Age fields, initial age)
    let rows: &[(String, u64)] = &[
        (String::new(), 1),
        (format!("date: {PLUS_1}"), 1),
        // apparent_age = response_time − Date.
        (format!("date: {MINUS_9}"), 10),
        // corrected_age_value = Age + response_delay; the larger of the two wins.
        (format!("date: {PLUS_1}\nage: 30"), 31),
        (format!("date: {MINUS_99}\nage: 30"), 100),
        // Date in the future (origin clock ahead): apparent age 0.
        (format!("date: {PLUS_1000}"), 1),
        // Invalid Age ignored; several values, on one line or several: the first counts.
        ("age: abc".into(), 1),
        ("age: -5".into(), 1),
        ("age: 1.5".into(), 1),
        ("age: 7200a".into(), 1),
        ("age: 5\nage: x\nage: 50".into(), 6),
        ("age: 7200, 0".into(), 7201),
        ("age: 0, 7200".into(), 1),
        ("age: 0\nage: 7200".into(), 1),
        ("age: 7200\nage: 0".into(), 7201),
        ("age: , 30".into(), 31),
        ("age: x, 30".into(), 1),
        ("age: 99999999999999".into(), MAX_DELTA_SECONDS),
    ];
    for (rsp, expected) in rows {
        let rsp_fields = format!("cache-control: max-age=600\netag: \"v1\"\n{rsp}");
        let f = stored(decide(200, &rsp_fields));
        assert_eq!(f.initial_age, s(*expected), "{rsp:?}");
    }
}

#[test]
fn freshness_instants() {
    let f = Freshness {
        lifetime: s(60),
        initial_age: s(10),
        stale_while_revalidate: s(5),
        stale_if_error: s(300),
        stale_on_open: s(120),
        must_revalidate: false,
        always_revalidate: false,
    };
    let rt = at(T0);
    assert_eq!(f.created(rt), at(T0 - 10));
    assert_eq!(f.fresh_until(rt), at(T0 + 50));
    assert_eq!(f.expires(rt), at(T0 + 350));
    // Stale on arrival: fresh_until is already past.
    let stale = Freshness {
        initial_age: s(100),
        ..f
    };
    assert_eq!(stale.fresh_until(rt), at(T0 - 40));
    // Huge route TTLs do not overflow.
    let forever = Freshness {
        lifetime: Duration::MAX,
        ..f
    };
    assert!(forever.expires(rt) > rt);
    // The longest stale window decides how long the store keeps it.
    let open_longest = Freshness {
        stale_on_open: s(3600),
        ..f
    };
    assert_eq!(open_longest.expires(rt), at(T0 + 50 + 3600));
}

/// Issue #7: the window for serving stale while the upstream refuses requests.
#[test]
fn stale_on_open_window() {
    let route = |on_open: Option<u64>| RouteCachePolicy {
        stale_if_error: s(600),
        stale_on_open: on_open.map(s),
        ..policy()
    };
    // (route's stale_on_open, Cache-Control, expected stale_on_open)
    let rows: &[(Option<u64>, &str, u64)] = &[
        // Unset: the response's stale-if-error window, whoever set it.
        (None, "max-age=60", 600),
        (None, "max-age=60, stale-if-error=30", 30),
        // Set: the operator's window, over the origin's stale-if-error.
        (Some(3600), "max-age=60", 3600),
        (Some(3600), "max-age=60, stale-if-error=30", 3600),
        (Some(0), "max-age=60", 0),
        // The must-revalidate family forbids it like any stale serving.
        (Some(3600), "max-age=60, must-revalidate", 0),
        (Some(3600), "no-cache", 0),
        // s-maxage: only the origin's own window.
        (Some(3600), "s-maxage=60", 0),
        (Some(3600), "s-maxage=60, stale-if-error=45", 45),
    ];
    for (on_open, cc, expected) in rows {
        let rsp = format!("cache-control: {cc}\netag: \"v1\"");
        let f = stored(decide_with(&Method::GET, "", 200, &rsp, &route(*on_open)));
        assert_eq!(f.stale_on_open, s(*expected), "{on_open:?} {cc}");
    }
    // Stale on arrival without a validator is still worth storing for it.
    let only_open = RouteCachePolicy {
        stale_on_open: Some(s(60)),
        ..policy()
    };
    let got = decide_with(
        &Method::GET,
        "",
        200,
        "cache-control: max-age=0",
        &only_open,
    );
    assert_eq!(lifetime(got), Ok(0));
}

/// RFC 5861 and §4.2.4: the stale windows and who may extend them.
#[test]
fn stale_serving() {
    let defaults = RouteCachePolicy {
        stale_while_revalidate: s(10),
        stale_if_error: s(600),
        ..policy()
    };
    // (Cache-Control, stale-while-revalidate, stale-if-error, must_revalidate)
    let rows: &[(&str, u64, u64, bool)] = &[
        ("max-age=60", 10, 600, false),
        ("max-age=60, stale-while-revalidate=30", 30, 600, false),
        ("max-age=60, stale-if-error=0", 10, 0, false),
        ("max-age=60, stale-while-revalidate=bad", 10, 600, false),
        // §4.2.4: explicit prohibitions.
        (
            "max-age=60, must-revalidate, stale-while-revalidate=30",
            0,
            0,
            true,
        ),
        ("max-age=60, proxy-revalidate", 0, 0, true),
        ("no-cache, stale-if-error=60", 0, 0, true),
        // §5.2.2.10: s-maxage implies proxy-revalidate; only explicit windows remain.
        ("s-maxage=60", 0, 0, true),
        ("s-maxage=60, stale-while-revalidate=30", 30, 0, true),
    ];
    for (cc, swr, sie, must_revalidate) in rows {
        let rsp = format!("cache-control: {cc}\netag: \"v1\"");
        let f = stored(decide_with(&Method::GET, "", 200, &rsp, &defaults));
        let got = (
            f.stale_while_revalidate,
            f.stale_if_error,
            f.must_revalidate,
        );
        assert_eq!(got, (s(*swr), s(*sie), *must_revalidate), "{cc}");
        let facts = ResponseFacts::from_headers(200, &fields(&rsp), &[]);
        assert_eq!(facts.must_revalidate(), *must_revalidate, "{cc}");
    }
    // Stale on arrival and no validator, but a stale window makes it servable.
    let got = decide_with(&Method::GET, "", 200, "cache-control: max-age=0", &defaults);
    assert_eq!(lifetime(got), Ok(0));
    let got = decide(200, "cache-control: max-age=0");
    assert_eq!(lifetime(got), Err(N::StaleWithoutValidator));
}

#[test]
fn fields_to_strip() {
    let rsp = "cache-control: max-age=60, private=\"Set-Cookie, X-User\"\n\
               cache-control: no-cache=\"x-user, x-debug\"";
    let facts = ResponseFacts::from_headers(200, &fields(rsp), &[]);
    let strip = facts.fields_to_strip();
    let names: Vec<&str> = strip.iter().map(HeaderName::as_str).collect();
    assert_eq!(names, ["set-cookie", "x-user", "x-debug"]);
}

#[test]
fn vary_fields() {
    let rows: &[(&str, Vary)] = &[
        ("", Vary::None),
        ("vary: ", Vary::None),
        ("vary:  , ", Vary::None),
        ("vary: *", Vary::Star),
        ("vary: accept\nvary: *", Vary::Star),
        ("vary: a b", Vary::Star),
        (
            "vary: Accept-Encoding, accept\nvary: ACCEPT-encoding",
            Vary::Fields(vec![
                HeaderName::from_static("accept"),
                HeaderName::from_static("accept-encoding"),
            ]),
        ),
    ];
    for (rsp, expected) in rows {
        let facts = ResponseFacts::from_headers(200, &fields(rsp), &[]);
        assert_eq!(facts.vary, *expected, "{rsp:?}");
    }
}

#[test]
fn response_facts_fields() {
    let rsp = format!("last-modified: {MINUS_3600}\ndate: garbage\nset-cookie: a=1");
    let facts = ResponseFacts::from_headers(200, &fields(&rsp), &[]);
    assert_eq!(facts.last_modified, Some(at(T0 - 3600)));
    assert_eq!(facts.date, None);
    assert!(facts.has_validator && facts.set_cookie);
    assert_eq!(facts.expires, Expires::Absent);
    // (fields, has a validator)
    let rows: &[(&str, bool)] = &[
        ("last-modified: nope", false),
        ("etag: \"v1\"", true),
        ("etag: W/\"v1\"", true),
        ("", false),
    ];
    for (rsp, expected) in rows {
        let facts = ResponseFacts::from_headers(200, &fields(rsp), &[]);
        assert_eq!(facts.has_validator, *expected, "{rsp}");
    }
}

/// §5.4: Pragma: no-cache only counts without Cache-Control.
#[test]
fn pragma() {
    let rows: &[(&str, bool)] = &[
        ("pragma: no-cache", true),
        ("pragma: foo, No-Cache", true),
        ("pragma: no-cache\ncache-control: max-stale", false),
        ("pragma: no-cache=1", false),
        ("", false),
    ];
    for (req, expected) in rows {
        let facts = RequestFacts::from_parts(&Method::GET, &fields(req));
        assert_eq!(facts.pragma_no_cache, *expected, "{req:?}");
    }
}

/// §5.2.1: request directives against a stored response's age and lifetime.
#[test]
fn hit_verdicts() {
    use HitVerdict::{Fresh, RequestRevalidate, Stale, StaleAccepted};
    // (request Cache-Control, Pragma: no-cache, age, lifetime, must_revalidate, verdict)
    let rows: &[(&str, bool, u64, u64, bool, HitVerdict)] = &[
        ("", false, 10, 60, false, Fresh),
        ("", false, 60, 60, false, Stale),
        ("", false, 61, 60, false, Stale),
        // §5.2.1.4 and §5.4.
        ("no-cache", false, 10, 60, false, RequestRevalidate),
        ("", true, 10, 60, false, RequestRevalidate),
        // §5.2.1.1: max-age bounds the age.
        ("max-age=10", false, 10, 60, false, Fresh),
        ("max-age=10", false, 11, 60, false, RequestRevalidate),
        ("max-age=0", false, 0, 60, false, Fresh),
        ("max-age=0", false, 1, 60, false, RequestRevalidate),
        ("max-age=abc", false, 1, 60, false, RequestRevalidate),
        // §5.2.1.3: min-fresh wants that much freshness left.
        ("min-fresh=20", false, 40, 60, false, Fresh),
        ("min-fresh=20", false, 41, 60, false, RequestRevalidate),
        ("min-fresh=20", false, 70, 60, false, RequestRevalidate),
        // §5.2.1.2: max-stale, unless the response forbids stale serving.
        ("max-stale", false, 1000, 60, false, StaleAccepted),
        ("max-stale=10", false, 70, 60, false, StaleAccepted),
        ("max-stale=10", false, 71, 60, false, Stale),
        ("max-stale", false, 1000, 60, true, Stale),
        ("max-stale=10", false, 10, 60, true, Fresh),
        (
            "max-stale, max-age=100",
            false,
            101,
            60,
            false,
            RequestRevalidate,
        ),
    ];
    for (cc, pragma, age, lifetime, must_revalidate, expected) in rows {
        let req = CacheControl::parse([&HeaderValue::from_str(cc).expect("valid")]);
        let got = hit_acceptable(&req, *pragma, s(*age), s(*lifetime), *must_revalidate);
        let context = format!("{cc:?} pragma={pragma} age={age} lifetime={lifetime}");
        assert_eq!(got, *expected, "{context}");
    }
    let only = CacheControl::parse([&HeaderValue::from_static("only-if-cached")]);
    assert!(only.only_if_cached);
}

/// §4.4: what an unsafe request invalidates.
#[test]
fn invalidation() {
    const URL: &str = "https://H.test/1?x";
    // (method, status, Location, Content-Location, targets after URL, "-" for none at all)
    let rows: &[(&str, u16, &str, &str, &str)] = &[
        ("GET", 200, "", "", "-"),
        ("HEAD", 200, "", "", "-"),
        ("OPTIONS", 200, "", "", "-"),
        ("TRACE", 200, "", "", "-"),
        ("POST", 200, "", "", ""),
        ("DELETE", 204, "", "", ""),
        ("PATCH", 200, "", "", ""),
        ("PURGEX", 200, "", "", ""),
        // Error statuses invalidate nothing.
        ("POST", 404, "", "", "-"),
        ("POST", 500, "", "", "-"),
        ("PUT", 302, "/a", "", "https://H.test/a"),
        ("POST", 201, "/a?v=1#top", "", "https://H.test/a?v=1"),
        (
            "POST",
            201,
            "https://h.test:443/a",
            "",
            "https://h.test:443/a",
        ),
        ("POST", 201, "/a", "/b", "https://H.test/a https://H.test/b"),
        // Other hosts, schemes and ports; reference forms not resolved.
        ("POST", 201, "https://evil.test/1", "", ""),
        ("POST", 201, "http://h.test/1", "", ""),
        ("POST", 201, "https://h.test:8443/1", "", ""),
        ("POST", 201, "../x", "//h.test/x", ""),
        ("POST", 201, "x", "?q", ""),
        // No duplicates.
        ("POST", 201, URL, URL, ""),
        ("POST", 201, "/a", "/a", "https://H.test/a"),
    ];
    for (method, status, location, content_location, expected) in rows {
        let method = Method::from_bytes(method.as_bytes()).expect("valid method");
        let location = (!location.is_empty()).then_some(*location);
        let content_location = (!content_location.is_empty()).then_some(*content_location);
        let got = invalidation_targets(&method, *status, URL, location, content_location);
        let expected: Vec<&str> = match *expected {
            "-" => Vec::new(),
            more => std::iter::once(URL)
                .chain(more.split_whitespace())
                .collect(),
        };
        let context = format!("{method} {status} {location:?} {content_location:?}");
        assert_eq!(got, expected, "{context}");
    }
    // An unparseable request URL is still invalidated itself.
    let got = invalidation_targets(&Method::POST, 200, "not a url", Some("/x"), None);
    assert_eq!(got, ["not a url"]);
}

#[test]
fn reason_names_are_kebab_case() {
    let all = [
        N::Method,
        N::RequestNoStore,
        N::NoStore,
        N::MustUnderstand,
        N::Private,
        N::Authorization,
        N::SetCookie,
        N::VaryStar,
        N::Status,
        N::NoFreshness,
        N::StaleWithoutValidator,
    ];
    for reason in all {
        let name = reason.as_str();
        assert!(
            name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
            "{name}"
        );
    }
    assert_eq!(N::SetCookie.as_str(), "set-cookie");
    assert_eq!(N::StaleWithoutValidator.as_str(), "stale-without-validator");
}

#[test]
fn fuzz_check_regressions() {
    let seeds: &[&[u8]] = &[
        b"",
        b"\x00\x00\x00",
        b"\x00\x00\x00\n\x00max-age=60\n\x08\"v1\"",
        b"\x7f\xff\xff\n\x00max-age=60, no-store, must-understand\n\x03max-age=5,",
        b"\x02\x00\x00\n\x0bhttps://example.com/x\n\x0c/y\n\x0fexample.com:80\n\x10/a?b&a=2",
        b"\x00\x00\x00\n\x0f\n\x10",
        b"\x00\x00\x00\n\x0fa/b\n\x10x?q",
    ];
    for seed in seeds {
        fuzz_check(seed);
    }
}

proptest! {
    #[test]
    fn fuzz_check_on_random_input(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        fuzz_check(&data);
    }

    /// Random lines of plausible directives, so that the storing branches get exercised.
    #[test]
    fn fuzz_check_on_directive_lines(
        knobs in any::<[u8; 3]>(),
        lines in proptest::collection::vec((0u8..17, LINE), 0..6),
    ) {
        let mut data = knobs.to_vec();
        for (selector, value) in lines {
            data.push(b'\n');
            data.push(selector);
            data.extend_from_slice(value.as_bytes());
        }
        fuzz_check(&data);
    }
}

/// Values for [`fuzz_check_on_directive_lines`].
const LINE: &str = "[a-z =,\"0-9-]{0,24}|max-age=[0-9]{1,3}|no-store|private|no-cache\
                    |\"v1\"|/p\\?a=1&b=2|Tue, 14 Nov 2023 22:1[0-9]:00 GMT";
