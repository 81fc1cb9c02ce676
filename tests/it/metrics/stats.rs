//! `/stats` against `/metrics`.

use std::time::Duration;

use serde_json::Value;

use crate::metrics::exposition::{histogram_quantile, inflight_settled, scrape_when};
use crate::metrics::requests::{expect_status, route};
use crate::support;
use crate::support::{client, Origin, Proxy};

// ---------------------------------------------------------------------------------------------
// /stats against /metrics.
// ---------------------------------------------------------------------------------------------

pub(crate) fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_agree_with_the_histograms() {
    let origin = Origin::start();
    let proxy = Proxy::start(&format!(
        "{}{}",
        origin.upstream_toml("app"),
        route("api", "app", "/api/")
    ));
    // /stats differences against the sampler's oldest sample: wait for its first (empty) one,
    // so that the baseline holds none of the requests below.
    support::wait_until("the first stats sample", Duration::from_secs(5), || {
        proxy.shared.stats.baseline().is_some()
    });

    // 12 requests: 8 fast (6×200, a 500, a 503), 2 at 120 ms, 2 at 300 ms.
    for _ in 0..6 {
        expect_status("GET", proxy.url("/api/fast"), 200).await;
    }
    expect_status("GET", proxy.url("/api/fast?status=500"), 500).await;
    expect_status("GET", proxy.url("/api/fast?status=503"), 503).await;
    for _ in 0..2 {
        expect_status("GET", proxy.url("/api/mid?delay_ms=120"), 200).await;
    }
    for _ in 0..2 {
        expect_status("GET", proxy.url("/api/slow?delay_ms=300"), 200).await;
    }
    let m = scrape_when(proxy.admin, "12 requests counted", |e| {
        e.total("outrider_requests_total") == 12.0 && inflight_settled(e)
    })
    .await;

    let resp = client()
        .get(proxy.admin_url("/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()[http::header::CONTENT_TYPE],
        "application/json"
    );
    let stats: Value = resp.json().await.unwrap();
    let baseline = proxy.shared.stats.baseline().expect("a baseline sample");
    assert_eq!(
        baseline.routes["api"].requests, 0,
        "the baseline predates the requests"
    );
    let window = stats["window_seconds"].as_f64().expect("window_seconds");
    assert!(window > 0.0 && window <= 61.0, "{stats}");

    let r = &stats["routes"]["api"];
    let u = &stats["upstreams"]["app"];
    assert_eq!(r["upstream"], "app", "{stats}");
    for key in ["cache_hit_ratio", "compression_bytes_saved"] {
        assert!(r.get(key).is_some(), "route lacks {key}: {stats}");
    }
    assert!(
        u.get("breaker").is_some(),
        "upstream lacks breaker: {stats}"
    );
    assert_eq!(r["requests"], 12, "{stats}");
    assert_eq!(u["requests"], 12, "{stats}");
    for v in [r, u] {
        let rate = v["rate_per_second"].as_f64().unwrap();
        assert!(approx(rate, 12.0 / window), "{rate} vs 12/{window}");
    }
    // Route errors are 5xx answers (the 500 and the 503); upstream errors are attempts whose
    // outcome is not ok (only the 503 is a failure status by default).
    assert!(
        approx(r["error_ratio"].as_f64().unwrap(), 2.0 / 12.0),
        "{stats}"
    );
    assert!(
        approx(u["error_ratio"].as_f64().unwrap(), 1.0 / 12.0),
        "{stats}"
    );

    for (v, hist, labels) in [
        (r, "outrider_request_duration_seconds", [("route", "api")]),
        (
            u,
            "outrider_upstream_duration_seconds",
            [("upstream", "app")],
        ),
    ] {
        let buckets = m.buckets(hist, &labels);
        assert_eq!(buckets.last().unwrap().1, 12.0);
        let lat = &v["latency_seconds"];
        let mut got = Vec::new();
        for (key, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
            let reported = lat[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{key} missing: {stats}"));
            let computed = histogram_quantile(q, &buckets).unwrap();
            assert!(
                approx(reported, computed),
                "{hist} {key}: /stats says {reported}, histogram_quantile over /metrics says {computed}"
            );
            got.push(reported);
        }
        let (p50, p95, p99) = (got[0], got[1], got[2]);
        assert!(p50 <= p95 && p95 <= p99, "{hist}: {got:?}");
        // The 8 fast answers hold the median; the two 300 ms ones hold p95 and p99.
        assert!(p50 > 0.0 && p50 <= 0.1, "{hist} p50 {p50}");
        assert!((0.25..=0.5).contains(&p95), "{hist} p95 {p95}");
        assert!((0.25..=0.5).contains(&p99), "{hist} p99 {p99}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_without_traffic_have_no_latency() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let stats: Value = client()
        .get(proxy.admin_url("/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // No routes configured: everything goes to the defaults route.
    let r = &stats["routes"]["default"];
    assert_eq!(r["requests"], 0, "{stats}");
    assert!(r["error_ratio"].is_null(), "{stats}");
    assert!(r["latency_seconds"]["p50"].is_null(), "{stats}");
    assert_eq!(stats["upstreams"]["app"]["requests"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_show_each_objective_with_compliance_and_budget_left() {
    let origin = Origin::start();
    let proxy = Proxy::start(&format!(
        "{}[[routes]]\nname = \"api\"\nupstream = \"app\"\nmatch = {{ path_prefix = \"/api/\" }}\n\
         slo = {{ availability = \"99%\", latency = \"100ms\", latency_target = \"50%\" }}\n\n{}",
        origin.upstream_toml("app"),
        route("plain", "app", "/plain/")
    ));
    support::wait_until("the first stats sample", Duration::from_secs(5), || {
        proxy.shared.stats.baseline().is_some()
    });
    // 4 requests: one 500, one slower than 100ms.
    for _ in 0..2 {
        expect_status("GET", proxy.url("/api/fast"), 200).await;
    }
    expect_status("GET", proxy.url("/api/fast?status=500"), 500).await;
    expect_status("GET", proxy.url("/api/slow?delay_ms=250"), 200).await;
    scrape_when(proxy.admin, "4 requests counted", |e| {
        e.total("outrider_requests_total") == 4.0 && inflight_settled(e)
    })
    .await;
    let stats: Value = client()
        .get(proxy.admin_url("/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let slo = &stats["routes"]["api"]["slo"];
    let a = &slo["availability"];
    assert!(approx(a["objective"].as_f64().unwrap(), 0.99), "{slo}");
    assert!(approx(a["compliance"].as_f64().unwrap(), 0.75), "{slo}");
    // A quarter failed against a 1% budget: 25 budgets spent.
    assert!(approx(a["budget_left"].as_f64().unwrap(), -24.0), "{slo}");
    let l = &slo["latency"];
    assert_eq!(l["seconds"], 0.1, "{slo}");
    assert!(approx(l["compliance"].as_f64().unwrap(), 0.75), "{slo}");
    assert!(approx(l["budget_left"].as_f64().unwrap(), 0.5), "{slo}");
    assert!(slo["cache_hit_ratio"].is_null(), "{slo}");
    assert!(stats["routes"]["plain"]["slo"].is_null(), "{stats}");
}
