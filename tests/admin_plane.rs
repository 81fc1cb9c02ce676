//! The admin plane as an attacker and an operator meet it: a real Outrider (in-process, or the
//! built binary where `POST /reload` needs a file), a real backend that answers every request
//! with a marker naming what it saw, real clients (reqwest, or raw sockets where the exact
//! bytes matter).
//!
//! - The data plane has no route to the admin handlers: every admin path, on the data port,
//!   with any `Host` or an absolute-form target naming the admin listener, reaches the backend
//!   and changes nothing (a cached object survives a purge, no reload happens).
//! - With `[admin] token`, every mutating endpoint of `admin::ENDPOINTS` refuses a missing,
//!   wrong, prefixed or altered token with 401 and does nothing; the right bearer token
//!   works; reading endpoints need none.
//! - Malformed purge bodies are 400 with a message naming the problem; oversized bodies are
//!   413 as soon as the limit is passed; the proxy keeps serving after each.
//! - Unknown paths are 404, wrong methods 405 with `Allow`; the admin listener defaults to
//!   loopback.
//! - Mutations a web page makes a browser send (`Origin`, `Sec-Fetch-Site`) are refused (403):
//!   without a token, the default, they would reach 127.0.0.1 from any page.
//!
//! No sleeps: effects of an admin request happen before its response, so "nothing changed"
//! is checked right after it; the cache fill is polled for with a deadline.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use outrider::admin::ENDPOINTS;
use serde_json::Value;
use support::raw::raw_exchange;
use support::{client, server_section, BinaryProxy, Origin, Reply};

const TOKEN: &str = "s3cret-Token_42";
/// A cached object on the data plane.
const OBJECT: &str = "/cached/object";

// ---------------------------------------------------------------------------------------------
// Rig
// ---------------------------------------------------------------------------------------------

/// What the backend answers: proof that a request reached it and was not answered by an admin
/// handler.
fn marker(method: &str, uri: &str) -> String {
    format!("backend saw {method} {uri}")
}

