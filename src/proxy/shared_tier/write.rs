//! The write path: a response stored locally goes to Redis from a spawned task, with its
//! purge index entries, in one script so that a purge never finds an object without them.
//!
//! The write is conditional on the purge epoch: it lands only if `{p}epoch` is still the
//! one seen before the response was asked of the origin. Otherwise a purge ran while the
//! response was on its way or in this task, and writing it would bring the purged content
//! back for every replica. Purges move the epoch before deleting (see `purge`), so a write
//! either lands first and is deleted by the purge, or comes after and is refused. Every
//! purge moves the one epoch, so a write racing a purge of other URLs is refused too: for a
//! cache that is a later miss, never a wrong answer, and it spares per-key, per-prefix and
//! per-tag generations.

use std::sync::LazyLock;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::convert::to_shared;
use super::read::HeldLock;
use super::SharedTier;
use crate::cache::key::path_of;
use crate::cache::shared::keys::path_member;
use crate::cache::shared::ttl;
use crate::cache::store::EntryKey;
use crate::metrics::shared_cache::{SharedOp, SharedResult};
use crate::proxy::cache_storage::StoredMeta;

/// A write that does not finish in this long is abandoned: it runs off the request path, so
/// it may take longer than `timeout`, but not forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// KEYS: epoch, object, URL index, urls, paths, tags, then one tag index per tag. ARGV: the
/// epoch the write expects, value, TTL in ms, URL, paths member, then the tags. 1 if written,
/// 0 if the epoch moved. An index lives as long as its longest-lived member: its expiry is set
/// when it has none, lengthened otherwise (Redis 7 / Valkey `PEXPIRE … NX|GT`).
static WRITE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
local function index(set)
  redis.call('SADD', set, KEYS[2])
  redis.call('PEXPIRE', set, ARGV[3], 'NX')
  redis.call('PEXPIRE', set, ARGV[3], 'GT')
end
index(KEYS[3])
for i = 7, #KEYS do
  index(KEYS[i])
  redis.call('SADD', KEYS[6], ARGV[i - 1])
end
redis.call('ZADD', KEYS[4], 0, ARGV[4])
redis.call('ZADD', KEYS[5], 0, ARGV[5])
return 1",
    )
});

/// What a finished local fill hands to the shared tier.
pub(crate) struct Stored {
    pub(crate) entry: EntryKey,
    pub(crate) meta: Arc<StoredMeta>,
    pub(crate) body: Bytes,
    pub(crate) url: Arc<str>,
    pub(crate) tags: Vec<Box<str>>,
    /// The purge epoch before the response was asked of the origin (see `FetchFence`).
    pub(crate) epoch: Option<u64>,
}

impl SharedTier {
    /// Writes `stored` to Redis in the background; `lock` (this request's fill lock) is
    /// released once the shared copy is in, so that replicas waiting for it find it.
    pub(crate) fn store_later(self: &Arc<Self>, stored: Stored, lock: Option<HeldLock>) {
        if u64::try_from(stored.body.len()).unwrap_or(u64::MAX) > self.policy.max_object_size {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let tier = self.clone();
        runtime.spawn(async move {
            tier.store(stored).await;
            drop(lock);
        });
    }

    async fn store(&self, stored: Stored) {
        // Not knowing the epoch (Redis has not answered since start), the write could not be
        // told from one that races a purge: skipped, the next fill of the key shares it.
        let Some(epoch) = stored.epoch else {
            return;
        };
        let meta = &stored.meta;
        let Some(ttl) = ttl(
            meta.fresh_until,
            meta.stale_while_revalidate,
            meta.stale_if_error,
            SystemTime::now(),
        ) else {
            return;
        };
        let object = to_shared(meta, &stored.url, &stored.tags, stored.body.clone());
        let Some(value) = object.encode() else {
            return;
        };
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let keys = &self.keys;
        let mut script = WRITE.prepare_invoke();
        script
            .key(keys.epoch())
            .key(keys.object(&stored.entry))
            .key(keys.url_index(&stored.url))
            .key(keys.urls())
            .key(keys.paths())
            .key(keys.tags())
            .arg(epoch)
            .arg(value)
            .arg(ttl_ms)
            .arg(&*stored.url)
            .arg(path_member(path_of(&stored.url), &stored.url));
        for tag in &stored.tags {
            script.key(keys.tag_index(tag)).arg(&**tag);
        }
        let written = self
            .call(
                SharedOp::Set,
                WRITE_TIMEOUT.max(self.policy.timeout),
                |_: &i64| SharedResult::Ok,
                |mut c| async move { script.invoke_async::<i64>(&mut c).await },
            )
            .await;
        if written == Ok(0) {
            log::debug!(
                "shared cache tier: {} not written: a purge ran since it was fetched",
                stored.url
            );
        }
    }
}
