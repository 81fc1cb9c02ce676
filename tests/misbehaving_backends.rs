//! Backends that misbehave, behind the real proxy: the proxy must answer every client with an
//! honest message (a 502/504 of its own, or a response visibly cut short), never pass a broken
//! response off as complete, never store one, never panic, and keep serving the next request.
//!
//! The backends are written here ([`RawBackend`]): a tokio listener on an ephemeral loopback
//! port that reads a request head and writes exact bytes chosen by the request's path
//! ([`Step`]s: bytes, byte-by-byte trickles, pauses, FIN, RST, or waiting for the test's
//! signal), recording every request. The proxy is the real Outrider in-process with one caching
//! route in front of it; clients are reqwest or raw sockets where the exact bytes matter.
//!
//! Every broken response is made cacheable (`Cache-Control: public, max-age=60`), so that
//! "not stored" is observable: the next request for the same path reaches the backend again,
//! its `Cache-Status` is not a hit, and `GET /cache` counts no object. Nothing waits on a fixed
//! sleep for the proxy: the test polls `GET /cache` until the proxy has finished a request
//! (its lookup is counted in `logging`, after any fill), or signals the backend when the client
//! has seen what it needs to ([`Step::Await`]).
//!
//! Observed along the way (Pingora 0.9's HTTP/1 server, not a bug in these tests): a response
//! head with `Content-Length` is not flushed to the client until body bytes fill the write
//! buffer or the body ends, so a client sees nothing of a small sized response until the
//! upstream finishes or fails; chunked heads are flushed at once. Tests that need "the client
//! has the header" use a chunked response.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use support::raw::{raw_exchange, raw_header};
use support::{client, metric, Proxy};

const CACHEABLE: &str = "Cache-Control: public, max-age=60\r\n";

// ======================================================================================
// 1. Invalid status lines and header fields
// ======================================================================================

/// A status line that is not HTTP (`HTTP/1.1 abc`, garbage, binary, an out-of-range code, an
/// unknown major version), nothing at all, or a head that never ends: the client gets the
/// proxy's own 502 naming the upstream (not its address), the request did reach the backend,
/// and the next request on the same backend is served.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_status_lines_are_a_502_and_the_next_request_works() {
    let cases: &[(&str, &[u8])] = &[
        ("/abc-status", b"HTTP/1.1 abc\r\n\r\n"),
        ("/garbage", b"garbage\r\n\r\n"),
        ("/empty", b""),
        (
            "/unfinished-head",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
        ),
        (
            "/status-1000",
            b"HTTP/1.1 1000 OK\r\nContent-Length: 2\r\n\r\nhi",
        ),
        (
            "/status-099",
            b"HTTP/1.1 099 OK\r\nContent-Length: 2\r\n\r\nhi",
        ),
        ("/http-9", b"HTTP/9.9 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
        ("/binary", b"\x00\x01\x02\x03\xff\xfe\r\n\r\n"),
    ];
    expect_502_then_good(cases).await;
}

