//! Integration suite for the data plane ("foundation"): a real Outrider in-process, real
//! HTTP/1.1 origins, real clients. Every test asserts something that breaks if the feature does.
//!
//! Sections: route matching · fallback rules · load balancing and upstream keep-alive ·
//! upstream failures · header hygiene · bodies · large transfers · HTTP/2 cleartext ·
//! admin plane · concurrency. Shared helpers are at the end of the file.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::header::HOST;
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::origin::pattern;
use support::origin::Period;
use support::raw::{raw_exchange, raw_header};
use support::{client, free_port, h2c_client, Origin, Proxy, Reply};

// ======================================================================================
// Route matching
// ======================================================================================

#[tokio::test]
async fn routes_by_exact_host_case_insensitively_and_ignoring_the_port() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "api"
upstream = "a"
match = { host = "api.example.com" }

[[routes]]
name = "www"
upstream = "b"
match = { host = "www.example.com" }
"#,
    ));
    assert_eq!(route_of(&proxy, "GET", "api.example.com", "/x").await, "a");
    assert_eq!(
        route_of(&proxy, "GET", "API.Example.COM:8080", "/x").await,
        "a"
    );
    assert_eq!(route_of(&proxy, "GET", "www.example.com", "/x").await, "b");
    assert_eq!(route_of(&proxy, "GET", "example.com", "/x").await, "404");
    assert_eq!(
        route_of(&proxy, "GET", "api.example.com.evil", "/x").await,
        "404"
    );
    assert_eq!(
        route_of(&proxy, "GET", "xapi.example.com", "/x").await,
        "404"
    );
    assert_eq!((a.request_count(), b.request_count()), (2, 1));
}

#[tokio::test]
async fn routes_by_wildcard_host_below_the_suffix_but_not_the_apex() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "subdomains"
upstream = "a"
match = { host = "*.example.com" }

[[routes]]
name = "apex"
upstream = "b"
match = { host = "example.com" }
"#,
    ));
    assert_eq!(route_of(&proxy, "GET", "api.example.com", "/").await, "a");
    assert_eq!(
        route_of(&proxy, "GET", "a.b.EXAMPLE.com:443", "/").await,
        "a"
    );
    assert_eq!(route_of(&proxy, "GET", "example.com", "/").await, "b");
    assert_eq!(route_of(&proxy, "GET", "badexample.com", "/").await, "404");
    assert_eq!(
        route_of(&proxy, "GET", "example.com.evil", "/").await,
        "404"
    );
    assert_eq!((a.request_count(), b.request_count()), (2, 1));
}

#[tokio::test]
async fn routes_by_path_prefix() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "api"
upstream = "a"
match = { path_prefix = "/api/" }

[[routes]]
name = "static"
upstream = "b"
match = { path_prefix = "/static/" }
"#,
    ));
    assert_eq!(route_of(&proxy, "GET", "h", "/api/users").await, "a");
    assert_eq!(route_of(&proxy, "GET", "h", "/api/").await, "a");
    assert_eq!(route_of(&proxy, "GET", "h", "/api/x?q=/static/").await, "a");
    assert_eq!(route_of(&proxy, "GET", "h", "/static/app.css").await, "b");
    assert_eq!(route_of(&proxy, "GET", "h", "/api").await, "404");
    assert_eq!(route_of(&proxy, "GET", "h", "/apix/y").await, "404");
    assert_eq!(route_of(&proxy, "GET", "h", "/").await, "404");
    assert_eq!(route_of(&proxy, "GET", "h", "/x/api/").await, "404");
    let seen: Vec<String> = a.requests().into_iter().map(|r| r.uri).collect();
    assert_eq!(seen, ["/api/users", "/api/", "/api/x?q=/static/"]);
    assert_eq!(b.request_count(), 1);
}

#[tokio::test]
async fn routes_by_path_regex_against_the_path_without_query() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "items"
upstream = "a"
match = { path_regex = '^/v[0-9]+/items/[0-9]+$' }

