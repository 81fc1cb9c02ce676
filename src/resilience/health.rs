//! Active health checking's state per endpoint: consecutive probe results against the
//! thresholds, and the verdict the request path reads (one atomic load). An endpoint starts
//! healthy (it takes traffic until probes say otherwise, as with passive checks only); it is
//! taken out after `unhealthy_threshold` failed probes in a row and brought back after
//! `healthy_threshold` successful ones. Kept across reloads by upstream and endpoint name.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::config::policy::HealthCheckPolicy;

/// One endpoint's health.
#[derive(Debug)]
pub struct EndpointHealth {
    healthy: AtomicBool,
    /// (consecutive successes, consecutive failures).
    streak: Mutex<(u32, u32)>,
}

/// Every endpoint's health, by (upstream, endpoint) name.
#[derive(Default)]
pub struct HealthRegistry {
    by_endpoint: HashMap<(Arc<str>, String), Arc<EndpointHealth>>,
}

// === impl EndpointHealth ===

impl Default for EndpointHealth {
    fn default() -> Self {
        EndpointHealth {
            healthy: AtomicBool::new(true),
            streak: Mutex::new((0, 0)),
        }
    }
}

impl EndpointHealth {
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Records one probe; returns the new verdict when it changed.
    pub fn record(&self, ok: bool, policy: &HealthCheckPolicy) -> Option<bool> {
        let mut streak = self.streak.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            *streak = (streak.0.saturating_add(1), 0);
        } else {
            *streak = (0, streak.1.saturating_add(1));
        }
        let healthy = self.is_healthy();
        let flip = if healthy {
            streak.1 >= policy.unhealthy_threshold
        } else {
            streak.0 >= policy.healthy_threshold
        };
        if !flip {
            return None;
        }
        self.healthy.store(!healthy, Ordering::Release);
        Some(!healthy)
    }
}

// === impl HealthRegistry ===

impl HealthRegistry {
    /// The health of every endpoint of `upstreams` (name, endpoint labels), in order; names
    /// that stay keep their state, a new or changed one starts healthy.
    pub fn bind<'a>(
        &mut self,
        upstreams: impl Iterator<Item = (&'a Arc<str>, Vec<&'a str>, bool)>,
    ) -> Vec<Vec<Arc<EndpointHealth>>> {
        let mut kept = HashMap::new();
        let bound = upstreams
            .map(|(name, labels, checked)| {
                labels
                    .into_iter()
                    .map(|label| {
                        let key = (name.clone(), label.to_string());
                        let health = match self.by_endpoint.get(&key) {
                            Some(h) if checked => h.clone(),
                            _ => Arc::new(EndpointHealth::default()),
                        };
                        kept.insert(key, health.clone());
                        health
                    })
                    .collect()
            })
            .collect();
        self.by_endpoint = kept;
        bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn policy() -> HealthCheckPolicy {
        HealthCheckPolicy {
            path: "/healthz".into(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            expect_status: vec![200],
        }
    }

    #[test]
    fn thresholds_take_an_endpoint_out_and_bring_it_back() {
        let h = EndpointHealth::default();
        let p = policy();
        assert!(h.is_healthy());
        assert_eq!(h.record(false, &p), None);
        assert_eq!(h.record(false, &p), None);
        assert_eq!(
            h.record(true, &p),
            None,
            "a success resets the failure streak"
        );
        assert_eq!(h.record(false, &p), None);
        assert_eq!(h.record(false, &p), None);
        assert_eq!(h.record(false, &p), Some(false));
        assert!(!h.is_healthy());
        assert_eq!(h.record(true, &p), None);
        assert_eq!(h.record(true, &p), Some(true));
        assert!(h.is_healthy());
    }

    #[test]
    fn state_survives_a_reload_by_name() {
        let mut reg = HealthRegistry::default();
        let app: Arc<str> = "app".into();
        let first = reg.bind([(&app, vec!["a:1", "b:2"], true)].into_iter());
        let p = policy();
        for _ in 0..3 {
            first[0][1].record(false, &p);
        }
        let again = reg.bind([(&app, vec!["b:2"], true)].into_iter());
        assert!(!again[0][0].is_healthy());
        let unchecked = reg.bind([(&app, vec!["b:2"], false)].into_iter());
        assert!(unchecked[0][0].is_healthy(), "checks off: healthy");
    }
}
