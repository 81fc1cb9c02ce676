//! The helpers the modules share: named origins, routing probes, header access, the raw origin.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use reqwest::header::HOST;
use reqwest::Method;

use crate::support::{client, Origin, Proxy, Reply};

/// Responses that stream (no ETag to generate, so nothing holds the header back).
pub(crate) const NO_ETAG: &str = "[defaults.etag]\ngenerate = false\n";

// ======================================================================================
// Helpers
// ======================================================================================

/// An origin scripted by query string that also names itself in `x-origin`.
pub(crate) fn named_origin(name: &'static str) -> Origin {
    Origin::with_handler(move |req| {
        Reply::from_query(req.uri.split_once('?').map(|(_, q)| q)).header("x-origin", name)
    })
}

/// Upstreams `a` and `b` followed by `routes`.
pub(crate) fn two_upstreams(a: &Origin, b: &Origin, routes: &str) -> String {
    format!("{}{}{routes}", a.upstream_toml("a"), b.upstream_toml("b"))
}

/// Sends one request with the given Host and answers which origin served it, or the status
/// when the proxy answered itself.
pub(crate) async fn route_of(proxy: &Proxy, method: &str, host: &str, path: &str) -> String {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let resp = client()
        .request(method, proxy.url(path))
        .header(HOST, host)
        .send()
        .await
        .unwrap();
    match resp.headers().get("x-origin") {
        Some(name) => {
            assert_eq!(resp.status(), 200);
            name.to_str().unwrap().to_string()
        }
        None => resp.status().as_u16().to_string(),
    }
}

pub(crate) fn header_str(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

pub(crate) fn all_values(headers: &http::HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .collect()
}

/// How a [`RawOrigin`] answers each request.
#[derive(Clone, Copy)]
pub(crate) enum RawReply {
    /// `200 ok` with a Content-Length, and the connection stays open for the next request.
    KeepAliveOk,
    /// These bytes verbatim, then the connection is closed.
    ThenClose(&'static [u8]),
}

/// A minimal HTTP/1.1 origin on std threads, for what hyper will not do: count accepted
/// connections, answer malformed or truncated responses. Reads request heads only (GET).
pub(crate) struct RawOrigin {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RawOrigin {
    pub(crate) fn start(reply: RawReply) -> RawOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (connections, requests, stop) =
                (connections.clone(), requests.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let requests = requests.clone();
                    std::thread::spawn(move || serve_raw(stream, reply, &requests));
                }
            })
        };
        RawOrigin {
            addr,
            connections,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn upstream_toml(&self, name: &str) -> String {
        format!("[upstreams.{name}]\nendpoints = [\"{}\"]\n\n", self.addr)
    }

    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn serve_raw(stream: TcpStream, reply: RawReply, requests: &AtomicUsize) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        // Read one request head; EOF or an error ends the connection.
        let mut line = String::new();
        let mut saw_request_line = false;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" || line == "\n" => break,
                Ok(_) => saw_request_line = true,
            }
        }
        if !saw_request_line {
            continue;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        let bytes: &[u8] = match reply {
            RawReply::KeepAliveOk => {
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"
            }
            RawReply::ThenClose(bytes) => bytes,
        };
        if writer.write_all(bytes).is_err() || matches!(reply, RawReply::ThenClose(_)) {
            return;
        }
    }
}

impl Drop for RawOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so that the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
