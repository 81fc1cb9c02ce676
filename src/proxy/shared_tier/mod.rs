//! The shared cache tier: a second tier in Redis (or Valkey) behind every replica's local
//! store, fleet-wide fill locks, purges that reach every replica, and warm starts.
//!
//! - Read path (`read`): a local miss asks Redis, bounded by `timeout`; a hit is decoded,
//!   stored locally and served like a local hit (its freshness comes from its own stored
//!   times). With `fill_lock`, a shared miss takes a short Redis lock; other replicas that miss
//!   the same key poll for the shared copy until the lock goes or `fill_lock` passes.
//! - Write path (`write`): a response stored locally, or refreshed by a 304, is written to
//!   Redis by a spawned task; the client never waits. Redis expires it when it can no longer
//!   be served, even stale. The write is refused when a purge moved the epoch since the
//!   response was asked of the origin, so a fill racing a purge does not bring it back.
//! - Purges (`purge`, `listener`): a purge removes the matching objects from Redis through
//!   the indexes `cache::shared::keys` describes, increments the purge epoch and publishes
//!   itself; every replica's listener applies it to its local store. A replica whose
//!   subscription dropped compares the epoch when it is back, and clears its local cache if
//!   purges happened meanwhile.
//! - Redis down or slow: every request-path operation is bounded by `timeout` and counts as a
//!   miss past it; a breaker (the `breaker` module's state machine) stops asking after
//!   repeated failures and lets a probe through later. `outrider_cache_shared_up` and one log
//!   line per change tell the state.
//!
//! The client is `redis`' `ConnectionManager` (see Cargo.toml for why that crate): one
//! multiplexed connection, reconnected by the crate, shared by every request.

mod convert;
pub(crate) mod listener;
mod purge;
mod read;
mod trim;
pub(crate) mod warm;
mod write;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::RedisResult;

use crate::breaker::{Admission, Breaker, Jitter, Outcome, State, Transition};
use crate::cache::shared::keys::Keys;
use crate::config::policy::{BreakerPolicy, SharedTierPolicy};
use crate::metrics::shared_cache::{SharedOp, SharedResult, SharedTierMetrics};

pub(crate) use read::FillLockSlot;
pub(crate) use write::Stored;

/// How long a purge may take in Redis: it runs on the admin port, never on a request, and a
/// prefix may select many objects.
const PURGE_TIMEOUT: Duration = Duration::from_secs(5);

/// The tier's breaker: open after 5 failures in a row (or half the operations failing over
/// 10 s), for 1 s doubling up to 30 s; one probe at a time.
fn breaker_policy() -> BreakerPolicy {
    BreakerPolicy {
        enabled: true,
        consecutive_failures: 5,
        failure_rate: 0.5,
        min_requests: 20,
        window: Duration::from_secs(10),
        open_for: Duration::from_secs(1),
        max_open_for: Duration::from_secs(30),
        half_open_probes: 1,
        failure_statuses: Vec::new(),
    }
}

/// Values of `SharedTier::reported_up`.
const UP_UNKNOWN: u8 = 0;
const UP_NO: u8 = 1;
const UP_YES: u8 = 2;

/// Why Redis did not answer a background ping or connection.
#[derive(Debug)]
pub(crate) enum NoAnswer {
    /// It answered with an error, or the connection failed (refused, a certificate the trust
    /// store rejects…): the error's text.
    Error(String),
    /// Nothing within this bound.
    Timeout(Duration),
}

/// Why an operation did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unanswered {
    /// The breaker is open: Redis was not asked.
    Skipped,
    Error,
    Timeout,
}

