//! The raw client: bytes in, parsed responses out, and the waiting helpers the tests share.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use crate::hostile_clients::raw_backend::{dechunk, find, lossy, Backend, Chunked};

// ======================================================================================
// The raw client
// ======================================================================================

#[derive(Debug)]
pub(crate) enum End {
    /// The proxy closed the connection (EOF).
    Eof,
    /// The read failed (e.g. connection reset); the reason is shown through `Debug`.
    Broken(#[allow(dead_code)] String),
    /// Nothing (more) arrived before the deadline.
    Timeout,
}

#[derive(Clone, Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// Interim (1xx) statuses received before this response.
    pub(crate) interim: Vec<u16>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub(crate) enum Parsed {
    Done(Resp, usize),
    More,
    Bad(String),
}

/// Parses one response from the front of `buf`; `eof` says no more bytes will come (which
/// ends a close-delimited body).
pub(crate) fn parse_response(buf: &[u8], eof: bool) -> Parsed {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return Parsed::More;
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let Some(status) = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|s| s.parse::<u16>().ok())
    else {
        return Parsed::Bad(format!("status line {status_line:?}"));
    };
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let start = end + 4;
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
        interim: Vec::new(),
    };
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return Parsed::Done(resp, start);
    }
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        return match dechunk(&buf[start..]) {
            Chunked::Done { body, used } => {
                resp.body = body;
                Parsed::Done(resp, start + used)
            }
            Chunked::More => Parsed::More,
            Chunked::Bad(why) => Parsed::Bad(why),
        };
    }
    if let Some(cl) = resp.header("content-length") {
        let Ok(n) = cl.parse::<usize>() else {
            return Parsed::Bad(format!("content-length {cl:?}"));
        };
        if buf.len() < start + n {
            return Parsed::More;
        }
        resp.body = buf[start..start + n].to_vec();
        return Parsed::Done(resp, start + n);
    }
    if eof {
        resp.body = buf[start..].to_vec();
        return Parsed::Done(resp, buf.len());
    }
    Parsed::More
}

/// Every response in `bytes` (what a connection sent until it closed), and what is left over.
pub(crate) fn parse_all(mut bytes: &[u8]) -> (Vec<Resp>, Vec<u8>) {
    let mut out = Vec::new();
    let mut interim = Vec::new();
    while !bytes.is_empty() {
        match parse_response(bytes, true) {
            Parsed::Done(mut r, used) => {
                bytes = &bytes[used..];
                if (100..200).contains(&r.status) {
                    interim.push(r.status);
                } else {
                    r.interim = std::mem::take(&mut interim);
                    out.push(r);
                }
            }
            _ => break,
        }
    }
    (out, bytes.to_vec())
}

/// A raw HTTP/1 client connection with a read buffer.
pub(crate) struct Client {
    stream: TcpStream,
    pub(crate) buf: Vec<u8>,
    eof: bool,
}

impl Client {
    pub(crate) async fn connect(addr: SocketAddr) -> Client {
        let stream = timeout_at(in_(secs(5)), TcpStream::connect(addr))
            .await
            .expect("connect to the proxy timed out")
            .expect("connect to the proxy");
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    pub(crate) async fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(data).await
    }

    pub(crate) async fn fill(&mut self, deadline: Instant) -> Result<usize, End> {
        let mut tmp = [0u8; 64 * 1024];
        match timeout_at(deadline, self.stream.read(&mut tmp)).await {
            Err(_) => Err(End::Timeout),
            Ok(Err(e)) => Err(End::Broken(e.to_string())),
            Ok(Ok(0)) => {
                self.eof = true;
                Err(End::Eof)
            }
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(n)
            }
        }
    }

    /// Reads one final response (1xx are collected into `interim`) within `within`. On
    /// failure, returns how the read ended and the bytes received.
    pub(crate) async fn response(&mut self, within: Duration) -> Result<Resp, (End, Vec<u8>)> {
        let deadline = in_(within);
        let mut interim = Vec::new();
        loop {
            match parse_response(&self.buf, self.eof) {
                Parsed::Done(mut r, used) => {
                    self.buf.drain(..used);
                    if (100..200).contains(&r.status) {
                        interim.push(r.status);
                        continue;
                    }
                    r.interim = interim;
                    return Ok(r);
                }
                Parsed::Bad(why) => {
                    return Err((End::Broken(format!("malformed: {why}")), self.buf.clone()))
                }
                Parsed::More if self.eof => return Err((End::Eof, self.buf.clone())),
                Parsed::More => {
                    if let Err(end) = self.fill(deadline).await {
                        if matches!(end, End::Eof) {
                            continue; // a close-delimited body may be complete now
                        }
                        return Err((end, self.buf.clone()));
                    }
                }
            }
        }
    }

    /// Reads until the proxy closes the connection (EOF or reset) and returns what came;
    /// `Err(bytes)` if it is still open at the deadline.
    pub(crate) async fn until_closed(&mut self, within: Duration) -> Result<Vec<u8>, Vec<u8>> {
        let deadline = in_(within);
        loop {
            if self.eof {
                return Ok(std::mem::take(&mut self.buf));
            }
            match self.fill(deadline).await {
                Ok(_) => {}
                Err(End::Eof) | Err(End::Broken(_)) => return Ok(std::mem::take(&mut self.buf)),
                Err(End::Timeout) => return Err(std::mem::take(&mut self.buf)),
            }
        }
    }
}

pub(crate) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub(crate) fn in_(d: Duration) -> Instant {
    Instant::now() + d
}

/// Polls `cond` every 10 ms until it holds; panics with `what` after `within`.
pub(crate) async fn eventually(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = in_(within);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One request with `Connection: close` on a new connection: the status and body, or why not.
pub(crate) async fn one_shot(addr: SocketAddr, request: &[u8]) -> Result<Resp, String> {
    let mut c = Client::connect(addr).await;
    c.send(request)
        .await
        .map_err(|e| format!("write failed: {e}"))?;
    c.response(secs(5))
        .await
        .map_err(|(end, bytes)| format!("no response ({end:?}), got {:?}", lossy(&bytes)))
}

/// A normal request on a fresh connection is served (200 `ok`) and reaches the backend.
pub(crate) async fn fresh_request_is_served(
    proxy: SocketAddr,
    backend: &Backend,
) -> Result<(), String> {
    let mark = backend.mark();
    let resp = one_shot(
        proxy,
        b"GET /fresh HTTP/1.1\r\nHost: fresh.test\r\nConnection: close\r\n\r\n",
    )
    .await
    .map_err(|e| format!("a normal request on a new connection failed: {e}"))?;
    if resp.status != 200 || resp.body != b"ok" {
        return Err(format!(
            "a normal request on a new connection got {} {:?}",
            resp.status,
            lossy(&resp.body)
        ));
    }
    let deadline = in_(secs(5));
    while backend.seen_path(mark, "/fresh").is_none() {
        if Instant::now() > deadline {
            return Err("the backend never saw the normal request".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