/// Header lines that make the head invalid (no colon, NUL or bare CR in a value, whitespace or
/// non-ASCII in a name) or the framing ambiguous (a Content-Length that is not a number, two
/// different ones, a list, a negative one; RFC 9112 §6.3 says a proxy MUST answer 502): the
/// proxy's 502, and the next request works.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_header_lines_are_a_502_and_the_next_request_works() {
    let cases: &[(&str, &[u8])] = &[
        ("/no-colon", b"HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 2\r\nCache-Control: public, max-age=60\r\n\r\nhi"),
        ("/nul-in-value", b"HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\nContent-Length: 2\r\nCache-Control: public, max-age=60\r\n\r\nhi"),
        ("/cr-in-value", b"HTTP/1.1 200 OK\r\nX-Bad: a\rb\r\nContent-Length: 2\r\nCache-Control: public, max-age=60\r\n\r\nhi"),
        ("/space-in-name", b"HTTP/1.1 200 OK\r\nBad Name: v\r\nContent-Length: 2\r\nCache-Control: public, max-age=60\r\n\r\nhi"),
        ("/non-ascii-name", b"HTTP/1.1 200 OK\r\nX\xc3\xa9: v\r\nContent-Length: 2\r\nCache-Control: public, max-age=60\r\n\r\nhi"),
        ("/cl-not-a-number", b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\nCache-Control: public, max-age=60\r\n\r\nhi"),
        ("/cl-twice", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\nCache-Control: public, max-age=60\r\n\r\nhi"),
        ("/cl-list", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 5\r\nCache-Control: public, max-age=60\r\n\r\nhi"),
        ("/cl-negative", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\nCache-Control: public, max-age=60\r\n\r\nhi"),
    ];
    expect_502_then_good(cases).await;
}

/// What RFC 9112 lets a recipient repair rather than reject, it repairs before the message
/// goes on: whitespace before a colon is removed (§5.1: a proxy MUST), obs-fold becomes a space
/// (§5.2), and `Transfer-Encoding` with `Content-Length` is framed by the transfer coding, the
/// length dropped (§6.1, §6.3). The client never sees the ambiguous form, and the stored copy
/// (these are cacheable) is the repaired one.
#[tokio::test(flavor = "multi_thread")]
async fn repairable_header_lines_are_normalised_before_they_go_on() {
    let rig = Rig::start("", |path| {
        let head: &[u8] = match path {
            "/space-before-colon" => b"HTTP/1.1 200 OK\r\nX-Spaced : v\r\nContent-Length: 2\r\n",
            "/obs-fold" => b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n",
            _ => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 100\r\n",
        };
        let body: &[u8] = if path == "/te-and-cl" {
            b"2\r\nhi\r\n0\r\n\r\n"
        } else {
            b"hi"
        };
        vec![
            Step::Write([head, CACHEABLE.as_bytes(), &b"\r\n"[..], body].concat()),
            Step::Next,
        ]
    });
    let mut lookups = 0;
    for path in ["/space-before-colon", "/obs-fold", "/te-and-cl"] {
        for n in 1..=2 {
            let (status, headers, body) = rig.raw_get(path).await;
            assert_eq!(status, 200, "{path} #{n}");
            let te = raw_header(&headers, "transfer-encoding");
            let cl = raw_header(&headers, "content-length");
            assert!(
                te.is_none() || cl.is_none(),
                "{path} #{n}: both Transfer-Encoding and Content-Length went to the client"
            );
            let body = if te == Some("chunked") {
                dechunk(&body)
            } else {
                body
            };
            assert_eq!(body, b"hi", "{path} #{n}");
            let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
            assert!(
                !names.iter().any(|k| k.contains(' ')),
                "{path} #{n}: {names:?}"
            );
            if path == "/obs-fold" {
                assert_eq!(raw_header(&headers, "x-folded"), Some("a b"), "{path} #{n}");
            }
            if path == "/space-before-colon" {
                assert_eq!(raw_header(&headers, "x-spaced"), Some("v"), "{path} #{n}");
            }
            let cache_status = raw_header(&headers, "cache-status").unwrap_or("");
            assert_eq!(is_hit(cache_status), n == 2, "{path} #{n}: {cache_status}");
            lookups += 1;
            rig.wait_lookups(lookups).await;
        }
        assert_eq!(rig.backend.count(path), 1, "{path}");
    }
}

// ======================================================================================
// 2. Bodies that are not what the header promised
// ======================================================================================

/// `Content-Length: 100` and 10 bytes, then the backend closes: the client sees an aborted
/// response (a 200 whose body ends early with an error, or a 502), never a complete 200, and
/// nothing is stored: the next request for it goes to the backend again.
#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_body_is_aborted_and_not_stored() {
    let rig = Rig::start("", |_| {
        vec![
            Step::Write(
                format!("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n{CACHEABLE}\r\n0123456789")
                    .into_bytes(),
            ),
            Step::Close,
        ]
    });
    for n in 1..=2u64 {
        let got = rig.fetch("/trunc", &[]).await;
        assert!(
            got.aborted(),
            "#{n}: a 10-byte body was delivered as a complete {} ({})",
            got.status,
            got.cache_status()
        );
        if let Ok(body) = &got.body {
            assert!(!body.starts_with(b"0123456789"), "#{n}: {body:?}");
        }
        assert!(!is_hit(got.cache_status()), "#{n}: {}", got.cache_status());
        rig.wait_lookups(n).await;
        assert_eq!(
            rig.backend.count("/trunc"),
            n as usize,
            "the truncated body was stored"
        );
    }
    assert_eq!(rig.objects().await, 0);
    rig.expect_good().await;
}

/// `Content-Length: 5` followed by more bytes (here a whole second response, in the same
/// write, on a connection the backend keeps open): the client gets exactly 5 body bytes and
/// nothing after them; the stored copy is those 5 bytes; and the leftover never answers a
/// later request sent on that upstream connection (no response-queue desync).
#[tokio::test(flavor = "multi_thread")]
async fn bytes_beyond_content_length_never_reach_a_client() {
    let rig = Rig::start("", |path| match path {
        "/extra" => vec![
            Step::Write(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n{CACHEABLE}\r\nhello\
                     HTTP/1.1 200 OK\r\nContent-Length: 8\r\n{CACHEABLE}\r\nSMUGGLED"
                )
                .into_bytes(),
            ),
            Step::Next,
        ],
        _ => vec![
            Step::Write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Control: no-store\r\n\r\nother"
                    .to_vec(),
            ),
            Step::Next,
        ],
    });
    let (status, headers, body) = rig.raw_get("/extra").await;
    assert_eq!(status, 200);
    assert_eq!(raw_header(&headers, "content-length"), Some("5"));
    assert_eq!(
        body,
        b"hello",
        "bytes after Content-Length reached the client: {:?}",
        String::from_utf8_lossy(&body)
    );
    rig.wait_lookups(1).await;

    // Later requests, one of which may be sent on the connection that had the leftover.
    for n in 1..=3u64 {
        let got = rig.fetch("/other", &[]).await;
        assert_eq!(got.status, 200, "/other #{n}");
        assert_eq!(
            got.body.as_deref().ok(),
            Some(&b"other"[..]),
            "/other #{n} was answered with the bytes left over from /extra"
        );
        rig.wait_lookups(1 + n).await;
    }
    assert_eq!(rig.backend.count("/other"), 3);

    let (status, headers, body) = rig.raw_get("/extra").await;
    let cache_status = raw_header(&headers, "cache-status").unwrap_or("");
    assert!(is_hit(cache_status), "{cache_status}");
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"hello"[..]),
        "the stored copy"
    );
    assert_eq!(raw_header(&headers, "content-length"), Some("5"));
    assert_eq!(rig.backend.count("/extra"), 1);
}

