//! Prometheus metrics: one private registry (not the crate's global default, so that no other
//! library can add or collide with our series), the `outrider_` prefix, and per-capability
//! family groups registered once at startup.
//!
//! Families live outside the policy snapshot, so their series survive reloads; the request path
//! holds handles resolved in advance and only does `inc`/`observe`.

mod breakers;
pub(crate) mod cache;
pub(crate) mod clients;
pub(crate) mod reloads;
mod requests;
pub(crate) mod shared_cache;
pub(crate) mod stats;

use std::sync::Arc;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::config::policy::Coding;
use crate::config::Policy;
pub(crate) use breakers::report_breaker_changes;
pub use requests::{method_index, StatusCounts, METHODS};

/// Latency buckets from 100 µs to 30 s: a sidecar's hop is sub-millisecond, its backend's
/// answers span milliseconds to tens of seconds.
pub(crate) const LATENCY_BUCKETS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Outcome of one upstream attempt, the `outcome` label of `outrider_upstream_requests_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The upstream answered with one of its `failure_statuses`.
    HttpFailure,
    Timeout,
    ConnectError,
    /// Not sent: the breaker or the concurrency limit refused it.
    Rejected,
}

impl Outcome {
    pub(crate) const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::HttpFailure,
        Outcome::Timeout,
        Outcome::ConnectError,
        Outcome::Rejected,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::HttpFailure => "http_failure",
            Outcome::Timeout => "timeout",
            Outcome::ConnectError => "connect_error",
            Outcome::Rejected => "rejected",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    /// `outrider_request_duration_seconds`' boundaries: [`LATENCY_BUCKETS`] plus the latency
    /// objectives known at start. A family's buckets cannot change once it exports series.
    request_buckets: Vec<f64>,
    pub(crate) config: ConfigMetrics,
    requests: Arc<requests::RequestsTotal>,
    request_duration: HistogramVec,
    upstream_requests: IntCounterVec,
    upstream_duration: HistogramVec,
    inflight: IntGaugeVec,
    compressed: IntCounterVec,
    conditional: IntCounterVec,
    cache_lookups: IntCounterVec,
    breaker_state: IntGaugeVec,
    breaker_transitions: IntCounterVec,
    rate_limited: IntCounterVec,
    retries: IntCounterVec,
    retries_refused: IntCounterVec,
    health_checks: IntCounterVec,
    endpoint_healthy: IntGaugeVec,
    pub(crate) compression: CompressionMetrics,
    pub(crate) clients: clients::ClientMetrics,
    pub(crate) shared_tier: Arc<shared_cache::SharedTierMetrics>,
}

/// The `to` label of `outrider_breaker_transitions_total`, and the index of its handle.
pub(crate) const BREAKER_STATES: [&str; 3] = ["closed", "half_open", "open"];

/// One route's handles, resolved when a policy is applied.
pub struct RouteMetrics {
    pub counts: Arc<StatusCounts>,
    pub duration: Histogram,
    /// `outrider_compression_responses_total{route,algorithm}`, by [`coding_index`].
    pub(crate) compressed: [IntCounter; 3],
    /// `outrider_conditional_responses_total{route,status}`: 304, then 412.
    pub(crate) not_modified: IntCounter,
    pub(crate) precondition_failed: IntCounter,
    /// `outrider_cache_lookups_total{route,result}`, by [`CacheResult`].
    pub(crate) cache_lookups: [IntCounter; 6],
    /// `outrider_rate_limited_total{route}`, for routes with a `rate_limit` only.
    pub(crate) rate_limited: Option<IntCounter>,
}

/// The `result` label of `outrider_cache_lookups_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CacheResult {
    /// Served from the cache, fresh (or stale within what the request's `max-stale` accepts).
    Hit,
    /// Fetched from the origin (whether or not it was then stored).
    Miss,
    /// Served stale: while revalidating (`stale-while-revalidate`) or because the origin failed
    /// (`stale-if-error`).
    Stale,
    /// A stale object the origin confirmed with a 304.
    Revalidated,
    /// The route caches, but this request may not use the cache (method, `Authorization`, ...).
    Bypass,
    /// Waited on another request's fetch of the same key, then served what it stored.
    Coalesced,
}

