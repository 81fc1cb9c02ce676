//! What the buffered leg's keep-alive pool (`outrider::proxy::UpstreamConnector`) costs against
//! Pingora's `Connector`, which Pingora's own leg uses: one GET over a pooled loopback
//! connection per iteration (checkout, request written, response read, connection released),
//! with the upstream a minimal HTTP/1.1 responder on the same single-threaded runtime. The
//! exchange and the responder cost the same on both sides; the difference is the pool's
//! (Pingora's spawns a task per released connection and wakes it at each checkout, and checks
//! the socket's peer with a system call).

// A benchmark's setup states its expectations with unwrap/expect; the crate lints deny them
// in shipped code only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use pingora::connectors::http::Connector;
use pingora::connectors::ConnectorOptions;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use outrider::proxy::UpstreamConnector;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Connections the responder accepted: a pool that reuses makes one per side.
static ACCEPTED: AtomicUsize = AtomicUsize::new(0);

/// Answers every request head on every connection with a 2-byte body, keeping it alive.
async fn responder(listener: TcpListener) {
    loop {
        let (mut conn, _) = listener.accept().await.unwrap();
        ACCEPTED.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut seen = 0;
            loop {
                let Ok(n) = conn.read(&mut buf[seen..]).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                seen += n;
                if buf[..seen].windows(4).any(|w| w == b"\r\n\r\n") {
                    seen = 0;
                    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if conn.write_all(reply).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// One GET on `session`, read to the end of its body.
async fn exchange(session: &mut HttpSession) {
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    req.insert_header("host", "bench").unwrap();
    session.write_request_header(Box::new(req)).await.unwrap();
    session.finish_request_body().await.unwrap();
    session.read_response_header().await.unwrap();
    while session.read_response_body().await.unwrap().is_some() {}
}

fn pools(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(responder(listener));
    let peer = HttpPeer::new(addr, false, String::new());

    let ours = UpstreamConnector::new(ConnectorOptions::new(128));
    let pingora = Connector::new(None);
    let mut group = c.benchmark_group("upstream_pool");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("outrider", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let (mut session, _) = ours.connect(&peer).await.unwrap();
                    exchange(&mut session).await;
                    ours.release(session, &peer).await;
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("pingora", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let (mut session, _) = pingora.get_http_session(&peer).await.unwrap();
                    exchange(&mut session).await;
                    pingora.release_http_session(session, &peer, None).await;
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    // Each side's first iteration connects; every other one must find the pooled connection.
    let accepted = ACCEPTED.load(Ordering::Relaxed);
    assert!(
        accepted <= 2,
        "{accepted} connections: a pool did not reuse"
    );
}

criterion_group!(benches, pools);
criterion_main!(benches);
