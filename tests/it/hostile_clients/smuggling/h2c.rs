//! HTTP/2 cleartext: the h2 to h1 downgrade.

use std::net::SocketAddr;

use crate::hostile_clients::raw_backend::{framing_problem, lossy, Backend, Seen};
use crate::hostile_clients::raw_client::{fresh_request_is_served, in_, secs, Client, End};
use crate::hostile_clients::smuggling::{case_host, is_other_case, SMUGGLED};
use crate::support::Proxy;

// ---- HTTP/2 cleartext: the h2 → h1 downgrade must not create framing the client did not send.

/// HPACK fields of a request: (name, value), pseudo-headers first.
type H2Fields = Vec<(&'static [u8], &'static [u8])>;

/// (case, fields, DATA, must the request be refused, the body the backend must get if not)
type H2Case<'a> = (&'a str, H2Fields, &'a [u8], bool, &'a [u8]);

/// An HTTP/2 frame.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK "literal header field without indexing, new name", no Huffman coding.
fn hpack_literal(name: &[u8], value: &[u8]) -> Vec<u8> {
    assert!(name.len() < 127 && value.len() < 127, "short strings only");
    let mut out = vec![0x00, name.len() as u8];
    out.extend_from_slice(name);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
    out
}

#[derive(Debug, PartialEq)]
enum H2End {
    /// A response header came; the status if it used a static-table index, else 0.
    Status(u16),
    Reset(u32),
    GoAway(u32),
    Closed,
    Timeout,
}

/// Sends one h2c request (prior knowledge) with `fields` (pseudo-headers first) and `data`
/// (one DATA frame with END_STREAM), and reports how the stream ended.
async fn h2_request(addr: SocketAddr, fields: &[(&[u8], &[u8])], data: &[u8]) -> H2End {
    let mut c = Client::connect(addr).await;
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(4, 0, 0, &[]));
    let block: Vec<u8> = fields
        .iter()
        .flat_map(|(n, v)| hpack_literal(n, v))
        .collect();
    let end_stream = if data.is_empty() { 0x1 } else { 0 };
    out.extend(h2_frame(1, 0x4 | end_stream, 1, &block));
    if !data.is_empty() {
        out.extend(h2_frame(0, 0x1, 1, data));
    }
    if c.send(&out).await.is_err() {
        return H2End::Closed;
    }
    let deadline = in_(secs(5));
    loop {
        while c.buf.len() >= 9 {
            let len = ((c.buf[0] as usize) << 16) | ((c.buf[1] as usize) << 8) | c.buf[2] as usize;
            if c.buf.len() < 9 + len {
                break;
            }
            let (kind, flags) = (c.buf[3], c.buf[4]);
            let stream = u32::from_be_bytes([c.buf[5], c.buf[6], c.buf[7], c.buf[8]]) & 0x7fff_ffff;
            let payload: Vec<u8> = c.buf[9..9 + len].to_vec();
            c.buf.drain(..9 + len);
            let code = |p: &[u8], at: usize| {
                p.get(at..at + 4)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            };
            match kind {
                4 if flags & 0x1 == 0 => {
                    let _ = c.send(&h2_frame(4, 0x1, 0, &[])).await;
                }
                1 if stream == 1 => {
                    let status = match payload.first() {
                        Some(b) if (0x88..=0x8e).contains(b) => {
                            [200, 204, 206, 304, 400, 404, 500][(b - 0x88) as usize]
                        }
                        _ => 0,
                    };
                    return H2End::Status(status);
                }
                3 if stream == 1 => return H2End::Reset(code(&payload, 0)),
                7 => return H2End::GoAway(code(&payload, 4)),
                _ => {}
            }
        }
        match c.fill(deadline).await {
            Ok(_) => {}
            Err(End::Timeout) => return H2End::Timeout,
            Err(_) => return H2End::Closed,
        }
    }
}

