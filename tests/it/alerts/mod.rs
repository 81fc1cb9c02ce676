//! `outrider rules`: the built binary's output checked by promtool (Debian's `prometheus`
//! package, installed by `scripts/deps.sh`), and promtool unit tests showing each alert firing
//! on a synthetic series that violates its objective and silent on one that meets it.
//!
//! promtool is required, not optional: a missing promtool fails these tests with the way to
//! install it, so rules that Prometheus would refuse cannot pass unnoticed.
//!
//! [`server`] runs the real Prometheus server against the real binary; [`buckets`] checks the
//! latency histogram has the boundaries the latency alerts read.

mod buckets;
mod server;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::json;
use serde_yaml_ng::Value;

use crate::k8s_manifests::sources::{Exported, Sources};
use crate::support::binary;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `outrider rules ARGS` run from the repository root; panics unless it succeeds.
fn rules(args: &[&str]) -> String {
    let out = Command::new(binary())
        .arg("rules")
        .args(args)
        .current_dir(repo())
        .env_remove("OUTRIDER_CONFIG")
        .output()
        .expect("run outrider rules");
    assert!(
        out.status.success(),
        "outrider rules {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 rules")
}

fn promtool(args: &[&str], dir: &Path) -> Output {
    match Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "promtool is needed to check the alert rules and was not found ({e}); install Debian's \
             `prometheus` package (`scripts/deps.sh` does: apt-get install prometheus)"
        ),
    }
}

fn assert_promtool(args: &[&str], dir: &Path) -> String {
    let out = promtool(args, dir);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// `promtool check rules` on `text`, written to a temp file.
fn check_rules(text: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("rules.yaml"), text).expect("write rules");
    assert_promtool(&["check", "rules", "rules.yaml"], dir.path())
}

/// The rule groups of a PrometheusRule, as a plain rule file.
fn spec_groups(prometheus_rule: &str) -> String {
    let doc: Value = serde_yaml_ng::from_str(prometheus_rule).expect("PrometheusRule YAML");
    assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(doc["kind"], "PrometheusRule");
    serde_yaml_ng::to_string(&json!({ "groups": &doc["spec"]["groups"] })).expect("YAML")
}

fn reference_rules() -> String {
    rules(&["--config", "conf/outrider.toml"])
}

#[test]
fn generated_rules_pass_promtool_check() {
    let text = reference_rules();
    let report = check_rules(&text);
    assert!(report.contains("SUCCESS"), "{report}");
    let k8s = rules(&[
        "--config",
        "conf/outrider.toml",
        "--format",
        "prometheusrule",
    ]);
    check_rules(&spec_groups(&k8s));
}

#[test]
fn generated_rules_name_only_series_outrider_exports() {
    let exported = Exported::from_sources(&Sources::from_repo().metrics_rs);
    let text = reference_rules();
    let name = regex::Regex::new(r"\boutrider_[a-z0-9_]+").unwrap();
    let mut seen = 0;
    for m in name.find_iter(&text) {
        seen += 1;
        assert!(
            exported.has_series(m.as_str()),
            "{} is not a series Outrider exports",
            m.as_str()
        );
    }
    assert!(seen > 10, "{text}");
}

#[test]
fn every_runbook_link_has_its_readme_section() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let anchors: Vec<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("#### "))
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for alert in outrider::slo::RULE_NAMES {
        assert!(
            anchors.contains(&outrider::slo::runbook_anchor(alert)),
            "README.md has no `#### {alert}` runbook section"
        );
    }
    let text = reference_rules();
    let doc: Value = serde_yaml_ng::from_str(&text).unwrap();
    for group in doc["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let Some(runbook) = rule["annotations"]["runbook"].as_str() else {
                assert!(
                    rule["record"].is_string(),
                    "an alert without runbook: {rule:?}"
                );
                continue;
            };
            let anchor = runbook.strip_prefix("README.md#").expect("a README anchor");
            assert!(anchors.iter().any(|a| a == anchor), "{runbook}");
        }
    }
}

// === promtool unit tests ===

/// The policy the unit tests generate rules from: objectives strict enough that one hour of
/// synthetic samples shows each alert.
const UNIT_CONF: &str = r#"
[upstreams.app]
endpoints = ["127.0.0.1:3000"]

[[routes]]
name = "api"
upstream = "app"
cache = { enabled = true }
slo = { availability = "99.9%", latency = "200ms", latency_target = "99%", cache_hit_ratio = "70%" }
"#;

