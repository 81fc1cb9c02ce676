//! State shared by the data plane, the admin plane and background services: the current
//! policy snapshot ([`Active`]) and the process-level facts that outlive any one policy (cache,
//! breaker registry, metrics, reload history, drain state).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use super::active::Active;
use super::CacheBackend;
use crate::breaker::Registry;
use crate::config::{Policy, Startup};
use crate::metrics::reloads::ReloadStatus;
use crate::metrics::stats::StatsWindow;
use crate::metrics::Metrics;
use crate::resilience::{HealthRegistry, RateLimiters, RetryBudgets};

pub struct Shared {
    policy: ArcSwap<Active>,
    /// Where the policy came from (None for a policy compiled from memory, as in tests).
    pub(crate) config_path: Option<PathBuf>,
    pub(crate) started: Instant,
    draining: AtomicBool,
    inflight: AtomicUsize,
    pub metrics: Metrics,
    /// Settings Pingora read at startup; a reload cannot change them.
    pub startup: Startup,
    reload: std::sync::Mutex<ReloadStatus>,
    pub stats: StatsWindow,
    /// Breaker and limiter state by upstream name; locked only while a policy is applied.
    breakers: std::sync::Mutex<Registry>,
    /// Rate-limit buckets by route name; locked only while a policy is applied.
    rate_limiters: std::sync::Mutex<RateLimiters>,
    /// Retry budgets by upstream name; locked only while a policy is applied.
    retry_budgets: std::sync::Mutex<RetryBudgets>,
    /// Active health by upstream and endpoint name; locked only while a policy is applied.
    health: std::sync::Mutex<HealthRegistry>,
    /// The response cache: created once, kept across reloads (only its limits change).
    pub cache: &'static CacheBackend,
    /// The slow-request log's rate limit, per process.
    pub(crate) slow_log: super::slow_log::SlowLog,
    /// What `GET /advice` reports; fed with `try_lock` only (see `advice`).
    pub(crate) advisor: std::sync::Mutex<crate::advisor::Advisor>,
}

impl Shared {
    /// State for a policy compiled from memory (tests, the embedded demo policy).
    pub fn new(policy: Policy, config_path: Option<PathBuf>) -> Arc<Self> {
        Shared::with_source(policy, config_path, String::new())
    }

    /// State for a policy loaded from `config_path`, whose bytes hash to `source_sha256`.
    pub fn with_source(
        policy: Policy,
        config_path: Option<PathBuf>,
        source_sha256: String,
    ) -> Arc<Self> {
        let metrics = Metrics::with_latency_objectives(&crate::slo::latency_boundaries(&policy));
        let breakers = std::sync::Mutex::new(Registry::default());
        let rate_limiters = std::sync::Mutex::new(RateLimiters::default());
        let retry_budgets = std::sync::Mutex::new(RetryBudgets::default());
        let health = std::sync::Mutex::new(HealthRegistry::default());
        let cache = CacheBackend::leak(
            policy.cache_store.max_size,
            policy.cache_store.max_object_size,
        );
        metrics.register_cache(Box::new(move || cache.figures()));
        if let Some(tier) = &policy.cache_store.shared {
            match super::shared_tier::SharedTier::new(tier, metrics.shared_tier.clone()) {
                Ok(tier) => {
                    let _ = cache.tier.set(tier);
                }
                Err(e) => log::error!("shared cache tier disabled: {e}"),
            }
        }
        Arc::new(Shared {
            cache,
            startup: Startup::of(&policy),
            policy: ArcSwap::from_pointee(Active::bind(
                policy,
                &metrics,
                &breakers,
                &rate_limiters,
                &retry_budgets,
                &health,
            )),
            health,
            breakers,
            rate_limiters,
            retry_budgets,
            config_path,
            started: Instant::now(),
            draining: AtomicBool::new(false),
            inflight: AtomicUsize::new(0),
            slow_log: Default::default(),
            advisor: std::sync::Mutex::new(crate::advisor::Advisor::new(Instant::now())),
            metrics,
            reload: std::sync::Mutex::new(ReloadStatus::initial(source_sha256)),
            stats: StatsWindow::default(),
        })
    }

    /// The reload history, locked: reloads hold it for their whole run, which serializes them.
    pub fn reload_status_lock(&self) -> std::sync::MutexGuard<'_, ReloadStatus> {
        // A panic while holding it cannot leave the status half-written in a harmful way.
        self.reload
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn reload_status(&self) -> ReloadStatus {
        self.reload_status_lock().clone()
    }

    /// The current snapshot. A request calls this once and keeps the `Arc` to its end.
    pub fn policy(&self) -> Arc<Active> {
        self.policy.load_full()
    }

    /// Applies `policy`: resolves its metric handles (reusing the series of names that stay),
    /// swaps it in, then stops exporting the names it dropped.
    pub fn store_policy(&self, policy: Policy) {
        let evicted = self.cache.store.set_limits(
            policy.cache_store.max_size,
            policy.cache_store.max_object_size,
        );
        if evicted > 0 {
            log::info!("cache limits changed: {evicted} objects evicted to fit");
        }
        let active = Active::bind(
            policy,
            &self.metrics,
            &self.breakers,
            &self.rate_limiters,
            &self.retry_budgets,
            &self.health,
        );
        let previous = self.policy.swap(Arc::new(active));
        self.metrics
            .prune(&previous.policy, &self.policy.load().policy);
    }

    /// Set once shutdown begins: readiness turns 503 so that load balancers stop sending.
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Data-plane requests currently between `new_ctx` and the end of `logging`.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::SeqCst)
    }

    /// Counts a request in flight until the returned guard drops.
    pub(crate) fn track_request(self: &Arc<Self>) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        InflightGuard(self.clone())
    }
}

pub struct InflightGuard(Arc<Shared>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}
