//! Issue #21, cache conformance: a 304 updates the stored response (RFC 9111 §3.2, §4.3.4),
//! `Age` with several values (§5.1), targeted fields forwarded (RFC 9213), stale content
//! refused when disconnected under the must-revalidate family (§4.2.4), conditional answers
//! from the cache shaped and counted like the buffered leg's, and the miss that fills the
//! cache carrying the generated ETag of the hits.

use std::time::{Duration, Instant, SystemTime};

use crate::cache::helpers::{not_modified, ok, req_header, until_stale, Rig, ON};

fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

// ======================================================================================
// 1. A 304 updates the stored response
// ======================================================================================

/// Every field of the origin's 304 replaces the stored one, arbitrary names included, and
/// the 304's `Date` too; `Content-Length` keeps describing the stored body. The revalidated
/// response and the hits after it carry the new values.
#[tokio::test(flavor = "multi_thread")]
async fn a_304_updates_every_stored_field_and_later_hits_carry_them() {
    let rig = Rig::new(ON);
    // Dated 30 s ago with max-age=1: stored stale (it has a validator), so the next request
    // revalidates at once.
    let old_date = http_date(SystemTime::now() - Duration::from_secs(30));
    let new_date = http_date(SystemTime::now());
    let nd = new_date.clone();
    rig.backend.on("/upd", move |req| {
        if req_header(req, "if-none-match") == Some("\"v1\"") {
            not_modified()
                .header("ETag", "\"v1\"")
                .header("Cache-Control", "max-age=60")
                .header("Date", &nd)
                .header("Test-Header", "new")
                .header("X-Custom", "new")
                .header("Content-Foo", "new")
        } else {
            ok("version one", "max-age=1")
                .header("ETag", "\"v1\"")
                .header("Date", &old_date)
                .header("Test-Header", "old")
                .header("X-Custom", "old")
                .header("Content-Foo", "old")
        }
    });
    let first = rig.get("/upd", &[]).await;
    assert_eq!(first.header("test-header"), Some("old"));

    let reval = rig.get("/upd", &[]).await;
    assert_eq!(
        reval.param("fwd-status").as_deref(),
        Some("304"),
        "{}",
        reval.cache_status()
    );
    let next = rig.get("/upd", &[]).await;
    assert!(next.hit(), "{}", next.cache_status());
    for (what, got) in [("revalidated", &reval), ("later hit", &next)] {
        for name in ["test-header", "x-custom", "content-foo"] {
            assert_eq!(got.header(name), Some("new"), "{what}: {name}");
        }
        assert_eq!(got.header("date"), Some(new_date.as_str()), "{what}: Date");
        assert_eq!(got.header("content-length"), Some("11"), "{what}");
        assert_eq!(got.text(), "version one", "{what}");
    }
    assert_eq!(rig.backend.count("/upd"), 2);
}

// ======================================================================================
// 2. Age with several values
// ======================================================================================

/// `Age: 7200, 0` on one line: the first value counts, so the response is two hours old and
/// stale (its max-age is one hour); the next request goes to the origin.
#[tokio::test(flavor = "multi_thread")]
async fn the_first_age_value_on_a_line_counts() {
    let rig = Rig::new(ON);
    rig.backend
        .reply("/age1", ok("old", "max-age=3600").header("Age", "7200, 0"));
    rig.get("/age1", &[]).await;
    let second = rig.get("/age1", &[]).await;
    assert!(!second.hit(), "served as fresh: {}", second.cache_status());
    assert_eq!(rig.backend.count("/age1"), 2);
}

/// `Age: 0` then `Age: 7200` on separate lines: the first line counts, so the response is
/// fresh and the next request is a hit.
#[tokio::test(flavor = "multi_thread")]
async fn the_first_age_line_counts() {
    let rig = Rig::new(ON);
    rig.backend.reply(
        "/age2",
        ok("new", "max-age=3600")
            .header("Age", "0")
            .header("Age", "7200"),
    );
    rig.get("/age2", &[]).await;
    let second = rig.get("/age2", &[]).await;
    assert!(second.hit(), "{}", second.cache_status());
    assert_eq!(rig.backend.count("/age2"), 1);
}

// ======================================================================================
// 3. Targeted fields (RFC 9213)
// ======================================================================================