/// A rule's annotations with the templates filled in the way Prometheus renders them for
/// these series, so that promtool compares the whole alert, text included.
fn expected_annotations(rules: &Value, alert: &str, value: &str, percent: &str) -> Value {
    let rule = rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .find(|r| r["alert"] == alert)
        .unwrap_or_else(|| panic!("no alert {alert}"));
    let mut out = serde_yaml_ng::Mapping::new();
    for (k, v) in rule["annotations"].as_mapping().unwrap() {
        let text = v
            .as_str()
            .unwrap()
            .replace("{{ $value | humanizePercentage }}", percent)
            .replace("{{ $value }}", value)
            .replace("{{ $labels.instance }}", "proxy-0");
        out.insert(k.clone(), Value::String(text));
    }
    Value::Mapping(out)
}

/// One promtool test case: `series` (name → values) evaluated at `at`, expecting `alert` with
/// `labels` (or nothing when `labels` is None).
struct Case<'a> {
    series: &'a [(&'a str, &'a str)],
    at: &'a str,
    alert: &'a str,
    labels: Option<serde_json::Value>,
    value: &'a str,
    percent: &'a str,
}

/// Runs `cases` through `promtool test rules`, series sampled and rules evaluated every
/// `interval`.
fn unit_test(rules_text: &str, interval: &str, cases: &[Case<'_>]) -> String {
    let rules: Value = serde_yaml_ng::from_str(rules_text).unwrap();
    let tests: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            let exp_alerts = match &c.labels {
                Some(labels) => json!([{
                    "exp_labels": labels,
                    "exp_annotations": expected_annotations(&rules, c.alert, c.value, c.percent),
                }]),
                None => json!([]),
            };
            json!({
                "interval": interval,
                "input_series": c.series.iter().map(|(s, v)| json!({"series": s, "values": v})).collect::<Vec<_>>(),
                "alert_rule_test": [{ "eval_time": c.at, "alertname": c.alert, "exp_alerts": exp_alerts }],
            })
        })
        .collect();
    // Without an order promtool evaluates the groups in map order, different from run to run;
    // an alert group run before the recording group reads the previous step's records, and with
    // a step longer than the 5m lookback it sees none at all.
    let group_order: Vec<&str> = rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    let test_file = json!({
        "rule_files": ["rules.yaml"],
        "evaluation_interval": interval,
        "group_eval_order": group_order,
        "tests": tests,
    });
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("rules.yaml"), rules_text).unwrap();
    std::fs::write(
        dir.path().join("tests.yaml"),
        serde_yaml_ng::to_string(&test_file).unwrap(),
    )
    .unwrap();
    assert_promtool(&["test", "rules", "tests.yaml"], dir.path())
}

fn unit_rules() -> String {
    let conf = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("temp conf");
    std::fs::write(conf.path(), UNIT_CONF).unwrap();
    rules(&["--config", &conf.path().display().to_string()])
}

const OK: &str = r#"outrider_requests_total{job="outrider",route="api",method="GET",status="200"}"#;
const BUCKET: &str =
    r#"outrider_request_duration_seconds_bucket{job="outrider",route="api",le="0.2"}"#;
const COUNT: &str = r#"outrider_request_duration_seconds_count{job="outrider",route="api"}"#;
const OTHER_JOB_FAILED: &str =
    r#"outrider_requests_total{job="other-app",route="api",method="GET",status="503"}"#;
const FAILED: &str =
    r#"outrider_requests_total{job="outrider",route="api",method="GET",status="503"}"#;

#[test]
fn availability_fast_burn_fires_on_half_errors_and_not_on_a_hundredth_of_a_percent() {
    let text = unit_rules();
    let labels = json!({"route": "api", "severity": "critical"});
    unit_test(
        &text,
        "1m",
        &[
            // 50% 5xx: 500 times the 0.1% budget, far above 14.4×.
            Case {
                series: &[(OK, "0+50x90"), (FAILED, "0+50x90")],
                at: "60m",
                alert: "OutriderAvailabilityFastBurn",
                labels: Some(labels.clone()),
                value: "",
                percent: "50%",
            },
            // Another deployment's failing route of the same name is not this one's.
            Case {
                series: &[(OK, "0+50x90"), (OTHER_JOB_FAILED, "0+50x90")],
                at: "60m",
                alert: "OutriderAvailabilityFastBurn",
                labels: None,
                value: "",
                percent: "",
            },
            // 0.01% 5xx: a tenth of the budget.
            Case {
                series: &[(OK, "0+9999x90"), (FAILED, "0+1x90")],
                at: "60m",
                alert: "OutriderAvailabilityFastBurn",
                labels: None,
                value: "",
                percent: "",
            },
        ],
    );
}

