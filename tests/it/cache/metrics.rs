//! The cache's metrics.

use std::time::Duration;

use reqwest::Method;

use crate::cache::helpers::{ok, poll, route, Rig, ON};
use crate::support::{client, metric};

// ======================================================================================
// 17. Metrics
// ======================================================================================

/// `outrider_cache_lookups_total{route,result}` counts a known sequence exactly;
/// `outrider_cache_objects` / `_size_bytes` agree with GET /cache, and purges are counted.
#[tokio::test(flavor = "multi_thread")]
async fn cache_metrics_count_a_known_sequence() {
    let rig = Rig::build(
        "",
        &[route("m", "/", ON, ""), route("other", "/other/", ON, "")].concat(),
    );
    rig.backend.reply("/m", ok("metered", "max-age=60"));
    rig.backend.reply("/nostore", ok("x", "no-store"));
    rig.get("/m", &[]).await; // miss
    rig.wait_objects(1).await;
    rig.get("/m", &[]).await; // hit
    rig.get("/m", &[]).await; // hit
    rig.get("/m", &[("authorization", "Bearer a")]).await; // bypass
    rig.send(Method::POST, "/elsewhere", &[], None).await; // bypass
    rig.get("/nostore", &[]).await; // miss, not stored
    rig.get("/nostore", &[]).await; // miss, not stored
    poll("7 lookups logged", Duration::from_secs(5), || async {
        let l = &rig.cache().await["lookups"];
        ["hit", "miss", "stale", "revalidated", "coalesced", "bypass"]
            .iter()
            .map(|k| l[k].as_u64().unwrap_or(0))
            .sum::<u64>()
            == 7
    })
    .await;

    let text = rig.metrics().await;
    let lookups = |result: &str| {
        metric(
            &text,
            "outrider_cache_lookups_total",
            &[("route", "m"), ("result", result)],
        )
        .unwrap_or_else(|| panic!("no lookups series for result={result}:\n{text}"))
    };
    assert_eq!(lookups("hit"), 2.0);
    assert_eq!(lookups("miss"), 3.0);
    assert_eq!(lookups("bypass"), 2.0);
    assert_eq!(lookups("stale"), 0.0);
    assert_eq!(lookups("revalidated"), 0.0);
    assert_eq!(lookups("coalesced"), 0.0);

    let report = rig.cache().await;
    assert_eq!(report["objects"], 1, "{report}");
    assert_eq!(
        metric(&text, "outrider_cache_objects", &[]),
        report["objects"].as_f64(),
        "{report}"
    );
    assert_eq!(
        metric(&text, "outrider_cache_size_bytes", &[]),
        report["bytes"].as_f64(),
        "{report}"
    );
    assert!(report["bytes"].as_u64().unwrap() > "metered".len() as u64);
    let ratio = report["hit_ratio"].as_f64().unwrap();
    assert!(
        (ratio - 2.0 / 5.0).abs() < 1e-9,
        "hit_ratio {ratio}: {report}"
    );
    // `/stats` per route, over its window: route `m` looked the cache up 5 times (the two
    // bypasses are not lookups) and answered 2; `other` saw nothing, so it has no ratio.
    let stats: serde_json::Value = client()
        .get(rig.proxy.admin_url("/stats"))
        .send()
        .await
        .expect("GET /stats")
        .json()
        .await
        .expect("/stats is JSON");
    let route_ratio = stats["routes"]["m"]["cache_hit_ratio"].as_f64();
    assert!(
        route_ratio.is_some_and(|r| (r - 2.0 / 5.0).abs() < 1e-9),
        "{stats}"
    );
    assert!(
        stats["routes"]["other"]["cache_hit_ratio"].is_null(),
        "{stats}"
    );

    rig.purge(r#"{"all": true}"#).await;
    let text = rig.metrics().await;
    assert_eq!(metric(&text, "outrider_cache_purged_total", &[]), Some(1.0));
    assert_eq!(metric(&text, "outrider_cache_objects", &[]), Some(0.0));
    assert_eq!(metric(&text, "outrider_cache_size_bytes", &[]), Some(0.0));
}
