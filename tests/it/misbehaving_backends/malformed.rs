//! Responses that break HTTP/1.1: invalid status lines and header fields, bodies that are not
//! what the header promised.

use crate::misbehaving_backends::raw_backend::Step;
use crate::misbehaving_backends::rig::{dechunk, expect_502_then_good, is_hit, Rig, CACHEABLE};
use crate::support::raw::raw_header;

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
