//! RFC 9111 §4.2.2's heuristic freshness, opt-in per route (`heuristic_freshness`): a share of
//! the time since `Last-Modified`, the rule of thumb the RFC names ("10% of that interval"),
//! capped by `heuristic_max`. Off by default because the route's `default_ttl` is predictable
//! for operators, while this lets an origin that forgot `Cache-Control` on a years-old file
//! have it cached for the whole cap.

use std::time::{Duration, SystemTime};

use super::ResponseFacts;
use crate::config::policy::RouteCachePolicy;

/// The heuristic lifetime of a response without explicit freshness: `share × (Date −
/// Last-Modified)` (the response time standing in for a missing `Date`), at most the route's
/// cap. `None` when the route does not use the heuristic, the response has no valid
/// `Last-Modified`, or the result is zero. The caller checks the status is heuristically
/// cacheable.
pub(super) fn lifetime(
    rsp: &ResponseFacts,
    policy: &RouteCachePolicy,
    response_time: SystemTime,
) -> Option<Duration> {
    if policy.heuristic_freshness_bp == 0 {
        return None;
    }
    let date = rsp.date.unwrap_or(response_time);
    let since = date.duration_since(rsp.last_modified?).ok()?;
    let share = since.as_secs_f64() * f64::from(policy.heuristic_freshness_bp) / 10_000.0;
    let lifetime = Duration::try_from_secs_f64(share)
        .unwrap_or(Duration::MAX)
        .min(policy.heuristic_max);
    let lifetime = Duration::from_secs(lifetime.as_secs());
    (!lifetime.is_zero()).then_some(lifetime)
}
