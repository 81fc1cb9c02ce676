//! The rule groups: recording rules for the ratios, then one set of alerts per objective,
//! per upstream, and for the process.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{
    parse_prom_duration, ppm_fraction, ppm_percent, prom_duration, Group, Options, Rule, RuleFile,
};
use crate::config::policy::{Route, Upstream};
use crate::config::Policy;

/// Every alert `outrider rules` can write, in the order of the README runbooks.
pub const RULE_NAMES: [&str; 12] = [
    "OutriderAvailabilityFastBurn",
    "OutriderAvailabilitySlowBurn",
    "OutriderAvailabilityBudgetErosion",
    "OutriderLatencyFastBurn",
    "OutriderLatencySlowBurn",
    "OutriderLatencyBudgetErosion",
    "OutriderCacheHitRatioLow",
    "OutriderUpstreamDown",
    "OutriderBreakerNotRecovering",
    "OutriderConfigReloadFailed",
    "OutriderTargetDown",
    "OutriderAbsent",
];

/// The README anchor of an alert's runbook: GitHub's anchor of a `#### AlertName` heading.
pub fn runbook_anchor(alert: &str) -> String {
    alert.to_ascii_lowercase()
}

/// The windows the recording rules keep, shortest first.
const WINDOWS: [&str; 7] = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"];

/// One burn-rate alert: its name suffix, the (long, short, factor) window pairs any of which
/// fires it, how long it must hold, its severity, and what the burn means for the budget (for
/// the description).
struct Burn {
    suffix: &'static str,
    pairs: &'static [(&'static str, &'static str, &'static str)],
    for_: &'static str,
    severity: &'static str,
    what: &'static str,
}

const BURNS: [Burn; 3] = [
    Burn {
        suffix: "FastBurn",
        pairs: &[("1h", "5m", "14.4")],
        for_: "2m",
        severity: "critical",
        what: "14.4× over the last hour (2% of the 30-day budget gone in an hour, all of it in about 2 days)",
    },
    Burn {
        suffix: "SlowBurn",
        pairs: &[("6h", "30m", "6")],
        for_: "15m",
        severity: "critical",
        what: "6× over the last 6 hours (5% of the 30-day budget gone in 6 hours, all of it in 5 days)",
    },
    Burn {
        suffix: "BudgetErosion",
        pairs: &[("1d", "2h", "3"), ("3d", "6h", "1")],
        for_: "1h",
        severity: "warning",
        what: "3× over a day or 1× over 3 days (at this pace the 30-day budget is spent before the month ends)",
    },
];

const ERROR_RATIO: &str = "outrider:route_error_ratio";
const SLOW_RATIO: &str = "outrider:route_slow_ratio";
const OBJECTIVE: &str = "outrider:route_slo_objective";

pub(crate) fn generate(policy: &Policy, o: &Options) -> RuleFile {
    let routes: Vec<&Route> = policy.all_routes().collect();
    let job = job_matcher(o);
    let mut groups = Vec::new();

    let mut recording = Vec::new();
    if routes.iter().any(|r| r.slo.availability_ppm.is_some()) {
        // One series per route for all routes: cheap, and independent of which routes
        // carry an objective. The `or 0 *` term makes a route without any 5xx yet a 0
        // rather than no series, so dashboards and the healthy case have a value.
        for w in WINDOWS {
            let range = scaled(o, w);
            recording.push(Rule {
                record: Some(format!("{ERROR_RATIO}:rate{w}")),
                expr: format!(
                    "(\n  sum by (route) (rate(outrider_requests_total{{{job},status=~\"5..\"}}[{range}]))\n\
                     or\n  0 * sum by (route) (rate(outrider_requests_total{{{job}}}[{range}]))\n\
                     )\n\
                     /\n\
                     sum by (route) (rate(outrider_requests_total{{{job}}}[{range}]))"
                ),
                ..Rule::default()
            });
        }
    }
    for r in &routes {
        let Some(latency) = r.slo.latency else {
            continue;
        };
        let route = label_value(&r.name);
        let le = le_matcher(latency);
        for w in WINDOWS {
            let range = scaled(o, w);
            recording.push(Rule {
                record: Some(format!("{SLOW_RATIO}:rate{w}")),
                expr: format!(
                    "1 - (\n  sum by (route) (rate(outrider_request_duration_seconds_bucket{{{job},route=\"{route}\",le=~\"{le}\"}}[{range}]))\n\
                     /\n  sum by (route) (rate(outrider_request_duration_seconds_count{{{job},route=\"{route}\"}}[{range}]))\n)"
                ),
                ..Rule::default()
            });
        }
    }
    // The objectives as series, so that dashboards can draw them and the budget left beside
    // the ratios (Prometheus knows nothing of the conf file).
    for r in &routes {
        let objectives = [
            ("availability", r.slo.availability_ppm),
            ("latency", r.slo.latency.map(|_| r.slo.latency_target_ppm)),
            ("cache_hit_ratio", r.slo.cache_hit_ratio_ppm),
        ];
        for (slo, ppm) in objectives {
            let Some(ppm) = ppm else { continue };
            recording.push(Rule {
                record: Some(OBJECTIVE.into()),
                expr: format!("vector({})", ppm_fraction(ppm)),
                labels: BTreeMap::from([
                    ("route".to_string(), r.name.to_string()),
                    ("slo".to_string(), slo.to_string()),
                ]),
                ..Rule::default()
            });
        }
    }
    if !recording.is_empty() {
        groups.push(Group {
            name: "outrider-slo-recording".into(),
            rules: recording,
        });
    }

    let mut slo_alerts = Vec::new();
    for r in &routes {
        if let Some(ppm) = r.slo.availability_ppm {
            slo_alerts.extend(availability_alerts(r, ppm, o));
        }
        if let Some((latency, ppm)) = r.slo.latency_objective() {
            slo_alerts.extend(latency_alerts(r, latency, ppm, o));
        }
        if let Some(ppm) = r.slo.cache_hit_ratio_ppm {
            slo_alerts.push(cache_alert(r, ppm, o));
        }
    }
    if !slo_alerts.is_empty() {
        groups.push(Group {
            name: "outrider-slo-alerts".into(),
            rules: slo_alerts,
        });
    }

    let mut health: Vec<Rule> = policy
        .upstreams
        .iter()
        .filter(|u| u.breaker.enabled)
        .flat_map(|u| breaker_alerts(u, o))
        .collect();
    health.extend(process_alerts(o));
    groups.push(Group {
        name: "outrider-health".into(),
        rules: health,
    });
    RuleFile { groups }
}

