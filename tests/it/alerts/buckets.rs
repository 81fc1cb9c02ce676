//! The request histogram gets a bucket at each latency objective the binary starts with; a
//! reload cannot add one to a live histogram, so it reports the new objective as needing a
//! restart instead of leaving its alerts silently without a series.

use serde_json::Value;

use crate::support::{client, BinaryProxy, Origin};

fn conf(origin: &Origin, data: u16, admin: u16, latency: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{data}\"\nthreads = 2\ngrace_period = \"1s\"\n\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n\n[log]\nlevel = \"warn\"\n\n{}\
         [[routes]]\nname = \"api\"\nupstream = \"app\"\nmatch = {{ path_prefix = \"/\" }}\n\
         slo = {{ latency = \"{latency}\" }}\n",
        origin.upstream_toml("app")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn latency_objectives_are_buckets_and_a_reload_adding_one_needs_a_restart() {
    let origin = Origin::start();
    let proxy = BinaryProxy::spawn(|d, a| conf(&origin, d, a, "200ms"));
    let metrics = client()
        .get(format!("http://{}/metrics", proxy.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("outrider_request_duration_seconds_bucket{route=\"api\",le=\"0.2\"} 0"),
        "{metrics}"
    );

    let (data, admin) = (proxy.addr.port(), proxy.admin.port());
    let reload = |latency: &'static str| {
        std::fs::write(proxy.config_path(), conf(&origin, data, admin, latency)).unwrap();
        async { proxy.post_reload().await.json::<Value>().await.unwrap() }
    };
    // 250ms is one of the built-in boundaries: nothing to restart for.
    let v = reload("250ms").await;
    assert_eq!(v["pending_restart"], serde_json::json!([]), "{v}");
    let v = reload("300ms").await;
    assert!(
        v["pending_restart"]
            .to_string()
            .contains("a latency objective of 0.3s"),
        "{v}"
    );
}
