//! The response cache through the real proxy: a real Outrider in-process (the built binary for
//! the reload test), a real HTTP/1.1 origin written here, a real client (reqwest, or raw
//! sockets where the exact bytes matter).
//!
//! The origin ([`Backend`]) is scripted per path (status, headers, body, delay, or a closure
//! that looks at the request, e.g. to answer a conditional request with 304), can be changed
//! mid-test and shut down, and records every request so that tests assert how many requests
//! reached it per path.
//!
//! Sections follow issue #6: hits · storability · freshness · revalidation · request directives ·
//! Vary · coalescing · stale-while-revalidate · stale-if-error · ranges · preconditions ·
//! invalidation · keys · purge · targeted cache control · memory bound · metrics · reload ·
//! compression. Helpers are at the end of the file.
//!
//! Timing: nothing waits on a fixed sleep for something to *happen*; background work (the SWR
//! refresh, `logging`-time invalidation and metrics) is polled for with a deadline. Where
//! time must *pass* for an entry to go stale, the test waits until `max-age` has elapsed since
//! the response was received ([`until_stale`]): the proxy's `response_time` is before that
//! instant, so the entry is stale by then whatever the origin's `Date` said.

mod support;

use std::collections::HashMap;
use std::future::Future;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use support::got::Got;
use support::origin::pattern;
use support::raw::{raw_exchange, raw_header};
use support::{client, metric, server_section, BinaryProxy, Origin, Proxy, Recorded, Reply};

/// The cache table of a route that caches with the defaults.
const ON: &str = "enabled = true";
const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

// ======================================================================================
// 1. Miss then hit
// ======================================================================================

