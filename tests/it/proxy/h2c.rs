//! HTTP/2 cleartext downstream.

use crate::proxy::helpers::{all_values, header_str, named_origin, two_upstreams};
use crate::support::origin::{pattern, Period};
use crate::support::{h2c_client, Origin, Proxy};

// ======================================================================================
// HTTP/2 cleartext downstream
// ======================================================================================

#[tokio::test]
async fn h2c_get_is_proxied_to_an_http11_upstream() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let resp = h2c_client()
        .get(proxy.url("/h2?size=70000&h=x-app:yes"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert_eq!(all_values(resp.headers(), "via"), ["2 outrider"]);
    assert_eq!(resp.headers()["x-app"], "yes");
    let body = resp.bytes().await.unwrap();
    assert!(
        body.as_ref() == pattern(0, 70_000).as_slice(),
        "body differs"
    );
    let seen = &origin.requests()[0];
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.uri, "/h2?size=70000&h=x-app:yes");
    assert_eq!(seen.headers["via"], "2 outrider");
    assert_eq!(seen.headers["host"], proxy.addr.to_string());
}

#[tokio::test]
async fn h2c_post_body_reaches_the_upstream_intact() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let h2 = h2c_client();
    let sized = h2
        .post(proxy.url("/p"))
        .body(pattern(0, 200_000))
        .send()
        .await
        .unwrap();
    assert_eq!(sized.version(), reqwest::Version::HTTP_2);
    assert_eq!(sized.status(), 200);
    let streamed = h2
        .post(proxy.url("/p"))
        .body(reqwest::Body::wrap_stream(
            Period::new().stream(123_457, 8_192),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 200);
    let seen = origin.requests();
    assert_eq!((seen[0].body_len, seen[0].body_is_pattern), (200_000, true));
    assert_eq!((seen[1].body_len, seen[1].body_is_pattern), (123_457, true));
    assert!(seen.iter().all(|r| r.version == http::Version::HTTP_11));
}

#[tokio::test]
async fn h2c_requests_route_by_authority() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "loopback"
upstream = "a"
match = { host = "127.0.0.1" }
"#,
    ));
    let resp = h2c_client().get(proxy.url("/x")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(header_str(&resp, "x-origin"), "a");
}
