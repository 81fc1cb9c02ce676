//! One upstream's resilience, as the proxy uses it: a [`Breaker`] per endpoint, the
//! concurrency [`Limiter`], and the upstream-level state derived from the endpoints; plus the
//! [`Registry`] that keeps all of it across policy reloads.
//!
//! Choices, and why:
//! - **The upstream-level breaker is derived, not counted.** The issue asks that it open only
//!   when no endpoint is usable; a second set of counters over the same requests could open
//!   while an endpoint still answers. So the upstream is *closed* while any endpoint is closed,
//!   *half-open* while none is closed and one is probing, and *open* when every endpoint is
//!   open. With one endpoint (the sidecar case) the two are the same breaker.
//! - **It changes only when an endpoint changes**, so working it out costs nothing on the
//!   request path: [`UpstreamGuard::settle`] runs under a small mutex only after an endpoint's
//!   transition, and reports the upstream's own transition exactly once.
//! - **Reloads keep state by name**: an upstream by its name, an endpoint by its label as
//!   written (`host:port`). Changed thresholds apply to the state that is there
//!   ([`Breaker::reconfigure`]); a new endpoint starts closed; a removed one is forgotten.
//! - **The limit comes before the breaker**, so a request over the limit never takes a
//!   half-open probe slot it could not use.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::endpoints::{pick_endpoint, pick_other_endpoint, Pick};
use super::jitter::Jitter;
use super::limiter::{Limiter, Permit};
use super::state::{Breaker, Outcome, Pass, Snapshot, State, Transition};
use crate::config::policy::Upstream;

/// `Retry-After` for a request refused by the concurrency limit: a slot frees as soon as any
/// in-flight request ends, so the smallest hint the field can carry.
pub const OVER_LIMIT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The resilience state of one upstream in one policy snapshot. Cheap to build on reload:
/// every field is a handle onto state the [`Registry`] keeps.
#[derive(Debug)]
pub struct UpstreamGuard {
    endpoints: Vec<Breaker>,
    labels: Vec<Arc<str>>,
    limiter: Limiter,
    level: Arc<Mutex<State>>,
}

/// Why a request was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Every endpoint's breaker is open (or half-open with its probe slots taken).
    BreakerOpen,
    /// `max_concurrent` requests are already in flight.
    OverLimit,
}

/// A refused request: why, and how long until trying again makes sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub(crate) cause: Cause,
    pub(crate) retry_after: Duration,
}

/// An endpoint chosen for one attempt.
#[must_use = "keep the pass until the attempt's outcome is recorded"]
#[derive(Debug)]
pub struct Chosen {
    pub index: usize,
    pub pass: Pass,
    /// The endpoint's transition that choosing it caused (open → half-open), already settled
    /// into the upstream's state.
    pub(crate) changes: Changes,
}

/// The transitions one call caused: the endpoint's own, and the upstream's if the endpoint's
/// moved it. Each is reported by exactly one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    pub(crate) endpoint: Option<Transition>,
    pub(crate) upstream: Option<(State, State)>,
}

/// What `GET /breakers` shows for one upstream.
#[derive(Debug, Clone)]
pub struct UpstreamSnapshot {
    pub(crate) state: State,
    pub(crate) in_flight: usize,
    pub(crate) max_concurrent: usize,
    pub(crate) endpoints: Vec<(Arc<str>, Snapshot)>,
}

// === impl UpstreamGuard ===

impl UpstreamGuard {
    /// A slot under `max_concurrent`, held until the permit drops; `None` over the limit.
    pub fn acquire(&self) -> Result<Permit, Rejection> {
        self.limiter.try_acquire().ok_or(Rejection {
            cause: Cause::OverLimit,
            retry_after: OVER_LIMIT_RETRY_AFTER,
        })
    }

    /// The first endpoint from `start` (round-robin) whose breaker admits the request.
    pub fn choose(&self, start: usize, now: Instant) -> Result<Chosen, Rejection> {
        self.chosen(pick_endpoint(&self.endpoints, start, now))
    }

    /// Like [`Self::choose`], never `skip`: where a retry goes after `skip` refused.
    pub(crate) fn choose_other(
        &self,
        start: usize,
        skip: usize,
        now: Instant,
    ) -> Result<Chosen, Rejection> {
        self.chosen(pick_other_endpoint(&self.endpoints, start, skip, now))
    }

