//! A route's service level objectives (`[defaults.slo]`, route `slo`), compiled: what
//! `outrider rules` turns into alerts and what the latency histogram needs a bucket for.
//!
//! Percentages are kept in parts per million, so that the policy stays `Eq` and an objective
//! such as "99.99%" is exact.

use std::time::Duration;

use serde::Serialize;

use super::compile::{at, Problems};
use super::diagnostics::Seg;
use super::schema;
use super::units::percent_ppm;

/// One million: 100% in parts per million.
pub(crate) const PPM: u32 = 1_000_000;

/// The latency target when a route sets `latency` and no `latency_target`.
const DEFAULT_LATENCY_TARGET_PPM: u32 = 950_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SloPolicy {
    /// Requests should take at most this long...
    #[serde(with = "super::policy::opt_duration_str")]
    pub latency: Option<Duration>,
    /// ...this share of them (ppm).
    pub latency_target_ppm: u32,
    /// The share of requests not answered 5xx (ppm).
    pub availability_ppm: Option<u32>,
    /// Warn when the cache hit ratio stays under this (ppm); only on caching routes.
    pub cache_hit_ratio_ppm: Option<u32>,
}

impl SloPolicy {
    /// The latency objective with its target, when the route has one.
    pub(crate) fn latency_objective(&self) -> Option<(Duration, u32)> {
        self.latency.map(|l| (l, self.latency_target_ppm))
    }

    /// For `outrider check`: `  slo availability=99.9% latency=95%<200ms hit=70%`, or nothing.
    pub(crate) fn describe(&self) -> String {
        let percent = percent_text;
        let mut parts = Vec::new();
        if let Some(ppm) = self.availability_ppm {
            parts.push(format!("availability={}", percent(ppm)));
        }
        if let Some((latency, ppm)) = self.latency_objective() {
            parts.push(format!(
                "latency={}<{}",
                percent(ppm),
                humantime::format_duration(latency)
            ));
        }
        if let Some(ppm) = self.cache_hit_ratio_ppm {
            parts.push(format!("hit={}", percent(ppm)));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("  slo {}", parts.join(" "))
        }
    }

    pub fn is_empty(&self) -> bool {
        self.latency.is_none()
            && self.availability_ppm.is_none()
            && self.cache_hit_ratio_ppm.is_none()
    }
}

/// `ppm` parts per million as a percentage for people: 999_000 → `99.9%`.
pub(crate) fn percent_text(ppm: u32) -> String {
    let text = format!("{}.{:04}", ppm / 10_000, ppm % 10_000);
    format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
}

/// Layers the route's `slo` over `[defaults.slo]` key by key. Only the route's own values are
/// reported here (at `base.slo.KEY`); inherited ones are reported once, by [`check_defaults`].
/// `caches` tells whether the route caches: a hit-ratio objective the route itself sets on a
/// route that does not cache is an error (it could never be met), while one inherited from
/// `[defaults.slo]` applies only to the routes that cache.
pub(super) fn route_slo(
    d: &schema::Slo,
    r: &schema::Slo,
    base: &[Seg],
    caches: bool,
    p: &mut Problems,
) -> SloPolicy {
    let base = at(base, &["slo"]);
    let mut inherited = Problems::default();
    let latency = match (r.latency, d.latency) {
        (Some(own), _) => checked_latency(own.0, &base, p),
        (None, Some(default)) => checked_latency(default.0, &base, &mut inherited),
        (None, None) => None,
    };
    let mut percent = |key: &str, own: &Option<String>, default: &Option<String>| {
        let path = at(&base, &[key]);
        match (own, default) {
            (Some(text), _) => checked_percent(text, &path, p),
            (None, Some(text)) => checked_percent(text, &path, &mut inherited),
            (None, None) => None,
        }
    };
    let latency_target = percent("latency_target", &r.latency_target, &d.latency_target)
        .unwrap_or(DEFAULT_LATENCY_TARGET_PPM);
    let availability = percent("availability", &r.availability, &d.availability);
    let cache_hit_ratio = percent("cache_hit_ratio", &r.cache_hit_ratio, &d.cache_hit_ratio);
    let own_ratio = r.cache_hit_ratio.as_ref().filter(|t| !t.trim().is_empty());
    if own_ratio.is_some() && !caches {
        p.add(
            at(&base, &["cache_hit_ratio"]),
            "this route does not cache (cache.enabled is false), so it has no hit ratio",
        );
    }
    SloPolicy {
        latency,
        latency_target_ppm: latency_target,
        availability_ppm: availability,
        cache_hit_ratio_ppm: cache_hit_ratio.filter(|_| caches),
    }
}

/// Reports the problems of `[defaults.slo]` itself, once, whichever routes inherit it.
pub(super) fn check_defaults(d: &schema::Slo, base: &[Seg], p: &mut Problems) {
    route_slo(&schema::Slo::default(), d, base, true, p);
}

fn checked_latency(value: Option<Duration>, base: &[Seg], p: &mut Problems) -> Option<Duration> {
    let latency = value?;
    if latency.is_zero() {
        p.add(
            at(base, &["latency"]),
            "must be greater than 0 (use \"\" for no latency objective)",
        );
        return None;
    }
    Some(latency)
}

/// `""` is no objective; anything else must be a percentage strictly between 0 and 100.
fn checked_percent(text: &str, path: &[Seg], p: &mut Problems) -> Option<u32> {
    if text.trim().is_empty() {
        return None;
    }
    match percent_ppm(text) {
        Some(ppm) if ppm > 0 && ppm < PPM => Some(ppm),
        _ => {
            p.add(
                path.to_vec(),
                format!(
                    "invalid objective {text:?}; a percentage above 0% and below 100%, \
                     e.g. \"99.9%\" (at most four decimals)"
                ),
            );
            None
        }
    }
}

/// `[log] slow_request` with the route's override; `0s` (or nothing) turns it off.
pub(super) fn slow_request(log: &schema::Log, r: Option<&schema::Route>) -> Option<Duration> {
    let d = r.and_then(|r| r.slow_request).unwrap_or(log.slow_request).0;
    (!d.is_zero()).then_some(d)
}
