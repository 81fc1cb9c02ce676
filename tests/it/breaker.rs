//! Circuit breaking through the real proxy (issue #7): a real Outrider in-process, real HTTP/1.1
//! origins written here that fail on command or are stopped and brought back on the same port,
//! a real client.
//!
//! Every test counts what reached the origin, so "the backend sees no traffic while open" is
//! an equality, not a hope. Where the breaker must wait out `open_for`, the test polls with a
//! deadline for the probe to be let through; `open_for` is a few hundred milliseconds there
//! and an hour elsewhere, so that no test depends on how fast the machine is.

use crate::support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use support::got::Got;
use support::{client, metric, Origin, Proxy, Recorded, Reply};

/// An origin whose status the test sets: `/` answers `status` with body `up`.
struct Switchable {
    origin: Origin,
    status: Arc<AtomicU16>,
}

impl Switchable {
    fn start() -> Switchable {
        let status = Arc::new(AtomicU16::new(200));
        let origin = Origin::with_handler(handler(status.clone()));
        Switchable { origin, status }
    }

    fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
}

fn handler(status: Arc<AtomicU16>) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |req: &Recorded| {
        let path = req.uri.split('?').next().unwrap_or("");
        match path {
            // Stored with no freshness: every later request is a revalidation, which the
            // breaker refuses while open, so only stale_on_open can answer it.
            "/page" => Reply::ok("stored page")
                .header("cache-control", "max-age=0")
                .header("etag", "\"p1\""),
            _ => match status.load(Ordering::SeqCst) {
                200 => Reply::ok("up"),
                code => Reply::status(code),
            },
        }
    }
}

fn conf(endpoints: &[SocketAddr], breaker: &str, extra: &str) -> String {
    let list: Vec<String> = endpoints.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[upstreams.app]\nendpoints = [{}]\nconnect_timeout = \"500ms\"\n{extra}\n\n\
         [upstreams.app.breaker]\n{breaker}\n\n[defaults]\nupstream = \"app\"\n\n\
         [defaults.etag]\ngenerate = false\n",
        list.join(", ")
    )
}

async fn get(proxy: &Proxy, path: &str) -> Got {
    let started = Instant::now();
    let resp = client()
        .get(proxy.url(path))
        .send()
        .await
        .expect("the proxy answers");
    Got::read(resp, started).await
}

async fn admin_json(proxy: &Proxy, path: &str) -> Value {
    let resp = client()
        .get(proxy.admin_url(path))
        .send()
        .await
        .expect("admin answers");
    assert_eq!(resp.status(), 200, "GET {path}");
    resp.json().await.expect("admin JSON")
}

