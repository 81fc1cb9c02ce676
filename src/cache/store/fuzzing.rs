// A fuzzing model reports a bug by panicking: that is how libFuzzer and proptest see it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, UNIX_EPOCH};

use super::*;

/// Each operation is this many bytes: an opcode and up to six arguments. A fixed width
/// keeps the decoding trivial and lets a fuzzer's mutations line up with operations.
pub(crate) const OP_LEN: usize = 7;

/// URLs, each with the path-and-query the store must find in it: with and without a
/// path, a query, another host and scheme, no scheme, a `/` only in the query, non-ASCII.
pub(crate) const URLS: [(&str, &str); 10] = [
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

pub(crate) const PREFIXES: [&str; 14] = [
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
pub(crate) const TAGS: [&str; 5] = ["red", "green", "blue", "red", ""];

/// First bytes of the primaries: shards 0, 1, 0 (a second primary there), 15 and 7.
const PRIMARIES: [u8; 5] = [0x00, 0x01, 0x10, 0x0f, 0x27];
const VARIANCES: [Option<u8>; 3] = [None, Some(1), Some(2)];
const MAX_BYTES: [u64; 8] = [0, 700, 2_048, 8_192, 16_384, 32_768, 1 << 20, u64::MAX];
const MAX_OBJECT_BYTES: [u64; 6] = [0, 600, 1_024, 4_096, 16_384, u64::MAX];
pub(crate) const INITIAL_MAX_BYTES: u64 = 16_384;
pub(crate) const INITIAL_MAX_OBJECT_BYTES: u64 = 8_192;
const CODINGS: u8 = 3;
/// Bodies are slices of this, so that running operations allocates no body.
static ZEROS: [u8; 4096] = [0; 4096];

/// One operation; keys, URLs, prefixes and tags are indexes into the vocabularies above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
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
pub(crate) enum Answer {
    Insert(Insert),
    Lookup(Option<HitView>),
    Done(bool),
    Count(usize),
    Nothing,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HitView {
    /// The sequence number of the insert or meta update that produced it.
    pub(crate) meta: u32,
    pub(crate) body_len: usize,
    pub(crate) weight: usize,
    pub(crate) encoded_lens: [Option<usize>; CODINGS as usize],
}

/// A store and the model, run side by side.
pub(crate) struct Harness {
    pub(crate) store: Store<u32>,
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
pub(crate) fn apply_to_store(store: &Store<u32>, op: Op, now: &mut SystemTime, seq: u32) -> Answer {
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
        Op::PurgePrefix { prefix } => Answer::Count(store.purge_prefix(pick(&PREFIXES, prefix))),
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
    pub(crate) fn decode(bytes: &[u8]) -> Self {
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
    pub(crate) fn new() -> Self {
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
    pub(crate) fn apply(&mut self, op: Op) -> Result<(), String> {
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