#[test]
fn latency_fast_burn_fires_when_half_the_requests_miss_the_objective() {
    let text = unit_rules();
    let (bucket, count) = (BUCKET, COUNT);
    unit_test(
        &text,
        "1m",
        &[
            Case {
                series: &[(bucket, "0+50x90"), (count, "0+100x90")],
                at: "60m",
                alert: "OutriderLatencyFastBurn",
                labels: Some(json!({"route": "api", "severity": "critical"})),
                value: "",
                percent: "50%",
            },
            // 0.5% slower than 200ms against a 1% budget.
            Case {
                series: &[(bucket, "0+995x90"), (count, "0+1000x90")],
                at: "60m",
                alert: "OutriderLatencyFastBurn",
                labels: None,
                value: "",
                percent: "",
            },
        ],
    );
}

#[test]
fn slower_burns_and_the_breaker_alert_fire_and_stay_silent() {
    let text = unit_rules();
    let state = r#"outrider_breaker_state{job="outrider",upstream="app",instance="proxy-0"}"#;
    let up = r#"up{job="outrider",instance="proxy-0"}"#;
    let critical = json!({"route": "api", "severity": "critical"});
    unit_test(
        &text,
        "1m",
        &[
            // 1% 5xx for 7 hours: 10× the budget, over the slow burn's 6× (under the fast 14.4×).
            Case {
                series: &[(OK, "0+99x420"), (FAILED, "0+1x420")],
                at: "400m",
                alert: "OutriderAvailabilitySlowBurn",
                labels: Some(critical.clone()),
                value: "",
                percent: "1%",
            },
            Case {
                series: &[(OK, "0+99x420"), (FAILED, "0+1x420")],
                at: "400m",
                alert: "OutriderAvailabilityFastBurn",
                labels: None,
                value: "",
                percent: "",
            },
            Case {
                series: &[(OK, "0+995x420"), (FAILED, "0+5x420")],
                at: "400m",
                alert: "OutriderAvailabilitySlowBurn",
                labels: None,
                value: "",
                percent: "",
            },
            // 10% slower than 200ms against a 1% budget: 10×, a slow burn and not a fast one.
            Case {
                series: &[(BUCKET, "0+90x420"), (COUNT, "0+100x420")],
                at: "400m",
                alert: "OutriderLatencySlowBurn",
                labels: Some(critical.clone()),
                value: "",
                percent: "10%",
            },
            Case {
                series: &[(BUCKET, "0+97x420"), (COUNT, "0+100x420")],
                at: "400m",
                alert: "OutriderLatencySlowBurn",
                labels: None,
                value: "",
                percent: "",
            },
            // Half-open for 5 minutes, longer than open_for (30s): its probes keep failing.
            Case {
                series: &[(state, "1x10")],
                at: "5m",
                alert: "OutriderBreakerNotRecovering",
                labels: Some(
                    json!({"job": "outrider", "upstream": "app", "instance": "proxy-0", "severity": "warning"}),
                ),
                value: "1",
                percent: "",
            },
            Case {
                series: &[(state, "0x10")],
                at: "5m",
                alert: "OutriderBreakerNotRecovering",
                labels: None,
                value: "",
                percent: "",
            },
            Case {
                series: &[(up, "1x10")],
                at: "8m",
                alert: "OutriderTargetDown",
                labels: None,
                value: "",
                percent: "",
            },
        ],
    );
}

#[test]
fn budget_erosion_fires_on_a_steady_small_overspend_only() {
    let text = unit_rules();
    unit_test(
        &text,
        "10m",
        &[
            // 0.2% 5xx for 2 days (sampled and evaluated every 10 minutes): under 3× over a
            // day, over 1× over three days.
            Case {
                series: &[(OK, "0+9980x300"), (FAILED, "0+20x300")],
                at: "2d",
                alert: "OutriderAvailabilityBudgetErosion",
                labels: Some(json!({"route": "api", "severity": "warning"})),
                value: "",
                percent: "0.2%",
            },
            Case {
                series: &[(OK, "0+99950x300"), (FAILED, "0+50x300")],
                at: "2d",
                alert: "OutriderAvailabilityBudgetErosion",
                labels: None,
                value: "",
                percent: "",
            },
        ],
    );
}