async fn scrape(proxy: &Proxy) -> String {
    client()
        .get(proxy.admin_url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

/// The metrics page once `settled` holds on it: a response reaches the client before the
/// logging hook counts it, so a scrape right after the last response may miss that one.
async fn scrape_when(proxy: &Proxy, settled: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(proxy).await;
        if settled(&text) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A refusal from the proxy: 503, `Retry-After`, a body naming the upstream, never cached.
fn assert_refused(got: &Got, why: &str) -> u64 {
    assert_eq!(got.status, 503, "{why}: {:?}", got.text());
    let retry_after = got
        .header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{why}: no Retry-After in {:?}", got.headers));
    assert!(retry_after >= 1, "{why}");
    assert!(got.text().contains("upstream \"app\""), "{:?}", got.text());
    assert_eq!(got.header("cache-control"), Some("no-store"));
    retry_after
}

/// Sends requests until one is not refused by the proxy (the half-open probe), or panics
/// after `deadline`.
async fn until_let_through(proxy: &Proxy, path: &str, deadline: Duration) -> Got {
    let start = Instant::now();
    loop {
        let got = get(proxy, path).await;
        if got.header("retry-after").is_none() {
            return got;
        }
        assert!(
            start.elapsed() < deadline,
            "no probe let through within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn opens_after_consecutive_failures_and_the_backend_sees_nothing_while_open() {
    let backend = Switchable::start();
    let proxy = Proxy::start(&conf(
        &[backend.origin.addr],
        "consecutive_failures = 3\nopen_for = \"1h\"\nmax_open_for = \"1h\"",
        "",
    ));
    backend.set(503);
    for _ in 0..3 {
        let got = get(&proxy, "/").await;
        assert_eq!(got.status, 503);
        assert!(got.header("retry-after").is_none(), "the origin's own 503");
    }
    assert_eq!(backend.origin.request_count(), 3);

    for _ in 0..10 {
        let got = get(&proxy, "/").await;
        let retry_after = assert_refused(&got, "open");
        // open_for is an hour, jittered by at most 10%.
        assert!((3000..=3960).contains(&retry_after), "{retry_after}");
        assert!(got.text().contains("circuit breaker is open"));
    }
    assert_eq!(
        backend.origin.request_count(),
        3,
        "nothing reached it while open"
    );

    let text = scrape(&proxy).await;
    let up = [("upstream", "app")];
    assert_eq!(metric(&text, "outrider_breaker_state", &up), Some(2.0));
    let to = |state| [("upstream", "app"), ("to", state)];
    assert_eq!(
        metric(&text, "outrider_breaker_transitions_total", &to("open")),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "outrider_breaker_transitions_total", &to("closed")),
        Some(0.0)
    );
    let outcome = |o| [("upstream", "app"), ("outcome", o)];
    let count = |o| metric(&text, "outrider_upstream_requests_total", &outcome(o));
    assert_eq!(count("http_failure"), Some(3.0));
    assert_eq!(count("rejected"), Some(10.0));
    assert_eq!(count("ok"), Some(0.0));

    let breakers = admin_json(&proxy, "/breakers").await;
    let app = &breakers["upstreams"]["app"];
    assert_eq!(app["state"], "open");
    assert_eq!(app["in_flight"], 0);
    let endpoint = &app["endpoints"][0];
    assert_eq!(endpoint["endpoint"], backend.origin.addr.to_string());
    assert_eq!(endpoint["state"], "open");
    assert_eq!(endpoint["consecutive_failures"], 3);
    assert_eq!(endpoint["window"]["failures"], 3);
    assert!(endpoint["opened_at"].is_string(), "{endpoint}");
    let next = endpoint["next_probe_in_seconds"].as_f64().unwrap_or(0.0);
    assert!((3000.0..=3960.0).contains(&next), "{next}");

    let stats = admin_json(&proxy, "/stats").await;
    assert_eq!(stats["upstreams"]["app"]["breaker"], "open");
}

/// With the default `etag.generate = true`, GETs take the buffered leg (it holds the body to
/// hash it), which drives the same hooks: the same breaker guards it.
#[tokio::test(flavor = "multi_thread")]
async fn the_buffered_leg_is_guarded_too() {
    let backend = Switchable::start();
    let text = conf(
        &[backend.origin.addr],
        "consecutive_failures = 2\nopen_for = \"1h\"\nmax_open_for = \"1h\"",
        "",
    )
    .replace("generate = false", "generate = true");
    let proxy = Proxy::start(&text);
    let healthy = get(&proxy, "/").await;
    assert!(
        healthy.header("etag").is_some(),
        "the buffered leg answered"
    );
    backend.set(504);
    for _ in 0..2 {
        assert_eq!(get(&proxy, "/").await.status, 504);
    }
    assert_refused(&get(&proxy, "/").await, "open");
    assert_eq!(backend.origin.request_count(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn half_open_probes_recover_it_after_the_backend_heals() {
    let backend = Switchable::start();
    let proxy = Proxy::start(&conf(
        &[backend.origin.addr],
        "consecutive_failures = 2\nopen_for = \"300ms\"\nmax_open_for = \"10s\"\nhalf_open_probes = 1",
        "",
    ));
    backend.set(502);
    for _ in 0..2 {
        assert_eq!(get(&proxy, "/").await.status, 502);
    }
    assert_refused(&get(&proxy, "/").await, "open");

    // Still failing: the probe fails and the breaker opens again for twice as long.
    let probe = until_let_through(&proxy, "/", Duration::from_secs(5)).await;
    assert_eq!(probe.status, 502);
    assert_refused(&get(&proxy, "/").await, "open again");
    let breakers = admin_json(&proxy, "/breakers").await;
    assert_eq!(breakers["upstreams"]["app"]["state"], "open");
    assert_eq!(
        breakers["upstreams"]["app"]["endpoints"][0]["open_for"],
        "600ms"
    );

    backend.set(200);
    let probe = until_let_through(&proxy, "/", Duration::from_secs(5)).await;
    assert_eq!(probe.status, 200);
    assert_eq!(probe.text(), "up");
    for _ in 0..5 {
        assert_eq!(get(&proxy, "/").await.status, 200, "closed again");
    }
    // Every answer that was not a refusal came from the origin, and no refusal reached it.
    assert_eq!(backend.origin.request_count(), 2 + 1 + 1 + 5);

    let text = scrape(&proxy).await;
    let to = |state| [("upstream", "app"), ("to", state)];
    let transitions = |state| metric(&text, "outrider_breaker_transitions_total", &to(state));
    assert_eq!(transitions("open"), Some(2.0));
    assert_eq!(transitions("half_open"), Some(2.0));
    assert_eq!(transitions("closed"), Some(1.0));
    assert_eq!(
        metric(&text, "outrider_breaker_state", &[("upstream", "app")]),
        Some(0.0)
    );
    let breakers = admin_json(&proxy, "/breakers").await;
    assert_eq!(
        breakers["upstreams"]["app"]["endpoints"][0]["open_for"],
        "300ms"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_backend_trips_it_and_its_return_closes_it() {
    let backend = Switchable::start();
    let addr = backend.origin.addr;
    let proxy = Proxy::start(&conf(
        &[addr],
        "consecutive_failures = 2\nopen_for = \"300ms\"",
        "",
    ));
    assert_eq!(get(&proxy, "/").await.status, 200);
    drop(backend);

    for _ in 0..2 {
        let got = get(&proxy, "/").await;
        assert_eq!(got.status, 502, "connect refused");
    }
    let refused = get(&proxy, "/").await;
    assert_refused(&refused, "open after connect errors");
    assert!(
        refused.elapsed < Duration::from_millis(500),
        "a refusal does not wait for connect_timeout: {:?}",
        refused.elapsed
    );

    let back = Origin::with_handler_at(addr, handler(Arc::new(AtomicU16::new(200))));
    let probe = until_let_through(&proxy, "/", Duration::from_secs(5)).await;
    assert_eq!(probe.status, 200);
    assert_eq!(get(&proxy, "/").await.status, 200);
    assert_eq!(back.request_count(), 2);

    let text = scrape(&proxy).await;
    let outcome = [("upstream", "app"), ("outcome", "connect_error")];
    assert_eq!(
        metric(&text, "outrider_upstream_requests_total", &outcome),
        Some(2.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_content_is_served_while_open_where_the_route_caches() {
    let backend = Switchable::start();
    let proxy = Proxy::start(&format!(
        "{}\n[[routes]]\nname = \"pages\"\nmatch = {{ path_prefix = \"/page\" }}\n\
         cache = {{ enabled = true, stale_on_open = \"1h\" }}\n\n\
         [[routes]]\nname = \"rest\"\nmatch = {{ path_prefix = \"/\" }}\n",
        conf(
            &[backend.origin.addr],
            "consecutive_failures = 2\nopen_for = \"1h\"\nmax_open_for = \"1h\"",
            ""
        )
    ));
    let first = get(&proxy, "/page").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.text(), "stored page");

    backend.set(503);
    for _ in 0..2 {
        assert_eq!(get(&proxy, "/boom").await.status, 503);
    }
    let seen = backend.origin.request_count();

    let stale = get(&proxy, "/page").await;
    assert_eq!(stale.status, 200, "{:?}", stale.text());
    assert_eq!(stale.text(), "stored page");
    let cache_status = stale.header("cache-status").unwrap_or_default();
    assert!(
        cache_status.starts_with("outrider; hit; ttl=")
            && cache_status.ends_with("detail=\"stale-breaker-open\""),
        "{cache_status}"
    );
    assert!(stale.header("retry-after").is_none());
    // Where nothing is stored, the refusal.
    assert_refused(&get(&proxy, "/other").await, "no stored response");
    assert_eq!(
        backend.origin.request_count(),
        seen,
        "the backend was not asked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_is_not_served_beyond_its_window() {
    let backend = Switchable::start();
    // No stale_on_open and stale-if-error 0: the stored page may not stand in for the origin.
    let proxy = Proxy::start(&format!(
        "{}\n[[routes]]\nname = \"pages\"\nmatch = {{ path_prefix = \"/page\" }}\n\
         cache = {{ enabled = true }}\n\n\
         [[routes]]\nname = \"rest\"\nmatch = {{ path_prefix = \"/\" }}\n",
        conf(
            &[backend.origin.addr],
            "consecutive_failures = 2\nopen_for = \"1h\"\nmax_open_for = \"1h\"",
            ""
        )
    ));
    assert_eq!(get(&proxy, "/page").await.status, 200);
    backend.set(503);
    for _ in 0..2 {
        assert_eq!(get(&proxy, "/boom").await.status, 503);
    }
    let seen = backend.origin.request_count();
    assert_refused(&get(&proxy, "/page").await, "outside every stale window");
    assert_eq!(backend.origin.request_count(), seen);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ejected_endpoint_gets_no_traffic_while_the_healthy_one_serves_everything() {
    let sick = Switchable::start();
    sick.set(503);
    let healthy = Switchable::start();
    let proxy = Proxy::start(&conf(
        &[sick.origin.addr, healthy.origin.addr],
        "consecutive_failures = 1\nopen_for = \"1h\"\nmax_open_for = \"1h\"",
        "",
    ));
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(get(&proxy, "/").await.status);
    }
    // Round robin sends the first or second request to the sick endpoint, once.
    assert_eq!(sick.origin.request_count(), 1);
    assert_eq!(healthy.origin.request_count(), 19);
    assert_eq!(statuses.iter().filter(|&&s| s == 503).count(), 1);

    let breakers = admin_json(&proxy, "/breakers").await;
    let app = &breakers["upstreams"]["app"];
    assert_eq!(app["state"], "closed", "one endpoint is usable");
    assert_eq!(app["endpoints"][0]["state"], "open");
    assert_eq!(app["endpoints"][1]["state"], "closed");
    let text = scrape(&proxy).await;
    assert_eq!(
        metric(&text, "outrider_breaker_state", &[("upstream", "app")]),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connect_ejects_the_dead_endpoint() {
    let dead = Switchable::start();
    let dead_addr = dead.origin.addr;
    drop(dead);
    let healthy = Switchable::start();
    let proxy = Proxy::start(&conf(
        &[dead_addr, healthy.origin.addr],
        "consecutive_failures = 1\nopen_for = \"1h\"\nmax_open_for = \"1h\"",
        "",
    ));
    // Round robin starts at the dead endpoint. A POST is never retried: its refused connect
    // is the answer, and it ejects the endpoint.
    let post = client()
        .post(proxy.url("/"))
        .body("x")
        .send()
        .await
        .expect("the proxy answers");
    assert_eq!(post.status(), 502);
    assert_eq!(healthy.origin.request_count(), 0);
    let breakers = admin_json(&proxy, "/breakers").await;
    assert_eq!(
        breakers["upstreams"]["app"]["endpoints"][0]["state"],
        "open"
    );

    for _ in 0..10 {
        assert_eq!(get(&proxy, "/").await.status, 200);
    }
    assert_eq!(healthy.origin.request_count(), 10);
    let outcome = |o| [("upstream", "app"), ("outcome", o)];
    let text = scrape_when(&proxy, |text| {
        metric(text, "outrider_upstream_requests_total", &outcome("ok")) >= Some(10.0)
    })
    .await;
    let count = |o| metric(&text, "outrider_upstream_requests_total", &outcome(o));
    // Nothing tried the ejected endpoint again.
    assert_eq!(count("connect_error"), Some(1.0));
    assert_eq!(count("ok"), Some(10.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrency_overflow_is_refused_at_once() {
    let origin = Origin::start();
    let proxy = Proxy::start(&conf(
        &[origin.addr],
        "",
        "max_concurrent = 2\nread_timeout = \"10s\"",
    ));
    let slow = |proxy_url: String| {
        tokio::spawn(async move {
            client()
                .get(format!("{proxy_url}?delay_ms=3000"))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    let a = slow(proxy.url("/slow"));
    let b = slow(proxy.url("/slow"));
    support::wait_until("two requests at the origin", Duration::from_secs(5), || {
        origin.request_count() == 2
    });

    let over = get(&proxy, "/fast").await;
    assert_eq!(assert_refused(&over, "over the limit"), 1);
    assert!(
        over.text().contains("2 requests in flight"),
        "{:?}",
        over.text()
    );
    assert!(
        !a.is_finished() && !b.is_finished(),
        "refused while both were in flight"
    );
    assert_eq!(origin.request_count(), 2);

    assert_eq!(a.await.ok().and_then(Result::ok), Some(200));
    assert_eq!(b.await.ok().and_then(Result::ok), Some(200));
    // Slots are freed when requests end.
    assert_eq!(get(&proxy, "/fast").await.status, 200);
    let text = scrape(&proxy).await;
    let rejected = [("upstream", "app"), ("outcome", "rejected")];
    assert_eq!(
        metric(&text, "outrider_upstream_requests_total", &rejected),
        Some(1.0)
    );
    // The concurrency limit is not the backend failing: the breaker stays closed.
    assert_eq!(
        metric(&text, "outrider_breaker_state", &[("upstream", "app")]),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn breaker_state_survives_a_reload_and_new_thresholds_apply_to_it() {
    let backend = Switchable::start();
    let addr = backend.origin.addr;
    let proxy = Proxy::start(&conf(
        &[addr],
        "consecutive_failures = 2\nopen_for = \"1h\"\nmax_open_for = \"1h\"",
        "",
    ));
    backend.set(503);
    for _ in 0..2 {
        assert_eq!(get(&proxy, "/").await.status, 503);
    }
    assert_refused(&get(&proxy, "/").await, "open");
    backend.set(200);

    // Same name, another threshold: still open, nothing reaches the backend.
    reload(
        &proxy,
        &conf(
            &[addr],
            "consecutive_failures = 9\nopen_for = \"1h\"\nmax_open_for = \"1h\"",
            "",
        ),
    );
    assert_refused(&get(&proxy, "/").await, "open after the reload");
    assert_eq!(backend.origin.request_count(), 2);
    let breakers = admin_json(&proxy, "/breakers").await;
    assert_eq!(
        breakers["upstreams"]["app"]["breaker"]["consecutive_failures"],
        9
    );

    // A shorter max_open_for applies to the open period in progress.
    reload(
        &proxy,
        &conf(
            &[addr],
            "open_for = \"100ms\"\nmax_open_for = \"200ms\"",
            "",
        ),
    );
    let probe = until_let_through(&proxy, "/", Duration::from_secs(5)).await;
    assert_eq!(probe.status, 200);
    assert_eq!(get(&proxy, "/").await.status, 200);
}

/// Applies `body` (with the running proxy's own server section) as a reload would.
fn reload(proxy: &Proxy, body: &str) {
    let text = format!(
        "{}{body}",
        support::server_section(proxy.addr.port(), proxy.admin.port())
    );
    let policy = outrider::config::compile(&text, "test.toml").unwrap_or_else(|errors| {
        panic!("reload config is invalid: {errors:?}");
    });
    proxy.shared.store_policy(policy);
}
