//! Hostile clients: request smuggling and malformed framing, oversized input against the
//! `[limits]`, slowloris, and clients that vanish mid-response.
//!
//! Every test runs the real proxy on loopback in front of a real backend. The smuggling tests
//! use [`Backend`], a raw TCP backend defined here that records the exact bytes the proxy sent
//! and parses them strictly (CRLF only, one framing), so a test can count the requests the
//! upstream really saw. The invariant: a hostile request is either refused with a 4xx and not
//! forwarded, or forwarded as exactly ONE request whose framing is unambiguous (never both
//! `Content-Length` and `Transfer-Encoding`, never a second request cut out of the body).
//! After each case the same connection is probed (a request with `Connection: close`): it
//! must be served as exactly one response or the connection must already be closed, and a
//! fresh connection must be served normally.
//!
//! Sections: the raw backend · the raw client · smuggling (HTTP/1.1 framing, control bytes,
//! absolute-form targets, answers the proxy gives itself, h2c downgrade) · Expect · limits ·
//! slowloris · vanishing clients. Each smuggling test prints one `observed:` line per case
//! (`--nocapture`) saying what the proxy answered and what the backend received.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout_at, Instant};

use support::{client, metric, Proxy};

// ======================================================================================
// The raw recording backend
// ======================================================================================

/// One request as the backend parsed it off the wire.
#[derive(Clone, Debug)]
struct Seen {
    /// Which upstream connection carried it (index in accept order).
    conn: usize,
    /// The request line and header lines exactly as received, without the blank line.
    head: Vec<u8>,
    /// The body after removing the framing.
    body: Vec<u8>,
    /// The body was read to its end (false: the connection ended or broke mid-body).
    complete: bool,
}

impl Seen {
    fn request_line(&self) -> String {
        let head = String::from_utf8_lossy(&self.head);
        head.split("\r\n").next().unwrap_or("").to_string()
    }

    fn path(&self) -> String {
        self.request_line()
            .split(' ')
            .nth(1)
            .unwrap_or("")
            .to_string()
    }

    fn headers(&self) -> Vec<(String, String)> {
        head_fields(&self.head)
    }

    fn values(&self, name: &str) -> Vec<String> {
        self.headers()
            .into_iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect()
    }

    fn describe(&self) -> String {
        let mut framing = Vec::new();
        for name in ["content-length", "transfer-encoding", "host", "expect"] {
            for v in self.values(name) {
                framing.push(format!("{name}: {v}"));
            }
        }
        format!(
            "`{}` [{}] body {:?}{}",
            self.request_line(),
            framing.join("; "),
            lossy(&self.body),
            if self.complete { "" } else { " (incomplete)" }
        )
    }
}

/// Header fields of a raw head (names lowercased, values trimmed); the request line skipped.
fn head_fields(head: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(head)
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

#[derive(Default)]
struct Log {
    requests: Vec<Seen>,
    /// Framing the strict parser refused (the connection was then dropped).
    issues: Vec<String>,
    /// Bytes received on each connection that belong to no request yet (the start of a head).
    pending: HashMap<usize, usize>,
    /// Connections whose peer closed or broke.
    closed: Vec<usize>,
    /// Streaming responses that ended because a write to the proxy failed.
    aborted_streams: usize,
    connections: usize,
}

/// Where a test starts looking at the backend's log.
#[derive(Clone, Copy)]
struct Mark {
    requests: usize,
    issues: usize,
}

/// A raw HTTP/1.1 backend on 127.0.0.1:0, in its own thread and runtime. It answers every
/// request with `200 OK`, `Content-Length: 2`, `ok`; except `/stream` (a chunked body that
/// never ends, until a write fails) and `/silent` (no answer at all). It always sends
/// `100 Continue` before reading a body announced with `Expect: 100-continue`.
struct Backend {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    fn start() -> Backend {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind backend");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("backend addr");
        let log = Arc::new(Mutex::new(Log::default()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = log.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("backend runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("tokio listener");
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let id = {
                                let mut log = shared.lock().unwrap();
                                log.connections += 1;
                                log.connections - 1
                            };
                            tokio::spawn(serve_connection(stream, id, shared.clone()));
                        }
                    }
                }
            });
        });
        Backend {
            addr,
            log,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn upstream_toml(&self) -> String {
        format!("[upstreams.app]\nendpoints = [\"{}\"]\n\n", self.addr)
    }

    fn mark(&self) -> Mark {
        let log = self.log.lock().unwrap();
        Mark {
            requests: log.requests.len(),
            issues: log.issues.len(),
        }
    }

    fn since(&self, mark: Mark) -> Vec<Seen> {
        self.log.lock().unwrap().requests[mark.requests..].to_vec()
    }

    fn issues_since(&self, mark: Mark) -> Vec<String> {
        self.log.lock().unwrap().issues[mark.issues..].to_vec()
    }

    /// Bytes sitting in a backend buffer that are not (yet) a complete request head.
    fn pending(&self) -> usize {
        self.log.lock().unwrap().pending.values().sum()
    }

    fn aborted_streams(&self) -> usize {
        self.log.lock().unwrap().aborted_streams
    }

    fn is_closed(&self, conn: usize) -> bool {
        self.log.lock().unwrap().closed.contains(&conn)
    }

    fn seen_path(&self, mark: Mark, path: &str) -> Option<Seen> {
        self.since(mark).into_iter().find(|s| s.path() == path)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Appends what the socket has to `buf`; false when the peer closed or the read failed.
async fn backend_fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut tmp = [0u8; 16 * 1024];
    match stream.read(&mut tmp).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&tmp[..n]);
            true
        }
    }
}

