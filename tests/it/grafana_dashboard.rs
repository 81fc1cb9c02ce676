//! `conf/grafana/outrider-dashboard.json` against what the binary exports.
//!
//! Prometheus answers a query on a metric or label that does not exist with an empty result,
//! not an error, so a renamed family or label would leave a blank panel that nothing else
//! notices. The exported names are read from `src/metrics/` at test time, so a rename there
//! fails here until the dashboard follows.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::Value;

const DASHBOARD: &str = "conf/grafana/outrider-dashboard.json";

/// Classic histograms: Prometheus stores only the suffixed series, never the family name.
const HISTOGRAMS: [&str; 3] = [
    "outrider_request_duration_seconds",
    "outrider_upstream_duration_seconds",
    "outrider_cache_shared_duration_seconds",
];
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// From the standard process collector, which has no `outrider_` literal to scan.
const PROCESS: [&str; 2] = ["process_resident_memory_bytes", "process_cpu_seconds_total"];

/// Each family's labels as `src/metrics/` registers them (the README's "Metrics" table).
const LABELS: &[(&str, &[&str])] = &[
    ("outrider_requests_total", &["route", "method", "status"]),
    ("outrider_request_duration_seconds", &["route"]),
    ("outrider_upstream_requests_total", &["upstream", "outcome"]),
    ("outrider_upstream_duration_seconds", &["upstream"]),
    ("outrider_inflight_requests", &["upstream"]),
    ("outrider_breaker_state", &["upstream"]),
    ("outrider_breaker_transitions_total", &["upstream", "to"]),
    ("outrider_rate_limited_total", &["route"]),
    (
        "outrider_health_check_total",
        &["upstream", "endpoint", "result"],
    ),
    ("outrider_endpoint_healthy", &["upstream", "endpoint"]),
    ("outrider_upstream_retries_total", &["upstream", "reason"]),
    ("outrider_upstream_retries_refused_total", &["upstream"]),
    (
        "outrider_compression_responses_total",
        &["route", "algorithm"],
    ),
    ("outrider_compression_bytes_in_total", &["algorithm"]),
    ("outrider_compression_bytes_out_total", &["algorithm"]),
    ("outrider_conditional_responses_total", &["route", "status"]),
    ("outrider_cache_lookups_total", &["route", "result"]),
    ("outrider_cache_objects", &[]),
    ("outrider_cache_size_bytes", &[]),
    ("outrider_cache_evictions_total", &[]),
    ("outrider_cache_purged_total", &[]),
    ("outrider_cache_shared_requests_total", &["op", "result"]),
    ("outrider_cache_shared_duration_seconds", &["op"]),
    ("outrider_cache_shared_up", &[]),
    ("outrider_cache_shared_purges_received_total", &[]),
    ("outrider_cache_warm_fetches_total", &["result"]),
    ("outrider_config_reloads_total", &["result"]),
    ("outrider_config_last_reload_successful", &[]),
    ("outrider_config_generation", &[]),
];

/// Series recorded by the rules `outrider rules` writes (the "Objectives" row needs them
/// loaded), with their labels; `recorded_series_come_from_the_shipped_rules` checks them
/// against `conf/prometheus/outrider-rules.yaml`. They carry no target labels: the rules sum
/// them away.
const RECORDED: &[(&str, &[&str])] = &[
    ("outrider:route_error_ratio:rate1h", &["route"]),
    ("outrider:route_error_ratio:rate3d", &["route"]),
    ("outrider:route_slow_ratio:rate1h", &["route"]),
    ("outrider:route_slow_ratio:rate3d", &["route"]),
    ("outrider:route_slo_objective", &["route", "slo"]),
];

/// Prometheus attaches these to every series it scrapes; the dashboard filters on `job`.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// One panel at least must chart each of these.
const REQUIRED: [&str; 9] = [
    "outrider_requests_total",
    "outrider_request_duration_seconds_bucket",
    "outrider_upstream_duration_seconds_bucket",
    "outrider_cache_lookups_total",
    "outrider_cache_size_bytes",
    "outrider_compression_bytes_in_total",
    "outrider_breaker_state",
    "outrider_breaker_transitions_total",
    "outrider_config_reloads_total",
];

