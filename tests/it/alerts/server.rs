//! The real Prometheus server (Debian's `prometheus`) scraping the real binary every second,
//! with the generated rules shrunk 60-fold (`time_scale`: the fast burn's 1h and 5m windows
//! become 1m and 5s, its `for` 2s): once the backend starts failing, the fast-burn alert goes
//! pending, and not before.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outrider::slo::{self, Format, Options};
use serde_json::Value;

use crate::support::{client, free_port, BinaryProxy, Origin, Reply};

const CONF_TAIL: &str = "[[routes]]\nname = \"api\"\nupstream = \"app\"\n\
     match = { path_prefix = \"/api/\" }\nslo = { availability = \"99.9%\" }\n";

/// A Prometheus server on a loopback port; killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(scrape: &str, rules: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("rules.yaml"), rules).unwrap();
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files: [rules.yaml]\n\
                 scrape_configs:\n  - job_name: outrider\n    static_configs:\n      - targets: [\"{scrape}\"]\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg("--config.file=prometheus.yml")
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "the prometheus server is needed for this test and could not start ({e}); \
                     install Debian's `prometheus` package (scripts/deps.sh does)"
                )
            });
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    async fn get(&self, path: &str) -> Option<Value> {
        let resp = client()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    }

    /// The state (`pending`, `firing`) of the alert `name`, if it is active.
    async fn alert_state(&self, name: &str) -> Option<String> {
        let v = self.get("/api/v1/alerts").await?;
        v["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .and_then(|a| a["state"].as_str().map(String::from))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` until it holds, failing with `what` after `deadline`.
async fn eventually<F, Fut>(what: &str, deadline: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_sees_the_fast_burn_alert_go_pending_when_the_backend_fails() {
    let failing = Arc::new(AtomicBool::new(false));
    let flag = failing.clone();
    let origin = Origin::with_handler(move |_| {
        if flag.load(Ordering::Relaxed) {
            Reply::status(500)
        } else {
            Reply::ok("ok")
        }
    });
    let conf = |d: u16, a: u16| {
        format!(
            "[server]\nlisten = \"127.0.0.1:{d}\"\nthreads = 2\ngrace_period = \"1s\"\n\n\
             [admin]\nlisten = \"127.0.0.1:{a}\"\n\n[log]\nlevel = \"warn\"\n\n{}{CONF_TAIL}",
            origin.upstream_toml("app")
        )
    };
    let proxy = BinaryProxy::spawn(conf);
    let policy = outrider::config::load(Path::new(proxy.config_path()))
        .unwrap_or_else(|_| panic!("the test's conf compiles"))
        .policy;
    let options = Options {
        time_scale: 60,
        ..Options::default()
    };
    let rules = slo::render(&policy, &options, Format::Prometheus).unwrap();
    let prometheus = Prometheus::start(&proxy.admin.to_string(), &rules);

    // Steady traffic for the whole test, so every window has requests.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        let url = format!("http://{}/api/x", proxy.addr);
        tokio::spawn(async move {
            let client = client();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(resp) = client.get(&url).send().await {
                    let _ = resp.bytes().await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // Healthy: Prometheus scrapes Outrider and evaluates the rules without the alert.
    eventually(
        "Prometheus to record the route's error ratio",
        Duration::from_secs(90),
        || async {
            prometheus
                .get("/api/v1/query?query=outrider:route_error_ratio:rate5m")
                .await
                .and_then(|v| v["data"]["result"].as_array().map(|r| !r.is_empty()))
                .unwrap_or(false)
        },
    )
    .await;
    assert_eq!(
        prometheus.alert_state("OutriderAvailabilityFastBurn").await,
        None,
        "no alert while every request succeeds"
    );

    failing.store(true, Ordering::Relaxed);
    eventually(
        "the fast-burn alert to go pending",
        Duration::from_secs(60),
        || async {
            matches!(
                prometheus
                    .alert_state("OutriderAvailabilityFastBurn")
                    .await
                    .as_deref(),
                Some("pending" | "firing")
            )
        },
    )
    .await;

    stop.store(true, Ordering::Relaxed);
    traffic.await.unwrap();
}
