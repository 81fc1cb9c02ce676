//! Miss then hit, storability (RFC 9111 §3) and freshness (RFC 9111 §4.2).

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::cache::helpers::{
    generated, is_hit, not_modified, ok, poll_get, req_header, route, Rig, ON,
};
use crate::support::raw::{raw_exchange, raw_header};
use crate::support::Reply;

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