/// Broken chunked framing part-way through the body (a size that is not hex, a chunk shorter
/// than its size, data not followed by CRLF, no last chunk, a size that overflows): aborted,
/// never a complete 200, never stored.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_chunk_framing_mid_body_is_aborted_and_not_stored() {
    let cases: &[(&str, &[u8])] = &[
        ("/size-not-hex", b"5\r\nhello\r\nZZ\r\nmore\r\n0\r\n\r\n"),
        ("/short-chunk", b"5\r\nhello\r\na\r\nabc"),
        ("/no-crlf-after-data", b"5\r\nhelloXX3\r\nabc\r\n0\r\n\r\n"),
        ("/no-last-chunk", b"5\r\nhello\r\n"),
        (
            "/size-overflows",
            b"5\r\nhello\r\nffffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
        ),
    ];
    let table: Vec<(String, Vec<u8>)> = cases
        .iter()
        .map(|(p, b)| (p.to_string(), b.to_vec()))
        .collect();
    let rig = Rig::start("", move |path| {
        let body = table
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .unwrap_or_default();
        vec![
            Step::Write(
                format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{CACHEABLE}\r\n")
                    .into_bytes(),
            ),
            Step::Write(body),
            Step::Close,
        ]
    });
    let mut lookups = 0;
    for (path, _) in cases {
        for n in 1..=2 {
            let got = rig.fetch(path, &[]).await;
            assert!(
                got.aborted(),
                "{path} #{n}: broken chunked framing was delivered as a complete {} with body \
                 {:?}",
                got.status,
                got.body
            );
            assert!(
                !is_hit(got.cache_status()),
                "{path} #{n}: {}",
                got.cache_status()
            );
            lookups += 1;
            rig.wait_lookups(lookups).await;
        }
        assert_eq!(rig.backend.count(path), 2, "{path} was stored");
    }
    assert_eq!(rig.objects().await, 0);
    rig.expect_good().await;
}

