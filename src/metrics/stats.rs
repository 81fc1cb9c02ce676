//! `GET /stats`: the on-call view, computed from the same histograms and counters that
//! `/metrics` exports, over the last minute.
//!
//! A sampler snapshots the cumulative counts every few seconds; `/stats` differences the newest
//! state against the oldest sample still inside the window, as Prometheus' `rate()` and
//! `histogram_quantile()` would over `[1m]`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::core::Metric as _;
use prometheus::Histogram;
use serde_json::{json, Value};

use super::{Bound, CacheResult, Outcome};
use crate::config::Policy;

pub(crate) const WINDOW: Duration = Duration::from_secs(60);
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Cumulative counts of one route or upstream at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    pub requests: u64,
    pub(crate) errors: u64,
    /// Cumulative bucket counts of the latency histogram, one per bound in `bounds`.
    pub(crate) buckets: Vec<u64>,
    /// The histogram's own upper bounds: the request histogram has the latency objectives
    /// known at start besides `LATENCY_BUCKETS`, so the constant would misplace its counts.
    pub(crate) bounds: Vec<f64>,
    pub(crate) observations: u64,
    /// Routes only: body bytes compression saved.
    pub(crate) bytes_saved: u64,
    /// Routes only: requests the cache answered (hit, stale, coalesced) and requests that
    /// looked it up (those plus miss and revalidated; bypasses are not lookups).
    pub(crate) cache_served: u64,
    pub cache_lookups: u64,
}

#[derive(Clone, Debug)]
pub struct Sample {
    pub at: Instant,
    pub routes: HashMap<String, Counts>,
    pub upstreams: HashMap<String, Counts>,
}

/// The samples of the last minute.
#[derive(Default)]
pub struct StatsWindow {
    samples: Mutex<VecDeque<Sample>>,
}

impl Counts {
    fn read(requests: u64, errors: u64, latency: &Histogram) -> Counts {
        let m = latency.metric();
        let hist = m.get_histogram();
        Counts {
            requests,
            errors,
            buckets: hist
                .get_bucket()
                .iter()
                .map(|b| b.cumulative_count())
                .collect(),
            bounds: hist.get_bucket().iter().map(|b| b.upper_bound()).collect(),
            observations: hist.get_sample_count(),
            bytes_saved: 0,
            cache_served: 0,
            cache_lookups: 0,
        }
    }
}

/// Reads the current cumulative counts of every route and upstream of `policy`.
pub(crate) fn sample(policy: &Policy, bound: &Bound, at: Instant) -> Sample {
    let routes = policy
        .routes
        .routes
        .iter()
        .zip(&bound.routes)
        .map(|(r, m)| {
            let (requests, errors) = m.counts.totals();
            let lookups = |results: &[CacheResult]| -> u64 {
                results
                    .iter()
                    .map(|r| m.cache_lookups[*r as usize].get())
                    .sum()
            };
            let served = [CacheResult::Hit, CacheResult::Stale, CacheResult::Coalesced];
            let counts = Counts {
                bytes_saved: m.counts.bytes_saved(),
                cache_served: lookups(&served),
                cache_lookups: lookups(&served)
                    + lookups(&[CacheResult::Miss, CacheResult::Revalidated]),
                ..Counts::read(requests, errors, &m.duration)
            };
            (r.name.to_string(), counts)
        })
        .collect();
    let upstreams = policy
        .upstreams
        .iter()
        .zip(&bound.upstreams)
        .map(|(u, m)| {
            let requests = Outcome::ALL.iter().map(|o| m.count(*o)).sum();
            let errors = requests - m.count(Outcome::Ok);
            (
                u.name.to_string(),
                Counts::read(requests, errors, &m.duration),
            )
        })
        .collect();
    Sample {
        at,
        routes,
        upstreams,
    }
}

impl StatsWindow {
    /// Keeps `s` and forgets samples older than the window.
    pub(crate) fn push(&self, s: Sample) {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        while samples
            .front()
            .is_some_and(|old| s.at.duration_since(old.at) > WINDOW)
        {
            samples.pop_front();
        }
        samples.push_back(s);
    }

    /// The oldest sample inside the window, the baseline for `/stats`.
    pub fn baseline(&self) -> Option<Sample> {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples.front().cloned()
    }
}

/// The `q` quantile from cumulative bucket counts, interpolating linearly inside the bucket
/// as `histogram_quantile` does; `None` without observations. Beyond the last bound it
/// answers the last bound.
pub(crate) fn quantile(q: f64, bounds: &[f64], cumulative: &[u64], total: u64) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut prev_bound = 0.0;
    let mut prev_count = 0u64;
    for (bound, &count) in bounds.iter().zip(cumulative) {
        if count as f64 >= rank {
            let in_bucket = (count - prev_count) as f64;
            if in_bucket == 0.0 {
                return Some(*bound);
            }
            return Some(
                prev_bound + (bound - prev_bound) * (rank - prev_count as f64) / in_bucket,
            );
        }
        prev_bound = *bound;
        prev_count = count;
    }
    bounds.last().copied()
}

