//! Invalidation by unsafe methods (RFC 9111 §4.4) and purge through the admin API.

use reqwest::Method;
use serde_json::{json, Value};

use crate::cache::helpers::{conf, is_hit, ok, req_header, route, server_error, Backend, Rig, ON};
use crate::support::{client, server_section, Proxy, Reply};

// ======================================================================================
// 12. Invalidation (RFC 9111 §4.4)
// ======================================================================================

/// A non-error response to an unsafe method invalidates the request URL and the same-origin
/// `Location` / `Content-Location`; another origin's URL and error responses invalidate
/// nothing. Invalidation runs when the request is logged, after the client has its answer,
/// so each step waits until the POST has been logged (GET /cache counts it as a bypass).
#[tokio::test(flavor = "multi_thread")]
async fn unsafe_methods_invalidate_same_origin_urls() {
    let rig = Rig::new(ON);
    for path in ["/x", "/y", "/z", "/w", "/v"] {
        rig.backend.on(path, |req| match req.method.as_str() {
            "GET" => ok(&req.uri, "max-age=60"),
            // An error answer to the unsafe request on /w itself.
            _ if req.uri == "/w" => server_error(),
            _ => Reply::ok("done"),
        });
        rig.get(path, &[]).await;
        assert!(rig.get(path, &[]).await.hit(), "{path} not cached");
    }
    rig.backend
        .on("/create", |_| Reply::status(201).header("Location", "/y"));
    rig.backend.on("/create-elsewhere", |_| {
        Reply::status(201).header("Location", "http://elsewhere.example/z")
    });
    rig.backend.on("/update", |_| {
        Reply::ok("ok").header("Content-Location", "/v")
    });

    let mut posts = 0;
    let mut post = |method: Method, path: &'static str| {
        posts += 1;
        let n = posts;
        let rig = &rig;
        async move {
            let got = rig.send(method, path, &[], Some(b"{}".to_vec())).await;
            rig.wait_lookups("bypass", n).await;
            got.status
        }
    };

    assert_eq!(post(Method::POST, "/x").await, 200);
    assert_eq!(post(Method::POST, "/create").await, 201);
    assert_eq!(post(Method::POST, "/create-elsewhere").await, 201);
    assert_eq!(post(Method::POST, "/w").await, 500);
    assert_eq!(post(Method::PUT, "/update").await, 200);

    for (path, invalidated) in [
        ("/x", true),  // the request URL
        ("/y", true),  // same-origin Location
        ("/z", false), // Location on another host
        ("/w", false), // a 500 invalidates nothing
        ("/v", true),  // same-origin Content-Location
    ] {
        let got = rig.get(path, &[]).await;
        assert_eq!(!got.hit(), invalidated, "{path}: {}", got.cache_status());
        let gets = rig.backend.count_method("GET", path);
        assert_eq!(gets, if invalidated { 2 } else { 1 }, "{path}");
    }
}

// ======================================================================================
// 14. Purge (admin API)
// ======================================================================================

/// Purge by key takes every Vary variant of the URL and nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn purge_by_key_takes_every_variant() {
    let rig = Rig::new(ON);
    rig.backend.on("/pk", |req| {
        let lang = req_header(req, "x-lang").unwrap_or("-").to_string();
        ok(&lang, "max-age=60").header("Vary", "X-Lang")
    });
    rig.backend.reply("/keep", ok("keep", "max-age=60"));
    rig.get("/pk", &[("x-lang", "en")]).await;
    rig.get("/pk", &[("x-lang", "fr")]).await;
    rig.get("/keep", &[]).await;
    rig.wait_objects(3).await;

    let key = format!("http://{}/pk", rig.proxy.addr);
    let (status, answer) = rig
        .purge(&serde_json::json!({ "key": key }).to_string())
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, serde_json::json!({ "purged": 2 }));
    assert_eq!(rig.cache().await["objects"], 1);
    assert!(!rig.get("/pk", &[("x-lang", "en")]).await.hit());
    assert!(!rig.get("/pk", &[("x-lang", "fr")]).await.hit());
    assert!(rig.get("/keep", &[]).await.hit());
    assert_eq!(rig.backend.count("/pk"), 4);

    // A bare path purges that path (and query, normalised) on whatever host clients used.
    rig.get("/keep?b=2&a=1", &[]).await;
    rig.wait_objects(4).await;
    let (status, answer) = rig.purge(r#"{"key": "/keep?a=1&b=2"}"#).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer, serde_json::json!({ "purged": 1 }));
    assert!(!rig.get("/keep?b=2&a=1", &[]).await.hit());
    assert!(rig.get("/keep", &[]).await.hit());
}

