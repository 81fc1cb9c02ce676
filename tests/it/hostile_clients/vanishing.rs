//! Clients that vanish mid-response.

use crate::hostile_clients::raw_backend::{lossy, Backend};
use crate::hostile_clients::raw_client::{eventually, fresh_request_is_served, in_, secs, Client};
use crate::support::{client, metric, Proxy};

// ======================================================================================
// Clients that vanish mid-response
// ======================================================================================

/// The admin page's `outrider_inflight_requests{upstream="app"}`.
async fn upstream_inflight(proxy: &Proxy) -> f64 {
    let text = client()
        .get(proxy.admin_url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    metric(&text, "outrider_inflight_requests", &[("upstream", "app")]).unwrap_or(0.0)
}

/// Requests `/stream`, reads at least `read` bytes of the response, drops the connection,
/// and checks that the proxy lets go of the upstream and the request.
async fn vanish_mid_stream(proxy: &Proxy, backend: &Backend, read: usize) {
    let aborted = backend.aborted_streams();
    let mut c = Client::connect(proxy.addr).await;
    c.send(b"GET /stream HTTP/1.1\r\nHost: vanish.test\r\n\r\n")
        .await
        .unwrap();
    let deadline = in_(secs(10));
    while c.buf.len() < read {
        c.fill(deadline)
            .await
            .unwrap_or_else(|e| panic!("streaming response stopped early: {e:?}"));
    }
    assert!(
        c.buf.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        lossy(&c.buf[..c.buf.len().min(200)])
    );
    assert_eq!(proxy.shared.inflight(), 1, "the stream is in flight");
    assert_eq!(upstream_inflight(proxy).await, 1.0);
    drop(c);
    eventually(
        "the backend's write to fail once the client is gone (upstream released)",
        secs(5),
        || backend.aborted_streams() > aborted,
    )
    .await;
    eventually("no request left in flight", secs(5), || {
        proxy.shared.inflight() == 0
    })
    .await;
    assert_eq!(
        upstream_inflight(proxy).await,
        0.0,
        "outrider_inflight_requests{{upstream=\"app\"}} after the client left"
    );
    for _ in 0..3 {
        fresh_request_is_served(proxy.addr, backend).await.unwrap();
    }
}

#[tokio::test]
async fn a_client_vanishing_mid_stream_releases_the_upstream() {
    let backend = Backend::start();
    // No generated ETag: the stream goes through Pingora's leg, byte for byte.
    let proxy = Proxy::start(&format!(
        "{}[defaults.etag]\ngenerate = false\n",
        backend.upstream_toml()
    ));
    vanish_mid_stream(&proxy, &backend, 256 * 1024).await;
}

#[tokio::test]
async fn a_client_vanishing_mid_stream_on_the_buffered_leg_releases_the_upstream() {
    let backend = Backend::start();
    // Defaults: the GET takes the buffered leg, which holds 1 MiB before answering.
    let proxy = Proxy::start(&backend.upstream_toml());
    vanish_mid_stream(&proxy, &backend, 1200 * 1024).await;
}

#[tokio::test]
async fn a_client_vanishing_before_the_response_header_releases_the_upstream() {
    let backend = Backend::start();
    let proxy = Proxy::start(&format!(
        "{}[defaults.etag]\ngenerate = false\n",
        backend.upstream_toml()
    ));
    let mark = backend.mark();
    let mut c = Client::connect(proxy.addr).await;
    c.send(b"GET /silent HTTP/1.1\r\nHost: vanish.test\r\n\r\n")
        .await
        .unwrap();
    eventually("the request upstream", secs(5), || {
        backend.seen_path(mark, "/silent").is_some()
    })
    .await;
    let conn = backend.seen_path(mark, "/silent").unwrap().conn;
    assert_eq!(proxy.shared.inflight(), 1);
    drop(c);
    eventually(
        "the upstream connection of a request whose client left to be closed",
        secs(5),
        || backend.is_closed(conn),
    )
    .await;
    eventually("no request left in flight", secs(5), || {
        proxy.shared.inflight() == 0
    })
    .await;
    assert_eq!(upstream_inflight(&proxy).await, 0.0);
    fresh_request_is_served(proxy.addr, &backend).await.unwrap();
}

#[tokio::test]
async fn a_client_vanishing_before_the_response_header_on_the_buffered_leg_releases_the_upstream() {
    let backend = Backend::start();
    // Defaults: a GET takes the buffered leg.
    let proxy = Proxy::start(&backend.upstream_toml());
    let mark = backend.mark();
    let mut c = Client::connect(proxy.addr).await;
    c.send(b"GET /silent HTTP/1.1\r\nHost: vanish.test\r\n\r\n")
        .await
        .unwrap();
    eventually("the request upstream", secs(5), || {
        backend.seen_path(mark, "/silent").is_some()
    })
    .await;
    let conn = backend.seen_path(mark, "/silent").unwrap().conn;
    drop(c);
    eventually(
        "the upstream connection of a request whose client left to be closed (the buffered \
         leg does not watch the client while it waits for the upstream, so it holds the \
         upstream connection and its concurrency slot until read_timeout, 30 s)",
        secs(5),
        || backend.is_closed(conn),
    )
    .await;
    eventually("no request left in flight", secs(5), || {
        proxy.shared.inflight() == 0
    })
    .await;
    assert_eq!(upstream_inflight(&proxy).await, 0.0);
    fresh_request_is_served(proxy.addr, &backend).await.unwrap();
}