const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const AGGREGATORS: [&str; 14] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const KEYWORDS: [&str; 8] = [
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
];

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn dashboard() -> Value {
    let path = repo_file(DASHBOARD);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

/// Every family name written as a whole string literal in `src/metrics/*.rs`.
fn exported_families() -> HashSet<String> {
    let literal = Regex::new(r#""(outrider_[a-z0-9_]+)""#).unwrap();
    let mut names = HashSet::new();
    for entry in std::fs::read_dir(repo_file("src/metrics")).expect("src/metrics") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            names.extend(literal.captures_iter(&text).map(|c| c[1].to_string()));
        }
    }
    // A scan that finds nothing would let every later check pass vacuously.
    assert!(
        names.contains("outrider_requests_total") && names.contains("outrider_cache_objects"),
        "the scan of src/metrics/ found {names:?}"
    );
    names
}

/// Rows and the panels inside them (a collapsed row holds its panels in `panels`).
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in panels.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    assert!(!out.is_empty(), "the dashboard has no panels");
    out
}

fn is_row(panel: &Value) -> bool {
    panel["type"] == "row"
}

fn describe(panel: &Value) -> String {
    format!("panel {} {}", panel["id"], panel["title"])
}

struct Query {
    place: String,
    expr: String,
}

fn target_queries(dashboard: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for panel in all_panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push(Query {
                    place: format!("{} target {}", describe(panel), target["refId"]),
                    expr: expr.to_string(),
                });
            }
        }
    }
    out
}

/// The query variables' queries, `label_values(EXPR, LABEL)` rewritten as the equivalent
/// `group by (LABEL) (EXPR)` so that the label is checked like any grouping.
fn variable_queries(dashboard: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for var in variables(dashboard) {
        if var["type"] != "query" {
            continue;
        }
        // Grafana stores the query as a string, or as an object since the query editor.
        let query = var["query"]
            .as_str()
            .or_else(|| var["query"]["query"].as_str())
            .unwrap_or_default();
        let expr = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(','))
            .map(|(expr, label)| format!("group by ({}) ({expr})", label.trim()))
            .unwrap_or_else(|| query.to_string());
        out.push(Query {
            place: format!("variable {}", var["name"]),
            expr,
        });
    }
    out
}

