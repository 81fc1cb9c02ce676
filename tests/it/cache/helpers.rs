//! The scripted origin ([`Backend`]), the [`Rig`] (origin + proxy), and the helpers every
//! module shares.

use std::collections::HashMap;
use std::future::Future;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

pub(crate) use crate::support::cache_status::is_hit;
use crate::support::got::Got;
use crate::support::{client, Origin, Proxy, Recorded, Reply};

/// The cache table of a route that caches with the defaults.
pub(crate) const ON: &str = "enabled = true";
pub(crate) const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

// ======================================================================================
// Helpers
// ======================================================================================

type Script = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// The origin: scripted per path (query ignored), falling back to the query script of
/// [`Reply::from_query`]; every request is logged here too, so counts survive [`Backend::stop`].
pub(crate) struct Backend {
    origin: Option<Origin>,
    addr: SocketAddr,
    scripts: Arc<Mutex<HashMap<String, Script>>>,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl Backend {
    pub(crate) fn start() -> Backend {
        let scripts: Arc<Mutex<HashMap<String, Script>>> = Default::default();
        let log: Arc<Mutex<Vec<Recorded>>> = Default::default();
        let (s, l) = (scripts.clone(), log.clone());
        let origin = Origin::with_handler(move |req| {
            l.lock().unwrap().push(req.clone());
            let (path, query) = split_uri(&req.uri);
            let script = s.lock().unwrap().get(path).cloned();
            match script {
                Some(script) => script(req),
                None => Reply::from_query(query),
            }
        });
        Backend {
            addr: origin.addr,
            origin: Some(origin),
            scripts,
            log,
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers every request for `path` with `reply` from now on.
    pub(crate) fn reply(&self, path: &str, reply: Reply) {
        self.on(path, move |_| reply.clone());
    }

    /// Answers requests for `path` with `script(request)` from now on.
    pub(crate) fn on(
        &self,
        path: &str,
        script: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) {
        self.scripts
            .lock()
            .unwrap()
            .insert(path.to_string(), Arc::new(script));
    }

    /// Requests for `path` (any query, any method) seen so far.
    pub(crate) fn count(&self, path: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| split_uri(&r.uri).0 == path)
            .count()
    }

    pub(crate) fn count_method(&self, method: &str, path: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == method && split_uri(&r.uri).0 == path)
            .count()
    }

    pub(crate) fn last(&self, path: &str) -> Recorded {
        self.log
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|r| split_uri(&r.uri).0 == path)
            .cloned()
            .unwrap_or_else(|| panic!("the origin never saw {path}"))
    }

    /// Shuts the origin down: its port refuses connections from now on.
    pub(crate) fn stop(&mut self) {
        drop(self.origin.take());
        assert!(
            std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err(),
            "the origin still accepts"
        );
    }

    fn upstream_toml(&self) -> String {
        format!("[upstreams.app]\nendpoints = [\"{}\"]\n\n", self.addr)
    }
}

fn split_uri(uri: &str) -> (&str, Option<&str>) {
    match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, None),
    }
}

pub(crate) fn req_header<'a>(req: &'a Recorded, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// A 200 with `body` and `Cache-Control: cc`.
pub(crate) fn ok(body: &str, cc: &str) -> Reply {
    Reply::ok(body.to_string()).header("Cache-Control", cc)
}

/// A 304 as origins send it: no body, no Content-Length (which would describe the 200's body).
pub(crate) fn not_modified() -> Reply {
    Reply {
        status: 304,
        chunked: true,
        ..Default::default()
    }
}

pub(crate) fn server_error() -> Reply {
    Reply {
        status: 500,
        body: Some("boom".into()),
        ..Default::default()
    }
}

/// Compressible text of `len` bytes.
pub(crate) fn text_body(len: usize) -> String {
    let line = "the quick brown fox jumps over the lazy dog, again and again\n";
    line.repeat(len / line.len() + 1)[..len].to_string()
}

/// A `[[routes]]` table named `name` on `prefix`, going to upstream "app", with the inline
/// cache table `cache` and `extra` lines.
pub(crate) fn route(name: &str, prefix: &str, cache: &str, extra: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\nupstream = \"app\"\nmatch = {{ path_prefix = \"{prefix}\" }}\n\
         cache = {{ {cache} }}\n{extra}\n\n"
    )
}

/// The conf body: the backend as upstream "app", `[cache]` lines, then `routes`.
pub(crate) fn conf(backend: &Backend, store: &str, routes: &str) -> String {
    format!("{}[cache]\n{store}\n\n{routes}", backend.upstream_toml())
}

