//! Latency metrics and the admin API, end to end: a real proxy, real backends, a real client,
//! and the `/metrics` exposition read back through a Prometheus text parser.
//!
//! Every test runs its own proxy, so counts are exact. The `logging` hook records a request
//! after its response has left, so tests first wait until the expected number of requests is
//! counted, then assert every value exactly.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http::Method;
use prometheus_parse::{Sample, Scrape, Value as PromValue};
use serde_json::Value;
use support::{client, free_port, server_section, BinaryProxy, Origin, Proxy};

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
// The exposition: strict validation, then prometheus-parse.
// ---------------------------------------------------------------------------------------------

/// Label pairs, sorted by name.
type Labels = Vec<(String, String)>;

/// One scrape of `/metrics`, validated and parsed.
struct Exposition {
    text: String,
    /// As prometheus-parse reads it.
    samples: Vec<Sample>,
    /// Every sample line as the strict validator decoded it: name, sorted labels (escapes
    /// resolved, `le` included), value.
    decoded: Vec<(String, Labels, f64)>,
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// A sample value as the format allows it: a Go float, including `+Inf`, `-Inf` and `NaN`.
fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s
            .parse::<f64>()
            .map_err(|e| format!("bad value {s:?}: {e}")),
    }
}

/// One sample line: `name{label="value",...} value [timestamp]`, with the format's escapes
/// (`\\`, `\"`, `\n`) in label values.
fn parse_sample_line(line: &str) -> Result<(String, Labels, f64), String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| "no value after the metric name".to_string())?;
    let name = &line[..name_end];
    if !valid_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = r.strip_prefix('}') {
                r = after;
                break;
            }
            let eq = r.find('=').ok_or("label without '='")?;
            let lname = &r[..eq];
            if !valid_label_name(lname) {
                return Err(format!("invalid label name {lname:?}"));
            }
            r = r[eq + 1..]
                .strip_prefix('"')
                .ok_or("label value not quoted")?;
            let mut value = String::new();
            let mut chars = r.char_indices();
            let end = loop {
                match chars.next() {
                    None => return Err("unterminated label value".into()),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some((_, c)) => value.push(c),
                }
            };
            if labels.iter().any(|(n, _)| n == lname) {
                return Err(format!("label {lname} repeated"));
            }
            labels.push((lname.to_string(), value));
            r = &r[end + 1..];
            if let Some(after) = r.strip_prefix(',') {
                r = after;
            } else if !r.starts_with('}') {
                return Err("expected ',' or '}' after a label".into());
            }
        }
        rest = r;
    }
    let rest = rest
        .strip_prefix(' ')
        .ok_or("expected a space before the value")?;
    let mut fields = rest.split(' ');
    let value = parse_value(fields.next().ok_or("no value")?)?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|e| format!("bad timestamp {ts:?}: {e}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing fields".into());
    }
    Ok((name.to_string(), labels, value))
}