/// A backend answering every request with its marker; `/cached/...` is cacheable for 10 min.
fn marker_origin() -> Origin {
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
fn open_conf(data: u16, admin: u16, origin: &Origin) -> String {
    format!("{}{}", server_section(data, admin), routes(origin))
}

/// The whole conf, with `[admin] token` set.
fn token_conf(data: u16, admin: u16, origin: &Origin) -> String {
    let server = server_section(data, admin)
        .replace("[admin]\n", &format!("[admin]\ntoken = \"{TOKEN}\"\n"));
    format!("{server}{}", routes(origin))
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// One request; `headers` are added as given (an `Authorization` included).
async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Answer {
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

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    send("GET", &url(addr, path), &[], None).await
}

/// The policy generation `GET /config` reports; 1 until a reload is applied.
async fn generation(admin: SocketAddr) -> u64 {
    let config = config_of(admin).await;
    config["generation"]
        .as_u64()
        .unwrap_or_else(|| panic!("no generation in {config}"))
}

fn is_hit(answer: &Answer) -> bool {
    answer
        .header("cache-status")
        .unwrap_or("")
        .split(';')
        .any(|p| p.trim() == "hit")
}

/// Fetches `OBJECT` until a request is answered from the cache (the store is filled as the
/// first response streams out); fails after 5 s.
async fn warm(data: SocketAddr) {
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
async fn still_cached(data: SocketAddr, origin: &Origin, fetches: usize, after: &str) {
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
async fn cache_report(admin: SocketAddr) -> Value {
    let answer = get(admin, "/cache").await;
    assert_eq!(answer.status, 200, "GET /cache: {}", answer.body);
    answer.json()
}

/// `GET /config` on the admin port: generation and last reload error.
async fn config_of(admin: SocketAddr) -> Value {
    let answer = get(admin, "/config").await;
    assert_eq!(answer.status, 200, "GET /config: {}", answer.body);
    answer.json()
}

/// Sum of every series of `name` on `/metrics`.
async fn metric_total(admin: SocketAddr, name: &str) -> f64 {
    let text = get(admin, "/metrics").await.body;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| series.split('{').next() == Some(name))
        .map(|(_, value)| value.parse::<f64>().unwrap())
        .sum()
}

/// The proxy still serves both planes.
async fn still_serving(data: SocketAddr, admin: SocketAddr, after: &str) {
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
fn raw_post(addr: SocketAddr, head: &str, body_bytes: usize) -> (String, Duration) {
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

// ---------------------------------------------------------------------------------------------
// No route from the data plane to the admin plane
// ---------------------------------------------------------------------------------------------

/// Every admin path, with the admin method (and GET), sent to the data port is proxied to the
/// backend: the marker comes back and the backend recorded the request. A purge body on the
/// data port purges nothing and a `POST /reload` reloads nothing; the same requests on the
/// admin port then do both, so the checks can see an effect.
#[tokio::test(flavor = "multi_thread")]
async fn data_port_proxies_every_admin_path_to_the_backend() {
    let origin = marker_origin();
    let proxy = BinaryProxy::spawn(|d, a| open_conf(d, a, &origin));
    warm(proxy.addr).await;
    let fetches = origin.requests().iter().filter(|r| r.uri == OBJECT).count();
    let purge_all = br#"{"all": true}"#;

    let mut paths: Vec<(&str, &str)> = ENDPOINTS
        .iter()
        .flat_map(|e| [(e.method.as_str(), e.path), ("GET", e.path)])
        .collect();
    paths.extend([("DELETE", "/cache/purge"), ("GET", "/metrics?name=x")]);
    for (method, path) in paths {
        let body = (method != "GET").then_some(&purge_all[..]);
        let before = origin.request_count();
        let answer = send(method, &url(proxy.addr, path), &[], body).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, marker(method, path).as_str()),
            "{method} {path} on the data port was not answered by the backend"
        );
        let seen = origin.requests();
        assert_eq!(seen.len(), before + 1, "{method} {path}: backend requests");
        let last = seen.last().unwrap();
        assert_eq!((last.method.as_str(), last.uri.as_str()), (method, path));
        assert_eq!(last.body_len, body.map_or(0, |b| b.len() as u64));
    }

    still_cached(
        proxy.addr,
        &origin,
        fetches,
        "POST /cache/purge on the data port",
    )
    .await;
    let report = cache_report(proxy.admin).await;
    assert_eq!(report["purged"], 0, "{report}");
    assert_eq!(
        generation(proxy.admin).await,
        1,
        "POST /reload on the data port reloaded"
    );
    assert_eq!(
        metric_total(proxy.admin, "outrider_config_reloads_total").await,
        0.0,
        "POST /reload on the data port attempted a reload"
    );

    // Controls: the admin port does both.
    let answer = send("POST", &url(proxy.admin, "/reload"), &[], None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(generation(proxy.admin).await, 2);
    let answer = send(
        "POST",
        &url(proxy.admin, "/cache/purge"),
        &[],
        Some(purge_all),
    )
    .await;
    assert_eq!(
        (answer.status, &answer.json()["purged"]),
        (200, &Value::from(1))
    );
    assert!(
        !is_hit(&get(proxy.addr, OBJECT).await),
        "purged object still a hit"
    );
}

/// A `Host` naming the admin listener, an absolute-form target naming it, or a CONNECT to it
/// on the data port still goes to the backend (or is refused): the admin handlers never
/// answer, and the cache survives a purge sent that way.
#[tokio::test(flavor = "multi_thread")]
async fn host_tricks_on_the_data_port_do_not_reach_the_admin_plane() {
    let origin = marker_origin();
    let proxy = BinaryProxy::spawn(|d, a| open_conf(d, a, &origin));
    warm(proxy.addr).await;
    let fetches = origin.requests().iter().filter(|r| r.uri == OBJECT).count();
    let admin = proxy.admin;
    let purge = r#"{"all": true}"#;
    let mut reached = 0;
    for host in [
        admin.to_string(),
        format!("localhost:{}", admin.port()),
        "127.0.0.1".to_string(),
    ] {
        for (method, target, body) in [
            ("GET", "/metrics".to_string(), ""),
            ("GET", format!("http://{admin}/config"), ""),
            ("POST", "/cache/purge".to_string(), purge),
            ("POST", format!("http://{admin}/cache/purge"), purge),
            ("POST", format!("http://{admin}/reload"), ""),
        ] {
            let request = format!(
                "{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let before = origin.request_count();
            let (status, _, reply) = raw_exchange(proxy.addr, &request).await;
            let reply = String::from_utf8_lossy(&reply).into_owned();
            let seen = origin.requests();
            let absolute = target.starts_with("http://");
            if seen.len() == before && absolute && (400..500).contains(&status) {
                // Pingora refuses an absolute-form target whose authority the Host does not
                // match: refused, and not by an admin handler.
                assert!(
                    !reply.contains("outrider_") && !reply.contains("purged"),
                    "{reply:?}"
                );
                continue;
            }
            assert_eq!(
                seen.len(),
                before + 1,
                "{method} {target} (Host {host}) did not reach the backend: {status} {reply:?}"
            );
            let last = seen.last().unwrap();
            let path = target.trim_start_matches(&format!("http://{admin}"));
            assert!(
                last.uri.ends_with(path),
                "{method} {target}: the backend saw {}",
                last.uri
            );
            assert_eq!(
                (status, reply),
                (200, marker(method, &last.uri)),
                "{method} {target} (Host {host})"
            );
            if !absolute {
                assert_eq!(
                    last.headers.get("host").and_then(|h| h.to_str().ok()),
                    Some(host.as_str()),
                    "the Host the backend saw"
                );
            }
            reached += 1;
        }
    }
    assert!(reached >= 9, "only {reached} tricks reached the backend");

    // CONNECT to the admin listener, then a request through the would-be tunnel.
    let request = format!(
        "CONNECT {admin} HTTP/1.1\r\nHost: {admin}\r\n\r\n\
         GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"
    );
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut reply),
    )
    .await
    .expect("the data port neither answered nor closed a CONNECT");
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        !reply.contains("outrider_") && !reply.starts_with("HTTP/1.1 200"),
        "CONNECT on the data port tunnelled to the admin plane: {reply:?}"
    );

    still_cached(proxy.addr, &origin, fetches, "purges through Host tricks").await;
    assert_eq!(cache_report(admin).await["purged"], 0);
    assert_eq!(generation(admin).await, 1, "a reload through a Host trick");
}

// ---------------------------------------------------------------------------------------------
// The bearer token
// ---------------------------------------------------------------------------------------------

/// Every mutating endpoint refuses missing and wrong credentials with 401 and
/// `WWW-Authenticate: Bearer`, whatever the body, and nothing changes: no reload (generation
/// and reload counters), no purge (the object is still a hit). Wrong credentials include a
/// prefix of the token, the token plus a byte, another case, another scheme, and the token
/// without a scheme.
#[tokio::test(flavor = "multi_thread")]
async fn mutating_endpoints_refuse_bad_credentials_and_change_nothing() {
    let origin = marker_origin();
    let proxy = BinaryProxy::spawn(|d, a| token_conf(d, a, &origin));
    warm(proxy.addr).await;
    let fetches = origin.requests().iter().filter(|r| r.uri == OBJECT).count();

    let prefix = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let longer = format!("Bearer {TOKEN}x");
    let upper = format!("Bearer {}", TOKEN.to_uppercase());
    let lower = format!("Bearer {}", TOKEN.to_lowercase());
    let bare = TOKEN.to_string();
    let basic = format!("Basic {TOKEN}");
    let glued = format!("Bearer{TOKEN}");
    let tab = format!("Bearer\t{TOKEN}");
    let doubled = format!("Bearer {TOKEN} {TOKEN}");
    let bad: Vec<Option<&str>> = vec![
        None,
        Some(""),
        Some("Bearer"),
        Some("Bearer "),
        Some("Bearer wrong"),
        Some(&prefix),
        Some(&longer),
        Some(&upper),
        Some(&lower),
        Some(&bare),
        Some(&basic),
        Some(&glued),
        Some(&tab),
        Some(&doubled),
    ];
    let mutating: Vec<_> = ENDPOINTS.iter().filter(|e| e.mutating).collect();
    assert!(
        mutating.iter().any(|e| e.path == "/reload")
            && mutating.iter().any(|e| e.path == "/cache/purge"),
        "ENDPOINTS no longer marks /reload and /cache/purge as mutating"
    );
    for endpoint in &mutating {
        for auth in &bad {
            // A valid purge body, then one that would be a 400: the token is checked first.
            for body in [&br#"{"all": true}"#[..], b"not json"] {
                let headers: Vec<(&str, &str)> =
                    auth.iter().map(|a| ("authorization", *a)).collect();
                let url = format!("http://{}{}", proxy.admin, endpoint.path);
                let answer = send(endpoint.method.as_str(), &url, &headers, Some(body)).await;
                assert_eq!(
                    answer.status, 401,
                    "{} {} with Authorization {auth:?}: {}",
                    endpoint.method, endpoint.path, answer.body
                );
                assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
            }
        }
    }
    let config = config_of(proxy.admin).await;
    assert_eq!(
        config["generation"], 1,
        "a refused reload reloaded: {config}"
    );
    assert_eq!(
        metric_total(proxy.admin, "outrider_config_reloads_total").await,
        0.0,
        "a refused reload was attempted"
    );
    still_cached(proxy.addr, &origin, fetches, "refused purges").await;
    assert_eq!(cache_report(proxy.admin).await["purged"], 0);
    still_serving(proxy.addr, proxy.admin, "refused requests").await;
}

/// The right token works, with the scheme in any case and any run of spaces before the token
/// (RFC 9110 §11.4: `auth-scheme 1*SP token68`); reading endpoints need no token, and a wrong
/// one on them is ignored.
#[tokio::test(flavor = "multi_thread")]
async fn the_bearer_token_unlocks_mutations_and_reads_need_none() {
    let origin = marker_origin();
    let proxy = BinaryProxy::spawn(|d, a| token_conf(d, a, &origin));
    let reload = format!("http://{}/reload", proxy.admin);
    let mut generation = 1;
    for auth in [
        format!("Bearer {TOKEN}"),
        format!("bearer {TOKEN}"),
        format!("BEARER {TOKEN}"),
        format!("Bearer   {TOKEN}"),
    ] {
        let answer = send("POST", &reload, &[("authorization", &auth)], None).await;
        generation += 1;
        assert_eq!(
            answer.status, 200,
            "Authorization {auth:?}: {}",
            answer.body
        );
        let json = answer.json();
        assert_eq!(
            (json["result"].as_str(), json["generation"].as_u64()),
            (Some("applied"), Some(generation)),
            "Authorization {auth:?}: {json}"
        );
    }
    assert_eq!(config_of(proxy.admin).await["generation"], generation);

    warm(proxy.addr).await;
    let purge = format!("http://{}/cache/purge", proxy.admin);
    let auth = format!("Bearer {TOKEN}");
    let answer = send(
        "POST",
        &purge,
        &[("authorization", &auth)],
        Some(format!(r#"{{"key": "{OBJECT}"}}"#).as_bytes()),
    )
    .await;
    assert_eq!(
        (answer.status, &answer.json()["purged"]),
        (200, &Value::from(1))
    );
    assert!(
        !is_hit(&get(proxy.addr, OBJECT).await),
        "the purged object is still a hit"
    );

    for endpoint in ENDPOINTS.iter().filter(|e| !e.mutating) {
        let url = format!("http://{}{}", proxy.admin, endpoint.path);
        for headers in [&[][..], &[("authorization", "Bearer wrong")][..]] {
            let answer = send(endpoint.method.as_str(), &url, headers, None).await;
            assert_eq!(
                answer.status, 200,
                "{} {} with {headers:?}: {}",
                endpoint.method, endpoint.path, answer.body
            );
        }
    }
    // The token never leaves through /config.
    let config = get(proxy.admin, "/config").await.body;
    assert!(!config.contains(TOKEN), "/config shows the token: {config}");
}

// ---------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------

/// Malformed purge bodies are 400 with a JSON `error` naming the problem, purge nothing, and
/// leave the proxy serving. A JSON array is not an object, though serde's derive would read it
/// as the fields in order.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_purge_bodies_are_400_with_the_reason() {
    let origin = marker_origin();
    let proxy = BinaryProxy::spawn(|d, a| open_conf(d, a, &origin));
    warm(proxy.addr).await;
    let fetches = origin.requests().iter().filter(|r| r.uri == OBJECT).count();
    let cases: &[(&[u8], &str)] = &[
        (b"", "EOF"),
        (b"   ", "EOF"),
        (b"{\"all\": true", "EOF"),
        (b"{all: true}", "key must be a string"),
        (b"not json", "expected"),
        (b"null", "invalid type: null"),
        (b"\"all\"", "invalid type: string"),
        (
            b"{\"key\": 42}",
            "invalid type: integer `42`, expected a string",
        ),
        (
            b"{\"all\": \"yes\"}",
            "invalid type: string \"yes\", expected a boolean",
        ),
        (
            b"{\"tag\": [\"a\"]}",
            "invalid type: sequence, expected a string",
        ),
        (b"{\"keys\": \"/a\"}", "unknown field `keys`"),
        (b"{\"key\": \"/a\", \"extra\": 1}", "unknown field `extra`"),
        (
            b"{\"key\": \"/a\", \"key\": \"/b\"}",
            "duplicate field `key`",
        ),
        (b"{\"key\": \"/a\"} {}", "trailing characters"),
        (b"\xff\xfe{}", "expected value"),
        (b"{}", "needs one of"),
        (b"{\"all\": false}", "\"all\" must be true"),
        (b"{\"key\": \"/a\", \"tag\": \"t\"}", "exactly one"),
        (b"{\"key\": \"\"}", "must not be empty"),
        (b"{\"tag\": \"a b\"}", "no whitespace"),
        (
            b"{\"key\": \"relative/path\"}",
            "invalid key \"relative/path\"",
        ),
        (
            b"{\"key\": \"*\"}",
            "an absolute URL (http://host/path) or a path",
        ),
    ];
    for (body, reason) in cases {
        let shown = String::from_utf8_lossy(body);
        let answer = send("POST", &url(proxy.admin, "/cache/purge"), &[], Some(body)).await;
        assert_eq!(answer.status, 400, "{shown:?}: {}", answer.body);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        let error = answer.json()["error"].as_str().unwrap_or("").to_string();
        assert!(
            error.contains(reason),
            "the 400 for {shown:?} does not say {reason:?}: {error:?}"
        );
        still_serving(proxy.addr, proxy.admin, &format!("purge body {shown:?}")).await;
    }
    still_cached(proxy.addr, &origin, fetches, "refused purge bodies").await;
    assert_eq!(cache_report(proxy.admin).await["purged"], 0);

    // A purge body is a JSON object; serde's derive also takes a struct as the array of its
    // fields in order (key, prefix, tag, all).
    for body in [&br#"["/cached/object", null, null, null]"#[..], b"[]"] {
        let answer = send("POST", &url(proxy.admin, "/cache/purge"), &[], Some(body)).await;
        assert!(
            answer.status == 400 && !answer.body.contains("PurgeBody"),
            "the JSON array {:?} was read as the struct PurgeBody's fields in order \
             (src/admin/cache.rs, parse_purge): {} {:?}",
            String::from_utf8_lossy(body),
            answer.status,
            answer.body
        );
    }
}

/// A body over the 64 KiB limit is refused with 413 as soon as the limit is passed, while
/// the client is still sending: not read to its declared end (10 MiB), chunked or not. On a
/// token-protected endpoint without the token the 401 comes before any of the body is read.
/// Nothing is purged or reloaded, and both planes keep serving.
#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_are_refused_early() {
    let origin = marker_origin();
    let proxy = BinaryProxy::spawn(|d, a| token_conf(d, a, &origin));
    warm(proxy.addr).await;
    let fetches = origin.requests().iter().filter(|r| r.uri == OBJECT).count();
    let admin = proxy.admin;
    const DECLARED: usize = 10 * 1024 * 1024;
    // Sent before the answer is read: past the limit, far short of the declared length.
    const SENT: usize = 256 * 1024;

    for path in ["/cache/purge", "/reload"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {DECLARED}\r\n\r\n"
        );
        let (answer, took) = tokio::task::spawn_blocking(move || raw_post(admin, &head, SENT))
            .await
            .unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "POST {path} declaring {DECLARED} bytes, {SENT} sent: {answer:?}"
        );
        assert!(took < Duration::from_secs(5), "413 after {took:?}");

        // Chunked: no declared length, the same limit.
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {TOKEN}\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        );
        let (answer, _) = tokio::task::spawn_blocking(move || {
            let mut chunked = head;
            let piece = "x".repeat(8 * 1024);
            for _ in 0..(SENT / piece.len()) {
                chunked.push_str(&format!("{:x}\r\n{piece}\r\n", piece.len()));
            }
            raw_post(admin, &chunked, 0)
        })
        .await
        .unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "chunked POST {path} over the limit: {answer:?}"
        );

        // Without the token: 401 with not one byte of the 10 MiB sent.
        let head =
            format!("POST {path} HTTP/1.1\r\nHost: admin\r\nContent-Length: {DECLARED}\r\n\r\n");
        let (answer, took) = tokio::task::spawn_blocking(move || raw_post(admin, &head, 0))
            .await
            .unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 401"),
            "POST {path}: {answer:?}"
        );
        assert!(took < Duration::from_secs(5), "401 after {took:?}");
    }
    let config = config_of(admin).await;
    assert_eq!(
        config["generation"], 1,
        "an oversized reload reloaded: {config}"
    );
    still_cached(proxy.addr, &origin, fetches, "oversized purges").await;
    assert_eq!(cache_report(admin).await["purged"], 0);
    still_serving(proxy.addr, admin, "oversized bodies").await;
}

