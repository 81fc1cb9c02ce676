use std::time::{Duration, Instant};

use super::*;

fn get<'a>(route: &'a str) -> Observation<'a> {
    Observation {
        route,
        upstream: "app",
        status: 200,
        elapsed: Duration::from_millis(5),
        body: None,
        bytes_sent: 1000,
        cache_enabled: false,
        cacheable: Cacheable::Unspecified,
        cache_refused: None,
        conditional: false,
        validators: false,
        etag_generation: false,
        compression: None,
        latency_objective: None,
        latency_target_ppm: 990_000,
        content_type: "application/json",
        upstream_elapsed: Some(Duration::from_millis(5)),
        read_timeout: Duration::from_secs(10),
        timed_out: false,
        over_limit: false,
        max_concurrent: 0,
        breaker_opened: false,
        consecutive_failures: Some(5),
    }
}

fn kinds(a: &Advisor, now: Instant) -> Vec<Kind> {
    a.advice(now).iter().map(|x| x.kind).collect()
}

#[test]
fn cacheability_needs_min_samples_and_counts_identical_repeats() {
    let t0 = Instant::now();
    let mut a = Advisor::new(t0);
    // 10 URLs, each asked 5 times with the same body: 40 of 50 are repeats.
    for i in 0..(MIN_SAMPLES - 1) {
        let o = Observation {
            body: Some((i % 10, 7)),
            ..get("api")
        };
        a.observe(&o, t0 + Duration::from_millis(i * 10));
    }
    assert!(kinds(&a, t0 + Duration::from_secs(1)).is_empty());
    let o = Observation {
        body: Some((49 % 10, 7)),
        ..get("api")
    };
    a.observe(&o, t0 + Duration::from_millis(490));
    let advice = a.advice(t0 + Duration::from_secs(60));
    assert_eq!(advice.len(), 1, "{advice:?}");
    assert_eq!(advice[0].kind, Kind::Cacheability);
    assert_eq!(advice[0].estimate["hit_ratio_percent"], 80.0);
    assert_eq!(advice[0].per_minute, 40.0);
    assert!(advice[0].change.contains("default_ttl = \"30s\""));
}

#[test]
fn no_store_repeats_are_not_counted() {
    let t0 = Instant::now();
    let mut a = Advisor::new(t0);
    for i in 0..100 {
        let o = Observation {
            body: Some((1, 7)),
            cacheable: Cacheable::NoStore,
            ..get("api")
        };
        a.observe(&o, t0 + Duration::from_millis(i));
    }
    assert!(kinds(&a, t0 + Duration::from_secs(1)).is_empty());
}

#[test]
fn compression_conditional_objective_and_upstream() {
    let t0 = Instant::now();
    let mut a = Advisor::new(t0);
    for i in 0..60u64 {
        let now = t0 + Duration::from_millis(i);
        a.observe(
            &Observation {
                compression: Some(CompressionMiss::BelowMinSize),
                ..get("small")
            },
            now,
        );
        a.observe(
            &Observation {
                conditional: true,
                body: Some((99, 1)),
                ..get("reval")
            },
            now,
        );
        a.observe(
            &Observation {
                latency_objective: Some(Duration::from_millis(100)),
                elapsed: Duration::from_millis(if i % 2 == 0 { 300 } else { 10 }),
                ..get("slow")
            },
            now,
        );
        a.observe(
            &Observation {
                upstream: "busy",
                over_limit: i % 3 == 0,
                max_concurrent: 4,
                ..get("x")
            },
            now,
        );
    }
    let advice = a.advice(t0 + Duration::from_secs(60));
    let find = |k: Kind| {
        advice
            .iter()
            .find(|x| x.kind == k)
            .unwrap_or_else(|| panic!("{k:?}: {advice:?}"))
    };
    let c = find(Kind::Compression);
    assert_eq!(c.evidence["below_min_size"]["bytes"], 60_000);
    assert_eq!(c.estimate["bytes_saved"], 40_000);
    let r = find(Kind::Conditional);
    assert_eq!(r.estimate["not_modified_possible"], 59);
    let s = find(Kind::Objective);
    assert_eq!(s.evidence["over_objective"], 30);
    let u = find(Kind::Upstream);
    assert_eq!(u.evidence["max_concurrent_rejections"], 20);
    assert!(u.change.contains("max_concurrent = 8"));
    // Best first.
    assert!(advice
        .windows(2)
        .all(|w| w[0].per_minute >= w[1].per_minute));
}

#[test]
fn old_windows_age_out_and_rows_are_capped() {
    let t0 = Instant::now();
    let mut a = Advisor::new(t0);
    for i in 0..100 {
        a.observe(
            &Observation {
                compression: Some(CompressionMiss::RouteOff),
                ..get("r")
            },
            t0 + Duration::from_millis(i),
        );
    }
    assert_eq!(
        kinds(&a, t0 + Duration::from_secs(1)),
        vec![Kind::Compression]
    );
    let later = t0 + 3 * WINDOW;
    a.observe(&get("r"), later);
    assert!(kinds(&a, later).is_empty());
    let names: Vec<String> = (0..MAX_ROUTES + 10).map(|i| format!("r{i}")).collect();
    for n in &names {
        a.observe(&get(n), later);
    }
    assert_eq!(a.routes.len(), MAX_ROUTES);
}

#[test]
fn breaker_flaps_are_advised_from_three_openings() {
    let t0 = Instant::now();
    let mut a = Advisor::new(t0);
    for i in 0..60u64 {
        let o = Observation {
            breaker_opened: i % 20 == 0,
            ..get("r")
        };
        a.observe(&o, t0 + Duration::from_millis(i));
    }
    let advice = a.advice(t0 + Duration::from_secs(60));
    assert_eq!(advice.len(), 1, "{advice:?}");
    assert_eq!(advice[0].evidence["breaker_openings"], 3);
    assert!(advice[0].change.contains("consecutive_failures = 10"));
}
