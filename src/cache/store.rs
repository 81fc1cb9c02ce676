//! The response cache's in-memory store: objects keyed by pingora's primary and variance
//! hashes, bounded in bytes, evicted in least-recently-used order, expired lazily, and
//! purgeable by key, URL, URL prefix, path prefix, tag, or all at once.
//!
//! Pure: no Pingora, no clock (every `now` is passed in), no I/O, no task. `proxy/cache.rs`
//! implements pingora-cache's `Storage` on top of it and keeps the response meta as an opaque
//! `M`; `admin/` drives the purges. Hits hand out clones of the stored `Bytes` (a reference
//! count, never a copy of the body).
//!
//! ## Shards, and why the primary hash picks them
//!
//! One lock for the whole cache would serialise every hit, so the store is [`SHARDS`] shards,
//! each a mutex around an LRU list and its side indexes. The shard is chosen by the primary
//! hash alone, so every variant of one URL (`Vary`) lives in one shard: `purge_primary` takes
//! one lock. No operation ever holds two shard locks, and removed objects are dropped after
//! the lock is released, so freeing a large body never stalls the shard.
//!
//! ## A global byte bound, and approximately global LRU
//!
//! Per-shard budgets (`max_bytes / 16` each) would refuse an object larger than a sixteenth
//! of the cache and waste space whenever the load is uneven, and tests run with caches of a
//! few hundred KiB. So the byte total is one atomic compared with one `max_bytes`, and
//! eviction has to pick a victim across shards:
//! - every access (insert, `get`, `update_meta`) stamps the object with a tick from one global
//!   counter, taken under the shard lock, so each shard's list is in tick order and its tail
//!   is its oldest object;
//! - each shard publishes its tail's tick in an atomic whenever its lock is released;
//! - to free space, the evictor reads the sixteen atomics (no lock), locks the shard with the
//!   oldest tail, evicts that tail, and repeats until the total fits.
//!
//! Single-threaded this is exactly global LRU. Concurrently, a `get` may touch the chosen tail
//! between the choice and the lock; the evictor then takes that shard's new tail, which can be
//! a little younger than another shard's. That slack is accepted: precision would need all
//! sixteen locks at once.
//!
//! An insert counts the new object first and evicts afterwards, so until its eviction loop
//! ends the total exceeds `max_bytes` by at most that object (by one object per insert in
//! flight). Evicting first would need a reservation protocol, and the body is already in
//! memory anyway: the caller holds it. When no operation is in flight the total is at most
//! `max_bytes`, and it always equals the sum of the objects' weights
//! ([`Store::check_invariants`]).
//!
//! ## Weight
//!
//! The byte bound is meant to bound memory, so an object weighs what it makes the process
//! hold: `body + meta_weight + url + encoded bodies + OBJECT_OVERHEAD`, plus
//! `len + TAG_OVERHEAD` per tag. The overheads are the LRU node, hash slot and index entries,
//! as measured (see [`OBJECT_OVERHEAD`]). At about 500 bytes they dominate small objects: with
//! a flat guess of 128, a cache of small responses would hold nearly twice its bound. Tags are
//! deduplicated and empty tags dropped before they are counted. A body that shares its buffer
//! (a `Bytes` slice of a bigger one) is counted at its own length. Limits are clamped to
//! [`MAX_LIMIT`] so that sums of weights can never overflow a `u64`.
//!
//! ## What a refused insert does
//!
//! An insert whose object would weigh more than `min(max_object_bytes, max_bytes)` returns
//! [`Insert::TooLarge`]; one that is already expired (`now >= expires`) returns
//! [`Insert::Expired`]. Either way nothing is stored, and the object previously stored under
//! that key is removed: the origin has just sent a newer version, so the old one is
//! outdated, and serving it would be serving content the origin has replaced.
//!
//! ## Expiry
//!
//! `expires` is when an object becomes useless (fresh lifetime plus the longest stale
//! allowance). `get` and `peek` remove an object with `now >= expires` and answer `None`;
//! `sweep_expired` removes all of them, through an expiry index, so a sweep costs the expired
//! objects, not the whole cache. `update_meta` and `attach_encoded` take no `now`: they act on
//! an expired object that nobody has looked up yet, which a later lookup removes.
//!
//! ## Counters ([`StoreStats`])
//!
//! - `evictions`: objects removed to make room (after `insert`, `update_meta`,
//!   `attach_encoded`, and `set_limits` lowering the bound).
//! - `expired`: objects removed because `now >= expires`, by `get`/`peek` or `sweep_expired`.
//! - `purged`: objects removed on request: `remove` (what pingora calls for its own purges and
//!   invalidations) and every `purge_*`.
//! - `too_large`: inserts refused as [`Insert::TooLarge`], and `update_meta` calls that would
//!   have made the object too large (which remove it).
//! - Objects replaced under their key by an insert (stored or refused) are in no counter: they
//!   were superseded, not lost.
//!
//! ## Purge selectors
//!
//! - `purge_primary`: every variant of one primary hash (one shard).
//! - `purge_url`: every object whose URL is exactly the given string, all variants. The store
//!   cannot hash a URL into a primary (that is pingora's `CacheKey`), so this looks in every
//!   shard's URL index; a caller that can compute the primary should call `purge_primary`.
//! - `purge_prefix` with a prefix starting with `/`: objects whose path-and-query starts with
//!   it, on any host. The path-and-query is the URL from the first `/`, `?` or `#` after
//!   `scheme://host` (after the start of the URL when it has no `scheme://`), and empty when
//!   there is none, so `http://h` is under no `/` prefix and `http://h?q` is under none
//!   either. Any other prefix is matched against the whole URL, and the empty prefix matches
//!   every object.
//! - `purge_path`: objects whose path-and-query is exactly the given one, on any host.
//! - `purge_tag`: objects carrying that tag (exact, case-sensitive).
//! - `purge_all`: everything.

