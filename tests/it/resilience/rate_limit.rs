//! `rate_limit`: exact 200 / 429 counts over a bounded burst. The refill is one token an hour,
//! so no refill can land during a test however slow the machine: the counts are equalities.

use super::metrics_text;
use crate::support;

use support::{client, metric, Origin, Proxy};

fn conf(origin: &Origin, route_limit: &str) -> String {
    format!(
        "{}\n[defaults]\nupstream = \"app\"\n\n\
         [[routes]]\nname = \"limited\"\nmatch = {{ path_prefix = \"/limited\" }}\nrate_limit = {route_limit}\n\n\
         [[routes]]\nname = \"free\"\nmatch = {{ path_prefix = \"/\" }}\n",
        origin.upstream_toml("app")
    )
}

/// Sends `n` requests at once with `api_key` (if any) and returns (200s, 429s).
async fn burst(proxy: &Proxy, path: &str, n: usize, api_key: Option<&str>) -> (usize, usize) {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let mut req = client().get(proxy.url(path));
        if let Some(k) = api_key {
            req = req.header("x-api-key", k);
        }
        tasks.push(tokio::spawn(async move {
            req.send()
                .await
                .expect("the proxy answers")
                .status()
                .as_u16()
        }));
    }
    let mut counts = (0, 0);
    for t in tasks {
        match t.await.expect("task") {
            200 => counts.0 += 1,
            429 => counts.1 += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_gets_exactly_burst_answers_and_the_rest_429() {
    let origin = Origin::start();
    let proxy = Proxy::start(&conf(&origin, "{ requests = 1, per = \"1h\", burst = 7 }"));
    assert_eq!(burst(&proxy, "/limited/x", 30, None).await, (7, 23));
    assert_eq!(
        origin.request_count(),
        7,
        "refused requests never reach the origin"
    );
    // Another route is not limited.
    assert_eq!(burst(&proxy, "/other", 10, None).await, (10, 0));

    let resp = client()
        .get(proxy.url("/limited/x"))
        .send()
        .await
        .expect("the proxy answers");
    assert_eq!(resp.status(), 429);
    let h = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let retry_after: u64 = h("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("secs");
    assert!((3000..=3600).contains(&retry_after), "{retry_after}");
    assert_eq!(
        h("ratelimit-policy").as_deref(),
        Some("\"limited\";q=1;w=3600")
    );
    let ratelimit = h("ratelimit").expect("RateLimit");
    assert!(ratelimit.starts_with("\"limited\";r=0;t="), "{ratelimit}");

    let text = metrics_text(&proxy).await;
    assert_eq!(
        metric(
            &text,
            "outrider_rate_limited_total",
            &[("route", "limited")]
        ),
        Some(24.0)
    );
    assert_eq!(
        metric(&text, "outrider_rate_limited_total", &[("route", "free")]),
        None,
        "only limited routes export the series"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_header_key_gives_each_client_its_own_bucket() {
    let origin = Origin::start();
    let proxy = Proxy::start(&conf(
        &origin,
        "{ requests = 1, per = \"1h\", burst = 3, key = \"header:X-Api-Key\" }",
    ));
    assert_eq!(burst(&proxy, "/limited", 8, Some("alice")).await, (3, 5));
    assert_eq!(burst(&proxy, "/limited", 8, Some("bob")).await, (3, 5));
    // Requests without the key share one bucket.
    assert_eq!(burst(&proxy, "/limited", 8, None).await, (3, 5));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_buckets_survive_a_reload_that_keeps_the_limit() {
    let origin = Origin::start();
    let limit = "{ requests = 1, per = \"1h\", burst = 4 }";
    let proxy = Proxy::start(&conf(&origin, limit));
    assert_eq!(burst(&proxy, "/limited", 6, None).await, (4, 2));
    let reload = |route_limit: &str| {
        let text = format!(
            "{}{}",
            support::server_section(proxy.addr.port(), proxy.admin.port()),
            conf(&origin, route_limit)
        );
        proxy
            .shared
            .store_policy(outrider::config::compile(&text, "t.toml").expect("valid"));
    };
    reload(limit);
    assert_eq!(
        burst(&proxy, "/limited", 3, None).await,
        (0, 3),
        "state kept"
    );
    reload("{ requests = 1, per = \"1h\", burst = 2 }");
    assert_eq!(
        burst(&proxy, "/limited", 3, None).await,
        (2, 1),
        "new limit, new buckets"
    );
}
