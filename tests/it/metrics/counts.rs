//! Exact counts: the known sequence, the in-flight gauge, retries, odd names, and the
//! histogram's resolution.

use std::collections::BTreeMap;

use crate::metrics::exposition::{inflight_settled, promtool_check, scrape_when, Labels};
use crate::metrics::requests::{expect_status, route, send};
use crate::support::{free_port, Origin, Proxy};

/// The latency bucket bounds DESIGN.md promises (100 µs to 30 s), then `+Inf`.
const BUCKETS: [f64; 18] = [
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    f64::INFINITY,
];

// ---------------------------------------------------------------------------------------------
// The known sequence: exact counters and histogram counts.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn known_sequence_is_counted_exactly() {
    let a = Origin::start();
    let b = Origin::start();
    let dead = free_port(); // nothing listens there: connections are refused
    let proxy = Proxy::start(&format!(
        "{}{}[upstreams.dead]\nendpoints = [\"127.0.0.1:{dead}\"]\nconnect_timeout = \"500ms\"\n\n\
         [upstreams.slow]\nendpoints = [\"{}\"]\nread_timeout = \"200ms\"\n\n{}{}{}{}",
        a.upstream_toml("app"),
        b.upstream_toml("other"),
        a.addr,
        route("api", "app", "/api/"),
        route("other", "other", "/other/"),
        route("dead", "dead", "/dead/"),
        route("slow", "slow", "/slow/"),
    ));
    let url = |p: &str| proxy.url(p);

    // Unrouted: answered 404 by the proxy itself, under no route label.
    expect_status("GET", url("/nowhere"), 404).await;
    for _ in 0..3 {
        expect_status("GET", url("/api/ok?size=100"), 200).await;
    }
    for _ in 0..2 {
        expect_status("GET", url("/api/missing?status=404"), 404).await;
    }
    expect_status("POST", url("/api/write?status=503"), 503).await;
    expect_status("HEAD", url("/api/ok?size=100"), 200).await;
    expect_status("PURGE", url("/api/odd-method"), 200).await;
    expect_status("GET", url("/api/unregistered?status=599"), 599).await;
    for _ in 0..2 {
        expect_status("GET", url("/other/x?size=10"), 200).await;
    }
    expect_status("GET", url("/dead/x"), 502).await;
    expect_status("GET", url("/slow/x?delay_ms=1000"), 504).await;

    let m = scrape_when(proxy.admin, "13 requests counted", |e| {
        e.total("outrider_requests_total") == 13.0 && inflight_settled(e)
    })
    .await;
    promtool_check(&m.text);

    // outrider_requests_total{route,method,status}: exactly these series.
    let want: BTreeMap<Labels, f64> = [
        ("api", "GET", "200", 3.0),
        ("api", "GET", "404", 2.0),
        ("api", "POST", "503", 1.0),
        ("api", "HEAD", "200", 1.0),
        ("api", "OTHER", "200", 1.0),
        ("api", "GET", "599", 1.0),
        ("other", "GET", "200", 2.0),
        ("dead", "GET", "502", 1.0),
        ("slow", "GET", "504", 1.0),
    ]
    .into_iter()
    .map(|(route, method, status, n)| {
        (
            vec![
                ("method".to_string(), method.to_string()),
                ("route".to_string(), route.to_string()),
                ("status".to_string(), status.to_string()),
            ],
            n,
        )
    })
    .collect();
    assert_eq!(m.series("outrider_requests_total"), want, "{}", m.text);
    assert!(!m.mentions("route", "default"), "no fallback route exists");

    // outrider_request_duration_seconds per route: one observation per request.
    for (route, n) in [("api", 9.0), ("other", 2.0), ("dead", 1.0), ("slow", 1.0)] {
        let labels = [("route", route)];
        assert_eq!(
            m.get("outrider_request_duration_seconds_count", &labels),
            n,
            "{route}"
        );
        let buckets = m.buckets("outrider_request_duration_seconds", &labels);
        let bounds: Vec<f64> = buckets.iter().map(|(le, _)| *le).collect();
        assert_eq!(bounds, BUCKETS, "{route}: bucket layout");
        assert_eq!(buckets.last().unwrap().1, n, "{route}: le=+Inf");
        assert!(m.get("outrider_request_duration_seconds_sum", &labels) > 0.0);
    }
    // The timed-out request waited out the 200 ms read timeout.
    assert_eq!(
        m.bucket(
            "outrider_request_duration_seconds",
            &[("route", "slow")],
            0.1
        ),
        0.0
    );
    assert_eq!(
        m.series("outrider_request_duration_seconds_count").len(),
        4,
        "one series per route:\n{}",
        m.text
    );

    // outrider_upstream_requests_total{upstream,outcome}: every outcome of every upstream.
    let outcomes = |up: &str, ok, http_failure, timeout, connect_error| {
        for (outcome, n) in [
            ("ok", ok),
            ("http_failure", http_failure),
            ("timeout", timeout),
            ("connect_error", connect_error),
            ("rejected", 0.0),
        ] {
            assert_eq!(
                m.get(
                    "outrider_upstream_requests_total",
                    &[("upstream", up), ("outcome", outcome)]
                ),
                n,
                "upstream {up} outcome {outcome}\n{}",
                m.text
            );
        }
    };
    // app: 3×200, 2×404, HEAD 200, PURGE 200 and the unregistered 599 are ok (599 is not in
    // the default failure_statuses [502, 503, 504]); the 503 is an http_failure.
    outcomes("app", 8.0, 1.0, 0.0, 0.0);
    outcomes("other", 2.0, 0.0, 0.0, 0.0);
    outcomes("dead", 0.0, 0.0, 0.0, 1.0);
    outcomes("slow", 0.0, 0.0, 1.0, 0.0);
    assert_eq!(m.series("outrider_upstream_requests_total").len(), 4 * 5);

    // outrider_upstream_duration_seconds: one observation per response header received; the
    // refused connection and the timeout never got one.
    for (up, n) in [("app", 9.0), ("other", 2.0), ("dead", 0.0), ("slow", 0.0)] {
        let labels = [("upstream", up)];
        assert_eq!(
            m.get("outrider_upstream_duration_seconds_count", &labels),
            n,
            "{up}"
        );
        let buckets = m.buckets("outrider_upstream_duration_seconds", &labels);
        assert_eq!(
            buckets.iter().map(|(le, _)| *le).collect::<Vec<_>>(),
            BUCKETS
        );
        assert_eq!(buckets.last().unwrap().1, n, "{up}: le=+Inf");
    }

    for up in ["app", "other", "dead", "slow"] {
        assert_eq!(
            m.get("outrider_inflight_requests", &[("upstream", up)]),
            0.0
        );
    }
    assert_eq!(m.get("outrider_config_generation", &[]), 1.0);
    assert_eq!(m.get("outrider_config_last_reload_successful", &[]), 1.0);
    assert_eq!(
        m.get("outrider_config_reloads_total", &[("result", "success")]),
        0.0
    );
    assert_eq!(
        m.get("outrider_config_reloads_total", &[("result", "failure")]),
        0.0
    );
    assert!(m.value("process_resident_memory_bytes", &[]).unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn inflight_gauge_counts_open_upstream_requests() {
    let origin = Origin::start();
    let proxy = Proxy::start(&format!(
        "{}{}",
        origin.upstream_toml("app"),
        route("api", "app", "/")
    ));
    let slow = (0..3)
        .map(|i| {
            let url = proxy.url(&format!("/slow{i}?delay_ms=1500"));
            tokio::spawn(async move { send("GET", url).await.status() })
        })
        .collect::<Vec<_>>();
    let m = scrape_when(proxy.admin, "3 requests in flight", |e| {
        e.value("outrider_inflight_requests", &[("upstream", "app")]) == Some(3.0)
    })
    .await;
    assert_eq!(m.total("outrider_requests_total"), 0.0);
    for s in slow {
        assert_eq!(s.await.unwrap(), 200);
    }
    let m = scrape_when(proxy.admin, "the gauge back at 0", |e| {
        e.total("outrider_requests_total") == 3.0 && inflight_settled(e)
    })
    .await;
    assert_eq!(
        m.get("outrider_inflight_requests", &[("upstream", "app")]),
        0.0
    );
}

/// A refused connect on an upstream with several endpoints is retried once on the next one
/// (idempotent methods only): each attempt is an upstream attempt of its own, the request is
/// one request.
#[tokio::test(flavor = "multi_thread")]
async fn a_retried_connect_counts_both_attempts_and_one_request() {
    let origin = Origin::start();
    let dead = free_port();
    let proxy = Proxy::start(&format!(
        "[upstreams.app]\nendpoints = [\"127.0.0.1:{dead}\", \"{}\"]\n\n{}",
        origin.addr,
        route("api", "app", "/")
    ));
    // Round robin from the first endpoint: dead (retried on the live one), live, dead (a POST
    // is not retried), live.
    expect_status("GET", proxy.url("/1"), 200).await;
    expect_status("GET", proxy.url("/2"), 200).await;
    expect_status("POST", proxy.url("/3"), 502).await;
    expect_status("GET", proxy.url("/4"), 200).await;
    let m = scrape_when(proxy.admin, "4 requests counted", |e| {
        e.total("outrider_requests_total") == 4.0 && inflight_settled(e)
    })
    .await;
    assert_eq!(
        m.get(
            "outrider_requests_total",
            &[("route", "api"), ("method", "GET"), ("status", "200")]
        ),
        3.0
    );
    assert_eq!(
        m.get(
            "outrider_requests_total",
            &[("route", "api"), ("method", "POST"), ("status", "502")]
        ),
        1.0
    );
    let outcome = |o: &str| {
        m.get(
            "outrider_upstream_requests_total",
            &[("upstream", "app"), ("outcome", o)],
        )
    };
    assert_eq!(outcome("ok"), 3.0, "{}", m.text);
    assert_eq!(outcome("connect_error"), 2.0, "{}", m.text);
    assert_eq!(
        outcome("timeout") + outcome("http_failure") + outcome("rejected"),
        0.0
    );
    assert_eq!(
        m.get(
            "outrider_request_duration_seconds_count",
            &[("route", "api")]
        ),
        4.0
    );
    assert_eq!(
        m.get(
            "outrider_upstream_duration_seconds_count",
            &[("upstream", "app")]
        ),
        3.0
    );
    assert_eq!(
        m.get("outrider_inflight_requests", &[("upstream", "app")]),
        0.0
    );
}

/// Route and upstream names come from the config and may hold any character; the exposition
/// must escape them (`\\`, `\"`, `\n`) so that they stay one label value and cannot forge others.
#[tokio::test(flavor = "multi_thread")]
async fn odd_names_are_escaped_in_the_exposition() {
    let origin = Origin::start();
    // No `}` in it: the format allows one inside a label value, but prometheus-parse's line
    // regex cannot take it.
    let route_name = "a \"quoted\" \\ route\nx, y=\"z\"";
    let proxy = Proxy::start(&format!(
        "[upstreams.\"we\\\"ird\"]\nendpoints = [\"{}\"]\n\n[[routes]]\nname = {route_toml}\nmatch = {{ path_prefix = \"/\" }}\n",
        origin.addr,
        route_toml = serde_json::to_string(route_name).unwrap(),
    ));
    expect_status("GET", proxy.url("/x"), 200).await;
    // The in-flight gauge drops when the request's context does, just after it is counted.
    let m = scrape_when(proxy.admin, "the request counted and finished", |e| {
        let has =
            |name: &str, value: f64| e.decoded.iter().any(|(n, _, v)| n == name && *v == value);
        has("outrider_requests_total", 1.0) && has("outrider_inflight_requests", 0.0)
    })
    .await;
    promtool_check(&m.text);
    assert!(
        m.text.contains(
            r#"outrider_requests_total{method="GET",route="a \"quoted\" \\ route\nx, y=\"z\"",status="200"} 1"#
        ),
        "{}",
        m.text
    );
    let find = |name: &str, label: &str, value: &str| {
        m.decoded
            .iter()
            .filter(|(n, labels, _)| {
                n == name && labels.iter().any(|(k, v)| k == label && v == value)
            })
            .map(|(_, _, v)| *v)
            .collect::<Vec<f64>>()
    };
    assert_eq!(find("outrider_requests_total", "route", route_name), [1.0]);
    assert_eq!(
        find(
            "outrider_request_duration_seconds_count",
            "route",
            route_name
        ),
        [1.0]
    );
    assert_eq!(
        find(
            "outrider_upstream_duration_seconds_count",
            "upstream",
            "we\"ird"
        ),
        [1.0]
    );
    assert_eq!(
        find("outrider_inflight_requests", "upstream", "we\"ird"),
        [0.0]
    );
    // No label was forged out of the name.
    assert!(m
        .decoded
        .iter()
        .all(|(_, labels, _)| labels.iter().all(|(k, _)| k != "y")));
}

// ---------------------------------------------------------------------------------------------
// Histogram resolution.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_300ms_answer_lands_between_250ms_and_500ms() {
    let origin = Origin::start();
    let proxy = Proxy::start(&format!(
        "{}{}",
        origin.upstream_toml("app"),
        route("api", "app", "/")
    ));
    expect_status("GET", proxy.url("/x?delay_ms=300"), 200).await;
    let m = scrape_when(proxy.admin, "the request counted", |e| {
        e.total("outrider_requests_total") == 1.0
    })
    .await;
    for (name, labels) in [
        ("outrider_request_duration_seconds", [("route", "api")]),
        ("outrider_upstream_duration_seconds", [("upstream", "app")]),
    ] {
        assert_eq!(m.bucket(name, &labels, 0.1), 0.0, "{name}");
        assert_eq!(m.bucket(name, &labels, 0.25), 0.0, "{name}");
        assert_eq!(m.bucket(name, &labels, 0.5), 1.0, "{name}");
        assert_eq!(m.bucket(name, &labels, f64::INFINITY), 1.0, "{name}");
        let sum = m.get(&format!("{name}_sum"), &labels);
        assert!((0.3..0.5).contains(&sum), "{name}_sum = {sum}");
    }
}
