//! A token bucket per key, kept as GCRA (the generic cell rate algorithm): one "theoretical
//! arrival time" per key instead of a token count and a refill timestamp, so that a decision
//! is one compare and one add, exact in integer nanoseconds, with no refill task.
//!
//! - The bucket refills `requests` tokens every `per` (one every `per / requests`) and holds at
//!   most `burst` tokens; a new key starts full.
//! - A key whose bucket is full again carries no information, so it may be forgotten: that is
//!   how idle keys are evicted. The map is capped at `max_keys`; when a new key meets a full
//!   map, forgotten keys are swept first, and if none can go, the key closest to full is
//!   dropped (it loses at most what it had not yet refilled).
//! - Keys are 64-bit hashes (keyed by a per-process random seed), so a header value is never
//!   copied and a client cannot choose colliding keys.
//! - State survives a reload when a route keeps the same limit ([`RateLimiters::bind`]).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::policy::RateLimitPolicy;

/// Shards of a limiter's map, so that concurrent requests from different keys rarely meet.
const SHARDS: usize = 16;
/// The most keys one limiter tracks (a bit over 1 MiB of state at worst).
pub const DEFAULT_MAX_KEYS: usize = 65_536;

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Let through; `remaining` tokens are left in the bucket.
    Allow { remaining: u64 },
    /// Refused: the next token arrives after `retry_after`; `reset` is when the bucket is full.
    Limit {
        retry_after: Duration,
        reset: Duration,
    },
}

/// The buckets of one limit (one route).
pub struct RateLimiter {
    policy: RateLimitPolicy,
    /// Nanoseconds per token.
    interval: u64,
    /// How far ahead of now a key's arrival time may run: `(burst - 1) * interval`.
    tolerance: u64,
    epoch: Instant,
    max_keys_per_shard: usize,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<u64, u64>>>,
}

/// Every route's limiter, kept across reloads by route name while the limit stays the same.
#[derive(Default)]
pub struct RateLimiters {
    by_route: HashMap<Arc<str>, Arc<RateLimiter>>,
}

// === impl RateLimiter ===

