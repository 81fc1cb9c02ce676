//! The [`Rig`] (origin + proxy) and the helpers every module shares.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) use crate::support::cache_status::is_hit;
use crate::support::got::Got;
use crate::support::raw::raw_exchange;
use crate::support::{client, Origin, Proxy, Recorded, Reply};

pub(crate) const SHARED: &str = "public, max-age=60";

// ======================================================================================
// Helpers
// ======================================================================================

pub(crate) struct Rig {
    pub(crate) origin: Origin,
    pub(crate) proxy: Proxy,
}

impl Rig {
    /// One route on `/` with the inline cache table `cache`, in front of an origin answering
    /// with `handler`.
    pub(crate) fn new(
        cache: &str,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Rig {
        Rig::with_routes(&route("c", "/", cache), handler)
    }

    pub(crate) fn with_routes(
        routes: &str,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Rig {
        let origin = Origin::with_handler(handler);
        let proxy = Proxy::start(&format!("{}{routes}", origin.upstream_toml("app")));
        Rig { origin, proxy }
    }

    pub(crate) async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Got {
        self.send(reqwest::Method::GET, path, headers, None).await
    }

    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Got {
        Got::fetch(method, self.proxy.url(path), headers, body).await
    }

    /// Requests the origin saw for `path` (any query).
    pub(crate) fn count(&self, path: &str) -> usize {
        self.origin
            .requests()
            .iter()
            .filter(|r| path_of(&r.uri) == path)
            .count()
    }

    pub(crate) async fn cache(&self) -> Value {
        let resp = client()
            .get(self.proxy.admin_url("/cache"))
            .send()
            .await
            .expect("GET /cache");
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("GET /cache JSON")
    }

    /// Cache lookups the proxy has finished (counted in `logging`, after any fill).
    async fn lookups(&self) -> u64 {
        let cache = self.cache().await;
        let lookups = cache["lookups"].as_object().expect("lookups");
        lookups.values().filter_map(Value::as_u64).sum()
    }

    /// Waits until `n` requests have been through the whole pipeline.
    pub(crate) async fn wait_lookups(&self, n: u64) {
        poll(
            &format!("{n} finished cache lookups"),
            Duration::from_secs(5),
            || async { self.lookups().await >= n },
        )
        .await;
    }
}

pub(crate) fn route(name: &str, prefix: &str, cache: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\nupstream = \"app\"\nmatch = {{ path_prefix = \"{prefix}\" }}\n\
         cache = {{ {cache} }}\n\n"
    )
}

/// GET `path` with `Host: host` over a raw socket: status, headers, body.
pub(crate) async fn raw_get(
    addr: SocketAddr,
    path: &str,
    host: &str,
) -> (u16, Vec<(String, String)>, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let (status, headers, body) = raw_exchange(addr, &request).await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

pub(crate) fn path_of(uri: &str) -> &str {
    uri.split_once('?').map_or(uri, |(p, _)| p)
}

pub(crate) fn header_of<'a>(req: &'a Recorded, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn all_values<'a>(req: &'a Recorded, name: &str) -> Vec<&'a str> {
    req.headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

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
