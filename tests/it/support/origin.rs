//! A scriptable HTTP/1.1 origin for tests, on hyper, in its own thread and runtime so it works
//! under any test flavour.
//!
//! Unless a test installs its own handler, the reply is scripted by the request's query:
//! `status=204`, `size=N` (body of N bytes in a fixed pattern), `chunked=1` (no Content-Length),
//! `chunks=N` and `chunk_delay_ms=M` (N pieces, M ms apart), `delay_ms=M` (before the header),
//! `h=name:value` (repeatable extra response header), `ct=type`. Every request is recorded,
//! with the request body's length and whether it followed [`pattern_byte`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// Byte `i` of every generated body: easy to verify in streams without keeping the body.
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

pub fn pattern(offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| pattern_byte(offset + i)).collect()
}

/// What the origin saw of one request.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub uri: String,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body_len: u64,
    /// The body followed `pattern_byte` from offset 0 (vacuously true when empty).
    pub body_is_pattern: bool,
    /// The client's address: requests on one kept-alive connection share it.
    pub peer: SocketAddr,
}

/// A scripted reply.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub size: u64,
    pub body: Option<Bytes>,
    pub chunked: bool,
    pub chunks: u64,
    pub chunk_delay: Duration,
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: impl Into<Bytes>) -> Reply {
        Reply {
            status: 200,
            body: Some(body.into()),
            ..Default::default()
        }
    }

    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            ..Default::default()
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Parses the query-string script described in the module doc.
    pub fn from_query(query: Option<&str>) -> Reply {
        let mut r = Reply {
            status: 200,
            chunks: 1,
            ..Default::default()
        };
        for (k, v) in query
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='))
        {
            let v = percent_decode(v);
            match k {
                "status" => r.status = v.parse().unwrap_or(200),
                "size" => r.size = v.parse().unwrap_or(0),
                "chunked" => r.chunked = v == "1",
                "chunks" => r.chunks = v.parse().unwrap_or(1).max(1),
                "chunk_delay_ms" => r.chunk_delay = Duration::from_millis(v.parse().unwrap_or(0)),
                "delay_ms" => r.delay = Duration::from_millis(v.parse().unwrap_or(0)),
                "ct" => r.headers.push(("content-type".into(), v)),
                "h" => {
                    if let Some((name, value)) = v.split_once(':') {
                        r.headers.push((name.into(), value.trim().into()));
                    }
                }
                _ => {}
            }
        }
        r
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// A running origin; stops when dropped.
pub struct Origin {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Origin {
    /// An origin scripted by each request's query string.
    pub fn start() -> Origin {
        Origin::with_handler(|req| Reply::from_query(req.uri.split_once('?').map(|(_, q)| q)))
    }

    pub fn with_handler(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Origin {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind origin");
        Origin::on(listener, handler)
    }

    /// An origin on `addr`, e.g. one brought back where a stopped one listened.
    pub fn with_handler_at(
        addr: SocketAddr,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Origin {
        let listener = std::net::TcpListener::bind(addr).expect("bind origin again");
        Origin::on(listener, handler)
    }

    fn on(
        listener: std::net::TcpListener,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Origin {
        let handler: Handler = Arc::new(handler);
        let requests = Arc::new(Mutex::new(Vec::new()));
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("origin addr");
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let recorded = requests.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("origin runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        accepted = listener.accept() => {
                            let Ok((stream, peer)) = accepted else { continue };
                            let handler = handler.clone();
                            let recorded = recorded.clone();
                            tokio::spawn(async move {
                                let svc = service_fn(move |req| serve(req, peer, handler.clone(), recorded.clone()));
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), svc)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        Origin {
            addr,
            requests,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn request_count(&self) -> usize {
        self.requests.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// An `[upstreams.NAME]` table pointing at this origin.
    pub fn upstream_toml(&self, name: &str) -> String {
        format!("[upstreams.{name}]\nendpoints = [\"{}\"]\n\n", self.addr)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn serve(
    req: Request<Incoming>,
    peer: SocketAddr,
    handler: Handler,
    recorded: Arc<Mutex<Vec<Recorded>>>,
) -> Result<Response<BoxBody>, Infallible> {
    let (parts, mut body) = req.into_parts();
    let mut body_len = 0u64;
    let mut body_is_pattern = true;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            if body_is_pattern {
                body_is_pattern = data
                    .iter()
                    .enumerate()
                    .all(|(i, b)| *b == pattern_byte(body_len + i as u64));
            }
            body_len += data.len() as u64;
        }
    }
    let rec = Recorded {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        version: parts.version,
        headers: parts.headers,
        body_len,
        body_is_pattern,
        peer,
    };
    let reply = handler(&rec);
    if let Ok(mut r) = recorded.lock() {
        r.push(rec);
    }
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    Ok(build(reply))
}

fn build(reply: Reply) -> Response<BoxBody> {
    let mut builder = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let body: BoxBody = match reply.body {
        Some(bytes) if !reply.chunked => {
            builder = builder.header("content-length", bytes.len());
            http_body_util::Full::new(bytes).boxed()
        }
        Some(bytes) => StreamBody::new(stream_of(vec![bytes])).boxed(),
        None => {
            let total = reply.size;
            if !reply.chunked {
                builder = builder.header("content-length", total);
            }
            let chunks = reply.chunks.max(1);
            let delay = reply.chunk_delay;
            // Large bodies are produced piece by piece, never held whole.
            let piece = (total / chunks).max(1);
            let stream = async_stream(total, piece, delay);
            StreamBody::new(stream).boxed()
        }
    };
    builder
        .body(body)
        .unwrap_or_else(|_| Response::new(http_body_util::Empty::new().boxed()))
}

fn stream_of(
    parts: Vec<Bytes>,
) -> impl futures_core::Stream<Item = Result<Frame<Bytes>, Infallible>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        for p in parts {
            if tx.send(Ok(Frame::data(p))).await.is_err() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

fn async_stream(
    total: u64,
    piece: u64,
    delay: Duration,
) -> impl futures_core::Stream<Item = Result<Frame<Bytes>, Infallible>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut sent = 0u64;
        // Sub-pieces of at most 64 KiB keep memory flat for huge bodies.
        while sent < total {
            let mut this_piece = piece.min(total - sent);
            if !delay.is_zero() && sent > 0 {
                tokio::time::sleep(delay).await;
            }
            while this_piece > 0 {
                let n = this_piece.min(64 * 1024);
                let data = Bytes::from(pattern(sent, n as usize));
                if tx.send(Ok(Frame::data(data))).await.is_err() {
                    return;
                }
                sent += n;
                this_piece -= n;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

// ---- helpers
/// The body pattern repeated over a buffer, so that large bodies are made and checked by
/// slicing and `memcmp` instead of byte by byte (debug builds are slow at the latter).
#[derive(Clone)]
pub struct Period(Bytes);

pub const PERIOD: usize = 251;

impl Period {
    pub fn new() -> Period {
        Period(Bytes::from(pattern(0, PERIOD * 1024)))
    }

    /// `total` bytes of the pattern in pieces of `piece`, made lazily.
    pub fn stream(
        &self,
        total: u64,
        piece: usize,
    ) -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        assert!(piece + PERIOD <= self.0.len());
        let buf = self.0.clone();
        let pieces = total.div_ceil(piece as u64);
        futures_util::stream::iter((0..pieces).map(move |i| {
            let offset = i * piece as u64;
            let len = (total - offset).min(piece as u64) as usize;
            let start = (offset % PERIOD as u64) as usize;
            Ok(buf.slice(start..start + len))
        }))
    }

    pub fn checker(&self) -> PatternChecker {
        PatternChecker {
            period: self.0.clone(),
            offset: 0,
        }
    }
}

pub struct PatternChecker {
    period: Bytes,
    pub offset: u64,
}

impl PatternChecker {
    /// Checks the next bytes of a stream against the pattern; false on the first mismatch.
    pub fn feed(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            let start = (self.offset % PERIOD as u64) as usize;
            let n = data.len().min(self.period.len() - start);
            if data[..n] != self.period[start..start + n] {
                return false;
            }
            self.offset += n as u64;
            data = &data[n..];
        }
        true
    }
}