pub(crate) struct SharedTier {
    pub(crate) policy: SharedTierPolicy,
    client: redis::Client,
    connection: OnceLock<Option<ConnectionManager>>,
    pub(crate) keys: Keys,
    breaker: Breaker,
    /// This replica's name on the purge channel and in lock tokens.
    pub(crate) instance: String,
    pub(crate) metrics: Arc<SharedTierMetrics>,
    /// Whether the last background ping answered.
    reachable: AtomicBool,
    /// Why the last background ping did not answer, for the log line saying the tier is down
    /// (a TLS certificate the trust store does not accept, a refused connection…).
    last_failure: Mutex<Option<String>>,
    /// What `outrider_cache_shared_up` and the logs last said: [`UP_UNKNOWN`] until the first
    /// ping, so that a tier down from the start is logged too.
    reported_up: AtomicU8,
    pub(crate) subscribed: AtomicBool,
    /// The purge epoch this replica has accounted for, plus one (0 before it first read it).
    /// An atomic: every cache lookup reads it (see `FetchFence`).
    known_epoch: AtomicU64,
    lock_tokens: AtomicU64,
}

impl SharedTier {
    pub(crate) fn new(
        policy: &SharedTierPolicy,
        metrics: Arc<SharedTierMetrics>,
    ) -> RedisResult<Arc<SharedTier>> {
        let client = redis::Client::open(policy.url.as_str())?;
        let now = Instant::now();
        let seed = u64::from(std::process::id())
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
        Ok(Arc::new(SharedTier {
            keys: Keys::new(&policy.key_prefix),
            policy: policy.clone(),
            client,
            connection: OnceLock::new(),
            breaker: Breaker::new(&breaker_policy(), Jitter::seeded(seed), now),
            instance: format!("{}-{:x}", std::process::id(), seed & 0xffff_ffff),
            metrics,
            reachable: AtomicBool::new(false),
            last_failure: Mutex::new(None),
            reported_up: AtomicU8::new(UP_UNKNOWN),
            subscribed: AtomicBool::new(false),
            known_epoch: AtomicU64::new(0),
            lock_tokens: AtomicU64::new(0),
        }))
    }

    /// The multiplexed connection, created on first use (it needs a runtime) and reconnected
    /// by the crate.
    fn connection(&self) -> Option<ConnectionManager> {
        self.connection
            .get_or_init(|| {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                match ConnectionManager::new_lazy_with_config(self.client.clone(), config) {
                    Ok(manager) => Some(manager),
                    Err(e) => {
                        log::error!("shared cache tier: cannot set up the Redis client: {e}");
                        None
                    }
                }
            })
            .clone()
    }

