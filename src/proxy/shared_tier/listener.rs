//! The background side of the shared tier: the purge subscription, the purge epoch, and a
//! ping that tells whether Redis answers.
//!
//! The epoch closes the gap pub/sub leaves: a message published while a replica's
//! subscription is down is lost. Every purge increments `{p}epoch` before publishing, and
//! each replica remembers the highest epoch it has accounted for. On (re)subscribing, and on
//! every ping, it reads the epoch; one that differs from what it accounted for means purges it
//! never saw (or a Redis that lost its data), and it clears its local cache: it cannot know
//! what they selected. The ping only acts on an epoch not accounted for longer than a purge may
//! take ([`super::PURGE_TIMEOUT`]): a purge moves the epoch before it deletes anything (see
//! `purge`) and publishes itself once done, so a purge still running, or whose message is on
//! its way, does not clear the cache.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::{NoAnswer, SharedTier};
use crate::cache::purge_log::PurgeRecord;
use crate::cache::shared::{PurgeMessage, PurgeTarget};
use crate::proxy::cache_storage::CacheBackend;

/// How often Redis is pinged and the epoch compared.
const PING_EVERY: Duration = Duration::from_secs(1);
const PING_TIMEOUT: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Applies a purge to the local store; the number of objects removed.
pub(crate) fn purge_locally(backend: &CacheBackend, target: &PurgeTarget) -> usize {
    backend.begin_purge();
    let store = &backend.store;
    match target {
        PurgeTarget::Url(url) => store.purge_url(url),
        PurgeTarget::Path(path) => store.purge_path(path),
        PurgeTarget::Prefix(prefix) => store.purge_prefix(prefix),
        PurgeTarget::Tag(tag) => store.purge_tag(tag),
        PurgeTarget::All => store.purge_all(),
    }
}

/// A difference between the purge epoch in Redis and the one accounted for, as first seen.
struct Lag {
    known: u64,
    redis: u64,
    since: Instant,
}

impl Lag {
    fn new(known: u64, redis: u64) -> Lag {
        Lag {
            known,
            redis,
            since: Instant::now(),
        }
    }
}

pub(crate) struct SharedTierListener {
    pub(crate) tier: Arc<SharedTier>,
    pub(crate) backend: &'static CacheBackend,
    /// Where the index trim is (see `trim`), and pings until its next step.
    pub(crate) trim: std::sync::Mutex<(isize, u32)>,
}

/// Pings between two steps of the index trim.
const TRIM_EVERY: u32 = 5;

#[async_trait]
impl BackgroundService for SharedTierListener {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut lagging: Option<Lag> = None;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let subscription =
                tokio::time::timeout(CONNECT_TIMEOUT, self.tier.client().get_async_pubsub()).await;
            if let Ok(Err(e)) = &subscription {
                // A connection of its own, tried once: its error is the clearest reason (the
                // shared connection's retries may outlast the ping that follows).
                self.tier.record_failure(&NoAnswer::Error(e.to_string()));
            }
            if let Ok(Ok(mut pubsub)) = subscription {
                if pubsub.subscribe(self.tier.keys.channel()).await.is_ok() {
                    if !self.tier.subscribed.swap(true, Ordering::Relaxed) {
                        log::info!("shared cache tier: subscribed to purges");
                    }
                    if let Some(epoch) = self.ping().await {
                        self.reconcile(epoch, true);
                    }
                    let mut messages = pubsub.on_message();
                    loop {
                        tokio::select! {
                            _ = shutdown.changed() => return,
                            message = messages.next() => match message {
                                Some(message) => self.received(message.get_payload_bytes()),
                                None => break,
                            },
                            _ = ping.tick() => self.poll(&mut lagging).await,
                        }
                    }
                }
            }
            if self.tier.subscribed.swap(false, Ordering::Relaxed) {
                log::warn!("shared cache tier: purge subscription lost; reconnecting (purges missed meanwhile clear the local cache)");
            }
            // Not subscribed: keep pinging (the up gauge, the epoch) until the next attempt.
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = ping.tick() => self.poll(&mut lagging).await,
            }
        }
    }
}