impl RateLimiter {
    pub fn new(policy: RateLimitPolicy, epoch: Instant, max_keys: usize) -> RateLimiter {
        let per = u64::try_from(policy.per.as_nanos()).unwrap_or(u64::MAX);
        let interval = (per / u64::from(policy.requests.max(1))).max(1);
        let tolerance = interval.saturating_mul(u64::from(policy.burst.max(1) - 1));
        RateLimiter {
            policy,
            interval,
            tolerance,
            epoch,
            max_keys_per_shard: max_keys.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    pub fn policy(&self) -> &RateLimitPolicy {
        &self.policy
    }

    /// The key of a request, from the bytes that identify its client.
    pub fn key(&self, client: impl Hash) -> u64 {
        self.hasher.hash_one(client)
    }

    /// Takes one token from `key`'s bucket, or says how long until one is there.
    pub fn check(&self, key: u64, now: Instant) -> Decision {
        let now =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let shard = &self.shards[(key as usize) % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(&key) && map.len() >= self.max_keys_per_shard {
            evict(&mut map, now, self.max_keys_per_shard);
        }
        let tat = map.get(&key).copied().unwrap_or(now).max(now);
        let ahead = tat - now;
        if ahead > self.tolerance {
            let retry_after = ahead - self.tolerance;
            return Decision::Limit {
                retry_after: Duration::from_nanos(retry_after),
                reset: Duration::from_nanos(ahead),
            };
        }
        let next = tat.saturating_add(self.interval);
        map.insert(key, next);
        let used = (next - now).div_ceil(self.interval);
        Decision::Allow {
            remaining: u64::from(self.policy.burst).saturating_sub(used),
        }
    }

    /// Keys currently tracked.
    pub fn keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

/// Makes room for one key: forgets every full bucket, else the one closest to full.
fn evict(map: &mut HashMap<u64, u64>, now: u64, cap: usize) {
    map.retain(|_, tat| *tat > now);
    if map.len() >= cap {
        if let Some(oldest) = map.iter().min_by_key(|(_, tat)| **tat).map(|(k, _)| *k) {
            map.remove(&oldest);
        }
    }
}

// === impl RateLimiters ===

impl RateLimiters {
    /// The limiters for a new policy's routes (`None` where a route has no limit): a route
    /// whose name and limit are unchanged keeps its buckets; the others start empty.
    pub fn bind<'a>(
        &mut self,
        routes: impl Iterator<Item = (&'a Arc<str>, Option<&'a RateLimitPolicy>)>,
        now: Instant,
    ) -> Vec<Option<Arc<RateLimiter>>> {
        let mut kept = HashMap::new();
        let bound = routes
            .map(|(name, limit)| {
                let limit = limit?;
                let limiter = match self.by_route.get(name) {
                    Some(l) if l.policy == *limit => l.clone(),
                    _ => Arc::new(RateLimiter::new(limit.clone(), now, DEFAULT_MAX_KEYS)),
                };
                kept.insert(name.clone(), limiter.clone());
                Some(limiter)
            })
            .collect();
        self.by_route = kept;
        bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::policy::RateLimitKey;

    fn policy(requests: u32, per_ms: u64, burst: u32) -> RateLimitPolicy {
        RateLimitPolicy {
            requests,
            per: Duration::from_millis(per_ms),
            burst,
            key: RateLimitKey::ClientIp,
        }
    }

    fn count_allowed(l: &RateLimiter, key: u64, n: usize, now: Instant) -> usize {
        (0..n)
            .filter(|_| matches!(l.check(key, now), Decision::Allow { .. }))
            .count()
    }

    #[test]
    fn a_burst_gets_exactly_burst_then_the_rate() {
        let t0 = Instant::now();
        let l = RateLimiter::new(policy(10, 1000, 5), t0, 100);
        assert_eq!(count_allowed(&l, 1, 20, t0), 5);
        // One token per 100 ms.
        assert_eq!(count_allowed(&l, 1, 20, t0 + Duration::from_millis(99)), 0);
        assert_eq!(count_allowed(&l, 1, 20, t0 + Duration::from_millis(100)), 1);
        assert_eq!(count_allowed(&l, 1, 20, t0 + Duration::from_millis(350)), 2);
        // Idle long enough: full again, never more than burst.
        assert_eq!(count_allowed(&l, 1, 20, t0 + Duration::from_secs(60)), 5);
    }

    #[test]
    fn remaining_and_retry_after() {
        let t0 = Instant::now();
        let l = RateLimiter::new(policy(2, 1000, 2), t0, 100);
        assert_eq!(l.check(7, t0), Decision::Allow { remaining: 1 });
        assert_eq!(l.check(7, t0), Decision::Allow { remaining: 0 });
        assert_eq!(
            l.check(7, t0),
            Decision::Limit {
                retry_after: Duration::from_millis(500),
                reset: Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn keys_are_independent() {
        let t0 = Instant::now();
        let l = RateLimiter::new(policy(1, 1000, 1), t0, 100);
        assert_eq!(count_allowed(&l, l.key("a"), 3, t0), 1);
        assert_eq!(count_allowed(&l, l.key("b"), 3, t0), 1);
    }

    #[test]
    fn memory_is_bounded_and_idle_keys_go_first() {
        let t0 = Instant::now();
        let l = RateLimiter::new(policy(1, 1000, 1), t0, SHARDS * 4);
        for k in 0..10_000u64 {
            l.check(l.key(k), t0);
        }
        assert!(l.keys() <= SHARDS * 4, "{} keys", l.keys());
        // A second later every bucket is full again: all are swept for new keys.
        let later = t0 + Duration::from_secs(2);
        for k in 10_000..10_100u64 {
            assert!(matches!(l.check(l.key(k), later), Decision::Allow { .. }));
        }
        assert!(l.keys() <= SHARDS * 4);
    }

    #[test]
    fn reload_keeps_unchanged_limits() {
        let t0 = Instant::now();
        let mut reg = RateLimiters::default();
        let api: Arc<str> = "api".into();
        let p = policy(1, 1000, 1);
        let first = reg.bind([(&api, Some(&p))].into_iter(), t0);
        let Some(Some(a)) = first.first() else {
            panic!("bound")
        };
        assert_eq!(count_allowed(a, 1, 2, t0), 1);
        let again = reg.bind([(&api, Some(&p))].into_iter(), t0);
        let Some(Some(b)) = again.first() else {
            panic!("bound")
        };
        assert_eq!(count_allowed(b, 1, 1, t0), 0, "same limit: state kept");
        let changed = policy(2, 1000, 2);
        let third = reg.bind([(&api, Some(&changed))].into_iter(), t0);
        let Some(Some(c)) = third.first() else {
            panic!("bound")
        };
        assert_eq!(
            count_allowed(c, 1, 3, t0),
            2,
            "changed limit: fresh buckets"
        );
        assert!(reg.bind([(&api, None)].into_iter(), t0)[0].is_none());
    }
}
