//! Cache store costs: a hit (what every cached response pays: one shard lock, one lookup, an
//! LRU touch and two reference-count clones), a miss, storing a response over an existing one
//! and into a full store (which evicts the oldest), and a prefix purge among 10k objects. One
//! more measures hits from four threads at once.
//!
//! Objects are 4 KiB bodies with an `Arc` meta, as the adapter stores them, each with its own
//! allocations: shared ones would make concurrent hits fight over one reference count.

// A benchmark's setup states its expectations with unwrap/expect; the crate lints deny them
// in shipped code only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};

use outrider::cache::store::{EntryKey, Insert, NewObject, Store};

// The shipped binary's allocator, so that allocation-heavy paths cost what they cost there.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const OBJECTS: u64 = 10_000;
const THREADS: u64 = 4;
const BODY: usize = 4 * 1024;
/// What the adapter might estimate for a parsed response header block.
const META_WEIGHT: usize = 300;
/// `purge_prefix` matches `/dir7/`: the 100 objects with `n / 100 % 100 == 7`.
const PURGED_PREFIX: &str = "/dir7/";

/// Object `n`: its key (a well-mixed hash, as pingora's are) and its URL, on one of 7 hosts.
struct Fixture {
    keys: Vec<EntryKey>,
    urls: Vec<Arc<str>>,
    bodies: Vec<Bytes>,
    metas: Vec<Arc<u64>>,
}

fn mix(mut z: u64) -> u64 {
    // splitmix64's finaliser.
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

impl Fixture {
    /// Keys and URLs for objects `0..n`.
    fn new(n: u64) -> Self {
        let keys = (0..n)
            .map(|i| {
                let mut primary = [0; 16];
                primary[..8].copy_from_slice(&mix(i).to_le_bytes());
                primary[8..].copy_from_slice(&mix(i ^ 0x5555).to_le_bytes());
                EntryKey::primary(primary)
            })
            .collect();
        let urls = (0..n)
            .map(|i| {
                let url = format!("http://host{}.test/dir{}/item{i}?v=1", i % 7, i / 100 % 100);
                Arc::from(url)
            })
            .collect();
        Self {
            keys,
            urls,
            bodies: (0..n).map(|_| Bytes::from(vec![b'x'; BODY])).collect(),
            metas: (0..n).map(Arc::new).collect(),
        }
    }

    fn object(&self, i: usize) -> NewObject<Arc<u64>> {
        NewObject {
            meta: Arc::clone(&self.metas[i]),
            meta_weight: META_WEIGHT,
            body: self.bodies[i].clone(),
            url: Arc::clone(&self.urls[i]),
            tags: Vec::new(),
            expires: now() + Duration::from_secs(3600),
        }
    }

    /// A store holding objects `0..OBJECTS`, bounded to `max_bytes`.
    fn store(&self, max_bytes: u64) -> Store<Arc<u64>> {
        let store = Store::new(max_bytes, 1 << 20);
        for i in 0..OBJECTS as usize {
            let inserted = store.insert(self.keys[i], self.object(i), now());
            assert_eq!(inserted, Insert::Stored { evicted: 0 });
        }
        store
    }
}

/// 4096 object indexes below `n` in a random order, the same on every run.
fn random_indexes(n: u64) -> Vec<usize> {
    (0..4096).map(|i| (mix(i + 1) % n) as usize).collect()
}

fn lookups(c: &mut Criterion) {
    let fixture = Fixture::new(2 * OBJECTS);
    let store = fixture.store(1 << 30);
    let hits = random_indexes(OBJECTS);
    let misses: Vec<usize> = hits.iter().map(|i| i + OBJECTS as usize).collect();
    let mut group = c.benchmark_group("cache_store");
    group.measurement_time(Duration::from_secs(3));
    let mut next = 0;
    group.bench_function("get_hit, 10k objects of 4 KiB", |b| {
        b.iter(|| {
            next = (next + 1) % hits.len();
            store.get(black_box(&fixture.keys[hits[next]]), now())
        })
    });
    // Four threads hitting at once: what the global access tick and the shard locks cost
    // under contention. Each thread makes `iters` hits; the time is one thread's per hit, so
    // the store serves THREADS hits in it.
    group.bench_function("get_hit, 4 threads at once, per thread", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|scope| {
                for thread in 0..THREADS as usize {
                    let (store, fixture, hits) = (&store, &fixture, &hits);
                    scope.spawn(move || {
                        for n in 0..iters as usize {
                            let i = hits[(n * 7 + thread * 1021) % hits.len()];
                            black_box(store.get(&fixture.keys[i], now()));
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    group.bench_function("get_miss, 10k objects", |b| {
        b.iter(|| {
            next = (next + 1) % misses.len();
            store.get(black_box(&fixture.keys[misses[next]]), now())
        })
    });
    group.finish();
}

fn inserts(c: &mut Criterion) {
    let fixture = Fixture::new(2 * OBJECTS);
    let mut group = c.benchmark_group("cache_store");
    group.measurement_time(Duration::from_secs(3));

    let roomy = fixture.store(1 << 30);
    let replaced = random_indexes(OBJECTS);
    let mut next = 0;
    group.bench_function("insert_replace, 4 KiB over 4 KiB", |b| {
        b.iter(|| {
            next = (next + 1) % replaced.len();
            let i = replaced[next];
            roomy.insert(fixture.keys[i], fixture.object(i), now())
        })
    });
    drop(roomy);

    // Exactly full, so each insert evicts about one object (URL lengths vary a little).
    // Cycling through twice as many keys as fit means each inserted key was evicted about
    // OBJECTS inserts ago: new, not a replacement.
    let full = fixture.store(1 << 30);
    full.set_limits(full.stats().bytes, 1 << 20);
    let mut next = OBJECTS as usize;
    group.bench_function("insert_with_eviction, full store", |b| {
        b.iter(|| {
            let i = next;
            next = (next + 1) % (2 * OBJECTS as usize);
            full.insert(fixture.keys[i], fixture.object(i), now())
        })
    });
    group.finish();
}

fn purges(c: &mut Criterion) {
    let fixture = Fixture::new(OBJECTS);
    let store = fixture.store(1 << 30);
    let mut group = c.benchmark_group("cache_store");
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("purge_prefix, 100 of 10k objects", |b| {
        // Only the purge is timed; the purged objects are put back between purges.
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                for i in 700..800 {
                    let _ = store.insert(fixture.keys[i], fixture.object(i), now());
                }
                let start = Instant::now();
                let purged = store.purge_prefix(black_box(PURGED_PREFIX));
                spent += start.elapsed();
                assert_eq!(purged, 100);
            }
            spent
        })
    });
    group.finish();
}

criterion_group!(benches, lookups, inserts, purges);
criterion_main!(benches);