async fn serve_connection(mut stream: TcpStream, id: usize, log: Arc<Mutex<Log>>) {
    let closed = |log: &Arc<Mutex<Log>>| {
        let mut log = log.lock().unwrap();
        log.closed.push(id);
        log.pending.remove(&id);
    };
    let issue = |log: &Arc<Mutex<Log>>, what: String| {
        log.lock()
            .unwrap()
            .issues
            .push(format!("conn {id}: {what}"));
    };
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // The head: strictly up to CRLF CRLF.
        let head_end = loop {
            if let Some(p) = find(&buf, b"\r\n\r\n") {
                break p;
            }
            log.lock().unwrap().pending.insert(id, buf.len());
            if !backend_fill(&mut stream, &mut buf).await {
                closed(&log);
                return;
            }
        };
        log.lock().unwrap().pending.insert(id, 0);
        let head = buf[..head_end].to_vec();
        buf.drain(..head_end + 4);
        let index = {
            let mut log = log.lock().unwrap();
            log.requests.push(Seen {
                conn: id,
                head: head.clone(),
                body: Vec::new(),
                complete: false,
            });
            log.requests.len() - 1
        };
        let fields = head_fields(&head);
        let values = |name: &str| -> Vec<String> {
            fields
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .collect()
        };
        let (te, cl) = (values("transfer-encoding"), values("content-length"));
        if !te.is_empty() && !cl.is_empty() {
            issue(
                &log,
                format!("both Transfer-Encoding {te:?} and Content-Length {cl:?}"),
            );
        }
        enum Framing {
            Chunked,
            Length(usize),
        }
        let framing = if !te.is_empty() {
            if te != ["chunked"] {
                issue(
                    &log,
                    format!("Transfer-Encoding is not exactly `chunked`: {te:?}"),
                );
            }
            let last = te.last().map(|v| v.rsplit(',').next().unwrap_or("").trim());
            if !last.is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
                closed(&log);
                return;
            }
            Framing::Chunked
        } else if !cl.is_empty() {
            if cl.len() > 1 || cl[0].contains(',') {
                issue(&log, format!("several Content-Length values: {cl:?}"));
            }
            let first = cl[0].split(',').next().unwrap_or("").trim();
            match first.parse::<usize>() {
                Ok(n) if first.bytes().all(|b| b.is_ascii_digit()) => Framing::Length(n),
                _ => {
                    issue(&log, format!("unparseable Content-Length {cl:?}"));
                    closed(&log);
                    return;
                }
            }
        } else {
            Framing::Length(0)
        };
        let has_body = !matches!(framing, Framing::Length(0));
        let expects = values("expect")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("100-continue"));
        if has_body && expects {
            let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
        }
        let body = match framing {
            Framing::Length(n) => {
                while buf.len() < n {
                    if !backend_fill(&mut stream, &mut buf).await {
                        closed(&log);
                        return;
                    }
                }
                buf.drain(..n).collect::<Vec<u8>>()
            }
            Framing::Chunked => loop {
                match dechunk(&buf) {
                    Chunked::Done { body, used } => {
                        buf.drain(..used);
                        break body;
                    }
                    Chunked::More => {
                        if !backend_fill(&mut stream, &mut buf).await {
                            closed(&log);
                            return;
                        }
                    }
                    Chunked::Bad(why) => {
                        issue(&log, format!("bad chunked framing: {why}"));
                        closed(&log);
                        return;
                    }
                }
            },
        };
        let path = {
            let mut log = log.lock().unwrap();
            let seen = &mut log.requests[index];
            seen.body = body;
            seen.complete = true;
            seen.path()
        };
        match path.as_str() {
            "/stream" => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                            Transfer-Encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    closed(&log);
                    return;
                }
                let mut chunk = format!("{:x}\r\n", 16 * 1024).into_bytes();
                chunk.extend(std::iter::repeat_n(b'x', 16 * 1024));
                chunk.extend_from_slice(b"\r\n");
                loop {
                    if stream.write_all(&chunk).await.is_err() {
                        let mut log = log.lock().unwrap();
                        log.aborted_streams += 1;
                        log.closed.push(id);
                        return;
                    }
                    // Paced, so that the body is "slow" and the proxy is mid-stream for long.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            "/silent" => {
                while backend_fill(&mut stream, &mut buf).await {}
                closed(&log);
                return;
            }
            _ => {
                let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                if stream.write_all(ok).await.is_err() {
                    closed(&log);
                    return;
                }
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

enum Chunked {
    Done { body: Vec<u8>, used: usize },
    More,
    Bad(String),
}

/// A strict chunked decoder (RFC 9112 §7.1): `1*HEXDIG [; ext] CRLF data CRLF`, a last chunk,
/// trailer lines and CRLF; any bare CR or LF, empty or oversized size is an error.
fn dechunk(buf: &[u8]) -> Chunked {
    let line_at = |pos: usize| -> Result<Option<&[u8]>, String> {
        let rest = &buf[pos..];
        match find(rest, b"\r\n") {
            Some(eol) => {
                let line = &rest[..eol];
                if line.contains(&b'\r') || line.contains(&b'\n') {
                    Err(format!("bare CR or LF in {:?}", lossy(line)))
                } else {
                    Ok(Some(line))
                }
            }
            None if rest.contains(&b'\n') => Err(format!("bare LF in {:?}", lossy(rest))),
            None => Ok(None),
        }
    };
    let mut pos = 0;
    let mut body = Vec::new();
    loop {
        let line = match line_at(pos) {
            Err(why) => return Chunked::Bad(why),
            Ok(None) => return Chunked::More,
            Ok(Some(line)) => line,
        };
        let size_text = line.split(|b| *b == b';').next().unwrap_or(b"");
        if size_text.is_empty()
            || size_text.len() > 15
            || !size_text.iter().all(|b| b.is_ascii_hexdigit())
        {
            return Chunked::Bad(format!("chunk size line {:?}", lossy(line)));
        }
        let size = usize::from_str_radix(std::str::from_utf8(size_text).unwrap(), 16).unwrap();
        pos += line.len() + 2;
        if size == 0 {
            loop {
                let line = match line_at(pos) {
                    Err(why) => return Chunked::Bad(why),
                    Ok(None) => return Chunked::More,
                    Ok(Some(line)) => line,
                };
                pos += line.len() + 2;
                if line.is_empty() {
                    return Chunked::Done { body, used: pos };
                }
                if !line.contains(&b':') {
                    return Chunked::Bad(format!("trailer line {:?}", lossy(line)));
                }
            }
        }
        if buf.len() < pos + size + 2 {
            return Chunked::More;
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Chunked::Bad("chunk data not followed by CRLF".into());
        }
        pos += size + 2;
    }
}

/// What is wrong with a request head as forwarded upstream, if anything: every line must end
/// in CRLF, with no NUL, bare CR or LF, no folded line, and `name: value` header lines.
fn head_problem(head: &[u8]) -> Option<String> {
    if head.contains(&0) {
        return Some("NUL byte".into());
    }
    for (i, b) in head.iter().enumerate() {
        if *b == b'\r' && head.get(i + 1) != Some(&b'\n') {
            return Some("bare CR".into());
        }
        if *b == b'\n' && (i == 0 || head[i - 1] != b'\r') {
            return Some("bare LF".into());
        }
    }
    let text = String::from_utf8_lossy(head);
    for line in text.split("\r\n").skip(1) {
        if line.starts_with(' ') || line.starts_with('\t') {
            return Some(format!("folded line {line:?}"));
        }
        match line.split_once(':') {
            Some((name, _))
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) => {}
            _ => return Some(format!("malformed header line {line:?}")),
        }
    }
    None
}