/// `POST /reload` takes no body: whatever is sent (under the limit) is ignored, and the reload
/// is applied from the conf file.
#[tokio::test(flavor = "multi_thread")]
async fn reload_ignores_its_body() {
    let origin = marker_origin();
    let proxy = BinaryProxy::spawn(|d, a| token_conf(d, a, &origin));
    let auth = format!("Bearer {TOKEN}");
    let url = format!("http://{}/reload", proxy.admin);
    for (i, body) in [&b"{not json"[..], b"{\"path\": \"/etc/passwd\"}", b""]
        .iter()
        .enumerate()
    {
        let answer = send("POST", &url, &[("authorization", &auth)], Some(body)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let json = answer.json();
        assert_eq!(json["generation"].as_u64(), Some(2 + i as u64), "{json}");
    }
    let config = config_of(proxy.admin).await;
    assert_eq!(
        config["source"].as_str(),
        Some(proxy.config_path().to_str().unwrap()),
        "{config}"
    );
}

// ---------------------------------------------------------------------------------------------
// Paths and methods
// ---------------------------------------------------------------------------------------------

/// Unknown paths are 404 (no prefix, case, trailing-slash or encoding variant of a known path
/// matches); a known path with another method is 405 with `Allow` naming the method, before
/// any token check, and does nothing.
#[tokio::test(flavor = "multi_thread")]
async fn unknown_paths_404_and_wrong_methods_405_with_allow() {
    let origin = marker_origin();
    let proxy = BinaryProxy::spawn(|d, a| token_conf(d, a, &origin));
    warm(proxy.addr).await;
    let fetches = origin.requests().iter().filter(|r| r.uri == OBJECT).count();
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/nope"),
        ("GET", "/metrics/"),
        ("GET", "/METRICS"),
        ("GET", "//metrics"),
        ("GET", "/%6Detrics"),
        ("GET", "/cache/purge/"),
        ("POST", "/cache/purge/all"),
        ("POST", "/cache/Purge"),
        ("POST", "/reload/"),
        ("DELETE", "/cache/object"),
        ("GET", "/admin/metrics"),
    ] {
        let answer = send(method, &url(proxy.admin, path), &[], None).await;
        assert_eq!(answer.status, 404, "{method} {path}: {}", answer.body);
        assert!(
            answer.body.contains(path),
            "{method} {path}: {:?}",
            answer.body
        );
    }
    for endpoint in ENDPOINTS {
        // HEAD is listed wherever GET is: it is served there.
        let allow: Vec<&str> = ENDPOINTS
            .iter()
            .filter(|e| e.path == endpoint.path)
            .flat_map(|e| match e.method.as_str() {
                "GET" => vec!["GET", "HEAD"],
                other => vec![other],
            })
            .collect();
        for method in ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            if allow.contains(&method) {
                continue;
            }
            let answer = send(method, &url(proxy.admin, endpoint.path), &[], None).await;
            assert_eq!(
                answer.status, 405,
                "{method} {}: {}",
                endpoint.path, answer.body
            );
            assert_eq!(
                answer.header("allow"),
                Some(allow.join(", ").as_str()),
                "{method} {}",
                endpoint.path
            );
        }
    }
    // HEAD is served wherever GET is, and refused where it is not.
    let answer = send("HEAD", &url(proxy.admin, "/healthz"), &[], None).await;
    assert_eq!(answer.status, 200);
    let answer = send("HEAD", &url(proxy.admin, "/reload"), &[], None).await;
    assert_eq!(answer.status, 405);
    // A query does not change which endpoint answers.
    let answer = send("GET", &url(proxy.admin, "/reload?force=1"), &[], None).await;
    assert_eq!(answer.status, 405);

    assert_eq!(generation(proxy.admin).await, 1, "a 404 or 405 reloaded");
    still_cached(proxy.addr, &origin, fetches, "404s and 405s").await;
}

