//! `[upstreams.X.health_check]`: a dead endpoint is taken out by the probes before any client
//! request reaches it, and comes back once it answers again; with every endpoint down the
//! upstream answers like an open breaker (503 + Retry-After) and `/readyz` fails for an
//! upstream listed in `readiness_upstreams`. Probes run every 100 ms; every wait is a poll
//! with a generous deadline.

use super::metrics_text;
use crate::support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use support::{client, metric, Origin, Proxy, Reply};

fn conf(endpoints: &[SocketAddr]) -> String {
    let list: Vec<String> = endpoints.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[admin]\nreadiness_upstreams = [\"app\"]\n\n\
         [upstreams.app]\nendpoints = [{}]\nconnect_timeout = \"500ms\"\n\n\
         [upstreams.app.health_check]\npath = \"/healthz\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\n\
         healthy_threshold = 2\nunhealthy_threshold = 2\nexpect_status = [200]\n\n\
         [defaults]\nupstream = \"app\"\n",
        list.join(", ")
    )
}

/// The whole conf file for a proxy listening on `data` with its admin port on `admin`.
fn conf_file(endpoints: &[SocketAddr], data: u16, admin: u16) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{data}\"\nthreads = 2\ngrace_period = \"1s\"\n\n\
         [log]\nlevel = \"warn\"\n\n{}",
        conf(endpoints).replace(
            "[admin]\n",
            &format!("[admin]\nlisten = \"127.0.0.1:{admin}\"\n")
        )
    )
}

fn start(endpoints: &[SocketAddr]) -> Proxy {
    Proxy::start_with(|data, admin| conf_file(endpoints, data, admin))
}

fn origin_at(addr: Option<SocketAddr>) -> Origin {
    let handler = |_: &support::Recorded| Reply::ok("fine");
    match addr {
        Some(a) => Origin::with_handler_at(a, handler),
        None => Origin::with_handler(handler),
    }
}

async fn healthy(proxy: &Proxy, endpoint: SocketAddr) -> Option<bool> {
    let v: Value = client()
        .get(proxy.admin_url("/breakers"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["upstreams"]["app"]["endpoints"]
        .as_array()?
        .iter()
        .find(|e| e["endpoint"] == endpoint.to_string())?["healthy"]
        .as_bool()
}

async fn until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_endpoint_is_taken_out_before_any_request_fails_and_comes_back() {
    let good = origin_at(None);
    let doomed = origin_at(None);
    let addr = doomed.addr;
    let proxy = start(&[good.addr, addr]);
    until("probes of the doomed endpoint", async || {
        doomed.requests().iter().any(|r| r.uri == "/healthz")
    })
    .await;
    drop(doomed);
    until("the dead endpoint to be taken out", async || {
        healthy(&proxy, addr).await == Some(false)
    })
    .await;
    for i in 0..20 {
        let resp = client()
            .get(proxy.url(&format!("/r{i}")))
            .send()
            .await
            .expect("the proxy answers");
        assert_eq!(resp.status(), 200);
    }
    let text = metrics_text(&proxy).await;
    let outcome = |o| {
        metric(
            &text,
            "outrider_upstream_requests_total",
            &[("upstream", "app"), ("outcome", o)],
        )
    };
    assert_eq!(
        outcome("connect_error").unwrap_or(0.0),
        0.0,
        "no request met the dead endpoint"
    );
    assert_eq!(outcome("ok"), Some(20.0));
    let label = addr.to_string();
    assert_eq!(
        metric(
            &text,
            "outrider_endpoint_healthy",
            &[("upstream", "app"), ("endpoint", &label)]
        ),
        Some(0.0)
    );
    assert!(
        metric(
            &text,
            "outrider_health_check_total",
            &[
                ("upstream", "app"),
                ("endpoint", &label),
                ("result", "fail")
            ]
        )
        .unwrap_or(0.0)
            >= 2.0
    );

    let back = origin_at(Some(addr));
    until("the endpoint to come back", async || {
        healthy(&proxy, addr).await == Some(true)
    })
    .await;
    until("traffic on the endpoint again", async || {
        let _ = client().get(proxy.url("/again")).send().await;
        back.requests().iter().any(|r| r.uri == "/again")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_every_endpoint_down_requests_get_503_and_readyz_fails() {
    let only = origin_at(None);
    let addr = only.addr;
    let proxy = start(&[addr]);
    let ready = async || {
        client()
            .get(proxy.admin_url("/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    assert_eq!(ready().await, 200);
    drop(only);
    until("/readyz to fail", async || ready().await == 503).await;
    let resp = client().get(proxy.url("/x")).send().await.expect("answers");
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let _back = origin_at(Some(addr));
    until("/readyz to pass again", async || ready().await == 200).await;
    let resp = client().get(proxy.url("/y")).send().await.expect("answers");
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_removing_an_endpoint_stops_exporting_its_health() {
    let kept = origin_at(None);
    let removed = origin_at(None);
    let proxy = start(&[kept.addr, removed.addr]);
    let (kept_label, removed_label) = (kept.addr.to_string(), removed.addr.to_string());
    let healthy_series = |text: &str, label: &str| {
        metric(
            text,
            "outrider_endpoint_healthy",
            &[("upstream", "app"), ("endpoint", label)],
        )
    };
    let probes = |text: &str, label: &str| {
        metric(
            text,
            "outrider_health_check_total",
            &[("upstream", "app"), ("endpoint", label), ("result", "ok")],
        )
    };
    until("both endpoints to be reported healthy", async || {
        let text = metrics_text(&proxy).await;
        healthy_series(&text, &kept_label) == Some(1.0)
            && healthy_series(&text, &removed_label) == Some(1.0)
    })
    .await;

    let text = conf_file(&[kept.addr], proxy.addr.port(), proxy.admin.port());
    let policy = outrider::config::compile(&text, "test.toml").expect("valid reload");
    proxy.shared.store_policy(policy);

    // Probes in flight across the reload must not bring the series back: wait for several more
    // probes of the kept endpoint (every 100 ms) before looking.
    let before = probes(&metrics_text(&proxy).await, &kept_label).unwrap_or(0.0);
    until("more probes of the kept endpoint", async || {
        probes(&metrics_text(&proxy).await, &kept_label).unwrap_or(0.0) >= before + 3.0
    })
    .await;
    let text = metrics_text(&proxy).await;
    assert_eq!(healthy_series(&text, &kept_label), Some(1.0));
    assert_eq!(healthy_series(&text, &removed_label), None, "{text}");
    assert_eq!(probes(&text, &removed_label), None, "{text}");
}