/// Validates `text` against the text exposition format 0.0.4 line by line (any malformed line,
/// sample outside its declared family, duplicate series or inconsistent histogram fails the
/// test), then parses it with `prometheus-parse` and checks that the parser saw every series.
fn parse_exposition(text: &str) -> Exposition {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut current: Option<(String, String)> = None;
    let mut series_seen = HashSet::new();
    let mut plain_samples = 0usize;
    let mut decoded = Vec::new();
    // Histogram series (family, labels without `le`) → [(le, count)], plus `_count` values.
    let mut buckets: BTreeMap<(String, Labels), Vec<(f64, f64)>> = BTreeMap::new();
    let mut counts: BTreeMap<(String, Labels), f64> = BTreeMap::new();
    assert!(
        text.ends_with('\n'),
        "the exposition must end with a newline"
    );
    for (n, line) in text.lines().enumerate() {
        let fail = |why: &str| -> ! { panic!("/metrics line {}: {why}: {line:?}", n + 1) };
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, ' ');
            match parts.next() {
                Some("HELP") => {
                    let name = parts.next().unwrap_or("");
                    if !valid_metric_name(name) {
                        fail("HELP of an invalid metric name");
                    }
                }
                Some("TYPE") => {
                    let name = parts.next().unwrap_or("");
                    let ty = parts.next().unwrap_or("");
                    if !valid_metric_name(name) {
                        fail("TYPE of an invalid metric name");
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty) {
                        fail("unknown metric type");
                    }
                    if types.insert(name.to_string(), ty.to_string()).is_some() {
                        fail("second TYPE line for the same family");
                    }
                    current = Some((name.to_string(), ty.to_string()));
                }
                _ => {}
            }
            continue;
        }
        let (name, mut labels, value) = parse_sample_line(line).unwrap_or_else(|e| fail(&e));
        let Some((family, ty)) = current.as_ref() else {
            fail("sample before any TYPE line")
        };
        let belongs = match ty.as_str() {
            "histogram" => [
                format!("{family}_bucket"),
                format!("{family}_sum"),
                format!("{family}_count"),
            ]
            .contains(&name),
            "summary" => {
                name == *family
                    || name == format!("{family}_sum")
                    || name == format!("{family}_count")
            }
            _ => name == *family,
        };
        if !belongs {
            fail(&format!("sample outside its family {family} ({ty})"));
        }
        labels.sort();
        if !series_seen.insert((name.clone(), labels.clone())) {
            fail("duplicate series");
        }
        decoded.push((name.clone(), labels.clone(), value));
        if ty == "histogram" {
            let key = |labels: Labels| (family.clone(), labels);
            if name.ends_with("_bucket") {
                let le = labels
                    .iter()
                    .position(|(k, _)| k == "le")
                    .unwrap_or_else(|| fail("bucket without le"));
                let (_, bound) = labels.remove(le);
                let bound = parse_value(&bound).unwrap_or_else(|e| fail(&e));
                buckets.entry(key(labels)).or_default().push((bound, value));
            } else {
                if name.ends_with("_count") {
                    counts.insert(key(labels), value);
                }
                plain_samples += 1;
            }
        } else {
            plain_samples += 1;
        }
    }
    for (series, bs) in &buckets {
        for pair in bs.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "{series:?}: le bounds not increasing: {bs:?}"
            );
            assert!(
                pair[0].1 <= pair[1].1,
                "{series:?}: cumulative counts decrease: {bs:?}"
            );
        }
        let last = bs.last().expect("at least one bucket");
        assert_eq!(last.0, f64::INFINITY, "{series:?}: no +Inf bucket");
        assert_eq!(
            Some(&last.1),
            counts.get(series),
            "{series:?}: +Inf bucket differs from _count"
        );
    }

    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("prometheus-parse rejected /metrics: {e}\n{text}"));
    assert_eq!(
        scrape.samples.len(),
        plain_samples + buckets.len(),
        "prometheus-parse did not see every series of:\n{text}"
    );
    Exposition {
        text: text.to_string(),
        samples: scrape.samples,
        decoded,
    }
}

fn labels_are(sample: &Sample, want: &[(&str, &str)]) -> bool {
    sample.labels.len() == want.len() && want.iter().all(|(k, v)| sample.labels.get(k) == Some(*v))
}

impl Exposition {
    /// The value of the one counter, gauge or untyped series with exactly `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.metric == name && labels_are(s, labels))
            .map(|s| match &s.value {
                PromValue::Counter(v) | PromValue::Gauge(v) | PromValue::Untyped(v) => *v,
                other => panic!("{name} is not a scalar: {other:?}"),
            })
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no series {name}{labels:?} in:\n{}", self.text))
    }

    /// Every series of the scalar family `name`: labels → value.
    fn series(&self, name: &str) -> BTreeMap<Labels, f64> {
        self.samples
            .iter()
            .filter(|s| s.metric == name)
            .map(|s| {
                let mut labels: Labels = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                labels.sort();
                let v = match &s.value {
                    PromValue::Counter(v) | PromValue::Gauge(v) | PromValue::Untyped(v) => *v,
                    other => panic!("{name} is not a scalar: {other:?}"),
                };
                (labels, v)
            })
            .collect()
    }

    /// The cumulative buckets (le, count) of the histogram series `name{labels}`, by le.
    fn buckets(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let sample = self
            .samples
            .iter()
            .find(|s| s.metric == name && labels_are(s, labels))
            .unwrap_or_else(|| panic!("no histogram {name}{labels:?} in:\n{}", self.text));
        let PromValue::Histogram(h) = &sample.value else {
            panic!("{name} is not a histogram")
        };
        let mut out: Vec<(f64, f64)> = h.iter().map(|b| (b.less_than, b.count)).collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }

    /// The count of the bucket with upper bound `le`.
    fn bucket(&self, name: &str, labels: &[(&str, &str)], le: f64) -> f64 {
        self.buckets(name, labels)
            .iter()
            .find(|(bound, _)| *bound == le)
            .unwrap_or_else(|| panic!("{name}{labels:?} has no bucket le={le}"))
            .1
    }

    fn total(&self, name: &str) -> f64 {
        self.series(name).values().sum()
    }

    /// Whether any series of any family carries `label="value"`.
    fn mentions(&self, label: &str, value: &str) -> bool {
        self.samples
            .iter()
            .any(|s| s.labels.get(label) == Some(value))
    }
}

