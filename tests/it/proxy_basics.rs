//! Smoke tests of the pass-through pipeline and the harness itself.

use crate::support;

use support::{client, Origin, Proxy};

#[tokio::test]
async fn passes_a_request_through_and_back() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let resp = client()
        .get(proxy.url("/hello?size=1234&h=x-app:yes"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-app"], "yes");
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.as_ref(), support::origin::pattern(0, 1234).as_slice());
    let seen = origin.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/hello?size=1234&h=x-app:yes");
}
