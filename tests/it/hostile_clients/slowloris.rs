//! Slowloris.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::hostile_clients::raw_backend::Backend;
use crate::hostile_clients::raw_client::{
    eventually, fresh_request_is_served, in_, one_shot, secs,
};
use crate::support::Proxy;

// ======================================================================================
// Slowloris
// ======================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_do_not_starve_normal_requests() {
    let backend = Backend::start();
    let proxy = Proxy::start(&backend.upstream_toml());
    let mark = backend.mark();
    let mut stalled = Vec::new();
    // 100 partial heads and 100 partial bodies, all stalled.
    for i in 0..200 {
        let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
        let partial = if i % 2 == 0 {
            format!("GET /loris{i} HTTP/1.1\r\nHost: loris.test\r\nX-Pad: ")
        } else {
            format!(
                "POST /loris{i} HTTP/1.1\r\nHost: loris.test\r\nContent-Length: 1000\r\n\r\npartial"
            )
        };
        s.write_all(partial.as_bytes()).await.expect("write");
        stalled.push(s);
    }
    // The partial bodies' heads went upstream: wait for them so the proxy is fully loaded.
    eventually("the 100 stalled bodies' heads upstream", secs(10), || {
        backend
            .since(mark)
            .iter()
            .filter(|s| s.request_line().starts_with("POST /loris"))
            .count()
            == 100
    })
    .await;
    for i in 0..20 {
        let started = Instant::now();
        let request =
            format!("GET /normal{i} HTTP/1.1\r\nHost: ok.test\r\nConnection: close\r\n\r\n");
        let resp = timeout_at(in_(secs(2)), one_shot(proxy.addr, request.as_bytes()))
            .await
            .unwrap_or_else(|_| {
                panic!("request {i} not served within 2 s while 200 slowloris connections are open")
            })
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(resp.status, 200, "request {i}");
        assert_eq!(resp.body, b"ok");
        assert!(started.elapsed() < secs(2));
    }
    let heads_forwarded = backend
        .since(mark)
        .iter()
        .filter(|s| s.request_line().starts_with("GET /loris"))
        .count();
    assert_eq!(heads_forwarded, 0, "a partial head was forwarded");
    // Every stalled connection is still there (none was answered early with garbage).
    let mut answered = 0;
    for s in &mut stalled {
        let mut byte = [0u8; 1];
        if matches!(s.try_read(&mut byte), Ok(n) if n > 0) {
            answered += 1;
        }
    }
    assert_eq!(
        answered, 0,
        "stalled requests got answers before they were complete"
    );
    drop(stalled);
    fresh_request_is_served(proxy.addr, &backend).await.unwrap();
}