fn variables(dashboard: &Value) -> &[Value] {
    dashboard["templating"]["list"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

#[derive(Debug, PartialEq)]
enum Tok {
    Ident(String),
    Open,
    Close,
    LBrace,
    RBrace,
    /// Strings, numbers, durations, range selectors, operators, commas, Grafana variables.
    Other,
}

fn lex(expr: &str) -> Vec<Tok> {
    let chars: Vec<char> = expr.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        i += 1;
        match c {
            '(' => toks.push(Tok::Open),
            ')' => toks.push(Tok::Close),
            '{' => toks.push(Tok::LBrace),
            '}' => toks.push(Tok::RBrace),
            '"' | '\'' | '`' => {
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                toks.push(Tok::Other);
            }
            // Range and subquery durations (`[$__rate_interval]`) name nothing to check.
            '[' => {
                while i < chars.len() && chars[i] != ']' {
                    i += 1;
                }
                i += 1;
                toks.push(Tok::Other);
            }
            // `${route}`, whose braces are not a matcher list.
            '$' if chars.get(i) == Some(&'{') => {
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                i += 1;
                toks.push(Tok::Other);
            }
            // Numbers, durations (`5m`) and `$route`: their tails are not identifiers.
            c if c.is_ascii_digit() || c == '.' || c == '$' => {
                while i < chars.len() && (ident(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
                toks.push(Tok::Other);
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                while i < chars.len() && ident(chars[i]) {
                    i += 1;
                }
                toks.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            c if c.is_whitespace() => {}
            _ => toks.push(Tok::Other),
        }
    }
    toks
}

/// A metric selector: the metric name and the label names of its `{...}` matchers.
struct Selector {
    metric: String,
    labels: Vec<String>,
    at: usize,
}

/// A `by`/`without`/`on`/`ignoring`/`group_*` clause and the tokens it applies to.
struct Grouping {
    keyword: String,
    labels: Vec<String>,
    scope: Range<usize>,
}

#[derive(Default)]
struct Parsed {
    selectors: Vec<Selector>,
    groupings: Vec<Grouping>,
    errors: Vec<String>,
}

impl Parsed {
    fn in_scope<'a>(&'a self, g: &'a Grouping) -> impl Iterator<Item = &'a Selector> {
        self.selectors.iter().filter(|s| g.scope.contains(&s.at))
    }
}

/// Just enough PromQL to find the selectors and the label lists, and which selectors each
/// label list applies to.
fn parse(expr: &str) -> Parsed {
    let toks = lex(expr);
    let mut parsed = Parsed::default();
    let mut partner = vec![usize::MAX; toks.len()];
    let mut open = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Open => open.push(i),
            Tok::Close => match open.pop() {
                Some(o) => {
                    partner[o] = i;
                    partner[i] = o;
                }
                None => parsed.errors.push("unbalanced `)`".into()),
            },
            _ => {}
        }
    }
    if !open.is_empty() {
        parsed.errors.push("unbalanced `(`".into());
    }
    if !parsed.errors.is_empty() {
        return parsed;
    }
    let labels_in = |range: Range<usize>| -> Vec<String> {
        toks[range]
            .iter()
            .filter_map(|t| match t {
                Tok::Ident(l) => Some(l.clone()),
                _ => None,
            })
            .collect()
    };
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Ident(word) if GROUPING.contains(&word.as_str()) => {
                if toks.get(i + 1) != Some(&Tok::Open) {
                    // `group_left` may stand without a list; the others may not.
                    if !word.starts_with("group_") {
                        parsed.errors.push(format!("`{word}` without a label list"));
                    }
                    i += 1;
                    continue;
                }
                let close = partner[i + 1];
                let scope = match word.as_str() {
                    // An aggregation's clause sits before or after its parenthesised argument.
                    "by" | "without" if toks.get(close + 1) == Some(&Tok::Open) => {
                        close + 1..partner[close + 1]
                    }
                    "by" | "without" if i > 0 && toks[i - 1] == Tok::Close => partner[i - 1]..i,
                    "by" | "without" => {
                        parsed
                            .errors
                            .push(format!("`{word}` with no aggregation argument"));
                        0..0
                    }
                    // Vector matching: both operands, taken here as the whole expression.
                    _ => 0..toks.len(),
                };
                parsed.groupings.push(Grouping {
                    keyword: word.clone(),
                    labels: labels_in(i + 2..close),
                    scope,
                });
                i = close + 1;
            }
            Tok::Ident(word)
                if toks.get(i + 1) == Some(&Tok::Open)
                    || AGGREGATORS.contains(&word.as_str())
                    || KEYWORDS.contains(&word.as_str()) =>
            {
                i += 1;
            }
            Tok::Ident(metric) => {
                let at = i;
                let mut labels = Vec::new();
                i += 1;
                if toks.get(i) == Some(&Tok::LBrace) {
                    let end = toks[i..]
                        .iter()
                        .position(|t| *t == Tok::RBrace)
                        .map_or(toks.len(), |p| i + p);
                    labels = labels_in(i + 1..end);
                    i = end + 1;
                }
                parsed.selectors.push(Selector {
                    metric: metric.clone(),
                    labels,
                    at,
                });
            }
            // `{__name__=...}` would hide the metric name from the checks.
            Tok::LBrace => {
                parsed
                    .errors
                    .push("a selector without a metric name".into());
                i += 1;
            }
            _ => i += 1,
        }
    }
    parsed
}