    /// Like [`Self::choose`] (or [`Self::choose_other`] with `skip`), over the endpoints
    /// `eligible` admits only.
    pub(crate) fn choose_eligible(
        &self,
        start: usize,
        skip: Option<usize>,
        eligible: &dyn Fn(usize) -> bool,
        now: Instant,
    ) -> Result<Chosen, Rejection> {
        self.chosen(super::endpoints::pick_eligible(
            &self.endpoints,
            start,
            skip,
            eligible,
            now,
        ))
    }

    fn chosen(&self, pick: Pick) -> Result<Chosen, Rejection> {
        match pick {
            Pick::Endpoint {
                index,
                pass,
                transition,
            } => Ok(Chosen {
                index,
                pass,
                changes: self.settle(transition),
            }),
            Pick::Exhausted { retry_after } => Err(Rejection {
                cause: Cause::BreakerOpen,
                retry_after,
            }),
        }
    }

    /// Records an attempt on endpoint `index` with the pass it was admitted with.
    pub fn record(&self, index: usize, pass: Pass, outcome: Outcome, now: Instant) -> Changes {
        let transition = self
            .endpoints
            .get(index)
            .and_then(|b| b.record(pass, outcome, now));
        self.settle(transition)
    }

    /// The upstream-level state (see the module doc), from one atomic load per endpoint.
    pub(crate) fn state(&self) -> State {
        derive(&self.endpoints)
    }

    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.limiter.in_flight()
    }

    pub(crate) fn snapshot(&self, now: Instant) -> UpstreamSnapshot {
        UpstreamSnapshot {
            state: self.state(),
            in_flight: self.limiter.in_flight(),
            max_concurrent: self.limiter.max(),
            endpoints: self
                .labels
                .iter()
                .cloned()
                .zip(self.endpoints.iter().map(|b| b.snapshot(now)))
                .collect(),
        }
    }

    /// After an endpoint's `transition`, works the upstream's state out again and reports its
    /// change, once, to whichever call finds it changed.
    fn settle(&self, transition: Option<Transition>) -> Changes {
        let Some(endpoint) = transition else {
            return Changes::default();
        };
        let mut level = self.level.lock();
        let now = derive(&self.endpoints);
        let before = std::mem::replace(&mut *level, now);
        Changes {
            endpoint: Some(endpoint),
            upstream: (before != now).then_some((before, now)),
        }
    }
}

fn derive(endpoints: &[Breaker]) -> State {
    let mut half_open = false;
    for breaker in endpoints {
        match breaker.state() {
            State::Closed => return State::Closed,
            State::HalfOpen => half_open = true,
            State::Open => {}
        }
    }
    if half_open {
        State::HalfOpen
    } else if endpoints.is_empty() {
        State::Closed
    } else {
        State::Open
    }
}

/// Every upstream's breakers and limiter by name, kept across reloads. Touched only when a
/// policy is applied; requests use the [`UpstreamGuard`]s it hands out.
#[derive(Debug, Default)]
pub struct Registry {
    upstreams: HashMap<Arc<str>, Kept>,
}

#[derive(Debug)]
struct Kept {
    limiter: Limiter,
    endpoints: HashMap<Arc<str>, Breaker>,
    level: Arc<Mutex<State>>,
}

/// A transition a reload caused (a breaker disabled while open), for the log and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadChange {
    pub(crate) upstream: Arc<str>,
    pub(crate) endpoint: Arc<str>,
    pub(crate) changes: Changes,
}

