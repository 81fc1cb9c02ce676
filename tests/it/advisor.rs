//! `GET /advice` through the real proxy: each test drives one traffic pattern, then checks the
//! recommendation and its numbers. The advisor counts each request in the `logging` hook,
//! after the response, so the tests poll `/advice` (with a deadline) until it has counted
//! every request they sent; requests are sent one at a time so none is skipped (the advisor
//! skips, rather than waits for, a request that finds it busy).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{client, Origin, Proxy, Reply};

const MIN_SAMPLES: u64 = outrider::advisor::MIN_SAMPLES;

async fn advice(proxy: &Proxy) -> Value {
    let resp = client()
        .get(proxy.admin_url("/advice"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Polls `/advice` until `ready` holds for it; fails after 10 s with the last answer.
async fn advice_when(proxy: &Proxy, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let a = advice(proxy).await;
        if ready(&a) {
            return a;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{what}: {a:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn find<'a>(a: &'a Value, kind: &str, target: &str) -> Option<&'a Value> {
    a["advice"]
        .as_array()?
        .iter()
        .find(|x| x["kind"] == kind && x["target"] == target)
}

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn conf(origin: &Origin, route: &str) -> String {
    format!(
        "{}[[routes]]\nname = \"api\"\nupstream = \"app\"\nmatch = {{ path_prefix = \"/\" }}\n{route}\n",
        origin.upstream_toml("app")
    )
}

/// 10 URLs asked 10 times each, same bodies, no Cache-Control: 90 of 100 GETs repeat a body
/// sent under 30 s before. Below MIN_SAMPLES nothing is advised.
#[tokio::test(flavor = "multi_thread")]
async fn cacheability_counts_identical_repeats() {
    let origin = Origin::start();
    let proxy = Proxy::start(&conf(&origin, ""));
    let url = |i: u64| proxy.url(&format!("/item{}?size=700&ct=application/json", i % 10));
    for i in 0..MIN_SAMPLES - 1 {
        assert_eq!(get(&url(i), &[]).await.status(), 200);
    }
    let early = advice_when(&proxy, "49 counted", |a| a["url_table"]["urls"] == 10).await;
    assert!(find(&early, "cacheability", "api").is_none(), "{early:#}");
    for i in MIN_SAMPLES - 1..100 {
        assert_eq!(get(&url(i), &[]).await.status(), 200);
    }
    let a = advice_when(&proxy, "100 GETs counted", |a| {
        find(a, "cacheability", "api").is_some_and(|x| x["evidence"]["samples"] == 100)
    })
    .await;
    let x = find(&a, "cacheability", "api").unwrap();
    assert_eq!(x["evidence"]["identical_repeats_storable"], 90, "{x:#}");
    assert_eq!(x["evidence"]["backend_cache_control"]["none"], 100);
    assert_eq!(x["estimate"]["hit_ratio_percent"], 90.0);
    assert_eq!(x["estimate"]["origin_bytes_saved"], 90 * 700);
    assert!(x["change"]
        .as_str()
        .unwrap()
        .contains("cache = { enabled = true, default_ttl = \"30s\" }"));
    assert_eq!(a["min_samples"], MIN_SAMPLES);
}

/// The default route (ETag generation on: the buffered leg) hashes bodies as Pingora's leg
/// does: one URL asked 100 times, its body changing every second time, repeats 50 bodies.
#[tokio::test(flavor = "multi_thread")]
async fn cacheability_hashes_bodies_on_the_buffered_leg() {
    let served = std::sync::atomic::AtomicU64::new(0);
    let origin = Origin::with_handler(move |_| {
        let n = served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Reply::ok(format!("{{\"version\":{}}}", n / 2)).header("content-type", "application/json")
    });
    let proxy = Proxy::start(&conf(&origin, ""));
    for _ in 0..100 {
        let resp = get(&proxy.url("/changing"), &[]).await;
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().contains_key("etag"), "not the buffered leg");
    }
    let a = advice_when(&proxy, "100 GETs counted", |a| {
        find(a, "cacheability", "api").is_some_and(|x| x["evidence"]["samples"] == 100)
    })
    .await;
    let x = find(&a, "cacheability", "api").unwrap();
    assert_eq!(x["evidence"]["identical_repeats_storable"], 50, "{x:#}");
}

/// 60 JSON responses of 700 bytes to clients accepting gzip, on a route with min_size 1KiB.
#[tokio::test(flavor = "multi_thread")]
async fn compression_below_min_size() {
    let origin = Origin::start();
    let proxy = Proxy::start(&conf(&origin, "compression = { min_size = \"1KiB\" }"));
    for i in 0..60 {
        let resp = get(
            &proxy.url(&format!("/c{i}?size=700&ct=application/json")),
            &[("accept-encoding", "gzip, br")],
        )
        .await;
        assert!(resp.headers().get("content-encoding").is_none());
    }
    let a = advice_when(&proxy, "60 misses", |a| {
        find(a, "compression", "api").is_some_and(|x| x["evidence"]["samples"] == 60)
    })
    .await;
    let x = find(&a, "compression", "api").unwrap();
    assert_eq!(x["evidence"]["below_min_size"]["bytes"], 60 * 700, "{x:#}");
    assert_eq!(x["estimate"]["bytes_saved"], 28_000);
    assert!(x["change"].as_str().unwrap().contains("min_size"));
}

/// Clients revalidate one URL 60 times; the backend sends no validators and ETag generation is
/// off: 59 of the 60 bodies were unchanged, so 59 304s were possible.
#[tokio::test(flavor = "multi_thread")]
async fn conditional_without_validators() {
    let origin = Origin::start();
    let proxy = Proxy::start(&conf(&origin, "etag = { generate = false }"));
    for _ in 0..60 {
        let resp = get(&proxy.url("/doc?size=300"), &[("if-none-match", "\"v1\"")]).await;
        assert_eq!(resp.status(), 200);
    }
    let a = advice_when(&proxy, "60 revalidations", |a| {
        find(a, "conditional", "api").is_some_and(|x| x["evidence"]["samples"] == 60)
    })
    .await;
    let x = find(&a, "conditional", "api").unwrap();
    assert_eq!(x["estimate"]["not_modified_possible"], 59, "{x:#}");
    assert_eq!(x["estimate"]["bytes_saved"], 59 * 300);
    assert!(x["change"]
        .as_str()
        .unwrap()
        .contains("etag = { generate = true }"));
}

/// Every request takes 60 ms against a 20 ms objective; then 8 concurrent requests meet
/// `max_concurrent = 1`, and the rejections are advised on the upstream.
#[tokio::test(flavor = "multi_thread")]
async fn objective_and_max_concurrent() {
    let origin = Origin::start();
    let body = format!(
        "{}max_concurrent = 1\n\n[[routes]]\nname = \"api\"\nupstream = \"app\"\nmatch = {{ path_prefix = \"/\" }}\n\
         slo = {{ latency = \"20ms\", latency_target = \"90%\" }}\n",
        origin.upstream_toml("app")
    );
    let proxy = Proxy::start(&body);
    for i in 0..MIN_SAMPLES {
        assert_eq!(
            get(&proxy.url(&format!("/s{i}?delay_ms=60")), &[])
                .await
                .status(),
            200
        );
    }
    let a = advice_when(&proxy, "the objective", |a| {
        find(a, "objective", "api").is_some_and(|x| x["evidence"]["samples"] == MIN_SAMPLES)
    })
    .await;
    let x = find(&a, "objective", "api").unwrap();
    assert_eq!(x["evidence"]["over_objective"], MIN_SAMPLES, "{x:#}");
    assert_eq!(x["evidence"]["objective_ms"], 20);

    let mut tasks = Vec::new();
    for i in 0..8 {
        let url = proxy.url(&format!("/busy{i}?delay_ms=500"));
        tasks.push(tokio::spawn(async move {
            get(&url, &[]).await.status().as_u16()
        }));
    }
    let mut refused = 0;
    for t in tasks {
        refused += u64::from(t.await.unwrap() == 503);
    }
    assert!(
        refused >= 1,
        "max_concurrent = 1 refused none of 8 concurrent requests"
    );
    let a = advice_when(&proxy, "the rejections", |a| {
        a["advice"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["kind"] == "upstream")
    })
    .await;
    let up = a["advice"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "upstream")
        .unwrap();
    assert_eq!(up["target"], "app");
    let counted = up["evidence"]["max_concurrent_rejections"]
        .as_u64()
        .unwrap();
    // Each refusal is counted unless it found the advisor busy: at most what clients saw.
    assert!(
        (1..=refused).contains(&counted),
        "{counted} of {refused}: {up:#}"
    );
    assert!(up["change"]
        .as_str()
        .unwrap()
        .contains("max_concurrent = 2"));
}

/// A caching route whose backend marks every response `no-store`: the refusals are advised
/// with their reason.
#[tokio::test(flavor = "multi_thread")]
async fn cache_refusals_with_their_reason() {
    let origin = Origin::start();
    let proxy = Proxy::start(&conf(
        &origin,
        "cache = { enabled = true, default_ttl = \"30s\" }",
    ));
    for i in 0..60 {
        let url = proxy.url(&format!("/n{i}?size=100&h=cache-control:no-store"));
        assert_eq!(get(&url, &[]).await.status(), 200);
    }
    let a = advice_when(&proxy, "60 refusals", |a| {
        find(a, "cache_refusals", "api").is_some_and(|x| x["evidence"]["refused"] == 60)
    })
    .await;
    let x = find(&a, "cache_refusals", "api").unwrap();
    assert_eq!(x["evidence"]["reasons"]["no-store"], 60, "{x:#}");
    assert!(find(&a, "cacheability", "api").is_none());
}

/// A backend failing every request behind a breaker that opens after 2 failures and half-opens
/// after 50 ms: each failed probe opens it again. Traffic continues (paced, not synchronised)
/// until the advice shows the flapping, with at least MIN_SAMPLES requests behind it.
#[tokio::test(flavor = "multi_thread")]
async fn breaker_flaps() {
    let origin = Origin::start();
    let body = format!(
        "{}[upstreams.app.breaker]\nenabled = true\nconsecutive_failures = 2\nopen_for = \"50ms\"\n\
         max_open_for = \"100ms\"\nhalf_open_probes = 1\n\n\
         [[routes]]\nname = \"api\"\nupstream = \"app\"\nmatch = {{ path_prefix = \"/\" }}\n",
        origin.upstream_toml("app")
    );
    let proxy = Proxy::start(&body);
    let start = Instant::now();
    let flap = loop {
        for _ in 0..10 {
            let status = get(&proxy.url("/f?status=503"), &[]).await.status();
            assert_eq!(status, 503);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let a = advice(&proxy).await;
        let found = a["advice"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["kind"] == "upstream" && x["evidence"]["breaker_openings"].is_u64())
            .cloned();
        if let Some(x) = found {
            break x;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no flap advice: {a:#}"
        );
    };
    assert_eq!(flap["target"], "app");
    assert!(
        flap["evidence"]["breaker_openings"].as_u64().unwrap() >= 3,
        "{flap:#}"
    );
    assert!(flap["evidence"]["samples"].as_u64().unwrap() >= MIN_SAMPLES);
    assert!(flap["change"]
        .as_str()
        .unwrap()
        .contains("consecutive_failures = 4"));
}

/// `[admin] advisor = false`: requests feed nothing and `/advice` says it is off; a reload
/// turning it on brings the advice for the same traffic.
#[tokio::test(flavor = "multi_thread")]
async fn the_advisor_can_be_turned_off_and_on_by_reload() {
    let origin = Origin::start();
    let text = |data: u16, admin: u16, on: bool| {
        crate::support::server_section(data, admin)
            .replace("[admin]\n", &format!("[admin]\nadvisor = {on}\n"))
            + &conf(&origin, "")
    };
    let proxy = Proxy::start_with(|data, admin| text(data, admin, false));
    let url = |i: u64| proxy.url(&format!("/off{}?size=700&ct=application/json", i % 10));
    for i in 0..100 {
        assert_eq!(get(&url(i), &[]).await.status(), 200);
    }
    let off = advice(&proxy).await;
    assert_eq!(off["enabled"], false, "{off:#}");
    assert_eq!(off["advice"], serde_json::json!([]), "{off:#}");
    assert_eq!(off["url_table"]["urls"], 0, "nothing was observed: {off:#}");

    let on = outrider::config::compile(
        &text(proxy.addr.port(), proxy.admin.port(), true),
        "test.toml",
    )
    .expect("valid reload");
    proxy.shared.store_policy(on);
    for i in 0..100 {
        assert_eq!(get(&url(i), &[]).await.status(), 200);
    }
    let a = advice_when(&proxy, "100 GETs counted after the reload", |a| {
        find(a, "cacheability", "api").is_some_and(|x| x["evidence"]["samples"] == 100)
    })
    .await;
    assert_eq!(a["enabled"], true);
}
