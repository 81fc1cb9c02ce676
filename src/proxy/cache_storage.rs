//! pingora-cache's `Storage` over our [`Store`]: the one place where Pingora's cache types meet
//! the store. Pingora's own `MemCache` is test-only (unbounded, copies every body per hit), so
//! this is the production backend DESIGN.md asks for.
//!
//! - Objects are keyed by Pingora's primary hash and, for `Vary` variants in secondary slots,
//!   the variance hash, exactly as Pingora addresses them (`CacheKey::combined`).
//! - The meta is kept parsed ([`StoredMeta`]), not serialized: `CacheMeta::deserialize` would
//!   run zstd and an HTTP header parse on every hit. A hit clones the header and rebuilds the
//!   `CacheMeta` around it.
//! - Bodies are `Bytes`: a hit hands out a reference-counted slice, never a copy, and the hit
//!   handler can seek, so ranges are served from the stored body.
//! - What the store needs and Pingora's `CacheKey` does not carry (the URL for purges, the
//!   tag header, whether to generate an ETag) rides in the key's extensions ([`StoreHints`]),
//!   set by `cache_key_callback`.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName};
use pingora::cache::key::{CacheHashKey, HashBinary};
use pingora::cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget,
    PurgeType, Storage,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheKey, CacheMeta};
use pingora::http::ResponseHeader;
use pingora::prelude::*;

use super::shared_tier::{FillLockSlot, SharedTier, Stored};
use crate::cache::store::{EntryKey, Hit, Insert, NewObject, Store};
use crate::conditional::BodyHasher;
use crate::metrics::cache::CacheFigures;
use crate::metrics::CacheResult;

/// How long a stale object that can be revalidated (it has a validator) stays in the store
/// after its freshness and stale windows end, unless memory pressure evicts it first: a
/// conditional request to the origin then costs a 304 instead of the whole body. nginx's
/// `proxy_cache_path ... inactive=10m` default is the same length.
pub(crate) const KEEP_FOR_REVALIDATION: Duration = Duration::from_secs(600);

/// A stored response's two windows for serving it stale instead of an error, in seconds past
/// its freshness: when the origin failed, and when the proxy refused to ask it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Travels in `CacheMeta`'s extensions.
pub(crate) struct StaleWindows {
    pub(crate) if_error: u32,
    pub(crate) on_open: u32,
}

/// The response meta as stored: `CacheMeta`'s fields, parsed.
#[derive(Debug)]
pub(crate) struct StoredMeta {
    pub(super) fresh_until: SystemTime,
    pub(super) created: SystemTime,
    /// When the object was last (re)validated: Pingora's `epoch`, what `Age` counts from.
    pub(super) updated: SystemTime,
    pub(super) stale_while_revalidate: u32,
    pub(super) stale_if_error: u32,
    /// The route's split of `stale_if_error` (see `cache::StaleWindows`).
    pub(super) windows: Option<StaleWindows>,
    pub(super) variance: Option<HashBinary>,
    pub(super) header: ResponseHeader,
}

impl StoredMeta {
    pub(crate) fn of(meta: &CacheMeta) -> StoredMeta {
        StoredMeta {
            fresh_until: meta.fresh_until(),
            created: meta.created(),
            updated: meta.epoch(),
            stale_while_revalidate: meta.stale_while_revalidate_sec(),
            stale_if_error: meta.stale_if_error_sec(),
            windows: meta.extensions().get::<StaleWindows>().copied(),
            variance: meta.variance(),
            header: super::stored_header::owned_header(meta.response_header()),
        }
    }

    pub(crate) fn to_meta(&self) -> CacheMeta {
        let mut meta = CacheMeta::new(
            self.fresh_until,
            self.created,
            self.stale_while_revalidate,
            self.stale_if_error,
            self.header.clone(),
        );
        if self.updated != self.created {
            meta.set_epoch_override(self.updated);
        }
        if let Some(variance) = self.variance {
            meta.set_variance_key(variance);
        }
        if let Some(windows) = self.windows {
            meta.extensions_mut().insert(windows);
        }
        meta
    }