impl Registry {
    /// Guards for `upstreams` (indexed alike), reusing the state of names that stay and
    /// dropping the state of names that went.
    pub fn bind(
        &mut self,
        upstreams: &[Arc<Upstream>],
        now: Instant,
    ) -> (Vec<UpstreamGuard>, Vec<ReloadChange>) {
        let mut reload_changes = Vec::new();
        self.upstreams
            .retain(|name, _| upstreams.iter().any(|u| &u.name == name));
        let guards = upstreams
            .iter()
            .map(|u| {
                let kept = self
                    .upstreams
                    .entry(u.name.clone())
                    .or_insert_with(|| Kept {
                        limiter: Limiter::new(u.max_concurrent),
                        endpoints: HashMap::new(),
                        level: Arc::new(Mutex::new(State::Closed)),
                    });
                kept.limiter.set_max(u.max_concurrent);
                kept.endpoints
                    .retain(|label, _| u.endpoints.iter().any(|e| e.label.as_str() == &**label));
                let mut transitions = Vec::new();
                let (labels, endpoints): (Vec<Arc<str>>, Vec<Breaker>) = u
                    .endpoints
                    .iter()
                    .map(|e| {
                        let label: Arc<str> = Arc::from(e.label.as_str());
                        let breaker = match kept.endpoints.get(&label) {
                            Some(existing) => {
                                if let Some(t) = existing.reconfigure(&u.breaker) {
                                    transitions.push((label.clone(), t));
                                }
                                existing.clone()
                            }
                            None => {
                                let jitter = Jitter::seeded(seed(&u.name, &label));
                                let fresh = Breaker::new(&u.breaker, jitter, now);
                                kept.endpoints.insert(label.clone(), fresh.clone());
                                fresh
                            }
                        };
                        (label, breaker)
                    })
                    .unzip();
                let guard = UpstreamGuard {
                    endpoints,
                    labels,
                    limiter: kept.limiter.clone(),
                    level: kept.level.clone(),
                };
                for (endpoint, transition) in transitions {
                    reload_changes.push(ReloadChange {
                        upstream: u.name.clone(),
                        endpoint,
                        changes: guard.settle(Some(transition)),
                    });
                }
                // Endpoints added or removed can change the derived state with no breaker
                // moving; settle it so the next transition is reported from the right place.
                *guard.level.lock() = guard.state();
                guard
            })
            .collect();
        (guards, reload_changes)
    }
}