mod shard;

use std::fmt;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use parking_lot::Mutex;

use shard::{shard_index, Object, Padded, PathKey, Shard, Slot, EMPTY};

/// Number of shards. Sixteen locks keep contention low on the core counts a sidecar gets,
/// while an eviction still reads only sixteen atomics to find the oldest object.
pub(crate) const SHARDS: usize = 16;

/// Bytes counted per object on top of its payload: what the store itself spends on it. The
/// object record in its LRU list node (192 bytes), its hash-table slot, and one entry in each
/// of the URL, path, primary and expiry B-trees. Measured by counting allocations: 520 to 570
/// bytes per object between 100k and 1k objects (less `M`'s own heap, which `meta_weight`
/// covers, and the URL string, which its length covers).
pub(crate) const OBJECT_OVERHEAD: u64 = 512;

/// Bytes counted per tag on top of its length: the shared string's header, its slot in the
/// object's tag list and its entry in the tag B-tree (measured at about 120).
pub(crate) const TAG_OVERHEAD: u64 = 120;

/// The largest `max_bytes` or `max_object_bytes` honoured (64 PiB); larger limits are clamped.
/// Every stored object weighs at most this, so the total stays far from `u64::MAX` even with
/// many inserts in flight, each over the bound by one object until it has evicted.
pub(crate) const MAX_LIMIT: u64 = 1 << 56;

/// A primary or variance hash, as pingora computes them.
pub(crate) type KeyHash = [u8; 16];

/// An object's identity: pingora's primary hash (of the URL key) and, for a response with
/// `Vary`, its variance hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct EntryKey {
    pub(crate) primary: KeyHash,
    pub(crate) variance: Option<KeyHash>,
}

/// What the adapter inserts.
#[derive(Clone, Debug)]
pub struct NewObject<M> {
    pub meta: M,
    /// The adapter's estimate of the bytes the meta holds (headers and the like).
    pub meta_weight: usize,
    pub body: Bytes,
    /// The primary key string, `scheme://host/path?query`, used by the URL and prefix purges.
    pub url: Arc<str>,
    /// Purge tags (from the route's tag header); duplicates and empty tags are dropped.
    pub tags: Vec<Box<str>>,
    /// When the object becomes useless: fresh until, plus the longest of stale-while-revalidate
    /// and stale-if-error. Lookups at or after it remove the object.
    pub expires: SystemTime,
}