impl CacheResult {
    pub(crate) const ALL: [CacheResult; 6] = [
        CacheResult::Hit,
        CacheResult::Miss,
        CacheResult::Stale,
        CacheResult::Revalidated,
        CacheResult::Bypass,
        CacheResult::Coalesced,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            CacheResult::Hit => "hit",
            CacheResult::Miss => "miss",
            CacheResult::Stale => "stale",
            CacheResult::Revalidated => "revalidated",
            CacheResult::Bypass => "bypass",
            CacheResult::Coalesced => "coalesced",
        }
    }
}

/// The `algorithm` label values, in [`coding_index`] order.
pub(crate) const CODINGS: [&str; 3] = ["zstd", "br", "gzip"];

pub(crate) fn coding_index(coding: &Coding) -> usize {
    match coding {
        Coding::Zstd => 0,
        Coding::Br => 1,
        Coding::Gzip => 2,
    }
}

/// `outrider_compression_bytes_{in,out}_total{algorithm}`, by [`coding_index`]. Not per route,
/// as DESIGN.md defines them: the byte totals answer "what does compression save", the
/// per-route response counter answers "where".
#[derive(Clone)]
pub(crate) struct CompressionMetrics {
    pub(crate) bytes_in: [IntCounter; 3],
    pub(crate) bytes_out: [IntCounter; 3],
}

impl CompressionMetrics {
    /// Records one finished compressed response.
    pub(crate) fn record(
        &self,
        route: &RouteMetrics,
        coding: &Coding,
        bytes_in: u64,
        bytes_out: u64,
    ) {
        let i = coding_index(coding);
        route.compressed[i].inc();
        route
            .counts
            .add_bytes_saved(bytes_in.saturating_sub(bytes_out));
        self.bytes_in[i].inc_by(bytes_in);
        self.bytes_out[i].inc_by(bytes_out);
    }
}

/// One upstream's handles, resolved when a policy is applied.
pub struct UpstreamMetrics {
    outcomes: [IntCounter; 5],
    pub duration: Histogram,
    pub inflight: IntGauge,
    /// `outrider_breaker_state{upstream}`: 0 closed, 1 half-open, 2 open.
    pub(crate) breaker_state: IntGauge,
    /// `outrider_breaker_transitions_total{upstream,to}`, by the gauge value of `to`.
    pub(crate) breaker_transitions: [IntCounter; 3],
    /// `outrider_upstream_retries_total{upstream,reason}`, by `RetryReason::index`.
    pub(crate) retries: [IntCounter; 7],
    /// `outrider_upstream_retries_refused_total{upstream}`: retries the budget refused.
    pub(crate) retries_refused: IntCounter,
}

impl UpstreamMetrics {
    pub fn record(&self, outcome: Outcome) {
        self.outcomes[outcome as usize].inc();
    }

    pub(crate) fn count(&self, outcome: Outcome) -> u64 {
        self.outcomes[outcome as usize].get()
    }
}

/// The handles for every route and upstream of one policy, indexed like the policy's own
/// vectors, so that the request path reaches them by index.
pub struct Bound {
    pub routes: Vec<RouteMetrics>,
    pub upstreams: Vec<UpstreamMetrics>,
    pub(crate) compression: CompressionMetrics,
}

impl Metrics {
    // Static metric definitions (constant names, help and labels, never input) fail only on an
    // invalid name, which the unit tests would catch at once.
    pub fn new() -> Metrics {
        Metrics::with_latency_objectives(&[])
    }