/// `CDN-Cache-Control` decides for Outrider and still reaches the client, on the miss and on
/// hits; `Outrider-Cache-Control` is ours and never leaves.
#[tokio::test(flavor = "multi_thread")]
async fn cdn_cache_control_is_honoured_and_forwarded() {
    let rig = Rig::new(ON);
    rig.backend.reply(
        "/cdn",
        ok("cdn", "no-store").header("CDN-Cache-Control", "max-age=60"),
    );
    rig.backend.reply(
        "/ours",
        ok("ours", "no-store")
            .header("Outrider-Cache-Control", "max-age=60")
            .header("CDN-Cache-Control", "no-store"),
    );
    for round in ["miss", "hit"] {
        let cdn = rig.get("/cdn", &[]).await;
        assert_eq!(
            cdn.header("cdn-cache-control"),
            Some("max-age=60"),
            "{round}"
        );
        assert_eq!(cdn.hit(), round == "hit", "{round}: {}", cdn.cache_status());
        let ours = rig.get("/ours", &[]).await;
        assert_eq!(ours.header("outrider-cache-control"), None, "{round}");
        assert_eq!(
            ours.header("cdn-cache-control"),
            Some("no-store"),
            "{round}"
        );
        assert_eq!(
            ours.hit(),
            round == "hit",
            "{round}: {}",
            ours.cache_status()
        );
    }
    assert_eq!(rig.backend.count("/cdn"), 1);
    assert_eq!(rig.backend.count("/ours"), 1);
}

// ======================================================================================
// 4. No stale content when disconnected under the must-revalidate family
// ======================================================================================

/// The origin is gone. A route `stale_if_error` serves a plain stale response, but never one
/// with `must-revalidate`, `proxy-revalidate`, `no-cache` or `s-maxage` (§4.2.4, §5.2.2.2,
/// §5.2.2.8, §5.2.2.10): those get the error.
#[tokio::test(flavor = "multi_thread")]
async fn no_stale_when_disconnected_under_the_must_revalidate_family() {
    let mut rig = Rig::new("enabled = true, stale_if_error = \"60s\"");
    let cases = [
        ("/plain", "max-age=1"),
        ("/must", "max-age=1, must-revalidate"),
        ("/proxy", "max-age=1, proxy-revalidate"),
        ("/nocache", "no-cache"),
        ("/smaxage", "s-maxage=1"),
    ];
    for (path, cc) in cases {
        rig.backend
            .reply(path, ok(path, cc).header("ETag", "\"x\""));
        let filled = rig.get(path, &[]).await;
        assert_eq!(filled.status, 200, "{path}");
    }
    until_stale(Instant::now(), 1).await;
    rig.backend.stop();
    for (path, cc) in cases {
        let got = rig.get(path, &[]).await;
        if path == "/plain" {
            assert_eq!(
                (got.status, got.text().as_str()),
                (200, path),
                "{cc}: {}",
                got.cache_status()
            );
        } else {
            assert!(
                got.status >= 500,
                "{cc}: served stale while disconnected: {} {}",
                got.status,
                got.cache_status()
            );
        }
    }
}

// ======================================================================================
// 5. Conditional answers from the cache on a compressing route
// ======================================================================================

fn varies_on_accept_encoding(got: &crate::support::got::Got) -> bool {
    got.all("vary")
        .iter()
        .any(|v| v.to_ascii_lowercase().contains("accept-encoding"))
}

/// A 304 from a stored response names the representation this client's 200 would carry: the
/// weak tag when the 200 is compressed for it, the strong one when not, and both with
/// `Vary: Accept-Encoding`. `outrider_conditional_responses_total` counts them and the 412.
#[tokio::test(flavor = "multi_thread")]
async fn a_304_from_the_cache_matches_the_200_this_client_would_get() {
    let rig = Rig::new(ON);
    let body = crate::cache::helpers::text_body(8192);
    rig.backend.reply(
        "/cz",
        ok(&body, "max-age=60").header("Content-Type", "text/plain; charset=utf-8"),
    );
    rig.get("/cz", &[("accept-encoding", "gzip")]).await;
    let gz = rig.get("/cz", &[("accept-encoding", "gzip")]).await;
    assert!(gz.hit(), "{}", gz.cache_status());
    let weak = gz
        .header("etag")
        .expect("a gzip hit without ETag")
        .to_string();
    assert!(weak.starts_with("W/"), "{weak}");
    let plain = rig.get("/cz", &[]).await;
    let strong = plain
        .header("etag")
        .expect("a hit without ETag")
        .to_string();
    assert!(!strong.starts_with("W/"), "{strong}");

    let nm = rig
        .get(
            "/cz",
            &[("accept-encoding", "gzip"), ("if-none-match", &weak)],
        )
        .await;
    assert_eq!(nm.status, 304, "{}", nm.cache_status());
    assert_eq!(nm.header("etag"), Some(weak.as_str()), "gzip client's 304");
    assert!(
        varies_on_accept_encoding(&nm),
        "gzip client's 304 lacks Vary"
    );

    let nm = rig.get("/cz", &[("if-none-match", &strong)]).await;
    assert_eq!(nm.status, 304, "{}", nm.cache_status());
    assert_eq!(
        nm.header("etag"),
        Some(strong.as_str()),
        "identity client's 304"
    );
    assert!(
        varies_on_accept_encoding(&nm),
        "identity client's 304 lacks Vary"
    );

    let failed = rig.get("/cz", &[("if-match", "\"nope\"")]).await;
    assert_eq!(failed.status, 412, "{}", failed.cache_status());
    assert_eq!(rig.backend.count("/cz"), 1);

    let want = [
        "outrider_conditional_responses_total{route=\"c\",status=\"304\"} 2",
        "outrider_conditional_responses_total{route=\"c\",status=\"412\"} 1",
    ];
    crate::cache::helpers::poll(
        "the conditional answers counted",
        Duration::from_secs(5),
        || async {
            let text = rig.metrics().await;
            want.iter().all(|w| text.lines().any(|l| l == *w))
        },
    )
    .await;
}

