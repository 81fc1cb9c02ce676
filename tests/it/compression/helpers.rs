//! The [`Rig`] (origin + proxy), a response as the client saw it ([`Got`]), the decoders, and
//! a metrics scrape.

use std::io::Read;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::Method;

use crate::support::{client, Origin, Proxy, Recorded};

/// Comfortably above the default `min_size` (1 KiB), small enough to be quick.
pub(crate) const BODY: usize = 10 * 1024;

// ======================================================================================
// Helpers
// ======================================================================================

/// One origin and one proxy in front of it. Fields drop in order: the proxy first.
pub(crate) struct Rig {
    pub(crate) proxy: Proxy,
    pub(crate) origin: Origin,
}

impl Rig {
    /// The built-in compression defaults and one catch-all route, "main".
    pub(crate) fn new() -> Rig {
        Rig::with("", &[main_route()])
    }

    /// `defaults`: lines for `[defaults.compression]`; `routes`: `[[routes]]` tables (see
    /// [`route`]), all to the one upstream "app".
    pub(crate) fn with(defaults: &str, routes: &[String]) -> Rig {
        Rig::with_origin(Origin::start(), defaults, routes)
    }

    /// [`Rig::with`] in front of a given origin.
    pub(crate) fn with_origin(origin: Origin, defaults: &str, routes: &[String]) -> Rig {
        let conf = format!(
            "{}[defaults.compression]\n{defaults}\n\n{}",
            origin.upstream_toml("app"),
            routes.concat()
        );
        let proxy = Proxy::start(&conf);
        Rig { proxy, origin }
    }

    /// GET with this `Accept-Encoding` (none at all for `None`).
    pub(crate) async fn get(&self, path: &str, accept: Option<&str>) -> Got {
        let headers: Vec<(&str, &str)> =
            accept.map(|a| ("accept-encoding", a)).into_iter().collect();
        self.send(Method::GET, path, &headers).await
    }

    pub(crate) async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Got {
        let mut req = client().request(method, self.proxy.url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        Got::read(req.send().await.expect("request through the proxy")).await
    }
}

/// A `[[routes]]` table for path prefix `prefix` with inline `compression = { ... }` keys.
pub(crate) fn route(name: &str, prefix: &str, compression: &str) -> String {
    let compression = if compression.is_empty() {
        String::new()
    } else {
        format!("compression = {{ {compression} }}\n")
    };
    format!(
        "[[routes]]\nname = \"{name}\"\nupstream = \"app\"\n\
         match = {{ path_prefix = \"{prefix}\" }}\n{compression}\n"
    )
}

pub(crate) fn main_route() -> String {
    route("main", "/", "")
}

/// A whole response as the client saw it.
pub(crate) struct Got {
    pub(crate) status: u16,
    headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Got {
    pub(crate) async fn read(resp: reqwest::Response) -> Got {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.expect("response body").to_vec();
        Got {
            status,
            headers,
            body,
        }
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Every line of header `name`, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ASCII header"))
            .collect()
    }

    pub(crate) fn coding(&self) -> Option<&str> {
        self.header("content-encoding")
    }

    /// The members of every `Vary` line, trimmed, in order.
    pub(crate) fn vary(&self) -> Vec<&str> {
        self.all("vary")
            .into_iter()
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect()
    }

    /// The body with its Content-Encoding removed.
    pub(crate) fn decoded(&self) -> Vec<u8> {
        match self.coding() {
            None => self.body.clone(),
            Some(coding) => decode(coding, &self.body),
        }
    }
}

pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().expect("ASCII header"))
}

/// `len` bytes of JSON lines with varied, pseudo-random content: compressible, but with
/// enough entropy that compression levels make a difference.
pub(crate) fn json_lines(len: usize) -> Vec<u8> {
    const WORDS: [&str; 8] = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let mut out = Vec::with_capacity(len + 128);
    let mut id = 0u64;
    while out.len() < len {
        let line = format!(
            "{{\"id\":{id},\"name\":\"{}-{}\",\"score\":{}.{:03},\"tag\":\"{}\"}}\n",
            WORDS[(next() % 8) as usize],
            next() % 10_000,
            next() % 100,
            next() % 1000,
            WORDS[(next() % 8) as usize],
        );
        out.extend_from_slice(line.as_bytes());
        id += 1;
    }
    out.truncate(len);
    out
}

/// A whole encoded body decoded; panics on a malformed or truncated stream.
pub(crate) fn decode(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            let mut reader = flate2::read::GzDecoder::new(data);
            reader.read_to_end(&mut out).expect("valid gzip");
        }
        "br" => {
            brotli::Decompressor::new(data, 4096)
                .read_to_end(&mut out)
                .expect("valid brotli");
        }
        "zstd" => out = zstd::stream::decode_all(data).expect("valid zstd"),
        other => panic!("unexpected Content-Encoding {other:?}"),
    }
    out
}

/// As much as can be decoded from the start of a stream that may not have ended yet.
pub(crate) fn decode_prefix(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut reader: Box<dyn Read + '_> = match coding {
        "gzip" => Box::new(flate2::read::GzDecoder::new(data)),
        "br" => Box::new(brotli::Decompressor::new(data, 4096)),
        "zstd" => Box::new(zstd::stream::read::Decoder::new(data).expect("zstd decoder")),
        other => panic!("unexpected Content-Encoding {other:?}"),
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// The `Accept-Encoding` lines the origin received.
pub(crate) fn upstream_accept(req: &Recorded) -> Vec<&str> {
    req.headers
        .get_all("accept-encoding")
        .iter()
        .map(|v| v.to_str().expect("ASCII header"))
        .collect()
}

/// One scrape of the admin `/metrics`.
pub(crate) struct Metrics(prometheus_parse::Scrape);

impl Metrics {
    async fn scrape(proxy: &Proxy) -> Metrics {
        let text = client()
            .get(proxy.admin_url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body");
        let lines = text.lines().map(|l| Ok(l.to_string()));
        Metrics(prometheus_parse::Scrape::parse(lines).expect("exposition format"))
    }

    /// Scrapes until `ready` holds (metrics are recorded as the response ends), for at most 5 s.
    pub(crate) async fn poll(
        proxy: &Proxy,
        what: &str,
        ready: impl Fn(&Metrics) -> bool,
    ) -> Metrics {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let m = Metrics::scrape(proxy).await;
            if ready(&m) {
                return m;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The value of the scalar series `name` with exactly `labels`.
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0
            .samples
            .iter()
            .find(|s| {
                s.metric == name
                    && s.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("{name} is not a scalar: {other:?}"),
            })
    }
}