pub(crate) struct Rig {
    pub(crate) backend: Backend,
    pub(crate) proxy: Proxy,
}

impl Rig {
    /// One route "c" on `/` with the inline cache table `cache`.
    pub(crate) fn new(cache: &str) -> Rig {
        Rig::build("", &route("c", "/", cache, ""))
    }

    pub(crate) fn build(store: &str, routes: &str) -> Rig {
        let backend = Backend::start();
        let proxy = Proxy::start(&conf(&backend, store, routes));
        Rig { backend, proxy }
    }

    pub(crate) async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Got {
        self.send(Method::GET, path, headers, None).await
    }

    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Got {
        Got::fetch(method, self.proxy.url(path), headers, body).await
    }

    /// GET /cache.
    pub(crate) async fn cache(&self) -> Value {
        let resp = client()
            .get(self.proxy.admin_url("/cache"))
            .send()
            .await
            .expect("GET /cache");
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("GET /cache JSON")
    }

    /// POST /cache/purge with `body`: the status and the JSON answer.
    pub(crate) async fn purge(&self, body: &str) -> (u16, Value) {
        let resp = client()
            .post(self.proxy.admin_url("/cache/purge"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("POST /cache/purge");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("purge answer is not JSON ({e}): {text:?}"));
        (status, json)
    }

    pub(crate) async fn metrics(&self) -> String {
        client()
            .get(self.proxy.admin_url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .unwrap()
    }

    /// Waits until the store holds `n` objects (a fill completes after the client may have
    /// read the whole body).
    pub(crate) async fn wait_objects(&self, n: u64) {
        poll(
            &format!("{n} objects in the store"),
            Duration::from_secs(5),
            || async { self.cache().await["objects"].as_u64() == Some(n) },
        )
        .await;
    }

    /// Waits until GET /cache counts `n` lookups of `kind`: the requests have been through
    /// `logging` (where invalidation happens).
    pub(crate) async fn wait_lookups(&self, kind: &str, n: u64) {
        poll(
            &format!("{n} {kind} lookups"),
            Duration::from_secs(5),
            || async { self.cache().await["lookups"][kind].as_u64() == Some(n) },
        )
        .await;
    }
}

/// Polls `cond` every 20 ms until it holds; panics after `deadline`.
pub(crate) async fn poll<F, Fut>(what: &str, deadline: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// GETs `path` every 50 ms until `done(response)` holds; returns that response.
pub(crate) async fn poll_get(
    rig: &Rig,
    path: &str,
    deadline: Duration,
    mut done: impl FnMut(&Got) -> bool,
) -> Got {
    let start = Instant::now();
    loop {
        let got = rig.get(path, &[]).await;
        if done(&got) {
            return got;
        }
        assert!(
            start.elapsed() < deadline,
            "{path}: condition not met after {deadline:?}; last: {} {}",
            got.status,
            got.cache_status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until an entry stored from a response received at `received` with `max-age` seconds
/// of freshness is certainly stale. The proxy took its response time before `received`, and
/// the origin's `Date` only makes the entry older, so `received + max-age` is late enough.
pub(crate) async fn until_stale(received: Instant, max_age: u64) {
    let at = received + Duration::from_secs(max_age) + Duration::from_millis(50);
    tokio::time::sleep_until(at.into()).await;
}

/// Beside the `Cache-Status` accessors of `support::cache_status`.
impl Got {
    /// The body with its Content-Encoding undone.
    pub(crate) fn decoded(&self) -> Vec<u8> {
        match self.header("content-encoding") {
            None => self.body.clone(),
            Some("gzip") => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&self.body[..])
                    .read_to_end(&mut out)
                    .expect("gzip");
                out
            }
            Some("br") => {
                let mut out = Vec::new();
                brotli::Decompressor::new(&self.body[..], 4096)
                    .read_to_end(&mut out)
                    .expect("br");
                out
            }
            Some("zstd") => zstd::decode_all(&self.body[..]).expect("zstd"),
            Some(other) => panic!("unexpected Content-Encoding {other}"),
        }
    }
}

/// Asserts `tag` looks like a generated one: strong, 32 lowercase hex digits.
pub(crate) fn generated(tag: &str) {
    let inner = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not a strong tag: {tag}"));
    assert!(
        inner.len() == 32
            && inner
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "not 32 lowercase hex digits: {tag}"
    );
}

/// Percent-encodes a query value for the origin's `h=` script.
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
