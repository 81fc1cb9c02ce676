//! The bound per-policy state a request runs on: the compiled policy, the metric handles
//! resolved for its routes and upstreams, and each upstream's breaker guard. Built once per
//! policy (at start and on each reload) and swapped whole, so a request that loaded it sees
//! one consistent snapshot to its end.

use std::sync::Arc;
use std::time::Instant;

use crate::breaker::{Registry, UpstreamGuard};
use crate::config::Policy;
use crate::metrics::{Bound, Metrics};
use crate::resilience::{
    EndpointHealth, HealthRegistry, RateLimiter, RateLimiters, RetryBudget, RetryBudgets,
};

/// What a request runs on: the policy and the metric handles resolved for it. Swapped whole,
/// so handles and policy indexes always agree.
pub struct Active {
    pub(crate) policy: Policy,
    pub(crate) metrics: Bound,
    /// Each upstream's breakers and concurrency limit, indexed like `policy.upstreams`:
    /// handles onto state that outlives the snapshot (see `breaker::Registry`).
    pub(crate) breakers: Vec<UpstreamGuard>,
    /// Each route's rate limiter (`None`: no limit), indexed like the routes: handles onto
    /// buckets that outlive the snapshot while the limit is unchanged.
    pub(crate) rate_limiters: Vec<Option<Arc<RateLimiter>>>,
    /// Each upstream's retry budget, indexed like `policy.upstreams`; kept across reloads.
    pub(crate) retry_budgets: Vec<Arc<RetryBudget>>,
    /// Each upstream's endpoints' active health, indexed like `policy.upstreams` and their
    /// endpoints; all healthy where the upstream has no `health_check`.
    pub(crate) health: Vec<Vec<Arc<EndpointHealth>>>,
}

impl Active {
    /// Resolves `policy`'s metric handles and breaker guards, keeping the state of names that
    /// stay, and shows each upstream's breaker state in its gauge.
    pub(super) fn bind(
        policy: Policy,
        metrics: &Metrics,
        registry: &std::sync::Mutex<Registry>,
        limiters: &std::sync::Mutex<RateLimiters>,
        budgets: &std::sync::Mutex<RetryBudgets>,
        health: &std::sync::Mutex<HealthRegistry>,
    ) -> Active {
        let bound = metrics.bind(&policy);
        let (breakers, changes) = registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .bind(&policy.upstreams, Instant::now());
        for change in changes {
            let index = policy
                .upstreams
                .iter()
                .position(|u| u.name == change.upstream);
            crate::metrics::report_breaker_changes(
                &change.upstream,
                &change.endpoint,
                change.changes,
                index.and_then(|i| bound.upstreams.get(i)),
            );
        }
        for (guard, m) in breakers.iter().zip(&bound.upstreams) {
            m.breaker_state.set(guard.state().gauge_value());
        }
        let rate_limiters = limiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .bind(
                policy
                    .all_routes()
                    .map(|r| (&r.name, r.rate_limit.as_ref())),
                Instant::now(),
            );
        let retry_budgets = budgets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .bind(policy.upstreams.iter().map(|u| &u.name), Instant::now());
        let health = health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .bind(policy.upstreams.iter().map(|u| {
                (
                    &u.name,
                    u.endpoints.iter().map(|e| e.label.as_str()).collect(),
                    u.health_check.is_some(),
                )
            }));
        Active {
            policy,
            metrics: bound,
            breakers,
            rate_limiters,
            retry_budgets,
            health,
        }
    }
}

impl std::ops::Deref for Active {
    type Target = Policy;

    fn deref(&self) -> &Policy {
        &self.policy
    }
}
