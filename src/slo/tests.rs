use super::*;
use crate::config::compile;

const CONF: &str = r#"
[upstreams.app]
endpoints = ["127.0.0.1:3000"]
breaker = { open_for = "45s" }

[upstreams.off]
endpoints = ["127.0.0.1:3001"]
breaker = { enabled = false }

[defaults.slo]
availability = "99.9%"

[[routes]]
name = "api"
upstream = "app"
cache = { enabled = true }
slo = { latency = "200ms", latency_target = "99%", cache_hit_ratio = "70%" }

[[routes]]
name = "slow"
upstream = "off"
slo = { latency = "1s", availability = "" }
"#;

fn generated() -> RuleFile {
    rules::generate(&compile(CONF, "t").unwrap(), &Options::default())
}

fn alerts<'a>(file: &'a RuleFile, name: &str) -> Vec<&'a Rule> {
    file.groups
        .iter()
        .flat_map(|g| &g.rules)
        .filter(|r| r.alert.as_deref() == Some(name))
        .collect()
}

#[test]
fn fractions_and_durations_are_exact() {
    assert_eq!(ppm_fraction(1_000), "0.001");
    assert_eq!(ppm_fraction(999_000), "0.999");
    assert_eq!(ppm_fraction(10), "0.00001");
    assert_eq!(ppm_percent(999_000), "99.9%");
    assert_eq!(ppm_percent(950_000), "95%");
    assert_eq!(ppm_percent(999_990), "99.999%");
    assert_eq!(prom_duration(Duration::from_secs(90)), "90s");
    assert_eq!(prom_duration(Duration::from_millis(1500)), "1500ms");
    assert_eq!(prom_duration(Duration::from_secs(3 * 86_400)), "3d");
    assert_eq!(prom_duration(Duration::from_secs(300)), "5m");
    for text in ["5m", "3d", "90s", "1500ms", "1h"] {
        assert_eq!(prom_duration(parse_prom_duration(text).unwrap()), text);
    }
    assert_eq!(parse_prom_duration("5x"), None);
}

#[test]
fn le_matches_the_exported_and_the_normalised_label() {
    assert_eq!(rules::le_matcher(Duration::from_millis(200)), "0\\\\.2");
    assert_eq!(rules::le_matcher(Duration::from_secs(1)), "1|1\\\\.0");
}

#[test]
fn availability_gets_three_burn_rate_alerts_on_the_routes_that_have_it() {
    let file = generated();
    let fast = alerts(&file, "OutriderAvailabilityFastBurn");
    assert_eq!(fast.len(), 1, "api only: slow drops the default with \"\"");
    let fast = fast[0];
    assert_eq!(fast.labels["route"], "api");
    assert_eq!(fast.labels["severity"], "critical");
    assert!(
        fast.expr
            .contains("outrider:route_error_ratio:rate1h{route=\"api\"} > (14.4 * 0.001)"),
        "{}",
        fast.expr
    );
    assert!(fast
        .expr
        .contains("outrider:route_error_ratio:rate5m{route=\"api\"} > (14.4 * 0.001)"));
    let erosion = alerts(&file, "OutriderAvailabilityBudgetErosion")[0];
    assert!(
        erosion.expr.contains("rate3d{route=\"api\"} > (1 * 0.001)"),
        "{}",
        erosion.expr
    );
    assert!(erosion.expr.contains("\nor\n"), "{}", erosion.expr);
    assert_eq!(erosion.labels["severity"], "warning");
    // The fallback route inherits [defaults.slo] too; it exists only with [defaults] upstream.
    assert_eq!(alerts(&file, "OutriderAvailabilitySlowBurn").len(), 1);
}

#[test]
fn latency_alerts_use_the_routes_bucket() {
    let file = generated();
    let recording: Vec<&Rule> = file.groups[0].rules.iter().collect();
    let slow_1h: Vec<&&Rule> = recording
        .iter()
        .filter(|r| r.record.as_deref() == Some("outrider:route_slow_ratio:rate1h"))
        .collect();
    assert_eq!(slow_1h.len(), 2, "one per route with a latency objective");
    assert!(
        slow_1h[0].expr.contains("route=\"api\",le=~\"0\\\\.2\""),
        "{}",
        slow_1h[0].expr
    );
    assert!(slow_1h[1].expr.contains("route=\"slow\",le=~\"1|1\\\\.0\""));
    let fast = alerts(&file, "OutriderLatencyFastBurn");
    assert_eq!(fast.len(), 2);
    assert!(fast[0].expr.contains("> (14.4 * 0.01)"), "{}", fast[0].expr);
    assert!(fast[0].annotations["description"].contains("99% of requests under 200ms"));
}