[[routes]]
name = "images"
upstream = "b"
match = { path_regex = '\.(png|jpe?g)$' }
"#,
    ));
    assert_eq!(route_of(&proxy, "GET", "h", "/v1/items/42").await, "a");
    assert_eq!(route_of(&proxy, "GET", "h", "/v12/items/7?x=1").await, "a");
    assert_eq!(route_of(&proxy, "GET", "h", "/img/cat.jpeg").await, "b");
    assert_eq!(route_of(&proxy, "GET", "h", "/img/cat.png?v=2").await, "b");
    assert_eq!(route_of(&proxy, "GET", "h", "/v1/items/abc").await, "404");
    assert_eq!(route_of(&proxy, "GET", "h", "/x/v1/items/1").await, "404");
    assert_eq!(
        route_of(&proxy, "GET", "h", "/img/cat.png.txt").await,
        "404"
    );
    assert_eq!((a.request_count(), b.request_count()), (2, 2));
}

#[tokio::test]
async fn routes_by_method() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "reads"
upstream = "a"
match = { path_prefix = "/res/", methods = ["GET", "HEAD"] }

[[routes]]
name = "writes"
upstream = "b"
match = { path_prefix = "/res/", methods = ["POST", "DELETE"] }
"#,
    ));
    assert_eq!(route_of(&proxy, "GET", "h", "/res/1").await, "a");
    assert_eq!(route_of(&proxy, "HEAD", "h", "/res/1").await, "a");
    assert_eq!(route_of(&proxy, "POST", "h", "/res/1").await, "b");
    assert_eq!(route_of(&proxy, "DELETE", "h", "/res/1").await, "b");
    assert_eq!(route_of(&proxy, "PUT", "h", "/res/1").await, "404");
    assert_eq!(route_of(&proxy, "PATCH", "h", "/res/1").await, "404");
    let methods =
        |o: &Origin| -> Vec<String> { o.requests().into_iter().map(|r| r.method).collect() };
    // HEAD is fetched as GET: the generated ETag (on by default) hashes the body GET would get.
    assert_eq!(methods(&a), ["GET", "GET"]);
    assert_eq!(methods(&b), ["POST", "DELETE"]);
}

#[tokio::test]
async fn all_conditions_of_a_route_must_hold() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "strict"
upstream = "a"
match = { host = "*.svc.local", path_prefix = "/api/", path_regex = '^/api/v[0-9]+/', methods = ["GET"] }
"#,
    ));
    assert_eq!(
        route_of(&proxy, "GET", "users.svc.local", "/api/v2/x").await,
        "a"
    );
    assert_eq!(
        route_of(&proxy, "POST", "users.svc.local", "/api/v2/x").await,
        "404"
    );
    assert_eq!(
        route_of(&proxy, "GET", "users.svc.other", "/api/v2/x").await,
        "404"
    );
    assert_eq!(
        route_of(&proxy, "GET", "users.svc.local", "/api/x").await,
        "404"
    );
    assert_eq!(
        route_of(&proxy, "GET", "users.svc.local", "/v2/x").await,
        "404"
    );
    assert_eq!((a.request_count(), b.request_count()), (1, 0));
}

#[tokio::test]
async fn first_matching_route_in_file_order_wins() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let broad_first = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "broad"
upstream = "a"
match = { path_prefix = "/api/" }

[[routes]]
name = "narrow"
upstream = "b"
match = { path_prefix = "/api/v2/" }
"#,
    ));
    assert_eq!(route_of(&broad_first, "GET", "h", "/api/v2/x").await, "a");
    assert_eq!(route_of(&broad_first, "GET", "h", "/api/v1/x").await, "a");
    assert_eq!(
        b.request_count(),
        0,
        "the shadowed route must never be used"
    );
    drop(broad_first);

    let narrow_first = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "narrow"
upstream = "b"
match = { path_prefix = "/api/v2/" }