/// The response cache's store; see the module documentation. `Send + Sync` when `M: Send`.
pub struct Store<M> {
    slots: [Slot<M>; SHARDS],
    /// The sum of the weights of every stored object.
    bytes: AtomicU64,
    objects: AtomicU64,
    max_bytes: AtomicU64,
    max_object_bytes: AtomicU64,
    evictions: AtomicU64,
    expired: AtomicU64,
    purged: AtomicU64,
    too_large: AtomicU64,
    /// The access clock, bumped by every hit on every core: kept off the other fields' line.
    ticks: Padded<AtomicU64>,
}

/// A stored object, as a lookup returns it.
#[derive(Clone, Debug)]
pub struct Hit<M> {
    pub(crate) meta: M,
    pub(crate) body: Bytes,
    encoded: Option<Arc<[(u8, Bytes)]>>,
    // What the tests and the fuzzing model check a hit against; the data plane reads neither.
    #[cfg(any(test, fuzzing))]
    weight: u64,
    #[cfg(any(test, fuzzing))]
    expires: SystemTime,
}

/// What [`Store::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert {
    /// Stored; `evicted` other objects were evicted to make room.
    Stored { evicted: usize },
    /// Refused: heavier than `min(max_object_bytes, max_bytes)`. Any previous version under
    /// the key was removed.
    TooLarge,
    /// Refused: `now >= expires`. Any previous version under the key was removed.
    Expired,
}

/// A snapshot of the store's gauges and cumulative counters (see the module documentation for
/// what each counter counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub(crate) objects: u64,
    /// The accounted weight of every object.
    pub bytes: u64,
    pub(crate) max_bytes: u64,
    pub(crate) max_object_bytes: u64,
    pub(crate) evictions: u64,
    pub(crate) expired: u64,
    pub(crate) purged: u64,
    pub(crate) too_large: u64,
}

const FIRST_KEY: EntryKey = EntryKey {
    primary: [0; 16],
    variance: None,
};
const LAST_KEY: EntryKey = EntryKey {
    primary: [0xff; 16],
    variance: Some([0xff; 16]),
};

fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

// === impl EntryKey ===

impl EntryKey {
    /// The key without variance, which pingora looks up first.
    pub fn primary(primary: KeyHash) -> Self {
        Self {
            primary,
            variance: None,
        }
    }

    /// All the keys of one primary, first to last in key order.
    #[cfg(any(test, fuzzing))]
    fn variants_of(primary: &KeyHash) -> (Self, Self) {
        let first = Self {
            primary: *primary,
            variance: None,
        };
        let last = Self {
            primary: *primary,
            variance: Some([0xff; 16]),
        };
        (first, last)
    }
}

// === impl Store ===

impl<M> Store<M> {
    /// An empty store bounded to `max_bytes` in total and `max_object_bytes` per object (both
    /// clamped to [`MAX_LIMIT`]).
    pub fn new(max_bytes: u64, max_object_bytes: u64) -> Self {
        Self {
            slots: std::array::from_fn(|_| Slot {
                shard: Mutex::new(Shard::new()),
                lru_tick: AtomicU64::new(EMPTY),
            }),
            bytes: AtomicU64::new(0),
            objects: AtomicU64::new(0),
            max_bytes: AtomicU64::new(max_bytes.min(MAX_LIMIT)),
            max_object_bytes: AtomicU64::new(max_object_bytes.min(MAX_LIMIT)),
            evictions: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            purged: AtomicU64::new(0),
            too_large: AtomicU64::new(0),
            ticks: Padded(AtomicU64::new(0)),
        }
    }

    /// New limits, on config reload: evicts least recently used objects until the total fits
    /// and returns how many. Objects heavier than a lowered `max_object_bytes` stay until
    /// evicted or replaced: they were admissible when stored and are still correct.
    pub fn set_limits(&self, max_bytes: u64, max_object_bytes: u64) -> usize {
        self.max_bytes.store(max_bytes.min(MAX_LIMIT), Relaxed);
        self.max_object_bytes
            .store(max_object_bytes.min(MAX_LIMIT), Relaxed);
        self.evict_to_fit()
    }

    /// The per-object limit now in force.
    pub fn max_object_bytes(&self) -> u64 {
        self.max_object_bytes.load(Relaxed)
    }

