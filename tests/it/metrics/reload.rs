//! Reload: removed names stop being exported, surviving ones keep their counts.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::metrics::exposition::{scrape_at, scrape_when};
use crate::metrics::requests::{expect_status, route};
use crate::support::{server_section, BinaryProxy, Origin};

// ---------------------------------------------------------------------------------------------
// Reload: removed names stop being exported, surviving ones keep their counts.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_route_removed_by_reload_stops_being_exported() {
    let keep = Origin::start();
    let old = Origin::start();
    let conf = |data: u16, admin: u16, with_old: bool| {
        let mut s = server_section(data, admin);
        s.push_str(&keep.upstream_toml("keepup"));
        if with_old {
            s.push_str(&old.upstream_toml("oldup"));
            s.push_str(&route("old", "oldup", "/old/"));
        }
        s.push_str(&route("keep", "keepup", "/keep/"));
        s
    };
    let proxy = BinaryProxy::spawn(|d, a| conf(d, a, true));
    let base = format!("http://{}", proxy.addr);
    for _ in 0..2 {
        expect_status("GET", format!("{base}/old/x"), 200).await;
    }
    for _ in 0..3 {
        expect_status("GET", format!("{base}/keep/x"), 200).await;
    }
    let m = scrape_when(proxy.admin, "5 requests counted", |e| {
        e.total("outrider_requests_total") == 5.0
    })
    .await;
    assert_eq!(
        m.get(
            "outrider_requests_total",
            &[("route", "old"), ("method", "GET"), ("status", "200")]
        ),
        2.0
    );
    assert!(m.mentions("upstream", "oldup"));

    // Written beside and renamed over, so the file watcher never reads a half-written file
    // (that would be a rejected reload, counted as a failure below).
    let next = proxy.config_path().with_extension("next");
    std::fs::write(&next, conf(proxy.addr.port(), proxy.admin.port(), false)).unwrap();
    std::fs::rename(&next, proxy.config_path()).unwrap();
    let resp = proxy.post_reload().await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    // The file watcher may have applied the change first; the admin trigger reloads anyway.
    assert!(body["generation"].as_u64().unwrap() >= 2, "{body}");

    let m = scrape_at(proxy.admin).await;
    assert!(
        !m.mentions("route", "old"),
        "route old still exported:\n{}",
        m.text
    );
    assert!(
        !m.mentions("upstream", "oldup"),
        "upstream oldup still exported:\n{}",
        m.text
    );
    assert_eq!(
        m.series("outrider_requests_total"),
        BTreeMap::from([(
            vec![
                ("method".to_string(), "GET".to_string()),
                ("route".to_string(), "keep".to_string()),
                ("status".to_string(), "200".to_string()),
            ],
            3.0
        )])
    );
    assert_eq!(
        m.get(
            "outrider_request_duration_seconds_count",
            &[("route", "keep")]
        ),
        3.0
    );
    assert_eq!(
        m.get(
            "outrider_upstream_requests_total",
            &[("upstream", "keepup"), ("outcome", "ok")]
        ),
        3.0
    );
    assert_eq!(
        m.get(
            "outrider_upstream_duration_seconds_count",
            &[("upstream", "keepup")]
        ),
        3.0
    );
    let generation = m.get("outrider_config_generation", &[]);
    assert!(generation >= 2.0);
    assert_eq!(
        m.get("outrider_config_reloads_total", &[("result", "success")]),
        generation - 1.0
    );
    assert_eq!(
        m.get("outrider_config_reloads_total", &[("result", "failure")]),
        0.0
    );

    // The surviving route keeps counting on the same series.
    expect_status("GET", format!("{base}/keep/y"), 200).await;
    let m = scrape_when(proxy.admin, "the 4th keep request", |e| {
        e.total("outrider_requests_total") == 4.0
    })
    .await;
    assert_eq!(
        m.get(
            "outrider_request_duration_seconds_count",
            &[("route", "keep")]
        ),
        4.0
    );
    // The removed route no longer matches anything.
    expect_status("GET", format!("{base}/old/x"), 404).await;
}