[[routes]]
name = "broad"
upstream = "a"
match = { path_prefix = "/api/" }
"#,
    ));
    assert_eq!(route_of(&narrow_first, "GET", "h", "/api/v2/x").await, "b");
    assert_eq!(route_of(&narrow_first, "GET", "h", "/api/v1/x").await, "a");
    assert_eq!((a.request_count(), b.request_count()), (3, 1));
}

#[tokio::test]
async fn each_route_sends_to_its_own_upstream_with_path_and_query_intact() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "to-a"
upstream = "a"
match = { path_prefix = "/a/" }

[[routes]]
name = "to-b"
upstream = "b"
match = { path_prefix = "/b/" }
"#,
    ));
    for i in 0..3 {
        assert_eq!(
            route_of(&proxy, "GET", "h", &format!("/a/{i}?k=v%20w")).await,
            "a"
        );
        assert_eq!(route_of(&proxy, "GET", "h", &format!("/b/{i}")).await, "b");
    }
    let uris = |o: &Origin| -> Vec<String> { o.requests().into_iter().map(|r| r.uri).collect() };
    assert_eq!(uris(&a), ["/a/0?k=v%20w", "/a/1?k=v%20w", "/a/2?k=v%20w"]);
    assert_eq!(uris(&b), ["/b/0", "/b/1", "/b/2"]);
}

#[tokio::test]
async fn unrouted_request_is_a_short_404_from_the_proxy_and_never_reaches_an_origin() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "api"
upstream = "a"
match = { path_prefix = "/api/" }
"#,
    ));
    let resp = client().get(proxy.url("/nowhere")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().get("x-origin").is_none());
    assert!(header_str(&resp, "content-type").starts_with("text/plain"));
    let body = resp.text().await.unwrap();
    assert!(body.contains("no route"), "body: {body:?}");
    assert!(body.len() < 200, "a short body, got {} bytes", body.len());
    // The client connection is still usable afterwards.
    let again = client()
        .post(proxy.url("/nowhere"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    assert_eq!(a.request_count() + b.request_count(), 0);
}

// ======================================================================================
// Fallback rules
// ======================================================================================

#[tokio::test]
async fn config_with_only_an_upstream_proxies_everything() {
    let origin = named_origin("only");
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/any/deep/path?x=1"),
        ("POST", "/submit"),
        ("DELETE", "/thing/1"),
        ("OPTIONS", "/"),
    ] {
        assert_eq!(
            route_of(&proxy, method, "whatever.host", path).await,
            "only",
            "{method} {path}"
        );
    }
    assert_eq!(origin.request_count(), 5);
}

#[tokio::test]
async fn with_routes_and_no_explicit_default_an_unmatched_request_is_404() {
    let origin = named_origin("app");
    // A single upstream is the implicit upstream of routes that name none, but it does not
    // turn into a catch-all.
    let proxy = Proxy::start(&format!(
        "{}[[routes]]\nname = \"api\"\nmatch = {{ path_prefix = \"/api/\" }}\n",
        origin.upstream_toml("app")
    ));
    assert_eq!(route_of(&proxy, "GET", "h", "/api/x").await, "app");
    assert_eq!(route_of(&proxy, "GET", "h", "/other").await, "404");
    assert_eq!(route_of(&proxy, "POST", "h", "/").await, "404");
    assert_eq!(origin.request_count(), 1);
}

#[tokio::test]
async fn explicit_default_upstream_catches_unmatched_requests() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&format!(
        "{}{}[defaults]\nupstream = \"b\"\n\n{}",
        a.upstream_toml("a"),
        b.upstream_toml("b"),
        r#"
[[routes]]
name = "api"
upstream = "a"
match = { path_prefix = "/api/" }

[[routes]]
name = "implicit"
match = { path_prefix = "/implicit/" }
"#
    ));
    assert_eq!(route_of(&proxy, "GET", "h", "/api/x").await, "a");
    assert_eq!(route_of(&proxy, "GET", "h", "/other").await, "b");
    assert_eq!(route_of(&proxy, "PUT", "h", "/").await, "b");
    // A route without `upstream` uses the default one.
    assert_eq!(route_of(&proxy, "GET", "h", "/implicit/1").await, "b");
    assert_eq!((a.request_count(), b.request_count()), (1, 3));
}

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
        "[upstreams.slow]\nendpoints = [\"{}\"]\nread_timeout = \"200ms\"\n",
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