/// Purge by prefix takes the paths under it only.
#[tokio::test(flavor = "multi_thread")]
async fn purge_by_prefix() {
    let rig = Rig::new(ON);
    for path in ["/pp/a", "/pp/b?q=1", "/ppx", "/other"] {
        rig.backend
            .reply(path.split('?').next().unwrap(), ok(path, "max-age=60"));
        rig.get(path, &[]).await;
    }
    rig.wait_objects(4).await;
    let (status, answer) = rig.purge(r#"{"prefix": "/pp/"}"#).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["purged"], 2, "{answer}");
    assert!(!rig.get("/pp/a", &[]).await.hit());
    assert!(!rig.get("/pp/b?q=1", &[]).await.hit());
    assert!(rig.get("/ppx", &[]).await.hit());
    assert!(rig.get("/other", &[]).await.hit());
}

/// Tags come from the route's tag header (`Surrogate-Key`, space-separated), which the client
/// never sees; purge by tag takes every object listing it. `{"all": true}` takes the rest.
#[tokio::test(flavor = "multi_thread")]
async fn purge_by_tag_and_all() {
    let rig = Rig::new(ON);
    rig.backend.reply(
        "/t1",
        ok("t1", "max-age=60").header("Surrogate-Key", "t1 t2"),
    );
    rig.backend
        .reply("/t2", ok("t2", "max-age=60").header("Surrogate-Key", "t2"));
    rig.backend
        .reply("/t3", ok("t3", "max-age=60").header("Surrogate-Key", "t3"));
    for path in ["/t1", "/t2", "/t3"] {
        let miss = rig.get(path, &[]).await;
        assert_eq!(
            miss.header("surrogate-key"),
            None,
            "{path}: tag header leaked (miss)"
        );
    }
    for path in ["/t1", "/t2", "/t3"] {
        let hit = rig.get(path, &[]).await;
        assert!(hit.hit());
        assert_eq!(
            hit.header("surrogate-key"),
            None,
            "{path}: tag header leaked (hit)"
        );
    }

    let (status, answer) = rig.purge(r#"{"tag": "t2"}"#).await;
    assert_eq!(
        (status, answer["purged"].as_u64()),
        (200, Some(2)),
        "{answer}"
    );
    assert!(rig.get("/t3", &[]).await.hit(), "t3 was purged with t2");
    assert!(!rig.get("/t1", &[]).await.hit(), "t1 survived purging t2");
    assert!(!rig.get("/t2", &[]).await.hit(), "t2 survived purging t2");
    rig.wait_objects(3).await;

    let (_, answer) = rig.purge(r#"{"tag": "t1"}"#).await;
    assert_eq!(answer["purged"], 1, "{answer}");
    let (_, answer) = rig.purge(r#"{"tag": "nobody"}"#).await;
    assert_eq!(answer["purged"], 0, "{answer}");

    let (status, answer) = rig.purge(r#"{"all": true}"#).await;
    assert_eq!(
        (status, answer["purged"].as_u64()),
        (200, Some(2)),
        "{answer}"
    );
    let report = rig.cache().await;
    assert_eq!(report["objects"], 0, "{report}");
    assert_eq!(report["bytes"], 0, "{report}");
    // GET /cache lists the purges, newest first, each selector as its body had it.
    let recent: Vec<(Value, u64)> = report["recent_purges"]
        .as_array()
        .unwrap_or_else(|| panic!("no recent_purges: {report}"))
        .iter()
        .map(|p| (p["selector"].clone(), p["purged"].as_u64().unwrap_or(99)))
        .collect();
    assert_eq!(
        recent,
        vec![
            (json!({"all": true}), 2),
            (json!({"tag": "nobody"}), 0),
            (json!({"tag": "t1"}), 1),
            (json!({"tag": "t2"}), 2),
        ],
        "{report}"
    );
    assert!(report["recent_purges"][0]["at"]
        .as_str()
        .is_some_and(|at| at.ends_with('Z')));
}

/// Malformed purge bodies are 400 with a message; with `[admin] token` set, a purge without
/// the bearer token is 401 and purges nothing.
#[tokio::test(flavor = "multi_thread")]
async fn purge_rejects_bad_bodies_and_needs_the_token() {
    let rig = Rig::new(ON);
    for bad in [
        "not json",
        "{}",
        r#"{"key": "/a", "tag": "t"}"#,
        r#"{"all": false}"#,
    ] {
        let (status, answer) = rig.purge(bad).await;
        assert_eq!(status, 400, "{bad}: {answer}");
        let message = answer["error"].as_str().unwrap_or("");
        assert!(!message.is_empty(), "{bad}: no message in {answer}");
    }

    let backend = Backend::start();
    backend.reply("/s", ok("secret", "max-age=60"));
    let proxy = Proxy::start_with(|d, a| {
        let server = server_section(d, a).replace("[admin]\n", "[admin]\ntoken = \"s3cret\"\n");
        format!("{server}{}", conf(&backend, "", &route("c", "/", ON, "")))
    });
    client().get(proxy.url("/s")).send().await.unwrap();
    let purge = |auth: Option<&'static str>| {
        let mut req = client()
            .post(proxy.admin_url("/cache/purge"))
            .body(r#"{"all": true}"#);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        req.send()
    };
    assert_eq!(purge(None).await.unwrap().status(), 401);
    assert_eq!(purge(Some("Bearer wrong")).await.unwrap().status(), 401);
    let kept = client().get(proxy.url("/s")).send().await.unwrap();
    assert!(is_hit(kept.headers()["cache-status"].to_str().unwrap()));
    let ok = purge(Some("Bearer s3cret")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap()["purged"], 1);
}
