//! What the traffic advisor costs per request, besides the body hash: one `Advisor::observe`
//! (the call `proxy::advice` makes from the logging hook, under a `try_lock`) for a GET 200 on
//! a route without a cache, over 1,000 distinct URLs (the URL table's lookup and insert), and
//! the xxh3 hash of a 1 KiB body that the response body filter feeds. `bash
//! benches/advisor.sh` measures the same end to end (req/s and CPU per request, on vs off).

// A benchmark's setup states its expectations with unwrap/expect; the crate lints deny them
// in shipped code only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

use outrider::advisor::{Advisor, Cacheable, Observation};

// The shipped binary's allocator, as in benches/policy.rs.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn observation(url: u64, body: u64) -> Observation<'static> {
    Observation {
        route: "api",
        upstream: "app",
        status: 200,
        elapsed: Duration::from_micros(800),
        body: Some((url, body)),
        bytes_sent: 1024,
        cache_enabled: false,
        cacheable: Cacheable::Unspecified,
        cache_refused: None,
        conditional: false,
        validators: true,
        etag_generation: true,
        compression: None,
        latency_objective: Some(Duration::from_millis(200)),
        latency_target_ppm: 990_000,
        content_type: "application/json",
        upstream_elapsed: Some(Duration::from_micros(700)),
        read_timeout: Duration::from_secs(30),
        timed_out: false,
        over_limit: false,
        max_concurrent: 1024,
        breaker_opened: false,
        consecutive_failures: Some(5),
    }
}

fn observe(c: &mut Criterion) {
    let start = Instant::now();
    let mut advisor = Advisor::new(start);
    let mut i = 0u64;
    c.bench_function("advisor/observe GET 200, 1000 URLs", |b| {
        b.iter(|| {
            i += 1;
            // The clock advances a microsecond per request, so windows roll as under load.
            let now = start + Duration::from_micros(i);
            let o = observation(i % 1000, i % 7);
            advisor.observe(black_box(&o), now);
        })
    });
    let body = vec![b'a'; 1024];
    c.bench_function("advisor/xxh3 of a 1 KiB body", |b| {
        b.iter(|| xxhash_rust::xxh3::xxh3_64(black_box(&body)))
    });
}

criterion_group!(benches, observe);
criterion_main!(benches);
