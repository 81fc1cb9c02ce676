//! Issue 22's tables: a route's `rate_limit` (`[defaults] rate_limit` layered under the route's
//! own, key by key) and an upstream's `retry`.

use std::time::Duration;

use super::compile::{at, Problems};
use super::diagnostics::Seg;
use super::policy::{RateLimitKey, RateLimitPolicy, RetryPolicy};
use super::schema;

/// `None` when the route has no limit (`requests` unset or 0).
pub(super) fn rate_limit(
    d: &schema::RateLimit,
    r: &schema::RateLimit,
    base: &[Seg],
    p: &mut Problems,
) -> Option<RateLimitPolicy> {
    let base = at(base, &["rate_limit"]);
    let requests = r.requests.or(d.requests).unwrap_or(0);
    let per = r.per.or(d.per).map_or(Duration::from_secs(1), |d| d.0);
    let burst = r.burst.or(d.burst).unwrap_or(requests);
    let key_text = r
        .key
        .clone()
        .or_else(|| d.key.clone())
        .unwrap_or_else(|| "client-ip".into());
    let before = p.len();
    // The IETF RateLimit fields carry the window in whole seconds.
    if per < Duration::from_secs(1) || per.subsec_nanos() != 0 {
        p.add(
            at(&base, &["per"]),
            "must be a whole number of seconds, at least 1s (RateLimit-Policy states it in seconds)",
        );
    }
    if requests > 0 && burst == 0 {
        p.add(at(&base, &["burst"]), "must be at least 1");
    }
    let key = match key_text.split_once(':') {
        None if key_text == "client-ip" => Some(RateLimitKey::ClientIp),
        Some(("header", name)) if http::HeaderName::from_bytes(name.as_bytes()).is_ok() => {
            Some(RateLimitKey::Header(name.to_ascii_lowercase()))
        }
        _ => {
            p.add(
                at(&base, &["key"]),
                format!("invalid key {key_text:?}; \"client-ip\" or \"header:NAME\""),
            );
            None
        }
    };
    if requests == 0 || p.len() != before {
        return None;
    }
    Some(RateLimitPolicy {
        requests,
        per,
        burst,
        key: key?,
    })
}

/// `[upstreams.NAME.retry]`; `None` when it has errors (they are in `p`).
pub(super) fn retry(r: &schema::Retry, base: &[Seg], p: &mut Problems) -> Option<RetryPolicy> {
    let before = p.len();
    if !(1..=10).contains(&r.attempts) {
        p.add(
            at(base, &["attempts"]),
            "must be 1-10 (tries in total, the first included)",
        );
    }
    let mut policy = RetryPolicy {
        attempts: r.attempts,
        on_connect_failure: false,
        on_reset: false,
        on_timeout: false,
        on_statuses: Vec::new(),
        idempotent_only: r.idempotent_only,
        backoff: r.backoff.0,
        budget_ppm: 0,
    };
    for (i, what) in r.on.iter().enumerate() {
        match what.as_str() {
            "connect-failure" => policy.on_connect_failure = true,
            "reset" => policy.on_reset = true,
            "timeout" => policy.on_timeout = true,
            status => match status.parse::<u16>() {
                Ok(code @ 500..=599) => policy.on_statuses.push(code),
                _ => {
                    let mut path = at(base, &["on"]);
                    path.push(Seg::Index(i));
                    p.add(
                        path,
                        format!(
                            "unknown {what:?}; one of \"connect-failure\", \"reset\", \"timeout\" or a 5xx status such as \"503\""
                        ),
                    );
                }
            },
        }
    }
    match super::units::percent_ppm(&r.budget) {
        Some(ppm) => policy.budget_ppm = ppm,
        None => p.add(
            at(base, &["budget"]),
            format!("invalid percentage {:?}; e.g. \"20%\"", r.budget),
        ),
    }
    (p.len() == before).then_some(policy)
}

/// `[upstreams.NAME.health_check]`; `None` when it has errors (they are in `p`).
pub(super) fn health_check(
    h: &schema::HealthCheck,
    base: &[Seg],
    p: &mut Problems,
) -> Option<super::policy::HealthCheckPolicy> {
    let before = p.len();
    if !h.path.starts_with('/') || h.path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        p.add(
            at(base, &["path"]),
            format!(
                "{:?} must start with '/' and hold no spaces or controls",
                h.path
            ),
        );
    }
    for (k, d) in [("interval", h.interval), ("timeout", h.timeout)] {
        if d.0.is_zero() {
            p.add(at(base, &[k]), "must be greater than 0");
        }
    }
    if h.timeout.0 > h.interval.0 {
        p.add(at(base, &["timeout"]), "must not exceed interval");
    }
    for (k, n) in [
        ("healthy_threshold", h.healthy_threshold),
        ("unhealthy_threshold", h.unhealthy_threshold),
    ] {
        if n == 0 {
            p.add(at(base, &[k]), "must be at least 1");
        }
    }
    if h.expect_status.is_empty() {
        p.add(at(base, &["expect_status"]), "needs at least one status");
    }
    for (i, s) in h.expect_status.iter().enumerate() {
        if !(100..=599).contains(s) {
            let mut path = at(base, &["expect_status"]);
            path.push(Seg::Index(i));
            p.add(path, format!("{s} is not an HTTP status code"));
        }
    }
    (p.len() == before).then(|| super::policy::HealthCheckPolicy {
        path: h.path.clone(),
        interval: h.interval.0,
        timeout: h.timeout.0,
        healthy_threshold: h.healthy_threshold,
        unhealthy_threshold: h.unhealthy_threshold,
        expect_status: h.expect_status.clone(),
    })
}
