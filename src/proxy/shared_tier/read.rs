//! The read path: on a local miss, the shared copy; and the fleet-wide fill lock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use pingora::cache::storage::HitHandler;
use pingora::cache::{CacheKey, CacheMeta};

use super::convert::from_shared;
use super::SharedTier;
use crate::cache::shared::wire::SharedObject;
use crate::cache::store::{EntryKey, Insert, NewObject};
use crate::metrics::shared_cache::{SharedOp, SharedResult};
use crate::proxy::cache_storage::{entry_key_of, CacheBackend, StoreHints, StoredBody};

/// How often a replica waiting for another's fill looks for the shared copy.
const FILL_POLL: Duration = Duration::from_millis(20);

/// The fill lock this request holds, if it took one: rides in the cache key's extensions
/// (set by `cache_key`), so that it lives exactly as long as the request's cache state.
/// Dropped without being handed to a write (the response was not stored, the request
/// failed), it releases the lock at once, so the replicas waiting go to the origin instead
/// of waiting out `fill_lock`. A replica that dies holding it leaves it to expire.
#[derive(Default)]
pub(crate) struct FillLockSlot(Mutex<Option<HeldLock>>);

impl FillLockSlot {
    fn hold(&self, lock: HeldLock) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(lock);
    }

    /// The lock, for the write that will release it once the shared copy is in.
    pub(crate) fn take(&self) -> Option<HeldLock> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

pub(crate) struct HeldLock {
    tier: Arc<SharedTier>,
    key: String,
    token: String,
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // no runtime (shutting down): the lock expires by itself
        };
        let (tier, key, token) = (
            self.tier.clone(),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.token),
        );
        runtime.spawn(async move { tier.release_lock(key, token).await });
    }
}

/// Deletes the lock only if it is still ours: past its expiry another replica may hold it.
const RELEASE: &str = r"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

impl SharedTier {
    /// The shared copy of `key`, stored locally and returned as a local hit would be. On a
    /// shared miss, takes the fill lock or waits for the replica that holds it.
    pub(crate) async fn lookup(
        self: &Arc<Self>,
        backend: &'static CacheBackend,
        key: &CacheKey,
    ) -> Option<(CacheMeta, HitHandler)> {
        let entry = entry_key_of(key);
        let object_key = self.keys.object(&entry);
        let hints = key.extensions.get::<Arc<StoreHints>>();
        let (found, epoch) = self
            .call(
                SharedOp::Get,
                self.policy.timeout,
                |v: &(Option<Vec<u8>>, Option<u64>)| hit_or_miss(v.0.is_some()),
                |mut c| {
                    let (object_key, epoch_key) = (object_key.clone(), self.keys.epoch());
                    // The epoch rides along: on a miss, what this request fetches is written
                    // to Redis only if no purge moved it meanwhile (see `write`).
                    async move {
                        redis::pipe()
                            .cmd("GET")
                            .arg(object_key)
                            .cmd("GET")
                            .arg(epoch_key)
                            .query_async(&mut c)
                            .await
                    }
                },
            )
            .await
            .ok()?;
        if let Some(hints) = hints {
            hints.fence.set_shared_epoch(Some(epoch.unwrap_or(0)));
        }
        let since = hints.map_or_else(|| backend.purge_generation(), |h| h.fence.local());
        if let Some(value) = found {
            return self.admit(backend, entry, value, since);
        }
        if self.policy.fill_lock.is_zero() {
            return None;
        }
        let slot = key.extensions.get::<Arc<FillLockSlot>>()?;
        let lock_key = self.keys.lock(&entry);
        let token = self.next_lock_token();
        let lock_ms = u64::try_from(self.policy.fill_lock.as_millis()).unwrap_or(u64::MAX);
        let taken = self
            .call(
                SharedOp::Lock,
                self.policy.timeout,
                |_: &Option<String>| SharedResult::Ok,
                |mut c| {
                    let (lock_key, token) = (lock_key.clone(), token.clone());
                    async move {
                        redis::cmd("SET")
                            .arg(lock_key)
                            .arg(token)
                            .arg("NX")
                            .arg("PX")
                            .arg(lock_ms)
                            .query_async(&mut c)
                            .await
                    }
                },
            )
            .await
            .ok()?;
        if taken.is_some() {
            slot.hold(HeldLock {
                tier: self.clone(),
                key: lock_key,
                token,
            });
            return None;
        }
        self.wait_for_fill(backend, entry, object_key, lock_key, since)
            .await
    }

    /// Another replica is fetching: poll for its shared copy until its lock goes (it stored
    /// nothing, so this request goes to the origin itself) or `fill_lock` has passed.
    async fn wait_for_fill(
        self: &Arc<Self>,
        backend: &'static CacheBackend,
        entry: EntryKey,
        object_key: String,
        lock_key: String,
        since: u64,
    ) -> Option<(CacheMeta, HitHandler)> {
        let deadline = Instant::now() + self.policy.fill_lock;
        while Instant::now() < deadline {
            tokio::time::sleep(FILL_POLL).await;
            let (value, locked) = self
                .call(
                    SharedOp::Get,
                    self.policy.timeout,
                    |v: &(Option<Vec<u8>>, bool)| hit_or_miss(v.0.is_some()),
                    |mut c| {
                        let (object_key, lock_key) = (object_key.clone(), lock_key.clone());
                        async move {
                            redis::pipe()
                                .cmd("GET")
                                .arg(object_key)
                                .cmd("EXISTS")
                                .arg(lock_key)
                                .query_async(&mut c)
                                .await
                        }
                    },
                )
                .await
                .ok()?;
            if let Some(value) = value {
                return self.admit(backend, entry, value, since);
            }
            if !locked {
                return None;
            }
        }
        None
    }

    /// Stores a shared copy locally and hands it out as a local hit; not if a purge began
    /// since local purge generation `since` (the copy may predate it).
    fn admit(
        &self,
        backend: &'static CacheBackend,
        entry: EntryKey,
        value: Vec<u8>,
        since: u64,
    ) -> Option<(CacheMeta, HitHandler)> {
        let Some(object) = SharedObject::decode(Bytes::from(value)) else {
            log::debug!("shared cache tier: a value that does not decode, ignored");
            return None;
        };
        let meta = from_shared(&object)?;
        let now = SystemTime::now();
        let new = NewObject {
            meta_weight: meta.weight(),
            expires: meta.expires(),
            meta: Arc::new(meta),
            body: object.body,
            url: Arc::from(object.url.as_str()),
            tags: object
                .tags
                .into_iter()
                .map(String::into_boxed_str)
                .collect(),
        };
        match backend.insert_unless_purged(entry, new, now, since)? {
            Insert::Stored { .. } => {}
            Insert::Expired | Insert::TooLarge => return None,
        }
        let hit = backend.store.get(&entry, now)?;
        let meta = hit.meta.to_meta();
        let handler: HitHandler = Box::new(StoredBody::new(hit));
        Some((meta, handler))
    }

    pub(super) async fn release_lock(&self, key: String, token: String) {
        let _ = self
            .call(
                SharedOp::Lock,
                self.policy.timeout,
                |_: &i64| SharedResult::Ok,
                |mut c| async move {
                    redis::Script::new(RELEASE)
                        .key(key)
                        .arg(token)
                        .invoke_async(&mut c)
                        .await
                },
            )
            .await;
    }
}

fn hit_or_miss(hit: bool) -> SharedResult {
    if hit {
        SharedResult::Hit
    } else {
        SharedResult::Miss
    }
}