/// A 412 looks the same from the cache and from the buffered leg of a route that does not
/// cache: no body, `Content-Length: 0`, `Cache-Control: no-store`, no `Content-Type`.
#[tokio::test(flavor = "multi_thread")]
async fn a_412_has_one_shape_whichever_leg_answers_it() {
    let routes = format!(
        "{}{}",
        crate::cache::helpers::route("nc", "/nc/", "enabled = false", ""),
        crate::cache::helpers::route("c", "/", ON, "")
    );
    let rig = Rig::build("", &routes);
    for path in ["/nc/x", "/x"] {
        rig.backend.reply(path, ok("some body", "max-age=60"));
    }
    rig.get("/x", &[]).await;
    let mut shapes = Vec::new();
    for path in ["/nc/x", "/x"] {
        let got = rig.get(path, &[("if-match", "\"nope\"")]).await;
        assert_eq!(got.status, 412, "{path}");
        shapes.push((
            got.body.clone(),
            got.header("content-length").map(str::to_string),
            got.header("cache-control").map(str::to_string),
            got.header("content-type").map(str::to_string),
        ));
    }
    assert_eq!(shapes[0], shapes[1], "buffered leg vs cache");
    assert_eq!(shapes[0].1.as_deref(), Some("0"));
}

// ======================================================================================
// 6. The miss carries the generated ETag
// ======================================================================================

/// With `etag.generate` on, the miss that fills the cache carries the generated tag the hits
/// after it carry, for a GET and for a HEAD (fetched as a GET, so the body fills the cache).
#[tokio::test(flavor = "multi_thread")]
async fn the_miss_carries_the_generated_etag_of_the_hits() {
    let rig = Rig::new(ON);
    rig.backend.reply("/tag", ok("tagged body", "max-age=60"));
    rig.backend.reply("/htag", ok("head body", "max-age=60"));
    let miss = rig.get("/tag", &[]).await;
    assert!(!miss.hit(), "{}", miss.cache_status());
    assert!(
        miss.cache_status().contains("stored"),
        "{}",
        miss.cache_status()
    );
    let tag = miss
        .header("etag")
        .expect("the miss has no ETag")
        .to_string();
    crate::cache::helpers::generated(&tag);
    assert_eq!(miss.text(), "tagged body");
    let hit = rig.get("/tag", &[]).await;
    assert!(hit.hit(), "{}", hit.cache_status());
    assert_eq!(hit.header("etag"), Some(tag.as_str()));
    assert_eq!(rig.backend.count("/tag"), 1);

    let head = rig.send(reqwest::Method::HEAD, "/htag", &[], None).await;
    let head_tag = head
        .header("etag")
        .expect("the HEAD miss has no ETag")
        .to_string();
    let hit = rig.get("/htag", &[]).await;
    assert!(hit.hit(), "{}", hit.cache_status());
    assert_eq!(hit.header("etag"), Some(head_tag.as_str()));
    assert_eq!(hit.text(), "head body");
    assert_eq!(rig.backend.count("/htag"), 1);
}

/// Concurrent misses still coalesce on the one fetch, and every one of them carries the tag.
#[tokio::test(flavor = "multi_thread")]
async fn coalesced_misses_all_carry_the_generated_etag() {
    let rig = Rig::new(ON);
    let mut slow = ok("slow body", "max-age=60");
    slow.delay = Duration::from_millis(300);
    rig.backend.reply("/slow", slow);
    let gets = (0..5).map(|_| rig.get("/slow", &[]));
    let all = futures_util::future::join_all(gets).await;
    let tags: Vec<_> = all
        .iter()
        .map(|g| g.header("etag").map(str::to_string))
        .collect();
    assert!(tags[0].is_some(), "{tags:?}");
    assert!(tags.iter().all(|t| t == &tags[0]), "{tags:?}");
    assert!(all.iter().all(|g| g.text() == "slow body"));
    assert_eq!(rig.backend.count("/slow"), 1);
}
