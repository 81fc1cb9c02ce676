//! Request and response bodies, HEAD, bodiless statuses, streaming, and `Expect: 100-continue`.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::proxy::helpers::{header_str, NO_ETAG};
use crate::support::origin::{pattern, Period};
use crate::support::raw::{raw_exchange, raw_header};
use crate::support::{client, Origin, Proxy};

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
