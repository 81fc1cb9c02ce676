//! The rig: a backend answering with a marker, the confs, and the request helpers every
//! module shares.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{client, server_section, Origin, Reply};

pub(crate) const TOKEN: &str = "s3cret-Token_42";
/// A cached object on the data plane.
pub(crate) const OBJECT: &str = "/cached/object";

// ---------------------------------------------------------------------------------------------
// Rig
// ---------------------------------------------------------------------------------------------

/// What the backend answers: proof that a request reached it and was not answered by an admin
/// handler.
pub(crate) fn marker(method: &str, uri: &str) -> String {
    format!("backend saw {method} {uri}")
}

/// A backend answering every request with its marker; `/cached/...` is cacheable for 10 min.
pub(crate) fn marker_origin() -> Origin {
    Origin::with_handler(|req| {
        let reply = Reply::ok(marker(&req.method, &req.uri));
        if req.uri.starts_with("/cached/") {
            reply.header("cache-control", "max-age=600")
        } else {
            reply
        }
    })
}

/// Upstream `app` and two routes: `/cached/` (cache on) and everything else (cache off).
fn routes(origin: &Origin) -> String {
    format!(
        "{}[[routes]]\nname = \"cached\"\nupstream = \"app\"\nmatch = {{ path_prefix = \"/cached/\" }}\n\
         cache = {{ enabled = true }}\n\n\
         [[routes]]\nname = \"app\"\nupstream = \"app\"\nmatch = {{ path_prefix = \"/\" }}\n",
        origin.upstream_toml("app")
    )
}

/// The whole conf, without an admin token (the default).
pub(crate) fn open_conf(data: u16, admin: u16, origin: &Origin) -> String {
    format!("{}{}", server_section(data, admin), routes(origin))
}

/// The whole conf, with `[admin] token` set.
pub(crate) fn token_conf(data: u16, admin: u16, origin: &Origin) -> String {
    let server = server_section(data, admin)
        .replace("[admin]\n", &format!("[admin]\ntoken = \"{TOKEN}\"\n"));
    format!("{server}{}", routes(origin))
}

pub(crate) struct Answer {
    pub(crate) status: u16,
    headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// One request; `headers` are added as given (an `Authorization` included).
pub(crate) async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client().request(method, url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(body) = body {
        req = req.body(body.to_vec());
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap(),
    }
}

pub(crate) fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

pub(crate) async fn get(addr: SocketAddr, path: &str) -> Answer {
    send("GET", &url(addr, path), &[], None).await
}

/// The policy generation `GET /config` reports; 1 until a reload is applied.
pub(crate) async fn generation(admin: SocketAddr) -> u64 {
    let config = config_of(admin).await;
    config["generation"]
        .as_u64()
        .unwrap_or_else(|| panic!("no generation in {config}"))
}

pub(crate) fn is_hit(answer: &Answer) -> bool {
    answer
        .header("cache-status")
        .unwrap_or("")
        .split(';')
        .any(|p| p.trim() == "hit")
}

/// Fetches `OBJECT` until a request is answered from the cache (the store is filled as the
/// first response streams out); fails after 5 s.
pub(crate) async fn warm(data: SocketAddr) {
    let start = Instant::now();
    loop {
        let answer = get(data, OBJECT).await;
        assert_eq!(answer.body, marker("GET", OBJECT));
        if is_hit(&answer) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{OBJECT} never became a cache hit"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `OBJECT` is still a hit and the origin was asked for it exactly `fetches` times.
pub(crate) async fn still_cached(data: SocketAddr, origin: &Origin, fetches: usize, after: &str) {
    let answer = get(data, OBJECT).await;
    assert!(
        is_hit(&answer),
        "{after}: the cached object is gone (Cache-Status {:?})",
        answer.header("cache-status")
    );
    assert_eq!(
        origin.requests().iter().filter(|r| r.uri == OBJECT).count(),
        fetches,
        "{after}: the origin was asked for {OBJECT} again"
    );
}

/// `GET /cache` on the admin port.
pub(crate) async fn cache_report(admin: SocketAddr) -> Value {
    let answer = get(admin, "/cache").await;
    assert_eq!(answer.status, 200, "GET /cache: {}", answer.body);
    answer.json()
}

/// `GET /config` on the admin port: generation and last reload error.
pub(crate) async fn config_of(admin: SocketAddr) -> Value {
    let answer = get(admin, "/config").await;
    assert_eq!(answer.status, 200, "GET /config: {}", answer.body);
    answer.json()
}

/// Sum of every series of `name` on `/metrics`.
pub(crate) async fn metric_total(admin: SocketAddr, name: &str) -> f64 {
    let text = get(admin, "/metrics").await.body;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| series.split('{').next() == Some(name))
        .map(|(_, value)| value.parse::<f64>().unwrap())
        .sum()
}

/// The proxy still serves both planes.
pub(crate) async fn still_serving(data: SocketAddr, admin: SocketAddr, after: &str) {
    let answer = get(data, "/alive").await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, marker("GET", "/alive").as_str()),
        "data plane after {after}"
    );
    let answer = get(admin, "/healthz").await;
    assert_eq!(answer.status, 200, "admin plane after {after}");
}

/// Writes `head` and `body_bytes` of filler on a raw connection (the server may stop reading
/// early) and returns the first response head, read within 10 s.
pub(crate) fn raw_post(addr: SocketAddr, head: &str, body_bytes: usize) -> (String, Duration) {
    let start = Instant::now();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b'x'; 16 * 1024];
    let mut sent = 0;
    while sent < body_bytes {
        let n = chunk.len().min(body_bytes - sent);
        if s.write_all(&chunk[..n]).is_err() {
            break; // the server answered and closed
        }
        sent += n;
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        start.elapsed(),
    )
}