#[test]
fn cache_breaker_reload_and_absence_alerts_fire_and_stay_silent() {
    let text = unit_rules();
    let hit = r#"outrider_cache_lookups_total{job="outrider",route="api",result="hit"}"#;
    let miss = r#"outrider_cache_lookups_total{job="outrider",route="api",result="miss"}"#;
    let state = r#"outrider_breaker_state{job="outrider",upstream="app",instance="proxy-0"}"#;
    let reload = r#"outrider_config_last_reload_successful{job="outrider",instance="proxy-0"}"#;
    let up = r#"up{job="outrider",instance="proxy-0"}"#;
    unit_test(
        &text,
        "1m",
        &[
            Case {
                series: &[(hit, "0+10x40"), (miss, "0+90x40")],
                at: "30m",
                alert: "OutriderCacheHitRatioLow",
                labels: Some(json!({"route": "api", "severity": "warning"})),
                value: "",
                percent: "10%",
            },
            Case {
                series: &[(hit, "0+90x40"), (miss, "0+10x40")],
                at: "30m",
                alert: "OutriderCacheHitRatioLow",
                labels: None,
                value: "",
                percent: "",
            },
            Case {
                series: &[(state, "2x10")],
                at: "5m",
                alert: "OutriderUpstreamDown",
                labels: Some(
                    json!({"job": "outrider", "upstream": "app", "instance": "proxy-0", "severity": "critical"}),
                ),
                value: "2",
                percent: "",
            },
            Case {
                series: &[(state, "0x10")],
                at: "5m",
                alert: "OutriderUpstreamDown",
                labels: None,
                value: "",
                percent: "",
            },
            Case {
                series: &[(reload, "0x10")],
                at: "8m",
                alert: "OutriderConfigReloadFailed",
                labels: Some(
                    json!({"job": "outrider", "instance": "proxy-0", "severity": "warning"}),
                ),
                value: "0",
                percent: "",
            },
            Case {
                series: &[(reload, "1x10")],
                at: "8m",
                alert: "OutriderConfigReloadFailed",
                labels: None,
                value: "",
                percent: "",
            },
            Case {
                series: &[(up, "0x10")],
                at: "8m",
                alert: "OutriderTargetDown",
                labels: Some(
                    json!({"job": "outrider", "instance": "proxy-0", "severity": "critical"}),
                ),
                value: "0",
                percent: "",
            },
            Case {
                series: &[(state, "0x20")],
                at: "15m",
                alert: "OutriderAbsent",
                labels: Some(json!({"severity": "critical"})),
                value: "1",
                percent: "",
            },
            Case {
                series: &[(up, "1x20")],
                at: "15m",
                alert: "OutriderAbsent",
                labels: None,
                value: "",
                percent: "",
            },
        ],
    );
}

// === the shipped rule files ===

/// The command that writes `conf/k8s/prometheusrule.yaml`: the PodMonitor's targets carry
/// `job="NAMESPACE/example-app-outrider"`.
const K8S_ARGS: [&str; 8] = [
    "--config",
    "conf/outrider.toml",
    "--format",
    "prometheusrule",
    "--job",
    ".+/example-app-outrider",
    "--name",
    "example-app-outrider",
];

fn shipped(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn shipped_rule_files_are_what_outrider_rules_prints() {
    assert!(
        shipped("conf/prometheus/outrider-rules.yaml") == reference_rules(),
        "conf/prometheus/outrider-rules.yaml is stale: regenerate it with \
         `outrider rules --config conf/outrider.toml > conf/prometheus/outrider-rules.yaml`"
    );
    assert!(
        shipped("conf/k8s/prometheusrule.yaml") == rules(&K8S_ARGS),
        "conf/k8s/prometheusrule.yaml is stale: regenerate it with `outrider rules {}`",
        K8S_ARGS.join(" ")
    );
}

#[test]
fn shipped_rule_files_pass_promtool_check() {
    check_rules(&shipped("conf/prometheus/outrider-rules.yaml"));
    check_rules(&spec_groups(&shipped("conf/k8s/prometheusrule.yaml")));
}

/// The Grafana dashboard's queries (its "Objectives" row reads the recorded series) parse as
/// PromQL: each becomes a recording rule for `promtool check rules`, variables filled in.
#[test]
fn dashboard_queries_are_valid_promql() {
    fn walk(panels: &serde_json::Value, out: &mut Vec<String>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push(expr.to_string());
                }
            }
            walk(&p["panels"], out);
        }
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&shipped("conf/grafana/outrider-dashboard.json")).unwrap();
    let mut exprs = Vec::new();
    walk(&dashboard["panels"], &mut exprs);
    assert!(exprs
        .iter()
        .any(|e| e.contains("outrider:route_slo_objective")));
    let rules: Vec<serde_json::Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let expr = e
                .replace("$__rate_interval", "5m")
                .replace("$__range", "1h")
                .replace("$route", ".*")
                .replace("$upstream", ".*")
                .replace("$job", ".*");
            json!({ "record": format!("dashboard:query{i}"), "expr": expr })
        })
        .collect();
    let file = json!({ "groups": [{ "name": "dashboard", "rules": rules }] });
    check_rules(&serde_yaml_ng::to_string(&file).unwrap());
}