    /// The families, with a request-latency bucket at each of `objectives` (seconds), so that
    /// the share of requests under an objective is exact rather than interpolated.
    #[allow(clippy::expect_used)]
    pub fn with_latency_objectives(objectives: &[f64]) -> Metrics {
        let registry = Registry::new();
        let request_buckets = merged_buckets(objectives);
        let config = ConfigMetrics::register(&registry);
        let requests = Arc::new(requests::RequestsTotal::new());
        if let Err(e) = registry.register(Box::new(SharedCollector(requests.clone()))) {
            log::error!("metric registration failed: {e}");
        }
        let request_duration = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "outrider_request_duration_seconds",
                    "Time from the request header received to the last response byte sent.",
                )
                .buckets(request_buckets.clone()),
                &["route"],
            )
            .expect("static metric definition is valid"),
        );
        let upstream_requests = register(
            &registry,
            int_counter_vec(
                "outrider_upstream_requests_total",
                "Upstream attempts by outcome (ok, http_failure, timeout, connect_error, rejected).",
                &["upstream", "outcome"],
            ),
        );
        let upstream_duration = register(
            &registry,
            histogram_vec(
                "outrider_upstream_duration_seconds",
                "Time from choosing the upstream endpoint (connect included) to its response header.",
                "upstream",
            ),
        );
        let inflight = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "outrider_inflight_requests",
                    "Requests in flight to each upstream.",
                ),
                &["upstream"],
            )
            .expect("static metric definition is valid"),
        );
        let compressed = register(
            &registry,
            int_counter_vec(
                "outrider_compression_responses_total",
                "Responses sent compressed, by route and coding.",
                &["route", "algorithm"],
            ),
        );
        let bytes_in = register(
            &registry,
            int_counter_vec(
                "outrider_compression_bytes_in_total",
                "Body bytes fed to the encoders, by coding.",
                &["algorithm"],
            ),
        );
        let bytes_out = register(
            &registry,
            int_counter_vec(
                "outrider_compression_bytes_out_total",
                "Encoded body bytes sent, by coding.",
                &["algorithm"],
            ),
        );
        let conditional = register(
            &registry,
            int_counter_vec(
                "outrider_conditional_responses_total",
                "Responses the proxy answered from the request's preconditions (304, 412), by route.",
                &["route", "status"],
            ),
        );
        let cache_lookups = register(
            &registry,
            int_counter_vec(
                "outrider_cache_lookups_total",
                "Requests on caching routes by what the cache did (hit, miss, stale, revalidated, bypass, coalesced).",
                &["route", "result"],
            ),
        );
        let breaker_state = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "outrider_breaker_state",
                    "Each upstream's circuit breaker: 0 closed, 1 half-open, 2 open (open only when every endpoint is).",
                ),
                &["upstream"],
            )
            .expect("static metric definition is valid"),
        );
        let breaker_transitions = register(
            &registry,
            int_counter_vec(
                "outrider_breaker_transitions_total",
                "Changes of each upstream's breaker state, by the state entered.",
                &["upstream", "to"],
            ),
        );
        let rate_limited = register(
            &registry,
            int_counter_vec(
                "outrider_rate_limited_total",
                "Requests refused with 429 by the route's rate limit.",
                &["route"],
            ),
        );
        let retries = register(
            &registry,
            int_counter_vec(
                "outrider_upstream_retries_total",
                "Upstream attempts retried, by what failed (connect-failure, reset, timeout, 502, 503, 504, status).",
                &["upstream", "reason"],
            ),
        );
        let retries_refused = register(
            &registry,
            int_counter_vec(
                "outrider_upstream_retries_refused_total",
                "Retries the upstream's retry budget refused.",
                &["upstream"],
            ),
        );
        let health_checks = register(
            &registry,
            int_counter_vec(
                "outrider_health_check_total",
                "Active health probes by endpoint and result (ok, fail).",
                &["upstream", "endpoint", "result"],
            ),
        );
        let endpoint_healthy = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "outrider_endpoint_healthy",
                    "1 while active health checks keep the endpoint in rotation, 0 while they take it out.",
                ),
                &["upstream", "endpoint"],
            )
            .expect("static metric definition is valid"),
        );
        let compression = CompressionMetrics {
            bytes_in: CODINGS.map(|c| bytes_in.with_label_values(&[c])),
            bytes_out: CODINGS.map(|c| bytes_out.with_label_values(&[c])),
        };
        #[cfg(target_os = "linux")]
        if let Err(e) = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )) {
            log::error!("process metrics unavailable: {e}");
        }
        let clients = clients::ClientMetrics::register(&registry);
        let shared_tier = Arc::new(shared_cache::SharedTierMetrics::register(&registry));
        Metrics {
            shared_tier,
            registry,
            request_buckets,
            config,
            requests,
            request_duration,
            upstream_requests,
            upstream_duration,
            inflight,
            compressed,
            conditional,
            cache_lookups,
            breaker_state,
            breaker_transitions,
            rate_limited,
            retries,
            retries_refused,
            health_checks,
            endpoint_healthy,
            compression,
            clients,
        }
    }

    /// The latency objectives (seconds) that have no bucket in the running histogram: a
    /// reload cannot add one, so their alerts would find no series until a restart.
    pub(crate) fn missing_latency_buckets(&self, objectives: &[f64]) -> Vec<f64> {
        objectives
            .iter()
            .copied()
            .filter(|o| !self.request_buckets.contains(o))
            .collect()
    }

    /// Exports the response cache's gauges and counters, read from `source` at each scrape.
    pub(crate) fn register_cache(&self, source: cache::CacheSource) {
        if let Err(e) = self
            .registry
            .register(Box::new(cache::CacheCollector::new(source)))
        {
            log::error!("cache metrics unavailable: {e}");
        }
    }

    /// Resolves the handles for `policy`. Series of names that already existed are reused, so
    /// counts carry over a reload.
    pub fn bind(&self, policy: &Policy) -> Bound {
        Bound {
            compression: self.compression.clone(),
            routes: policy
                .routes
                .routes
                .iter()
                .map(|r| RouteMetrics {
                    counts: self.requests.route(&r.name),
                    duration: self.request_duration.with_label_values(&[&*r.name]),
                    compressed: CODINGS.map(|c| self.compressed.with_label_values(&[&*r.name, c])),
                    not_modified: self.conditional.with_label_values(&[&*r.name, "304"]),
                    precondition_failed: self.conditional.with_label_values(&[&*r.name, "412"]),
                    cache_lookups: CacheResult::ALL
                        .map(|c| self.cache_lookups.with_label_values(&[&*r.name, c.label()])),
                    rate_limited: r
                        .rate_limit
                        .as_ref()
                        .map(|_| self.rate_limited.with_label_values(&[&*r.name])),
                })
                .collect(),
            upstreams: policy
                .upstreams
                .iter()
                .map(|u| UpstreamMetrics {
                    outcomes: Outcome::ALL.map(|o| {
                        self.upstream_requests
                            .with_label_values(&[&*u.name, o.label()])
                    }),
                    duration: self.upstream_duration.with_label_values(&[&*u.name]),
                    inflight: self.inflight.with_label_values(&[&*u.name]),
                    breaker_state: self.breaker_state.with_label_values(&[&*u.name]),
                    breaker_transitions: BREAKER_STATES
                        .map(|to| self.breaker_transitions.with_label_values(&[&*u.name, to])),
                    retries: crate::resilience::RetryReason::LABELS
                        .map(|r| self.retries.with_label_values(&[&*u.name, r])),
                    retries_refused: self.retries_refused.with_label_values(&[&*u.name]),
                })
                .collect(),
        }
    }

    /// Stops exporting the series of routes and upstreams that `current` no longer has.
    pub(crate) fn prune(&self, previous: &Policy, current: &Policy) {
        for r in previous.all_routes() {
            if current
                .all_routes()
                .all(|c| c.name != r.name || c.rate_limit.is_none())
            {
                let _ = self.rate_limited.remove_label_values(&[&*r.name]);
            }
            if current.all_routes().all(|c| c.name != r.name) {
                let _ = self.request_duration.remove_label_values(&[&*r.name]);
                for c in CODINGS {
                    let _ = self.compressed.remove_label_values(&[&*r.name, c]);
                }
                for status in ["304", "412"] {
                    let _ = self.conditional.remove_label_values(&[&*r.name, status]);
                }
                for result in CacheResult::ALL {
                    let _ = self
                        .cache_lookups
                        .remove_label_values(&[&*r.name, result.label()]);
                }
            }
        }
        self.requests
            .retain(|name| current.all_routes().any(|r| &*r.name == name));
        for u in &previous.upstreams {
            if current.upstream(&u.name).is_none() {
                for o in Outcome::ALL {
                    let _ = self
                        .upstream_requests
                        .remove_label_values(&[&*u.name, o.label()]);
                }
                let _ = self.upstream_duration.remove_label_values(&[&*u.name]);
                let _ = self.inflight.remove_label_values(&[&*u.name]);
                let _ = self.breaker_state.remove_label_values(&[&*u.name]);
                for to in BREAKER_STATES {
                    let _ = self
                        .breaker_transitions
                        .remove_label_values(&[&*u.name, to]);
                }
                for r in crate::resilience::RetryReason::LABELS {
                    let _ = self.retries.remove_label_values(&[&*u.name, r]);
                }
                let _ = self.retries_refused.remove_label_values(&[&*u.name]);
            }
            // An endpoint no longer probed (removed, or its upstream's health check turned off)
            // would otherwise keep exporting its last verdict, which alerts and the dashboard read.
            let still_probed = |label: &str| {
                current.upstream(&u.name).is_some_and(|c| {
                    c.health_check.is_some() && c.endpoints.iter().any(|e| e.label == label)
                })
            };
            for e in u.endpoints.iter().filter(|e| !still_probed(&e.label)) {
                let _ = self
                    .endpoint_healthy
                    .remove_label_values(&[&*u.name, &e.label]);
                for result in ["ok", "fail"] {
                    let _ = self
                        .health_checks
                        .remove_label_values(&[&*u.name, &e.label, result]);
                }
            }
        }
    }

    /// Counts one active health probe (off the request path: resolves its series by label).
    pub(crate) fn health_check(&self, upstream: &str, endpoint: &str, ok: bool) {
        let result = if ok { "ok" } else { "fail" };
        self.health_checks
            .with_label_values(&[upstream, endpoint, result])
            .inc();
    }

    /// Shows an endpoint's active health verdict.
    pub(crate) fn endpoint_healthy(&self, upstream: &str, endpoint: &str, healthy: bool) {
        self.endpoint_healthy
            .with_label_values(&[upstream, endpoint])
            .set(i64::from(healthy));
    }

    /// The text exposition format (0.0.4) of every registered family.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec fails only on malformed families, which registration prevents.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// [`LATENCY_BUCKETS`] with `extra` added, sorted, without duplicates or invalid values.
