//! Requests the admin plane must refuse well: malformed and oversized bodies, unknown paths
//! and wrong methods; and where it listens by default.

use std::time::Duration;

use outrider::admin::ENDPOINTS;

use crate::admin_plane::rig::{
    cache_report, config_of, generation, marker_origin, open_conf, raw_post, send, still_cached,
    still_serving, token_conf, url, warm, OBJECT, TOKEN,
};
use crate::support;
use crate::support::BinaryProxy;

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
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\
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
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\
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
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {DECLARED}\r\n\r\n"
        );
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
        ("GET", "/index.html"),
        ("GET", "/ui/"),
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
