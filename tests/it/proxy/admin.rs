//! The admin plane.

use crate::proxy::helpers::header_str;
use crate::support::{client, Origin, Proxy};

// ======================================================================================
// Admin plane
// ======================================================================================

#[tokio::test]
async fn admin_healthz_and_readyz_answer() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let http = client();
    let health = http.get(proxy.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap().trim(), "ok");

    let ready = http.get(proxy.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(header_str(&ready, "content-type").starts_with("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&ready.bytes().await.unwrap()).unwrap();
    assert_eq!(json["ready"], serde_json::Value::Bool(true));
}

#[tokio::test]
async fn admin_unknown_path_is_404_and_wrong_method_is_405_with_allow() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let http = client();
    let unknown = http.get(proxy.admin_url("/nope")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);

    let wrong = http.post(proxy.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(header_str(&wrong, "allow"), "GET, HEAD");
    let wrong = http
        .delete(proxy.admin_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(header_str(&wrong, "allow"), "GET, HEAD");
}

#[tokio::test]
async fn admin_port_does_not_proxy() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let http = client();
    for path in ["/index.html", "/hello?size=10", "/api/users"] {
        let resp = http.get(proxy.admin_url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        assert!(resp.headers().get("via").is_none());
    }
    // `/` is the admin plane's own dashboard, not a proxied page.
    let resp = http.get(proxy.admin_url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("via").is_none());
    assert!(header_str(&resp, "content-type").starts_with("text/html"));
    assert_eq!(origin.request_count(), 0);
    // The data plane, by contrast, does proxy everything (there are no routes).
    let resp = http.get(proxy.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(origin.request_count(), 1);
}
