//! Load balancing, upstream keep-alive and upstream failures.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::proxy::helpers::{header_str, named_origin, RawOrigin, RawReply, NO_ETAG};
use crate::support::{self, client, free_port, Origin, Proxy};

// ======================================================================================
// Load balancing and upstream keep-alive
// ======================================================================================

#[tokio::test]
async fn round_robin_spreads_requests_evenly_over_endpoints() {
    let origins = [named_origin("e0"), named_origin("e1"), named_origin("e2")];
    let endpoints: Vec<String> = origins.iter().map(|o| format!("\"{}\"", o.addr)).collect();
    let proxy = Proxy::start(&format!(
        "[upstreams.pool]\nendpoints = [{}]\n",
        endpoints.join(", ")
    ));
    let http = client();
    let mut order = Vec::new();
    for i in 0..30 {
        let resp = http
            .get(proxy.url(&format!("/rr/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        order.push(header_str(&resp, "x-origin"));
    }
    for o in &origins {
        assert_eq!(o.request_count(), 10, "uneven spread: {order:?}");
    }
    // Strict rotation: no endpoint is picked twice in a row.
    assert!(
        order.windows(2).all(|w| w[0] != w[1]),
        "not round robin: {order:?}"
    );
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let origin = RawOrigin::start(RawReply::KeepAliveOk);
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let http = client();
    const N: usize = 20;
    for i in 0..N {
        let resp = http
            .get(proxy.url(&format!("/ka/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "ok");
    }
    assert_eq!(origin.requests(), N);
    let conns = origin.connections();
    assert!(
        conns <= N / 4,
        "{N} sequential requests opened {conns} upstream connections; the pool is not reused"
    );
}

// ======================================================================================
// Upstream failures
// ======================================================================================

/// Pingora closes the client connection after a failed request; the answer must say so, or a
/// client that reuses the connection meets a reset on its next request.
#[tokio::test]
async fn a_failure_answer_says_the_connection_closes() {
    let dead_port = free_port();
    let proxy = Proxy::start(&format!(
        "[upstreams.backend]\nendpoints = [\"127.0.0.1:{dead_port}\"]\nconnect_timeout = \"1s\"\n"
    ));
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let (status, headers) = support::raw::read_head(&mut stream).await;
    assert_eq!(status, 502);
    assert_eq!(
        support::raw::raw_header(&headers, "connection"),
        Some("close"),
        "{headers:?}"
    );
}

/// HEAD over h2c answered by the proxy itself (502 while the backend is down, then 503 once
/// the breaker opens): the header only, and a stream that ends cleanly. Pingora's HTTP/2
/// writer used to send the error body on a HEAD stream, and a stream ended on its header was
/// then reset (CANCEL), which clients report as a failed request.
#[tokio::test(flavor = "multi_thread")]
async fn head_over_h2c_answered_by_the_proxy_ends_the_stream_cleanly() {
    let dead_port = free_port();
    let proxy = Proxy::start(&format!(
        "[upstreams.app]\nendpoints = [\"127.0.0.1:{dead_port}\"]\n\
         [upstreams.app.breaker]\nconsecutive_failures = 2\n"
    ));
    let h2 = support::h2c_client();
    let mut statuses = Vec::new();
    for i in 0..10 {
        let resp = h2
            .head(proxy.url(&format!("/k{i}")))
            .send()
            .await
            .expect("HEAD over h2c");
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        statuses.push(resp.status().as_u16());
        let body = resp.bytes().await;
        assert!(
            body.as_ref().is_ok_and(|b| b.is_empty()),
            "request {i}: {body:?}"
        );
        // A GET on the same connection still gets the body.
        let get = h2.get(proxy.url("/g")).send().await.expect("GET over h2c");
        let text = get.text().await.expect("GET body");
        assert!(text.starts_with("50"), "{text:?}");
    }
    assert!(
        statuses.contains(&502) && statuses.contains(&503),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn refused_connection_is_a_502_naming_the_upstream_without_its_address() {
    let dead_port = free_port();
    let proxy = Proxy::start(&format!(
        "[upstreams.backend]\nendpoints = [\"127.0.0.1:{dead_port}\"]\nconnect_timeout = \"1s\"\n"
    ));
    let resp = client().get(proxy.url("/x")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert!(header_str(&resp, "content-type").starts_with("text/plain"));
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("\"backend\""),
        "body should name the upstream: {body:?}"
    );
    assert!(
        !body.contains("127.0.0.1"),
        "internal address leaked: {body:?}"
    );
    assert!(
        !body.contains(&dead_port.to_string()),
        "internal port leaked: {body:?}"
    );
    assert!(body.len() < 200, "a short body, got {body:?}");
}

#[tokio::test]
async fn slow_upstream_is_a_504_after_the_read_timeout() {
    let origin = Origin::start();
    let proxy = Proxy::start(&format!(
        // A second of read timeout: far below the origin's 5 s, far above what a loaded machine
        // takes to answer the fast request below.
        "[upstreams.slow]\nendpoints = [\"{}\"]\nread_timeout = \"1s\"\n",
        origin.addr
    ));
    let started = Instant::now();
    let resp = client()
        .get(proxy.url("/slow?delay_ms=5000"))
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(resp.status(), 504);
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("\"slow\""),
        "body should name the upstream: {body:?}"
    );
    assert!(
        !body.contains("127.0.0.1"),
        "internal address leaked: {body:?}"
    );
    // The origin would have answered after 5 s; the timeout must cut in long before.
    assert!(elapsed < Duration::from_secs(4), "504 took {elapsed:?}");
    // And an answer inside the timeout still passes.
    let ok = client()
        .get(proxy.url("/fast?size=10"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn malformed_or_missing_upstream_response_is_a_502() {
    for reply in [&b"HELLO\r\n\r\n"[..], b"HTTP/1.1 abc\r\n\r\n", b""] {
        let origin = RawOrigin::start(RawReply::ThenClose(reply));
        let proxy = Proxy::start(&origin.upstream_toml("raw"));
        let resp = client().get(proxy.url("/x")).send().await.unwrap();
        assert_eq!(resp.status(), 502, "upstream answered {reply:?}");
        let body = resp.text().await.unwrap();
        assert!(
            body.contains("\"raw\""),
            "body should name the upstream: {body:?}"
        );
        assert!(
            !body.contains("127.0.0.1"),
            "internal address leaked: {body:?}"
        );
        assert!(origin.requests() >= 1);
    }
}

#[tokio::test]
async fn truncated_upstream_body_is_not_passed_off_as_complete() {
    let origin = RawOrigin::start(RawReply::ThenClose(
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789",
    ));
    let proxy = Proxy::start(&format!("{}{NO_ETAG}", origin.upstream_toml("raw")));
    let resp = client().get(proxy.url("/x")).send().await.unwrap();
    // The header was already forwarded; the only honest signal left is an incomplete body.
    assert_eq!(resp.status(), 200);
    assert_eq!(header_str(&resp, "content-length"), "100");
    assert!(
        resp.bytes().await.is_err(),
        "a 10-byte body was delivered as complete"
    );
}

#[tokio::test]
async fn truncated_upstream_body_held_for_an_etag_is_a_502() {
    let origin = RawOrigin::start(RawReply::ThenClose(
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789",
    ));
    let proxy = Proxy::start(&origin.upstream_toml("raw"));
    let resp = client().get(proxy.url("/x")).send().await.unwrap();
    // The body was being hashed when it broke off: nothing was sent yet, so the client gets
    // an honest 502 instead of a header promising 100 bytes.
    assert_eq!(resp.status(), 502);
    assert!(resp.headers().get("etag").is_none());
}

#[tokio::test]
async fn a_dead_endpoint_does_not_fail_requests_while_another_is_up() {
    let origin = named_origin("live");
    let proxy = Proxy::start(&format!(
        "[upstreams.app]\nendpoints = [\"{}\", \"127.0.0.1:{}\"]\n",
        origin.addr,
        free_port()
    ));
    let http = client();
    for i in 0..6 {
        let resp = http
            .get(proxy.url(&format!("/r/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
    }
}
