//! `[limits] header_timeout`: a client that drips its request head (slowloris) is cut off with
//! 408 once the head has taken `header_timeout` since its first byte, on the first request of
//! a connection and on a later keep-alive one. The drip (a byte every 100 ms) is far faster
//! than any per-read timeout, so only a total limit can stop it. Margins are wide: the limit
//! is 1 s; the cut must come between 0.9 s and 6 s.

use crate::support;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;

use support::raw::read_head;
use support::{Origin, Proxy};

fn conf(origin: &Origin) -> String {
    format!(
        "{}[limits]\nheader_timeout = \"1s\"\n",
        origin.upstream_toml("app")
    )
}

/// Sends a head's first line, then one header byte every 100 ms, for at most 20 s.
fn drip(mut writer: OwnedWriteHalf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if writer
            .write_all(b"GET /slow HTTP/1.1\r\nHost: h\r\n")
            .await
            .is_err()
        {
            return;
        }
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(b"X").await.is_err() {
                return;
            }
        }
    })
}

async fn cut_off(reader: &mut tokio::net::tcp::OwnedReadHalf, started: Instant) {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), reader.read_to_end(&mut buf))
        .await
        .expect("the proxy closes the connection")
        .ok();
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "got {text:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "cut after {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_first_head_gets_408_after_header_timeout() {
    let origin = Origin::start();
    let proxy = Proxy::start(&conf(&origin));
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut reader, writer) = stream.into_split();
    let started = Instant::now();
    let dripping = drip(writer);
    cut_off(&mut reader, started).await;
    dripping.abort();
    assert_eq!(origin.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_keep_alive_head_gets_408_after_header_timeout() {
    let origin = Origin::start();
    let proxy = Proxy::start(&conf(&origin));
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let (status, headers) = read_head(&mut stream).await;
    assert_eq!(status, 200);
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().unwrap_or(0));
    let mut body = vec![0; len];
    stream.read_exact(&mut body).await.unwrap();
    // Idle well past the limit first: the clock starts at the next head's first byte.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (mut reader, writer) = stream.into_split();
    let started = Instant::now();
    let dripping = drip(writer);
    cut_off(&mut reader, started).await;
    dripping.abort();
    assert_eq!(origin.request_count(), 1);
}

/// Three slowloris connections against the built binary: each is cut and counted, and the log
/// says so once, without Pingora's error line per connection.
#[tokio::test(flavor = "multi_thread")]
async fn cuts_are_counted_and_logged_once_not_per_connection() {
    let origin = Origin::start();
    let mut proxy = support::BinaryProxy::spawn(|data, admin| {
        format!("{}{}", support::server_section(data, admin), conf(&origin))
    });
    let mut cuts = Vec::new();
    for _ in 0..3 {
        let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        let (mut reader, writer) = stream.into_split();
        let started = Instant::now();
        let dripping = drip(writer);
        cuts.push(tokio::spawn(async move {
            cut_off(&mut reader, started).await;
            dripping.abort();
        }));
    }
    for cut in cuts {
        cut.await.expect("each connection is cut with 408");
    }
    let text = support::client()
        .get(format!("http://{}/metrics", proxy.admin))
        .send()
        .await
        .expect("admin answers")
        .text()
        .await
        .unwrap();
    assert_eq!(
        support::metric(&text, "outrider_header_timeouts_total", &[]),
        Some(3.0),
        "{text}"
    );
    proxy.signal("TERM");
    proxy.wait_exit(Duration::from_secs(20));
    let log = proxy.stderr();
    assert!(!log.contains("Fail to proxy"), "{log}");
    assert_eq!(
        log.matches("header_timeout: cut off").count(),
        1,
        "one line for all three cuts within a minute:\n{log}"
    );
}