#[tokio::test]
async fn h2c_requests_are_never_downgraded_into_ambiguous_http1() {
    let backend = Backend::start();
    let proxy = Proxy::start(&backend.upstream_toml());
    let post = |path: &'static [u8]| -> Vec<(&'static [u8], &'static [u8])> {
        vec![
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":authority", b"smuggle.test"),
            (b":path", path),
        ]
    };
    let with = |mut fields: Vec<(&'static [u8], &'static [u8])>,
                extra: &[(&'static [u8], &'static [u8])]| {
        fields.extend_from_slice(extra);
        fields
    };
    let long_body = format!("hello{SMUGGLED}");
    let chunked_body = format!("0\r\n\r\n{SMUGGLED}");
    // (case, fields, data, must the request be refused, the body the backend must get if not)
    let cases: Vec<H2Case> = vec![
        (
            "valid POST with content-length",
            with(post(b"/target"), &[(b"content-length", b"5")]),
            b"hello",
            false,
            b"hello",
        ),
        (
            "valid POST without content-length",
            post(b"/target"),
            b"hello",
            false,
            b"hello",
        ),
        (
            "content-length 5, DATA longer (H2.CL)",
            with(post(b"/target"), &[(b"content-length", b"5")]),
            long_body.as_bytes(),
            true,
            b"",
        ),
        (
            "content-length 100, DATA shorter",
            with(post(b"/target"), &[(b"content-length", b"100")]),
            b"hello",
            true,
            b"",
        ),
        (
            "transfer-encoding: chunked (H2.TE)",
            with(post(b"/target"), &[(b"transfer-encoding", b"chunked")]),
            chunked_body.as_bytes(),
            true,
            b"",
        ),
        (
            "CRLF in a header value",
            with(
                post(b"/target"),
                &[(b"x-a", b"b\r\nTransfer-Encoding: chunked")],
            ),
            chunked_body.as_bytes(),
            true,
            b"",
        ),
        (
            "CRLF and a request in :path",
            post(b"/target HTTP/1.1\r\nHost: x\r\n\r\nGET /smuggled"),
            b"hello",
            true,
            b"",
        ),
        (
            "connection-specific header (connection: keep-alive)",
            with(post(b"/target"), &[(b"connection", b"keep-alive")]),
            b"hello",
            true,
            b"",
        ),
        (
            "uppercase header name",
            with(post(b"/target"), &[(b"X-Upper", b"1")]),
            b"hello",
            true,
            b"",
        ),
    ];
    let mut problems = Vec::new();
    for (index, (name, fields, data, refuse, body)) in cases.into_iter().enumerate() {
        let mark = backend.mark();
        // Each case names its own host (as the HTTP/1 cases do), so a head the backend reads
        // late for an earlier, aborted case is not counted against this one.
        let host = case_host(index);
        let fields: Vec<(&[u8], &[u8])> = fields
            .iter()
            .map(|&(name, value)| {
                if name == b":authority" {
                    (name, host.as_bytes())
                } else {
                    (name, value)
                }
            })
            .collect();
        let end = h2_request(proxy.addr, &fields, data).await;
        if let Err(e) = fresh_request_is_served(proxy.addr, &backend).await {
            problems.push(format!("[{name}] {e}"));
        }
        let seen: Vec<Seen> = backend
            .since(mark)
            .into_iter()
            .filter(|s| s.path() != "/fresh" && !is_other_case(s, &host))
            .collect();
        eprintln!(
            "observed: h2 {name} -> {end:?}; upstream: {:?}",
            seen.iter().map(Seen::describe).collect::<Vec<_>>()
        );
        if end == H2End::Timeout {
            problems.push(format!("[{name}] no answer, reset or close within 5 s"));
        }
        if seen.len() > 1 || seen.iter().any(|s| s.request_line().contains("smuggled")) {
            problems.push(format!(
                "[{name}] SMUGGLED: the backend saw {:?}",
                seen.iter().map(Seen::describe).collect::<Vec<_>>()
            ));
        }
        for s in seen.iter().filter(|s| s.complete) {
            if refuse {
                problems.push(format!(
                    "[{name}] a malformed h2 request (RFC 9113 §8.1.1/§8.2) was forwarded: {}",
                    s.describe()
                ));
            } else if s.body != body {
                problems.push(format!("[{name}] forwarded body {:?}", lossy(&s.body)));
            }
            if let Some(p) = framing_problem(s) {
                problems.push(format!("[{name}] {p}"));
            }
        }
        if !refuse && (end != H2End::Status(200) || seen.iter().filter(|s| s.complete).count() != 1)
        {
            problems.push(format!("[{name}] a valid request was not served: {end:?}"));
        }
        let pending = backend.pending();
        if pending > 0 {
            problems.push(format!(
                "[{name}] the backend holds {pending} bytes that are no complete request"
            ));
        }
        for issue in backend.issues_since(mark) {
            problems.push(format!("[{name}] the backend's strict parser: {issue}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
