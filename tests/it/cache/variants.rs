//! Vary (RFC 9111 §4.1) and the key's query.

use crate::cache::helpers::{ok, req_header, route, text_body, Rig, ON};
use crate::support::got::Got;

// ======================================================================================
// 6. Vary (RFC 9111 §4.1)
// ======================================================================================

/// §4.1: a response with `Vary: X-Lang` is stored per X-Lang value; each variant is then a hit
/// and gets its own body.
#[tokio::test(flavor = "multi_thread")]
async fn vary_stores_one_variant_per_header_value() {
    let rig = Rig::new(ON);
    rig.backend.on("/v", |req| {
        let lang = req_header(req, "x-lang").unwrap_or("none").to_string();
        ok(&format!("lang={lang}"), "max-age=60").header("Vary", "X-Lang")
    });
    // RFC 9211 §2.2: the first is a uri-miss; the second finds the URL stored for another
    // language, a vary-miss.
    for (lang, fwd) in [("en", "uri-miss"), ("fr", "vary-miss")] {
        let got = rig.get("/v", &[("x-lang", lang)]).await;
        assert_eq!(got.text(), format!("lang={lang}"));
        assert!(!got.hit(), "{lang}: {}", got.cache_status());
        assert_eq!(
            got.param("fwd").as_deref(),
            Some(fwd),
            "{}",
            got.cache_status()
        );
    }
    assert_eq!(rig.backend.count("/v"), 2);
    for lang in ["en", "fr", "en", "fr"] {
        let got = rig.get("/v", &[("x-lang", lang)]).await;
        assert_eq!(
            got.text(),
            format!("lang={lang}"),
            "a variant answered the wrong request"
        );
        assert!(got.hit(), "{lang}: {}", got.cache_status());
    }
    assert_eq!(rig.backend.count("/v"), 2);
    assert_eq!(
        rig.cache().await["objects"],
        2,
        "variants are separate objects"
    );
}

/// On a compressing route the proxy asks the origin for identity and compresses per client, so
/// an origin's `Vary: Accept-Encoding` must not split the entry: one upstream fetch serves
/// every Accept-Encoding.
#[tokio::test(flavor = "multi_thread")]
async fn vary_accept_encoding_does_not_split_a_compressing_route() {
    let rig = Rig::new(ON);
    let body = text_body(4096);
    let reply = ok(&body, "max-age=60")
        .header("Vary", "Accept-Encoding")
        .header("Content-Type", "text/plain");
    rig.backend.reply("/ae", reply);
    for ae in ["gzip", "br", "identity", "gzip", ""] {
        let headers: Vec<(&str, &str)> = if ae.is_empty() {
            vec![]
        } else {
            vec![("accept-encoding", ae)]
        };
        let got = rig.get("/ae", &headers).await;
        assert_eq!(got.status, 200, "{ae}");
        assert_eq!(got.decoded(), body.as_bytes(), "Accept-Encoding: {ae}");
    }
    assert_eq!(
        rig.backend.count("/ae"),
        1,
        "Vary: Accept-Encoding split the cache"
    );
    assert_eq!(
        req_header(&rig.backend.last("/ae"), "accept-encoding"),
        Some("identity")
    );
}

// ======================================================================================
// 13. The key's query
// ======================================================================================

/// `key_query`: "none" ignores the query, "all" keeps it in a normalised order, a list keeps
/// only the listed parameters.
#[tokio::test(flavor = "multi_thread")]
async fn key_query_policies() {
    let rig = Rig::build(
        "",
        &[
            route("none", "/none/", "enabled = true, key_query = \"none\"", ""),
            route("all", "/all/", "enabled = true, key_query = \"all\"", ""),
            route(
                "allow",
                "/allow/",
                "enabled = true, key_query = [\"keep\"]",
                "",
            ),
        ]
        .concat(),
    );
    for path in ["/none/p", "/all/p", "/allow/p"] {
        rig.backend.on(path, |req| ok(&req.uri, "max-age=60"));
    }
    let body = |g: Got| g.text();

    assert_eq!(body(rig.get("/none/p?a=1", &[]).await), "/none/p?a=1");
    assert_eq!(body(rig.get("/none/p?a=2", &[]).await), "/none/p?a=1");
    assert_eq!(body(rig.get("/none/p", &[]).await), "/none/p?a=1");
    assert_eq!(rig.backend.count("/none/p"), 1);

    assert_eq!(body(rig.get("/all/p?a=1&b=2", &[]).await), "/all/p?a=1&b=2");
    assert_eq!(body(rig.get("/all/p?b=2&a=1", &[]).await), "/all/p?a=1&b=2");
    assert_eq!(rig.backend.count("/all/p"), 1, "order split the key");
    assert_eq!(body(rig.get("/all/p?a=2&b=2", &[]).await), "/all/p?a=2&b=2");
    assert_eq!(
        rig.backend.count("/all/p"),
        2,
        "a different query shared the key"
    );

    assert_eq!(
        body(rig.get("/allow/p?keep=1&drop=1", &[]).await),
        "/allow/p?keep=1&drop=1"
    );
    assert_eq!(
        body(rig.get("/allow/p?drop=2&keep=1", &[]).await),
        "/allow/p?keep=1&drop=1"
    );
    assert_eq!(
        rig.backend.count("/allow/p"),
        1,
        "an unlisted parameter split the key"
    );
    assert_eq!(
        body(rig.get("/allow/p?keep=2", &[]).await),
        "/allow/p?keep=2"
    );
    assert_eq!(
        rig.backend.count("/allow/p"),
        2,
        "a listed parameter was ignored"
    );
}
