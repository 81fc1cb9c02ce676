//! The slow-request log (the real binary's stdout): a line for each request slower than its
//! route's `slow_request`, none for fast ones or routes without it, access log off, and a rate
//! limit that counts what it leaves out.

use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::metrics::exposition::scrape_when;
use crate::metrics::requests::expect_status;
use crate::support::{wait_until, BinaryProxy, Origin};

/// The proxy's stdout lines, read as they come so that a test can wait for one.
struct Lines {
    lines: Arc<Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Lines {
    fn of(proxy: &mut BinaryProxy) -> Lines {
        let stdout = proxy.child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Lines { lines, reader }
    }

    fn count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// Every line, once the process has exited and its stdout is closed.
    fn finish(self) -> Vec<String> {
        self.reader.join().expect("stdout reader");
        Arc::try_unwrap(self.lines).unwrap().into_inner().unwrap()
    }
}

fn conf(origin: &Origin, format: &str, data: u16, admin: u16) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{data}\"\nthreads = 2\ngrace_period = \"1s\"\n\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
         [log]\nlevel = \"warn\"\nformat = \"{format}\"\naccess_log = false\n\n\
         {}\
         [[routes]]\nname = \"api\"\nupstream = \"app\"\nmatch = {{ path_prefix = \"/api/\" }}\nslow_request = \"300ms\"\n\n\
         [[routes]]\nname = \"quiet\"\nupstream = \"app\"\nmatch = {{ path_prefix = \"/quiet/\" }}\n",
        origin.upstream_toml("app"),
    )
}