/// What is wrong with the framing of a request forwarded upstream, if anything.
fn framing_problem(seen: &Seen) -> Option<String> {
    let te = seen.values("transfer-encoding");
    let cl = seen.values("content-length");
    if !te.is_empty() && !cl.is_empty() {
        return Some(format!(
            "both Transfer-Encoding {te:?} and Content-Length {cl:?} upstream"
        ));
    }
    if !te.is_empty() && te != ["chunked"] {
        return Some(format!(
            "Transfer-Encoding upstream is {te:?}, not `chunked`"
        ));
    }
    if cl.len() > 1 || cl.iter().any(|v| v.contains(',')) {
        return Some(format!(
            "Content-Length upstream is {cl:?}, not one value (RFC 9110 §8.6: identical \
             duplicates must be refused or replaced by a single value before forwarding)"
        ));
    }
    if seen.values("host").len() > 1 {
        return Some(format!(
            "several Host fields upstream: {:?}",
            seen.values("host")
        ));
    }
    head_problem(&seen.head)
}

// ======================================================================================
// The raw client
// ======================================================================================

#[derive(Debug)]
enum End {
    /// The proxy closed the connection (EOF).
    Eof,
    /// The read failed (e.g. connection reset); the reason is shown through `Debug`.
    Broken(#[allow(dead_code)] String),
    /// Nothing (more) arrived before the deadline.
    Timeout,
}

#[derive(Clone, Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Interim (1xx) statuses received before this response.
    interim: Vec<u16>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

enum Parsed {
    Done(Resp, usize),
    More,
    Bad(String),
}

/// Parses one response from the front of `buf`; `eof` says no more bytes will come (which
/// ends a close-delimited body).
fn parse_response(buf: &[u8], eof: bool) -> Parsed {
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
fn parse_all(mut bytes: &[u8]) -> (Vec<Resp>, Vec<u8>) {
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
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
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

    async fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(data).await
    }

    async fn fill(&mut self, deadline: Instant) -> Result<usize, End> {
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
    async fn response(&mut self, within: Duration) -> Result<Resp, (End, Vec<u8>)> {
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
    async fn until_closed(&mut self, within: Duration) -> Result<Vec<u8>, Vec<u8>> {
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

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn in_(d: Duration) -> Instant {
    Instant::now() + d
}

/// Polls `cond` every 10 ms until it holds; panics with `what` after `within`.
async fn eventually(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
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
async fn one_shot(addr: SocketAddr, request: &[u8]) -> Result<Resp, String> {
    let mut c = Client::connect(addr).await;
    c.send(request)
        .await
        .map_err(|e| format!("write failed: {e}"))?;
    c.response(secs(5))
        .await
        .map_err(|(end, bytes)| format!("no response ({end:?}), got {:?}", lossy(&bytes)))
}

/// A normal request on a fresh connection is served (200 `ok`) and reaches the backend.
async fn fresh_request_is_served(proxy: SocketAddr, backend: &Backend) -> Result<(), String> {
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

// ======================================================================================
// Request smuggling and malformed framing
// ======================================================================================

/// What a case must end in.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    /// A 4xx (or a close) and nothing complete upstream: the RFC leaves no other choice.
    Reject,
    /// Forwarded (200 from the backend): the request is valid.
    Forward,
    /// Either, as long as the invariant holds.
    Either,
    /// Answered by the proxy itself (a cache hit, no route): nothing complete upstream.
    Local,
}

struct Case {
    name: String,
    request: Vec<u8>,
    want: Want,
    /// The bodies the backend may receive if it is forwarded (one per reading of the framing).
    bodies: Vec<Vec<u8>>,
}

fn case(name: &str, want: Want, request: impl AsRef<[u8]>, bodies: &[&[u8]]) -> Case {
    Case {
        name: name.to_string(),
        request: request.as_ref().to_vec(),
        want,
        bodies: bodies.iter().map(|b| b.to_vec()).collect(),
    }
}

/// A request the smuggling cases hide in bodies; the backend must never see its path.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: smuggle.test\r\n\r\n";
/// Sent on the same connection after the case's response.
const PROBE: &[u8] = b"GET /probe HTTP/1.1\r\nHost: smuggle.test\r\nConnection: close\r\n\r\n";

/// `POST /target` with `fields` (each line ending in CRLF) and `body`.
fn post(fields: &str, body: &str) -> String {
    format!("POST /target HTTP/1.1\r\nHost: smuggle.test\r\n{fields}\r\n{body}")
}

/// Runs one case and returns what was observed (for the log) and every broken invariant.
async fn run_case(proxy: SocketAddr, backend: &Backend, case: &Case) -> (String, Vec<String>) {
    let mark = backend.mark();
    let mut problems = Vec::new();
    let mut c = Client::connect(proxy).await;
    // The proxy may answer and close before reading everything: a failed write is fine.
    let _ = c.send(&case.request).await;
    let first = c.response(secs(5)).await;
    let mut after: Vec<Resp> = Vec::new();
    let status = match &first {
        Ok(r) => {
            // The probe: the connection must serve it as exactly one response, or be closed.
            let _ = c.send(PROBE).await;
            match c.until_closed(secs(5)).await {
                Ok(bytes) => {
                    let (responses, rest) = parse_all(&bytes);
                    after = responses;
                    if !rest.is_empty() {
                        problems.push(format!(
                            "after the response, unparseable bytes followed: {:?}",
                            lossy(&rest)
                        ));
                    }
                }
                Err(bytes) => problems.push(format!(
                    "the connection neither closed nor finished the `Connection: close` probe \
                     within 5 s (hang); got {:?}",
                    lossy(&bytes)
                )),
            }
            Some(r.status)
        }
        Err((End::Eof | End::Broken(_), bytes)) if bytes.is_empty() => None,
        Err((end, bytes)) => {
            problems.push(format!(
                "no complete response and no clean close ({end:?}); got {:?}",
                lossy(bytes)
            ));
            None
        }
    };
    if let Err(e) = fresh_request_is_served(proxy, backend).await {
        problems.push(e);
    }
    let seen: Vec<Seen> = backend
        .since(mark)
        .into_iter()
        .filter(|s| s.path() != "/fresh")
        .collect();
    let (probes, reqs): (Vec<Seen>, Vec<Seen>) =
        seen.iter().cloned().partition(|s| s.path() == "/probe");
    let complete: Vec<&Seen> = reqs.iter().filter(|s| s.complete).collect();
    for s in &seen {
        if s.request_line().contains("smuggled") {
            problems.push(format!(
                "SMUGGLED: the backend received a request cut out of the body: {}",
                s.describe()
            ));
        }
    }
    if reqs.len() > 1 {
        let all: Vec<String> = reqs.iter().map(Seen::describe).collect();
        problems.push(format!(
            "the backend saw {} requests for one client request: {}",
            reqs.len(),
            all.join(" | ")
        ));
    }
    match status {
        Some(s) if (200..300).contains(&s) => {
            if case.want == Want::Reject {
                problems.push(format!(
                    "forwarded ({s}) although the framing is invalid and must be refused"
                ));
            }
            match complete.as_slice() {
                [] if case.want == Want::Local => {}
                [one] if case.want == Want::Local => problems.push(format!(
                    "answered by the proxy, yet the backend got {}",
                    one.describe()
                )),
                [one] => {
                    if let Some(p) = framing_problem(one) {
                        problems.push(format!("forwarded ambiguously: {p}: {}", one.describe()));
                    }
                    if case.want != Want::Reject && !case.bodies.contains(&one.body) {
                        problems.push(format!(
                            "forwarded body {:?} is none of the readings {:?}",
                            lossy(&one.body),
                            case.bodies.iter().map(|b| lossy(b)).collect::<Vec<_>>()
                        ));
                    }
                }
                _ => problems.push(format!(
                    "answered {s} but the backend saw {} complete requests",
                    complete.len()
                )),
            }
        }
        Some(s) if (400..500).contains(&s) || s == 501 => {
            if case.want == Want::Forward {
                problems.push(format!("refused ({s}) a valid request"));
            }
            if let Some(one) = complete.first() {
                problems.push(format!(
                    "answered {s} but the backend got a complete request: {}",
                    one.describe()
                ));
            }
            // A message whose framing could not be trusted leaves the connection unusable
            // (RFC 9112 §6.3): it must close. Other refusals may keep it if the body was read.
            if !after.is_empty() && (s == 400 || s == 501) {
                problems.push(format!(
                    "after refusing with {s}, the connection served {} more response(s) \
                     instead of closing",
                    after.len()
                ));
            }
        }
        Some(s) => problems.push(format!("unexpected status {s}")),
        None => {
            if case.want == Want::Forward {
                problems.push("closed without an answer on a valid request".into());
            }
            if let Some(one) = complete.first() {
                problems.push(format!(
                    "closed without an answer but the backend got a complete request: {}",
                    one.describe()
                ));
            }
        }
    }
    if after.len() > 1 {
        problems.push(format!(
            "{} responses followed the first on one connection (a smuggled response)",
            after.len()
        ));
    }
    if let Some(r) = after.first() {
        if r.status != 200 || r.body != b"ok" || probes.len() != 1 {
            problems.push(format!(
                "the probe on the same connection got {} {:?} while the backend saw {} probe(s)",
                r.status,
                lossy(&r.body),
                probes.len()
            ));
        }
    } else if !probes.is_empty() {
        problems.push("the probe reached the backend but its response never came".into());
    }
    let pending = backend.pending();
    if pending > 0 {
        problems.push(format!(
            "the backend holds {pending} bytes that are no complete request (a smuggled prefix?)"
        ));
    }
    for issue in backend.issues_since(mark) {
        problems.push(format!("the backend's strict parser: {issue}"));
    }
    let upstream = if reqs.is_empty() {
        "nothing".to_string()
    } else {
        reqs.iter()
            .map(Seen::describe)
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let observed = format!(
        "{} -> {}; upstream: {upstream}; then {}",
        case.name,
        status.map_or("closed without answer".to_string(), |s| s.to_string()),
        if after.is_empty() {
            "closed"
        } else {
            "kept alive"
        }
    );
    let problems = problems
        .into_iter()
        .map(|p| format!("[{}] {p}", case.name))
        .collect();
    (observed, problems)
}

/// Runs every case against one proxy and one backend; fails listing every broken invariant.
async fn run_cases(cases: Vec<Case>) {
    run_cases_with("", cases).await
}

/// [`run_cases`] with `extra` config after the backend's upstream table.
async fn run_cases_with(extra: &str, cases: Vec<Case>) {
    let backend = Backend::start();
    let proxy = Proxy::start(&format!("{}{extra}", backend.upstream_toml()));
    let mut problems = Vec::new();
    for case in &cases {
        let (observed, mut found) = run_case(proxy.addr, &backend, case).await;
        eprintln!("observed: {observed}");
        problems.append(&mut found);
    }
    assert!(
        problems.is_empty(),
        "{} broken invariant(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// A chunked encoding of `data` in one chunk, then the last chunk.
fn chunked(data: &str) -> String {
    format!("{:x}\r\n{data}\r\n0\r\n\r\n", data.len())
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_forwarded_once_with_one_framing() {
    let cl_te_body = format!("0\r\n\r\n{SMUGGLED}");
    // TE.CL: a chunk that holds a request; a CL-reading backend would see it as the next one.
    let inner = SMUGGLED.to_string();
    let te_cl_body = format!("{:x}\r\n{inner}\r\n0\r\n\r\n", inner.len());
    run_cases(vec![
        case(
            "CL.TE (Content-Length first, chunked body ends early)",
            Want::Either,
            post(
                &format!(
                    "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
                    cl_te_body.len()
                ),
                &cl_te_body,
            ),
            &[b"", cl_te_body.as_bytes()],
        ),
        case(
            "TE.CL (Transfer-Encoding first, Content-Length short)",
            Want::Either,
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
                &te_cl_body,
            ),
            &[inner.as_bytes()],
        ),
        case(
            "TE + Content-Length: 0",
            Want::Either,
            post(
                "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
                &chunked("hello"),
            ),
            &[b"hello", b""],
        ),
        case(
            "TE chunked then TE xchunked lines, with Content-Length",
            Want::Reject,
            post(
                &format!(
                    "Transfer-Encoding: chunked\r\nTransfer-Encoding: xchunked\r\n\
                     Content-Length: {}\r\n",
                    cl_te_body.len()
                ),
                &cl_te_body,
            ),
            &[],
        ),
        case(
            "Transfer-Encoding on HTTP/1.0 with Content-Length",
            Want::Reject,
            format!(
                "POST /target HTTP/1.0\r\nHost: smuggle.test\r\nContent-Length: {}\r\n\
                 Transfer-Encoding: chunked\r\n\r\n{cl_te_body}",
                cl_te_body.len()
            ),
            &[],
        ),
        case(
            "Transfer-Encoding on HTTP/1.0 without Content-Length",
            Want::Reject,
            format!(
                "POST /target HTTP/1.0\r\nHost: smuggle.test\r\n\
                 Transfer-Encoding: chunked\r\n\r\n{}",
                chunked("hello")
            ),
            &[],
        ),
    ])
    .await;
}

#[tokio::test]
async fn duplicate_and_invalid_content_lengths_are_refused_or_collapsed() {
    let body = format!("hello!{SMUGGLED}");
    let cl_case = |name: &str, want: Want, fields: &str, bodies: &[&[u8]]| {
        case(name, want, post(fields, &body), bodies)
    };
    let all = body.as_bytes();
    run_cases(vec![
        cl_case(
            "Content-Length: 5, 6",
            Want::Reject,
            "Content-Length: 5, 6\r\n",
            &[],
        ),
        cl_case(
            "two Content-Length lines, 5 and 6",
            Want::Reject,
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            &[],
        ),
        cl_case(
            "two Content-Length lines, 6 and 5",
            Want::Reject,
            "Content-Length: 6\r\nContent-Length: 5\r\n",
            &[],
        ),
        case(
            "Content-Length: 5, 5 (identical list)",
            Want::Either,
            post("Content-Length: 5, 5\r\n", "hello"),
            &[b"hello"],
        ),
        case(
            "two identical Content-Length lines",
            Want::Either,
            post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
            &[b"hello"],
        ),
        cl_case(
            "Content-Length: +6",
            Want::Reject,
            "Content-Length: +6\r\n",
            &[],
        ),
        cl_case(
            "Content-Length: -1",
            Want::Reject,
            "Content-Length: -1\r\n",
            &[],
        ),
        cl_case(
            "Content-Length: 0x6",
            Want::Reject,
            "Content-Length: 0x6\r\n",
            &[],
        ),
        cl_case(
            "Content-Length: 6a",
            Want::Reject,
            "Content-Length: 6a\r\n",
            &[],
        ),
        cl_case(
            "Content-Length: 6 6",
            Want::Reject,
            "Content-Length: 6 6\r\n",
            &[],
        ),
        cl_case(
            "empty Content-Length",
            Want::Reject,
            "Content-Length: \r\n",
            &[],
        ),
        cl_case(
            "Content-Length over u64",
            Want::Reject,
            "Content-Length: 18446744073709551616\r\n",
            &[],
        ),
        cl_case(
            "Content-Length with leading zeros (valid)",
            Want::Either,
            &format!("Content-Length: 000{}\r\n", body.len()),
            &[all],
        ),
    ])
    .await;
}

#[tokio::test]
async fn obfuscated_transfer_encodings_never_reach_the_backend_ambiguously() {
    // With a Content-Length covering the chunked body and a request behind it: a reader that
    // ignores the Transfer-Encoding sees one body, a reader that honours it sees two requests.
    let body = format!("{}{SMUGGLED}", chunked("hello"));
    let with_cl = |te_line: &str| {
        post(
            &format!("Content-Length: {}\r\n{te_line}\r\n", body.len()),
            &body,
        )
    };
    let without_cl = |te_line: &str| post(&format!("{te_line}\r\n"), &chunked("hello"));
    let readings: &[&[u8]] = &[b"hello", body.as_bytes()];
    let mut cases = Vec::new();
    for (name, te_line, want) in [
        ("xchunked", "Transfer-Encoding: xchunked", Want::Reject),
        ("chunkedx", "Transfer-Encoding: chunkedx", Want::Reject),
        (
            "chunked, identity",
            "Transfer-Encoding: chunked, identity",
            Want::Reject,
        ),
        (
            "identity, chunked",
            "Transfer-Encoding: identity, chunked",
            Want::Either,
        ),
        (
            "chunked, chunked",
            "Transfer-Encoding: chunked, chunked",
            Want::Either,
        ),
        (
            "quoted \"chunked\"",
            "Transfer-Encoding: \"chunked\"",
            Want::Reject,
        ),
        (
            "extra spaces around chunked",
            "Transfer-Encoding:   chunked  ",
            Want::Forward,
        ),
        (
            "tab before chunked",
            "Transfer-Encoding:\tchunked",
            Want::Forward,
        ),
        (
            "vertical tab before chunked",
            "Transfer-Encoding:\x0bchunked",
            Want::Reject,
        ),
        (
            "form feed before chunked",
            "Transfer-Encoding:\x0cchunked",
            Want::Reject,
        ),
        (
            "uppercase CHUNKED",
            "Transfer-Encoding: CHUNKED",
            Want::Forward,
        ),
        (
            "space before the colon",
            "Transfer-Encoding : chunked",
            Want::Reject,
        ),
        (
            "tab before the colon",
            "Transfer-Encoding\t: chunked",
            Want::Reject,
        ),
        (
            "header line folded onto the previous one",
            "X-Padding: a\r\n Transfer-Encoding: chunked",
            Want::Either,
        ),
        (
            "chunked folded onto the next line",
            "Transfer-Encoding:\r\n chunked",
            Want::Either,
        ),
        (
            "TE lines chunked then identity",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
            Want::Reject,
        ),
        (
            "TE lines identity then chunked",
            "Transfer-Encoding: identity\r\nTransfer-Encoding: chunked",
            Want::Either,
        ),
    ] {
        cases.push(case(
            &format!("{name}, with Content-Length"),
            if want == Want::Forward {
                Want::Either // CL + TE may also be refused outright
            } else {
                want
            },
            with_cl(te_line),
            readings,
        ));
        cases.push(case(
            &format!("{name}, alone"),
            want,
            without_cl(te_line),
            &[b"hello", b""],
        ));
    }
    run_cases(cases).await;
}

#[tokio::test]
async fn bare_lf_line_endings_are_normalised_or_refused() {
    let body = format!("hello{SMUGGLED}");
    let hidden = format!("{}{SMUGGLED}", chunked("hello"));
    run_cases(vec![
        case(
            "a GET with bare LF everywhere",
            Want::Either,
            "GET /target HTTP/1.1\nHost: smuggle.test\n\n",
            &[b""],
        ),
        case(
            "a POST with bare LF everywhere",
            Want::Either,
            format!(
                "POST /target HTTP/1.1\nHost: smuggle.test\nContent-Length: {}\n\n{body}",
                body.len()
            ),
            &[body.as_bytes()],
        ),
        case(
            "head ended by CRLF LF",
            Want::Either,
            format!(
                "POST /target HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: {}\r\n\n{body}",
                body.len()
            ),
            &[body.as_bytes()],
        ),
        case(
            "bare LF between header lines hiding a Transfer-Encoding",
            Want::Either,
            format!(
                "POST /target HTTP/1.1\r\nHost: smuggle.test\r\nX-A: b\nTransfer-Encoding: chunked\r\n\
                 Content-Length: {}\r\n\r\n{hidden}",
                hidden.len()
            ),
            &[b"hello", hidden.as_bytes()],
        ),
        case(
            "chunk size ended by bare LF",
            Want::Either,
            post("Transfer-Encoding: chunked\r\n", "5\nhello\r\n0\r\n\r\n"),
            &[b"hello"],
        ),
        case(
            "chunk data ended by bare LF",
            Want::Either,
            post("Transfer-Encoding: chunked\r\n", "5\r\nhello\n0\r\n\r\n"),
            &[b"hello"],
        ),
        case(
            "last chunk ended by bare LFs",
            Want::Either,
            post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\n\n"),
            &[b"hello"],
        ),
        case(
            "bare LF inside a chunk extension",
            Want::Either,
            post(
                "Transfer-Encoding: chunked\r\n",
                "5;a\nb\r\nhello\r\n0\r\n\r\n",
            ),
            &[b"hello"],
        ),
    ])
    .await;
}

#[tokio::test]
async fn invalid_chunk_sizes_are_refused_and_never_completed_upstream() {
    let with_size = |size: &str| {
        post(
            "Transfer-Encoding: chunked\r\n",
            &format!("{size}\r\nhello\r\n0\r\n\r\n"),
        )
    };
    let mut cases = Vec::new();
    for (name, size) in [
        ("non-hex size zz", "zz"),
        ("negative size", "-5"),
        ("size with 0x prefix", "0x5"),
        ("huge size overflowing u64", "ffffffffffffffffff"),
        ("17 hex digits", "00000000000000005"),
        ("size then junk", "5 junk"),
        ("size with a plus sign", "+5"),
    ] {
        cases.push(case(name, Want::Reject, with_size(size), &[]));
    }
    // httparse (under Pingora's body reader) reads an empty chunk-size line as the last
    // chunk: the request goes up with an empty body, re-chunked by the proxy, and the
    // bytes after it are the client's own next request on its own connection. Not
    // refused, but nothing is smuggled either way, which is what this case holds.
    cases.push(case(
        "empty size (chunk-size is 1*HEXDIG)",
        Want::Either,
        with_size(""),
        &[b""],
    ));
    cases.push(case(
        "chunk longer than its size",
        Want::Reject,
        post("Transfer-Encoding: chunked\r\n", "3\r\nhello\r\n0\r\n\r\n"),
        &[],
    ));
    cases.push(case(
        "chunk extension (valid)",
        Want::Forward,
        with_size("5;name=\"value\""),
        &[b"hello"],
    ));
    cases.push(case(
        "chunk extension with control bytes",
        Want::Either,
        with_size("5;\x01\x7f"),
        &[b"hello"],
    ));
    cases.push(case(
        "leading zeros in size (valid)",
        Want::Forward,
        with_size("0005"),
        &[b"hello"],
    ));
    cases.push(case(
        "uppercase hex size (valid)",
        Want::Forward,
        post(
            "Transfer-Encoding: chunked\r\n",
            "A\r\nhellohello\r\n0\r\n\r\n",
        ),
        &[b"hellohello"],
    ));
    run_cases(cases).await;
}

#[tokio::test]
async fn control_characters_and_folding_in_the_head_are_refused_or_cleaned() {
    let get = |fields: &str| format!("GET /target HTTP/1.1\r\nHost: smuggle.test\r\n{fields}\r\n");
    run_cases(vec![
        case(
            "NUL in a header value",
            Want::Either,
            get("X-A: a\0b\r\n"),
            &[b""],
        ),
        case(
            "bare CR in a header value",
            Want::Either,
            get("X-A: a\rb\r\n"),
            &[b""],
        ),
        case(
            "bare CR hiding a Transfer-Encoding",
            Want::Either,
            post(
                &format!(
                    "X-A: a\rTransfer-Encoding: chunked\r\nContent-Length: {}\r\n",
                    chunked("hello").len()
                ),
                &chunked("hello"),
            ),
            &[chunked("hello").as_bytes()],
        ),
        case(
            "DEL in a header value",
            Want::Either,
            get("X-A: a\x7fb\r\n"),
            &[b""],
        ),
        case(
            "obs-fold continuation line",
            Want::Either,
            get("X-A: first\r\n  second\r\n"),
            &[b""],
        ),
        case(
            "obs-fold as the first header line",
            Want::Either,
            "GET /target HTTP/1.1\r\n X-A: b\r\nHost: smuggle.test\r\n\r\n",
            &[b""],
        ),
        case(
            "NUL in a header name",
            Want::Reject,
            get("X\0A: b\r\n"),
            &[],
        ),
        case(
            "space inside a header name",
            Want::Reject,
            get("X A: b\r\n"),
            &[],
        ),
        case(
            "header line without colon",
            Want::Reject,
            get("X-A b\r\n"),
            &[],
        ),
        case(
            "NUL in the request target",
            Want::Either,
            "GET /tar\0get HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
            &[b""],
        ),
        case(
            "space in the request target",
            Want::Either,
            "GET /tar get HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
            &[b""],
        ),
        case(
            "a second request line inside the target",
            Want::Either,
            "GET /a HTTP/1.1\rGET /smuggled HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
            &[b""],
        ),
    ])
    .await;
}

#[tokio::test]
async fn absolute_form_targets_route_and_forward_one_consistent_host() {
    // Routes by host to `a` and `b`; anything else goes to the default upstream `d`.
    let (a, b, d) = (Backend::start(), Backend::start(), Backend::start());
    let proxy = Proxy::start(&format!(
        "[upstreams.a]\nendpoints = [\"{}\"]\n\n[upstreams.b]\nendpoints = [\"{}\"]\n\n\
         [upstreams.d]\nendpoints = [\"{}\"]\n\n[defaults]\nupstream = \"d\"\n\n\
         [[routes]]\nname = \"a\"\nupstream = \"a\"\nmatch = {{ host = \"a.test\" }}\n\n\
         [[routes]]\nname = \"b\"\nupstream = \"b\"\nmatch = {{ host = \"b.test\" }}\n",
        a.addr, b.addr, d.addr
    ));
    // (case, request, the Host `a` must see if it is forwarded; None = must be refused). The
    // target's authority is a.test in every case, so if forwarded it must go to `a`
    // (RFC 9112 §3.2.2: the authority of an absolute-form target replaces Host).
    let cases: Vec<(&str, &str, Option<&str>)> = vec![
        (
            "authority a, Host b",
            "GET http://a.test/abs HTTP/1.1\r\nHost: b.test\r\n\r\n",
            Some("a.test"),
        ),
        (
            "POST authority a, Host b",
            "POST http://a.test/abs HTTP/1.1\r\nHost: b.test\r\nContent-Length: 5\r\n\r\nhello",
            Some("a.test"),
        ),
        (
            "authority a, no Host",
            "GET http://a.test/abs HTTP/1.1\r\n\r\n",
            Some("a.test"),
        ),
        (
            "POST authority a, no Host",
            "POST http://a.test/abs HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            Some("a.test"),
        ),
        (
            "authority a, Host a",
            "GET http://a.test/abs HTTP/1.1\r\nHost: a.test\r\n\r\n",
            Some("a.test"),
        ),
        (
            "authority a:8080, Host a:8080",
            "GET http://a.test:8080/abs HTTP/1.1\r\nHost: a.test:8080\r\n\r\n",
            Some("a.test:8080"),
        ),
        (
            "authority A.TEST, Host a.test",
            "GET http://A.TEST/abs HTTP/1.1\r\nHost: a.test\r\n\r\n",
            Some("a.test"),
        ),
        (
            "userinfo b.test@a.test",
            "GET http://b.test@a.test/abs HTTP/1.1\r\nHost: a.test\r\n\r\n",
            None,
        ),
        (
            "Host with userinfo",
            "GET /abs HTTP/1.1\r\nHost: b.test@a.test\r\n\r\n",
            None,
        ),
        (
            "two Host fields",
            "GET /abs HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
            None,
        ),
    ];
    let backends = [(&a, "a.test"), (&b, "b.test"), (&d, "d.test")];
    let mut problems = Vec::new();
    for (name, request, expect) in cases {
        let marks: Vec<Mark> = backends.iter().map(|(x, _)| x.mark()).collect();
        let outcome = one_shot(proxy.addr, request.as_bytes()).await;
        // A normal request to each backend, so every byte of the case has reached them.
        for (backend, host) in backends {
            let m = backend.mark();
            let fresh = format!("GET /fresh HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            match one_shot(proxy.addr, fresh.as_bytes()).await {
                Ok(r) if r.status == 200 => {
                    eventually("the fresh request upstream", secs(5), || {
                        backend.seen_path(m, "/fresh").is_some()
                    })
                    .await
                }
                other => problems.push(format!(
                    "[{name}] a normal request to {host} failed: {other:?}"
                )),
            }
        }
        let seen: Vec<Vec<Seen>> = backends
            .iter()
            .zip(&marks)
            .map(|((x, _), m)| {
                x.since(*m)
                    .into_iter()
                    .filter(|s| s.path() != "/fresh")
                    .collect()
            })
            .collect();
        let status = outcome.as_ref().map(|r| r.status).ok();
        eprintln!(
            "observed: {name} -> {status:?}; a: {:?}; b: {:?}; d: {:?}",
            seen[0].iter().map(Seen::describe).collect::<Vec<_>>(),
            seen[1].iter().map(Seen::describe).collect::<Vec<_>>(),
            seen[2].iter().map(Seen::describe).collect::<Vec<_>>()
        );
        let forwarded: usize = seen.iter().map(Vec::len).sum();
        match status {
            Some(200) => {
                let Some(want) = expect else {
                    problems.push(format!("[{name}] forwarded a request that must be refused"));
                    continue;
                };
                if forwarded != 1 {
                    problems.push(format!("[{name}] 200 but {forwarded} requests upstream"));
                }
                for (i, label) in [(1, "b"), (2, "d (the default)")] {
                    if !seen[i].is_empty() {
                        problems.push(format!(
                            "[{name}] routed to `{label}` although the target's authority is \
                             a.test: the route was chosen on something other than the \
                             authority the request names (upstream saw {:?})",
                            seen[i].iter().map(Seen::describe).collect::<Vec<_>>()
                        ));
                    }
                }
                for s in seen.iter().flatten() {
                    let hosts = s.values("host");
                    if hosts.len() != 1 || !hosts[0].eq_ignore_ascii_case(want) {
                        problems.push(format!(
                            "[{name}] the upstream saw Host {hosts:?}, not {want:?}: it would act \
                             on another host than the target names"
                        ));
                    }
                    if let Some(p) = framing_problem(s) {
                        problems.push(format!("[{name}] {p}"));
                    }
                }
            }
            Some(s) if (400..500).contains(&s) => {
                if seen.iter().flatten().any(|x| x.complete) {
                    problems.push(format!("[{name}] refused ({s}) but forwarded"));
                }
                if s == 404 {
                    problems.push(format!(
                        "[{name}] 404: no route matched, although route `a` matches the \
                         target's authority (routing ignored it)"
                    ));
                }
                if expect.is_some() && s != 400 && s != 404 {
                    problems.push(format!("[{name}] unexpected refusal {s}"));
                }
            }
            _ => problems.push(format!("[{name}] no sane answer: {outcome:?}")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The proxy answers some requests itself (no route, a cache hit) without needing their body:
/// the unread body must not become the next request on the connection.
#[tokio::test]
async fn answers_given_by_the_proxy_do_not_turn_an_unread_body_into_a_request() {
    let conf = "[[routes]]\nname = \"cached\"\nupstream = \"app\"\n\
                match = { path_prefix = \"/cached\" }\n\
                cache = { enabled = true, default_ttl = \"60s\" }\n\n\
                [[routes]]\nname = \"app\"\nupstream = \"app\"\n\
                match = { path_regex = '^/(target|probe|fresh|smuggled)' }\n";
    let smuggled_chunk = chunked(SMUGGLED);
    let mut cases = vec![
        case(
            "404 (no route) for a POST with a sized body",
            Want::Either,
            format!(
                "POST /nowhere HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: {}\r\n\r\n{SMUGGLED}",
                SMUGGLED.len()
            ),
            &[],
        ),
        case(
            "404 (no route) for a POST with a chunked body",
            Want::Either,
            format!(
                "POST /nowhere HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n\r\n\
                 {smuggled_chunk}"
            ),
            &[],
        ),
        case(
            "404 (no route) for a GET with a sized body",
            Want::Either,
            format!(
                "GET /nowhere HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: {}\r\n\r\n{SMUGGLED}",
                SMUGGLED.len()
            ),
            &[],
        ),
    ];
    // The cache is filled first; a GET with a body then bypasses it (the key does not cover
    // the body) and goes upstream as one request, its body framed as a body.
    cases.push(case(
        "cache fill",
        Want::Forward,
        "GET /cached HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
        &[b""],
    ));
    cases.push(case(
        "a GET with a sized body to a cached route",
        Want::Forward,
        format!(
            "GET /cached HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: {}\r\n\r\n{SMUGGLED}",
            SMUGGLED.len()
        ),
        &[SMUGGLED.as_bytes()],
    ));
    cases.push(case(
        "a GET with a chunked body to a cached route",
        Want::Forward,
        format!(
            "GET /cached HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n\r\n\
             {smuggled_chunk}"
        ),
        &[SMUGGLED.as_bytes()],
    ));
    run_cases_with(conf, cases).await;
}

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
    for (name, fields, data, refuse, body) in cases {
        let mark = backend.mark();
        let end = h2_request(proxy.addr, &fields, data).await;
        if let Err(e) = fresh_request_is_served(proxy.addr, &backend).await {
            problems.push(format!("[{name}] {e}"));
        }
        let seen: Vec<Seen> = backend
            .since(mark)
            .into_iter()
            .filter(|s| s.path() != "/fresh")
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

// ======================================================================================
// Expect: 100-continue
// ======================================================================================

#[tokio::test]
async fn expect_100_continue_misuse_gets_one_final_response_per_request() {
    let backend = Backend::start();
    let proxy = Proxy::start(&backend.upstream_toml());
    let mut problems = Vec::new();

    // 1. Expect on a request without a body: one final response, and the connection goes on.
    let mark = backend.mark();
    let mut c = Client::connect(proxy.addr).await;
    c.send(b"GET /no-body HTTP/1.1\r\nHost: e.test\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    match c.response(secs(5)).await {
        Ok(r) if r.status == 200 && r.body == b"ok" => {}
        other => problems.push(format!("Expect without body: {other:?}")),
    }
    c.send(PROBE).await.unwrap();
    match c.until_closed(secs(5)).await {
        Ok(bytes) => {
            let (rs, rest) = parse_all(&bytes);
            if rs.len() != 1 || rs[0].status != 200 || !rs[0].interim.is_empty() || !rest.is_empty()
            {
                problems.push(format!(
                    "Expect without body: the next request on the connection got {rs:?} {:?} \
                     (a late 100 Continue or a second response?)",
                    lossy(&rest)
                ));
            }
        }
        Err(b) => problems.push(format!("Expect without body: probe hung: {:?}", lossy(&b))),
    }
    let seen = backend.since(mark);
    if seen.len() != 2 {
        problems.push(format!(
            "Expect without body: the backend saw {:?}",
            seen.iter().map(Seen::describe).collect::<Vec<_>>()
        ));
    }

    // 2. Expect, and the body sent at once without waiting for 100 Continue.
    let mark = backend.mark();
    let mut c = Client::connect(proxy.addr).await;
    c.send(
        b"POST /eager HTTP/1.1\r\nHost: e.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await
    .unwrap();
    match c.response(secs(5)).await {
        Ok(r) if r.status == 200 && r.body == b"ok" && r.interim.iter().all(|s| *s == 100) => {}
        other => problems.push(format!("Expect with an eager body: {other:?}")),
    }
    c.send(PROBE).await.unwrap();
    match c.until_closed(secs(5)).await {
        Ok(bytes) => {
            let (rs, rest) = parse_all(&bytes);
            if rs.len() > 1 || rs.iter().any(|r| r.status != 200 || !r.interim.is_empty()) {
                problems.push(format!(
                    "Expect with an eager body: after the response came {rs:?} {:?}",
                    lossy(&rest)
                ));
            }
        }
        Err(b) => problems.push(format!(
            "Expect with an eager body: probe hung: {:?}",
            lossy(&b)
        )),
    }
    match backend.seen_path(mark, "/eager") {
        Some(s) if s.complete && s.body == b"hello" && framing_problem(&s).is_none() => {}
        other => problems.push(format!(
            "Expect with an eager body: the backend saw {other:?}"
        )),
    }
    if backend.since(mark).len() > 2 {
        problems.push("Expect with an eager body: extra requests upstream".into());
    }

    // 3. Expect honoured: the client waits for 100 Continue before sending the body.
    let mark = backend.mark();
    let mut c = Client::connect(proxy.addr).await;
    c.send(b"POST /patient HTTP/1.1\r\nHost: e.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let deadline = in_(secs(5));
    let mut got_continue = false;
    while !got_continue {
        match parse_response(&c.buf, false) {
            Parsed::Done(r, used) if r.status == 100 => {
                c.buf.drain(..used);
                got_continue = true;
            }
            Parsed::Done(r, _) => {
                problems.push(format!(
                    "Expect honoured: a final {} came before the body was sent",
                    r.status
                ));
                break;
            }
            _ => {
                if let Err(end) = c.fill(deadline).await {
                    problems.push(format!(
                        "Expect honoured: no 100 Continue reached the client within 5 s \
                         ({end:?}): a client that waits for it stalls"
                    ));
                    break;
                }
            }
        }
    }
    if got_continue {
        c.send(b"hello").await.unwrap();
        match c.response(secs(5)).await {
            Ok(r) if r.status == 200 => {}
            other => problems.push(format!("Expect honoured: final response {other:?}")),
        }
        match backend.seen_path(mark, "/patient") {
            Some(s) if s.complete && s.body == b"hello" => {}
            other => problems.push(format!("Expect honoured: the backend saw {other:?}")),
        }
    }

    // 4. An unknown expectation: 417, or forwarded once (and never a 100 for it).
    for value in ["200-ok", "100-continue-please"] {
        let mark = backend.mark();
        let req = format!(
            "POST /unknown HTTP/1.1\r\nHost: e.test\r\nExpect: {value}\r\nContent-Length: 5\r\n\
             Connection: close\r\n\r\nhello"
        );
        match one_shot(proxy.addr, req.as_bytes()).await {
            Ok(r) if r.status == 417 => {
                if backend.seen_path(mark, "/unknown").is_some() {
                    problems.push(format!("Expect: {value}: 417 but forwarded"));
                }
            }
            Ok(r) if r.status == 200 => {
                if !r.interim.is_empty() {
                    problems.push(format!("Expect: {value}: interim {:?} sent", r.interim));
                }
                let seen: Vec<Seen> = backend.since(mark);
                if seen.len() != 1 || seen[0].body != b"hello" || !seen[0].complete {
                    problems.push(format!(
                        "Expect: {value}: the backend saw {:?}",
                        seen.iter().map(Seen::describe).collect::<Vec<_>>()
                    ));
                }
            }
            other => problems.push(format!("Expect: {value}: {other:?}")),
        }
    }

    // 5. HTTP/1.0 with Expect: a 1.0 client must not get a 1xx (RFC 9110 §15.2).
    let mark = backend.mark();
    match one_shot(
        proxy.addr,
        b"POST /old HTTP/1.0\r\nHost: e.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await
    {
        Ok(r) if r.status == 200 && r.interim.is_empty() => {}
        Ok(r) if (400..500).contains(&r.status) && backend.seen_path(mark, "/old").is_none() => {}
        other => problems.push(format!(
            "HTTP/1.0 with Expect: {other:?} (a 1xx must not be sent to an HTTP/1.0 client)"
        )),
    }

    if let Err(e) = fresh_request_is_served(proxy.addr, &backend).await {
        problems.push(e);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

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