/// Responses that stream (no ETag to generate, so nothing holds the header back).
const NO_ETAG: &str = "[defaults.etag]\ngenerate = false\n";

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

// ======================================================================================
// Header hygiene
// ======================================================================================

#[tokio::test]
async fn forwarding_headers_are_added_for_the_upstream() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let http = client();
    http.get(proxy.url("/fresh")).send().await.unwrap();
    http.get(proxy.url("/chained"))
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("via", "1.1 edge")
        .send()
        .await
        .unwrap();
    let seen = origin.requests();

    let fresh = &seen[0].headers;
    assert_eq!(fresh["x-forwarded-for"], "127.0.0.1");
    assert_eq!(fresh["x-forwarded-proto"], "http");
    assert_eq!(all_values(fresh, "via"), ["1.1 outrider"]);

    let chained = &seen[1].headers;
    assert_eq!(
        all_values(chained, "x-forwarded-for"),
        ["203.0.113.7, 127.0.0.1"]
    );
    assert_eq!(
        all_values(chained, "x-forwarded-proto"),
        ["http"],
        "client value must be overwritten"
    );
    assert_eq!(
        all_values(chained, "via").join(", "),
        "1.1 edge, 1.1 outrider"
    );
}

/// RFC 9110 §5.3: several field lines of one name mean the same as one comma-joined line.
#[tokio::test]
async fn x_forwarded_for_keeps_every_prior_field_line() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let (status, _, _) = raw_exchange(
        proxy.addr,
        "GET /xff HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\n\
         X-Forwarded-For: 10.0.0.2\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    let seen = origin.requests();
    assert_eq!(
        all_values(&seen[0].headers, "x-forwarded-for").join(", "),
        "10.0.0.1, 10.0.0.2, 127.0.0.1"
    );
}

#[tokio::test]
async fn via_is_added_to_the_response() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let plain = client().get(proxy.url("/v")).send().await.unwrap();
    assert_eq!(all_values(plain.headers(), "via"), ["1.1 outrider"]);
    let chained = client()
        .get(proxy.url("/v?h=via:1.1%20backend"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        all_values(chained.headers(), "via").join(", "),
        "1.1 backend, 1.1 outrider"
    );
}

#[tokio::test]
async fn host_header_reaches_the_upstream_as_the_client_sent_it() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let http = client();
    for host in ["app.example.com", "App.Example.com:8443", "10.1.2.3"] {
        let resp = http
            .get(proxy.url("/h"))
            .header(HOST, host)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let hosts: Vec<String> = origin
        .requests()
        .iter()
        .map(|r| all_values(&r.headers, "host").join(" | "))
        .collect();
    assert_eq!(
        hosts,
        ["app.example.com", "App.Example.com:8443", "10.1.2.3"]
    );
}

#[tokio::test]
async fn hop_by_hop_request_headers_do_not_reach_the_upstream() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let (status, _, _) = raw_exchange(
        proxy.addr,
        "GET /hop HTTP/1.1\r\nHost: h\r\nConnection: close, X-Private\r\nX-Private: 1\r\n\
         Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\n\
         Proxy-Authorization: Basic Zm9vOmJhcg==\r\nX-Public: 1\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    let seen = origin.requests();
    assert_eq!(seen.len(), 1);
    let h = &seen[0].headers;
    for name in [
        "x-private",
        "keep-alive",
        "te",
        "proxy-connection",
        "proxy-authorization",
    ] {
        assert!(h.get(name).is_none(), "{name} reached the origin: {h:?}");
    }
    let connection = all_values(h, "connection").join(",").to_ascii_lowercase();
    assert!(
        !connection.contains("x-private"),
        "connection: {connection}"
    );
    assert_eq!(h["x-public"], "1", "an end-to-end header was lost");
}