fn stop(mut proxy: BinaryProxy, lines: Lines) -> Vec<String> {
    proxy.signal("TERM");
    proxy.wait_exit(Duration::from_secs(10));
    lines.finish()
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_requests_log_one_json_line_fast_ones_none() {
    let origin = Origin::start();
    let mut proxy = BinaryProxy::spawn(|d, a| conf(&origin, "json", d, a));
    let lines = Lines::of(&mut proxy);
    let base = format!("http://{}", proxy.addr);
    expect_status("GET", format!("{base}/api/fast"), 200).await;
    expect_status("GET", format!("{base}/api/slow?delay_ms=600"), 200).await;
    // Slow too, but its route has no slow_request (and [log] slow_request is "0s").
    expect_status("GET", format!("{base}/quiet/slow?delay_ms=600"), 200).await;
    // A POST goes through Pingora's own upstream leg, the GET above through the buffered one
    // (the route generates ETags): both split the upstream time the same way.
    expect_status("POST", format!("{base}/api/posted?delay_ms=600"), 200).await;
    wait_until("the slow lines", Duration::from_secs(10), || {
        lines.count() >= 2
    });
    let out = stop(proxy, lines);
    assert_eq!(out.len(), 2, "{out:#?}");
    let post: Value = serde_json::from_str(&out[1]).unwrap();
    assert_eq!(post["path"], "/api/posted");
    let (connect, first_byte) = (post["connect_ms"].as_f64(), post["first_byte_ms"].as_f64());
    assert!(
        connect.is_some() && first_byte.unwrap_or(0.0) >= 600.0,
        "{post}"
    );
    let v: Value = serde_json::from_str(&out[0]).unwrap_or_else(|e| panic!("{e}: {}", out[0]));
    assert_eq!(v["log"], "slow_request");
    assert_eq!(v["path"], "/api/slow");
    assert_eq!(v["route"], "api");
    assert_eq!(v["upstream"], "app");
    assert_eq!(v["endpoint"], origin.addr.to_string());
    assert_eq!(v["status"], 200);
    assert_eq!(v["threshold_ms"], 300.0);
    let total = v["duration_ms"].as_f64().unwrap();
    let upstream = v["upstream_ms"].as_f64().unwrap();
    let before = v["before_upstream_ms"].as_f64().unwrap();
    let body = v["body_ms"].as_f64().unwrap();
    assert!(total >= 600.0, "{v}");
    assert!(
        upstream >= 600.0,
        "the delay is before the upstream header: {v}"
    );
    assert!((before + upstream + body - total).abs() < 0.01, "{v}");
    let connect = v["connect_ms"].as_f64().unwrap();
    let first_byte = v["first_byte_ms"].as_f64().unwrap();
    assert!((connect + first_byte - upstream).abs() < 0.01, "{v}");
    assert!(
        first_byte >= 600.0,
        "the origin waits before its header: {v}"
    );
    assert!(v["connection_reused"].is_boolean(), "{v}");
    assert_eq!(v["cache"], "-", "the route does not cache");
    assert_eq!(v["retries"], 0);
    assert_eq!(v["refused"], "-");
    assert_eq!(v["deadline"], false);
    assert_eq!(v["error"], "-");
    assert_eq!(v["suppressed"], 0);
    assert!(v["bytes_sent"].as_u64().is_some(), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_cut_by_its_deadline_says_so() {
    let origin = Origin::start();
    let mut proxy = BinaryProxy::spawn(|data, admin| {
        format!(
            "[server]\nlisten = \"127.0.0.1:{data}\"\nthreads = 2\ngrace_period = \"1s\"\n\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
             [log]\nlevel = \"warn\"\nformat = \"json\"\n\n\
             {}\
             [[routes]]\nname = \"api\"\nupstream = \"app\"\nmatch = {{ path_prefix = \"/api/\" }}\n\
             slow_request = \"100ms\"\ndeadline = \"500ms\"\n",
            origin.upstream_toml("app"),
        )
    });
    let lines = Lines::of(&mut proxy);
    let base = format!("http://{}", proxy.addr);
    // Slower than slow_request, inside the deadline: logged, not a deadline.
    expect_status("GET", format!("{base}/api/slow?delay_ms=200"), 200).await;
    // The origin would answer after 5 s: the deadline cuts it at 500 ms.
    expect_status("GET", format!("{base}/api/stuck?delay_ms=5000"), 504).await;
    wait_until("the slow lines", Duration::from_secs(10), || {
        lines.count() >= 2
    });
    let out = stop(proxy, lines);
    let line = |path: &str| -> Value {
        out.iter()
            .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .find(|v| v["path"] == path)
            .unwrap_or_else(|| panic!("no line for {path}: {out:#?}"))
    };
    let slow = line("/api/slow");
    assert_eq!(slow["deadline"], false, "{slow}");
    let stuck = line("/api/stuck");
    assert_eq!(stuck["status"], 504, "{stuck}");
    assert_eq!(stuck["deadline"], true, "{stuck}");
    assert!(stuck["duration_ms"].as_f64().unwrap() < 4000.0, "{stuck}");
}

/// Waits until `n` requests are counted: the slow line (or its suppression) comes first in
/// the logging hook, so by then every decision is made and every line written.
async fn counted(proxy: &BinaryProxy, n: usize) {
    scrape_when(proxy.admin, &format!("{n} requests counted"), |e| {
        e.total("outrider_requests_total") == n as f64
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_lines_are_rate_limited_and_the_suppressed_are_counted() {
    const BURST: usize = 40;
    let origin = Origin::start();
    let mut proxy = BinaryProxy::spawn(|d, a| conf(&origin, "text", d, a));
    let lines = Lines::of(&mut proxy);
    let base = format!("http://{}", proxy.addr);
    let burst: Vec<_> = (0..BURST)
        .map(|i| {
            let url = format!("{base}/api/burst{i}?delay_ms=400");
            tokio::spawn(async move { expect_status("GET", url, 200).await })
        })
        .collect();
    for task in burst {
        task.await.unwrap();
    }
    counted(&proxy, BURST).await;
    // The limit's window started no later than now. Slow requests sent from a second later on
    // fall in a later window, so the last one is logged and carries the count of every
    // request left out before it.
    let window_started_by = Instant::now();
    let mut slow = BURST;
    loop {
        let last = window_started_by.elapsed() > Duration::from_secs(1);
        expect_status("GET", format!("{base}/api/later?delay_ms=400"), 200).await;
        slow += 1;
        if last {
            break;
        }
    }
    counted(&proxy, slow).await;
    let out = stop(proxy, lines);
    let field = |line: &str, key: &str| -> String {
        line.split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {line}"))
            .to_string()
    };
    let mut suppressed = 0;
    for line in &out {
        assert!(line.starts_with("ts="), "{line}");
        assert_eq!(field(line, "log"), "slow_request", "{line}");
        assert_eq!(field(line, "route"), "api", "{line}");
        suppressed += field(line, "suppressed").parse::<usize>().unwrap();
    }
    assert!(
        suppressed > 0,
        "{BURST} slow requests at once, none left out: {out:#?}"
    );
    assert!(
        out.last().unwrap().contains("path=\"/api/later\""),
        "{out:#?}"
    );
    assert_eq!(
        out.len() + suppressed,
        slow,
        "every slow request is either logged or counted: {out:#?}"
    );
}
