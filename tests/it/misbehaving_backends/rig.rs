//! The [`Rig`] (raw backend + caching proxy), what a client saw ([`Fetched`]), and the helpers
//! the tests share.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::misbehaving_backends::raw_backend::{conf, RawBackend, Step};
pub(crate) use crate::support::cache_status::is_hit;
use crate::support::raw::{raw_exchange, raw_header};
use crate::support::{client, Proxy};

pub(crate) const CACHEABLE: &str = "Cache-Control: public, max-age=60\r\n";

// ======================================================================================
// Rig
// ======================================================================================

pub(crate) struct Rig {
    pub(crate) backend: RawBackend,
    pub(crate) proxy: Proxy,
}

/// What a client saw: the header, and the body or why it could not be read whole.
pub(crate) struct Fetched {
    pub(crate) status: u16,
    headers: http::HeaderMap,
    pub(crate) body: Result<Vec<u8>, String>,
}

impl Fetched {
    /// The honest outcomes of a broken upstream response: an error status from the proxy, or
    /// a body that ended with an error.
    pub(crate) fn aborted(&self) -> bool {
        self.status >= 500 || self.body.is_err()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    pub(crate) fn cache_status(&self) -> &str {
        self.header("cache-status").unwrap_or("")
    }
}

impl Rig {
    /// The backend (answering `/good` itself, everything else with `script`) as upstream "app"
    /// with `upstream` lines and its breaker off, behind one caching route on `/` that does not
    /// generate ETags.
    pub(crate) fn start(
        upstream: &str,
        script: impl Fn(&str) -> Vec<Step> + Send + Sync + 'static,
    ) -> Rig {
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
        // Pingora's streaming leg, whose header goes out before the body: with ETag generation
        // a cache miss's header waits for its body instead (`proxy::cache_fill`), so a body cut
        // off midway would be the proxy's 502/504, not the aborted 200 these tests look at.
        let conf = conf(&backend, "enabled = true", upstream) + "etag = { generate = false }\n";
        let proxy = Proxy::start(&conf);
        Rig { backend, proxy }
    }

    pub(crate) async fn fetch(&self, path: &str, headers: &[(&str, &str)]) -> Fetched {
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
    pub(crate) async fn raw_get(&self, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
        raw_exchange(
            self.proxy.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"),
        )
        .await
    }

    /// The backend's well-behaved path still answers through the proxy.
    pub(crate) async fn expect_good(&self) {
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

    pub(crate) async fn objects(&self) -> u64 {
        self.cache().await["objects"].as_u64().expect("objects")
    }

    pub(crate) async fn metrics(&self) -> String {
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
    pub(crate) async fn wait_lookups(&self, n: u64) {
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
pub(crate) async fn expect_502_then_good(cases: &[(&str, &[u8])]) {
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
pub(crate) async fn read_until_error(mut resp: reqwest::Response) -> (Vec<u8>, Option<String>) {
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

pub(crate) fn header_value(headers: &http::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Decodes a complete chunked body (sizes in hex, no extensions or trailers expected).
pub(crate) fn dechunk(mut body: &[u8]) -> Vec<u8> {
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