/// `Content-Encoding: gzip` on a body that is not gzip (and the backend was asked for
/// identity): the proxy does not decode, re-encode or choke on it. Every client, whatever it
/// accepts, gets the backend's bytes unchanged with `Content-Encoding: gzip` as the backend
/// said (the only honest description the proxy has), the stored copy is those same bytes, and
/// the next request works.
#[tokio::test(flavor = "multi_thread")]
async fn a_body_falsely_labelled_gzip_passes_through_verbatim() {
    let body = "this is plain text that claims to be gzip. ".repeat(50);
    let raw = body.clone().into_bytes();
    let rig = Rig::start("", move |_| {
        vec![
            Step::Write(
                [
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\n\
                         Content-Length: {}\r\n{CACHEABLE}\r\n",
                        raw.len()
                    )
                    .into_bytes(),
                    raw.clone(),
                ]
                .concat(),
            ),
            Step::Next,
        ]
    });
    let mut lookups = 0;
    for accept in ["identity", "gzip", "br", "zstd, br;q=0.9, gzip;q=0.1", ""] {
        let headers: Vec<(&str, &str)> = if accept.is_empty() {
            vec![]
        } else {
            vec![("accept-encoding", accept)]
        };
        let got = rig.fetch("/gz", &headers).await;
        assert_eq!(got.status, 200, "Accept-Encoding: {accept}");
        assert_eq!(
            got.all("content-encoding"),
            ["gzip"],
            "Accept-Encoding: {accept}"
        );
        assert_eq!(
            got.body.as_deref().ok(),
            Some(body.as_bytes()),
            "Accept-Encoding: {accept}: the bytes were changed"
        );
        assert_eq!(
            is_hit(got.cache_status()),
            lookups > 0,
            "Accept-Encoding: {accept}: {}",
            got.cache_status()
        );
        lookups += 1;
        rig.wait_lookups(lookups).await;
    }
    assert_eq!(rig.backend.count("/gz"), 1);
    assert_eq!(rig.objects().await, 1);
    rig.expect_good().await;
}

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

// ======================================================================================
// Rig
// ======================================================================================

struct Rig {
    backend: RawBackend,
    proxy: Proxy,
}

/// What a client saw: the header, and the body or why it could not be read whole.
struct Fetched {
    status: u16,
    headers: http::HeaderMap,
    body: Result<Vec<u8>, String>,
}

impl Fetched {
    /// The honest outcomes of a broken upstream response: an error status from the proxy, or
    /// a body that ended with an error.
    fn aborted(&self) -> bool {
        self.status >= 500 || self.body.is_err()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    fn cache_status(&self) -> &str {
        self.header("cache-status").unwrap_or("")
    }
}

impl Rig {
    /// The backend (answering `/good` itself, everything else with `script`) as upstream "app"
    /// with `upstream` lines and its breaker off, behind one caching route on `/`.
    fn start(upstream: &str, script: impl Fn(&str) -> Vec<Step> + Send + Sync + 'static) -> Rig {
        let backend = RawBackend::start(move |path| {
            if path == "/good" {
                vec![
                    Step::Write(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nCache-Control: no-store\r\n\r\ngood"
                            .to_vec(),
                    ),
                    Step::Next,
                ]
            } else {
                script(path)
            }
        });
        let proxy = Proxy::start(&conf(&backend, "enabled = true", upstream));
        Rig { backend, proxy }
    }