fn availability_alerts(r: &Route, ppm: u32, o: &Options) -> Vec<Rule> {
    let route = label_value(&r.name);
    let budget = ppm_fraction(1_000_000 - ppm);
    let objective = ppm_percent(ppm);
    BURNS
        .iter()
        .map(|b| {
            let name = format!("OutriderAvailability{}", b.suffix);
            alert(
                &name,
                burn_expr(ERROR_RATIO, &route, &budget, b),
                b.for_,
                b.severity,
                &[("route", &r.name)],
                format!("Route {}: 5xx answers burn its error budget too fast", r.name),
                format!(
                    "Route {} answered {{{{ $value | humanizePercentage }}}} of its requests with 5xx \
                     (from the upstream or the proxy) over the alert's long window; its objective is \
                     {objective} available, and the budget burns {}.",
                    r.name, b.what
                ),
                o,
            )
        })
        .collect()
}

fn latency_alerts(r: &Route, latency: Duration, ppm: u32, o: &Options) -> Vec<Rule> {
    let route = label_value(&r.name);
    let budget = ppm_fraction(1_000_000 - ppm);
    let objective = format!(
        "{} of requests under {}",
        ppm_percent(ppm),
        prom_duration(latency)
    );
    BURNS
        .iter()
        .map(|b| {
            let name = format!("OutriderLatency{}", b.suffix);
            alert(
                &name,
                burn_expr(SLOW_RATIO, &route, &budget, b),
                b.for_,
                b.severity,
                &[("route", &r.name)],
                format!(
                    "Route {}: requests slower than {} burn its latency budget too fast",
                    r.name,
                    prom_duration(latency)
                ),
                format!(
                    "{{{{ $value | humanizePercentage }}}} of route {}'s requests took longer than {} \
                     over the alert's long window; its objective is {objective}, and the budget burns {}.",
                    r.name,
                    prom_duration(latency),
                    b.what
                ),
                o,
            )
        })
        .collect()
}

/// `long > factor × budget and short > factor × budget`, for each window pair, or'ed.
fn burn_expr(series: &str, route: &str, budget: &str, b: &Burn) -> String {
    b.pairs
        .iter()
        .map(|(long, short, factor)| {
            format!(
                "(\n  {series}:rate{long}{{route=\"{route}\"}} > ({factor} * {budget})\nand\n  \
                 {series}:rate{short}{{route=\"{route}\"}} > ({factor} * {budget})\n)"
            )
        })
        .collect::<Vec<_>>()
        .join("\nor\n")
}

fn cache_alert(r: &Route, ppm: u32, o: &Options) -> Rule {
    let route = label_value(&r.name);
    let job = job_matcher(o);
    // The same shares /stats reports: served from the cache over what the cache looked up
    // (bypasses are not lookups).
    let range = scaled(o, "5m");
    let expr = format!(
        "(\n  sum by (route) (rate(outrider_cache_lookups_total{{{job},route=\"{route}\",result=~\"hit|stale|coalesced\"}}[{range}]))\n\
         /\n  sum by (route) (rate(outrider_cache_lookups_total{{{job},route=\"{route}\",result=~\"hit|stale|coalesced|miss|revalidated\"}}[{range}]))\n\
         ) < {}",
        ppm_fraction(ppm)
    );
    alert(
        "OutriderCacheHitRatioLow",
        expr,
        "15m",
        "warning",
        &[("route", &r.name)],
        format!("Route {}: cache hit ratio under its objective", r.name),
        format!(
            "The cache answered {{{{ $value | humanizePercentage }}}} of route {}'s cache lookups \
             for 15 minutes; its objective is {}.",
            r.name,
            ppm_percent(ppm)
        ),
        o,
    )
}

