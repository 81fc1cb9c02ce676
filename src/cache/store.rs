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

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use lru::LruCache;
use parking_lot::Mutex;

/// Number of shards. Sixteen locks keep contention low on the core counts a sidecar gets,
/// while an eviction still reads only sixteen atomics to find the oldest object.
pub const SHARDS: usize = 16;

/// Bytes counted per object on top of its payload: what the store itself spends on it. The
/// object record in its LRU list node (192 bytes), its hash-table slot, and one entry in each
/// of the URL, path, primary and expiry B-trees. Measured by counting allocations: 520 to 570
/// bytes per object between 100k and 1k objects (less `M`'s own heap, which `meta_weight`
/// covers, and the URL string, which its length covers).
pub const OBJECT_OVERHEAD: u64 = 512;

/// Bytes counted per tag on top of its length: the shared string's header, its slot in the
/// object's tag list and its entry in the tag B-tree (measured at about 120).
pub const TAG_OVERHEAD: u64 = 120;

/// The largest `max_bytes` or `max_object_bytes` honoured (64 PiB); larger limits are clamped.
/// Every stored object weighs at most this, so the total stays far from `u64::MAX` even with
/// many inserts in flight, each over the bound by one object until it has evicted.
pub const MAX_LIMIT: u64 = 1 << 56;

/// A primary or variance hash, as pingora computes them.
pub type KeyHash = [u8; 16];

/// An object's identity: pingora's primary hash (of the URL key) and, for a response with
/// `Vary`, its variance hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct EntryKey {
    pub primary: KeyHash,
    pub variance: Option<KeyHash>,
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
    pub meta: M,
    pub body: Bytes,
    encoded: Option<Arc<[(u8, Bytes)]>>,
    weight: u64,
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
    pub objects: u64,
    /// The accounted weight of every object.
    pub bytes: u64,
    pub max_bytes: u64,
    pub max_object_bytes: u64,
    pub evictions: u64,
    pub expired: u64,
    pub purged: u64,
    pub too_large: u64,
}

/// One shard and the tick of its least recently used object ([`EMPTY`] when it has none),
/// which evictors read without taking the lock. Aligned so that two shards' locks never share
/// a cache line.
#[repr(align(128))]
struct Slot<M> {
    shard: Mutex<Shard<M>>,
    lru_tick: AtomicU64,
}

#[repr(align(128))]
struct Padded<T>(T);

/// The objects of one shard in LRU order, and the indexes the purges and the sweep use. Every
/// object has exactly one entry in `by_url`, `by_path`, `by_primary` and `by_expiry`, and one
/// in `by_tag` per tag; sets of `(value, key)` make removing one object `O(log n)` however
/// many objects share the value.
struct Shard<M> {
    objects: LruCache<EntryKey, Object<M>>,
    by_url: BTreeSet<(Arc<str>, EntryKey)>,
    by_path: BTreeSet<(PathKey, EntryKey)>,
    by_tag: BTreeSet<(Arc<str>, EntryKey)>,
    by_primary: BTreeSet<EntryKey>,
    by_expiry: BTreeSet<(SystemTime, EntryKey)>,
}

struct Object<M> {
    meta: M,
    meta_weight: usize,
    body: Bytes,
    url: Arc<str>,
    /// Where the path-and-query starts in `url` (see [`path_start`]).
    path_start: usize,
    /// Sorted, deduplicated, none empty.
    tags: Box<[Arc<str>]>,
    /// At most one body per coding; `None` rather than an empty slice so that objects without
    /// encodings cost no allocation.
    encoded: Option<Arc<[(u8, Bytes)]>>,
    expires: SystemTime,
    /// Cached `computed_weight()`, kept exact by every change.
    weight: u64,
    /// The global tick of the last access.
    tick: u64,
}

/// A URL ordered by its path-and-query, sharing the object's string instead of copying it.
/// Two URLs with the same path on different hosts are equal keys.
#[derive(Clone)]
struct PathKey {
    url: Arc<str>,
    start: usize,
}

/// The tick a shard publishes when it holds no object: never the oldest.
const EMPTY: u64 = u64::MAX;

const FIRST_KEY: EntryKey = EntryKey {
    primary: [0; 16],
    variance: None,
};
const LAST_KEY: EntryKey = EntryKey {
    primary: [0xff; 16],
    variance: Some([0xff; 16]),
};

fn shard_index(primary: &KeyHash) -> usize {
    // The primary is a cryptographic hash (pingora's blake2 of the key): any byte is uniform.
    usize::from(primary[0]) % SHARDS
}

fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// Where the path-and-query starts in `url`: at the first `/`, `?` or `#` after
/// `scheme://host`, or after the start when there is no `scheme://` before any of those;
/// `url.len()` (an empty path) when there is none.
fn path_start(url: &str) -> usize {
    const DELIMITERS: [char; 3] = ['/', '?', '#'];
    let authority = match url.find("://") {
        Some(i) if !url[..i].contains(DELIMITERS) => i + 3,
        _ => 0,
    };
    url[authority..]
        .find(DELIMITERS)
        .map_or(url.len(), |i| authority + i)
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
    pub fn update_meta(
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
    pub fn attach_encoded(&self, key: &EntryKey, coding: u8, body: Bytes) -> bool {
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
    pub fn remove(&self, key: &EntryKey) -> bool {
        let removed = self.locked(shard_index(&key.primary), |shard| self.detach(shard, key));
        let found = removed.is_some();
        drop(removed);
        if found {
            self.purged.fetch_add(1, Relaxed);
        }
        found
    }

    /// Removes every variant of `primary`.
    pub fn purge_primary(&self, primary: &KeyHash) -> usize {
        let (first, last) = EntryKey::variants_of(primary);
        let purged = self.remove_selected(shard_index(primary), |shard| {
            shard.by_primary.range(first..=last).copied().collect()
        });
        self.count_purged(purged)
    }

    /// Removes every object whose URL is exactly `url`, all variants.
    pub fn purge_url(&self, url: &str) -> usize {
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
    pub fn purge_path(&self, path: &str) -> usize {
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
    pub fn purge_tag(&self, tag: &str) -> usize {
        let tag: Arc<str> = Arc::from(tag);
        let first = (Arc::clone(&tag), FIRST_KEY);
        let last = (tag, LAST_KEY);
        self.purge_everywhere(|shard| {
            let bounds = (Bound::Included(&first), Bound::Included(&last));
            shard.by_tag.range(bounds).map(|(_, key)| *key).collect()
        })
    }

    /// Removes every object.
    pub fn purge_all(&self) -> usize {
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
    pub fn sweep_expired(&self, now: SystemTime) -> usize {
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
    pub fn check_invariants(&self) -> Result<(), String> {
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
    pub fn peek(&self, key: &EntryKey, now: SystemTime) -> Option<Hit<M>> {
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
    pub fn encoded(&self, coding: u8) -> Option<Bytes> {
        let encoded = self.encoded.as_deref()?;
        let (_, body) = encoded.iter().find(|(other, _)| *other == coding)?;
        Some(body.clone())
    }

    /// The object's accounted weight (see the module documentation).
    pub fn weight(&self) -> usize {
        usize::try_from(self.weight).unwrap_or(usize::MAX)
    }

    /// When the object becomes useless, as inserted or last updated.
    pub fn expires(&self) -> SystemTime {
        self.expires
    }
}

// === impl Shard ===

impl<M> Shard<M> {
    fn new() -> Self {
        Self {
            objects: LruCache::unbounded(),
            by_url: BTreeSet::new(),
            by_path: BTreeSet::new(),
            by_tag: BTreeSet::new(),
            by_primary: BTreeSet::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// Stores `object` as the most recently used, returning the object it replaces.
    fn link(&mut self, key: EntryKey, object: Object<M>) -> Option<Object<M>> {
        // Unindexed before indexing: the old and new entries can be equal tuples.
        let replaced = self.unlink(&key);
        self.by_url.insert((Arc::clone(&object.url), key));
        self.by_path.insert((object.path_key(), key));
        for tag in object.tags.iter() {
            self.by_tag.insert((Arc::clone(tag), key));
        }
        self.by_primary.insert(key);
        self.by_expiry.insert((object.expires, key));
        self.objects.put(key, object);
        replaced
    }

    fn unlink(&mut self, key: &EntryKey) -> Option<Object<M>> {
        let object = self.objects.pop(key)?;
        self.unindex(key, &object);
        Some(object)
    }

    fn unlink_lru(&mut self) -> Option<Object<M>> {
        let (key, object) = self.objects.pop_lru()?;
        self.unindex(&key, &object);
        Some(object)
    }

    fn unindex(&mut self, key: &EntryKey, object: &Object<M>) {
        self.by_url.remove(&(Arc::clone(&object.url), *key));
        self.by_path.remove(&(object.path_key(), *key));
        for tag in object.tags.iter() {
            self.by_tag.remove(&(Arc::clone(tag), *key));
        }
        self.by_primary.remove(key);
        self.by_expiry.remove(&(object.expires, *key));
    }

    fn tail_tick(&self) -> u64 {
        self.objects
            .peek_lru()
            .map_or(EMPTY, |(_, object)| object.tick)
    }

    /// The shard's part of [`Store::check_invariants`]: its bytes and object count.
    fn check(&self, index: usize, next_tick: u64) -> Result<(u64, u64), String> {
        let mut bytes = 0_u64;
        let mut tags = 0;
        let mut newer_tick = next_tick;
        // `iter` walks from the most to the least recently used.
        for (key, object) in self.objects.iter() {
            if shard_index(&key.primary) != index {
                return Err(format!("{key:?} is in the wrong shard"));
            }
            if object.tick >= newer_tick {
                return Err(format!(
                    "{key:?} has tick {} but a more recent object has {newer_tick}",
                    object.tick
                ));
            }
            newer_tick = object.tick;
            if object.weight != object.computed_weight() {
                return Err(format!(
                    "{key:?} is accounted at {} bytes but weighs {}",
                    object.weight,
                    object.computed_weight()
                ));
            }
            bytes = bytes.saturating_add(object.weight);
            let indexed = self.by_url.contains(&(Arc::clone(&object.url), *key))
                && self.by_path.contains(&(object.path_key(), *key))
                && self.by_primary.contains(key)
                && self.by_expiry.contains(&(object.expires, *key))
                && (object.tags.iter()).all(|tag| self.by_tag.contains(&(Arc::clone(tag), *key)));
            if !indexed {
                return Err(format!("{key:?} is missing from an index"));
            }
            let well_formed_tags = object.tags.windows(2).all(|pair| pair[0] < pair[1])
                && object.tags.iter().all(|tag| !tag.is_empty());
            if !well_formed_tags {
                return Err(format!("{key:?} has tags {:?}", object.tags));
            }
            let codings = object.encoded.iter().flat_map(|encoded| encoded.iter());
            let mut seen = [false; 256];
            for (coding, _) in codings {
                if std::mem::replace(&mut seen[usize::from(*coding)], true) {
                    return Err(format!("{key:?} has two bodies for coding {coding}"));
                }
            }
            tags += object.tags.len();
        }
        // Every object has its entries, so equal sizes mean no entry without an object.
        let objects = self.objects.len();
        let sizes = [
            ("url", self.by_url.len(), objects),
            ("path", self.by_path.len(), objects),
            ("primary", self.by_primary.len(), objects),
            ("expiry", self.by_expiry.len(), objects),
            ("tag", self.by_tag.len(), tags),
        ];
        for (name, size, expected) in sizes {
            if size != expected {
                return Err(format!(
                    "the {name} index has {size} entries for {expected}"
                ));
            }
        }
        Ok((bytes, len_u64(objects)))
    }
}

// === impl Object ===

impl<M> Object<M> {
    fn new(new: NewObject<M>) -> Self {
        let NewObject {
            meta,
            meta_weight,
            body,
            url,
            tags,
            expires,
        } = new;
        let mut tags: Vec<Box<str>> = tags.into_iter().filter(|tag| !tag.is_empty()).collect();
        tags.sort_unstable();
        tags.dedup();
        let mut object = Self {
            meta,
            meta_weight,
            body,
            path_start: path_start(&url),
            url,
            tags: tags.into_iter().map(Arc::from).collect(),
            encoded: None,
            expires,
            weight: 0,
            tick: 0,
        };
        object.weight = object.computed_weight();
        object
    }

    fn computed_weight(&self) -> u64 {
        let tags = (self.tags.iter()).map(|tag| len_u64(tag.len()).saturating_add(TAG_OVERHEAD));
        let encoded = (self.encoded.iter().flat_map(|encoded| encoded.iter()))
            .map(|(_, body)| len_u64(body.len()));
        [self.body.len(), self.meta_weight, self.url.len()]
            .into_iter()
            .map(len_u64)
            .chain(tags)
            .chain(encoded)
            .fold(OBJECT_OVERHEAD, u64::saturating_add)
    }

    fn encoded_len(&self, coding: u8) -> usize {
        let mut encoded = self.encoded.iter().flat_map(|encoded| encoded.iter());
        encoded
            .find(|(other, _)| *other == coding)
            .map_or(0, |(_, body)| body.len())
    }

    fn path_key(&self) -> PathKey {
        PathKey {
            url: Arc::clone(&self.url),
            start: self.path_start,
        }
    }
}

impl<M: Clone> Object<M> {
    fn hit(&self) -> Hit<M> {
        Hit {
            meta: self.meta.clone(),
            body: self.body.clone(),
            encoded: self.encoded.clone(),
            weight: self.weight,
            expires: self.expires,
        }
    }
}

// === impl PathKey ===

impl PathKey {
    fn path(&self) -> &str {
        self.url.get(self.start..).unwrap_or_default()
    }
}

impl PartialEq for PathKey {
    fn eq(&self, other: &Self) -> bool {
        self.path() == other.path()
    }
}

impl Eq for PathKey {}

impl PartialOrd for PathKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PathKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.path().cmp(other.path())
    }
}

/// The operations the fuzz target (`fuzz/fuzz_targets/cache_store.rs`), the proptests and the
/// stress test run, decoded from bytes, and a reference model of the store's behaviour that
/// every single-threaded run is compared with. Public only so that the fuzz crate can call it;
/// compiled and exercised by `cargo test`.
#[doc(hidden)]
pub mod fuzzing {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    /// Each operation is this many bytes: an opcode and up to six arguments. A fixed width
    /// keeps the decoding trivial and lets a fuzzer's mutations line up with operations.
    pub const OP_LEN: usize = 7;

    /// URLs, each with the path-and-query the store must find in it: with and without a
    /// path, a query, another host and scheme, no scheme, a `/` only in the query, non-ASCII.
    pub const URLS: [(&str, &str); 10] = [
        ("http://a.test/", "/"),
        ("http://a.test/x", "/x"),
        ("http://a.test/x/y?q=1", "/x/y?q=1"),
        ("http://b.test/x/y", "/x/y"),
        ("https://a.test/x", "/x"),
        ("http://b.test?q=/x", "?q=/x"),
        ("http://c.test", ""),
        ("c.test/x/z", "/x/z"),
        ("http://é.test/é", "/é"),
        ("http://a.test/xy", "/xy"),
    ];

    pub const PREFIXES: [&str; 14] = [
        "/",
        "/x",
        "/x/",
        "/x/y",
        "?",
        "",
        "http://a.test/",
        "http://a.test/x",
        "https://",
        "http://b",
        "c.test/",
        "/é",
        "/nope",
        "http://é",
    ];

    /// Duplicates and an empty tag on purpose: the store drops both.
    pub const TAGS: [&str; 5] = ["red", "green", "blue", "red", ""];

    /// First bytes of the primaries: shards 0, 1, 0 (a second primary there), 15 and 7.
    const PRIMARIES: [u8; 5] = [0x00, 0x01, 0x10, 0x0f, 0x27];
    const VARIANCES: [Option<u8>; 3] = [None, Some(1), Some(2)];
    const MAX_BYTES: [u64; 8] = [0, 700, 2_048, 8_192, 16_384, 32_768, 1 << 20, u64::MAX];
    const MAX_OBJECT_BYTES: [u64; 6] = [0, 600, 1_024, 4_096, 16_384, u64::MAX];
    pub const INITIAL_MAX_BYTES: u64 = 16_384;
    pub const INITIAL_MAX_OBJECT_BYTES: u64 = 8_192;
    const CODINGS: u8 = 3;
    /// Bodies are slices of this, so that running operations allocates no body.
    static ZEROS: [u8; 4096] = [0; 4096];

    /// One operation; keys, URLs, prefixes and tags are indexes into the vocabularies above.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Op {
        Insert {
            key: u8,
            url: u8,
            tags: u8,
            body_len: u16,
            meta_weight: u16,
            ttl_secs: u8,
        },
        Get {
            key: u8,
        },
        Peek {
            key: u8,
        },
        UpdateMeta {
            key: u8,
            meta_weight: u16,
            ttl_secs: u8,
        },
        AttachEncoded {
            key: u8,
            coding: u8,
            len: u16,
        },
        Remove {
            key: u8,
        },
        PurgePrimary {
            primary: u8,
        },
        PurgeUrl {
            url: u8,
        },
        PurgePrefix {
            prefix: u8,
        },
        PurgeTag {
            tag: u8,
        },
        PurgeAll,
        SweepExpired,
        Advance {
            secs: u8,
        },
        SetLimits {
            max_bytes: u8,
            max_object_bytes: u8,
        },
    }

    /// What an operation answered, in a form the store and the model can both produce.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Answer {
        Insert(Insert),
        Lookup(Option<HitView>),
        Done(bool),
        Count(usize),
        Nothing,
    }

    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct HitView {
        /// The sequence number of the insert or meta update that produced it.
        pub meta: u32,
        pub body_len: usize,
        pub weight: usize,
        pub encoded_lens: [Option<usize>; CODINGS as usize],
    }

    /// A store and the model, run side by side.
    pub struct Harness {
        pub store: Store<u32>,
        model: Model,
        now: SystemTime,
        seq: u32,
    }

    struct Model {
        objects: HashMap<EntryKey, ModelObject>,
        tick: u64,
        stats: StoreStats,
    }

    struct ModelObject {
        meta: u32,
        body_len: usize,
        meta_weight: usize,
        url: u8,
        tags: BTreeSet<&'static str>,
        expires: SystemTime,
        encoded: BTreeMap<u8, usize>,
        tick: u64,
    }

    /// Decodes `data` as operations (a trailing partial one is ignored) and runs them through
    /// a [`Harness`]: the first disagreement or broken invariant is the error.
    pub fn run_ops(data: &[u8]) -> Result<(), String> {
        let mut harness = Harness::new();
        for (step, chunk) in data.chunks_exact(OP_LEN).enumerate() {
            let op = Op::decode(chunk);
            harness
                .apply(op)
                .map_err(|e| format!("op {step} {op:?}: {e}"))?;
        }
        Ok(())
    }

    /// Applies `op` to `store` alone (no model), for concurrent runs. `seq` identifies the
    /// meta written, `now` is the thread's clock.
    pub fn apply_to_store(store: &Store<u32>, op: Op, now: &mut SystemTime, seq: u32) -> Answer {
        match op {
            Op::Insert {
                key,
                url,
                tags,
                body_len,
                meta_weight,
                ttl_secs,
            } => {
                let new = NewObject {
                    meta: seq,
                    meta_weight: usize::from(meta_weight),
                    body: zeros(body_len),
                    url: Arc::from(pick(&URLS, url).0),
                    tags: tag_names(tags).map(Box::from).collect(),
                    expires: *now + Duration::from_secs(u64::from(ttl_secs)),
                };
                Answer::Insert(store.insert(entry_key(key), new, *now))
            }
            Op::Get { key } => Answer::Lookup(store.get(&entry_key(key), *now).map(view)),
            Op::Peek { key } => Answer::Lookup(store.peek(&entry_key(key), *now).map(view)),
            Op::UpdateMeta {
                key,
                meta_weight,
                ttl_secs,
            } => {
                let expires = *now + Duration::from_secs(u64::from(ttl_secs));
                let meta_weight = usize::from(meta_weight);
                Answer::Done(store.update_meta(&entry_key(key), seq, meta_weight, expires))
            }
            Op::AttachEncoded { key, coding, len } => {
                let body = zeros(len);
                Answer::Done(store.attach_encoded(&entry_key(key), coding, body))
            }
            Op::Remove { key } => Answer::Done(store.remove(&entry_key(key))),
            Op::PurgePrimary { primary } => {
                Answer::Count(store.purge_primary(&entry_key(primary).primary))
            }
            Op::PurgeUrl { url } => Answer::Count(store.purge_url(pick(&URLS, url).0)),
            Op::PurgePrefix { prefix } => {
                Answer::Count(store.purge_prefix(pick(&PREFIXES, prefix)))
            }
            Op::PurgeTag { tag } => Answer::Count(store.purge_tag(pick(&TAGS, tag))),
            Op::PurgeAll => Answer::Count(store.purge_all()),
            Op::SweepExpired => Answer::Count(store.sweep_expired(*now)),
            Op::Advance { secs } => {
                *now += Duration::from_secs(u64::from(secs));
                Answer::Nothing
            }
            Op::SetLimits {
                max_bytes,
                max_object_bytes,
            } => Answer::Count(store.set_limits(
                pick(&MAX_BYTES, max_bytes),
                pick(&MAX_OBJECT_BYTES, max_object_bytes),
            )),
        }
    }

    /// An entry of a vocabulary; any index is valid, so a hand-built `Op` cannot panic.
    fn pick<T: Copy>(vocabulary: &[T], index: u8) -> T {
        vocabulary[usize::from(index) % vocabulary.len()]
    }

    fn zeros(len: u16) -> Bytes {
        Bytes::from_static(&ZEROS[..usize::from(len).min(ZEROS.len())])
    }

    fn entry_key(index: u8) -> EntryKey {
        let index = usize::from(index);
        let primary = PRIMARIES[index % PRIMARIES.len()];
        let variance = VARIANCES[index / PRIMARIES.len() % VARIANCES.len()];
        EntryKey {
            primary: [primary; 16],
            variance: variance.map(|v| [v; 16]),
        }
    }

    fn tag_names(mask: u8) -> impl Iterator<Item = &'static str> {
        (TAGS.iter().enumerate())
            .filter(move |(bit, _)| mask & (1 << bit) != 0)
            .map(|(_, tag)| *tag)
    }

    fn view(hit: Hit<u32>) -> HitView {
        HitView {
            meta: hit.meta,
            body_len: hit.body.len(),
            weight: hit.weight(),
            encoded_lens: std::array::from_fn(|coding| {
                let coding = u8::try_from(coding).unwrap_or(u8::MAX);
                hit.encoded(coding).map(|body| body.len())
            }),
        }
    }

    // === impl Op ===

    impl Op {
        /// Decodes one operation from up to [`OP_LEN`] bytes; missing bytes read as zero.
        pub fn decode(bytes: &[u8]) -> Self {
            let byte = |i: usize| bytes.get(i).copied().unwrap_or(0);
            let key = byte(1) % (PRIMARIES.len() * VARIANCES.len()) as u8;
            let wide = |i: usize| u16::from(byte(i));
            match byte(0) % 16 {
                0..=2 => Op::Insert {
                    key,
                    url: byte(2) % URLS.len() as u8,
                    tags: byte(3) % (1 << TAGS.len()),
                    body_len: wide(4) * 16,
                    meta_weight: wide(5) * 2,
                    ttl_secs: byte(6) % 8,
                },
                3 | 4 => Op::Get { key },
                5 => Op::Peek { key },
                6 => Op::UpdateMeta {
                    key,
                    meta_weight: wide(2) * 4,
                    ttl_secs: byte(3) % 8,
                },
                7 => Op::AttachEncoded {
                    key,
                    coding: byte(2) % CODINGS,
                    len: wide(3) * 8,
                },
                8 => Op::Remove { key },
                9 => Op::PurgePrimary { primary: key },
                10 => Op::PurgeUrl {
                    url: byte(1) % URLS.len() as u8,
                },
                11 => Op::PurgePrefix {
                    prefix: byte(1) % PREFIXES.len() as u8,
                },
                12 => Op::PurgeTag {
                    tag: byte(1) % TAGS.len() as u8,
                },
                13 => Op::SweepExpired,
                14 => Op::Advance { secs: byte(1) % 8 },
                _ if byte(1) % 4 == 0 => Op::PurgeAll,
                _ => Op::SetLimits {
                    max_bytes: byte(2) % MAX_BYTES.len() as u8,
                    max_object_bytes: byte(3) % MAX_OBJECT_BYTES.len() as u8,
                },
            }
        }
    }

    // === impl Harness ===

    impl Default for Harness {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Harness {
        pub fn new() -> Self {
            Self {
                store: Store::new(INITIAL_MAX_BYTES, INITIAL_MAX_OBJECT_BYTES),
                model: Model {
                    objects: HashMap::new(),
                    tick: 0,
                    stats: StoreStats {
                        max_bytes: INITIAL_MAX_BYTES,
                        max_object_bytes: INITIAL_MAX_OBJECT_BYTES,
                        ..StoreStats::default()
                    },
                },
                now: UNIX_EPOCH + Duration::from_secs(1_000_000),
                seq: 0,
            }
        }

        /// Runs `op` on the store and the model; their answers and stats must agree, the
        /// store's invariants hold, and the total be within the bound.
        pub fn apply(&mut self, op: Op) -> Result<(), String> {
            self.seq = self.seq.wrapping_add(1);
            let mut now = self.now;
            let got = apply_to_store(&self.store, op, &mut now, self.seq);
            let expected = self.model.apply(op, &mut self.now, self.seq);
            if got != expected {
                return Err(format!("store answered {got:?}, model {expected:?}"));
            }
            self.store.check_invariants()?;
            let stats = self.store.stats();
            if stats != self.model.stats {
                return Err(format!("store {stats:?}, model {:?}", self.model.stats));
            }
            if stats.bytes > stats.max_bytes {
                return Err(format!(
                    "{} bytes over a {} bound",
                    stats.bytes, stats.max_bytes
                ));
            }
            Ok(())
        }
    }

    // === impl Model ===

    /// The store's semantics as plainly as possible: one map, exact global LRU by tick.
    impl Model {
        fn apply(&mut self, op: Op, now: &mut SystemTime, seq: u32) -> Answer {
            let answer = self.answer(op, now, seq);
            self.stats.objects = self.objects.len() as u64;
            self.stats.bytes = self.bytes();
            answer
        }

        fn answer(&mut self, op: Op, now: &mut SystemTime, seq: u32) -> Answer {
            match op {
                Op::Insert {
                    key,
                    url,
                    tags,
                    body_len,
                    meta_weight,
                    ttl_secs,
                } => {
                    let key = entry_key(key);
                    let object = ModelObject {
                        meta: seq,
                        body_len: zeros(body_len).len(),
                        meta_weight: usize::from(meta_weight),
                        url,
                        tags: tag_names(tags).filter(|tag| !tag.is_empty()).collect(),
                        expires: *now + Duration::from_secs(u64::from(ttl_secs)),
                        encoded: BTreeMap::new(),
                        tick: self.next_tick(),
                    };
                    // Stored or refused, the previous version goes.
                    self.objects.remove(&key);
                    if object.weight() > self.object_limit() {
                        self.stats.too_large += 1;
                        Answer::Insert(Insert::TooLarge)
                    } else if *now >= object.expires {
                        Answer::Insert(Insert::Expired)
                    } else {
                        self.objects.insert(key, object);
                        let evicted = self.evict_to_fit();
                        Answer::Insert(Insert::Stored { evicted })
                    }
                }
                Op::Get { key } => Answer::Lookup(self.lookup(entry_key(key), *now, true)),
                Op::Peek { key } => Answer::Lookup(self.lookup(entry_key(key), *now, false)),
                Op::UpdateMeta {
                    key,
                    meta_weight,
                    ttl_secs,
                } => {
                    let key = entry_key(key);
                    let limit = self.object_limit();
                    let tick = self.next_tick();
                    let Some(object) = self.objects.get_mut(&key) else {
                        return Answer::Done(false);
                    };
                    object.meta_weight = usize::from(meta_weight);
                    if object.weight() > limit {
                        self.objects.remove(&key);
                        self.stats.too_large += 1;
                        return Answer::Done(false);
                    }
                    object.meta = seq;
                    object.expires = *now + Duration::from_secs(u64::from(ttl_secs));
                    object.tick = tick;
                    self.evict_to_fit();
                    Answer::Done(true)
                }
                Op::AttachEncoded { key, coding, len } => {
                    let limit = self.object_limit();
                    let Some(object) = self.objects.get_mut(&entry_key(key)) else {
                        return Answer::Done(false);
                    };
                    let previous = object.encoded.insert(coding, zeros(len).len());
                    if object.weight() > limit {
                        match previous {
                            Some(previous) => object.encoded.insert(coding, previous),
                            None => object.encoded.remove(&coding),
                        };
                        return Answer::Done(false);
                    }
                    self.evict_to_fit();
                    Answer::Done(true)
                }
                Op::Remove { key } => {
                    let found = self.objects.remove(&entry_key(key)).is_some();
                    self.stats.purged += u64::from(found);
                    Answer::Done(found)
                }
                Op::PurgePrimary { primary } => {
                    let primary = entry_key(primary).primary;
                    self.purge(|key, _| key.primary == primary)
                }
                Op::PurgeUrl { url } => {
                    let url = pick(&URLS, url).0;
                    self.purge(|_, object| object.url().0 == url)
                }
                Op::PurgePrefix { prefix } => {
                    let prefix = pick(&PREFIXES, prefix);
                    if prefix.starts_with('/') {
                        self.purge(|_, object| object.url().1.starts_with(prefix))
                    } else {
                        self.purge(|_, object| object.url().0.starts_with(prefix))
                    }
                }
                Op::PurgeTag { tag } => {
                    let tag = pick(&TAGS, tag);
                    self.purge(|_, object| object.tags.contains(tag))
                }
                Op::PurgeAll => self.purge(|_, _| true),
                Op::SweepExpired => {
                    let before = self.objects.len();
                    self.objects.retain(|_, object| *now < object.expires);
                    let expired = before - self.objects.len();
                    self.stats.expired += expired as u64;
                    Answer::Count(expired)
                }
                Op::Advance { secs } => {
                    *now += Duration::from_secs(u64::from(secs));
                    Answer::Nothing
                }
                Op::SetLimits {
                    max_bytes,
                    max_object_bytes,
                } => {
                    self.stats.max_bytes = pick(&MAX_BYTES, max_bytes).min(MAX_LIMIT);
                    self.stats.max_object_bytes =
                        pick(&MAX_OBJECT_BYTES, max_object_bytes).min(MAX_LIMIT);
                    Answer::Count(self.evict_to_fit())
                }
            }
        }

        fn lookup(&mut self, key: EntryKey, now: SystemTime, touch: bool) -> Option<HitView> {
            let tick = self.next_tick();
            let object = self.objects.get_mut(&key)?;
            if now >= object.expires {
                self.objects.remove(&key);
                self.stats.expired += 1;
                return None;
            }
            if touch {
                object.tick = tick;
            }
            Some(HitView {
                meta: object.meta,
                body_len: object.body_len,
                weight: object.weight() as usize,
                encoded_lens: std::array::from_fn(|coding| {
                    object.encoded.get(&(coding as u8)).copied()
                }),
            })
        }

        fn purge(&mut self, selected: impl Fn(&EntryKey, &ModelObject) -> bool) -> Answer {
            let before = self.objects.len();
            self.objects.retain(|key, object| !selected(key, object));
            let purged = before - self.objects.len();
            self.stats.purged += purged as u64;
            Answer::Count(purged)
        }

        fn evict_to_fit(&mut self) -> usize {
            let mut evicted = 0;
            while self.bytes() > self.stats.max_bytes {
                let oldest = self.objects.iter().min_by_key(|(_, object)| object.tick);
                let Some((&key, _)) = oldest else {
                    break;
                };
                self.objects.remove(&key);
                evicted += 1;
            }
            self.stats.evictions += evicted as u64;
            evicted
        }

        /// Ticks only order accesses; the model takes one per operation that may need one.
        fn next_tick(&mut self) -> u64 {
            self.tick += 1;
            self.tick
        }

        fn object_limit(&self) -> u64 {
            self.stats.max_object_bytes.min(self.stats.max_bytes)
        }

        fn bytes(&self) -> u64 {
            self.objects.values().map(ModelObject::weight).sum()
        }
    }

    impl ModelObject {
        fn url(&self) -> (&'static str, &'static str) {
            pick(&URLS, self.url)
        }

        fn weight(&self) -> u64 {
            let tags: usize = self.tags.iter().map(|tag| tag.len()).sum();
            let encoded: usize = self.encoded.values().sum();
            OBJECT_OVERHEAD
                + TAG_OVERHEAD * self.tags.len() as u64
                + (self.body_len + self.meta_weight + self.url().0.len() + tags + encoded) as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use proptest::prelude::*;

    use super::fuzzing::{apply_to_store, run_ops, Op, OP_LEN};
    use super::*;

    const NOW: u64 = 1_000;
    const LATER: u64 = 2_000;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// A key in shard `primary % 16`, without variance.
    fn key(primary: u8) -> EntryKey {
        EntryKey::primary([primary; 16])
    }

    fn variant(primary: u8, variance: u8) -> EntryKey {
        EntryKey {
            primary: [primary; 16],
            variance: Some([variance; 16]),
        }
    }

    /// `body_len` bytes at `url`, meta 0 weighing nothing, no tags, expiring at `LATER`.
    fn object(url: &str, body_len: usize) -> NewObject<u32> {
        NewObject {
            meta: 0,
            meta_weight: 0,
            body: Bytes::from(vec![b'x'; body_len]),
            url: Arc::from(url),
            tags: Vec::new(),
            expires: at(LATER),
        }
    }

    fn tagged(url: &str, tags: &[&str]) -> NewObject<u32> {
        NewObject {
            tags: tags.iter().map(|tag| Box::from(*tag)).collect(),
            ..object(url, 10)
        }
    }

    /// The weight the module documentation promises for an object without encodings.
    fn weight(url: &str, body_len: usize, meta_weight: usize, tags: &[&str]) -> u64 {
        let tags: u64 = tags.iter().map(|tag| tag.len() as u64 + TAG_OVERHEAD).sum();
        OBJECT_OVERHEAD + (url.len() + body_len + meta_weight) as u64 + tags
    }

    fn stored(store: &Store<u32>, key: &EntryKey) -> bool {
        store.peek(key, at(NOW)).is_some()
    }

    /// Inserts and checks the invariants, which every test relies on.
    fn put(store: &Store<u32>, key: EntryKey, new: NewObject<u32>) -> Insert {
        let inserted = store.insert(key, new, at(NOW));
        assert_eq!(store.check_invariants(), Ok(()));
        inserted
    }

    #[test]
    fn a_hit_shares_the_stored_body() {
        let store = Store::new(1 << 20, 1 << 20);
        let new = NewObject {
            meta: 7,
            meta_weight: 100,
            ..object("http://a.test/x", 1000)
        };
        let body = new.body.clone();
        assert_eq!(put(&store, key(1), new), Insert::Stored { evicted: 0 });
        let hit = store.get(&key(1), at(NOW)).expect("just stored");
        assert_eq!(hit.meta, 7);
        assert_eq!(hit.body.as_ptr(), body.as_ptr(), "a hit copied the body");
        assert_eq!(hit.body.len(), 1000);
        assert_eq!(hit.expires(), at(LATER));
        let expected = weight("http://a.test/x", 1000, 100, &[]);
        assert_eq!(hit.weight() as u64, expected);
        let stats = store.stats();
        assert_eq!((stats.objects, stats.bytes), (1, expected));
        assert!(store.get(&key(2), at(NOW)).is_none());
        assert!(store.get(&variant(1, 1), at(NOW)).is_none());
    }

    #[test]
    fn the_last_writer_wins() {
        let store = Store::new(1 << 20, 1 << 20);
        put(
            &store,
            key(1),
            NewObject {
                meta: 1,
                ..object("http://a.test/x", 100)
            },
        );
        let second = NewObject {
            meta: 2,
            ..tagged("http://a.test/y", &["t"])
        };
        assert_eq!(put(&store, key(1), second), Insert::Stored { evicted: 0 });
        let hit = store.get(&key(1), at(NOW)).expect("replaced, not removed");
        assert_eq!((hit.meta, hit.body.len()), (2, 10));
        let stats = store.stats();
        assert_eq!(stats.objects, 1);
        assert_eq!(stats.bytes, weight("http://a.test/y", 10, 0, &["t"]));
        assert_eq!((stats.evictions, stats.expired, stats.purged), (0, 0, 0));
        // The first version's index entries went with it.
        assert_eq!(store.purge_url("http://a.test/x"), 0);
        assert_eq!(store.purge_tag("t"), 1);
    }

    #[test]
    fn the_weight_counts_every_part() {
        let store = Store::new(1 << 20, 1 << 20);
        let url = "http://a.test/weighed";
        let new = NewObject {
            meta_weight: 200,
            body: Bytes::from(vec![0; 1000]),
            // Duplicates and empty tags are dropped before they are counted.
            ..tagged(url, &["a", "bb", "a", ""])
        };
        put(&store, key(3), new);
        let bare = weight(url, 1000, 200, &["a", "bb"]);
        assert_eq!(store.stats().bytes, bare);
        assert!(store.attach_encoded(&key(3), 1, Bytes::from(vec![0; 300])));
        let hit = store.peek(&key(3), at(NOW)).expect("stored");
        assert_eq!(hit.weight() as u64, bare + 300);
        assert_eq!(store.stats().bytes, bare + 300);
        assert_eq!(store.check_invariants(), Ok(()));
    }

    /// Five objects of one weight, in shards 0, 1, 2, 3 and 0 again; room for four.
    fn four_of_five() -> (Store<u32>, [EntryKey; 5]) {
        let keys = [key(0), key(1), key(2), key(3), key(16)];
        let each = weight("http://a.test/0", 100, 0, &[]);
        let store = Store::new(4 * each, 1 << 20);
        for (n, key) in keys.iter().take(4).enumerate() {
            let url = format!("http://a.test/{n}");
            assert_eq!(
                put(&store, *key, object(&url, 100)),
                Insert::Stored { evicted: 0 }
            );
        }
        (store, keys)
    }

    #[test]
    fn eviction_takes_the_globally_least_recently_used() {
        let (store, [k0, k1, k2, k3, k4]) = four_of_five();
        // k0, the oldest, is used: k1 becomes the oldest, in another shard.
        assert!(store.get(&k0, at(NOW)).is_some());
        assert_eq!(
            put(&store, k4, object("http://a.test/4", 100)),
            Insert::Stored { evicted: 1 }
        );
        assert!(!stored(&store, &k1), "the least recently used survived");
        assert!(stored(&store, &k0), "a recently used object was evicted");
        // A peek is no access: k2 stays the oldest.
        assert!(store.peek(&k2, at(NOW)).is_some());
        assert_eq!(
            put(&store, key(5), object("http://a.test/5", 100)),
            Insert::Stored { evicted: 1 }
        );
        assert!(!stored(&store, &k2));
        // Then k3, inserted after k0 but never used since.
        assert_eq!(
            put(&store, key(6), object("http://a.test/6", 100)),
            Insert::Stored { evicted: 1 }
        );
        assert!(!stored(&store, &k3));
        assert!(stored(&store, &k0) && stored(&store, &k4));
        let stats = store.stats();
        assert_eq!((stats.objects, stats.evictions), (4, 3));
        assert!(stats.bytes <= stats.max_bytes);
    }

    #[test]
    fn a_meta_update_counts_as_an_access() {
        let (store, [k0, k1, _, _, k4]) = four_of_five();
        assert!(store.update_meta(&k0, 1, 0, at(LATER)));
        put(&store, k4, object("http://a.test/4", 100));
        assert!(stored(&store, &k0));
        assert!(!stored(&store, &k1));
    }

    #[test]
    fn one_object_may_take_most_of_the_store() {
        // Far more than a shard's sixteenth: the bound is global.
        let store = Store::new(64 * 1024, 64 * 1024);
        assert_eq!(
            put(&store, key(1), object("http://a.test/big", 40 * 1024)),
            Insert::Stored { evicted: 0 }
        );
        assert!(stored(&store, &key(1)));
        assert_eq!(
            put(&store, key(2), object("http://a.test/big2", 40 * 1024)),
            Insert::Stored { evicted: 1 }
        );
        assert!(!stored(&store, &key(1)) && stored(&store, &key(2)));
    }

    #[test]
    fn too_large_is_refused_and_removes_the_outdated_version() {
        let url = "http://a.test/x";
        let limit = weight(url, 1000, 0, &[]);
        let store = Store::new(1 << 20, limit);
        // Exactly at the limit fits.
        assert_eq!(
            put(&store, key(1), object(url, 1000)),
            Insert::Stored { evicted: 0 }
        );
        assert_eq!(put(&store, key(1), object(url, 1001)), Insert::TooLarge);
        assert!(
            !stored(&store, &key(1)),
            "an outdated version is still served"
        );
        let stats = store.stats();
        assert_eq!((stats.objects, stats.bytes, stats.too_large), (0, 0, 1));
        assert_eq!((stats.evictions, stats.purged), (0, 0));

        // The total bound applies too, whatever the per-object one says.
        let small = Store::new(limit, u64::MAX);
        assert_eq!(put(&small, key(1), object(url, 1001)), Insert::TooLarge);
        // An absurd meta weight is refused, not overflowed.
        let huge = NewObject {
            meta_weight: usize::MAX,
            ..object(url, 1)
        };
        let unbounded = Store::new(u64::MAX, u64::MAX);
        assert_eq!(put(&unbounded, key(1), huge), Insert::TooLarge);
        assert_eq!(unbounded.stats().max_bytes, MAX_LIMIT);
    }

    #[test]
    fn an_already_expired_insert_is_refused() {
        let store = Store::new(1 << 20, 1 << 20);
        put(&store, key(1), object("http://a.test/x", 10));
        let dead = NewObject {
            expires: at(NOW),
            ..object("http://a.test/x", 10)
        };
        assert_eq!(put(&store, key(1), dead), Insert::Expired);
        assert!(!stored(&store, &key(1)));
        assert_eq!(
            store.stats(),
            StoreStats {
                max_bytes: 1 << 20,
                max_object_bytes: 1 << 20,
                ..StoreStats::default()
            }
        );
    }

    #[test]
    fn lookups_expire_objects_lazily() {
        let store = Store::new(1 << 20, 1 << 20);
        let new = NewObject {
            expires: at(1_500),
            ..object("http://a.test/x", 10)
        };
        put(&store, key(1), new.clone());
        put(&store, key(2), new);
        assert!(store.get(&key(1), at(1_499)).is_some());
        assert!(
            store.get(&key(1), at(1_500)).is_none(),
            "served at its expiry"
        );
        assert!(store.peek(&key(2), at(1_501)).is_none());
        let stats = store.stats();
        assert_eq!((stats.objects, stats.bytes, stats.expired), (0, 0, 2));
        // Gone, not hidden: an earlier clock does not bring it back.
        assert!(store.get(&key(1), at(NOW)).is_none());
        assert_eq!(store.stats().expired, 2);
        assert_eq!(store.check_invariants(), Ok(()));
    }

    #[test]
    fn a_sweep_removes_exactly_the_expired() {
        let store = Store::new(1 << 20, 1 << 20);
        for (n, expires) in [1_100, 1_200, 1_300].into_iter().enumerate() {
            let new = NewObject {
                expires: at(expires),
                ..object("http://a.test/x", 10)
            };
            put(&store, key(n as u8), new);
        }
        assert_eq!(store.sweep_expired(at(1_200)), 2);
        assert!(stored(&store, &key(2)));
        assert_eq!(store.sweep_expired(at(1_200)), 0);
        let stats = store.stats();
        assert_eq!((stats.objects, stats.expired), (1, 2));
        assert_eq!(store.check_invariants(), Ok(()));
    }

    #[test]
    fn a_meta_update_keeps_body_tags_and_encodings() {
        let store = Store::new(1 << 20, 1 << 20);
        let url = "http://a.test/x";
        let new = NewObject {
            meta: 1,
            meta_weight: 100,
            expires: at(1_500),
            ..tagged(url, &["t"])
        };
        let body = new.body.clone();
        put(&store, key(1), new);
        let gzip = Bytes::from_static(b"gz");
        assert!(store.attach_encoded(&key(1), 1, gzip.clone()));
        assert!(store.update_meta(&key(1), 2, 40, at(3_000)));
        assert_eq!(store.check_invariants(), Ok(()));
        let hit = store
            .get(&key(1), at(2_000))
            .expect("the new expiry applies");
        assert_eq!(hit.meta, 2);
        assert_eq!(hit.body.as_ptr(), body.as_ptr());
        assert_eq!(hit.encoded(1).map(|b| b.as_ptr()), Some(gzip.as_ptr()));
        assert_eq!(hit.expires(), at(3_000));
        assert_eq!(hit.weight() as u64, weight(url, 10, 40, &["t"]) + 2);
        assert_eq!(store.stats().bytes, hit.weight() as u64);
        // The expiry index moved too: a sweep at the old expiry keeps it.
        assert_eq!(store.sweep_expired(at(1_500)), 0);
        assert_eq!(store.purge_tag("t"), 1);
        assert!(
            !store.update_meta(&key(1), 3, 0, at(3_000)),
            "updated an absent object"
        );
    }

    #[test]
    fn a_meta_update_that_overflows_the_object_limit_removes_it() {
        let url = "http://a.test/x";
        let store = Store::new(1 << 20, weight(url, 10, 100, &[]));
        put(
            &store,
            key(1),
            NewObject {
                meta_weight: 100,
                ..object(url, 10)
            },
        );
        assert!(!store.update_meta(&key(1), 1, 101, at(LATER)));
        assert!(!stored(&store, &key(1)));
        let stats = store.stats();
        assert_eq!((stats.objects, stats.bytes, stats.too_large), (0, 0, 1));
    }

    #[test]
    fn purge_primary_takes_every_variant_and_nothing_else() {
        let store = Store::new(1 << 20, 1 << 20);
        let url = "http://a.test/x";
        for k in [
            key(0),
            variant(0, 1),
            variant(0, 2),
            key(16),
            variant(16, 1),
            key(1),
        ] {
            put(&store, k, object(url, 10));
        }
        assert_eq!(store.purge_primary(&[0; 16]), 3);
        assert_eq!(store.check_invariants(), Ok(()));
        assert!(!stored(&store, &variant(0, 2)));
        // Same shard, other primary; other shard.
        assert!(
            stored(&store, &key(16)) && stored(&store, &variant(16, 1)) && stored(&store, &key(1))
        );
        assert_eq!(store.purge_primary(&[0; 16]), 0);
        assert_eq!(store.stats().purged, 3);
    }

    #[test]
    fn purge_url_matches_the_whole_url_exactly() {
        let store = Store::new(1 << 20, 1 << 20);
        put(&store, key(1), object("http://a.test/x", 10));
        put(&store, variant(1, 1), object("http://a.test/x", 10));
        put(&store, key(2), object("http://a.test/x?y", 10));
        put(&store, key(3), object("http://a.test/xy", 10));
        put(&store, key(4), object("http://b.test/x", 10));
        put(&store, key(5), object("https://a.test/x", 10));
        assert_eq!(store.purge_url("http://a.test/x"), 2);
        assert_eq!(store.check_invariants(), Ok(()));
        assert_eq!(store.stats().objects, 4);
        assert_eq!(store.purge_url("http://a.test/"), 0);
    }

    #[test]
    fn purge_path_matches_the_path_and_query_exactly_on_every_host() {
        let store = Store::new(1 << 20, 1 << 20);
        put(&store, key(1), object("http://a.test/x?y=1", 10));
        put(&store, variant(1, 1), object("http://a.test/x?y=1", 10));
        put(&store, key(2), object("https://b.test:8443/x?y=1", 10));
        put(&store, key(3), object("http://a.test/x?y=12", 10));
        put(&store, key(4), object("http://a.test/x", 10));
        put(&store, key(5), object("http://a.test/x/y=1", 10));
        assert_eq!(store.purge_path("/x?y=1"), 3);
        assert_eq!(store.check_invariants(), Ok(()));
        assert_eq!(store.stats().objects, 3);
        assert_eq!(store.purge_path("/x?y"), 0);
        assert_eq!(store.purge_path("/x"), 1);
    }

    #[test]
    fn a_slash_prefix_matches_the_path_on_every_host() {
        let store = Store::new(1 << 20, 1 << 20);
        let urls = [
            ("http://a.test/img/1.png", true),
            ("https://b.test/img/2.png?v=1", true),
            ("c.test/img/3.png", true),
            ("http://a.test/image.png", false),
            ("http://a.test/css/img/x", false),
            ("http://d.test?q=/img/", false),
            ("http://img", false),
        ];
        for (n, (url, _)) in urls.iter().enumerate() {
            put(&store, key(n as u8), object(url, 10));
        }
        assert_eq!(store.purge_prefix("/img/"), 3);
        assert_eq!(store.check_invariants(), Ok(()));
        for (n, (url, purged)) in urls.iter().enumerate() {
            assert_eq!(stored(&store, &key(n as u8)), !purged, "{url}");
        }
        // `/` is every object that has a path; a query-only or empty path has none.
        assert_eq!(store.purge_prefix("/"), 2);
        assert_eq!(store.stats().objects, 2);
    }

    #[test]
    fn any_other_prefix_matches_the_whole_url() {
        let store = Store::new(1 << 20, 1 << 20);
        let urls = [
            ("http://a.test/", true),
            ("http://a.test/x/y", true),
            ("https://a.test/x", false),
            ("http://b.test/a.test/", false),
            ("http://a.test.example/", false),
        ];
        for (n, (url, _)) in urls.iter().enumerate() {
            put(&store, key(n as u8), object(url, 10));
        }
        assert_eq!(store.purge_prefix("http://a.test/"), 2);
        for (n, (url, purged)) in urls.iter().enumerate() {
            assert_eq!(stored(&store, &key(n as u8)), !purged, "{url}");
        }
        assert_eq!(store.purge_prefix("zzz"), 0);
        assert_eq!(store.purge_prefix(""), 3, "the empty prefix is every URL's");
        assert_eq!(store.check_invariants(), Ok(()));
    }

    #[test]
    fn purge_tag_matches_any_of_an_object_s_tags() {
        let store = Store::new(1 << 20, 1 << 20);
        put(&store, key(1), tagged("http://a.test/1", &["a", "b"]));
        put(&store, key(2), tagged("http://a.test/2", &["b", "c"]));
        put(&store, key(18), tagged("http://a.test/3", &["c"]));
        put(&store, key(4), tagged("http://a.test/4", &[]));
        assert_eq!(store.purge_tag("b"), 2);
        assert_eq!(store.check_invariants(), Ok(()));
        // Object 1's other tag went with it.
        assert_eq!(store.purge_tag("a"), 0);
        assert_eq!(store.purge_tag("C"), 0, "tags are case-sensitive");
        assert_eq!(store.purge_tag("c"), 1);
        assert_eq!(store.purge_tag(""), 0);
        assert!(stored(&store, &key(4)));
        assert_eq!(store.stats().purged, 3);
    }

    #[test]
    fn purge_all_empties_every_shard() {
        let store = Store::new(1 << 20, 1 << 20);
        for n in 0..40 {
            put(&store, key(n), tagged("http://a.test/x", &["t"]));
        }
        assert_eq!(store.purge_all(), 40);
        assert_eq!(store.check_invariants(), Ok(()));
        let stats = store.stats();
        assert_eq!((stats.objects, stats.bytes, stats.purged), (0, 0, 40));
        assert_eq!(
            put(&store, key(1), object("http://a.test/x", 10)),
            Insert::Stored { evicted: 0 }
        );
        assert_eq!(store.purge_all(), 1);
    }

    #[test]
    fn remove_takes_one_object_and_counts_as_purged() {
        let store = Store::new(1 << 20, 1 << 20);
        put(&store, key(1), object("http://a.test/x", 10));
        put(&store, variant(1, 1), object("http://a.test/x", 10));
        assert!(store.remove(&key(1)));
        assert!(!store.remove(&key(1)));
        assert!(stored(&store, &variant(1, 1)));
        assert_eq!(store.stats().purged, 1);
        assert_eq!(store.check_invariants(), Ok(()));
    }

    #[test]
    fn encoded_bodies_are_accounted_and_replaced_per_coding() {
        let store = Store::new(1 << 20, 1 << 20);
        let url = "http://a.test/x";
        put(&store, key(1), object(url, 1000));
        let bare = weight(url, 1000, 0, &[]);
        assert!(store.attach_encoded(&key(1), 1, Bytes::from(vec![0; 300])));
        let smaller = Bytes::from(vec![0; 100]);
        assert!(store.attach_encoded(&key(1), 1, smaller.clone()));
        assert!(store.attach_encoded(&key(1), 2, Bytes::from(vec![0; 50])));
        assert_eq!(store.stats().bytes, bare + 150);
        let hit = store.get(&key(1), at(NOW)).expect("stored");
        assert_eq!(hit.encoded(1).map(|b| b.as_ptr()), Some(smaller.as_ptr()));
        assert_eq!(hit.encoded(2).map(|b| b.len()), Some(50));
        assert_eq!(hit.encoded(3), None);
        assert!(
            !store.attach_encoded(&key(2), 1, Bytes::new()),
            "attached to an absent object"
        );
        assert_eq!(store.check_invariants(), Ok(()));
    }

    #[test]
    fn an_encoded_body_that_would_not_fit_is_refused() {
        let url = "http://a.test/x";
        let store = Store::new(1 << 20, weight(url, 1000, 0, &[]) + 100);
        put(&store, key(1), object(url, 1000));
        assert!(store.attach_encoded(&key(1), 1, Bytes::from(vec![0; 100])));
        assert!(!store.attach_encoded(&key(1), 1, Bytes::from(vec![0; 101])));
        assert!(!store.attach_encoded(&key(1), 2, Bytes::from(vec![0; 1])));
        let hit = store
            .peek(&key(1), at(NOW))
            .expect("a refused attach removes nothing");
        assert_eq!(hit.encoded(1).map(|b| b.len()), Some(100));
        assert_eq!(store.stats().bytes, weight(url, 1000, 0, &[]) + 100);
    }

    #[test]
    fn an_encoded_body_evicts_others_when_the_total_overflows() {
        let url = "http://a.test/x";
        let each = weight(url, 1000, 0, &[]);
        let store = Store::new(2 * each, 1 << 20);
        put(&store, key(1), object(url, 1000));
        put(&store, key(2), object(url, 1000));
        assert!(store.attach_encoded(&key(2), 1, Bytes::from(vec![0; 10])));
        assert!(!stored(&store, &key(1)) && stored(&store, &key(2)));
        let stats = store.stats();
        assert_eq!((stats.bytes, stats.evictions), (each + 10, 1));
    }

    #[test]
    fn lowering_the_limits_evicts_the_least_recently_used() {
        let (store, [k0, k1, k2, k3, _]) = four_of_five();
        let each = weight("http://a.test/0", 100, 0, &[]);
        assert!(store.get(&k0, at(NOW)).is_some());
        assert_eq!(store.set_limits(2 * each, 1), 2);
        assert_eq!(store.check_invariants(), Ok(()));
        assert!(stored(&store, &k0) && stored(&store, &k3));
        assert!(!stored(&store, &k1) && !stored(&store, &k2));
        let stats = store.stats();
        assert_eq!(
            (stats.max_bytes, stats.max_object_bytes, stats.evictions),
            (2 * each, 1, 2)
        );
        // Stored objects above a lowered object limit stay; new ones are refused.
        assert!(stored(&store, &k0));
        assert_eq!(
            put(&store, k1, object("http://a.test/1", 100)),
            Insert::TooLarge
        );
        assert_eq!(store.set_limits(u64::MAX, u64::MAX), 0);
        assert_eq!(store.stats().max_bytes, MAX_LIMIT);
    }

    #[test]
    fn each_removal_is_counted_once_in_its_counter() {
        let url = "http://a.test/x";
        let each = weight(url, 10, 0, &[]);
        let store = Store::new(2 * each, 1 << 20);
        put(&store, key(1), object(url, 10));
        put(
            &store,
            key(2),
            NewObject {
                expires: at(1_500),
                ..object(url, 10)
            },
        );
        put(&store, key(3), object(url, 10)); // evicts key(1)
        put(&store, key(3), object(url, 10)); // a replacement: no counter
        assert!(store.get(&key(2), at(1_500)).is_none()); // expired
        put(&store, key(4), object(url, 10));
        put(&store, key(5), object(url, 10)); // evicts key(3)
        assert!(store.remove(&key(4)));
        assert_eq!(store.purge_url(url), 1); // key(5)
        assert_eq!(put(&store, key(6), object(url, 1 << 20)), Insert::TooLarge);
        assert_eq!(
            store.stats(),
            StoreStats {
                objects: 0,
                bytes: 0,
                max_bytes: 2 * each,
                max_object_bytes: 1 << 20,
                evictions: 2,
                expired: 1,
                purged: 2,
                too_large: 1,
            }
        );
    }

    #[test]
    fn the_path_and_query_starts_after_the_authority() {
        let rows = [
            ("http://a.test/x?y=1", "/x?y=1"),
            ("https://a.test:8443/", "/"),
            ("http://a.test", ""),
            ("http://a.test?q=/x", "?q=/x"),
            ("http://a.test#f", "#f"),
            ("a.test/x", "/x"),
            ("/x/y", "/x/y"),
            ("a.test/x?u=http://b.test/y", "/x?u=http://b.test/y"),
            ("http://é.test/é", "/é"),
            ("", ""),
            ("://", ""),
        ];
        for (url, path) in rows {
            assert_eq!(&url[path_start(url)..], path, "{url}");
        }
    }

    #[test]
    fn the_store_is_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<Store<Arc<String>>>();
        shared::<Hit<Arc<String>>>();
    }

    #[test]
    fn fixed_operation_sequences_match_the_model() {
        let mut inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            vec![0; 7 * 100],
            vec![0xff; 7 * 100],
            (0..=255).collect(),
            (0..7 * 300).map(|i| (i * 37 % 251) as u8).collect(),
        ];
        // Fill a small store with every key, then run each other opcode over it.
        let mut scripted = Vec::new();
        for opcode in 0..16 {
            for key in 0..15 {
                scripted.extend_from_slice(&[0, key, key % 10, key, key * 8, key, 5]);
                scripted.extend_from_slice(&[opcode, key, key * 3, key, key, key, key]);
            }
        }
        inputs.push(scripted);
        for input in inputs {
            assert_eq!(run_ops(&input), Ok(()));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Random sequences of every operation: after each, the store answers what the model
        /// does (so no lookup returns a purged, removed, evicted or expired object, and every
        /// eviction takes the least recently used), its stats match, its invariants hold and
        /// it is within its bound.
        #[test]
        fn random_operations_match_the_model(
            data in prop::collection::vec(any::<u8>(), 0..OP_LEN * 400),
        ) {
            prop_assert_eq!(run_ops(&data), Ok(()));
        }
    }

    #[test]
    fn concurrent_operations_keep_the_accounting_exact() {
        const THREADS: u64 = 4;
        const OPS: usize = 5_000;
        let store = Store::new(
            fuzzing::INITIAL_MAX_BYTES,
            fuzzing::INITIAL_MAX_OBJECT_BYTES,
        );
        let hits = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let (store, hits) = (&store, &hits);
                scope.spawn(move || {
                    let mut state =
                        0x9E37_79B9_7F4A_7C15_u64 ^ thread.wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    let mut now = at(NOW);
                    for seq in 0..OPS {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        let op = Op::decode(&state.to_le_bytes()[..OP_LEN]);
                        // Limits changes and full purges are rarer than the mix decodes.
                        if matches!(op, Op::SetLimits { .. } | Op::PurgeAll) && seq % 50 != 0 {
                            continue;
                        }
                        let seq = u32::try_from(seq).unwrap_or(u32::MAX);
                        let answer = apply_to_store(store, op, &mut now, seq);
                        if matches!(answer, fuzzing::Answer::Lookup(Some(_))) {
                            hits.fetch_add(1, Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(store.check_invariants(), Ok(()));
        let stats = store.stats();
        assert!(stats.bytes <= stats.max_bytes, "{stats:?}");
        assert!(hits.load(Relaxed) > 0, "the threads never shared an object");
    }
}
