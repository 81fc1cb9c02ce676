//! What a cache hit costs inside Outrider before any byte reaches a socket: pingora-cache's
//! `Storage::lookup` on our backend (shard lock, map lookup, LRU touch, the `CacheMeta`
//! rebuilt around a clone of the stored header) plus reading the body (a `Bytes` slice, no
//! copy), and what storing a response costs (`get_miss_handler`, `write_body`, `finish`,
//! which hashes the body for its ETag). 10,000 objects of 4 KiB, as in DESIGN.md's budget.

// A benchmark's setup states its expectations with unwrap/expect; the crate lints deny them
// in shipped code only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pingora::cache::key::CacheHashKey;
use pingora::cache::storage::Storage;
use pingora::cache::trace::Span;
use pingora::cache::{CacheKey, CacheMeta};
use pingora::http::ResponseHeader;

use outrider::proxy::{CacheBackend, StoreHints};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const OBJECTS: usize = 10_000;
const BODY: usize = 4096;

/// A typical origin response header: eight fields.
fn meta() -> CacheMeta {
    let mut header = ResponseHeader::build(200, Some(8)).expect("static header");
    for (name, value) in [
        ("content-type", "application/json"),
        ("content-length", "4096"),
        ("cache-control", "public, max-age=3600"),
        ("date", "Sun, 22 Nov 2026 12:00:00 GMT"),
        ("last-modified", "Sun, 22 Nov 2026 11:00:00 GMT"),
        ("server", "origin"),
        ("via", "1.1 outrider"),
        ("x-request-id", "0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
    ] {
        header.insert_header(name, value).expect("static header");
    }
    let now = SystemTime::now();
    CacheMeta::new(now + Duration::from_secs(3600), now, 0, 0, header)
}

/// As `proxy::cache` builds keys: the URL, plus the hints the store reads (ETag generation on).
fn key(i: usize) -> CacheKey {
    let url = format!("http://bench.local/items/{i}");
    let mut key = CacheKey::new(url.clone(), "");
    key.extensions.insert(Arc::new(StoreHints {
        url: Arc::from(url.as_str()),
        tag_header: None,
        etag_max_body: Some(1 << 20),
        fence: Default::default(),
    }));
    key
}

async fn store(backend: &'static CacheBackend, i: usize, body: &Bytes) {
    let trace = Span::inactive().handle();
    let mut miss = backend
        .get_miss_handler(&key(i), &meta(), &trace)
        .await
        .expect("miss handler");
    miss.write_body(body.clone(), true).await.expect("write");
    miss.finish().await.expect("finish");
}

fn hits(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let backend = CacheBackend::leak(1 << 30, 8 << 20);
    let body = Bytes::from(vec![b'x'; BODY]);
    runtime.block_on(async {
        for i in 0..OBJECTS {
            store(backend, i, &body).await;
        }
    });
    let keys: Vec<CacheKey> = (0..OBJECTS).map(key).collect();
    let trace = Span::inactive().handle();

    let mut group = c.benchmark_group("cache");
    group.throughput(Throughput::Elements(1));
    let mut next = 0usize;
    group.bench_function("hit: lookup + read body (4 KiB, 10k objects)", |b| {
        b.iter(|| {
            next = (next + 7919) % OBJECTS;
            runtime.block_on(async {
                let (meta, mut hit) = backend
                    .lookup(&keys[next], &trace)
                    .await
                    .expect("lookup")
                    .expect("stored");
                let body = hit.read_body().await.expect("body");
                black_box((meta, body))
            })
        })
    });
    // `proxy::cache` sets the primary hash once when it builds the key; pingora-cache would
    // otherwise rehash (blake2) the URL each time it asks, several times per request.
    let hashed: Vec<CacheKey> = (0..OBJECTS)
        .map(|i| {
            let mut k = key(i);
            k.set_primary_bin_override(k.primary_bin());
            k
        })
        .collect();
    group.bench_function("hit: lookup + read body, key hashed once", |b| {
        b.iter(|| {
            next = (next + 7919) % OBJECTS;
            runtime.block_on(async {
                let (meta, mut hit) = backend
                    .lookup(&hashed[next], &trace)
                    .await
                    .expect("lookup")
                    .expect("stored");
                let body = hit.read_body().await.expect("body");
                black_box((meta, body))
            })
        })
    });
    group.bench_function("key: primary hash (blake2 of the URL)", |b| {
        b.iter(|| {
            next = (next + 7919) % OBJECTS;
            black_box(keys[next].primary_bin())
        })
    });
    group.bench_function("miss: lookup of an absent key", |b| {
        let absent = key(OBJECTS + 1);
        b.iter(|| runtime.block_on(async { black_box(backend.lookup(&absent, &trace).await) }))
    });
    let mut fresh = OBJECTS;
    group.bench_function(
        "store: miss handler + 4 KiB body + finish (ETag hashed)",
        |b| {
            b.iter_batched(
                || {
                    fresh += 1;
                    fresh
                },
                |i| runtime.block_on(store(backend, i, &body)),
                BatchSize::SmallInput,
            )
        },
    );
    group.finish();
}

criterion_group!(benches, hits);
criterion_main!(benches);
