//! Coalescing of concurrent misses.

use std::time::{Duration, Instant};

use crate::cache::helpers::{ok, Rig, ON};
use crate::support::client;
use crate::support::got::Got;

// ======================================================================================
// 7. Coalescing
// ======================================================================================

/// Concurrent misses for one key make one upstream request; the others wait for it and are
/// served from the fill (`collapsed`, RFC 9211 §2.6).
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_misses_coalesce_into_one_upstream_request() {
    let rig = Rig::new(ON);
    let mut reply = ok("the one and only", "max-age=60");
    reply.delay = Duration::from_millis(300);
    rig.backend.reply("/co", reply);
    let c = client();
    let url = rig.proxy.url("/co");
    let all = futures_util::future::join_all((0..10).map(|_| {
        let c = c.clone();
        let url = url.clone();
        async move { Got::read(c.get(url).send().await.expect("GET"), Instant::now()).await }
    }))
    .await;
    assert_eq!(rig.backend.count("/co"), 1, "the origin saw a stampede");
    let statuses: Vec<&str> = all.iter().map(|g| g.cache_status()).collect();
    for got in &all {
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "the one and only");
    }
    let not_hits = all.iter().filter(|g| !g.hit()).count();
    assert_eq!(not_hits, 1, "exactly one request fetches: {statuses:#?}");
    assert!(
        all.iter().any(|g| g.has("collapsed")),
        "no request reports waiting for the fill: {statuses:#?}"
    );
}
