//! The store itself: its memory bound, and its contents across a policy reload.

use std::time::Instant;

use serde_json::Value;

use crate::cache::helpers::{conf, enc, ok, route, Backend, Rig, ON};
use crate::support::got::Got;
use crate::support::origin::pattern;
use crate::support::{client, metric, server_section, BinaryProxy};

// ======================================================================================
// 16. Memory bound
// ======================================================================================

/// A flood of distinct keys keeps the store within `[cache] max_size` by evicting; an object
/// over `max_object_size` is served whole but not stored.
#[tokio::test(flavor = "multi_thread")]
async fn the_store_stays_within_max_size_and_skips_large_objects() {
    let rig = Rig::build(
        "max_size = \"200KiB\"\nmax_object_size = \"50KiB\"",
        &route("c", "/", ON, ""),
    );
    let cc = enc("Cache-Control:max-age=60");
    for i in 0..100 {
        let got = rig.get(&format!("/flood/{i}?size=10240&h={cc}"), &[]).await;
        assert_eq!(got.status, 200);
        assert!(got.body == pattern(0, 10240), "/flood/{i}: body differs");
    }
    let report = rig.cache().await;
    let bytes = report["bytes"].as_u64().unwrap();
    let max = report["max_bytes"].as_u64().unwrap();
    assert_eq!(max, 200 * 1024, "{report}");
    assert!(
        bytes <= max,
        "{bytes} bytes held over a {max}-byte bound: {report}"
    );
    assert!(report["evictions"].as_u64().unwrap() > 0, "{report}");
    let objects = report["objects"].as_u64().unwrap();
    assert!((5..100).contains(&objects), "{report}");
    // The most recent keys are the ones kept (LRU).
    assert!(rig
        .get(&format!("/flood/99?size=10240&h={cc}"), &[])
        .await
        .hit());

    let text = rig.metrics().await;
    let evictions = metric(&text, "outrider_cache_evictions_total", &[]).unwrap_or(0.0);
    assert!(
        evictions > 0.0,
        "outrider_cache_evictions_total = {evictions}"
    );

    let big = format!("/big?size=102400&h={cc}");
    for n in 1..=2 {
        let got = rig.get(&big, &[]).await;
        assert_eq!(got.status, 200, "#{n}");
        assert!(
            got.body == pattern(0, 102400),
            "#{n}: the large body differs"
        );
        assert!(!got.hit(), "#{n}: {}", got.cache_status());
    }
    assert_eq!(
        rig.backend.count("/big"),
        2,
        "an object over max_object_size was stored"
    );
    let after = rig.cache().await;
    assert!(after["bytes"].as_u64().unwrap() <= max, "{after}");
}

// ======================================================================================
// 18. Reload
// ======================================================================================

/// The store outlives a policy reload (the built binary, its conf edited, POST /reload):
/// the entry is a hit before and after, and the origin sees one request.
#[tokio::test(flavor = "multi_thread")]
async fn cache_contents_survive_a_policy_reload() {
    let backend = Backend::start();
    backend.reply("/keep", ok("kept across reloads", "max-age=600"));
    let text = |d: u16, a: u16, extra: &str| {
        let routes = route("c", "/", ON, extra);
        format!(
            "{}{}",
            server_section(d, a),
            conf(&backend, "max_size = \"64MiB\"", &routes)
        )
    };
    let proxy = BinaryProxy::spawn(|d, a| text(d, a, ""));
    let url = format!("http://{}/keep", proxy.addr);
    let get =
        || async { Got::read(client().get(&url).send().await.unwrap(), Instant::now()).await };
    get().await;
    assert!(get().await.hit());

    let (d, a) = (proxy.addr.port(), proxy.admin.port());
    let edited = text(d, a, "server_timing = true").replace("\"64MiB\"", "\"32MiB\"");
    std::fs::write(proxy.config_path(), edited).unwrap();
    let resp = proxy.post_reload().await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert!(
        answer["result"] == "applied" || answer["result"] == "unchanged",
        "{answer}"
    );
    let config: Value = client()
        .get(format!("http://{}/config", proxy.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(config["generation"].as_u64().unwrap() >= 2, "{config}");

    let after = get().await;
    assert!(
        after.header("server-timing").is_some(),
        "the new policy is not in force"
    );
    assert!(
        after.hit(),
        "the entry did not survive the reload: {}",
        after.cache_status()
    );
    assert_eq!(after.text(), "kept across reloads");
    assert_eq!(backend.count("/keep"), 1);
}