impl SharedTierListener {
    async fn trim(&self) {
        let cursor = {
            let mut trim = self.trim.lock().unwrap_or_else(|p| p.into_inner());
            trim.1 += 1;
            if trim.1 < TRIM_EVERY {
                return;
            }
            trim.1 = 0;
            trim.0
        };
        let next = self.tier.trim_step(cursor).await;
        self.trim.lock().unwrap_or_else(|p| p.into_inner()).0 = next;
    }

    /// Pings Redis and reads the epoch (0 when no purge ever happened).
    async fn ping(&self) -> Option<u64> {
        let answer = self.tier.ping_epoch(PING_TIMEOUT).await;
        let epoch = answer.as_ref().ok().copied();
        self.tier.set_reachable(answer.map(|_| ()));
        epoch
    }

    async fn poll(&self, lagging: &mut Option<Lag>) {
        if let Some(epoch) = self.ping().await {
            self.trim().await;
            let Some(known) = self.tier.known_epoch().filter(|&known| known != epoch) else {
                *lagging = None;
                if self.tier.known_epoch().is_none() {
                    self.tier.account_epoch(epoch);
                }
                return;
            };
            match lagging {
                // Caught up with the epoch seen then: another purge is under way now.
                Some(lag) if known != lag.known && known >= lag.redis => {
                    *lagging = Some(Lag::new(known, epoch));
                }
                Some(lag) if lag.since.elapsed() > super::PURGE_TIMEOUT => {
                    self.reconcile(epoch, false);
                    *lagging = None;
                }
                Some(_) => {}
                None => *lagging = Some(Lag::new(known, epoch)),
            }
        }
    }

    /// Clears the local cache if `epoch` is not the one accounted for, and accounts for it.
    fn reconcile(&self, epoch: u64, resubscribed: bool) {
        let known = self.tier.known_epoch();
        if known.is_some_and(|known| known != epoch) {
            let dropped = purge_locally(self.backend, &PurgeTarget::All);
            log::warn!(
                "shared cache tier: purges happened that this replica did not receive (epoch {} → {epoch}{}); local cache cleared ({dropped} objects)",
                known.unwrap_or_default(),
                if resubscribed { ", while unsubscribed" } else { "" }
            );
        }
        self.tier.reset_epoch(epoch);
    }

    fn received(&self, payload: &[u8]) {
        let Some(message) = PurgeMessage::decode(payload) else {
            return;
        };
        if message.from != self.tier.instance {
            let purged = purge_locally(self.backend, &message.target);
            self.tier.metrics.purges_received.inc();
            let (kind, value) = message.target.selector();
            self.backend.purges.record(PurgeRecord {
                at: std::time::SystemTime::now(),
                kind,
                value: value.to_string(),
                purged,
                received: true,
            });
            log::debug!(
                "shared cache tier: purge {:?} from {}: {purged} local objects",
                message.target,
                message.from
            );
        }
        self.tier.account_epoch(message.epoch);
    }
}

impl SharedTier {
    /// `PING` and `GET {p}epoch` on the shared connection, outside the breaker and the
    /// request metrics; why not if Redis did not answer.
    pub(crate) async fn ping_epoch(&self, bound: Duration) -> Result<u64, NoAnswer> {
        let mut connection = self
            .connection()
            .ok_or_else(|| NoAnswer::Error("the Redis client could not be set up".to_string()))?;
        let epoch_key = self.keys.epoch();
        let answer = tokio::time::timeout(bound, async move {
            redis::pipe()
                .cmd("PING")
                .ignore()
                .cmd("GET")
                .arg(epoch_key)
                .query_async::<(Option<u64>,)>(&mut connection)
                .await
        })
        .await;
        match answer {
            Ok(Ok((epoch,))) => Ok(epoch.unwrap_or(0)),
            Ok(Err(e)) => Err(NoAnswer::Error(e.to_string())),
            Err(_) => Err(NoAnswer::Timeout(bound)),
        }
    }
}