/// `promtool check metrics` (Prometheus' own parser and linter) when it is installed.
fn promtool_check(text: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool not installed; skipping its check");
        return;
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn scrape_at(admin: std::net::SocketAddr) -> Exposition {
    let resp = client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()[http::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    parse_exposition(&resp.text().await.expect("body"))
}

/// Scrapes until `ready` holds (the logging hook runs after the response has left), or fails
/// after 5 s. Returns the scrape that satisfied it.
async fn scrape_when(
    admin: std::net::SocketAddr,
    what: &str,
    ready: impl Fn(&Exposition) -> bool,
) -> Exposition {
    let start = Instant::now();
    loop {
        let e = scrape_at(admin).await;
        if ready(&e) {
            return e;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}:\n{}",
            e.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn inflight_settled(e: &Exposition) -> bool {
    e.series("outrider_inflight_requests")
        .values()
        .all(|v| *v == 0.0)
}

/// Prometheus' `histogram_quantile` (promql/quantile.go `bucketQuantile`), on (le, cumulative
/// count) pairs sorted by le and ending with `+Inf`.
fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    let rank = q * total;
    let b = buckets[..buckets.len() - 1]
        .iter()
        .position(|(_, c)| *c >= rank)
        .unwrap_or(buckets.len() - 1);
    if b == buckets.len() - 1 {
        return Some(buckets[buckets.len() - 2].0);
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return Some(buckets[0].0);
    }
    let (start, below) = if b == 0 { (0.0, 0.0) } else { buckets[b - 1] };
    let (end, count) = buckets[b];
    Some(start + (end - start) * (rank - below) / (count - below))
}

// ---------------------------------------------------------------------------------------------
// Requests.
// ---------------------------------------------------------------------------------------------

async fn send(method: &str, url: String) -> reqwest::Response {
    client()
        .request(Method::from_bytes(method.as_bytes()).unwrap(), url)
        .send()
        .await
        .expect("request")
}

async fn expect_status(method: &str, url: String, status: u16) {
    let resp = send(method, url.clone()).await;
    assert_eq!(resp.status(), status, "{method} {url}");
    let _ = resp.bytes().await;
}

fn route(name: &str, upstream: &str, prefix: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\nupstream = \"{upstream}\"\nmatch = {{ path_prefix = \"{prefix}\" }}\n\n"
    )
}

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

// ---------------------------------------------------------------------------------------------
// Reload: removed names stop being exported, surviving ones keep their counts.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_route_removed_by_reload_stops_being_exported() {
    let keep = Origin::start();
    let old = Origin::start();
    let conf = |data: u16, admin: u16, with_old: bool| {
        let mut s = server_section(data, admin);
        s.push_str(&keep.upstream_toml("keepup"));
        if with_old {
            s.push_str(&old.upstream_toml("oldup"));
            s.push_str(&route("old", "oldup", "/old/"));
        }
        s.push_str(&route("keep", "keepup", "/keep/"));
        s
    };
    let proxy = BinaryProxy::spawn(|d, a| conf(d, a, true));
    let base = format!("http://{}", proxy.addr);
    for _ in 0..2 {
        expect_status("GET", format!("{base}/old/x"), 200).await;
    }
    for _ in 0..3 {
        expect_status("GET", format!("{base}/keep/x"), 200).await;
    }
    let m = scrape_when(proxy.admin, "5 requests counted", |e| {
        e.total("outrider_requests_total") == 5.0
    })
    .await;
    assert_eq!(
        m.get(
            "outrider_requests_total",
            &[("route", "old"), ("method", "GET"), ("status", "200")]
        ),
        2.0
    );
    assert!(m.mentions("upstream", "oldup"));

    std::fs::write(
        proxy.config_path(),
        conf(proxy.addr.port(), proxy.admin.port(), false),
    )
    .unwrap();
    let resp = proxy.post_reload().await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    // The file watcher may have applied the change first; the admin trigger reloads anyway.
    assert!(body["generation"].as_u64().unwrap() >= 2, "{body}");

    let m = scrape_at(proxy.admin).await;
    assert!(
        !m.mentions("route", "old"),
        "route old still exported:\n{}",
        m.text
    );
    assert!(
        !m.mentions("upstream", "oldup"),
        "upstream oldup still exported:\n{}",
        m.text
    );
    assert_eq!(
        m.series("outrider_requests_total"),
        BTreeMap::from([(
            vec![
                ("method".to_string(), "GET".to_string()),
                ("route".to_string(), "keep".to_string()),
                ("status".to_string(), "200".to_string()),
            ],
            3.0
        )])
    );
    assert_eq!(
        m.get(
            "outrider_request_duration_seconds_count",
            &[("route", "keep")]
        ),
        3.0
    );
    assert_eq!(
        m.get(
            "outrider_upstream_requests_total",
            &[("upstream", "keepup"), ("outcome", "ok")]
        ),
        3.0
    );
    assert_eq!(
        m.get(
            "outrider_upstream_duration_seconds_count",
            &[("upstream", "keepup")]
        ),
        3.0
    );
    let generation = m.get("outrider_config_generation", &[]);
    assert!(generation >= 2.0);
    assert_eq!(
        m.get("outrider_config_reloads_total", &[("result", "success")]),
        generation - 1.0
    );
    assert_eq!(
        m.get("outrider_config_reloads_total", &[("result", "failure")]),
        0.0
    );

    // The surviving route keeps counting on the same series.
    expect_status("GET", format!("{base}/keep/y"), 200).await;
    let m = scrape_when(proxy.admin, "the 4th keep request", |e| {
        e.total("outrider_requests_total") == 4.0
    })
    .await;
    assert_eq!(
        m.get(
            "outrider_request_duration_seconds_count",
            &[("route", "keep")]
        ),
        4.0
    );
    // The removed route no longer matches anything.
    expect_status("GET", format!("{base}/old/x"), 404).await;
}

// ---------------------------------------------------------------------------------------------
// /stats against /metrics.
// ---------------------------------------------------------------------------------------------

fn approx(a: f64, b: f64) -> bool {
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

// ---------------------------------------------------------------------------------------------
// The admin plane.
// ---------------------------------------------------------------------------------------------

fn token_conf(origin: &Origin, data: u16, admin: u16) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{data}\"\nthreads = 1\ngrace_period = \"1s\"\n\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"t0k\"\n\n[log]\nlevel = \"warn\"\n\n{}",
        origin.upstream_toml("app")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_plane_auth_methods_and_limits() {
    let origin = Origin::start();
    let proxy = BinaryProxy::spawn(|d, a| token_conf(&origin, d, a));
    let admin = |p: &str| format!("http://{}{p}", proxy.admin);
    let c = client();

    // Mutating endpoints need the bearer token.
    let resp = c.post(admin("/reload")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()[http::header::WWW_AUTHENTICATE], "Bearer");
    for auth in [
        "Bearer nope",
        "Bearer t0k2",
        "Basic dDBrOg==",
        "t0k",
        "Bearer ",
    ] {
        let resp = c
            .post(admin("/reload"))
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "Authorization: {auth}");
        assert_eq!(resp.headers()[http::header::WWW_AUTHENTICATE], "Bearer");
    }
    let resp = c
        .post(admin("/reload"))
        .bearer_auth("t0k")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["generation"], 2, "{body}");
    assert_eq!(body["result"], "applied", "{body}");

    // Reading endpoints need none.
    for path in ["/metrics", "/healthz", "/readyz", "/config", "/stats"] {
        let resp = c.get(admin(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
    }
    let resp = c.get(admin("/metrics")).send().await.unwrap();
    let ct = resp.headers()[http::header::CONTENT_TYPE].to_str().unwrap();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let m = parse_exposition(&resp.text().await.unwrap());
    assert_eq!(m.get("outrider_config_generation", &[]), 2.0);
    // The token never leaves through /config.
    let config = c
        .get(admin("/config"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!config.contains("t0k"), "{config}");
    assert!(config.contains("<redacted>"), "{config}");
    // HEAD is answered wherever GET is.
    let resp = c.head(admin("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    // Unknown paths.
    for path in ["/nope", "/metrics/", "/reload/x", "/"] {
        let resp = c.get(admin(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "GET {path}");
    }
    // Known paths, wrong method: 405 with Allow, before any token check.
    for (method, path, allow) in [
        ("GET", "/reload", "POST"),
        ("POST", "/metrics", "GET, HEAD"),
        ("DELETE", "/stats", "GET, HEAD"),
        ("PUT", "/cache/purge", "POST"),
    ] {
        let resp = send(method, admin(path)).await;
        assert_eq!(resp.status(), 405, "{method} {path}");
        assert_eq!(
            resp.headers()[http::header::ALLOW],
            allow,
            "{method} {path}"
        );
    }

    // Bodies up to 64 KiB are read; one byte more is refused.
    let resp = c
        .post(admin("/reload"))
        .bearer_auth("t0k")
        .body(vec![b'x'; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = c
        .post(admin("/reload"))
        .bearer_auth("t0k")
        .body(vec![b'x'; 64 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // A much larger body is answered 413 as soon as the limit is passed, while the client is
    // still sending. hyper's client gives up on the failed write instead of reading that early
    // answer, so a raw client reads it (as curl does).
    let addr = proxy.admin;
    let head = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let len = 1024 * 1024;
        let request = format!(
            "POST /reload HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer t0k\r\nContent-Length: {len}\r\n\r\n"
        );
        s.write_all(request.as_bytes()).unwrap();
        // The server may stop reading (and close) once it has answered.
        let _ = s.write_all(&vec![b'x'; len]);
        let mut answer = [0u8; 64];
        let n = s.read(&mut answer).unwrap_or(0);
        String::from_utf8_lossy(&answer[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 413"), "{head:?}");

    // The cache and breaker endpoints answer; only purge needs the token.
    let resp = c.get(admin("/cache")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET /cache");
    let resp = c
        .post(admin("/cache/purge"))
        .bearer_auth("t0k")
        .body(r#"{"all": true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "POST /cache/purge with the token");
    let resp = c.get(admin("/breakers")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "GET /breakers needs no token");
    let resp = c.post(admin("/breakers")).send().await.unwrap();
    assert_eq!(resp.status(), 405, "POST /breakers");
    let resp = c.post(admin("/cache/purge")).send().await.unwrap();
    assert_eq!(resp.status(), 401, "purge is mutating");
}

/// RFC 9110 §11.1: the authentication scheme is a case-insensitive token, so
/// `Authorization: bearer t0k` carries the right credentials.
#[tokio::test(flavor = "multi_thread")]
async fn bearer_scheme_is_case_insensitive() {
    let origin = Origin::start();
    let proxy = BinaryProxy::spawn(|d, a| token_conf(&origin, d, a));
    for auth in ["bearer t0k", "BEARER t0k"] {
        let resp = client()
            .post(format!("http://{}/reload", proxy.admin))
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "Authorization: {auth}");
    }
}

// ---------------------------------------------------------------------------------------------
// Server-Timing.
// ---------------------------------------------------------------------------------------------

/// The `dur` of the `name` metric in a Server-Timing value.
fn timing(header: &str, name: &str) -> f64 {
    header
        .split(',')
        .map(str::trim)
        .find_map(|m| {
            let mut params = m.split(';').map(str::trim);
            (params.next() == Some(name))
                .then(|| params.find_map(|p| p.strip_prefix("dur=")))
                .flatten()
        })
        .unwrap_or_else(|| panic!("no {name};dur= in {header:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("{name} dur in {header:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn server_timing_only_where_the_route_asks() {
    let origin = Origin::start();
    let proxy = Proxy::start(&format!(
        "{}[[routes]]\nname = \"timed\"\nserver_timing = true\nmatch = {{ path_prefix = \"/timed/\" }}\n\n{}",
        origin.upstream_toml("app"),
        route("plain", "app", "/plain/")
    ));
    let resp = send("GET", proxy.url("/timed/x?delay_ms=60")).await;
    assert_eq!(resp.status(), 200);
    let values: Vec<&str> = resp
        .headers()
        .get_all("server-timing")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(values.len(), 1, "{values:?}");
    let upstream = timing(values[0], "upstream");
    let proxy_dur = timing(values[0], "proxy");
    assert!(
        upstream >= 60.0,
        "upstream;dur={upstream} < the origin's 60 ms"
    );
    assert!(upstream < 5000.0, "upstream;dur={upstream}");
    assert!((0.0..1000.0).contains(&proxy_dur), "proxy;dur={proxy_dur}");

    let resp = send("GET", proxy.url("/plain/x?delay_ms=10")).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("server-timing").is_none(),
        "{:?}",
        resp.headers()
    );
}

// ---------------------------------------------------------------------------------------------
// The access log (the real binary's stdout).
// ---------------------------------------------------------------------------------------------

fn access_log_conf(origin: &Origin, dead: u16, format: &str, data: u16, admin: u16) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{data}\"\nthreads = 2\ngrace_period = \"1s\"\n\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
         [log]\nlevel = \"warn\"\nformat = \"{format}\"\naccess_log = true\n\n\
         {}[upstreams.dead]\nendpoints = [\"127.0.0.1:{dead}\"]\n\n{}{}",
        origin.upstream_toml("app"),
        route("api", "app", "/api/"),
        route("gone", "dead", "/gone/")
    )
}

/// The requests of the access-log tests: (method, path, status, route, upstream).
const LOGGED: [(&str, &str, u16, &str, &str); 5] = [
    ("GET", "/api/a?size=100", 200, "api", "app"),
    ("GET", "/api/b?status=404", 404, "api", "app"),
    ("POST", "/api/c", 200, "api", "app"),
    ("GET", "/unrouted", 404, "-", "-"),
    ("GET", "/gone/x", 502, "gone", "dead"),
];

/// Runs the binary with the access log on, sends [`LOGGED`], stops it with SIGTERM and returns
/// everything it wrote to stdout.
async fn access_log_of(format: &str) -> String {
    let origin = Origin::start();
    let dead = free_port();
    let mut proxy = BinaryProxy::spawn(|d, a| access_log_conf(&origin, dead, format, d, a));
    let mut stdout = proxy.child.stdout.take().expect("piped stdout");
    // Drain stdout concurrently so a full pipe can never stall the proxy.
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    for (method, path, status, _, _) in LOGGED {
        expect_status(method, format!("http://{}{path}", proxy.addr), status).await;
    }
    // The routed requests are counted once their logging hook ran.
    scrape_when(proxy.admin, "4 routed requests counted", |e| {
        e.total("outrider_requests_total") == 4.0 && inflight_settled(e)
    })
    .await;
    proxy.signal("TERM");
    proxy.wait_exit(Duration::from_secs(10));
    reader.join().expect("stdout reader")
}

#[tokio::test(flavor = "multi_thread")]
async fn json_access_log_has_one_line_per_request() {
    let out = access_log_of("json").await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), LOGGED.len(), "{out}");
    for (line, (method, path, status, route, upstream)) in lines.iter().zip(LOGGED) {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(v["method"], method, "{line}");
        assert_eq!(v["path"], path.split('?').next().unwrap(), "{line}");
        assert_eq!(v["route"], route, "{line}");
        assert_eq!(v["upstream"], upstream, "{line}");
        assert_eq!(v["status"], status, "{line}");
        let duration = v["duration_ms"].as_f64().expect("duration_ms is a number");
        assert!((0.0..10_000.0).contains(&duration), "{line}");
        assert!(v["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");
        assert!(v["bytes_sent"].as_u64().is_some(), "{line}");
        match (route, status) {
            ("-", _) => {
                assert_eq!(v["endpoint"], "-", "{line}");
                assert!(v["upstream_ms"].is_null(), "{line}");
                assert_eq!(v["error"], "-", "{line}");
            }
            (_, 502) => {
                assert_eq!(v["error"], "connect_error", "{line}");
                assert!(
                    v["upstream_ms"].is_null(),
                    "no response header came: {line}"
                );
            }
            _ => {
                assert_eq!(v["error"], "-", "{line}");
                let up = v["upstream_ms"].as_f64().expect("upstream_ms");
                assert!(up >= 0.0 && up <= duration, "{line}");
            }
        }
    }
    let first: Value = serde_json::from_str(lines[0]).unwrap();
    assert!(first["bytes_sent"].as_u64().unwrap() >= 100, "{}", lines[0]);
}

/// Splits a logfmt line into key → value (values may be double-quoted with escapes).
fn logfmt(line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .unwrap_or_else(|| panic!("no '=' in {rest:?}"));
        let key = &rest[..eq];
        assert!(
            !key.is_empty() && !key.contains(' '),
            "bad key {key:?} in {line}"
        );
        rest = &rest[eq + 1..];
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => v.push(chars.next().expect("escape").1),
                    Some((_, c)) => v.push(c),
                    None => panic!("unterminated quote in {line}"),
                }
            };
            value = v;
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            value = rest[..end].to_string();
            rest = &rest[end..];
        }
        assert!(
            out.insert(key.to_string(), value).is_none(),
            "{key} twice in {line}"
        );
        rest = rest.trim_start();
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn text_access_log_is_logfmt() {
    let out = access_log_of("text").await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), LOGGED.len(), "{out}");
    for (line, (method, path, status, route, upstream)) in lines.iter().zip(LOGGED) {
        let kv = logfmt(line);
        assert_eq!(kv["method"], method, "{line}");
        assert_eq!(kv["path"], path.split('?').next().unwrap(), "{line}");
        assert_eq!(kv["route"], route, "{line}");
        assert_eq!(kv["upstream"], upstream, "{line}");
        assert_eq!(kv["status"], status.to_string(), "{line}");
        let duration: f64 = kv["duration_ms"].parse().expect("duration_ms");
        assert!((0.0..10_000.0).contains(&duration), "{line}");
        for key in ["ts", "endpoint", "upstream_ms", "bytes_sent", "error"] {
            assert!(kv.contains_key(key), "{key} missing: {line}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The validator itself must reject what Prometheus would.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_exposition_validator_rejects_malformed_text() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n";
    assert_eq!(parse_exposition(good).get("a_total", &[("x", "1")]), 3.0);
    for bad in [
        "# TYPE a_total counter\na_total{x=\"1} 3\n",
        "# TYPE a_total counter\na_total{x=1} 3\n",
        "# TYPE a_total counter\na_total three\n",
        "# TYPE a_total counter\na_total{x=\"1\"} 3\na_total{x=\"1\"} 4\n",
        "# TYPE a_total counter\nb_total 3\n",
        "a_total 3\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",
        "# TYPE a_total counter\na_total 3",
    ] {
        let result = std::panic::catch_unwind(|| parse_exposition(bad));
        assert!(result.is_err(), "accepted:\n{bad}");
    }
    let h = parse_exposition(
        "# TYPE h histogram\nh_bucket{le=\"0.1\"} 10\nh_bucket{le=\"0.2\"} 20\nh_bucket{le=\"+Inf\"} 20\nh_sum 3\nh_count 20\n",
    );
    let b = h.buckets("h", &[]);
    assert_eq!(histogram_quantile(0.5, &b), Some(0.1));
    assert!(approx(histogram_quantile(0.75, &b).unwrap(), 0.15));
    // Past the last finite bound, Prometheus answers that bound.
    let over = [(0.1, 0.0), (f64::INFINITY, 4.0)];
    assert_eq!(histogram_quantile(0.5, &over), Some(0.1));
}