fn delta(now: &Counts, then: Option<&Counts>) -> Counts {
    let Some(then) = then else { return now.clone() };
    // Counts only grow for a given name; saturate in case a name was removed and re-added.
    Counts {
        requests: now.requests.saturating_sub(then.requests),
        errors: now.errors.saturating_sub(then.errors),
        buckets: now
            .buckets
            .iter()
            .zip(then.buckets.iter().chain(std::iter::repeat(&0)))
            .map(|(a, b)| a.saturating_sub(*b))
            .collect(),
        bounds: now.bounds.clone(),
        observations: now.observations.saturating_sub(then.observations),
        bytes_saved: now.bytes_saved.saturating_sub(then.bytes_saved),
        cache_served: now.cache_served.saturating_sub(then.cache_served),
        cache_lookups: now.cache_lookups.saturating_sub(then.cache_lookups),
    }
}

fn describe(d: &Counts, seconds: f64) -> Value {
    let q = |q| quantile(q, &d.bounds, &d.buckets, d.observations);
    json!({
        "requests": d.requests,
        "rate_per_second": if seconds > 0.0 { d.requests as f64 / seconds } else { 0.0 },
        "error_ratio": if d.requests > 0 { Some(d.errors as f64 / d.requests as f64) } else { None },
        "latency_seconds": { "p50": q(0.5), "p95": q(0.95), "p99": q(0.99) },
    })
}

/// The route's objectives measured over the window; null when it has none.
fn objectives(r: &crate::config::policy::Route, d: &Counts) -> Value {
    let slo = &r.slo;
    if slo.is_empty() {
        return Value::Null;
    }
    let availability = slo
        .availability_ppm
        .map(|ppm| crate::slo::compliance(ppm, d.requests.saturating_sub(d.errors), d.requests));
    // The request histogram has a bucket at each latency objective known at start; one a
    // reload introduced has none until a restart, and is then left unmeasured.
    let latency = slo.latency_objective().map(|(latency, ppm)| {
        let at = latency.as_secs_f64();
        let fast = d
            .bounds
            .iter()
            .position(|b| *b == at)
            .and_then(|i| d.buckets.get(i).copied());
        let mut v = json!(match fast {
            Some(fast) => crate::slo::compliance(ppm, fast, d.observations),
            None => crate::slo::compliance(ppm, 0, 0),
        });
        v["seconds"] = json!(at);
        v
    });
    let cache = slo
        .cache_hit_ratio_ppm
        .map(|ppm| crate::slo::compliance(ppm, d.cache_served, d.cache_lookups));
    json!({ "availability": availability, "latency": latency, "cache_hit_ratio": cache })
}

/// The `/stats` document: `now` against `baseline` (or against zero, since `started`).
pub(crate) fn report(
    policy: &Policy,
    now: &Sample,
    baseline: Option<&Sample>,
    started: Instant,
) -> Value {
    let since = baseline.map_or(started, |b| b.at);
    let seconds = now.at.duration_since(since).as_secs_f64();
    let mut routes = serde_json::Map::new();
    for r in policy.all_routes() {
        let Some(c) = now.routes.get(&*r.name) else {
            continue;
        };
        let d = delta(c, baseline.and_then(|b| b.routes.get(&*r.name)));
        let mut v = describe(&d, seconds);
        v["upstream"] = json!(&*policy.upstream_of(r).name);
        v["compression_bytes_saved"] = json!(d.bytes_saved);
        // Share of the cache's lookups it answered; null on routes that do not cache and
        // while nothing was looked up in the window.
        v["cache_hit_ratio"] = if r.cache.enabled && d.cache_lookups > 0 {
            json!(d.cache_served as f64 / d.cache_lookups as f64)
        } else {
            Value::Null
        };
        v["slo"] = objectives(r, &d);
        routes.insert(r.name.to_string(), v);
    }
    let mut upstreams = serde_json::Map::new();
    for u in &policy.upstreams {
        let Some(c) = now.upstreams.get(&*u.name) else {
            continue;
        };
        let mut v = describe(
            &delta(c, baseline.and_then(|b| b.upstreams.get(&*u.name))),
            seconds,
        );
        // Filled in by the admin plane, which holds the breakers.
        v["breaker"] = Value::Null;
        upstreams.insert(u.name.to_string(), v);
    }
    json!({ "window_seconds": seconds, "routes": routes, "upstreams": upstreams })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let bounds = [0.1, 0.2, 0.4];
        // 10 observations in (0, 0.1], 10 in (0.1, 0.2].
        let cumulative = [10, 20, 20];
        assert_eq!(quantile(0.5, &bounds, &cumulative, 20), Some(0.1));
        let p75 = quantile(0.75, &bounds, &cumulative, 20).unwrap();
        assert!((p75 - 0.15).abs() < 1e-9, "{p75}");
        assert_eq!(quantile(0.5, &bounds, &[0, 0, 0], 0), None);
        // Observations past the last bound are reported at the last bound.
        assert_eq!(quantile(0.99, &bounds, &[0, 0, 0], 5), Some(0.4));
    }

    #[test]
    fn window_forgets_old_samples() {
        let w = StatsWindow::default();
        let t0 = Instant::now();
        let s = |at| Sample {
            at,
            routes: HashMap::new(),
            upstreams: HashMap::new(),
        };
        w.push(s(t0));
        w.push(s(t0 + Duration::from_secs(30)));
        assert_eq!(w.baseline().unwrap().at, t0);
        w.push(s(t0 + Duration::from_secs(61)));
        assert_eq!(w.baseline().unwrap().at, t0 + Duration::from_secs(30));
    }
}
