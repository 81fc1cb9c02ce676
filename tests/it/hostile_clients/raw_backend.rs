//! The raw recording backend: a strict HTTP/1.1 parser that logs the exact bytes the proxy sent.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ======================================================================================
// The raw recording backend
// ======================================================================================

/// One request as the backend parsed it off the wire.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    /// Which upstream connection carried it (index in accept order).
    pub(crate) conn: usize,
    /// The request line and header lines exactly as received, without the blank line.
    head: Vec<u8>,
    /// The body after removing the framing.
    pub(crate) body: Vec<u8>,
    /// The body was read to its end (false: the connection ended or broke mid-body).
    pub(crate) complete: bool,
}

impl Seen {
    pub(crate) fn request_line(&self) -> String {
        let head = String::from_utf8_lossy(&self.head);
        head.split("\r\n").next().unwrap_or("").to_string()
    }

    pub(crate) fn path(&self) -> String {
        self.request_line()
            .split(' ')
            .nth(1)
            .unwrap_or("")
            .to_string()
    }

    fn headers(&self) -> Vec<(String, String)> {
        head_fields(&self.head)
    }

    pub(crate) fn values(&self, name: &str) -> Vec<String> {
        self.headers()
            .into_iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect()
    }

    pub(crate) fn describe(&self) -> String {
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
pub(crate) struct Mark {
    requests: usize,
    issues: usize,
}

/// A raw HTTP/1.1 backend on 127.0.0.1:0, in its own thread and runtime. It answers every
/// request with `200 OK`, `Content-Length: 2`, `ok`; except `/stream` (a chunked body that
/// never ends, until a write fails) and `/silent` (no answer at all). It always sends
/// `100 Continue` before reading a body announced with `Expect: 100-continue`.
pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    pub(crate) fn start() -> Backend {
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

    pub(crate) fn upstream_toml(&self) -> String {
        format!("[upstreams.app]\nendpoints = [\"{}\"]\n\n", self.addr)
    }

    pub(crate) fn mark(&self) -> Mark {
        let log = self.log.lock().unwrap();
        Mark {
            requests: log.requests.len(),
            issues: log.issues.len(),
        }
    }

    pub(crate) fn since(&self, mark: Mark) -> Vec<Seen> {
        self.log.lock().unwrap().requests[mark.requests..].to_vec()
    }

    pub(crate) fn issues_since(&self, mark: Mark) -> Vec<String> {
        self.log.lock().unwrap().issues[mark.issues..].to_vec()
    }

    /// Bytes sitting in a backend buffer that are not (yet) a complete request head.
    pub(crate) fn pending(&self) -> usize {
        self.log.lock().unwrap().pending.values().sum()
    }

    pub(crate) fn aborted_streams(&self) -> usize {
        self.log.lock().unwrap().aborted_streams
    }

    pub(crate) fn is_closed(&self, conn: usize) -> bool {
        self.log.lock().unwrap().closed.contains(&conn)
    }

    pub(crate) fn seen_path(&self, mark: Mark, path: &str) -> Option<Seen> {
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

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) enum Chunked {
    Done { body: Vec<u8>, used: usize },
    More,
    Bad(String),
}

/// A strict chunked decoder (RFC 9112 §7.1): `1*HEXDIG [; ext] CRLF data CRLF`, a last chunk,
/// trailer lines and CRLF; any bare CR or LF, empty or oversized size is an error.
pub(crate) fn dechunk(buf: &[u8]) -> Chunked {
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
pub(crate) fn framing_problem(seen: &Seen) -> Option<String> {
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
