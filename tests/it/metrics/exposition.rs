//! The exposition: strict validation, then prometheus-parse; and the validator's own test.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prometheus_parse::{Sample, Scrape, Value as PromValue};

use crate::metrics::stats::approx;
use crate::support::client;

// ---------------------------------------------------------------------------------------------
// The exposition: strict validation, then prometheus-parse.
// ---------------------------------------------------------------------------------------------

/// Label pairs, sorted by name.
pub(crate) type Labels = Vec<(String, String)>;

/// One scrape of `/metrics`, validated and parsed.
pub(crate) struct Exposition {
    pub(crate) text: String,
    /// As prometheus-parse reads it.
    samples: Vec<Sample>,
    /// Every sample line as the strict validator decoded it: name, sorted labels (escapes
    /// resolved, `le` included), value.
    pub(crate) decoded: Vec<(String, Labels, f64)>,
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
pub(crate) fn parse_exposition(text: &str) -> Exposition {
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
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.metric == name && labels_are(s, labels))
            .map(|s| match &s.value {
                PromValue::Counter(v) | PromValue::Gauge(v) | PromValue::Untyped(v) => *v,
                other => panic!("{name} is not a scalar: {other:?}"),
            })
    }

    pub(crate) fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no series {name}{labels:?} in:\n{}", self.text))
    }

    /// Every series of the scalar family `name`: labels → value.
    pub(crate) fn series(&self, name: &str) -> BTreeMap<Labels, f64> {
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
    pub(crate) fn buckets(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
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
    pub(crate) fn bucket(&self, name: &str, labels: &[(&str, &str)], le: f64) -> f64 {
        self.buckets(name, labels)
            .iter()
            .find(|(bound, _)| *bound == le)
            .unwrap_or_else(|| panic!("{name}{labels:?} has no bucket le={le}"))
            .1
    }

    pub(crate) fn total(&self, name: &str) -> f64 {
        self.series(name).values().sum()
    }

    /// Whether any series of any family carries `label="value"`.
    pub(crate) fn mentions(&self, label: &str, value: &str) -> bool {
        self.samples
            .iter()
            .any(|s| s.labels.get(label) == Some(value))
    }
}

/// `promtool check metrics` (Prometheus' own parser and linter) when it is installed.
pub(crate) fn promtool_check(text: &str) {
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

pub(crate) async fn scrape_at(admin: std::net::SocketAddr) -> Exposition {
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
pub(crate) async fn scrape_when(
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

pub(crate) fn inflight_settled(e: &Exposition) -> bool {
    e.series("outrider_inflight_requests")
        .values()
        .all(|v| *v == 0.0)
}

/// Prometheus' `histogram_quantile` (promql/quantile.go `bucketQuantile`), on (le, cumulative
/// count) pairs sorted by le and ending with `+Inf`.
pub(crate) fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
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