#[test]
fn cache_breaker_and_process_alerts() {
    let file = generated();
    let cache = alerts(&file, "OutriderCacheHitRatioLow");
    assert_eq!(cache.len(), 1);
    assert!(cache[0].expr.ends_with(") < 0.7"), "{}", cache[0].expr);
    assert_eq!(cache[0].for_.as_deref(), Some("15m"));
    let not_recovering = alerts(&file, "OutriderBreakerNotRecovering");
    assert_eq!(not_recovering.len(), 1, "only upstreams with a breaker");
    assert_eq!(not_recovering[0].for_.as_deref(), Some("45s"));
    assert_eq!(
        alerts(&file, "OutriderUpstreamDown")[0].labels["upstream"],
        "app"
    );
    assert_eq!(
        alerts(&file, "OutriderUpstreamDown")[0].expr,
        "outrider_breaker_state{job=~\"outrider\",upstream=\"app\"} == 2",
        "every selector is scoped to Outrider's job"
    );
    assert_eq!(
        alerts(&file, "OutriderAbsent")[0].expr,
        "absent(up{job=~\"outrider\"})"
    );
    assert_eq!(alerts(&file, "OutriderConfigReloadFailed").len(), 1);
    assert_eq!(alerts(&file, "OutriderTargetDown").len(), 1);
}

#[test]
fn every_alert_is_annotated_and_named_in_rule_names() {
    let file = generated();
    let mut seen = std::collections::BTreeSet::new();
    for rule in file.groups.iter().flat_map(|g| &g.rules) {
        let Some(name) = &rule.alert else { continue };
        assert!(RULE_NAMES.contains(&name.as_str()), "{name}");
        seen.insert(name.clone());
        for key in ["summary", "description", "runbook"] {
            assert!(rule.annotations.contains_key(key), "{name}: {key}");
        }
        assert!(
            rule.annotations["description"].contains("{{ $value"),
            "{name}"
        );
        assert_eq!(
            rule.annotations["runbook"],
            format!("README.md#{}", name.to_ascii_lowercase())
        );
    }
    assert_eq!(
        seen.len(),
        RULE_NAMES.len(),
        "every alert kind appears: {seen:?}"
    );
}

#[test]
fn no_objective_means_health_alerts_only() {
    let policy = compile("[upstreams.app]\nendpoints = [\"127.0.0.1:3000\"]\n", "t").unwrap();
    let file = rules::generate(&policy, &Options::default());
    assert_eq!(file.groups.len(), 1);
    assert_eq!(file.groups[0].name, "outrider-health");
}

#[test]
fn prometheusrule_wraps_the_same_groups() {
    let policy = compile(CONF, "t").unwrap();
    let plain = render(&policy, &Options::default(), Format::Prometheus).unwrap();
    let k8s = render(&policy, &Options::default(), Format::PrometheusRule).unwrap();
    let plain: serde_yaml_ng::Value = serde_yaml_ng::from_str(&plain).unwrap();
    let k8s: serde_yaml_ng::Value = serde_yaml_ng::from_str(&k8s).unwrap();
    assert_eq!(k8s["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(k8s["kind"], "PrometheusRule");
    assert_eq!(k8s["spec"]["groups"], plain["groups"]);
}

#[test]
fn time_scale_shrinks_ranges_and_for_but_keeps_the_names() {
    let policy = compile(CONF, "t").unwrap();
    let options = Options {
        time_scale: 60,
        ..Options::default()
    };
    let file = rules::generate(&policy, &options);
    let rate1h = file.groups[0]
        .rules
        .iter()
        .find(|r| r.record.as_deref() == Some("outrider:route_error_ratio:rate1h"))
        .unwrap();
    assert!(rate1h.expr.contains("[1m]"), "{}", rate1h.expr);
    assert_eq!(
        alerts(&file, "OutriderAvailabilityFastBurn")[0]
            .for_
            .as_deref(),
        Some("2s")
    );
    assert_eq!(
        alerts(&file, "OutriderBreakerNotRecovering")[0]
            .for_
            .as_deref(),
        Some("750ms")
    );
}

#[test]
fn latency_boundaries_are_sorted_and_unique() {
    let policy = compile(CONF, "t").unwrap();
    assert_eq!(latency_boundaries(&policy), vec![0.2, 1.0]);
}

#[test]
fn compliance_and_budget_left() {
    let c = compliance(999_000, 9_995, 10_000);
    assert_eq!(c.objective, 0.999);
    assert_eq!(c.compliance, Some(0.9995));
    assert!((c.budget_left.unwrap() - 0.5).abs() < 1e-9, "{c:?}");
    let over = compliance(990_000, 50, 100);
    assert!((over.budget_left.unwrap() + 49.0).abs() < 1e-9, "{over:?}");
    assert_eq!(compliance(990_000, 0, 0).compliance, None);
    assert_eq!(compliance(990_000, 0, 0).budget_left, None);
}

#[test]
fn objectives_are_recorded_as_series_for_dashboards() {
    let file = generated();
    let objectives: Vec<(&str, &str, &str)> = file.groups[0]
        .rules
        .iter()
        .filter(|r| r.record.as_deref() == Some("outrider:route_slo_objective"))
        .map(|r| {
            (
                r.labels["route"].as_str(),
                r.labels["slo"].as_str(),
                r.expr.as_str(),
            )
        })
        .collect();
    assert_eq!(
        objectives,
        vec![
            ("api", "availability", "vector(0.999)"),
            ("api", "latency", "vector(0.99)"),
            ("api", "cache_hit_ratio", "vector(0.7)"),
            ("slow", "latency", "vector(0.95)"),
        ]
    );
}
