//! Conditional-request costs: generating an ETag for a body (paid on every response that
//! arrives without one, so it must keep up with the network: the target is ≥ 5 GB/s), and
//! evaluating the two common revalidations a client sends.

// A benchmark's setup states its expectations with unwrap/expect; the crate lints deny them
// in shipped code only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use outrider::conditional::{evaluate, BodyHasher, Preconditions, Validators};

// The shipped binary's allocator, so that allocation-heavy paths cost what they cost there.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const MIB: usize = 1 << 20;

/// Incompressible-looking bytes, the same on every run.
fn body(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn body_hasher(c: &mut Criterion) {
    let body = body(MIB);
    let mut group = c.benchmark_group("etag");
    group.throughput(Throughput::Bytes(MIB as u64));
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("BodyHasher 1 MiB, one update", |b| {
        b.iter(|| {
            let mut hasher = BodyHasher::new();
            hasher.update(black_box(&body));
            hasher.finish()
        })
    });
    // How the proxy sees a body: in chunks as they arrive from upstream.
    group.bench_function("BodyHasher 1 MiB, 16 KiB chunks", |b| {
        b.iter(|| {
            let mut hasher = BodyHasher::new();
            for chunk in black_box(&body).chunks(16 * 1024) {
                hasher.update(chunk);
            }
            hasher.finish()
        })
    });
    group.finish();
}

fn preconditions(c: &mut Criterion) {
    let current = Validators {
        etag: Some("\"5e0e8a0f44c7e0b1a6d2c4f1e3b5a7c9\""),
        last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT"),
    };
    let mut group = c.benchmark_group("evaluate");
    group.measurement_time(Duration::from_secs(3));
    // A browser or cache holding three variants; the current one is listed last.
    let if_none_match = Preconditions {
        if_none_match: Some(
            "W/\"0a1b2c3d4e5f60718293a4b5c6d7e8f9\", \"ffeeddccbbaa99887766554433221100\", \
             \"5e0e8a0f44c7e0b1a6d2c4f1e3b5a7c9\"",
        ),
        ..Preconditions::default()
    };
    group.bench_function("If-None-Match, 3 members, 304", |b| {
        b.iter(|| evaluate(black_box(&if_none_match), true, 200, black_box(&current)))
    });
    let if_modified_since = Preconditions {
        if_modified_since: Some("Wed, 21 Oct 2015 07:28:00 GMT"),
        ..Preconditions::default()
    };
    group.bench_function("If-Modified-Since, 304", |b| {
        b.iter(|| {
            evaluate(
                black_box(&if_modified_since),
                true,
                200,
                black_box(&current),
            )
        })
    });
    group.bench_function("no preconditions", |b| {
        b.iter(|| {
            evaluate(
                black_box(&Preconditions::default()),
                true,
                200,
                black_box(&current),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, body_hasher, preconditions);
criterion_main!(benches);