    /// Stores `new` under `key`, replacing what was there (last writer wins), then evicts the
    /// least recently used objects until the total fits. Refused when too large or already
    /// expired, which also removes the previous version (see the module documentation).
    pub fn insert(&self, key: EntryKey, new: NewObject<M>, now: SystemTime) -> Insert {
        // Built before locking: the tag copies allocate.
        let mut object = Object::new(new);
        let refusal = if object.weight > self.object_limit() {
            Some(Insert::TooLarge)
        } else if now >= object.expires {
            Some(Insert::Expired)
        } else {
            None
        };
        let index = shard_index(&key.primary);
        if let Some(refusal) = refusal {
            drop(object);
            let outdated = self.locked(index, |shard| self.detach(shard, &key));
            drop(outdated);
            if refusal == Insert::TooLarge {
                self.too_large.fetch_add(1, Relaxed);
            }
            return refusal;
        }
        let replaced = self.locked(index, |shard| {
            object.tick = self.next_tick();
            self.bytes.fetch_add(object.weight, Relaxed);
            self.objects.fetch_add(1, Relaxed);
            let replaced = shard.link(key, object);
            if let Some(replaced) = &replaced {
                self.forget(replaced);
            }
            replaced
        });
        drop(replaced);
        Insert::Stored {
            evicted: self.evict_to_fit(),
        }
    }

    /// After a 304: the new meta and expiry, keeping the body, tags and encoded bodies. Counts
    /// as an access. `false` if absent; also `false` if the new meta would make the object too
    /// large, in which case the object is removed (its old meta is outdated).
    pub(crate) fn update_meta(
        &self,
        key: &EntryKey,
        meta: M,
        meta_weight: usize,
        expires: SystemTime,
    ) -> bool {
        enum Outcome<M> {
            Absent,
            TooLarge(Option<Object<M>>),
            Updated(M),
        }
        let limit = self.object_limit();
        let outcome = self.locked(shard_index(&key.primary), |shard| {
            let Some(object) = shard.objects.get_mut(key) else {
                return Outcome::Absent;
            };
            let weight = object
                .weight
                .saturating_sub(len_u64(object.meta_weight))
                .saturating_add(len_u64(meta_weight));
            if weight > limit {
                return Outcome::TooLarge(self.detach(shard, key));
            }
            self.reweigh(object.weight, weight);
            object.weight = weight;
            object.meta_weight = meta_weight;
            object.tick = self.next_tick();
            let old_meta = std::mem::replace(&mut object.meta, meta);
            let old_expires = std::mem::replace(&mut object.expires, expires);
            if old_expires != expires {
                shard.by_expiry.remove(&(old_expires, *key));
                shard.by_expiry.insert((expires, *key));
            }
            Outcome::Updated(old_meta)
        });
        match outcome {
            Outcome::Absent => false,
            Outcome::TooLarge(removed) => {
                drop(removed);
                self.too_large.fetch_add(1, Relaxed);
                false
            }
            Outcome::Updated(old_meta) => {
                drop(old_meta);
                self.evict_to_fit();
                true
            }
        }
    }

    /// Memoises a compressed form of the stored body under `coding` (an id of the caller's
    /// choosing), replacing one of the same coding. Counted in the object's weight; evicts
    /// other objects if the total no longer fits. Not an access. `false` if absent, or if the
    /// object would become too large (it is then left as it was).
    pub(crate) fn attach_encoded(&self, key: &EntryKey, coding: u8, body: Bytes) -> bool {
        let limit = self.object_limit();
        let outcome = self.locked(shard_index(&key.primary), |shard| {
            let object = shard.objects.peek_mut(key)?;
            let weight = object
                .weight
                .saturating_sub(len_u64(object.encoded_len(coding)))
                .saturating_add(len_u64(body.len()));
            if weight > limit {
                return Some(Err(body));
            }
            let others = object.encoded.iter().flat_map(|encoded| encoded.iter());
            let encoded: Arc<[(u8, Bytes)]> = others
                .filter(|(other, _)| *other != coding)
                .cloned()
                .chain(std::iter::once((coding, body)))
                .collect();
            self.reweigh(object.weight, weight);
            object.weight = weight;
            Some(Ok(object.encoded.replace(encoded)))
        });
        match outcome {
            Some(Ok(_replaced)) => {
                self.evict_to_fit();
                true
            }
            Some(Err(_)) | None => false,
        }
    }

