//! Slow and vanishing backends: trickles past the read timeout, resets mid-response.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::misbehaving_backends::raw_backend::Step;
use crate::misbehaving_backends::rig::{header_value, is_hit, read_until_error, Rig, CACHEABLE};
use crate::support::{client, metric};

// ======================================================================================
// 3. Slow and vanishing backends
// ======================================================================================

/// `read_timeout = "500ms"` is per read: a body trickled a byte every 200 ms (0.8 s in all)
/// is not cut off while bytes keep coming (all five reach the client), and the 10 s stall after
/// it is, about 500 ms later: an aborted body, counted as an upstream timeout, not stored. A
/// head that trickles and then stalls is the proxy's 504.
#[tokio::test(flavor = "multi_thread")]
async fn a_trickle_that_stalls_past_the_read_timeout_is_cut_off_and_not_stored() {
    let rig = Rig::start("read_timeout = \"500ms\"", |path| match path {
        "/slow-head" => vec![
            Step::Trickle(b"HTTP/1.1 2".to_vec(), Duration::from_millis(100)),
            Step::Pause(Duration::from_secs(10)),
            Step::Write(format!("00 OK\r\nContent-Length: 2\r\n{CACHEABLE}\r\nhi").into_bytes()),
            Step::Close,
        ],
        _ => vec![
            Step::Write(
                format!("HTTP/1.1 200 OK\r\nContent-Length: 20\r\n{CACHEABLE}\r\n").into_bytes(),
            ),
            Step::Trickle(b"01234".to_vec(), Duration::from_millis(200)),
            Step::Pause(Duration::from_secs(10)),
            Step::Write(b"56789abcdefghij".to_vec()),
            Step::Close,
        ],
    });
    for n in 1..=2u64 {
        let started = Instant::now();
        let resp = client()
            .get(rig.proxy.url("/slow-body"))
            .send()
            .await
            .expect("the header of /slow-body");
        assert_eq!(resp.status(), 200, "#{n}");
        let cache_status = header_value(resp.headers(), "cache-status");
        assert!(!is_hit(&cache_status), "#{n}: {cache_status}");
        let (received, error) = read_until_error(resp).await;
        let took = started.elapsed();
        assert!(
            error.is_some(),
            "#{n}: a stalled body was completed: {received:?}"
        );
        assert_eq!(
            received, b"01234",
            "#{n}: bytes trickled within the read timeout did not all arrive"
        );
        assert!(
            took < Duration::from_secs(5),
            "#{n}: cut off only after {took:?}, read_timeout is 500ms"
        );
        rig.wait_lookups(n).await;
        assert_eq!(
            rig.backend.count("/slow-body"),
            n as usize,
            "the cut-off body was stored"
        );
    }

    let started = Instant::now();
    let got = rig.fetch("/slow-head", &[]).await;
    assert_eq!(got.status, 504, "{:?}", got.body);
    let text = String::from_utf8_lossy(got.body.as_deref().unwrap_or_default()).into_owned();
    assert!(text.contains("\"app\" did not answer in time"), "{text:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    rig.wait_lookups(3).await;
    assert_eq!(rig.objects().await, 0);

    let metrics = rig.metrics().await;
    let timeouts = metric(
        &metrics,
        "outrider_upstream_requests_total",
        &[("upstream", "app"), ("outcome", "timeout")],
    );
    assert_eq!(
        timeouts,
        Some(3.0),
        "every cut-off counts as an upstream timeout"
    );
    rig.expect_good().await;
}

/// The backend sends the head and part of the body, then resets the connection (RST):
/// - chunked, reset once the client has the header (a chunked head is flushed to the client at
///   once, so the test can wait for it): the client's body ends with an error;
/// - with `Content-Length`, reset right after the first 10 of 100 bytes: the client gets an
///   aborted body or the proxy's 502 (Pingora does not flush a sized head before body bytes
///   fill its buffer, so which one is a matter of timing; both are honest);
/// - reset before any response: the proxy's 502.
///
/// Nothing is stored (each repeat reaches the backend), every attempt counts as a failure, and
/// the next request works.
#[tokio::test(flavor = "multi_thread")]
async fn a_reset_after_the_header_is_an_aborted_response_and_not_stored() {
    let gate = Arc::new(Notify::new());
    let g = gate.clone();
    let rig = Rig::start("", move |path| match path {
        "/reset-early" => vec![Step::Reset],
        "/reset-sized" => vec![
            Step::Write(
                format!("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n{CACHEABLE}\r\n0123456789")
                    .into_bytes(),
            ),
            Step::Reset,
        ],
        _ => vec![
            Step::Write(
                format!(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{CACHEABLE}\r\n\
                     a\r\n0123456789\r\n"
                )
                .into_bytes(),
            ),
            Step::Await(g.clone()),
            Step::Reset,
        ],
    });
    let mut lookups = 0;
    for n in 1..=2 {
        let resp = tokio::time::timeout(
            Duration::from_secs(10),
            client().get(rig.proxy.url("/reset-chunked")).send(),
        )
        .await
        .expect("a chunked head is forwarded before the body")
        .expect("the header of /reset-chunked");
        assert_eq!(resp.status(), 200, "#{n}");
        gate.notify_one();
        let (received, error) = read_until_error(resp).await;
        assert!(
            error.is_some(),
            "#{n}: a reset body was completed: {received:?}"
        );
        assert!(received.len() <= 10, "#{n}: {received:?}");
        lookups += 1;
        rig.wait_lookups(lookups).await;
        assert_eq!(
            rig.backend.count("/reset-chunked"),
            n,
            "the reset body was stored"
        );
    }
    for n in 1..=2 {
        let got = rig.fetch("/reset-sized", &[]).await;
        assert!(
            got.aborted(),
            "#{n}: a body cut by a reset was delivered as a complete {}: {:?}",
            got.status,
            got.body
        );
        assert!(!is_hit(got.cache_status()), "#{n}: {}", got.cache_status());
        lookups += 1;
        rig.wait_lookups(lookups).await;
        assert_eq!(
            rig.backend.count("/reset-sized"),
            n,
            "the reset body was stored"
        );
    }

    let got = rig.fetch("/reset-early", &[]).await;
    assert_eq!(got.status, 502, "{:?}", got.body);
    lookups += 1;
    rig.wait_lookups(lookups).await;
    assert_eq!(rig.objects().await, 0);

    let metrics = rig.metrics().await;
    let failures = metric(
        &metrics,
        "outrider_upstream_requests_total",
        &[("upstream", "app"), ("outcome", "http_failure")],
    );
    assert_eq!(
        failures,
        Some(5.0),
        "every reset counts as a failed attempt"
    );
    rig.expect_good().await;
}
