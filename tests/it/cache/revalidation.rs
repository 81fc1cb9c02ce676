//! Revalidation (RFC 9111 §4.3), stale-while-revalidate and stale-if-error (RFC 5861).

use std::time::{Duration, Instant};

use crate::cache::helpers::{
    not_modified, ok, poll, req_header, route, server_error, until_stale, Rig, LM, ON,
};
use crate::support;
use crate::support::raw::raw_header;

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