    /// Removes one object; counted as purged.
    pub(crate) fn remove(&self, key: &EntryKey) -> bool {
        let removed = self.locked(shard_index(&key.primary), |shard| self.detach(shard, key));
        let found = removed.is_some();
        drop(removed);
        if found {
            self.purged.fetch_add(1, Relaxed);
        }
        found
    }

    /// Removes every variant of `primary`.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn purge_primary(&self, primary: &KeyHash) -> usize {
        let (first, last) = EntryKey::variants_of(primary);
        let purged = self.remove_selected(shard_index(primary), |shard| {
            shard.by_primary.range(first..=last).copied().collect()
        });
        self.count_purged(purged)
    }

    /// Removes every object whose URL is exactly `url`, all variants.
    pub(crate) fn purge_url(&self, url: &str) -> usize {
        let url: Arc<str> = Arc::from(url);
        let first = (Arc::clone(&url), FIRST_KEY);
        let last = (url, LAST_KEY);
        self.purge_everywhere(|shard| {
            let bounds = (Bound::Included(&first), Bound::Included(&last));
            shard.by_url.range(bounds).map(|(_, key)| *key).collect()
        })
    }

    /// Removes the objects whose path-and-query is exactly `path` (`/a?b`), on any host: a
    /// purge by key for callers that do not know which host the clients used.
    pub(crate) fn purge_path(&self, path: &str) -> usize {
        let first = (
            PathKey {
                url: Arc::from(path),
                start: 0,
            },
            FIRST_KEY,
        );
        self.purge_everywhere(|shard| {
            let bounds = (Bound::Included(&first), Bound::Unbounded);
            shard
                .by_path
                .range(bounds)
                .take_while(|(p, _)| p.path() == path)
                .map(|(_, key)| *key)
                .collect()
        })
    }

    /// Removes the objects whose path-and-query (any host) starts with `prefix` if it starts
    /// with `/`, and otherwise those whose whole URL does (see the module documentation).
    pub fn purge_prefix(&self, prefix: &str) -> usize {
        let start: Arc<str> = Arc::from(prefix);
        if prefix.starts_with('/') {
            let first = (
                PathKey {
                    url: start,
                    start: 0,
                },
                FIRST_KEY,
            );
            self.purge_everywhere(|shard| {
                let bounds = (Bound::Included(&first), Bound::Unbounded);
                shard
                    .by_path
                    .range(bounds)
                    .take_while(|(path, _)| path.path().starts_with(prefix))
                    .map(|(_, key)| *key)
                    .collect()
            })
        } else {
            let first = (start, FIRST_KEY);
            self.purge_everywhere(|shard| {
                let bounds = (Bound::Included(&first), Bound::Unbounded);
                shard
                    .by_url
                    .range(bounds)
                    .take_while(|(url, _)| url.starts_with(prefix))
                    .map(|(_, key)| *key)
                    .collect()
            })
        }
    }

    /// Removes every object carrying `tag`.
    pub(crate) fn purge_tag(&self, tag: &str) -> usize {
        let tag: Arc<str> = Arc::from(tag);
        let first = (Arc::clone(&tag), FIRST_KEY);
        let last = (tag, LAST_KEY);
        self.purge_everywhere(|shard| {
            let bounds = (Bound::Included(&first), Bound::Included(&last));
            shard.by_tag.range(bounds).map(|(_, key)| *key).collect()
        })
    }

    /// Removes every object.
    pub(crate) fn purge_all(&self) -> usize {
        let mut purged = 0;
        for index in 0..SHARDS {
            let emptied = self.locked(index, |shard| {
                let emptied = std::mem::replace(shard, Shard::new());
                for (_, object) in emptied.objects.iter() {
                    self.forget(object);
                }
                emptied
            });
            purged += emptied.objects.len();
            drop(emptied);
        }
        self.count_purged(purged)
    }

    /// Removes every object with `now >= expires`; background expiry.
    pub(crate) fn sweep_expired(&self, now: SystemTime) -> usize {
        let mut expired = 0;
        for index in 0..SHARDS {
            expired += self.remove_selected(index, |shard| {
                let bounds = (Bound::Unbounded, Bound::Included(&(now, LAST_KEY)));
                shard.by_expiry.range(bounds).map(|(_, key)| *key).collect()
            });
        }
        if expired > 0 {
            self.expired.fetch_add(len_u64(expired), Relaxed);
        }
        expired
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats {
            objects: self.objects.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            max_bytes: self.max_bytes.load(Relaxed),
            max_object_bytes: self.max_object_bytes.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            expired: self.expired.load(Relaxed),
            purged: self.purged.load(Relaxed),
            too_large: self.too_large.load(Relaxed),
        }
    }

    /// For tests and the fuzz target, when no other operation is in flight: the byte total is
    /// the sum of the weights and each weight its parts' sum, the object count matches, every
    /// index entry has its object and every object its index entries, each object sits in the
    /// shard of its primary, each shard's list is in tick order, and each shard's published
    /// tail tick is its tail's.
    #[doc(hidden)]
    #[cfg(any(test, fuzzing))]
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        let mut bytes = 0_u64;
        let mut objects = 0_u64;
        for (index, slot) in self.slots.iter().enumerate() {
            let shard = slot.shard.lock();
            let published = slot.lru_tick.load(Relaxed);
            if published != shard.tail_tick() {
                return Err(format!(
                    "shard {index} publishes tail tick {published}, its tail has {}",
                    shard.tail_tick()
                ));
            }
            let (shard_bytes, shard_objects) = shard
                .check(index, self.ticks.0.load(Relaxed))
                .map_err(|e| format!("shard {index}: {e}"))?;
            bytes = bytes.saturating_add(shard_bytes);
            objects += shard_objects;
        }
        let stats = self.stats();
        if stats.bytes != bytes {
            return Err(format!(
                "byte total {} but the objects weigh {bytes}",
                stats.bytes
            ));
        }
        if stats.objects != objects {
            return Err(format!(
                "object count {} but {objects} objects are stored",
                stats.objects
            ));
        }
        Ok(())
    }

    fn object_limit(&self) -> u64 {
        let max_bytes = self.max_bytes.load(Relaxed);
        self.max_object_bytes.load(Relaxed).min(max_bytes)
    }

    fn next_tick(&self) -> u64 {
        self.ticks.0.fetch_add(1, Relaxed)
    }

    /// Runs `f` on shard `index` under its lock, then publishes the shard's tail tick before
    /// unlocking. Whatever `f` returns (removed objects) is dropped by the caller, unlocked.
    fn locked<R>(&self, index: usize, f: impl FnOnce(&mut Shard<M>) -> R) -> R {
        let slot = &self.slots[index % SHARDS];
        let mut shard = slot.shard.lock();
        let result = f(&mut shard);
        slot.lru_tick.store(shard.tail_tick(), Relaxed);
        result
    }

    /// Unlinks one object and takes it out of the totals. Under the shard lock.
    fn detach(&self, shard: &mut Shard<M>, key: &EntryKey) -> Option<Object<M>> {
        let object = shard.unlink(key)?;
        self.forget(&object);
        Some(object)
    }

    /// Takes an unlinked object out of the totals. Under the shard lock that unlinked it.
    fn forget(&self, object: &Object<M>) {
        self.bytes.fetch_sub(object.weight, Relaxed);
        self.objects.fetch_sub(1, Relaxed);
    }

    /// An object's weight changed from `old` to `new`. Under its shard lock.
    fn reweigh(&self, old: u64, new: u64) {
        if new >= old {
            self.bytes.fetch_add(new - old, Relaxed);
        } else {
            self.bytes.fetch_sub(old - new, Relaxed);
        }
    }

    /// Evicts least recently used objects, globally oldest first, until the total fits.
    fn evict_to_fit(&self) -> usize {
        let mut evicted = 0;
        while self.bytes.load(Relaxed) > self.max_bytes.load(Relaxed) {
            // All shards empty while over the bound only happens in a race with an insert
            // that has counted its object but not yet published it; that insert evicts next.
            let Some(index) = self.oldest_shard() else {
                break;
            };
            let victim = self.locked(index, |shard| {
                let victim = shard.unlink_lru()?;
                self.forget(&victim);
                Some(victim)
            });
            if victim.is_some() {
                evicted += 1;
            }
            // Otherwise the shard emptied since its tick was read; it now publishes EMPTY.
            drop(victim);
        }
        if evicted > 0 {
            self.evictions.fetch_add(len_u64(evicted), Relaxed);
        }
        evicted
    }

    /// The shard whose least recently used object is the oldest, from the published ticks.
    fn oldest_shard(&self) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .map(|(index, slot)| (slot.lru_tick.load(Relaxed), index))
            .filter(|(tick, _)| *tick != EMPTY)
            .min()
            .map(|(_, index)| index)
    }

    /// Removes the objects `select` picks in shard `index`; how many.
    fn remove_selected(
        &self,
        index: usize,
        select: impl FnOnce(&Shard<M>) -> Vec<EntryKey>,
    ) -> usize {
        let removed: Vec<Object<M>> = self.locked(index, |shard| {
            let keys = select(shard);
            keys.iter()
                .filter_map(|key| self.detach(shard, key))
                .collect()
        });
        removed.len()
    }

    /// Removes, shard after shard, the objects `select` picks, and counts them as purged.
    fn purge_everywhere(&self, select: impl Fn(&Shard<M>) -> Vec<EntryKey>) -> usize {
        let purged = (0..SHARDS)
            .map(|index| self.remove_selected(index, &select))
            .sum();
        self.count_purged(purged)
    }

    fn count_purged(&self, purged: usize) -> usize {
        if purged > 0 {
            self.purged.fetch_add(len_u64(purged), Relaxed);
        }
        purged
    }
}