// ---------------------------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------------------------

/// Without `[admin] listen`, the admin plane listens on loopback only (127.0.0.1:9901), as
/// the compiled policy and `outrider check` say; without `[admin] token` every endpoint is
/// open, which is why the default must not be reachable from other hosts.
#[test]
fn admin_listener_defaults_to_loopback() {
    let conf = "[upstreams.app]\nendpoints = [\"127.0.0.1:1\"]\n";
    let policy = outrider::config::compile(conf, "default.toml").expect("a valid conf");
    let listen = policy.admin.listen;
    assert!(listen.ip().is_loopback(), "admin listens on {listen}");
    assert_eq!(listen.to_string(), "127.0.0.1:9901");
    assert!(policy.admin.token.is_none());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outrider.toml");
    std::fs::write(&path, conf).unwrap();
    let out = std::process::Command::new(support::binary())
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("admin 127.0.0.1:9901"), "{stdout}");
}

// ---------------------------------------------------------------------------------------------
// Browsers
// ---------------------------------------------------------------------------------------------

/// A web page can make the browser of someone on the proxy's host send a cross-origin "simple"
/// POST (no preflight: `Content-Type: text/plain` or a form) to 127.0.0.1:9901. With no token
/// (the default), such a request must not purge the cache or reload the policy: it is refused
/// with 403 when it carries `Origin` or a `Sec-Fetch-Site` other than `none` (a typed URL),
/// which no admin client (curl, Prometheus, kubelet probes) sends. Reads and API clients are
/// unaffected.
#[tokio::test(flavor = "multi_thread")]
async fn cross_site_browser_posts_change_nothing() {
    let origin = marker_origin();
    let proxy = BinaryProxy::spawn(|d, a| open_conf(d, a, &origin));
    warm(proxy.addr).await;
    let fetches = origin.requests().iter().filter(|r| r.uri == OBJECT).count();
    let browsers: [&[(&str, &str)]; 4] = [
        &[
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "no-cors"),
        ],
        &[("origin", "null")],
        &[("sec-fetch-site", "same-site")],
        &[("sec-fetch-site", "cross-site")],
    ];
    for browser in browsers {
        for content_type in [
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "application/json",
        ] {
            let mut headers = browser.to_vec();
            headers.push(("content-type", content_type));
            let purge = send(
                "POST",
                &url(proxy.admin, "/cache/purge"),
                &headers,
                Some(br#"{"all": true}"#),
            )
            .await;
            let reload = send("POST", &url(proxy.admin, "/reload"), &headers, Some(b"a=b")).await;
            let reloaded = generation(proxy.admin).await > 1;
            assert!(
                purge.status == 403 && reload.status == 403 && !reloaded,
                "a browser POST ({headers:?}) was executed (src/admin/mod.rs, \
                 AdminApp::response): purge {} {:?}, reload {} (reloaded: {reloaded})",
                purge.status,
                purge.body,
                reload.status,
            );
        }
    }
    still_cached(proxy.addr, &origin, fetches, "cross-site purges").await;
    assert_eq!(cache_report(proxy.admin).await["purged"], 0);

    // A typed URL (Sec-Fetch-Site: none) and reads are not refused.
    let answer = send(
        "GET",
        &url(proxy.admin, "/metrics"),
        &[
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "a read with Origin");
    let answer = send(
        "POST",
        &url(proxy.admin, "/reload"),
        &[("sec-fetch-site", "none")],
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "Sec-Fetch-Site: none: {}", answer.body);
    assert_eq!(generation(proxy.admin).await, 2);
}