/// RFC 9111 §4: a stored fresh response answers the next request without contacting the
/// origin, with `Age` (§5.1) and `Cache-Status: hit` (RFC 9211 §2.1). Outrider adds its
/// generated strong ETag to the stored object, so hits carry a validator, and the tag is the
/// one the uncached path generates for the same body.
#[tokio::test(flavor = "multi_thread")]
async fn miss_then_hit_with_age_and_a_generated_etag() {
    let rig = Rig::build(
        "",
        &[
            route("uncached", "/nocache/", "enabled = false", ""),
            route("plain", "/plain/", ON, "etag = { generate = false }"),
            route("c", "/", ON, ""),
        ]
        .concat(),
    );
    rig.backend.reply("/a", ok("hello, cache", "max-age=60"));

    let miss = rig.get("/a", &[]).await;
    assert_eq!(miss.status, 200);
    assert_eq!(miss.text(), "hello, cache");
    assert!(!miss.hit(), "first request a hit: {}", miss.cache_status());
    assert_eq!(
        miss.param("fwd").as_deref(),
        Some("uri-miss"),
        "{}",
        miss.cache_status()
    );
    assert!(miss.has("stored"), "{}", miss.cache_status());

    let hit = rig.get("/a", &[]).await;
    assert_eq!(hit.status, 200);
    assert_eq!(hit.text(), "hello, cache");
    assert!(
        hit.hit(),
        "second request not a hit: {}",
        hit.cache_status()
    );
    let age: u64 = hit
        .header("age")
        .expect("no Age on a hit (RFC 9111 §5.1)")
        .parse()
        .expect("Age is delta-seconds");
    assert!(age < 60, "Age {age}");
    assert_eq!(rig.backend.count("/a"), 1, "the origin saw the hit");
    let tag = hit.header("etag").expect("no generated ETag on the hit");
    generated(tag);

    // The uncached path generates the same tag for the same body.
    rig.backend.reply("/nocache/a", Reply::ok("hello, cache"));
    let direct = rig.get("/nocache/a", &[]).await;
    assert_eq!(
        direct.header("etag"),
        Some(tag),
        "cached and uncached tags differ"
    );

    // HEAD is answered from GET's entry (RFC 9110 §9.3.2), without a body.
    let (status, headers, body) = raw_exchange(
        rig.proxy.addr,
        &format!(
            "HEAD /a HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            rig.proxy.addr
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body.is_empty(),
        "HEAD answered with {} body bytes",
        body.len()
    );
    let head_status = raw_header(&headers, "cache-status").unwrap_or("");
    assert!(is_hit(head_status), "HEAD not a hit: {head_status}");
    assert_eq!(raw_header(&headers, "etag"), Some(tag));
    assert_eq!(rig.backend.count("/a"), 1, "HEAD went to the origin");

    // With `etag.generate = false` a hit carries no invented validator.
    rig.backend
        .reply("/plain/a", ok("hello, cache", "max-age=60"));
    rig.get("/plain/a", &[]).await;
    let plain = rig.get("/plain/a", &[]).await;
    assert!(plain.hit(), "{}", plain.cache_status());
    assert_eq!(plain.header("etag"), None);
}

// ======================================================================================
// 2. Storability (RFC 9111 §3)
// ======================================================================================

/// Responses a shared cache must not store (or that Outrider chooses not to) go to the origin
/// every time, and `Cache-Status` says why in `detail`. The route has `default_ttl = 1h`, so
/// only the response makes the difference; a 404 without freshness *is* stored with it.
#[tokio::test(flavor = "multi_thread")]
async fn unstorable_responses_are_fetched_every_time_and_say_why() {
    let rig = Rig::new("enabled = true, default_ttl = \"1h\"");
    let rows: Vec<(&str, Reply, &str)> = vec![
        // §5.2.2.5
        ("/no-store", ok("x", "no-store, max-age=60"), "no-store"),
        // §5.2.2.7: unqualified private, never in a shared cache.
        ("/private", ok("x", "private, max-age=60"), "private"),
        // One user's cookie replayed to everyone: not stored unless marked private.
        (
            "/cookie",
            ok("x", "max-age=60").header("Set-Cookie", "sid=42"),
            "set-cookie",
        ),
        // §4.1: `Vary: *` never matches.
        (
            "/vary-star",
            ok("x", "max-age=60").header("Vary", "*"),
            "vary-star",
        ),
        // §3 / RFC 9110 §15.6.1: 500 is not heuristically cacheable; without explicit
        // freshness the route's default_ttl does not apply to it.
        (
            "/error",
            Reply {
                status: 500,
                body: Some("boom".into()),
                ..Default::default()
            },
            "status",
        ),
    ];
    for (path, reply, reason) in rows {
        rig.backend.reply(path, reply);
        for n in 1..=2 {
            let got = rig.get(path, &[]).await;
            assert!(!got.hit(), "{path} #{n}: {}", got.cache_status());
            assert!(!got.has("stored"), "{path} #{n}: {}", got.cache_status());
            assert_eq!(
                got.param("detail").as_deref(),
                Some(reason),
                "{path} #{n}: {}",
                got.cache_status()
            );
        }
        assert_eq!(rig.backend.count(path), 2, "{path} was stored");
    }

    // Controls: the same route stores a 404 (heuristically cacheable, RFC 9110 §15.5.5)
    // under its default_ttl, and a plain 200 without freshness information.
    rig.backend.reply(
        "/gone",
        Reply {
            status: 404,
            body: Some("not here".into()),
            ..Default::default()
        },
    );
    rig.backend.reply("/bare", Reply::ok("bare"));
    for path in ["/gone", "/bare"] {
        let first = rig.get(path, &[]).await;
        assert!(first.has("stored"), "{path}: {}", first.cache_status());
        let second = rig.get(path, &[]).await;
        assert!(second.hit(), "{path}: {}", second.cache_status());
        assert_eq!(rig.backend.count(path), 1, "{path}");
    }
    let gone = rig.get("/gone", &[]).await;
    assert_eq!((gone.status, gone.text().as_str()), (404, "not here"));
}

/// §5.2.1.5: a request's `no-store` forbids storing the response to *that* request. It does
/// not forbid answering it from what is already stored.
#[tokio::test(flavor = "multi_thread")]
async fn request_no_store_is_not_stored() {
    let rig = Rig::new(ON);
    rig.backend.reply("/r", ok("r", "max-age=60"));
    let first = rig.get("/r", &[("cache-control", "no-store")]).await;
    assert!(!first.has("stored"), "{}", first.cache_status());
    assert_eq!(
        first.param("detail").as_deref(),
        Some("request-no-store"),
        "{}",
        first.cache_status()
    );
    let second = rig.get("/r", &[]).await;
    assert!(
        !second.hit(),
        "the no-store request's response was stored: {}",
        second.cache_status()
    );
    assert_eq!(rig.backend.count("/r"), 2);
    let third = rig.get("/r", &[("cache-control", "no-store")]).await;
    assert!(third.hit(), "{}", third.cache_status());
    assert_eq!(rig.backend.count("/r"), 2);
}

/// §3.5 and the `cache_authorized = false` default: a request with `Authorization` neither
/// reads nor writes the cache (Varnish's behaviour): it must not get another user's stored
/// response, nor store its own.
#[tokio::test(flavor = "multi_thread")]
async fn authorization_bypasses_the_cache_by_default() {
    let rig = Rig::new(ON);
    rig.backend
        .reply("/me", ok("public page", "public, max-age=60"));
    let anon = rig.get("/me", &[]).await;
    assert!(anon.has("stored"), "{}", anon.cache_status());
    for n in 1..=2 {
        let authed = rig.get("/me", &[("authorization", "Bearer abc")]).await;
        assert!(!authed.hit(), "#{n}: {}", authed.cache_status());
        assert_eq!(
            authed.param("fwd").as_deref(),
            Some("bypass"),
            "{}",
            authed.cache_status()
        );
        assert_eq!(
            authed.param("detail").as_deref(),
            Some("authorization"),
            "{}",
            authed.cache_status()
        );
    }
    assert_eq!(rig.backend.count("/me"), 3);
    let again = rig.get("/me", &[]).await;
    assert!(again.hit(), "{}", again.cache_status());
    assert_eq!(rig.backend.count("/me"), 3);
}

/// §3.5 with `cache_authorized = true`: a response to a request with `Authorization` is
/// stored only when it says `public`, `s-maxage` or `must-revalidate`.
#[tokio::test(flavor = "multi_thread")]
async fn cache_authorized_stores_only_explicitly_shareable_responses() {
    let rig = Rig::new("enabled = true, cache_authorized = true");
    let auth = [("authorization", "Bearer abc")];
    rig.backend.reply("/plain", ok("p", "max-age=60"));
    for _ in 0..2 {
        let got = rig.get("/plain", &auth).await;
        assert!(!got.hit(), "{}", got.cache_status());
        assert_eq!(
            got.param("detail").as_deref(),
            Some("authorization"),
            "{}",
            got.cache_status()
        );
    }
    assert_eq!(rig.backend.count("/plain"), 2, "max-age alone was stored");
    for (path, cc) in [
        ("/public", "public, max-age=60"),
        ("/smax", "s-maxage=60"),
        ("/mr", "must-revalidate, max-age=60"),
    ] {
        rig.backend.reply(path, ok(path, cc));
        let first = rig.get(path, &auth).await;
        assert!(first.has("stored"), "{cc}: {}", first.cache_status());
        let second = rig.get(path, &auth).await;
        assert!(second.hit(), "{cc}: {}", second.cache_status());
        assert_eq!(second.text(), path);
        assert_eq!(rig.backend.count(path), 1, "{cc}");
    }
}

/// §3: only GET and HEAD here; POST goes through, is not stored, and does not fill GET's entry.
#[tokio::test(flavor = "multi_thread")]
async fn post_is_not_cached() {
    let rig = Rig::new(ON);
    rig.backend.reply("/post", ok("posted", "max-age=60"));
    for n in 1..=2 {
        let got = rig
            .send(Method::POST, "/post", &[], Some(b"x".to_vec()))
            .await;
        assert_eq!(got.status, 200);
        assert!(!got.hit(), "POST #{n}: {}", got.cache_status());
        // RFC 9211 §2.2: `method`, the method's semantics require forwarding.
        assert_eq!(
            got.param("fwd").as_deref(),
            Some("method"),
            "{}",
            got.cache_status()
        );
    }
    assert_eq!(rig.backend.count("/post"), 2);
    let get = rig.get("/post", &[]).await;
    assert!(
        !get.hit(),
        "a POST response answered a GET: {}",
        get.cache_status()
    );
    assert_eq!(rig.backend.count("/post"), 3);
}

/// §5.2.2.4: a response's unqualified `no-cache` may be stored but every reuse is validated
/// with the origin first: each request sends If-None-Match, and a 304 serves the stored body.
#[tokio::test(flavor = "multi_thread")]
async fn response_no_cache_is_stored_and_always_revalidated() {
    let rig = Rig::new(ON);
    rig.backend.on("/nc", |req| {
        if req_header(req, "if-none-match") == Some("\"n1\"") {
            not_modified()
                .header("ETag", "\"n1\"")
                .header("Cache-Control", "no-cache")
        } else {
            ok("validated", "no-cache").header("ETag", "\"n1\"")
        }
    });
    let first = rig.get("/nc", &[]).await;
    assert!(first.has("stored"), "{}", first.cache_status());
    for n in 2..=3 {
        let got = rig.get("/nc", &[]).await;
        assert_eq!((got.status, got.text().as_str()), (200, "validated"));
        assert!(
            !got.hit(),
            "#{n} reused without validation: {}",
            got.cache_status()
        );
        assert_eq!(
            got.param("fwd-status").as_deref(),
            Some("304"),
            "{}",
            got.cache_status()
        );
        assert_eq!(rig.backend.count("/nc"), n);
        assert_eq!(
            req_header(&rig.backend.last("/nc"), "if-none-match"),
            Some("\"n1\"")
        );
    }
}

/// §5.2.2.7: `private="Set-Cookie"` says the rest of the response is shared: it is stored
/// without the named field, so no hit replays the cookie.
#[tokio::test(flavor = "multi_thread")]
async fn qualified_private_stores_without_the_named_field() {
    let rig = Rig::new(ON);
    rig.backend.reply(
        "/pc",
        ok("shared part", "private=\"Set-Cookie\", max-age=60").header("Set-Cookie", "sid=42"),
    );
    rig.get("/pc", &[]).await;
    let hit = rig.get("/pc", &[]).await;
    assert!(hit.hit(), "{}", hit.cache_status());
    assert_eq!(hit.text(), "shared part");
    assert_eq!(hit.header("set-cookie"), None, "a hit replayed the cookie");
    assert_eq!(rig.backend.count("/pc"), 1);
}

/// HEAD shares GET's entry: a cold HEAD gets no body, and the following GET is answered
/// with the whole body (from the entry the HEAD miss filled, or from the origin), never an
/// empty stored body.
#[tokio::test(flavor = "multi_thread")]
async fn a_cold_head_does_not_store_an_empty_body() {
    let rig = Rig::new(ON);
    rig.backend.reply("/h", ok("head body", "max-age=60"));
    let (status, _, body) = raw_exchange(
        rig.proxy.addr,
        &format!(
            "HEAD /h HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            rig.proxy.addr
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.is_empty(), "HEAD answered with a body");
    let get = rig.get("/h", &[]).await;
    assert_eq!(
        (get.status, get.text().as_str()),
        (200, "head body"),
        "{}",
        get.cache_status()
    );
    let again = rig.get("/h", &[]).await;
    assert!(again.hit(), "{}", again.cache_status());
    assert_eq!(again.text(), "head body");
    assert!(rig.backend.count("/h") <= 2);
}

// ======================================================================================
// 3. Freshness (RFC 9111 §4.2)
// ======================================================================================

/// §4.2: a stored response is fresh for `max-age` and then stale: the next request goes to the
/// origin (`fwd=stale`, RFC 9211 §2.2). max-age=2 so that the hit right after the store is
/// certain whatever the origin's `Date` truncation costs (at most 1 s of apparent age).
#[tokio::test(flavor = "multi_thread")]
async fn max_age_entry_goes_stale_and_is_refetched() {
    let rig = Rig::new(ON);
    rig.backend.reply("/s", ok("s", "max-age=2"));
    rig.get("/s", &[]).await;
    let stored = Instant::now();
    let hit = rig.get("/s", &[]).await;
    assert!(hit.hit(), "{}", hit.cache_status());
    let refetch = poll_get(&rig, "/s", Duration::from_secs(6), |_| {
        rig.backend.count("/s") == 2
    })
    .await;
    let after = stored.elapsed();
    assert!(
        after >= Duration::from_millis(900),
        "refetched after {after:?}: max-age=2 was not honoured"
    );
    assert_eq!(
        refetch.param("fwd").as_deref(),
        Some("stale"),
        "{}",
        refetch.cache_status()
    );
}

/// §4.2.1: `s-maxage` overrides `max-age` in a shared cache, in both directions.
#[tokio::test(flavor = "multi_thread")]
async fn s_maxage_beats_max_age() {
    let rig = Rig::new(ON);
    rig.backend
        .reply("/long", ok("long", "max-age=0, s-maxage=60"));
    rig.backend
        .reply("/short", ok("short", "max-age=60, s-maxage=0"));
    for path in ["/long", "/short"] {
        rig.get(path, &[]).await;
        rig.get(path, &[]).await;
    }
    assert_eq!(rig.backend.count("/long"), 1, "s-maxage=60 ignored");
    assert_eq!(rig.backend.count("/short"), 2, "s-maxage=0 ignored");
}

/// §4.2.1 / §5.3: `Expires` counts when there is no max-age: in the past (or invalid, `0`)
/// means stale, in the future means fresh.
#[tokio::test(flavor = "multi_thread")]
async fn expires_decides_freshness_without_max_age() {
    let rig = Rig::new(ON);
    rig.backend.reply(
        "/past",
        Reply::ok("past").header("Expires", "Thu, 01 Jan 1998 00:00:00 GMT"),
    );
    rig.backend
        .reply("/invalid", Reply::ok("invalid").header("Expires", "0"));
    rig.backend.reply(
        "/future",
        Reply::ok("future").header("Expires", "Thu, 01 Dec 2044 16:00:00 GMT"),
    );
    for path in ["/past", "/invalid", "/future"] {
        rig.get(path, &[]).await;
    }
    for path in ["/past", "/invalid", "/future"] {
        let got = rig.get(path, &[]).await;
        assert_eq!(
            got.hit(),
            path == "/future",
            "{path}: {}",
            got.cache_status()
        );
    }
    assert_eq!(rig.backend.count("/past"), 2);
    assert_eq!(rig.backend.count("/invalid"), 2);
    assert_eq!(rig.backend.count("/future"), 1);
}

/// The route's `default_ttl` stands in for §4.2.2's heuristic, so it applies only when the
/// response has no explicit freshness: `max-age=0` with default_ttl = 1h is stale.
#[tokio::test(flavor = "multi_thread")]
async fn default_ttl_applies_only_without_freshness_information() {
    let rig = Rig::new("enabled = true, default_ttl = \"1h\"");
    rig.backend.reply("/none", Reply::ok("none"));
    rig.backend.reply("/zero", ok("zero", "max-age=0"));
    for path in ["/none", "/zero", "/none", "/zero"] {
        rig.get(path, &[]).await;
    }
    assert_eq!(rig.backend.count("/none"), 1, "default_ttl not applied");
    assert_eq!(
        rig.backend.count("/zero"),
        2,
        "default_ttl overrode max-age=0"
    );
    let ttl: i64 = rig
        .get("/none", &[])
        .await
        .param("ttl")
        .unwrap()
        .parse()
        .unwrap();
    assert!((3590..=3600).contains(&ttl), "ttl={ttl}");
}

/// `override_ttl` replaces the origin's lifetime but never its prohibitions (§5.2.2.5,
/// §5.2.2.7).
#[tokio::test(flavor = "multi_thread")]
async fn override_ttl_replaces_max_age_but_no_store_still_wins() {
    let rig = Rig::new("enabled = true, override_ttl = \"1h\"");
    rig.backend.reply("/m0", ok("m0", "max-age=0"));
    rig.backend.reply("/ns", ok("ns", "no-store"));
    rig.backend.reply("/pv", ok("pv", "private, max-age=60"));
    for path in ["/m0", "/ns", "/pv", "/m0", "/ns", "/pv"] {
        rig.get(path, &[]).await;
    }
    assert_eq!(
        rig.backend.count("/m0"),
        1,
        "override_ttl did not replace max-age=0"
    );
    assert_eq!(
        rig.backend.count("/ns"),
        2,
        "override_ttl stored a no-store response"
    );
    assert_eq!(
        rig.backend.count("/pv"),
        2,
        "override_ttl stored a private response"
    );
}

/// §4.2.3: the origin's `Age` counts against the lifetime: `max-age=10` with `Age: 8` has
/// about 2 s left, so the entry is refetched long before 10 s, and hits report the age.
#[tokio::test(flavor = "multi_thread")]
async fn origin_age_reduces_remaining_freshness() {
    let rig = Rig::new(ON);
    rig.backend
        .reply("/aged", ok("aged", "max-age=10").header("Age", "8"));
    rig.backend.reply("/young", ok("young", "max-age=10"));
    rig.get("/aged", &[]).await;
    let stored = Instant::now();
    rig.get("/young", &[]).await;

    let young = rig.get("/young", &[]).await;
    assert!(young.hit(), "{}", young.cache_status());
    let young_ttl: i64 = young.param("ttl").unwrap().parse().unwrap();
    assert!(young_ttl >= 8, "young ttl={young_ttl}");

    let aged = rig.get("/aged", &[]).await;
    assert!(aged.hit(), "{}", aged.cache_status());
    let age: u64 = aged.header("age").unwrap().parse().unwrap();
    assert!(age >= 8, "Age on the hit is {age}, the origin said 8");
    let ttl: i64 = aged.param("ttl").unwrap().parse().unwrap();
    assert!(ttl <= 2, "ttl={ttl}: the origin's Age was ignored");

    poll_get(&rig, "/aged", Duration::from_secs(5), |_| {
        rig.backend.count("/aged") == 2
    })
    .await;
    assert!(stored.elapsed() < Duration::from_secs(5));
    assert_eq!(rig.backend.count("/young"), 1);
}

// ======================================================================================
// 4. Revalidation (RFC 9111 §4.3)
// ======================================================================================

/// §4.3.1: a stale entry is revalidated with `If-None-Match` carrying its stored ETag; a 304
/// (§4.3.3) makes the proxy answer 200 with the stored body, and its fresh `Cache-Control`
/// updates the stored entry (§3.2), so the next request is a hit.
#[tokio::test(flavor = "multi_thread")]
async fn a_stale_entry_is_revalidated_and_a_304_refreshes_it() {
    let rig = Rig::new(ON);
    rig.backend.on("/rv", |req| {
        if req_header(req, "if-none-match") == Some("\"v1\"") {
            not_modified()
                .header("ETag", "\"v1\"")
                .header("Cache-Control", "max-age=60")
        } else {
            ok("version one", "max-age=1").header("ETag", "\"v1\"")
        }
    });
    rig.get("/rv", &[]).await;
    until_stale(Instant::now(), 1).await;

    let reval = rig.get("/rv", &[]).await;
    assert_eq!(reval.status, 200);
    assert_eq!(reval.text(), "version one");
    assert_eq!(
        reval.param("fwd").as_deref(),
        Some("stale"),
        "{}",
        reval.cache_status()
    );
    assert_eq!(
        reval.param("fwd-status").as_deref(),
        Some("304"),
        "{}",
        reval.cache_status()
    );
    assert_eq!(rig.backend.count("/rv"), 2);
    let sent = rig.backend.last("/rv");
    assert_eq!(req_header(&sent, "if-none-match"), Some("\"v1\""));

    let next = rig.get("/rv", &[]).await;
    assert!(
        next.hit(),
        "the 304 did not refresh the entry: {}",
        next.cache_status()
    );
    assert_eq!(next.text(), "version one");
    let ttl: i64 = next.param("ttl").unwrap().parse().unwrap();
    assert!(ttl > 50, "ttl={ttl}: the 304's max-age=60 was not applied");
    assert_eq!(rig.backend.count("/rv"), 2);
}

/// §4.3.1: with only `Last-Modified` as validator (generation off), the revalidation carries
/// `If-Modified-Since`.
#[tokio::test(flavor = "multi_thread")]
async fn a_stale_entry_with_last_modified_is_revalidated_with_if_modified_since() {
    let rig = Rig::build("", &route("plain", "/", ON, "etag = { generate = false }"));
    rig.backend.on("/lm", |req| {
        if req_header(req, "if-modified-since") == Some(LM) {
            not_modified()
                .header("Last-Modified", LM)
                .header("Cache-Control", "max-age=60")
        } else {
            ok("dated", "max-age=1").header("Last-Modified", LM)
        }
    });
    rig.get("/lm", &[]).await;
    until_stale(Instant::now(), 1).await;
    let reval = rig.get("/lm", &[]).await;
    assert_eq!((reval.status, reval.text().as_str()), (200, "dated"));
    assert_eq!(
        reval.param("fwd-status").as_deref(),
        Some("304"),
        "{}",
        reval.cache_status()
    );
    assert_eq!(
        req_header(&rig.backend.last("/lm"), "if-modified-since"),
        Some(LM)
    );
    assert!(rig.get("/lm", &[]).await.hit());
    assert_eq!(rig.backend.count("/lm"), 2);
}

// ======================================================================================
// 5. Request directives (RFC 9111 §5.2.1)
// ======================================================================================

/// An origin for `/d`: 200 "dee" with ETag "d1" and max-age=60, or 304 to a matching
/// If-None-Match. Returns the rig with the entry stored and a first hit checked.
async fn directive_rig() -> Rig {
    let rig = Rig::new(ON);
    rig.backend.on("/d", |req| {
        if req_header(req, "if-none-match") == Some("\"d1\"") {
            not_modified()
                .header("ETag", "\"d1\"")
                .header("Cache-Control", "max-age=60")
        } else {
            ok("dee", "max-age=60").header("ETag", "\"d1\"")
        }
    });
    rig.get("/d", &[]).await;
    assert!(rig.get("/d", &[]).await.hit());
    assert_eq!(rig.backend.count("/d"), 1);
    rig
}

/// §5.2.1.4: a request's `no-cache` forbids answering from a stored response without
/// validating it first, fresh or not: the origin gets a conditional request with the stored
/// tag, and the entry stays usable for others.
#[tokio::test(flavor = "multi_thread")]
async fn request_no_cache_revalidates_a_fresh_entry() {
    let rig = directive_rig().await;
    let nc = rig.get("/d", &[("cache-control", "no-cache")]).await;
    assert_eq!((nc.status, nc.text().as_str()), (200, "dee"));
    assert!(
        !nc.hit(),
        "no-cache answered from cache: {}",
        nc.cache_status()
    );
    assert_eq!(rig.backend.count("/d"), 2);
    assert_eq!(
        req_header(&rig.backend.last("/d"), "if-none-match"),
        Some("\"d1\"")
    );
    let plain = rig.get("/d", &[]).await;
    assert!(plain.hit(), "{}", plain.cache_status());
    assert_eq!(rig.backend.count("/d"), 2);
}

/// §5.2.1.1: `max-age=0` on the request: every stored response is older than that, so it
/// goes to the origin.
#[tokio::test(flavor = "multi_thread")]
async fn request_max_age_0_goes_to_the_origin() {
    let rig = directive_rig().await;
    let ma = rig.get("/d", &[("cache-control", "max-age=0")]).await;
    assert_eq!((ma.status, ma.text().as_str()), (200, "dee"));
    assert!(
        !ma.hit(),
        "max-age=0 answered from cache: {}",
        ma.cache_status()
    );
    assert_eq!(rig.backend.count("/d"), 2);
}

/// §5.4: `Pragma: no-cache` without a `Cache-Control` field is `Cache-Control: no-cache`.
#[tokio::test(flavor = "multi_thread")]
async fn request_pragma_no_cache_goes_to_the_origin() {
    let rig = directive_rig().await;
    let pragma = rig.get("/d", &[("pragma", "no-cache")]).await;
    assert!(
        !pragma.hit(),
        "Pragma: no-cache answered from cache: {}",
        pragma.cache_status()
    );
    assert_eq!(rig.backend.count("/d"), 2);
}

/// §5.2.1.3: `min-fresh=N` wants at least N more seconds of freshness: 120 is more than the
/// entry has left (60), 10 is not.
#[tokio::test(flavor = "multi_thread")]
async fn request_min_fresh() {
    let rig = directive_rig().await;
    let enough = rig.get("/d", &[("cache-control", "min-fresh=10")]).await;
    assert!(enough.hit(), "{}", enough.cache_status());
    assert_eq!(rig.backend.count("/d"), 1);
    let wanting = rig.get("/d", &[("cache-control", "min-fresh=120")]).await;
    assert!(
        !wanting.hit(),
        "min-fresh=120 answered from cache: {}",
        wanting.cache_status()
    );
    assert_eq!(rig.backend.count("/d"), 2);
}

/// §5.2.1.2: `max-stale` accepts a stale response without contacting the origin (a hit),
/// unless the response forbids it. The RFC permits rather than requires this, but
/// `freshness::hit_acceptable` decides `StaleAccepted` for it, and the issue lists
/// `max-stale` among the honoured directives.
#[tokio::test(flavor = "multi_thread")]
async fn request_max_stale_accepts_a_stale_entry() {
    let rig = Rig::new(ON);
    rig.backend
        .reply("/ms", ok("old", "max-age=1").header("ETag", "\"m1\""));
    rig.get("/ms", &[]).await;
    until_stale(Instant::now(), 1).await;
    rig.backend.reply("/ms", ok("new", "max-age=60"));
    let stale = rig.get("/ms", &[("cache-control", "max-stale=60")]).await;
    assert_eq!(
        (stale.status, stale.text().as_str()),
        (200, "old"),
        "{}",
        stale.cache_status()
    );
    assert!(stale.hit(), "{}", stale.cache_status());
    assert_eq!(rig.backend.count("/ms"), 1);
    let plain = rig.get("/ms", &[]).await;
    assert_eq!(plain.text(), "new", "{}", plain.cache_status());
    assert_eq!(rig.backend.count("/ms"), 2);
}

/// §5.2.1.4 again, for a stale entry inside a stale-while-revalidate window: the request
/// asked for a validated response, so the stale body must not answer it (RFC 5861 only
/// permits serving stale where the request does not forbid it).
#[tokio::test(flavor = "multi_thread")]
async fn request_no_cache_is_not_answered_stale_while_revalidating() {
    let rig = Rig::new(ON);
    rig.backend
        .reply("/swrnc", ok("old", "max-age=1, stale-while-revalidate=30"));
    rig.get("/swrnc", &[]).await;
    until_stale(Instant::now(), 1).await;
    rig.backend.reply("/swrnc", ok("new", "max-age=60"));
    let got = rig.get("/swrnc", &[("cache-control", "no-cache")]).await;
    assert_eq!(got.text(), "new", "{}", got.cache_status());
    assert!(!got.hit(), "{}", got.cache_status());
}

/// §5.2.1.7: `only-if-cached` with nothing stored is a 504 without contacting the origin;
/// with a fresh entry it is a hit.
#[tokio::test(flavor = "multi_thread")]
async fn only_if_cached() {
    let rig = Rig::new(ON);
    rig.backend.reply("/oic", ok("warm", "max-age=60"));
    let cold = rig
        .get("/oic", &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!(cold.status, 504);
    assert_eq!(
        rig.backend.count("/oic"),
        0,
        "only-if-cached reached the origin"
    );
    rig.get("/oic", &[]).await;
    let warm = rig
        .get("/oic", &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!((warm.status, warm.text().as_str()), (200, "warm"));
    assert!(warm.hit(), "{}", warm.cache_status());
    assert_eq!(rig.backend.count("/oic"), 1);
}

// ======================================================================================
// 6. Vary (RFC 9111 §4.1)
// ======================================================================================

/// §4.1: a response with `Vary: X-Lang` is stored per X-Lang value; each variant is then a hit
/// and gets its own body.
#[tokio::test(flavor = "multi_thread")]
async fn vary_stores_one_variant_per_header_value() {
    let rig = Rig::new(ON);
    rig.backend.on("/v", |req| {
        let lang = req_header(req, "x-lang").unwrap_or("none").to_string();
        ok(&format!("lang={lang}"), "max-age=60").header("Vary", "X-Lang")
    });
    // RFC 9211 §2.2: the first is a uri-miss; the second finds the URL stored for another
    // language, a vary-miss.
    for (lang, fwd) in [("en", "uri-miss"), ("fr", "vary-miss")] {
        let got = rig.get("/v", &[("x-lang", lang)]).await;
        assert_eq!(got.text(), format!("lang={lang}"));
        assert!(!got.hit(), "{lang}: {}", got.cache_status());
        assert_eq!(
            got.param("fwd").as_deref(),
            Some(fwd),
            "{}",
            got.cache_status()
        );
    }
    assert_eq!(rig.backend.count("/v"), 2);
    for lang in ["en", "fr", "en", "fr"] {
        let got = rig.get("/v", &[("x-lang", lang)]).await;
        assert_eq!(
            got.text(),
            format!("lang={lang}"),
            "a variant answered the wrong request"
        );
        assert!(got.hit(), "{lang}: {}", got.cache_status());
    }
    assert_eq!(rig.backend.count("/v"), 2);
    assert_eq!(
        rig.cache().await["objects"],
        2,
        "variants are separate objects"
    );
}

/// On a compressing route the proxy asks the origin for identity and compresses per client, so
/// an origin's `Vary: Accept-Encoding` must not split the entry: one upstream fetch serves
/// every Accept-Encoding.
#[tokio::test(flavor = "multi_thread")]
async fn vary_accept_encoding_does_not_split_a_compressing_route() {
    let rig = Rig::new(ON);
    let body = text_body(4096);
    let reply = ok(&body, "max-age=60")
        .header("Vary", "Accept-Encoding")
        .header("Content-Type", "text/plain");
    rig.backend.reply("/ae", reply);
    for ae in ["gzip", "br", "identity", "gzip", ""] {
        let headers: Vec<(&str, &str)> = if ae.is_empty() {
            vec![]
        } else {
            vec![("accept-encoding", ae)]
        };
        let got = rig.get("/ae", &headers).await;
        assert_eq!(got.status, 200, "{ae}");
        assert_eq!(got.decoded(), body.as_bytes(), "Accept-Encoding: {ae}");
    }
    assert_eq!(
        rig.backend.count("/ae"),
        1,
        "Vary: Accept-Encoding split the cache"
    );
    assert_eq!(
        req_header(&rig.backend.last("/ae"), "accept-encoding"),
        Some("identity")
    );
}

// ======================================================================================
// 7. Coalescing
// ======================================================================================

/// Concurrent misses for one key make one upstream request; the others wait for it and are
/// served from the fill (`collapsed`, RFC 9211 §2.6).
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_misses_coalesce_into_one_upstream_request() {
    let rig = Rig::new(ON);
    let mut reply = ok("the one and only", "max-age=60");
    reply.delay = Duration::from_millis(300);
    rig.backend.reply("/co", reply);
    let c = client();
    let url = rig.proxy.url("/co");
    let all = futures_util::future::join_all((0..10).map(|_| {
        let c = c.clone();
        let url = url.clone();
        async move { Got::read(c.get(url).send().await.expect("GET"), Instant::now()).await }
    }))
    .await;
    assert_eq!(rig.backend.count("/co"), 1, "the origin saw a stampede");
    let statuses: Vec<&str> = all.iter().map(|g| g.cache_status()).collect();
    for got in &all {
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "the one and only");
    }
    let not_hits = all.iter().filter(|g| !g.hit()).count();
    assert_eq!(not_hits, 1, "exactly one request fetches: {statuses:#?}");
    assert!(
        all.iter().any(|g| g.has("collapsed")),
        "no request reports waiting for the fill: {statuses:#?}"
    );
}

// ======================================================================================
// 8. stale-while-revalidate (RFC 5861 §3)
// ======================================================================================

/// Within the stale-while-revalidate window a stale entry answers at once (a `hit`, detail
/// `stale-while-revalidate`), even though the origin is now slow, and exactly one background
/// request refreshes it; a later request is a fresh hit with the new body.
#[tokio::test(flavor = "multi_thread")]
async fn stale_while_revalidate_serves_stale_and_refreshes_once_in_the_background() {
    let rig = Rig::new(ON);
    rig.backend
        .reply("/swr", ok("old", "max-age=1, stale-while-revalidate=30"));
    rig.get("/swr", &[]).await;
    until_stale(Instant::now(), 1).await;
    let mut slow = ok("new", "max-age=60");
    slow.delay = Duration::from_secs(2);
    rig.backend.reply("/swr", slow);

    let stale = rig.get("/swr", &[]).await;
    assert_eq!((stale.status, stale.text().as_str()), (200, "old"));
    assert!(
        stale.elapsed < Duration::from_millis(1000),
        "the stale answer waited for the origin: {:?}",
        stale.elapsed
    );
    assert!(stale.hit(), "{}", stale.cache_status());
    assert_eq!(
        stale.param("detail").as_deref(),
        Some("stale-while-revalidate"),
        "{}",
        stale.cache_status()
    );
    poll(
        "the background refresh to reach the origin",
        Duration::from_secs(5),
        || async { rig.backend.count("/swr") == 2 },
    )
    .await;

    // Counted by hand: the background refresh is not a client request and must not show up
    // in `outrider_requests_total`.
    let mut client_requests = 2;
    let start = Instant::now();
    let fresh = loop {
        client_requests += 1;
        let got = rig.get("/swr", &[]).await;
        if got.text() == "new" {
            break got;
        }
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "the refreshed body never came: {}",
            got.cache_status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(fresh.hit(), "{}", fresh.cache_status());
    let again = rig.get("/swr", &[]).await;
    client_requests += 1;
    assert_eq!(again.text(), "new");
    assert!(
        again.hit() && again.param("detail").is_none(),
        "{}",
        again.cache_status()
    );
    let metrics = rig.metrics().await;
    let counted: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("outrider_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(counted, client_requests, "{metrics}");
    assert_eq!(
        rig.backend.count("/swr"),
        2,
        "more than one refresh reached the origin"
    );
}

// ======================================================================================
// 9. stale-if-error (RFC 5861 §4, RFC 9111 §4.2.4)
// ======================================================================================

/// The origin answers 500 to the revalidation: the stale response is served instead, within
/// the response's `stale-if-error` window.
#[tokio::test(flavor = "multi_thread")]
async fn stale_if_error_serves_stale_on_a_5xx() {
    let rig = Rig::new(ON);
    rig.backend
        .reply("/sie", ok("still good", "max-age=1, stale-if-error=60"));
    rig.get("/sie", &[]).await;
    until_stale(Instant::now(), 1).await;
    rig.backend.reply("/sie", server_error());
    let got = rig.get("/sie", &[]).await;
    assert_eq!(
        (got.status, got.text().as_str()),
        (200, "still good"),
        "{}",
        got.cache_status()
    );
    assert_eq!(
        got.param("fwd").as_deref(),
        Some("stale"),
        "{}",
        got.cache_status()
    );
    assert_eq!(rig.backend.count("/sie"), 2, "the origin was not asked");
}

/// The origin is gone (connection refused): the stale response is served.
#[tokio::test(flavor = "multi_thread")]
async fn stale_if_error_serves_stale_when_the_origin_is_down() {
    let mut rig = Rig::new(ON);
    rig.backend
        .reply("/down", ok("cached copy", "max-age=1, stale-if-error=60"));
    rig.get("/down", &[]).await;
    until_stale(Instant::now(), 1).await;
    rig.backend.stop();
    let got = rig.get("/down", &[]).await;
    assert_eq!(
        (got.status, got.text().as_str()),
        (200, "cached copy"),
        "{}",
        got.cache_status()
    );
}

/// Stale content served for a failed origin ends the connection (Pingora does not reuse it
/// after a failed upstream attempt): the answer says so.
#[tokio::test(flavor = "multi_thread")]
async fn stale_served_for_an_error_says_the_connection_closes() {
    use tokio::io::AsyncWriteExt;
    let rig = Rig::new(ON);
    rig.backend.reply(
        "/sie-close",
        ok("still good", "max-age=1, stale-if-error=60"),
    );
    rig.get("/sie-close", &[]).await;
    until_stale(Instant::now(), 1).await;
    rig.backend.reply("/sie-close", server_error());
    let mut stream = tokio::net::TcpStream::connect(rig.proxy.addr)
        .await
        .unwrap();
    let request = format!(
        "GET /sie-close HTTP/1.1\r\nHost: {}\r\n\r\n",
        rig.proxy.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let (status, headers) = support::raw::read_head(&mut stream).await;
    assert_eq!(status, 200, "{headers:?}");
    assert!(
        raw_header(&headers, "cache-status").is_some_and(|v| v.contains("fwd=stale")),
        "{headers:?}"
    );
    assert_eq!(
        raw_header(&headers, "connection"),
        Some("close"),
        "{headers:?}"
    );
}

/// A stale hit over HTTP/2 refreshes in the background like one over HTTP/1.1 (Pingora
/// rebuilds the refresh from the client's request as HTTP/1 text, which an `HTTP/2` version
/// line and a missing `Host` used to break: no refresh, and a cache lock left dangling).
#[tokio::test(flavor = "multi_thread")]
async fn stale_while_revalidate_refreshes_over_h2c_too() {
    let rig = Rig::new(ON);
    let h2 = support::h2c_client();
    rig.backend
        .reply("/swr2", ok("old", "max-age=1, stale-while-revalidate=30"));
    let filled = h2.get(rig.proxy.url("/swr2")).send().await.unwrap();
    assert_eq!(filled.version(), reqwest::Version::HTTP_2);
    assert_eq!(filled.text().await.unwrap(), "old");
    until_stale(Instant::now(), 1).await;
    rig.backend.reply("/swr2", ok("new", "max-age=60"));
    let stale = h2.get(rig.proxy.url("/swr2")).send().await.unwrap();
    assert_eq!(stale.text().await.unwrap(), "old");
    poll(
        "the background refresh to reach the origin",
        Duration::from_secs(5),
        || async { rig.backend.count("/swr2") == 2 },
    )
    .await;
    let start = Instant::now();
    loop {
        let got = h2.get(rig.proxy.url("/swr2")).send().await.unwrap();
        let status = got
            .headers()
            .get("cache-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if got.text().await.unwrap() == "new" {
            assert!(status.contains("hit"), "{status}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the refreshed body was never stored: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rig.backend.count("/swr2"), 2);
}

/// A HEAD miss over HTTP/2 is fetched as a GET to fill the cache; the client gets the header
/// without the body (Pingora's HTTP/2 writer used to send it, and the client reset the stream).
#[tokio::test(flavor = "multi_thread")]
async fn a_head_miss_over_h2c_gets_the_header_and_fills_the_cache() {
    let rig = Rig::new(ON);
    rig.backend.reply("/h2head", ok("the body", "max-age=60"));
    let h2 = support::h2c_client();
    let head = h2
        .head(rig.proxy.url("/h2head"))
        .send()
        .await
        .expect("HEAD over h2c");
    assert_eq!(head.version(), reqwest::Version::HTTP_2);
    assert_eq!(head.status(), 200);
    assert_eq!(head.bytes().await.unwrap().len(), 0);
    let got = rig.get("/h2head", &[]).await;
    assert_eq!(got.text(), "the body");
    assert!(got.hit(), "{}", got.cache_status());
    assert_eq!(rig.backend.count("/h2head"), 1);
}

/// The route's `stale_if_error` applies when the response has no directive of its own; a
/// `must-revalidate` response is never served stale (§4.2.4, §5.2.2.2): the client sees the
/// origin's error.
#[tokio::test(flavor = "multi_thread")]
async fn route_stale_if_error_and_must_revalidate() {
    let rig = Rig::new("enabled = true, stale_if_error = \"60s\"");
    rig.backend.reply("/route", ok("route policy", "max-age=1"));
    rig.backend
        .reply("/strict", ok("strict", "max-age=1, must-revalidate"));
    rig.get("/route", &[]).await;
    rig.get("/strict", &[]).await;
    until_stale(Instant::now(), 1).await;
    rig.backend.reply("/route", server_error());
    rig.backend.reply("/strict", server_error());

    let route = rig.get("/route", &[]).await;
    assert_eq!(
        (route.status, route.text().as_str()),
        (200, "route policy"),
        "{}",
        route.cache_status()
    );
    let strict = rig.get("/strict", &[]).await;
    assert_eq!(
        strict.status,
        500,
        "must-revalidate served stale: {}",
        strict.cache_status()
    );
    assert_eq!(strict.text(), "boom");
}

// ======================================================================================
// 10. Ranges from the cache (RFC 9110 §14)
// ======================================================================================

/// A single range is cut from the stored body (206, Content-Range) without the origin;
/// If-Range (§13.1.5) with the stored strong ETag gets the range, with another tag the
/// whole 200.
#[tokio::test(flavor = "multi_thread")]
async fn ranges_are_served_from_the_stored_body() {
    let rig = Rig::new(ON);
    rig.backend.reply(
        "/r",
        ok("0123456789abcdef", "max-age=60").header("ETag", "\"r1\""),
    );
    rig.get("/r", &[]).await;

    let part = rig.get("/r", &[("range", "bytes=0-4")]).await;
    assert_eq!(part.status, 206, "{}", part.cache_status());
    assert_eq!(part.text(), "01234");
    assert_eq!(part.header("content-range"), Some("bytes 0-4/16"));
    assert!(part.hit(), "{}", part.cache_status());

    let tail = rig.get("/r", &[("range", "bytes=10-")]).await;
    assert_eq!((tail.status, tail.text().as_str()), (206, "abcdef"));

    let same = rig
        .get("/r", &[("range", "bytes=5-9"), ("if-range", "\"r1\"")])
        .await;
    assert_eq!((same.status, same.text().as_str()), (206, "56789"));
    let other = rig
        .get("/r", &[("range", "bytes=5-9"), ("if-range", "\"other\"")])
        .await;
    assert_eq!(
        (other.status, other.text().as_str()),
        (200, "0123456789abcdef")
    );
    assert_eq!(rig.backend.count("/r"), 1, "a range went to the origin");
}

// ======================================================================================
// 11. Preconditions on hits (RFC 9110 §13)
// ======================================================================================

/// §13.1.2: If-None-Match matching the stored tag → 304 with the ETag and no body; §13.1.1:
/// If-Match not matching → 412; matching → 200. None reach the origin.
#[tokio::test(flavor = "multi_thread")]
async fn preconditions_are_evaluated_against_the_stored_response() {
    let rig = Rig::new(ON);
    rig.backend.reply("/p", ok("precondition", "max-age=60"));
    rig.get("/p", &[]).await;
    let hit = rig.get("/p", &[]).await;
    let tag = hit.header("etag").expect("a hit without ETag").to_string();

    let nm = rig.get("/p", &[("if-none-match", &tag)]).await;
    assert_eq!(nm.status, 304, "{}", nm.cache_status());
    assert!(nm.body.is_empty());
    assert_eq!(nm.header("etag"), Some(tag.as_str()));

    let other = rig.get("/p", &[("if-none-match", "\"nope\"")]).await;
    assert_eq!((other.status, other.text().as_str()), (200, "precondition"));

    let failed = rig.get("/p", &[("if-match", "\"nope\"")]).await;
    assert_eq!(failed.status, 412, "{}", failed.cache_status());
    assert!(failed.body.is_empty(), "412 with the stored body");
    assert!(
        failed.hit(),
        "the 412 was not answered from the stored response: {}",
        failed.cache_status()
    );

    let matched = rig.get("/p", &[("if-match", &tag)]).await;
    assert_eq!(
        (matched.status, matched.text().as_str()),
        (200, "precondition")
    );
    assert_eq!(rig.backend.count("/p"), 1);
}

// ======================================================================================
// 12. Invalidation (RFC 9111 §4.4)
// ======================================================================================

/// A non-error response to an unsafe method invalidates the request URL and the same-origin
/// `Location` / `Content-Location`; another origin's URL and error responses invalidate
/// nothing. Invalidation runs when the request is logged, after the client has its answer,
/// so each step waits until the POST has been logged (GET /cache counts it as a bypass).
#[tokio::test(flavor = "multi_thread")]
async fn unsafe_methods_invalidate_same_origin_urls() {
    let rig = Rig::new(ON);
    for path in ["/x", "/y", "/z", "/w", "/v"] {
        rig.backend.on(path, |req| match req.method.as_str() {
            "GET" => ok(&req.uri, "max-age=60"),
            // An error answer to the unsafe request on /w itself.
            _ if req.uri == "/w" => server_error(),
            _ => Reply::ok("done"),
        });
        rig.get(path, &[]).await;
        assert!(rig.get(path, &[]).await.hit(), "{path} not cached");
    }
    rig.backend
        .on("/create", |_| Reply::status(201).header("Location", "/y"));
    rig.backend.on("/create-elsewhere", |_| {
        Reply::status(201).header("Location", "http://elsewhere.example/z")
    });
    rig.backend.on("/update", |_| {
        Reply::ok("ok").header("Content-Location", "/v")
    });

    let mut posts = 0;
    let mut post = |method: Method, path: &'static str| {
        posts += 1;
        let n = posts;
        let rig = &rig;
        async move {
            let got = rig.send(method, path, &[], Some(b"{}".to_vec())).await;
            rig.wait_lookups("bypass", n).await;
            got.status
        }
    };

    assert_eq!(post(Method::POST, "/x").await, 200);
    assert_eq!(post(Method::POST, "/create").await, 201);
    assert_eq!(post(Method::POST, "/create-elsewhere").await, 201);
    assert_eq!(post(Method::POST, "/w").await, 500);
    assert_eq!(post(Method::PUT, "/update").await, 200);

    for (path, invalidated) in [
        ("/x", true),  // the request URL
        ("/y", true),  // same-origin Location
        ("/z", false), // Location on another host
        ("/w", false), // a 500 invalidates nothing
        ("/v", true),  // same-origin Content-Location
    ] {
        let got = rig.get(path, &[]).await;
        assert_eq!(!got.hit(), invalidated, "{path}: {}", got.cache_status());
        let gets = rig.backend.count_method("GET", path);
        assert_eq!(gets, if invalidated { 2 } else { 1 }, "{path}");
    }
}

// ======================================================================================
// 13. The key's query
// ======================================================================================

/// `key_query`: "none" ignores the query, "all" keeps it in a normalised order, a list keeps
/// only the listed parameters.
#[tokio::test(flavor = "multi_thread")]
async fn key_query_policies() {
    let rig = Rig::build(
        "",
        &[
            route("none", "/none/", "enabled = true, key_query = \"none\"", ""),
            route("all", "/all/", "enabled = true, key_query = \"all\"", ""),
            route(
                "allow",
                "/allow/",
                "enabled = true, key_query = [\"keep\"]",
                "",
            ),
        ]
        .concat(),
    );
    for path in ["/none/p", "/all/p", "/allow/p"] {
        rig.backend.on(path, |req| ok(&req.uri, "max-age=60"));
    }
    let body = |g: Got| g.text();

    assert_eq!(body(rig.get("/none/p?a=1", &[]).await), "/none/p?a=1");
    assert_eq!(body(rig.get("/none/p?a=2", &[]).await), "/none/p?a=1");
    assert_eq!(body(rig.get("/none/p", &[]).await), "/none/p?a=1");
    assert_eq!(rig.backend.count("/none/p"), 1);

    assert_eq!(body(rig.get("/all/p?a=1&b=2", &[]).await), "/all/p?a=1&b=2");
    assert_eq!(body(rig.get("/all/p?b=2&a=1", &[]).await), "/all/p?a=1&b=2");
    assert_eq!(rig.backend.count("/all/p"), 1, "order split the key");
    assert_eq!(body(rig.get("/all/p?a=2&b=2", &[]).await), "/all/p?a=2&b=2");
    assert_eq!(
        rig.backend.count("/all/p"),
        2,
        "a different query shared the key"
    );

    assert_eq!(
        body(rig.get("/allow/p?keep=1&drop=1", &[]).await),
        "/allow/p?keep=1&drop=1"
    );
    assert_eq!(
        body(rig.get("/allow/p?drop=2&keep=1", &[]).await),
        "/allow/p?keep=1&drop=1"
    );
    assert_eq!(
        rig.backend.count("/allow/p"),
        1,
        "an unlisted parameter split the key"
    );
    assert_eq!(
        body(rig.get("/allow/p?keep=2", &[]).await),
        "/allow/p?keep=2"
    );
    assert_eq!(
        rig.backend.count("/allow/p"),
        2,
        "a listed parameter was ignored"
    );
}

// ======================================================================================
// 14. Purge (admin API)
// ======================================================================================

/// Purge by key takes every Vary variant of the URL and nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn purge_by_key_takes_every_variant() {
    let rig = Rig::new(ON);
    rig.backend.on("/pk", |req| {
        let lang = req_header(req, "x-lang").unwrap_or("-").to_string();
        ok(&lang, "max-age=60").header("Vary", "X-Lang")
    });
    rig.backend.reply("/keep", ok("keep", "max-age=60"));
    rig.get("/pk", &[("x-lang", "en")]).await;
    rig.get("/pk", &[("x-lang", "fr")]).await;
    rig.get("/keep", &[]).await;
    rig.wait_objects(3).await;

    let key = format!("http://{}/pk", rig.proxy.addr);
    let (status, answer) = rig
        .purge(&serde_json::json!({ "key": key }).to_string())
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, serde_json::json!({ "purged": 2 }));
    assert_eq!(rig.cache().await["objects"], 1);
    assert!(!rig.get("/pk", &[("x-lang", "en")]).await.hit());
    assert!(!rig.get("/pk", &[("x-lang", "fr")]).await.hit());
    assert!(rig.get("/keep", &[]).await.hit());
    assert_eq!(rig.backend.count("/pk"), 4);

    // A bare path purges that path (and query, normalised) on whatever host clients used.
    rig.get("/keep?b=2&a=1", &[]).await;
    rig.wait_objects(4).await;
    let (status, answer) = rig.purge(r#"{"key": "/keep?a=1&b=2"}"#).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, serde_json::json!({ "purged": 1 }));
    assert!(!rig.get("/keep?b=2&a=1", &[]).await.hit());
    assert!(rig.get("/keep", &[]).await.hit());
}

/// Purge by prefix takes the paths under it only.
#[tokio::test(flavor = "multi_thread")]
async fn purge_by_prefix() {
    let rig = Rig::new(ON);
    for path in ["/pp/a", "/pp/b?q=1", "/ppx", "/other"] {
        rig.backend
            .reply(path.split('?').next().unwrap(), ok(path, "max-age=60"));
        rig.get(path, &[]).await;
    }
    rig.wait_objects(4).await;
    let (status, answer) = rig.purge(r#"{"prefix": "/pp/"}"#).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["purged"], 2, "{answer}");
    assert!(!rig.get("/pp/a", &[]).await.hit());
    assert!(!rig.get("/pp/b?q=1", &[]).await.hit());
    assert!(rig.get("/ppx", &[]).await.hit());
    assert!(rig.get("/other", &[]).await.hit());
}

/// Tags come from the route's tag header (`Surrogate-Key`, space-separated), which the client
/// never sees; purge by tag takes every object listing it. `{"all": true}` takes the rest.
#[tokio::test(flavor = "multi_thread")]
async fn purge_by_tag_and_all() {
    let rig = Rig::new(ON);
    rig.backend.reply(
        "/t1",
        ok("t1", "max-age=60").header("Surrogate-Key", "t1 t2"),
    );
    rig.backend
        .reply("/t2", ok("t2", "max-age=60").header("Surrogate-Key", "t2"));
    rig.backend
        .reply("/t3", ok("t3", "max-age=60").header("Surrogate-Key", "t3"));
    for path in ["/t1", "/t2", "/t3"] {
        let miss = rig.get(path, &[]).await;
        assert_eq!(
            miss.header("surrogate-key"),
            None,
            "{path}: tag header leaked (miss)"
        );
    }
    for path in ["/t1", "/t2", "/t3"] {
        let hit = rig.get(path, &[]).await;
        assert!(hit.hit());
        assert_eq!(
            hit.header("surrogate-key"),
            None,
            "{path}: tag header leaked (hit)"
        );
    }

    let (status, answer) = rig.purge(r#"{"tag": "t2"}"#).await;
    assert_eq!(
        (status, answer["purged"].as_u64()),
        (200, Some(2)),
        "{answer}"
    );
    assert!(rig.get("/t3", &[]).await.hit(), "t3 was purged with t2");
    assert!(!rig.get("/t1", &[]).await.hit(), "t1 survived purging t2");
    assert!(!rig.get("/t2", &[]).await.hit(), "t2 survived purging t2");
    rig.wait_objects(3).await;

    let (_, answer) = rig.purge(r#"{"tag": "t1"}"#).await;
    assert_eq!(answer["purged"], 1, "{answer}");
    let (_, answer) = rig.purge(r#"{"tag": "nobody"}"#).await;
    assert_eq!(answer["purged"], 0, "{answer}");

    let (status, answer) = rig.purge(r#"{"all": true}"#).await;
    assert_eq!(
        (status, answer["purged"].as_u64()),
        (200, Some(2)),
        "{answer}"
    );
    let report = rig.cache().await;
    assert_eq!(report["objects"], 0, "{report}");
    assert_eq!(report["bytes"], 0, "{report}");
}

/// Malformed purge bodies are 400 with a message; with `[admin] token` set, a purge without
/// the bearer token is 401 and purges nothing.
#[tokio::test(flavor = "multi_thread")]
async fn purge_rejects_bad_bodies_and_needs_the_token() {
    let rig = Rig::new(ON);
    for bad in [
        "not json",
        "{}",
        r#"{"key": "/a", "tag": "t"}"#,
        r#"{"all": false}"#,
    ] {
        let (status, answer) = rig.purge(bad).await;
        assert_eq!(status, 400, "{bad}: {answer}");
        let message = answer["error"].as_str().unwrap_or("");
        assert!(!message.is_empty(), "{bad}: no message in {answer}");
    }

    let backend = Backend::start();
    backend.reply("/s", ok("secret", "max-age=60"));
    let proxy = Proxy::start_with(|d, a| {
        let server = server_section(d, a).replace("[admin]\n", "[admin]\ntoken = \"s3cret\"\n");
        format!("{server}{}", conf(&backend, "", &route("c", "/", ON, "")))
    });
    client().get(proxy.url("/s")).send().await.unwrap();
    let purge = |auth: Option<&'static str>| {
        let mut req = client()
            .post(proxy.admin_url("/cache/purge"))
            .body(r#"{"all": true}"#);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        req.send()
    };
    assert_eq!(purge(None).await.unwrap().status(), 401);
    assert_eq!(purge(Some("Bearer wrong")).await.unwrap().status(), 401);
    let kept = client().get(proxy.url("/s")).send().await.unwrap();
    assert!(is_hit(kept.headers()["cache-status"].to_str().unwrap()));
    let ok = purge(Some("Bearer s3cret")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap()["purged"], 1);
}

// ======================================================================================
// 15. Targeted cache control (RFC 9213)
// ======================================================================================

/// `Outrider-Cache-Control` replaces `Cache-Control` for this cache's decisions (RFC 9213
/// §2.1) and is not forwarded to the client; `CDN-Cache-Control` is used when ours is absent;
/// the first field of the configured list that is present wins.
#[tokio::test(flavor = "multi_thread")]
async fn targeted_cache_control_wins_and_ours_is_not_forwarded() {
    let rig = Rig::new(ON);
    rig.backend.reply(
        "/ours",
        ok("ours", "no-store").header("Outrider-Cache-Control", "max-age=60"),
    );
    rig.backend.reply(
        "/cdn",
        ok("cdn", "no-store").header("CDN-Cache-Control", "max-age=60"),
    );
    rig.backend.reply(
        "/both",
        ok("both", "max-age=60")
            .header("Outrider-Cache-Control", "no-store")
            .header("CDN-Cache-Control", "max-age=60"),
    );
    for path in ["/ours", "/cdn", "/both"] {
        let miss = rig.get(path, &[]).await;
        assert_eq!(
            miss.header("outrider-cache-control"),
            None,
            "{path}: forwarded (miss)"
        );
        assert_eq!(
            miss.header("cache-control"),
            Some(if path == "/both" {
                "max-age=60"
            } else {
                "no-store"
            }),
            "{path}: Cache-Control is for downstream caches and must be kept"
        );
    }
    for path in ["/ours", "/cdn", "/both"] {
        let got = rig.get(path, &[]).await;
        assert_eq!(got.hit(), path != "/both", "{path}: {}", got.cache_status());
        assert_eq!(
            got.header("outrider-cache-control"),
            None,
            "{path}: forwarded (2nd)"
        );
    }
    assert_eq!(rig.backend.count("/ours"), 1);
    assert_eq!(rig.backend.count("/cdn"), 1);
    assert_eq!(
        rig.backend.count("/both"),
        2,
        "CDN-Cache-Control beat Outrider-Cache-Control"
    );
}

// ======================================================================================
// 16. Memory bound
// ======================================================================================

/// A flood of distinct keys keeps the store within `[cache] max_size` by evicting; an object
/// over `max_object_size` is served whole but not stored.
#[tokio::test(flavor = "multi_thread")]
async fn the_store_stays_within_max_size_and_skips_large_objects() {
    let rig = Rig::build(
        "max_size = \"200KiB\"\nmax_object_size = \"50KiB\"",
        &route("c", "/", ON, ""),
    );
    let cc = enc("Cache-Control:max-age=60");
    for i in 0..100 {
        let got = rig.get(&format!("/flood/{i}?size=10240&h={cc}"), &[]).await;
        assert_eq!(got.status, 200);
        assert!(got.body == pattern(0, 10240), "/flood/{i}: body differs");
    }
    let report = rig.cache().await;
    let bytes = report["bytes"].as_u64().unwrap();
    let max = report["max_bytes"].as_u64().unwrap();
    assert_eq!(max, 200 * 1024, "{report}");
    assert!(
        bytes <= max,
        "{bytes} bytes held over a {max}-byte bound: {report}"
    );
    assert!(report["evictions"].as_u64().unwrap() > 0, "{report}");
    let objects = report["objects"].as_u64().unwrap();
    assert!((5..100).contains(&objects), "{report}");
    // The most recent keys are the ones kept (LRU).
    assert!(rig
        .get(&format!("/flood/99?size=10240&h={cc}"), &[])
        .await
        .hit());

    let text = rig.metrics().await;
    let evictions = metric(&text, "outrider_cache_evictions_total", &[]).unwrap_or(0.0);
    assert!(
        evictions > 0.0,
        "outrider_cache_evictions_total = {evictions}"
    );

    let big = format!("/big?size=102400&h={cc}");
    for n in 1..=2 {
        let got = rig.get(&big, &[]).await;
        assert_eq!(got.status, 200, "#{n}");
        assert!(
            got.body == pattern(0, 102400),
            "#{n}: the large body differs"
        );
        assert!(!got.hit(), "#{n}: {}", got.cache_status());
    }
    assert_eq!(
        rig.backend.count("/big"),
        2,
        "an object over max_object_size was stored"
    );
    let after = rig.cache().await;
    assert!(after["bytes"].as_u64().unwrap() <= max, "{after}");
}

// ======================================================================================
// 17. Metrics
// ======================================================================================

/// `outrider_cache_lookups_total{route,result}` counts a known sequence exactly;
/// `outrider_cache_objects` / `_size_bytes` agree with GET /cache, and purges are counted.
#[tokio::test(flavor = "multi_thread")]
async fn cache_metrics_count_a_known_sequence() {
    let rig = Rig::build(
        "",
        &[route("m", "/", ON, ""), route("other", "/other/", ON, "")].concat(),
    );
    rig.backend.reply("/m", ok("metered", "max-age=60"));
    rig.backend.reply("/nostore", ok("x", "no-store"));
    rig.get("/m", &[]).await; // miss
    rig.wait_objects(1).await;
    rig.get("/m", &[]).await; // hit
    rig.get("/m", &[]).await; // hit
    rig.get("/m", &[("authorization", "Bearer a")]).await; // bypass
    rig.send(Method::POST, "/elsewhere", &[], None).await; // bypass
    rig.get("/nostore", &[]).await; // miss, not stored
    rig.get("/nostore", &[]).await; // miss, not stored
    poll("7 lookups logged", Duration::from_secs(5), || async {
        let l = &rig.cache().await["lookups"];
        ["hit", "miss", "stale", "revalidated", "coalesced", "bypass"]
            .iter()
            .map(|k| l[k].as_u64().unwrap_or(0))
            .sum::<u64>()
            == 7
    })
    .await;

    let text = rig.metrics().await;
    let lookups = |result: &str| {
        metric(
            &text,
            "outrider_cache_lookups_total",
            &[("route", "m"), ("result", result)],
        )
        .unwrap_or_else(|| panic!("no lookups series for result={result}:\n{text}"))
    };
    assert_eq!(lookups("hit"), 2.0);
    assert_eq!(lookups("miss"), 3.0);
    assert_eq!(lookups("bypass"), 2.0);
    assert_eq!(lookups("stale"), 0.0);
    assert_eq!(lookups("revalidated"), 0.0);
    assert_eq!(lookups("coalesced"), 0.0);

    let report = rig.cache().await;
    assert_eq!(report["objects"], 1, "{report}");
    assert_eq!(
        metric(&text, "outrider_cache_objects", &[]),
        report["objects"].as_f64(),
        "{report}"
    );
    assert_eq!(
        metric(&text, "outrider_cache_size_bytes", &[]),
        report["bytes"].as_f64(),
        "{report}"
    );
    assert!(report["bytes"].as_u64().unwrap() > "metered".len() as u64);
    let ratio = report["hit_ratio"].as_f64().unwrap();
    assert!(
        (ratio - 2.0 / 5.0).abs() < 1e-9,
        "hit_ratio {ratio}: {report}"
    );
    // `/stats` per route, over its window: route `m` looked the cache up 5 times (the two
    // bypasses are not lookups) and answered 2; `other` saw nothing, so it has no ratio.
    let stats: serde_json::Value = client()
        .get(rig.proxy.admin_url("/stats"))
        .send()
        .await
        .expect("GET /stats")
        .json()
        .await
        .expect("/stats is JSON");
    let route_ratio = stats["routes"]["m"]["cache_hit_ratio"].as_f64();
    assert!(
        route_ratio.is_some_and(|r| (r - 2.0 / 5.0).abs() < 1e-9),
        "{stats}"
    );
    assert!(
        stats["routes"]["other"]["cache_hit_ratio"].is_null(),
        "{stats}"
    );

    rig.purge(r#"{"all": true}"#).await;
    let text = rig.metrics().await;
    assert_eq!(metric(&text, "outrider_cache_purged_total", &[]), Some(1.0));
    assert_eq!(metric(&text, "outrider_cache_objects", &[]), Some(0.0));
    assert_eq!(metric(&text, "outrider_cache_size_bytes", &[]), Some(0.0));
}

// ======================================================================================
// 18. Reload
// ======================================================================================

/// The store outlives a policy reload (the built binary, its conf edited, POST /reload):
/// the entry is a hit before and after, and the origin sees one request.
#[tokio::test(flavor = "multi_thread")]
async fn cache_contents_survive_a_policy_reload() {
    let backend = Backend::start();
    backend.reply("/keep", ok("kept across reloads", "max-age=600"));
    let text = |d: u16, a: u16, extra: &str| {
        let routes = route("c", "/", ON, extra);
        format!(
            "{}{}",
            server_section(d, a),
            conf(&backend, "max_size = \"64MiB\"", &routes)
        )
    };
    let proxy = BinaryProxy::spawn(|d, a| text(d, a, ""));
    let url = format!("http://{}/keep", proxy.addr);
    let get =
        || async { Got::read(client().get(&url).send().await.unwrap(), Instant::now()).await };
    get().await;
    assert!(get().await.hit());

    let (d, a) = (proxy.addr.port(), proxy.admin.port());
    let edited = text(d, a, "server_timing = true").replace("\"64MiB\"", "\"32MiB\"");
    std::fs::write(proxy.config_path(), edited).unwrap();
    let resp = proxy.post_reload().await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert!(
        answer["result"] == "applied" || answer["result"] == "unchanged",
        "{answer}"
    );
    let config: Value = client()
        .get(format!("http://{}/config", proxy.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(config["generation"].as_u64().unwrap() >= 2, "{config}");

    let after = get().await;
    assert!(
        after.header("server-timing").is_some(),
        "the new policy is not in force"
    );
    assert!(
        after.hit(),
        "the entry did not survive the reload: {}",
        after.cache_status()
    );
    assert_eq!(after.text(), "kept across reloads");
    assert_eq!(backend.count("/keep"), 1);
}

// ======================================================================================
// 19. Compression of hits
// ======================================================================================

/// On a compressing route a hit is compressed for a client that accepts gzip (and decodes to
/// the stored body) while an identity client gets the stored bytes from the same entry.
#[tokio::test(flavor = "multi_thread")]
async fn hits_are_compressed_per_client() {
    let rig = Rig::new(ON);
    let body = text_body(8192);
    rig.backend.reply(
        "/z",
        ok(&body, "max-age=60").header("Content-Type", "text/plain; charset=utf-8"),
    );
    rig.get("/z", &[("accept-encoding", "gzip")]).await;
    for round in 0..2 {
        let gz = rig.get("/z", &[("accept-encoding", "gzip")]).await;
        assert!(gz.hit(), "round {round}: {}", gz.cache_status());
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "round {round}");
        assert!(gz.body.len() < body.len(), "round {round}: not compressed");
        assert_eq!(
            gz.decoded(),
            body.as_bytes(),
            "round {round}: gzip body differs"
        );
        assert!(
            gz.all("vary")
                .iter()
                .any(|v| v.to_ascii_lowercase().contains("accept-encoding")),
            "round {round}: no Vary: Accept-Encoding"
        );
        // The first gzip hit runs the encoder (chunked, length unknown up front) and keeps
        // the result beside the object; the next one is sent from it, with its length.
        let memoised = gz.header("content-length").map(str::to_string);
        if round == 0 {
            assert_eq!(
                memoised, None,
                "the first gzip hit was not encoded on the fly"
            );
        } else {
            assert_eq!(
                memoised,
                Some(gz.body.len().to_string()),
                "the second gzip hit was encoded again instead of sent from the memoised copy"
            );
        }

        let plain = rig.get("/z", &[]).await;
        assert!(plain.hit(), "round {round}: {}", plain.cache_status());
        assert_eq!(plain.header("content-encoding"), None, "round {round}");
        assert_eq!(
            plain.body,
            body.as_bytes(),
            "round {round}: identity body differs"
        );
    }
    assert_eq!(rig.backend.count("/z"), 1);
}

// ======================================================================================
// Helpers
// ======================================================================================

type Script = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// The origin: scripted per path (query ignored), falling back to the query script of
/// [`Reply::from_query`]; every request is logged here too, so counts survive [`Backend::stop`].
struct Backend {
    origin: Option<Origin>,
    addr: SocketAddr,
    scripts: Arc<Mutex<HashMap<String, Script>>>,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl Backend {
    fn start() -> Backend {
        let scripts: Arc<Mutex<HashMap<String, Script>>> = Default::default();
        let log: Arc<Mutex<Vec<Recorded>>> = Default::default();
        let (s, l) = (scripts.clone(), log.clone());
        let origin = Origin::with_handler(move |req| {
            l.lock().unwrap().push(req.clone());
            let (path, query) = split_uri(&req.uri);
            let script = s.lock().unwrap().get(path).cloned();
            match script {
                Some(script) => script(req),
                None => Reply::from_query(query),
            }
        });
        Backend {
            addr: origin.addr,
            origin: Some(origin),
            scripts,
            log,
        }
    }

    /// Answers every request for `path` with `reply` from now on.
    fn reply(&self, path: &str, reply: Reply) {
        self.on(path, move |_| reply.clone());
    }

    /// Answers requests for `path` with `script(request)` from now on.
    fn on(&self, path: &str, script: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) {
        self.scripts
            .lock()
            .unwrap()
            .insert(path.to_string(), Arc::new(script));
    }

    /// Requests for `path` (any query, any method) seen so far.
    fn count(&self, path: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| split_uri(&r.uri).0 == path)
            .count()
    }

    fn count_method(&self, method: &str, path: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == method && split_uri(&r.uri).0 == path)
            .count()
    }

    fn last(&self, path: &str) -> Recorded {
        self.log
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|r| split_uri(&r.uri).0 == path)
            .cloned()
            .unwrap_or_else(|| panic!("the origin never saw {path}"))
    }

    /// Shuts the origin down: its port refuses connections from now on.
    fn stop(&mut self) {
        drop(self.origin.take());
        assert!(
            std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err(),
            "the origin still accepts"
        );
    }

    fn upstream_toml(&self) -> String {
        format!("[upstreams.app]\nendpoints = [\"{}\"]\n\n", self.addr)
    }
}

fn split_uri(uri: &str) -> (&str, Option<&str>) {
    match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, None),
    }
}

fn req_header<'a>(req: &'a Recorded, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// A 200 with `body` and `Cache-Control: cc`.
fn ok(body: &str, cc: &str) -> Reply {
    Reply::ok(body.to_string()).header("Cache-Control", cc)
}

/// A 304 as origins send it: no body, no Content-Length (which would describe the 200's body).
fn not_modified() -> Reply {
    Reply {
        status: 304,
        chunked: true,
        ..Default::default()
    }
}

fn server_error() -> Reply {
    Reply {
        status: 500,
        body: Some("boom".into()),
        ..Default::default()
    }
}

/// Compressible text of `len` bytes.
fn text_body(len: usize) -> String {
    let line = "the quick brown fox jumps over the lazy dog, again and again\n";
    line.repeat(len / line.len() + 1)[..len].to_string()
}

/// A `[[routes]]` table named `name` on `prefix`, going to upstream "app", with the inline
/// cache table `cache` and `extra` lines.
fn route(name: &str, prefix: &str, cache: &str, extra: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\nupstream = \"app\"\nmatch = {{ path_prefix = \"{prefix}\" }}\n\
         cache = {{ {cache} }}\n{extra}\n\n"
    )
}

/// The conf body: the backend as upstream "app", `[cache]` lines, then `routes`.
fn conf(backend: &Backend, store: &str, routes: &str) -> String {
    format!("{}[cache]\n{store}\n\n{routes}", backend.upstream_toml())
}

struct Rig {
    backend: Backend,
    proxy: Proxy,
}

impl Rig {
    /// One route "c" on `/` with the inline cache table `cache`.
    fn new(cache: &str) -> Rig {
        Rig::build("", &route("c", "/", cache, ""))
    }

    fn build(store: &str, routes: &str) -> Rig {
        let backend = Backend::start();
        let proxy = Proxy::start(&conf(&backend, store, routes));
        Rig { backend, proxy }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Got {
        self.send(Method::GET, path, headers, None).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Got {
        let mut req = client().request(method, self.proxy.url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let started = Instant::now();
        let resp = req.send().await.expect("request through the proxy");
        Got::read(resp, started).await
    }

    /// GET /cache.
    async fn cache(&self) -> Value {
        let resp = client()
            .get(self.proxy.admin_url("/cache"))
            .send()
            .await
            .expect("GET /cache");
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("GET /cache JSON")
    }

    /// POST /cache/purge with `body`: the status and the JSON answer.
    async fn purge(&self, body: &str) -> (u16, Value) {
        let resp = client()
            .post(self.proxy.admin_url("/cache/purge"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("POST /cache/purge");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("purge answer is not JSON ({e}): {text:?}"));
        (status, json)
    }

    async fn metrics(&self) -> String {
        client()
            .get(self.proxy.admin_url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .unwrap()
    }

    /// Waits until the store holds `n` objects (a fill completes after the client may have
    /// read the whole body).
    async fn wait_objects(&self, n: u64) {
        poll(
            &format!("{n} objects in the store"),
            Duration::from_secs(5),
            || async { self.cache().await["objects"].as_u64() == Some(n) },
        )
        .await;
    }

    /// Waits until GET /cache counts `n` lookups of `kind`: the requests have been through
    /// `logging` (where invalidation happens).
    async fn wait_lookups(&self, kind: &str, n: u64) {
        poll(
            &format!("{n} {kind} lookups"),
            Duration::from_secs(5),
            || async { self.cache().await["lookups"][kind].as_u64() == Some(n) },
        )
        .await;
    }
}

/// Polls `cond` every 20 ms until it holds; panics after `deadline`.
async fn poll<F, Fut>(what: &str, deadline: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// GETs `path` every 50 ms until `done(response)` holds; returns that response.
async fn poll_get(
    rig: &Rig,
    path: &str,
    deadline: Duration,
    mut done: impl FnMut(&Got) -> bool,
) -> Got {
    let start = Instant::now();
    loop {
        let got = rig.get(path, &[]).await;
        if done(&got) {
            return got;
        }
        assert!(
            start.elapsed() < deadline,
            "{path}: condition not met after {deadline:?}; last: {} {}",
            got.status,
            got.cache_status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until an entry stored from a response received at `received` with `max-age` seconds
/// of freshness is certainly stale. The proxy took its response time before `received`, and
/// the origin's `Date` only makes the entry older, so `received + max-age` is late enough.
async fn until_stale(received: Instant, max_age: u64) {
    let at = received + Duration::from_secs(max_age) + Duration::from_millis(50);
    tokio::time::sleep_until(at.into()).await;
}

/// Accessors for what the cache adds to a response.
impl Got {
    /// The body with its Content-Encoding undone.
    fn decoded(&self) -> Vec<u8> {
        match self.header("content-encoding") {
            None => self.body.clone(),
            Some("gzip") => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&self.body[..])
                    .read_to_end(&mut out)
                    .expect("gzip");
                out
            }
            Some("br") => {
                let mut out = Vec::new();
                brotli::Decompressor::new(&self.body[..], 4096)
                    .read_to_end(&mut out)
                    .expect("br");
                out
            }
            Some("zstd") => zstd::decode_all(&self.body[..]).expect("zstd"),
            Some(other) => panic!("unexpected Content-Encoding {other}"),
        }
    }

    fn cache_status(&self) -> &str {
        self.header("cache-status").unwrap_or("")
    }

    fn hit(&self) -> bool {
        is_hit(self.cache_status())
    }

    /// A bare parameter of our `Cache-Status` member is present (`stored`, `collapsed`).
    fn has(&self, name: &str) -> bool {
        params(self.cache_status()).iter().any(|(k, _)| k == name)
    }

    /// A parameter's value, unquoted (`fwd`, `fwd-status`, `ttl`, `detail`).
    fn param(&self, name: &str) -> Option<String> {
        params(self.cache_status())
            .into_iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v)
    }
}

/// The parameters of the `outrider` member of a `Cache-Status` value (RFC 9211).
fn params(value: &str) -> Vec<(String, Option<String>)> {
    let member = value
        .split(',')
        .map(str::trim)
        .find(|m| m.starts_with("outrider"))
        .unwrap_or("");
    member
        .split(';')
        .skip(1)
        .map(|p| match p.trim().split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.trim_matches('"').to_string())),
            None => (p.trim().to_string(), None),
        })
        .collect()
}

fn is_hit(cache_status: &str) -> bool {
    params(cache_status).iter().any(|(k, _)| k == "hit")
}

/// Asserts `tag` looks like a generated one: strong, 32 lowercase hex digits.
fn generated(tag: &str) {
    let inner = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not a strong tag: {tag}"));
    assert!(
        inner.len() == 32
            && inner
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "not 32 lowercase hex digits: {tag}"
    );
}

/// Percent-encodes a query value for the origin's `h=` script.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