    /// Bytes the meta holds, for the store's accounting: header names and values plus an
    /// estimate of what holds them. Calibrated with `scripts/footprint.sh`: 10,000 objects with
    /// 64-byte bodies and 7 header fields raised RSS by 4.2 KiB each, so each field is counted
    /// with its two map entries (Pingora keeps the field's case beside the `HeaderMap`) and
    /// their allocations, and the fixed part covers the store's map and index entries.
    pub(super) fn weight(&self) -> usize {
        const PER_FIELD: usize = 304;
        const FIXED: usize = 1184;
        self.header
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + PER_FIELD)
            .sum::<usize>()
            + FIXED
    }

    /// When the store may drop the object: after its freshness, its stale windows, and (with a
    /// validator) [`KEEP_FOR_REVALIDATION`].
    pub(super) fn expires(&self) -> SystemTime {
        let stale = Duration::from_secs(u64::from(
            self.stale_while_revalidate.max(self.stale_if_error),
        ));
        let has_validator = self.header.headers.contains_key(header::ETAG)
            || self.header.headers.contains_key(header::LAST_MODIFIED);
        let keep = if has_validator {
            KEEP_FOR_REVALIDATION
        } else {
            Duration::ZERO
        };
        self.fresh_until
            .checked_add(stale.max(keep))
            .unwrap_or(self.fresh_until)
    }
}

/// What the store needs about an object beyond Pingora's key and meta.
#[derive(Debug)]
pub struct StoreHints {
    /// The primary key string, `scheme://host/path?query`: purge by URL and prefix.
    pub url: Arc<str>,
    /// The route's tag header (space-separated purge tags), if it has one.
    pub tag_header: Option<HeaderName>,
    /// Generate a strong ETag for a stored 200 without one, up to this body size.
    pub etag_max_body: Option<usize>,
    /// The purge generations this request saw before it asked the origin.
    pub fence: FetchFence,
}

/// The purge generations a request saw at its last cache lookup, that is before it asked the
/// origin: what it then stores is dropped if a purge ran meanwhile, so that a fill in flight
/// during a purge does not bring the purged content back (locally: [`CacheBackend`]'s purge
/// generation; in Redis: the shared tier's purge epoch, see `shared_tier::write`). A purge
/// unrelated to the response drops it too: for a cache that is one more miss, never a
/// wrong answer, and it spares tracking generations per key, prefix and tag.
#[derive(Debug, Default)]
pub struct FetchFence {
    local: AtomicU64,
    /// The shared tier's purge epoch plus one; 0 while unknown.
    shared: AtomicU64,
}

impl FetchFence {
    // Relaxed: written and read by the one request, whose task the runtime hands between
    // threads with the synchronisation that implies.
    pub(crate) fn local(&self) -> u64 {
        self.local.load(Ordering::Relaxed)
    }

    pub(crate) fn shared_epoch(&self) -> Option<u64> {
        self.shared.load(Ordering::Relaxed).checked_sub(1)
    }

    pub(crate) fn set_shared_epoch(&self, epoch: Option<u64>) {
        let value = epoch.map_or(0, |e| e.saturating_add(1));
        self.shared.store(value, Ordering::Relaxed);
    }
}

/// The cache's process-wide state. Pingora wants `&'static` storage, so it is leaked once per
/// [`crate::proxy::Shared`] and outlives every policy; a reload only changes its limits.
pub struct CacheBackend {
    pub(crate) store: Store<Arc<StoredMeta>>,
    /// The shared (Redis) tier behind the store, when `[cache.shared]` configures one.
    pub(crate) tier: std::sync::OnceLock<Arc<SharedTier>>,
    /// Lookups by [`CacheResult`], over all routes, for `GET /cache`'s hit ratio.
    lookups: [AtomicU64; 6],
    /// The last purges, asked here or received from other replicas, for `GET /cache`.
    pub(crate) purges: crate::cache::purge_log::PurgeLog,
    /// Incremented by every purge before it removes anything (see [`FetchFence`]).
    purge_generation: AtomicU64,
}

/// `GET /cache`'s lookup counts since start.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LookupCounts {
    pub(crate) hit: u64,
    pub(crate) miss: u64,
    pub(crate) stale: u64,
    pub(crate) revalidated: u64,
    pub(crate) bypass: u64,
    pub(crate) coalesced: u64,
}