fn breaker_alerts(u: &Upstream, o: &Options) -> Vec<Rule> {
    let upstream = label_value(&u.name);
    let job = job_matcher(o);
    vec![
        alert(
            "OutriderUpstreamDown",
            // The upstream's state is open only when every endpoint's breaker is.
            format!("outrider_breaker_state{{{job},upstream=\"{upstream}\"}} == 2"),
            "1m",
            "critical",
            &[("upstream", &u.name)],
            format!("Upstream {}: every endpoint is ejected", u.name),
            format!(
                "The circuit breaker of every endpoint of upstream {} is open (state {{{{ $value }}}}): \
                 its routes answer 503 with Retry-After, or stale cached content.",
                u.name
            ),
            o,
        ),
        alert(
            "OutriderBreakerNotRecovering",
            format!("outrider_breaker_state{{{job},upstream=\"{upstream}\"}} >= 1"),
            &prom_duration(u.breaker.open_for),
            "warning",
            &[("upstream", &u.name)],
            format!(
                "Upstream {}: breaker not closed again within open_for",
                u.name
            ),
            format!(
                "The breaker of upstream {} has been open or half-open (state {{{{ $value }}}}) for \
                 longer than its open_for of {}: its probes keep failing.",
                u.name,
                prom_duration(u.breaker.open_for)
            ),
            o,
        ),
    ]
}

fn process_alerts(o: &Options) -> Vec<Rule> {
    let job_regex = label_value(&o.job);
    let job = job_matcher(o);
    vec![
        alert(
            "OutriderConfigReloadFailed",
            format!("outrider_config_last_reload_successful{{{job}}} == 0"),
            "5m",
            "warning",
            &[],
            "Outrider {{ $labels.instance }}: the last config reload failed".into(),
            "The conf file on disk was rejected (value {{ $value }}); the previous policy still \
             runs, and a restart would fail to start with the file as it is."
                .into(),
            o,
        ),
        alert(
            "OutriderTargetDown",
            format!("up{{{job}}} == 0"),
            "5m",
            "critical",
            &[],
            "Outrider {{ $labels.instance }}: metrics scrape failing".into(),
            "Prometheus cannot scrape Outrider's admin /metrics on {{ $labels.instance }} \
             (up = {{ $value }}) for 5 minutes."
                .into(),
            o,
        ),
        alert(
            "OutriderAbsent",
            format!("absent(up{{{job}}})"),
            "10m",
            "critical",
            &[],
            "Outrider: no scrape target at all".into(),
            format!(
                "No target of job {job_regex} has been scraped for 10 minutes (absent = {{{{ $value }}}}): \
                 every Outrider is gone, or service discovery lost them."
            ),
            o,
        ),
    ]
}

#[allow(clippy::too_many_arguments)] // one call site per alert; named fields would not read better
fn alert(
    name: &str,
    expr: String,
    for_: &str,
    severity: &str,
    labels: &[(&str, &str)],
    summary: String,
    description: String,
    o: &Options,
) -> Rule {
    let anchor = runbook_anchor(name);
    let mut all_labels = BTreeMap::from([("severity".to_string(), severity.to_string())]);
    for (k, v) in labels {
        all_labels.insert((*k).to_string(), (*v).to_string());
    }
    Rule {
        alert: Some(name.to_string()),
        expr,
        for_: Some(scaled(o, for_)),
        labels: all_labels,
        annotations: BTreeMap::from([
            ("summary".to_string(), summary),
            ("description".to_string(), description),
            (
                "runbook".to_string(),
                format!("{}#{anchor}", o.runbook_base),
            ),
        ]),
        ..Rule::default()
    }
}

/// `text` (a Prometheus duration) divided by the options' time scale.
fn scaled(o: &Options, text: &str) -> String {
    match parse_prom_duration(text) {
        Some(d) if o.time_scale > 1 => {
            prom_duration((d / o.time_scale).max(std::time::Duration::from_millis(1)))
        }
        _ => text.to_string(),
    }
}

/// The matcher that scopes every selector to Outrider's scrape targets, so that the rules of
/// one deployment never read another's series (route names repeat across apps).
fn job_matcher(o: &Options) -> String {
    format!("job=~\"{}\"", label_value(&o.job))
}

/// A label value inside a PromQL double-quoted string.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The `le` label values a bucket boundary may carry: the exporter writes `1` for one second,
/// and Prometheus 3 normalises whole numbers to `1.0` when it ingests them.
pub(crate) fn le_matcher(latency: Duration) -> String {
    let text = latency.as_secs_f64().to_string();
    if text.contains('.') {
        text.replace('.', "\\\\.")
    } else {
        format!("{text}|{text}\\\\.0")
    }
}
