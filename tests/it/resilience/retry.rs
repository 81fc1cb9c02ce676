//! `[upstreams.X.retry]`: a retry lands on the healthy endpoint, on both legs (a GET with ETag
//! generation on takes the buffered leg, with it off Pingora's); a POST is not retried while
//! `idempotent_only`; under a sustained 100% failure the retries stay within the budget, and
//! the refusals are counted.

use super::metrics_text;
use crate::support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::{client, metric, Origin, Proxy, Reply};

fn conf(endpoints: &[SocketAddr], retry: &str, etag: bool) -> String {
    let list: Vec<String> = endpoints.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[upstreams.app]\nendpoints = [{}]\n\n[upstreams.app.breaker]\nenabled = false\n\n\
         [upstreams.app.retry]\n{retry}\n\n[defaults]\nupstream = \"app\"\n\n\
         [defaults.etag]\ngenerate = {etag}\n",
        list.join(", ")
    )
}

fn retries(text: &str, reason: &str) -> f64 {
    metric(
        text,
        "outrider_upstream_retries_total",
        &[("upstream", "app"), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_lands_on_the_healthy_endpoint_on_both_legs() {
    for etag in [true, false] {
        let failing = Origin::with_handler(|_| Reply::status(503));
        let healthy = Origin::with_handler(|_| Reply::ok("fine"));
        let proxy = Proxy::start(&conf(
            &[failing.addr, healthy.addr],
            "attempts = 2\non = [\"503\"]\nbudget = \"100%\"",
            etag,
        ));
        for i in 0..10 {
            let resp = client()
                .get(proxy.url(&format!("/r{i}")))
                .send()
                .await
                .expect("the proxy answers");
            assert_eq!(resp.status(), 200, "etag={etag} request {i}");
            assert_eq!(resp.text().await.expect("body"), "fine");
        }
        let failed = failing.request_count();
        assert!(failed >= 1, "round robin reached the failing endpoint");
        assert_eq!(
            healthy.request_count(),
            10,
            "every request ended on the healthy one"
        );
        assert_eq!(retries(&metrics_text(&proxy).await, "503"), failed as f64);

        // Not idempotent: the failing endpoint's 503 is the answer.
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let resp = client()
                .post(proxy.url("/p"))
                .body("x")
                .send()
                .await
                .expect("the proxy answers");
            statuses.push(resp.status().as_u16());
        }
        assert!(statuses.contains(&503), "etag={etag}: {statuses:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn under_total_failure_retries_stay_within_the_budget() {
    for etag in [true, false] {
        let failing = Origin::with_handler(|_| Reply::status(503));
        let proxy = Proxy::start(&conf(
            &[failing.addr],
            "attempts = 2\non = [\"503\"]\nbudget = \"10%\"",
            etag,
        ));
        let started = Instant::now();
        for i in 0..100 {
            let resp = client()
                .get(proxy.url(&format!("/f{i}")))
                .send()
                .await
                .expect("the proxy answers");
            assert_eq!(resp.status(), 503);
        }
        let took = started.elapsed();
        let text = metrics_text(&proxy).await;
        let retried = retries(&text, "503");
        let refused = metric(
            &text,
            "outrider_upstream_retries_refused_total",
            &[("upstream", "app")],
        )
        .unwrap_or(0.0);
        assert_eq!(
            retried + refused,
            100.0,
            "every failure asked the budget once"
        );
        assert_eq!(failing.request_count(), 100 + retried as usize);
        // Within one 10 s window: 10% of 100 requests plus the floor of 3, exactly. A slower
        // run spreads over windows and may retry a little more, never more than that per window.
        if took < Duration::from_secs(9) {
            assert_eq!(retried, 13.0, "etag={etag}");
        } else {
            assert!(
                retried <= 13.0 * (took.as_secs_f64() / 9.0).ceil(),
                "{retried}"
            );
        }
    }
}