    /// Runs one operation through the breaker, bounded by `bound`, and records its metrics
    /// with the result `classify` gives an answer.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        op: SharedOp,
        bound: Duration,
        classify: impl FnOnce(&T) -> SharedResult,
        f: F,
    ) -> Result<T, Unanswered>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.run(op, bound, true, classify, f).await
    }

    /// [`SharedTier::call`]; `gated = false` asks Redis even with the breaker open (purges:
    /// an operator asked for it, and a purge that is not tried is a correctness problem).
    pub(crate) async fn run<T, F, Fut>(
        &self,
        op: SharedOp,
        bound: Duration,
        gated: bool,
        classify: impl FnOnce(&T) -> SharedResult,
        f: F,
    ) -> Result<T, Unanswered>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let pass = if gated {
            match self.breaker.admit(Instant::now()) {
                Admission::Allow(pass) => Some(pass),
                Admission::Probe { pass, transition } => {
                    self.note(transition);
                    Some(pass)
                }
                Admission::Reject { .. } => return Err(Unanswered::Skipped),
            }
        } else {
            None
        };
        let Some(connection) = self.connection() else {
            return Err(Unanswered::Skipped);
        };
        let started = Instant::now();
        let answer = tokio::time::timeout(bound, f(connection)).await;
        let seconds = started.elapsed().as_secs_f64();
        let (result, outcome) = match answer {
            Ok(Ok(value)) => {
                self.metrics.record(op, classify(&value), seconds);
                (Ok(value), Outcome::Success)
            }
            Ok(Err(e)) => {
                log::debug!("shared cache tier: {op:?} failed: {e}");
                self.metrics.record(op, SharedResult::Error, seconds);
                (Err(Unanswered::Error), Outcome::Failure)
            }
            Err(_) => {
                self.metrics.record(op, SharedResult::Timeout, seconds);
                (Err(Unanswered::Timeout), Outcome::Failure)
            }
        };
        if let Some(pass) = pass {
            let transition = self.breaker.record(pass, outcome, Instant::now());
            self.note(transition);
        }
        result
    }

    /// Logs a breaker transition (once: the breaker reports each exactly once) and updates
    /// the up gauge.
    fn note(&self, transition: Option<Transition>) {
        if let Some(t) = transition {
            match t.to {
                State::Open => log::warn!(
                    "shared cache tier: Redis failing ({}), not asked for a while; serving from the local cache and the origin",
                    t.reason.as_str()
                ),
                State::HalfOpen => log::info!("shared cache tier: probing Redis again"),
                State::Closed => log::info!("shared cache tier: Redis answers again"),
            }
        }
        self.refresh_up();
    }

    /// Remembers why Redis could not be reached, for the log line saying the tier is down.
    pub(crate) fn record_failure(&self, failure: &NoAnswer) {
        let mut last = self.last_failure.lock().unwrap_or_else(|p| p.into_inner());
        match failure {
            NoAnswer::Error(e) => *last = Some(e.clone()),
            // A connection that is still being retried (the manager's retries outlast the
            // ping's bound) would hide the error it keeps getting: that one stays.
            NoAnswer::Timeout(bound) => {
                if last.is_none() {
                    *last = Some(format!("no answer within {bound:?}"));
                }
            }
        }
    }

    /// Called by the background ping with its result. A ping that answers is also the
    /// breaker's probe once its open period is over, so that the tier comes back without
    /// waiting for a request to try.
    pub(crate) fn set_reachable(&self, answer: Result<(), NoAnswer>) {
        let reachable = answer.is_ok();
        match answer {
            Ok(()) => *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = None,
            Err(failure) => self.record_failure(&failure),
        }
        self.reachable.store(reachable, Ordering::Relaxed);
        if reachable && self.breaker.state() != State::Closed {
            if let Admission::Probe { pass, transition } = self.breaker.admit(Instant::now()) {
                self.note(transition);
                let closed = self.breaker.record(pass, Outcome::Success, Instant::now());
                self.note(closed);
            }
        }
        self.refresh_up();
    }

    pub(crate) fn is_up(&self) -> bool {
        self.reachable.load(Ordering::Relaxed) && self.breaker.state() != State::Open
    }

    fn refresh_up(&self) {
        let up = self.is_up();
        let now = if up { UP_YES } else { UP_NO };
        if self.reported_up.swap(now, Ordering::Relaxed) != now {
            self.metrics.up.set(i64::from(up));
            if up {
                log::info!("shared cache tier: up ({})", self.policy.url.redacted());
            } else {
                let failure = self
                    .last_failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                log::warn!(
                    "shared cache tier: down ({}{}); requests are served from the local cache and the origin",
                    self.policy.url.redacted(),
                    failure.map(|f| format!(": {f}")).unwrap_or_default()
                );
            }
        }
    }

    pub(crate) fn breaker_state(&self) -> State {
        self.breaker.state()
    }

    fn next_lock_token(&self) -> String {
        let n = self.lock_tokens.fetch_add(1, Ordering::Relaxed);
        format!("{}:{n}", self.instance)
    }

    /// Records `epoch` as accounted for (epochs only grow).
    pub(crate) fn account_epoch(&self, epoch: u64) {
        self.known_epoch
            .fetch_max(epoch.saturating_add(1), Ordering::SeqCst);
    }

    /// Sets the epoch accounted for, even lower (a Redis that lost its data starts again).
    pub(crate) fn reset_epoch(&self, epoch: u64) {
        self.known_epoch
            .store(epoch.saturating_add(1), Ordering::SeqCst);
    }

    pub(crate) fn known_epoch(&self) -> Option<u64> {
        self.known_epoch.load(Ordering::SeqCst).checked_sub(1)
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }
}