fn merged_buckets(extra: &[f64]) -> Vec<f64> {
    let mut all: Vec<f64> = LATENCY_BUCKETS
        .iter()
        .chain(extra)
        .copied()
        .filter(|b| b.is_finite() && *b > 0.0)
        .collect();
    all.sort_by(f64::total_cmp);
    all.dedup();
    all
}

/// Lets the registry own a handle to a collector we also keep.
struct SharedCollector<C>(Arc<C>);

impl<C: prometheus::core::Collector> prometheus::core::Collector for SharedCollector<C> {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.0.collect()
    }
}

/// `outrider_config_*`: what hot reload did.
pub(crate) struct ConfigMetrics {
    pub(crate) reload_success: IntCounter,
    pub(crate) reload_failure: IntCounter,
    pub(crate) last_reload_successful: IntGauge,
    pub(crate) generation: IntGauge,
}

/// Registers `collector`. Names are static and unique, so a failure is a programming error that
/// the unit test below catches; it is logged rather than fatal.
fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    collector: C,
) -> C {
    if let Err(e) = registry.register(Box::new(collector.clone())) {
        log::error!("metric registration failed: {e}");
    }
    collector
}

// Static metric definitions (constant names, help and labels, never input) fail only on an
// invalid name, which the unit tests would catch at once.
#[allow(clippy::expect_used)]
fn histogram_vec(name: &str, help: &str, label: &str) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        &[label],
    )
    .expect("static metric definition is valid")
}