impl<M: Clone> Store<M> {
    /// The object under `key`, counted as an access (moves it to the head of the LRU order).
    /// An object with `now >= expires` is removed (counted as expired) and `None` returned.
    /// Costs one lock, one hash lookup, and clones of `M` and of the `Bytes` handles.
    pub fn get(&self, key: &EntryKey, now: SystemTime) -> Option<Hit<M>> {
        self.lookup(key, now, true)
    }

    /// Like [`Store::get`] without the access: the LRU order is left as it is.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn peek(&self, key: &EntryKey, now: SystemTime) -> Option<Hit<M>> {
        self.lookup(key, now, false)
    }

    fn lookup(&self, key: &EntryKey, now: SystemTime, touch: bool) -> Option<Hit<M>> {
        let (hit, expired) = self.locked(shard_index(&key.primary), |shard| {
            let object = if touch {
                shard.objects.get_mut(key)
            } else {
                shard.objects.peek_mut(key)
            };
            match object {
                None => (None, None),
                Some(object) if now >= object.expires => (None, self.detach(shard, key)),
                Some(object) => {
                    if touch {
                        object.tick = self.next_tick();
                    }
                    (Some(object.hit()), None)
                }
            }
        });
        if expired.is_some() {
            self.expired.fetch_add(1, Relaxed);
        }
        drop(expired);
        hit
    }
}

impl<M> fmt::Debug for Store<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

// === impl Hit ===

impl<M> Hit<M> {
    /// The memoised body for `coding`, if one was attached.
    pub(crate) fn encoded(&self, coding: u8) -> Option<Bytes> {
        let encoded = self.encoded.as_deref()?;
        let (_, body) = encoded.iter().find(|(other, _)| *other == coding)?;
        Some(body.clone())
    }

    /// The object's accounted weight (see the module documentation).
    #[cfg(any(test, fuzzing))]
    pub(crate) fn weight(&self) -> usize {
        usize::try_from(self.weight).unwrap_or(usize::MAX)
    }

    /// When the object becomes useless, as inserted or last updated.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn expires(&self) -> SystemTime {
        self.expires
    }
}

/// The operations the fuzz target (`fuzz/fuzz_targets/cache_store.rs`), the proptests and the
/// stress test run, decoded from bytes, and a reference model of the store's behaviour that
/// every single-threaded run is compared with. Public only so that the fuzz crate can call it;
/// compiled only for `cargo test` and the fuzz crate (`--cfg fuzzing`), not shipped.
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod fuzzing;

#[cfg(test)]
mod tests;
