//! The shared cache tier and warm starts: `outrider_cache_shared_requests_total{op,result}`,
//! `outrider_cache_shared_duration_seconds{op}`, `outrider_cache_shared_up`,
//! `outrider_cache_shared_purges_received_total` and `outrider_cache_warm_fetches_total{result}`.
//! Handles are resolved once here, so the request path only increments.

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntGauge, Registry};

use super::{int_counter_vec, int_gauge, register};

/// The `op` label: one per kind of Redis operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SharedOp {
    Get = 0,
    Set = 1,
    Purge = 2,
    /// Taking the fleet-wide fill lock.
    Lock = 3,
}

pub(crate) const SHARED_OPS: [&str; 4] = ["get", "set", "purge", "lock"];

/// The `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SharedResult {
    Hit = 0,
    Miss = 1,
    Error = 2,
    Timeout = 3,
    /// A set, purge or lock that Redis carried out.
    Ok = 4,
}

pub(crate) const SHARED_RESULTS: [&str; 5] = ["hit", "miss", "error", "timeout", "ok"];

/// Redis round trips on loopback or in a zone take well under a millisecond; the `timeout`
/// default is 25 ms.
const SHARED_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

pub(crate) struct SharedTierMetrics {
    requests: Vec<[IntCounter; 5]>,
    duration: Vec<Histogram>,
    pub(crate) up: IntGauge,
    pub(crate) purges_received: IntCounter,
    /// `outrider_cache_warm_fetches_total`: ok, then error.
    pub(crate) warm_ok: IntCounter,
    pub(crate) warm_error: IntCounter,
}

impl SharedTierMetrics {
    // Static metric definitions (constant names, help and labels, never input) fail only on an
    // invalid name, which the unit tests would catch at once.
    #[allow(clippy::expect_used)]
    pub(crate) fn register(registry: &Registry) -> SharedTierMetrics {
        let requests = register(
            registry,
            int_counter_vec(
                "outrider_cache_shared_requests_total",
                "Operations on the shared cache tier (Redis) by op (get, set, purge, lock) and result (hit, miss, error, timeout, ok).",
                &["op", "result"],
            ),
        );
        let duration = register(
            registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "outrider_cache_shared_duration_seconds",
                    "Time spent on operations on the shared cache tier, by op, timeouts included.",
                )
                .buckets(SHARED_BUCKETS.to_vec()),
                &["op"],
            )
            .expect("static metric definition is valid"),
        );
        let up = register(
            registry,
            int_gauge(
                "outrider_cache_shared_up",
                "1 while the shared cache tier answers and is used, 0 while it is down or its breaker is open.",
            ),
        );
        let purges_received = register(
            registry,
            IntCounter::new(
                "outrider_cache_shared_purges_received_total",
                "Purges received from other replicas over the shared tier's purge channel.",
            )
            .expect("static metric definition is valid"),
        );
        let warm = register(
            registry,
            int_counter_vec(
                "outrider_cache_warm_fetches_total",
                "[cache.warm] URLs fetched through the proxy at start and after reloads, by result (ok, error).",
                &["result"],
            ),
        );
        SharedTierMetrics {
            requests: SHARED_OPS
                .iter()
                .map(|op| SHARED_RESULTS.map(|r| requests.with_label_values(&[op, r])))
                .collect(),
            duration: SHARED_OPS
                .iter()
                .map(|op| duration.with_label_values(&[op]))
                .collect(),
            up,
            purges_received,
            warm_ok: warm.with_label_values(&["ok"]),
            warm_error: warm.with_label_values(&["error"]),
        }
    }

    pub(crate) fn record(&self, op: SharedOp, result: SharedResult, seconds: f64) {
        if let Some(counters) = self.requests.get(op as usize) {
            counters[result as usize].inc();
        }
        if let Some(histogram) = self.duration.get(op as usize) {
            histogram.observe(seconds);
        }
    }

    /// A count, for `GET /cache`.
    pub(crate) fn count(&self, op: SharedOp, result: SharedResult) -> u64 {
        self.requests
            .get(op as usize)
            .map_or(0, |c| c[result as usize].get())
    }
}