// Static metric definitions (constant names, help and labels, never input) fail only on an
// invalid name, which the unit tests would catch at once.
#[allow(clippy::expect_used)]
fn int_counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition is valid")
}

// Static metric definitions (constant names, help and labels, never input) fail only on an
// invalid name, which the unit tests would catch at once.
#[allow(clippy::expect_used)]
fn int_gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("static metric definition is valid")
}

impl ConfigMetrics {
    fn register(registry: &Registry) -> ConfigMetrics {
        let reloads = register(
            registry,
            int_counter_vec(
                "outrider_config_reloads_total",
                "Policy reload attempts by result.",
                &["result"],
            ),
        );
        let last = register(
            registry,
            int_gauge(
                "outrider_config_last_reload_successful",
                "1 if the last policy reload attempt succeeded (or none was attempted yet), else 0.",
            ),
        );
        let generation = register(
            registry,
            int_gauge(
                "outrider_config_generation",
                "Generation of the running policy: 1 at start, +1 per successful reload.",
            ),
        );
        last.set(1);
        generation.set(1);
        ConfigMetrics {
            reload_success: reloads.with_label_values(&["success"]),
            reload_failure: reloads.with_label_values(&["failure"]),
            last_reload_successful: last,
            generation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_families_export_bound_routes_and_drop_removed_ones() {
        let m = Metrics::new();
        let a = crate::config::compile(
            "[upstreams.u]\nendpoints=[\"127.0.0.1:1\"]\n[[routes]]\nname=\"r1\"\n[[routes]]\nname=\"r2\"\n",
            "t",
        )
        .unwrap();
        let bound = m.bind(&a);
        bound.routes[0].counts.record(0, 200);
        bound.routes[1].duration.observe(0.003);
        bound.upstreams[0].record(Outcome::Timeout);
        let text = String::from_utf8(m.encode()).unwrap();
        assert!(
            text.contains("outrider_requests_total{method=\"GET\",route=\"r1\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("outrider_request_duration_seconds_bucket{route=\"r2\",le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("outrider_upstream_requests_total{outcome=\"timeout\",upstream=\"u\"} 1"),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes"), "{text}");

        let b = crate::config::compile(
            "[upstreams.u]\nendpoints=[\"127.0.0.1:1\"]\n[[routes]]\nname=\"r2\"\n",
            "t",
        )
        .unwrap();
        let again = m.bind(&b);
        m.prune(&a, &b);
        assert_eq!(
            again.routes[0].duration.get_sample_count(),
            1,
            "r2 carries over"
        );
        let text = String::from_utf8(m.encode()).unwrap();
        assert!(!text.contains("route=\"r1\""), "{text}");
    }

    #[test]
    fn latency_objectives_become_request_buckets() {
        let m = Metrics::with_latency_objectives(&[0.2, 0.25, 3.0]);
        let p =
            crate::config::compile("[upstreams.u]\nendpoints=[\"127.0.0.1:1\"]\n", "t").unwrap();
        m.bind(&p).routes[0].duration.observe(0.15);
        let text = String::from_utf8(m.encode()).unwrap();
        for le in ["0.2", "0.25", "3"] {
            assert!(
                text.contains(&format!(
                    "outrider_request_duration_seconds_bucket{{route=\"default\",le=\"{le}\"}} "
                )),
                "{le}: {text}"
            );
        }
        assert_eq!(m.missing_latency_buckets(&[0.2, 0.3, 1.0]), vec![0.3]);
    }

    #[test]
    fn families_register_and_encode_with_prefix() {
        let m = Metrics::new();
        m.config.reload_success.inc();
        let text = String::from_utf8(m.encode()).unwrap();
        assert!(
            text.contains("outrider_config_reloads_total{result=\"success\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("outrider_config_reloads_total{result=\"failure\"} 0"),
            "{text}"
        );
        assert!(text.contains("outrider_config_generation 1"), "{text}");
        assert!(
            text.contains("outrider_config_last_reload_successful 1"),
            "{text}"
        );
    }
}