/// The family a series name belongs to, or why the name is not one Outrider exports.
fn family<'a>(metric: &'a str, exported: &HashSet<String>) -> Result<&'a str, String> {
    if PROCESS.contains(&metric) || RECORDED.iter().any(|(r, _)| *r == metric) {
        return Ok(metric);
    }
    if HISTOGRAMS.contains(&metric) {
        return Err(format!(
            "`{metric}` is a histogram: query its _bucket, _sum or _count series"
        ));
    }
    if exported.contains(metric) {
        return Ok(metric);
    }
    for suffix in HISTOGRAM_SUFFIXES {
        if let Some(stem) = metric.strip_suffix(suffix) {
            if HISTOGRAMS.contains(&stem) && exported.contains(stem) {
                return Ok(stem);
            }
        }
    }
    Err(format!("`{metric}` is not a metric Outrider exports"))
}

fn allowed_labels(metric: &str, family: &str) -> Option<Vec<&'static str>> {
    if let Some((_, labels)) = RECORDED.iter().find(|(r, _)| *r == family) {
        return Some(labels.to_vec());
    }
    let own: &[&str] = if PROCESS.contains(&family) {
        &[]
    } else {
        LABELS.iter().find(|(f, _)| *f == family)?.1
    };
    let mut labels: Vec<&str> = TARGET_LABELS.iter().chain(own).copied().collect();
    if metric.ends_with("_bucket") && HISTOGRAMS.contains(&family) {
        labels.push("le");
    }
    Some(labels)
}

fn assert_none(what: &str, violations: Vec<String>) {
    assert!(
        violations.is_empty(),
        "{what}:\n  {}",
        violations.join("\n  ")
    );
}

#[test]
fn queries_use_only_exported_metrics() {
    let d = dashboard();
    let exported = exported_families();
    let mut violations = Vec::new();
    // A stale table would vouch for labels of a family that no longer exists.
    for (f, _) in LABELS {
        if !exported.contains(*f) {
            violations.push(format!("label table: `{f}` is not exported"));
        }
    }
    for q in target_queries(&d).iter().chain(&variable_queries(&d)) {
        let parsed = parse(&q.expr);
        for e in &parsed.errors {
            violations.push(format!("{}: {e}: {}", q.place, q.expr));
        }
        if parsed.selectors.is_empty() {
            violations.push(format!("{}: no metric: {}", q.place, q.expr));
        }
        for s in &parsed.selectors {
            if let Err(e) = family(&s.metric, &exported) {
                violations.push(format!("{}: {e}", q.place));
            }
        }
    }
    assert_none("queries on metrics Outrider does not export", violations);
}

#[test]
fn matchers_and_groupings_use_the_family_labels() {
    let d = dashboard();
    let exported = exported_families();
    let mut violations = Vec::new();
    let mut check = |place: &str, s: &Selector, label: &str, used_in: &str| {
        let Ok(fam) = family(&s.metric, &exported) else {
            return; // reported by queries_use_only_exported_metrics
        };
        match allowed_labels(&s.metric, fam) {
            None => violations.push(format!("{place}: no label table entry for `{fam}`")),
            Some(allowed) if !allowed.contains(&label) => violations.push(format!(
                "{place}: `{label}` in {used_in} is not a label of `{}` (it has {allowed:?})",
                s.metric
            )),
            Some(_) => {}
        }
    };
    for q in target_queries(&d).iter().chain(&variable_queries(&d)) {
        let parsed = parse(&q.expr);
        for s in &parsed.selectors {
            for label in &s.labels {
                check(&q.place, s, label, "a matcher");
            }
        }
        for g in &parsed.groupings {
            for s in parsed.in_scope(g) {
                for label in &g.labels {
                    check(&q.place, s, label, &format!("`{}`", g.keyword));
                }
            }
        }
    }
    assert_none("labels the metric does not have", violations);
}

#[test]
fn recorded_series_come_from_the_shipped_rules() {
    let rules = std::fs::read_to_string(repo_file("conf/prometheus/outrider-rules.yaml")).unwrap();
    for (name, _) in RECORDED {
        assert!(
            rules.contains(&format!("record: {name}\n"))
                || rules.contains(&format!("record: \"{name}\"\n")),
            "`{name}` is not recorded by conf/prometheus/outrider-rules.yaml"
        );
    }
}

