//! Oversized input against the `[limits]`, and the timeouts.

use std::time::Duration;

use tokio::time::Instant;

use crate::hostile_clients::raw_backend::{lossy, Backend, Seen};
use crate::hostile_clients::raw_client::{
    fresh_request_is_served, in_, one_shot, parse_all, secs, Client, End,
};
use crate::support::Proxy;

// ======================================================================================
// Limits
// ======================================================================================

/// The small limits the limit tests run with.
const LIMITS: &str = "[limits]\nmax_request_line = \"1KiB\"\nmax_header_bytes = \"4KiB\"\n\
                      max_headers = 20\nmax_body = \"4KiB\"\nbody_timeout = \"1s\"\n\
                      idle_timeout = \"1s\"\n\n";

fn limited(backend: &Backend) -> Proxy {
    Proxy::start(&format!("{}{LIMITS}", backend.upstream_toml()))
}

/// A GET whose request line (method, target, version and the two spaces) is `len` bytes.
fn request_line_of(len: usize) -> String {
    let fixed = "GET  HTTP/1.1".len() + 1; // the target's leading '/'
    let target = format!("/{}", "a".repeat(len - fixed));
    let line = format!("GET {target} HTTP/1.1");
    assert_eq!(line.len(), len);
    format!("{line}\r\nHost: limits.test\r\nConnection: close\r\n\r\n")
}

/// A GET whose request line plus header lines (each with its CRLF) make `len` bytes.
fn header_bytes_of(len: usize) -> String {
    let start = "GET /h HTTP/1.1\r\nHost: limits.test\r\nConnection: close\r\nX-Fill: \r\n";
    let fill = "f".repeat(len - start.len());
    let request = format!(
        "GET /h HTTP/1.1\r\nHost: limits.test\r\nConnection: close\r\nX-Fill: {fill}\r\n\r\n"
    );
    assert_eq!(request.len() - 2, len);
    request
}

/// A GET with exactly `count` header fields.
fn header_count_of(count: usize) -> String {
    let mut request = "GET /n HTTP/1.1\r\nHost: limits.test\r\nConnection: close\r\n".to_string();
    for i in 0..count - 2 {
        request.push_str(&format!("X-H{i}: v\r\n"));
    }
    request.push_str("\r\n");
    request
}

/// Sends `request` on a new connection and checks the status; for refusals, that nothing
/// reached the backend and that a normal request is still served.
async fn expect_status(
    proxy: &Proxy,
    backend: &Backend,
    what: &str,
    request: &str,
    want: u16,
) -> Result<(), String> {
    let mark = backend.mark();
    let resp = one_shot(proxy.addr, request.as_bytes())
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    if resp.status != want {
        return Err(format!(
            "{what}: got {} {:?}, want {want}",
            resp.status,
            lossy(&resp.body)
        ));
    }
    fresh_request_is_served(proxy.addr, backend)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let forwarded: Vec<String> = backend
        .since(mark)
        .iter()
        .filter(|s| s.path() != "/fresh")
        .map(Seen::describe)
        .collect();
    match (want, forwarded.len()) {
        (200, 1) => Ok(()),
        (200, n) => Err(format!("{what}: 200 but {n} requests upstream")),
        (_, 0) => Ok(()),
        (_, _) => Err(format!(
            "{what}: refused with {want} but forwarded: {forwarded:?}"
        )),
    }
}