impl CacheBackend {
    pub fn leak(max_bytes: u64, max_object_bytes: u64) -> &'static CacheBackend {
        Box::leak(Box::new(CacheBackend {
            store: Store::new(max_bytes, max_object_bytes),
            tier: std::sync::OnceLock::new(),
            lookups: Default::default(),
            purges: Default::default(),
            purge_generation: AtomicU64::new(0),
        }))
    }

    /// Called by every purge (asked here, received from another replica, or the shared
    /// tier's catch-up) before it removes anything.
    pub(crate) fn begin_purge(&self) {
        self.purge_generation.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn purge_generation(&self) -> u64 {
        self.purge_generation.load(Ordering::SeqCst)
    }

    /// Stores `object` unless a purge began since generation `since`; `None` when one did.
    ///
    /// Checked again after the insert, which closes the race with a purge running meanwhile:
    /// a purge bumps the generation before it takes the shard lock, so either its removal
    /// comes after this insert, or the second check sees the bump and removes the object
    /// again (a stricter check would have to run under the store's shard lock, inside
    /// `Store::insert`; this one leaves the object visible for the instant between the two).
    pub(crate) fn insert_unless_purged(
        &self,
        key: EntryKey,
        object: NewObject<Arc<StoredMeta>>,
        now: SystemTime,
        since: u64,
    ) -> Option<Insert> {
        if self.purge_generation() != since {
            return None;
        }
        let inserted = self.store.insert(key, object, now);
        if self.purge_generation() != since {
            self.store.remove(&key);
            return None;
        }
        Some(inserted)
    }

    pub(crate) fn record(&self, result: CacheResult) {
        self.lookups[result as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn lookups(&self) -> LookupCounts {
        let n = |r: CacheResult| self.lookups[r as usize].load(Ordering::Relaxed);
        LookupCounts {
            hit: n(CacheResult::Hit),
            miss: n(CacheResult::Miss),
            stale: n(CacheResult::Stale),
            revalidated: n(CacheResult::Revalidated),
            bypass: n(CacheResult::Bypass),
            coalesced: n(CacheResult::Coalesced),
        }
    }

    /// The store's figures for the Prometheus exporter.
    pub(crate) fn figures(&self) -> CacheFigures {
        let stats = self.store.stats();
        CacheFigures {
            objects: stats.objects,
            bytes: stats.bytes,
            evictions: stats.evictions,
            purged: stats.purged,
        }
    }
}

impl CacheBackend {
    /// After a 304 refreshed a stored object: the shared copy gets the new times and header
    /// too, or other replicas would keep finding it stale (and Redis would expire a copy that
    /// is fresh again). The whole object is written again, body included: by the time a
    /// stale object is revalidated its shared copy has usually expired already (Redis keeps
    /// it only through its stale windows), so a header-only update would mostly find nothing
    /// to update, and it would need a script to splice the new header onto a body it cannot
    /// check is the one this 304 validated. The body is the stored `Bytes`, not a copy, and
    /// the write runs off the request path like every shared write.
    fn share_revalidated(
        &self,
        tier: &Arc<SharedTier>,
        key: &CacheKey,
        entry: EntryKey,
        meta: Arc<StoredMeta>,
    ) {
        let Some(hints) = key.extensions.get::<Arc<StoreHints>>() else {
            return;
        };
        let Some(hit) = self.store.get(&entry, SystemTime::now()) else {
            return;
        };
        let stored = Stored {
            entry,
            tags: tags_of(&meta.header, hints.tag_header.as_ref()),
            meta,
            body: hit.body.clone(),
            url: hints.url.clone(),
            epoch: hints.fence.shared_epoch(),
        };
        tier.store_later(stored, None);
    }
}

/// The purge tags `header` carries in the route's tag header.
fn tags_of(header: &ResponseHeader, tag_header: Option<&HeaderName>) -> Vec<Box<str>> {
    let Some(name) = tag_header else {
        return Vec::new();
    };
    header
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split_ascii_whitespace())
        .map(Box::from)
        .collect()
}

fn entry_key(primary: HashBinary, variance: Option<HashBinary>) -> EntryKey {
    EntryKey { primary, variance }
}

pub(crate) fn entry_key_of(key: &CacheKey) -> EntryKey {
    entry_key(key.primary_bin(), key.variance_bin())
}

#[async_trait]
impl Storage for CacheBackend {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        if let Some(hints) = key.extensions.get::<Arc<StoreHints>>() {
            hints
                .fence
                .local
                .store(self.purge_generation(), Ordering::Relaxed);
            let epoch = self.tier.get().and_then(|tier| tier.known_epoch());
            hints.fence.set_shared_epoch(epoch);
        }
        let Some(hit) = self.store.get(&entry_key_of(key), SystemTime::now()) else {
            return Ok(match self.tier.get() {
                Some(tier) => tier.lookup(self, key).await,
                None => None,
            });
        };
        let meta = hit.meta.to_meta();
        let handler: HitHandler = Box::new(StoredBody::new(hit));
        Ok(Some((meta, handler)))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let hints = key.extensions.get::<Arc<StoreHints>>().cloned();
        let hints = hints.unwrap_or_else(|| {
            Arc::new(StoreHints {
                url: Arc::from(key.primary_key_str().unwrap_or_default()),
                tag_header: None,
                etag_max_body: None,
                fence: FetchFence::default(),
            })
        });
        // The body is kept for the object's life: sized from Content-Length up front, it is
        // not left with the slack of doubling growth (Pingora enforces `max_object_size`
        // against the same header before the miss handler is asked for).
        let declared = meta
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&len| len <= self.store.max_object_bytes())
            .and_then(|len| usize::try_from(len).ok());
        Ok(Box::new(Fill {
            backend: self,
            fill_lock: key.extensions.get::<Arc<FillLockSlot>>().cloned(),
            key: entry_key_of(key),
            meta: StoredMeta::of(meta),
            hints,
            body: BytesMut::with_capacity(declared.unwrap_or(0)),
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let compact = target.key();
        let key = entry_key(compact.primary, compact.variance.as_deref().copied());
        Ok(if self.store.remove(&key) {
            PurgeOutcome::Purged(None)
        } else {
            PurgeOutcome::NotFound
        })
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let stored = Arc::new(StoredMeta::of(meta));
        let (weight, expires) = (stored.weight(), stored.expires());
        let entry = entry_key_of(key);
        let updated = self
            .store
            .update_meta(&entry, stored.clone(), weight, expires);
        if updated {
            if let Some(tier) = self.tier.get() {
                self.share_revalidated(tier, key, entry, stored);
            }
        }
        Ok(updated)
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// A hit: the stored body, or the range of it Pingora seeked to, or a memoised encoding of it.
pub(crate) struct StoredBody {
    hit: Hit<Arc<StoredMeta>>,
    body: Bytes,
    start: usize,
    end: usize,
    done: bool,
}

impl StoredBody {
    pub(super) fn new(hit: Hit<Arc<StoredMeta>>) -> StoredBody {
        let body = hit.body.clone();
        let end = body.len();
        StoredBody {
            hit,
            body,
            start: 0,
            end,
            done: false,
        }
    }

    /// Serves the memoised encoding for `coding` instead of the stored body, if there is one;
    /// returns the identity and encoded lengths.
    pub(crate) fn use_encoded(&mut self, coding: u8) -> Option<(usize, usize)> {
        let encoded = self.hit.encoded(coding)?;
        let lengths = (self.hit.body.len(), encoded.len());
        self.end = encoded.len();
        self.start = 0;
        self.body = encoded;
        Some(lengths)
    }
}

#[async_trait]
impl HandleHit for StoredBody {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.done || self.start >= self.end {
            return Ok(None);
        }
        self.done = true;
        Ok(Some(self.body.slice(self.start..self.end)))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    /// `end` is exclusive, as in Pingora's range filter.
    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let end = end.unwrap_or(self.body.len());
        if start > end || end > self.body.len() {
            return Error::e_explain(
                ErrorType::InternalError,
                format!(
                    "seek {start}..{end} outside a stored body of {} bytes",
                    self.body.len()
                ),
            );
        }
        self.start = start;
        self.end = end;
        self.done = false;
        Ok(())
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

/// The body without spare capacity: a chunked body grown by doubling would otherwise pin up
/// to twice its size for as long as it is cached.
fn exact(body: BytesMut) -> Bytes {
    if body.capacity() - body.len() > body.len() / 16 {
        Bytes::copy_from_slice(&body)
    } else {
        body.freeze()
    }
}

/// A miss being written: the body accumulates (Pingora enforces `max_object_size` before and
/// while it streams) and the object goes into the store whole on `finish`. Dropped without
/// `finish`, the write failed and nothing is stored.
struct Fill {
    backend: &'static CacheBackend,
    /// The fleet-wide fill lock this request may hold, released once the shared copy is in.
    fill_lock: Option<Arc<FillLockSlot>>,
    key: EntryKey,
    meta: StoredMeta,
    hints: Arc<StoreHints>,
    body: BytesMut,
}

impl Fill {
    /// The strong ETag of a stored 200 that has none, so that hits carry a validator
    /// (issue #5's tag, for the cached path).
    fn add_etag(&mut self, body: &[u8]) {
        let Some(max) = self.hints.etag_max_body else {
            return;
        };
        let header = &mut self.meta.header;
        if header.status.as_u16() != 200
            || body.len() > max
            || header.headers.contains_key(header::ETAG)
        {
            return;
        }
        let mut hasher = BodyHasher::new();
        hasher.update(body);
        if let Err(e) = header.insert_header(header::ETAG, hasher.finish()) {
            log::warn!("could not add the generated ETag to a stored response: {e}");
        }
    }

    fn tags(&self) -> Vec<Box<str>> {
        tags_of(&self.meta.header, self.hints.tag_header.as_ref())
    }
}

#[async_trait]
impl HandleMiss for Fill {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        self.body.extend_from_slice(&data);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let mut fill = *self;
        let body = exact(std::mem::take(&mut fill.body));
        fill.add_etag(&body);
        let tags = fill.tags();
        let size = body.len();
        let meta = Arc::new(fill.meta);
        let shared_copy = fill.backend.tier.get().map(|tier| {
            let stored = Stored {
                entry: fill.key,
                meta: meta.clone(),
                body: body.clone(),
                url: fill.hints.url.clone(),
                tags: tags.clone(),
                epoch: fill.hints.fence.shared_epoch(),
            };
            (tier, stored)
        });
        let object = NewObject {
            meta_weight: meta.weight(),
            expires: meta.expires(),
            meta,
            body,
            url: fill.hints.url.clone(),
            tags,
        };
        let since = fill.hints.fence.local();
        let inserted =
            fill.backend
                .insert_unless_purged(fill.key, object, SystemTime::now(), since);
        match inserted {
            // A purge ran while this response was on its way: it must not bring the purged
            // content back, here or in Redis. Served to this request, not stored.
            None => Ok(MissFinishType::Created(0)),
            Some(Insert::Stored { .. }) => {
                if let Some((tier, stored)) = shared_copy {
                    let lock = fill.fill_lock.as_deref().and_then(FillLockSlot::take);
                    tier.store_later(stored, lock);
                }
                Ok(MissFinishType::Created(size))
            }
            // Stale on arrival with nothing to revalidate it by: `response_cacheable` declines
            // those up front, so this is only a clock edge; nothing to store, nothing wrong.
            Some(Insert::Expired) => Ok(MissFinishType::Created(0)),
            Some(Insert::TooLarge) => Error::e_explain(
                ErrorType::InternalError,
                format!("a {size}-byte response does not fit the cache"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(url: &str) -> NewObject<Arc<StoredMeta>> {
        let now = SystemTime::now();
        let header = ResponseHeader::build(200, None).unwrap();
        let meta = StoredMeta::of(&CacheMeta::new(
            now + Duration::from_secs(60),
            now,
            0,
            0,
            header,
        ));
        NewObject {
            meta_weight: meta.weight(),
            expires: meta.expires(),
            meta: Arc::new(meta),
            body: Bytes::from_static(b"body"),
            url: Arc::from(url),
            tags: Vec::new(),
        }
    }

    #[test]
    fn a_fill_that_began_before_a_purge_is_not_stored() {
        let backend = CacheBackend::leak(1 << 20, 1 << 16);
        let key = EntryKey::primary([7; 16]);
        let now = SystemTime::now();
        let before = backend.purge_generation();
        backend.begin_purge();
        assert_eq!(
            backend.insert_unless_purged(key, object("http://h/a"), now, before),
            None
        );
        assert!(backend.store.get(&key, now).is_none());

        let since = backend.purge_generation();
        assert!(matches!(
            backend.insert_unless_purged(key, object("http://h/a"), now, since),
            Some(Insert::Stored { .. })
        ));
        assert!(backend.store.get(&key, now).is_some());
    }
}
