//! `GET /breakers`: every upstream's breaker, limiter and endpoints, as an operator paged at
//! night needs them: what is refused, since when, and when the next probe may go.
//!
//! Instants become wall-clock RFC 3339 times (`opened_at`, `next_probe_at`) plus the seconds
//! from now (`next_probe_in_seconds`, negative when the probe is due and waits for a request:
//! the open → half-open move happens on the first request after it).

use std::time::{Instant, SystemTime};

use http::{Response, StatusCode};
use serde_json::{json, Map, Value};

use super::{json, AdminRequest};
use crate::breaker::{Snapshot, UpstreamSnapshot};
use crate::proxy::Shared;

pub(crate) fn report(shared: &Shared, _req: &AdminRequest) -> Response<Vec<u8>> {
    let active = shared.policy();
    let (now, wall) = (Instant::now(), SystemTime::now());
    let mut upstreams = Map::new();
    for (i, (upstream, guard)) in active
        .policy
        .upstreams
        .iter()
        .zip(&active.breakers)
        .enumerate()
    {
        let mut v = describe_upstream(&guard.snapshot(now), now, wall);
        // Active health checks: each endpoint's verdict (null where the upstream has none).
        if let (Some(health), Some(eps)) = (active.health.get(i), v["endpoints"].as_array_mut()) {
            for (ep, h) in eps.iter_mut().zip(health) {
                ep["healthy"] = if upstream.health_check.is_some() {
                    json!(h.is_healthy())
                } else {
                    Value::Null
                };
            }
        }
        v["breaker"] = json!({
            "enabled": upstream.breaker.enabled,
            "consecutive_failures": upstream.breaker.consecutive_failures,
            "failure_rate": upstream.breaker.failure_rate,
            "min_requests": upstream.breaker.min_requests,
            "window": humantime::format_duration(upstream.breaker.window).to_string(),
            "half_open_probes": upstream.breaker.half_open_probes,
        });
        upstreams.insert(upstream.name.to_string(), v);
    }
    json(StatusCode::OK, &json!({ "upstreams": upstreams }))
}

fn describe_upstream(s: &UpstreamSnapshot, now: Instant, wall: SystemTime) -> Value {
    json!({
        "state": s.state.as_str(),
        "in_flight": s.in_flight,
        "max_concurrent": s.max_concurrent,
        "endpoints": s
            .endpoints
            .iter()
            .map(|(label, snapshot)| describe_endpoint(label, snapshot, now, wall))
            .collect::<Vec<_>>(),
    })
}

fn describe_endpoint(label: &str, s: &Snapshot, now: Instant, wall: SystemTime) -> Value {
    json!({
        "endpoint": label,
        "state": s.state.as_str(),
        "enabled": s.enabled,
        "window": { "requests": s.window.requests, "failures": s.window.failures },
        "consecutive_failures": s.consecutive_failures,
        "opened_at": s.opened_at.map(|at| rfc3339(at, now, wall)),
        "next_probe_at": s.next_probe_at.map(|at| rfc3339(at, now, wall)),
        "next_probe_in_seconds": s.next_probe_at.map(|at| seconds_from(now, at)),
        "open_for": humantime::format_duration(s.open_for).to_string(),
        "probes_in_flight": s.probes_in_flight,
        "probe_successes": s.probe_successes,
    })
}

/// `at` on the wall clock, given that `now` is `wall`.
fn rfc3339(at: Instant, now: Instant, wall: SystemTime) -> String {
    let when = if at >= now {
        wall.checked_add(at - now)
    } else {
        wall.checked_sub(now - at)
    };
    when.map_or_else(String::new, |t| {
        humantime::format_rfc3339_millis(t).to_string()
    })
}

fn seconds_from(now: Instant, at: Instant) -> f64 {
    if at >= now {
        (at - now).as_secs_f64()
    } else {
        -(now - at).as_secs_f64()
    }
}
