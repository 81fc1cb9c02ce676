//! Concurrency.

use crate::support::origin::pattern;
use crate::support::{client, Origin, Proxy};

// ======================================================================================
// Concurrency
// ======================================================================================

#[tokio::test]
async fn two_hundred_concurrent_requests_all_succeed() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let http = client();
    let requests = (0..200u64).map(|i| {
        let http = http.clone();
        let url = proxy.url(&format!("/c/{i}?size={}", 100 + i));
        async move {
            let resp = http.get(url).send().await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((i, status, body))
        }
    });
    let results = futures_util::future::join_all(requests).await;
    for result in results {
        let (i, status, body) = result.expect("request failed");
        assert_eq!(status, 200, "request {i}");
        assert!(
            body.as_ref() == pattern(0, 100 + i as usize).as_slice(),
            "body {i} differs"
        );
    }
    assert_eq!(origin.request_count(), 200);
}