#[tokio::test]
async fn a_request_line_over_max_request_line_gets_414() {
    let backend = Backend::start();
    let proxy = limited(&backend);
    // A margin of 4 bytes on either side, whether or not the spaces or CRLF count.
    let mut problems = Vec::new();
    for (what, len, want) in [
        ("request line 4 bytes under 1KiB", 1024 - 4, 200),
        ("request line 4 bytes over 1KiB", 1024 + 4, 414),
        ("request line of 2KiB", 2048, 414),
    ] {
        if let Err(e) = expect_status(&proxy, &backend, what, &request_line_of(len), want).await {
            problems.push(e);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn a_head_over_max_header_bytes_gets_431() {
    let backend = Backend::start();
    let proxy = limited(&backend);
    let mut problems = Vec::new();
    for (what, len, want) in [
        ("head 64 bytes under 4KiB", 4096 - 64, 200),
        ("head 64 bytes over 4KiB", 4096 + 64, 431),
        ("head of 32KiB", 32 * 1024, 431),
    ] {
        if let Err(e) = expect_status(&proxy, &backend, what, &header_bytes_of(len), want).await {
            problems.push(e);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn more_header_fields_than_max_headers_get_431() {
    let backend = Backend::start();
    let proxy = limited(&backend);
    let mut problems = Vec::new();
    for (what, count, want) in [
        ("20 header fields (the limit)", 20, 200),
        ("21 header fields", 21, 431),
        ("200 header fields", 200, 431),
    ] {
        if let Err(e) = expect_status(&proxy, &backend, what, &header_count_of(count), want).await {
            problems.push(e);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn a_content_length_over_max_body_gets_413_before_anything_goes_upstream() {
    let backend = Backend::start();
    let proxy = limited(&backend);
    let mut problems = Vec::new();
    // Only the head is sent: the answer must not wait for a body it is going to refuse.
    for (what, head) in [
        (
            "Content-Length 4097",
            "POST /big HTTP/1.1\r\nHost: limits.test\r\nContent-Length: 4097\r\n\r\n",
        ),
        (
            "Content-Length 4097 with Expect: 100-continue",
            "POST /big HTTP/1.1\r\nHost: limits.test\r\nExpect: 100-continue\r\n\
             Content-Length: 4097\r\n\r\n",
        ),
        (
            "Content-Length 1 TiB",
            "POST /big HTTP/1.1\r\nHost: limits.test\r\nContent-Length: 1099511627776\r\n\r\n",
        ),
    ] {
        let mark = backend.mark();
        let mut c = Client::connect(proxy.addr).await;
        c.send(head.as_bytes()).await.unwrap();
        match c.response(secs(5)).await {
            Ok(r) if r.status == 413 && r.interim.is_empty() => {
                if c.until_closed(secs(5)).await.is_err() {
                    problems.push(format!(
                        "{what}: 413 but the connection stayed open with the body unread"
                    ));
                }
            }
            other => problems.push(format!(
                "{what}: want 413 without 100 Continue, got {other:?}"
            )),
        }
        if let Err(e) = fresh_request_is_served(proxy.addr, &backend).await {
            problems.push(format!("{what}: {e}"));
        }
        let forwarded: Vec<String> = backend
            .since(mark)
            .iter()
            .filter(|s| s.path() != "/fresh")
            .map(Seen::describe)
            .collect();
        if !forwarded.is_empty() {
            problems.push(format!("{what}: the upstream received {forwarded:?}"));
        }
    }
    // At the limit: forwarded whole.
    let mark = backend.mark();
    let body = "b".repeat(4096);
    let request = format!(
        "POST /fits HTTP/1.1\r\nHost: limits.test\r\nContent-Length: 4096\r\nConnection: close\r\n\r\n{body}"
    );
    match one_shot(proxy.addr, request.as_bytes()).await {
        Ok(r) if r.status == 200 => match backend.seen_path(mark, "/fits") {
            Some(s) if s.complete && s.body.len() == 4096 => {}
            other => problems.push(format!("a 4096-byte body: the backend saw {other:?}")),
        },
        other => problems.push(format!("a 4096-byte body (the limit): {other:?}")),
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn a_chunked_body_growing_past_max_body_is_cut_with_413() {
    let backend = Backend::start();
    let proxy = limited(&backend);
    let mut problems = Vec::new();

    // 4 chunks of 1 KiB, then one byte more, and no last chunk: nothing is left unread in
    // the proxy's socket when it closes, so its 413 is not lost to a reset.
    let mark = backend.mark();
    let mut c = Client::connect(proxy.addr).await;
    let mut request =
        "POST /grow HTTP/1.1\r\nHost: limits.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_string();
    for _ in 0..4 {
        request.push_str(&format!("400\r\n{}\r\n", "c".repeat(1024)));
    }
    request.push_str("1\r\nc");
    c.send(request.as_bytes()).await.unwrap();
    match c.response(secs(5)).await {
        Ok(r) if r.status == 413 => {
            if c.until_closed(secs(5)).await.is_err() {
                problems.push("413 but the connection was not closed".into());
            }
        }
        other => problems.push(format!("a 4097-byte chunked body: want 413, got {other:?}")),
    }
    if let Err(e) = fresh_request_is_served(proxy.addr, &backend).await {
        problems.push(e);
    }
    for s in backend.since(mark).iter().filter(|s| s.path() == "/grow") {
        if s.complete {
            problems.push(format!(
                "the over-long chunked body reached the backend complete: {}",
                s.describe()
            ));
        } else if !backend.is_closed(s.conn) {
            problems.push(
                "the upstream connection carrying the cut body is still open (it cannot be \
                 reused: its request is unfinished)"
                    .into(),
            );
        }
    }

    // Exactly at the limit: forwarded whole.
    let mark = backend.mark();
    let mut request = "POST /fits HTTP/1.1\r\nHost: limits.test\r\nTransfer-Encoding: chunked\r\n\
                       Connection: close\r\n\r\n"
        .to_string();
    for _ in 0..4 {
        request.push_str(&format!("400\r\n{}\r\n", "c".repeat(1024)));
    }
    request.push_str("0\r\n\r\n");
    match one_shot(proxy.addr, request.as_bytes()).await {
        Ok(r) if r.status == 200 => match backend.seen_path(mark, "/fits") {
            Some(s) if s.complete && s.body.len() == 4096 => {}
            other => problems.push(format!(
                "a 4096-byte chunked body: the backend saw {other:?}"
            )),
        },
        other => problems.push(format!("a 4096-byte chunked body (the limit): {other:?}")),
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn max_body_zero_means_no_limit() {
    let backend = Backend::start();
    let proxy = Proxy::start(&format!(
        "{}[limits]\nmax_body = \"0\"\n\n",
        backend.upstream_toml()
    ));
    let mark = backend.mark();
    let body = "z".repeat(256 * 1024);
    let request = format!(
        "POST /any HTTP/1.1\r\nHost: limits.test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let resp = one_shot(proxy.addr, request.as_bytes()).await.unwrap();
    assert_eq!(resp.status, 200, "max_body = \"0\" must not limit the body");
    let seen = backend.seen_path(mark, "/any").expect("forwarded");
    assert_eq!(seen.body.len(), body.len());
}

#[tokio::test]
async fn a_stalled_request_body_gets_408_and_the_connection_closed() {
    let backend = Backend::start();
    let proxy = limited(&backend);
    let mut problems = Vec::new();
    for (what, head, part) in [
        (
            "sized body",
            "POST /stall HTTP/1.1\r\nHost: limits.test\r\nContent-Length: 100\r\n\r\n",
            "0123456789".to_string(),
        ),
        (
            "chunked body",
            "POST /stall HTTP/1.1\r\nHost: limits.test\r\nTransfer-Encoding: chunked\r\n\r\n",
            "a\r\n0123456789\r\n".to_string(),
        ),
    ] {
        let mark = backend.mark();
        let mut c = Client::connect(proxy.addr).await;
        c.send(format!("{head}{part}").as_bytes()).await.unwrap();
        let started = Instant::now();
        match c.response(secs(6)).await {
            Ok(r) if r.status == 408 => {
                let took = started.elapsed();
                if took < Duration::from_millis(700) {
                    problems.push(format!(
                        "{what}: 408 after {took:?}, before body_timeout (1s) had passed"
                    ));
                }
                if c.until_closed(secs(5)).await.is_err() {
                    problems.push(format!("{what}: 408 but the connection was not closed"));
                }
            }
            other => problems.push(format!(
                "{what}: want 408 within ~1 s of the stall (body_timeout), got {other:?}"
            )),
        }
        // The unfinished upstream request must not linger either.
        if let Some(s) = backend.seen_path(mark, "/stall") {
            if s.complete {
                problems.push(format!("{what}: the backend got a complete request"));
            } else {
                let closed = {
                    let deadline = in_(secs(5));
                    loop {
                        if backend.is_closed(s.conn) {
                            break true;
                        }
                        if Instant::now() > deadline {
                            break false;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                };
                if !closed {
                    problems.push(format!(
                        "{what}: the upstream connection with the half-sent body stayed open"
                    ));
                }
            }
        }
        if let Err(e) = fresh_request_is_served(proxy.addr, &backend).await {
            problems.push(format!("{what}: {e}"));
        }
    }

    // A body that keeps coming, with pauses shorter than body_timeout, is not cut even
    // though it takes longer than body_timeout in total. (The sleeps pace the client.)
    let mark = backend.mark();
    let mut c = Client::connect(proxy.addr).await;
    c.send(b"POST /slow HTTP/1.1\r\nHost: limits.test\r\nContent-Length: 20\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        c.send(b"01234").await.unwrap();
    }
    match c.response(secs(5)).await {
        Ok(r) if r.status == 200 => match backend.seen_path(mark, "/slow") {
            Some(s) if s.complete && s.body == b"01234012340123401234" => {}
            other => problems.push(format!("a slow but steady body: the backend saw {other:?}")),
        },
        other => problems.push(format!(
            "a body with 400 ms pauses (under body_timeout) was not served: {other:?}"
        )),
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let backend = Backend::start();
    let proxy = limited(&backend);
    let mut c = Client::connect(proxy.addr).await;
    for path in ["/one", "/two"] {
        c.send(format!("GET {path} HTTP/1.1\r\nHost: limits.test\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let r = c.response(secs(5)).await.expect("a keep-alive response");
        assert_eq!(r.status, 200, "{path}");
    }
    let idle_from = Instant::now();
    let left = c.until_closed(secs(5)).await.unwrap_or_else(|b| {
        panic!(
            "a keep-alive connection idle for 5 s is still open (idle_timeout = 1s); got {:?}",
            lossy(&b)
        )
    });
    let idle = idle_from.elapsed();
    assert!(
        left.is_empty(),
        "bytes before the close: {:?}",
        lossy(&left)
    );
    assert!(
        idle >= Duration::from_millis(700),
        "closed after {idle:?}: sooner than idle_timeout (1s)"
    );
    fresh_request_is_served(proxy.addr, &backend).await.unwrap();
}

#[tokio::test]
async fn a_second_request_head_trickled_then_stalled_is_closed_after_idle_timeout() {
    let backend = Backend::start();
    let proxy = limited(&backend);
    let mark = backend.mark();
    let mut c = Client::connect(proxy.addr).await;
    c.send(b"GET /first HTTP/1.1\r\nHost: limits.test\r\n\r\n")
        .await
        .unwrap();
    let r = c.response(secs(5)).await.expect("the first response");
    assert_eq!(r.status, 200);
    // The next head arrives in pieces (paced by the client), then stops.
    for piece in ["GET /sec", "ond HTTP/1.1\r\n", "Host: limits"] {
        c.send(piece.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let stalled_from = Instant::now();
    let left = c.until_closed(secs(6)).await.unwrap_or_else(|b| {
        panic!(
            "a partial second head stalled for 6 s is still open (idle_timeout = 1s); got {:?}",
            lossy(&b)
        )
    });
    let (responses, _) = parse_all(&left);
    assert!(
        responses.iter().all(|r| r.status == 408),
        "only a 408 may answer a stalled head, got {responses:?}"
    );
    assert!(
        stalled_from.elapsed() < secs(4),
        "closed only after {:?}",
        stalled_from.elapsed()
    );
    assert!(
        backend.seen_path(mark, "/second").is_none(),
        "the partial head was forwarded"
    );
    fresh_request_is_served(proxy.addr, &backend).await.unwrap();
}

#[tokio::test]
async fn the_default_limits_are_the_documented_ones() {
    let backend = Backend::start();
    let proxy = Proxy::start(&backend.upstream_toml());
    let mut problems = Vec::new();
    for (what, request, want) in [
        (
            "100 header fields (default max_headers)",
            header_count_of(100),
            200,
        ),
        ("101 header fields", header_count_of(101), 431),
        (
            "request line 4 bytes under 8KiB",
            request_line_of(8192 - 4),
            200,
        ),
        (
            "request line 4 bytes over 8KiB",
            request_line_of(8192 + 4),
            414,
        ),
        (
            "head 64 bytes under 64KiB",
            header_bytes_of(65536 - 64),
            200,
        ),
        ("head 64 bytes over 64KiB", header_bytes_of(65536 + 64), 431),
        (
            "Content-Length one over 64MiB (head only)",
            format!(
                "POST /big HTTP/1.1\r\nHost: limits.test\r\nContent-Length: {}\r\n\r\n",
                64 * 1024 * 1024 + 1
            ),
            413,
        ),
    ] {
        if let Err(e) = expect_status(&proxy, &backend, what, &request, want).await {
            problems.push(e);
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn beyond_pingoras_hard_ceilings_requests_are_refused_and_not_forwarded() {
    let backend = Backend::start();
    let proxy = Proxy::start(&backend.upstream_toml());
    let mark = backend.mark();
    // 300 fields: over Pingora's 256 (400) and over the default max_headers (431).
    let resp = one_shot(proxy.addr, header_count_of(300).as_bytes()).await;
    assert!(
        matches!(&resp, Ok(r) if r.status == 400 || r.status == 431),
        "300 header fields: {resp:?}"
    );
    // Over 1 MiB of head: refused (400 or 431), or at least closed; never forwarded.
    let mut c = Client::connect(proxy.addr).await;
    let big = header_bytes_of(1100 * 1024);
    let _ = c.send(big.as_bytes()).await;
    match c.response(secs(10)).await {
        Ok(r) => assert!(
            r.status == 400 || r.status == 431,
            "a 1.1 MiB head got {}",
            r.status
        ),
        Err((End::Eof | End::Broken(_), _)) => {}
        Err((End::Timeout, _)) => panic!("a 1.1 MiB head: no answer and no close in 10 s"),
    }
    fresh_request_is_served(proxy.addr, &backend).await.unwrap();
    let forwarded: Vec<String> = backend
        .since(mark)
        .iter()
        .filter(|s| s.path() != "/fresh")
        .map(Seen::describe)
        .collect();
    assert!(forwarded.is_empty(), "forwarded: {forwarded:?}");
}