/// A per-breaker jitter seed: the same names give the same sequence, so runs are reproducible,
/// and different endpoints (and sidecars in front of different upstreams) do not probe together.
fn seed(upstream: &str, endpoint: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    upstream.hash(&mut hasher);
    endpoint.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::Admission;
    use crate::config::compile;

    fn upstreams(toml: &str) -> Vec<Arc<Upstream>> {
        match compile(toml, "test.toml") {
            Ok(policy) => policy.upstreams,
            Err(errors) => panic!("config does not compile: {errors:?}"),
        }
    }

    const TWO: &str = r#"
        [upstreams.app]
        endpoints = ["127.0.0.1:1", "127.0.0.1:2"]
        max_concurrent = 2
        [upstreams.app.breaker]
        consecutive_failures = 1
        open_for = "10s"
        half_open_probes = 1
    "#;

    fn fail(guard: &UpstreamGuard, index: usize, now: Instant) -> Changes {
        let Ok(chosen) = guard.choose(index, now) else {
            panic!("expected an endpoint");
        };
        assert_eq!(chosen.index, index);
        guard.record(index, chosen.pass, Outcome::Failure, now)
    }

    #[test]
    fn the_upstream_opens_only_when_every_endpoint_is_open() {
        let t0 = Instant::now();
        let mut registry = Registry::default();
        let (guards, _) = registry.bind(&upstreams(TWO), t0);
        let guard = &guards[0];
        let first = fail(guard, 0, t0);
        assert_eq!(first.endpoint.map(|t| t.to), Some(State::Open));
        assert_eq!(first.upstream, None);
        assert_eq!(guard.state(), State::Closed);
        // The healthy endpoint takes everything meanwhile.
        for start in 0..4 {
            let chosen = guard.choose(start, t0).map(|c| c.index);
            assert_eq!(chosen.ok(), Some(1));
        }
        let second = fail(guard, 1, t0);
        assert_eq!(second.upstream, Some((State::Closed, State::Open)));
        assert_eq!(guard.state(), State::Open);
        let Err(rejection) = guard.choose(0, t0 + Duration::from_secs(1)) else {
            panic!("both endpoints are open");
        };
        assert_eq!(rejection.cause, Cause::BreakerOpen);
        assert!(rejection.retry_after <= Duration::from_secs(10));
        assert!(rejection.retry_after >= Duration::from_secs(7));
    }

    #[test]
    fn a_probe_moves_the_upstream_to_half_open_then_closed() {
        let t0 = Instant::now();
        let mut registry = Registry::default();
        let (guards, _) = registry.bind(&upstreams(TWO), t0);
        let guard = &guards[0];
        fail(guard, 0, t0);
        fail(guard, 1, t0);
        let later = t0 + Duration::from_secs(12);
        let Ok(probe) = guard.choose(0, later) else {
            panic!("the open period is over");
        };
        assert!(probe.pass.is_probe());
        assert_eq!(probe.changes.upstream, Some((State::Open, State::HalfOpen)));
        let closed = guard.record(probe.index, probe.pass, Outcome::Success, later);
        assert_eq!(closed.upstream, Some((State::HalfOpen, State::Closed)));
        assert_eq!(guard.state(), State::Closed);
    }

    #[test]
    fn the_limit_rejects_at_once_and_frees_on_drop() {
        let t0 = Instant::now();
        let mut registry = Registry::default();
        let (guards, _) = registry.bind(&upstreams(TWO), t0);
        let guard = &guards[0];
        let a = guard.acquire();
        let b = guard.acquire();
        assert!(a.is_ok() && b.is_ok());
        let over = guard.acquire().map(drop);
        assert_eq!(
            over,
            Err(Rejection {
                cause: Cause::OverLimit,
                retry_after: OVER_LIMIT_RETRY_AFTER
            })
        );
        assert_eq!(guard.in_flight(), 2);
        drop(a);
        assert!(guard.acquire().is_ok());
    }

    #[test]
    fn a_reload_keeps_state_by_name_and_applies_new_thresholds() {
        let t0 = Instant::now();
        let mut registry = Registry::default();
        let (guards, _) = registry.bind(&upstreams(TWO), t0);
        fail(&guards[0], 0, t0);
        let _held = guards[0].acquire();

        // Same upstream, endpoint 1 replaced by 3, a higher limit.
        let edited = TWO
            .replace("127.0.0.1:2\"", "127.0.0.1:3\"")
            .replace("max_concurrent = 2", "max_concurrent = 5");
        let (guards, changes) = registry.bind(&upstreams(&edited), t0);
        assert!(changes.is_empty());
        let snapshot = guards[0].snapshot(t0);
        assert_eq!(snapshot.in_flight, 1);
        assert_eq!(snapshot.max_concurrent, 5);
        let states: Vec<(&str, State)> = snapshot
            .endpoints
            .iter()
            .map(|(label, s)| (&**label, s.state))
            .collect();
        assert_eq!(
            states,
            [("127.0.0.1:1", State::Open), ("127.0.0.1:3", State::Closed)]
        );

        // Disabling closes the open endpoint, reported once.
        let disabled = edited.replace("consecutive_failures = 1", "enabled = false");
        let (guards, changes) = registry.bind(&upstreams(&disabled), t0);
        assert_eq!(changes.len(), 1);
        assert_eq!(&*changes[0].endpoint, "127.0.0.1:1");
        assert_eq!(
            changes[0].changes.endpoint.map(|t| (t.from, t.to)),
            Some((State::Open, State::Closed))
        );
        assert!(matches!(
            guards[0].endpoints[0].admit(t0),
            Admission::Allow(_)
        ));

        // A renamed upstream starts afresh; the old name's state is gone.
        let renamed = TWO.replace("upstreams.app", "upstreams.web");
        let (guards, _) = registry.bind(&upstreams(&renamed), t0);
        assert_eq!(guards[0].snapshot(t0).in_flight, 0);
        assert_eq!(registry.upstreams.len(), 1);
    }

    #[test]
    fn a_retry_never_goes_back_to_the_endpoint_that_refused() {
        let t0 = Instant::now();
        let mut registry = Registry::default();
        let (guards, _) = registry.bind(&upstreams(TWO), t0);
        let chosen = guards[0].choose_other(0, 0, t0).map(|c| c.index);
        assert_eq!(chosen.ok(), Some(1));
        fail(&guards[0], 1, t0);
        let rejected = guards[0].choose_other(1, 0, t0).map(|c| c.index);
        assert_eq!(rejected.map_err(|r| r.cause), Err(Cause::BreakerOpen));
    }

    #[test]
    fn jitter_seeds_differ_by_endpoint() {
        assert_ne!(seed("app", "127.0.0.1:1"), seed("app", "127.0.0.1:2"));
        assert_eq!(seed("app", "127.0.0.1:1"), seed("app", "127.0.0.1:1"));
    }
}
