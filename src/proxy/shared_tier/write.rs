//! The write path: a response stored locally goes to Redis from a spawned task, with its
//! purge index entries, in one MULTI/EXEC so that a purge never finds an object without them.

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

/// What a finished local fill hands to the shared tier.
pub(crate) struct Stored {
    pub(crate) entry: EntryKey,
    pub(crate) meta: Arc<StoredMeta>,
    pub(crate) body: Bytes,
    pub(crate) url: Arc<str>,
    pub(crate) tags: Vec<Box<str>>,
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
        let object_key = keys.object(&stored.entry);
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("SET")
            .arg(&object_key)
            .arg(value)
            .arg("PX")
            .arg(ttl_ms)
            .ignore();
        let index = |pipe: &mut redis::Pipeline, set: String| {
            pipe.cmd("SADD").arg(&set).arg(&object_key).ignore();
            // An index lives as long as its longest-lived member: set when it has no expiry
            // yet, lengthened otherwise (Redis 7 / Valkey `PEXPIRE … NX|GT`).
            pipe.cmd("PEXPIRE").arg(&set).arg(ttl_ms).arg("NX").ignore();
            pipe.cmd("PEXPIRE").arg(&set).arg(ttl_ms).arg("GT").ignore();
        };
        index(&mut pipe, keys.url_index(&stored.url));
        for tag in &stored.tags {
            index(&mut pipe, keys.tag_index(tag));
            pipe.cmd("SADD").arg(keys.tags()).arg(&**tag).ignore();
        }
        pipe.cmd("ZADD")
            .arg(keys.urls())
            .arg(0)
            .arg(&*stored.url)
            .ignore();
        pipe.cmd("ZADD")
            .arg(keys.paths())
            .arg(0)
            .arg(path_member(path_of(&stored.url), &stored.url))
            .ignore();
        let _ = self
            .call(
                SharedOp::Set,
                WRITE_TIMEOUT.max(self.policy.timeout),
                |_: &()| SharedResult::Ok,
                |mut c| async move { pipe.query_async::<()>(&mut c).await },
            )
            .await;
    }
}
