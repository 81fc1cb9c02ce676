//! The admin plane: auth, methods, limits.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::Value;

use crate::metrics::exposition::parse_exposition;
use crate::metrics::requests::send;
use crate::support::{client, BinaryProxy, Origin};

// ---------------------------------------------------------------------------------------------
// The admin plane.
// ---------------------------------------------------------------------------------------------

fn token_conf(origin: &Origin, data: u16, admin: u16) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{data}\"\nthreads = 1\ngrace_period = \"1s\"\n\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"t0k\"\n\n[log]\nlevel = \"warn\"\n\n{}",
        origin.upstream_toml("app")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_plane_auth_methods_and_limits() {
    let origin = Origin::start();
    let proxy = BinaryProxy::spawn(|d, a| token_conf(&origin, d, a));
    let admin = |p: &str| format!("http://{}{p}", proxy.admin);
    let c = client();

    // Mutating endpoints need the bearer token.
    let resp = c.post(admin("/reload")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()[http::header::WWW_AUTHENTICATE], "Bearer");
    for auth in [
        "Bearer nope",
        "Bearer t0k2",
        "Basic dDBrOg==",
        "t0k",
        "Bearer ",
    ] {
        let resp = c
            .post(admin("/reload"))
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "Authorization: {auth}");
        assert_eq!(resp.headers()[http::header::WWW_AUTHENTICATE], "Bearer");
    }
    let resp = c
        .post(admin("/reload"))
        .bearer_auth("t0k")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["generation"], 2, "{body}");
    assert_eq!(body["result"], "applied", "{body}");

    // Reading endpoints need none.
    for path in ["/metrics", "/healthz", "/readyz", "/config", "/stats"] {
        let resp = c.get(admin(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
    }
    let resp = c.get(admin("/metrics")).send().await.unwrap();
    let ct = resp.headers()[http::header::CONTENT_TYPE].to_str().unwrap();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let m = parse_exposition(&resp.text().await.unwrap());
    assert_eq!(m.get("outrider_config_generation", &[]), 2.0);
    // The token never leaves through /config.
    let config = c
        .get(admin("/config"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!config.contains("t0k"), "{config}");
    assert!(config.contains("<redacted>"), "{config}");
    // HEAD is answered wherever GET is.
    let resp = c.head(admin("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    // Unknown paths.
    for path in ["/nope", "/metrics/", "/reload/x", "/index.html"] {
        let resp = c.get(admin(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "GET {path}");
    }
    // Known paths, wrong method: 405 with Allow, before any token check.
    for (method, path, allow) in [
        ("GET", "/reload", "POST"),
        ("POST", "/metrics", "GET, HEAD"),
        ("DELETE", "/stats", "GET, HEAD"),
        ("PUT", "/cache/purge", "POST"),
    ] {
        let resp = send(method, admin(path)).await;
        assert_eq!(resp.status(), 405, "{method} {path}");
        assert_eq!(
            resp.headers()[http::header::ALLOW],
            allow,
            "{method} {path}"
        );
    }

    // Bodies up to 64 KiB are read; one byte more is refused.
    let resp = c
        .post(admin("/reload"))
        .bearer_auth("t0k")
        .body(vec![b'x'; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = c
        .post(admin("/reload"))
        .bearer_auth("t0k")
        .body(vec![b'x'; 64 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // A much larger body is answered 413 as soon as the limit is passed, while the client is
    // still sending. hyper's client gives up on the failed write instead of reading that early
    // answer, so a raw client reads it (as curl does).
    let addr = proxy.admin;
    let head = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let len = 1024 * 1024;
        let request = format!(
            "POST /reload HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer t0k\r\nContent-Length: {len}\r\n\r\n"
        );
        s.write_all(request.as_bytes()).unwrap();
        // The server may stop reading (and close) once it has answered.
        let _ = s.write_all(&vec![b'x'; len]);
        let mut answer = [0u8; 64];
        let n = s.read(&mut answer).unwrap_or(0);
        String::from_utf8_lossy(&answer[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 413"), "{head:?}");

    // The cache and breaker endpoints answer; only purge needs the token.
    let resp = c.get(admin("/cache")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET /cache");
    let resp = c
        .post(admin("/cache/purge"))
        .bearer_auth("t0k")
        .body(r#"{"all": true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "POST /cache/purge with the token");
    let resp = c.get(admin("/breakers")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET /breakers needs no token");
    let resp = c.post(admin("/breakers")).send().await.unwrap();
    assert_eq!(resp.status(), 405, "POST /breakers");
    let resp = c.post(admin("/cache/purge")).send().await.unwrap();
    assert_eq!(resp.status(), 401, "purge is mutating");
}

/// RFC 9110 §11.1: the authentication scheme is a case-insensitive token, so
/// `Authorization: bearer t0k` carries the right credentials.
#[tokio::test(flavor = "multi_thread")]
async fn bearer_scheme_is_case_insensitive() {
    let origin = Origin::start();
    let proxy = BinaryProxy::spawn(|d, a| token_conf(&origin, d, a));
    for auth in ["bearer t0k", "BEARER t0k"] {
        let resp = client()
            .post(format!("http://{}/reload", proxy.admin))
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "Authorization: {auth}");
    }
}
