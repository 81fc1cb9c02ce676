//! One shard of the [store](super): its objects in LRU order, the side indexes the purges and
//! the sweep use (URL, path-and-query, tag, primary, expiry), and the object record itself.
//!
//! Nothing here takes a lock or touches the store's totals: [`Store`](super::Store) locks a
//! shard, keeps the byte and object totals and the access clock, and evicts across shards.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use lru::LruCache;
use parking_lot::Mutex;

use super::{len_u64, EntryKey, Hit, KeyHash, NewObject, OBJECT_OVERHEAD, SHARDS, TAG_OVERHEAD};

/// One shard and the tick of its least recently used object ([`EMPTY`] when it has none),
/// which evictors read without taking the lock. Aligned so that two shards' locks never share
/// a cache line.
#[repr(align(128))]
pub(super) struct Slot<M> {
    pub(super) shard: Mutex<Shard<M>>,
    pub(super) lru_tick: AtomicU64,
}

#[repr(align(128))]
pub(super) struct Padded<T>(pub(super) T);

/// The objects of one shard in LRU order, and the indexes the purges and the sweep use. Every
/// object has exactly one entry in `by_url`, `by_path`, `by_primary` and `by_expiry`, and one
/// in `by_tag` per tag; sets of `(value, key)` make removing one object `O(log n)` however
/// many objects share the value.
pub(super) struct Shard<M> {
    pub(super) objects: LruCache<EntryKey, Object<M>>,
    pub(super) by_url: BTreeSet<(Arc<str>, EntryKey)>,
    pub(super) by_path: BTreeSet<(PathKey, EntryKey)>,
    pub(super) by_tag: BTreeSet<(Arc<str>, EntryKey)>,
    pub(super) by_primary: BTreeSet<EntryKey>,
    pub(super) by_expiry: BTreeSet<(SystemTime, EntryKey)>,
}

pub(super) struct Object<M> {
    pub(super) meta: M,
    pub(super) meta_weight: usize,
    body: Bytes,
    url: Arc<str>,
    /// Where the path-and-query starts in `url` (see [`path_start`]).
    path_start: usize,
    /// Sorted, deduplicated, none empty.
    tags: Box<[Arc<str>]>,
    /// At most one body per coding; `None` rather than an empty slice so that objects without
    /// encodings cost no allocation.
    pub(super) encoded: Option<Arc<[(u8, Bytes)]>>,
    pub(super) expires: SystemTime,
    /// Cached `computed_weight()`, kept exact by every change.
    pub(super) weight: u64,
    /// The global tick of the last access.
    pub(super) tick: u64,
}

/// A URL ordered by its path-and-query, sharing the object's string instead of copying it.
/// Two URLs with the same path on different hosts are equal keys.
#[derive(Clone)]
pub(super) struct PathKey {
    pub(super) url: Arc<str>,
    pub(super) start: usize,
}

/// The tick a shard publishes when it holds no object: never the oldest.
pub(super) const EMPTY: u64 = u64::MAX;

pub(super) fn shard_index(primary: &KeyHash) -> usize {
    // The primary is a cryptographic hash (pingora's blake2 of the key): any byte is uniform.
    usize::from(primary[0]) % SHARDS
}

/// Where the path-and-query starts in `url`: at the first `/`, `?` or `#` after
/// `scheme://host`, or after the start when there is no `scheme://` before any of those;
/// `url.len()` (an empty path) when there is none.
pub(super) fn path_start(url: &str) -> usize {
    const DELIMITERS: [char; 3] = ['/', '?', '#'];
    let authority = match url.find("://") {
        Some(i) if !url[..i].contains(DELIMITERS) => i + 3,
        _ => 0,
    };
    url[authority..]
        .find(DELIMITERS)
        .map_or(url.len(), |i| authority + i)
}

// === impl Shard ===

impl<M> Shard<M> {
    pub(super) fn new() -> Self {
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
    pub(super) fn link(&mut self, key: EntryKey, object: Object<M>) -> Option<Object<M>> {
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

    pub(super) fn unlink(&mut self, key: &EntryKey) -> Option<Object<M>> {
        let object = self.objects.pop(key)?;
        self.unindex(key, &object);
        Some(object)
    }

    pub(super) fn unlink_lru(&mut self) -> Option<Object<M>> {
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

    pub(super) fn tail_tick(&self) -> u64 {
        self.objects
            .peek_lru()
            .map_or(EMPTY, |(_, object)| object.tick)
    }

    /// The shard's part of [`Store::check_invariants`](super::Store::check_invariants): its
    /// bytes and object count.
    #[cfg(any(test, fuzzing))]
    pub(super) fn check(&self, index: usize, next_tick: u64) -> Result<(u64, u64), String> {
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
    pub(super) fn new(new: NewObject<M>) -> Self {
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

    pub(super) fn encoded_len(&self, coding: u8) -> usize {
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
    pub(super) fn hit(&self) -> Hit<M> {
        Hit {
            meta: self.meta.clone(),
            body: self.body.clone(),
            encoded: self.encoded.clone(),
            #[cfg(any(test, fuzzing))]
            weight: self.weight,
            #[cfg(any(test, fuzzing))]
            expires: self.expires,
        }
    }
}

// === impl PathKey ===

impl PathKey {
    pub(super) fn path(&self) -> &str {
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