#[test]
fn required_topics_are_charted() {
    let d = dashboard();
    let charted: HashSet<String> = target_queries(&d)
        .iter()
        .flat_map(|q| parse(&q.expr).selectors)
        .map(|s| s.metric)
        .collect();
    let missing: Vec<String> = REQUIRED
        .iter()
        .filter(|m| !charted.contains(**m))
        .map(|m| format!("no panel queries `{m}`"))
        .collect();
    assert_none("topics the dashboard must cover", missing);
}

#[test]
fn panel_ids_are_unique_and_datasources_are_the_variable() {
    let d = dashboard();
    // The datasource picked on import, rather than a uid that exists on one Grafana only.
    let is_variable =
        |ds: &Value| matches!(ds["uid"].as_str(), Some("${datasource}" | "$datasource"));
    let mut violations = Vec::new();
    match variables(&d).iter().find(|v| v["name"] == "datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        other => violations.push(format!(
            "no `datasource` variable of type datasource for prometheus: {other:?}"
        )),
    }
    for var in variables(&d).iter().filter(|v| v["type"] == "query") {
        if !is_variable(&var["datasource"]) {
            violations.push(format!(
                "variable {}: datasource {}",
                var["name"], var["datasource"]
            ));
        }
    }
    let mut seen = HashMap::new();
    for panel in all_panels(&d) {
        match panel["id"].as_u64() {
            None => violations.push(format!("{}: no numeric id", describe(panel))),
            Some(id) => {
                if let Some(first) = seen.insert(id, describe(panel)) {
                    violations.push(format!("id {id} used by {first} and {}", describe(panel)));
                }
            }
        }
        if !is_variable(&panel["datasource"]) {
            violations.push(format!(
                "{}: datasource {}",
                describe(panel),
                panel["datasource"]
            ));
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            if !target["datasource"].is_null() && !is_variable(&target["datasource"]) {
                violations.push(format!(
                    "{} target {}: datasource {}",
                    describe(panel),
                    target["refId"],
                    target["datasource"]
                ));
            }
        }
    }
    assert_none("panel ids and datasources", violations);
}

#[test]
fn every_panel_queries_something_and_says_what() {
    let d = dashboard();
    let mut violations = Vec::new();
    for panel in all_panels(&d).into_iter().filter(|p| !is_row(p)) {
        let exprs = panel["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()))
            .count();
        if exprs == 0 {
            violations.push(format!("{}: no query", describe(panel)));
        }
        if panel["description"]
            .as_str()
            .is_none_or(|s| s.trim().is_empty())
        {
            violations.push(format!("{}: no description", describe(panel)));
        }
    }
    assert_none("panels", violations);
}

/// The checks above pass vacuously on whatever the parser misses, so it is pinned here on the
/// shapes the dashboard uses.
#[test]
fn parser_finds_selectors_labels_and_scopes() {
    let p = parse(
        r#"histogram_quantile(0.9, sum by (route, le) (rate(a_bucket{job=~"$job",route=~"${route}"}[$__rate_interval]))) / on (job) sum(rate(b{x="}"}[5m])) without (y)"#,
    );
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    let found: Vec<(&str, Vec<&str>)> = p
        .selectors
        .iter()
        .map(|s| (&*s.metric, s.labels.iter().map(|l| &**l).collect()))
        .collect();
    assert_eq!(
        found,
        [("a_bucket", vec!["job", "route"]), ("b", vec!["x"])]
    );
    let scopes: Vec<(&str, Vec<&str>, Vec<&str>)> = p
        .groupings
        .iter()
        .map(|g| {
            (
                &*g.keyword,
                g.labels.iter().map(|l| &**l).collect(),
                p.in_scope(g).map(|s| &*s.metric).collect(),
            )
        })
        .collect();
    assert_eq!(
        scopes,
        [
            ("by", vec!["route", "le"], vec!["a_bucket"]),
            ("on", vec!["job"], vec!["a_bucket", "b"]),
            ("without", vec!["y"], vec!["b"]),
        ]
    );
    assert!(!parse(r#"sum({__name__="x"})"#).errors.is_empty());
}
