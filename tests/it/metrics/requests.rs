//! Requests and routes the tests share.

use http::Method;

use crate::support::client;

// ---------------------------------------------------------------------------------------------
// Requests.
// ---------------------------------------------------------------------------------------------

pub(crate) async fn send(method: &str, url: String) -> reqwest::Response {
    client()
        .request(Method::from_bytes(method.as_bytes()).unwrap(), url)
        .send()
        .await
        .expect("request")
}

pub(crate) async fn expect_status(method: &str, url: String, status: u16) {
    let resp = send(method, url.clone()).await;
    assert_eq!(resp.status(), status, "{method} {url}");
    let _ = resp.bytes().await;
}

pub(crate) fn route(name: &str, upstream: &str, prefix: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\nupstream = \"{upstream}\"\nmatch = {{ path_prefix = \"{prefix}\" }}\n\n"
    )
}