    async fn fetch(&self, path: &str, headers: &[(&str, &str)]) -> Fetched {
        let mut req = client().get(self.proxy.url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req
            .send()
            .await
            .expect("a response header through the proxy");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| format!("{e:?}"));
        Fetched {
            status,
            headers,
            body,
        }
    }

    /// GET over a raw socket (`Connection: close`): status, headers, and every byte after the
    /// head until the proxy closed.
    async fn raw_get(&self, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
        raw_exchange(
            self.proxy.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"),
        )
        .await
    }

    /// The backend's well-behaved path still answers through the proxy.
    async fn expect_good(&self) {
        let before = self.backend.count("/good");
        let got = self.fetch("/good", &[]).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body.as_deref().ok(), Some(&b"good"[..]));
        assert_eq!(self.backend.count("/good"), before + 1);
    }

    async fn cache(&self) -> Value {
        let resp = client()
            .get(self.proxy.admin_url("/cache"))
            .send()
            .await
            .expect("GET /cache");
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("GET /cache JSON")
    }

    async fn objects(&self) -> u64 {
        self.cache().await["objects"].as_u64().expect("objects")
    }

    async fn metrics(&self) -> String {
        client()
            .get(self.proxy.admin_url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Waits until the proxy has finished `n` requests on the caching route (each counts one
    /// lookup in `logging`, after any fill and after the upstream attempt was recorded).
    async fn wait_lookups(&self, n: u64) {
        let start = Instant::now();
        loop {
            let cache = self.cache().await;
            let done: u64 = cache["lookups"]
                .as_object()
                .expect("lookups")
                .values()
                .filter_map(Value::as_u64)
                .sum();
            if done >= n {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "timed out waiting for {n} finished requests (have {done})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// For each `(path, bytes)`: the backend writes the bytes and closes; the client gets the
/// proxy's 502 naming the upstream, the backend saw the request, nothing is stored, and a good
/// request right after is served.
async fn expect_502_then_good(cases: &[(&str, &[u8])]) {
    let table: Vec<(String, Vec<u8>)> = cases
        .iter()
        .map(|(p, b)| (p.to_string(), b.to_vec()))
        .collect();
    let rig = Rig::start("", move |path| {
        let bytes = table
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .unwrap_or_default();
        vec![Step::Write(bytes), Step::Close]
    });
    let mut lookups = 0;
    for (path, bytes) in cases {
        let what = String::from_utf8_lossy(bytes);
        let (status, headers, body) = rig.raw_get(path).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(
            status, 502,
            "{path}: the backend sent {what:?}; client got {body:?}"
        );
        assert!(
            body.contains("upstream \"app\" sent an invalid response"),
            "{path}: {body:?}"
        );
        assert!(
            !body.contains("127.0.0.1"),
            "{path}: address leaked: {body:?}"
        );
        assert_eq!(
            raw_header(&headers, "cache-control"),
            Some("no-store"),
            "{path}"
        );
        // A pooled connection that closes without an answer is retried once on a fresh one
        // (Pingora's rule for idempotent requests), so an empty reply may be seen twice.
        let seen = rig.backend.count(path);
        assert!(
            (1..=2).contains(&seen),
            "{path}: the backend saw {seen} requests"
        );
        lookups += 1;
        rig.wait_lookups(lookups).await;
        rig.expect_good().await;
        lookups += 1;
        rig.wait_lookups(lookups).await;
    }
    assert_eq!(rig.objects().await, 0);
}

/// Reads a response body chunk by chunk: what arrived, and the error that ended it (if any).
async fn read_until_error(mut resp: reqwest::Response) -> (Vec<u8>, Option<String>) {
    let mut received = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(15), resp.chunk()).await {
            Err(_) => return (received, Some("the client waited 15 s for a chunk".into())),
            Ok(Ok(Some(chunk))) => received.extend_from_slice(&chunk),
            Ok(Ok(None)) => return (received, None),
            Ok(Err(e)) => return (received, Some(format!("{e:?}"))),
        }
    }
}

fn header_value(headers: &http::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Decodes a complete chunked body (sizes in hex, no extensions or trailers expected).
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = String::from_utf8_lossy(&body[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("hex chunk size");
        body = &body[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// Whether a `Cache-Status` value's `outrider` member says `hit` (RFC 9211).
fn is_hit(cache_status: &str) -> bool {
    cache_status
        .split(',')
        .map(str::trim)
        .find(|m| m.starts_with("outrider"))
        .is_some_and(|m| m.split(';').skip(1).any(|p| p.trim() == "hit"))
}

// ======================================================================================
// Helpers
// ======================================================================================

/// One thing the raw backend does on a connection, in order.
#[derive(Clone, Debug)]
enum Step {
    /// These bytes, verbatim.
    Write(Vec<u8>),
    /// These bytes one at a time, `gap` apart.
    Trickle(Vec<u8>, Duration),
    Pause(Duration),
    /// FIN.
    Close,
    /// RST: `SO_LINGER` 0, then drop.
    Reset,
    /// Wait for the test's signal.
    Await(Arc<Notify>),
    /// Keep the connection and read the next request on it.
    Next,
}

type Script = Arc<dyn Fn(&str) -> Vec<Step> + Send + Sync>;

/// An HTTP/1.1 backend that writes exact bytes: reads a request head, records its path, and
/// runs the script's steps for that path. Runs in its own thread and runtime.
struct RawBackend {
    addr: SocketAddr,
    paths: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RawBackend {
    fn start(script: impl Fn(&str) -> Vec<Step> + Send + Sync + 'static) -> RawBackend {
        let script: Script = Arc::new(script);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let paths: Arc<Mutex<Vec<String>>> = Arc::default();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let p = paths.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            tokio::spawn(serve(stream, script.clone(), p.clone()));
                        }
                    }
                }
            });
        });
        RawBackend {
            addr,
            paths,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn count(&self, path: &str) -> usize {
        self.paths
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.as_str() == path)
            .count()
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(mut stream: tokio::net::TcpStream, script: Script, paths: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    loop {
        // One request head (GETs only: no body follows).
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let target = head.split(' ').nth(1).unwrap_or("").to_string();
        let path = target.split('?').next().unwrap_or("").to_string();
        paths.lock().unwrap().push(path.clone());
        let mut keep = false;
        for step in script(&path) {
            match step {
                Step::Write(bytes) => {
                    if stream.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Step::Trickle(bytes, gap) => {
                    for (i, b) in bytes.iter().enumerate() {
                        if i > 0 {
                            tokio::time::sleep(gap).await;
                        }
                        if stream.write_all(&[*b]).await.is_err() {
                            return;
                        }
                    }
                }
                Step::Pause(d) => tokio::time::sleep(d).await,
                Step::Await(gate) => gate.notified().await,
                Step::Close => {
                    let _ = stream.shutdown().await;
                    return;
                }
                Step::Reset => {
                    let _ = stream.set_zero_linger();
                    return;
                }
                Step::Next => {
                    keep = true;
                    break;
                }
            }
        }
        if !keep {
            return;
        }
    }
}

/// The backend as upstream "app" (breaker off, unless `upstream` says otherwise), one route
/// on `/` with the inline cache table `cache`.
fn conf(backend: &RawBackend, cache: &str, upstream: &str) -> String {
    format!(
        "[upstreams.app]\nendpoints = [\"{}\"]\n{upstream}\n\n[upstreams.app.breaker]\nenabled = false\n\n\
         [[routes]]\nname = \"c\"\nupstream = \"app\"\nmatch = {{ path_prefix = \"/\" }}\n\
         cache = {{ {cache} }}\n\n",
        backend.addr
    )
}