#[tokio::test]
async fn hop_by_hop_response_headers_do_not_reach_the_client() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let resp = client()
        .get(proxy.url(
            "/hop?h=connection:x-secret&h=x-secret:1&h=keep-alive:timeout%3D5&\
             h=proxy-connection:keep-alive&h=x-kept:yes",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    for name in ["x-secret", "keep-alive", "proxy-connection"] {
        assert!(h.get(name).is_none(), "{name} reached the client: {h:?}");
    }
    let connection = all_values(h, "connection").join(",").to_ascii_lowercase();
    assert!(!connection.contains("x-secret"), "connection: {connection}");
    assert_eq!(h["x-kept"], "yes", "an end-to-end header was lost");
}

#[tokio::test]
async fn connection_header_cannot_nominate_forwarding_headers() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let (status, _, _) = raw_exchange(
        proxy.addr,
        "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close, X-Forwarded-For\r\n\
         X-Forwarded-For: 10.9.9.9\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(origin.request_count(), 0);
}

#[tokio::test]
async fn http10_client_gets_via_1_0_and_an_exact_body() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let (status, headers, body) =
        raw_exchange(proxy.addr, "GET /old?size=10 HTTP/1.0\r\nHost: h\r\n\r\n").await;
    assert_eq!(status, 200);
    assert_eq!(raw_header(&headers, "via"), Some("1.0 outrider"));
    assert_eq!(body, pattern(0, 10));
    assert_eq!(origin.requests()[0].headers["via"], "1.0 outrider");
}

/// RFC 9112 §6.1: "A server MUST NOT send a response containing Transfer-Encoding unless the
/// corresponding request indicates HTTP/1.1 (or later minor revisions)."
#[tokio::test]
async fn http10_client_never_gets_a_chunked_response() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let (status, headers, body) = raw_exchange(
        proxy.addr,
        "GET /old?chunked=1&size=10 HTTP/1.0\r\nHost: h\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(raw_header(&headers, "transfer-encoding"), None);
    assert_eq!(
        body,
        pattern(0, 10),
        "the body must arrive without chunk framing"
    );
}

// ======================================================================================
// Bodies
// ======================================================================================

#[tokio::test]
async fn chunked_response_arrives_complete_and_byte_exact() {
    let origin = Origin::start();
    let proxy = Proxy::start(&format!("{}{NO_ETAG}", origin.upstream_toml("app")));
    let resp = client()
        .get(proxy.url("/c?chunked=1&chunks=5&size=100003"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("content-length").is_none(),
        "body was not streamed"
    );
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), 100_003);
    assert!(
        body.as_ref() == pattern(0, 100_003).as_slice(),
        "body differs"
    );
}

#[tokio::test]
async fn content_length_response_arrives_byte_exact() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let resp = client()
        .get(proxy.url("/l?size=777777"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header_str(&resp, "content-length"), "777777");
    let body = resp.bytes().await.unwrap();
    assert!(
        body.as_ref() == pattern(0, 777_777).as_slice(),
        "body differs"
    );
}

#[tokio::test]
async fn request_body_with_content_length_reaches_the_upstream_intact() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let resp = client()
        .post(proxy.url("/up"))
        .body(pattern(0, 300_001))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = &origin.requests()[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.body_len, 300_001);
    assert!(seen.body_is_pattern);
    assert_eq!(seen.headers["content-length"], "300001");
}

