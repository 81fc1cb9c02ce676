//! `[defaults.slo]`, route `slo` and `slow_request`: layering, defaults and located errors.

use std::time::Duration;

use outrider::config::{compile, Policy};

use crate::config_check::helpers::{assert_errors, assert_ok, check_text, UPSTREAM};

fn policy(text: &str) -> Policy {
    compile(text, "test.toml").unwrap_or_else(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        panic!("config errors:\n{}", lines.join("\n"))
    })
}

#[test]
fn route_slo_overrides_defaults_key_by_key() {
    let p = policy(&format!(
        r#"{UPSTREAM}
[log]
slow_request = "2s"

[defaults.slo]
availability = "99.9%"
latency = "200ms"
cache_hit_ratio = "80%"

[[routes]]
name = "api"
cache = {{ enabled = true }}
slo = {{ latency = "", latency_target = "99.95%" }}
slow_request = "0s"

[[routes]]
name = "plain"
"#
    ));
    let api = p.route_by_id(0).unwrap();
    assert_eq!(api.slo.latency, None, "\"\" drops the default objective");
    assert_eq!(api.slo.latency_target_ppm, 999_500);
    assert_eq!(api.slo.availability_ppm, Some(999_000));
    assert_eq!(api.slo.cache_hit_ratio_ppm, Some(800_000));
    assert_eq!(api.slow_request, None, "\"0s\" turns the slow log off");

    let plain = p.route_by_id(1).unwrap();
    assert_eq!(plain.slo.latency, Some(Duration::from_millis(200)));
    assert_eq!(plain.slo.latency_target_ppm, 950_000, "the default target");
    assert_eq!(plain.slo.availability_ppm, Some(999_000));
    assert_eq!(
        plain.slo.cache_hit_ratio_ppm, None,
        "a default hit ratio applies only to routes that cache"
    );
    assert_eq!(plain.slow_request, Some(Duration::from_secs(2)));
}

#[test]
fn no_slo_means_no_objective_and_no_slow_log() {
    let p = policy(UPSTREAM);
    let route = p.all_routes().next().unwrap();
    assert!(route.slo.is_empty(), "{:?}", route.slo);
    assert_eq!(route.slow_request, None);
}

#[test]
fn objectives_on_the_fallback_route_come_from_defaults() {
    let text = format!("{UPSTREAM}[defaults.slo]\navailability = \"99%\"\n");
    let run = check_text(&text);
    assert_ok(&run);
    assert!(
        run.stdout()
            .contains("-> app  compress  slo availability=99%"),
        "the summary shows the objectives: {}",
        run.stdout()
    );
    let p = policy(&text);
    assert_eq!(
        p.all_routes().last().unwrap().slo.availability_ppm,
        Some(990_000)
    );
}

#[test]
fn invalid_objectives_are_located() {
    // Columns point at the value: `availability = ` is 15 characters, `latency = ` 10,
    // `latency_target = ` 17; in `slo = { cache_hit_ratio = "70%" }` the value starts at 27.
    let text = format!(
        "{UPSTREAM}[defaults.slo]\navailability = \"100%\"\nlatency = \"0s\"\nlatency_target = \"95\"\n\
         [[routes]]\nname = \"api\"\nslo = {{ cache_hit_ratio = \"70%\" }}\n"
    );
    let run = check_text(&text);
    assert_errors(
        &run,
        &[
            (
                4,
                16,
                "defaults.slo.availability",
                "above 0% and below 100%",
            ),
            (5, 11, "defaults.slo.latency", "must be greater than 0"),
            (
                6,
                18,
                "defaults.slo.latency_target",
                "invalid objective \"95\"",
            ),
            (
                9,
                27,
                "routes[0].slo.cache_hit_ratio",
                "this route does not cache",
            ),
        ],
    );
}

#[test]
fn zero_percent_and_too_many_decimals_are_refused() {
    let text = format!(
        "{UPSTREAM}[[routes]]\nname = \"api\"\nslo = {{ availability = \"0%\", latency_target = \"99.99999%\" }}\n"
    );
    let run = check_text(&text);
    // `slo = { availability = ` is 23 characters; `"0%", latency_target = ` 23 more.
    assert_errors(
        &run,
        &[
            (5, 24, "routes[0].slo.availability", "above 0%"),
            (
                5,
                47,
                "routes[0].slo.latency_target",
                "at most four decimals",
            ),
        ],
    );
}

#[test]
fn unknown_slo_key_and_bad_slow_request_are_schema_errors() {
    let text =
        format!("{UPSTREAM}[log]\nslow_request = \"soon\"\n[defaults.slo]\nlatncy = \"1s\"\n");
    let run = check_text(&text);
    assert_errors(
        &run,
        &[
            (4, 16, "log.slow_request", "invalid duration \"soon\""),
            (6, 1, "defaults.slo.latncy", "unknown field `latncy`"),
        ],
    );
}