#[tokio::test]
async fn chunked_request_body_reaches_the_upstream_intact() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let period = Period::new();
    let resp = client()
        .put(proxy.url("/up"))
        .body(reqwest::Body::wrap_stream(period.stream(250_007, 10_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = &origin.requests()[0];
    assert_eq!(seen.method, "PUT");
    assert_eq!(seen.body_len, 250_007);
    assert!(seen.body_is_pattern);
    assert!(seen.headers.get("content-length").is_none());
}

#[tokio::test]
async fn head_response_has_content_length_but_no_body() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let (status, headers, rest) = raw_exchange(
        proxy.addr,
        "HEAD /h?size=5000 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(raw_header(&headers, "content-length"), Some("5000"));
    assert!(
        rest.is_empty(),
        "HEAD response carried {} body bytes",
        rest.len()
    );
    // Fetched as GET to generate the ETag GET gets; the same tag, no body.
    assert_eq!(origin.requests()[0].method, "GET");
    let get = client()
        .get(proxy.url("/h?size=5000"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        raw_header(&headers, "etag"),
        get.headers().get("etag").and_then(|v| v.to_str().ok())
    );
}

#[tokio::test]
async fn head_goes_upstream_as_head_without_etag_generation() {
    let origin = Origin::start();
    let proxy = Proxy::start(&format!("{}{NO_ETAG}", origin.upstream_toml("app")));
    let (status, headers, rest) = raw_exchange(
        proxy.addr,
        "HEAD /h?size=5000 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(raw_header(&headers, "content-length"), Some("5000"));
    assert!(rest.is_empty());
    assert_eq!(origin.requests()[0].method, "HEAD");
}

#[tokio::test]
async fn no_content_and_not_modified_arrive_without_a_body() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    for (query, expected) in [("status=204", 204), ("status=304&h=etag:%22v1%22", 304)] {
        let (status, headers, rest) = raw_exchange(
            proxy.addr,
            &format!("GET /n?{query} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, expected);
        assert!(rest.is_empty(), "{expected} carried body bytes: {rest:?}");
        assert!(
            raw_header(&headers, "transfer-encoding").is_none(),
            "{expected} must not be chunked: {headers:?}"
        );
        if expected == 304 {
            assert_eq!(raw_header(&headers, "etag"), Some("\"v1\""));
        }
    }
    // Over a kept-alive connection, the next response must not be corrupted by a stray body.
    let http = client();
    for _ in 0..3 {
        assert_eq!(
            http.get(proxy.url("/n?status=204"))
                .send()
                .await
                .unwrap()
                .status(),
            204
        );
        let ok = http.get(proxy.url("/n?size=3")).send().await.unwrap();
        assert_eq!(ok.bytes().await.unwrap().as_ref(), pattern(0, 3).as_slice());
    }
}

#[tokio::test]
async fn streaming_response_is_forwarded_incrementally() {
    let origin = Origin::start();
    let proxy = Proxy::start(&format!("{}{NO_ETAG}", origin.upstream_toml("app")));
    // The origin sends 1000 bytes at once, then 1000 more after 500 ms, then the last 1000
    // after another 500 ms.
    let mut resp = client()
        .get(proxy.url("/s?chunked=1&chunks=3&chunk_delay_ms=500&size=3000"))
        .send()
        .await
        .unwrap();
    let first = resp.chunk().await.unwrap().expect("a first chunk");
    let first_at = Instant::now();
    let mut total = first.len();
    while let Some(more) = resp.chunk().await.unwrap() {
        total += more.len();
    }
    let rest_took = first_at.elapsed();
    assert_eq!(total, 3000);
    assert!(first.len() < 3000, "the whole body came as one piece");
    // If the proxy buffered, the first chunk would come just before the end.
    assert!(
        rest_took >= Duration::from_millis(800),
        "first chunk came only {rest_took:?} before the end: the response was buffered"
    );
}

#[tokio::test]
async fn unrouted_request_body_is_never_read_as_a_next_request() {
    let origin = Origin::start();
    let proxy = Proxy::start(&format!(
        "{}[[routes]]\nname = \"api\"\nmatch = {{ path_prefix = \"/api/\" }}\n",
        origin.upstream_toml("app")
    ));
    // The 404 is answered without reading the body; the body looks like a request.
    let inner = "GET /api/smuggled HTTP/1.1\r\nHost: h\r\n\r\n";
    let request = format!(
        "POST /nowhere HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{inner}\
         GET /api/next HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        inner.len()
    );
    let (status, _, _) = raw_exchange(proxy.addr, &request).await;
    assert_eq!(status, 404);
    let uris: Vec<String> = origin.requests().into_iter().map(|r| r.uri).collect();
    assert!(
        !uris.iter().any(|u| u.contains("smuggled")),
        "a request body was proxied as a request: {uris:?}"
    );
    // Either the connection was closed after the 404 or the pipelined request was served.
    assert!(uris.is_empty() || uris == ["/api/next"], "{uris:?}");
}

// ======================================================================================
// HTTP/2 cleartext downstream
// ======================================================================================

#[tokio::test]
async fn h2c_get_is_proxied_to_an_http11_upstream() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let resp = h2c_client()
        .get(proxy.url("/h2?size=70000&h=x-app:yes"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert_eq!(all_values(resp.headers(), "via"), ["2 outrider"]);
    assert_eq!(resp.headers()["x-app"], "yes");
    let body = resp.bytes().await.unwrap();
    assert!(
        body.as_ref() == pattern(0, 70_000).as_slice(),
        "body differs"
    );
    let seen = &origin.requests()[0];
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.uri, "/h2?size=70000&h=x-app:yes");
    assert_eq!(seen.headers["via"], "2 outrider");
    assert_eq!(seen.headers["host"], proxy.addr.to_string());
}

#[tokio::test]
async fn h2c_post_body_reaches_the_upstream_intact() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let h2 = h2c_client();
    let sized = h2
        .post(proxy.url("/p"))
        .body(pattern(0, 200_000))
        .send()
        .await
        .unwrap();
    assert_eq!(sized.version(), reqwest::Version::HTTP_2);
    assert_eq!(sized.status(), 200);
    let streamed = h2
        .post(proxy.url("/p"))
        .body(reqwest::Body::wrap_stream(
            Period::new().stream(123_457, 8_192),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 200);
    let seen = origin.requests();
    assert_eq!((seen[0].body_len, seen[0].body_is_pattern), (200_000, true));
    assert_eq!((seen[1].body_len, seen[1].body_is_pattern), (123_457, true));
    assert!(seen.iter().all(|r| r.version == http::Version::HTTP_11));
}

#[tokio::test]
async fn h2c_requests_route_by_authority() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "loopback"
upstream = "a"
match = { host = "127.0.0.1" }
"#,
    ));
    let resp = h2c_client().get(proxy.url("/x")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(header_str(&resp, "x-origin"), "a");
}

// ======================================================================================
// Admin plane
// ======================================================================================

#[tokio::test]
async fn admin_healthz_and_readyz_answer() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let http = client();
    let health = http.get(proxy.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap().trim(), "ok");

    let ready = http.get(proxy.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(header_str(&ready, "content-type").starts_with("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&ready.bytes().await.unwrap()).unwrap();
    assert_eq!(json["ready"], serde_json::Value::Bool(true));
}

#[tokio::test]
async fn admin_unknown_path_is_404_and_wrong_method_is_405_with_allow() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let http = client();
    let unknown = http.get(proxy.admin_url("/nope")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);

    let wrong = http.post(proxy.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(header_str(&wrong, "allow"), "GET, HEAD");
    let wrong = http
        .delete(proxy.admin_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(header_str(&wrong, "allow"), "GET, HEAD");
}

#[tokio::test]
async fn admin_port_does_not_proxy() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let http = client();
    for path in ["/", "/hello?size=10", "/api/users"] {
        let resp = http.get(proxy.admin_url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        assert!(resp.headers().get("via").is_none());
    }
    assert_eq!(origin.request_count(), 0);
    // The data plane, by contrast, does proxy everything (there are no routes).
    let resp = http.get(proxy.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(origin.request_count(), 1);
}

// ======================================================================================
// Concurrency
// ======================================================================================

#[tokio::test]
async fn two_hundred_concurrent_requests_all_succeed() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let http = client();
    let requests = (0..200u64).map(|i| {
        let http = http.clone();
        let url = proxy.url(&format!("/c/{i}?size={}", 100 + i));
        async move {
            let resp = http.get(url).send().await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((i, status, body))
        }
    });
    let results = futures_util::future::join_all(requests).await;
    for result in results {
        let (i, status, body) = result.expect("request failed");
        assert_eq!(status, 200, "request {i}");
        assert!(
            body.as_ref() == pattern(0, 100 + i as usize).as_slice(),
            "body {i} differs"
        );
    }
    assert_eq!(origin.request_count(), 200);
}

// ======================================================================================
// Helpers
// ======================================================================================

/// An origin scripted by query string that also names itself in `x-origin`.
fn named_origin(name: &'static str) -> Origin {
    Origin::with_handler(move |req| {
        Reply::from_query(req.uri.split_once('?').map(|(_, q)| q)).header("x-origin", name)
    })
}

/// Upstreams `a` and `b` followed by `routes`.
fn two_upstreams(a: &Origin, b: &Origin, routes: &str) -> String {
    format!("{}{}{routes}", a.upstream_toml("a"), b.upstream_toml("b"))
}

/// Sends one request with the given Host and answers which origin served it, or the status
/// when the proxy answered itself.
async fn route_of(proxy: &Proxy, method: &str, host: &str, path: &str) -> String {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let resp = client()
        .request(method, proxy.url(path))
        .header(HOST, host)
        .send()
        .await
        .unwrap();
    match resp.headers().get("x-origin") {
        Some(name) => {
            assert_eq!(resp.status(), 200);
            name.to_str().unwrap().to_string()
        }
        None => resp.status().as_u16().to_string(),
    }
}

fn header_str(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn all_values(headers: &http::HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .collect()
}

/// How a [`RawOrigin`] answers each request.
#[derive(Clone, Copy)]
enum RawReply {
    /// `200 ok` with a Content-Length, and the connection stays open for the next request.
    KeepAliveOk,
    /// These bytes verbatim, then the connection is closed.
    ThenClose(&'static [u8]),
}

/// A minimal HTTP/1.1 origin on std threads, for what hyper will not do: count accepted
/// connections, answer malformed or truncated responses. Reads request heads only (GET).
struct RawOrigin {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RawOrigin {
    fn start(reply: RawReply) -> RawOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (connections, requests, stop) =
                (connections.clone(), requests.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let requests = requests.clone();
                    std::thread::spawn(move || serve_raw(stream, reply, &requests));
                }
            })
        };
        RawOrigin {
            addr,
            connections,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn upstream_toml(&self, name: &str) -> String {
        format!("[upstreams.{name}]\nendpoints = [\"{}\"]\n\n", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn serve_raw(stream: TcpStream, reply: RawReply, requests: &AtomicUsize) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        // Read one request head; EOF or an error ends the connection.
        let mut line = String::new();
        let mut saw_request_line = false;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" || line == "\n" => break,
                Ok(_) => saw_request_line = true,
            }
        }
        if !saw_request_line {
            continue;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        let bytes: &[u8] = match reply {
            RawReply::KeepAliveOk => {
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"
            }
            RawReply::ThenClose(bytes) => bytes,
        };
        if writer.write_all(bytes).is_err() || matches!(reply, RawReply::ThenClose(_)) {
            return;
        }
    }
}

impl Drop for RawOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so that the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A 1xx interim response reaches the client before the final one: `Expect: 100-continue`
/// gets `100 Continue` through the proxy, then the body is sent and the origin answers.
#[tokio::test]
async fn expect_100_continue_gets_an_interim_response_then_the_final_one() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\
              Expect: 100-continue\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    // Nothing of the body is sent until the interim response arrives.
    let mut interim = Vec::new();
    let mut byte = [0u8; 1];
    while !interim.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("no interim response within 5 s")
            .unwrap();
        assert_eq!(n, 1, "connection closed before the interim response");
        interim.push(byte[0]);
    }
    assert!(
        interim.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    stream.write_all(&pattern(0, 5)).await.unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
    let seen = &origin.requests()[0];
    assert_eq!(seen.body_len, 5);
    assert!(seen.body_is_pattern);
}
