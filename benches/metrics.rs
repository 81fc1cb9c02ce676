//! What recording one request's metrics costs the request path: exactly the metric calls the
//! proxy hooks make for one proxied request (DESIGN.md budget: < 150 ns for the full set).
//!
//! - `upstream_peer`: `outrider_inflight_requests{upstream}` +1;
//! - `upstream_response_filter`: `outrider_upstream_duration_seconds{upstream}` observe;
//! - `logging`: `outrider_requests_total{route,method,status}` (`StatusCounts::record`),
//!   `outrider_request_duration_seconds{route}` observe, the outcome classification against
//!   the upstream's `failure_statuses` and `outrider_upstream_requests_total{upstream,outcome}`;
//! - the context drop: `outrider_inflight_requests{upstream}` −1.
//!
//! Clock reads are kept out of the main figure (they are not metric work) and measured in a
//! separate variant. The contended variants run the same sequence from several threads on the
//! same route and upstream, the worst case of a single hot route, and report the wall time per
//! request per thread.

// A benchmark's setup states its expectations with unwrap/expect; the crate lints deny them
// in shipped code only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use http::Method;

use outrider::config::policy::Upstream;
use outrider::config::{compile, Policy};
use outrider::metrics::{method_index, Bound, Metrics, Outcome, RouteMetrics, UpstreamMetrics};

// The shipped binary's allocator, as in benches/policy.rs.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn policy() -> Policy {
    compile(
        "[server]\nlisten = \"127.0.0.1:18080\"\n[admin]\nlisten = \"127.0.0.1:19901\"\n\
         [upstreams.app]\nendpoints = [\"127.0.0.1:3000\"]\n\
         [upstreams.other]\nendpoints = [\"127.0.0.1:3001\"]\n\
         [[routes]]\nname = \"api\"\nupstream = \"app\"\nmatch = { path_prefix = \"/api/\" }\n\
         [[routes]]\nname = \"static\"\nupstream = \"other\"\nmatch = { path_prefix = \"/static/\" }\n",
        "bench.toml",
    )
    .expect("valid bench policy")
}

/// One request's metric work, in hook order.
#[inline(always)]
fn record_request(
    route: &RouteMetrics,
    upstream_metrics: &UpstreamMetrics,
    upstream: &Upstream,
    method: &Method,
    status: u16,
    elapsed: f64,
    upstream_elapsed: f64,
) {
    // upstream_peer
    upstream_metrics.inflight.inc();
    // upstream_response_filter
    upstream_metrics.duration.observe(upstream_elapsed);
    // logging
    route.counts.record(method_index(method), status);
    route.duration.observe(elapsed);
    let outcome = if upstream.breaker.failure_statuses.contains(&status) {
        Outcome::HttpFailure
    } else {
        Outcome::Ok
    };
    upstream_metrics.record(outcome);
    // Ctx drop: UpstreamInflight
    upstream_metrics.inflight.dec();
}

struct Fixture {
    _metrics: Metrics,
    policy: Policy,
    bound: Bound,
}

fn fixture() -> Fixture {
    let metrics = Metrics::new();
    let policy = policy();
    let bound = metrics.bind(&policy);
    Fixture {
        _metrics: metrics,
        policy,
        bound,
    }
}

fn single_thread(c: &mut Criterion) {
    let f = fixture();
    let route = &f.bound.routes[0];
    let up = &f.bound.upstreams[f.policy.routes.routes[0].upstream];
    let upstream = &f.policy.upstreams[f.policy.routes.routes[0].upstream];
    let get = Method::GET;

    let mut group = c.benchmark_group("metrics");
    group.bench_function("record one request (GET 200)", |b| {
        b.iter(|| {
            record_request(
                route,
                up,
                upstream,
                black_box(&get),
                black_box(200),
                black_box(0.0042),
                black_box(0.0031),
            )
        })
    });

    // A realistic mix: methods, statuses and latencies spread over cells and buckets.
    let mix: Vec<(Method, u16, f64)> = (0..64)
        .map(|i| {
            let method = [Method::GET, Method::GET, Method::HEAD, Method::POST][i % 4].clone();
            let status = [200, 200, 200, 304, 404, 503, 201, 200][i % 8];
            let latency = 0.0002 * (1 << (i % 12)) as f64;
            (method, status, latency)
        })
        .collect();
    group.bench_function("record one request (mixed)", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let (method, status, latency) = &mix[i & 63];
            i = i.wrapping_add(1);
            record_request(
                route,
                up,
                upstream,
                black_box(method),
                black_box(*status),
                black_box(*latency),
                black_box(*latency * 0.8),
            )
        })
    });

    // What `logging` adds around the metric calls: two monotonic clock reads.
    group.bench_function("record one request + clock reads", |b| {
        let started = Instant::now();
        b.iter(|| {
            let upstream_started = Instant::now();
            let elapsed = started.elapsed().as_secs_f64();
            record_request(
                route,
                up,
                upstream,
                black_box(&get),
                black_box(200),
                elapsed,
                upstream_started.elapsed().as_secs_f64(),
            )
        })
    });

    // A status without a slot (the locked map): rare, but its cost should stay bounded.
    group.bench_function("record one request (unregistered status 599)", |b| {
        b.iter(|| {
            record_request(
                route,
                up,
                upstream,
                black_box(&get),
                black_box(599),
                black_box(0.0042),
                black_box(0.0031),
            )
        })
    });
    group.finish();
}

/// `threads` threads each record `iters` requests on the same route and upstream at once;
/// the figure is wall time / `iters`, i.e. what one request costs each thread under contention.
fn contended(c: &mut Criterion) {
    let f = fixture();
    let route = &f.bound.routes[0];
    let up = &f.bound.upstreams[f.policy.routes.routes[0].upstream];
    let upstream = &f.policy.upstreams[f.policy.routes.routes[0].upstream];
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());

    let mut group = c.benchmark_group("metrics contended");
    let mut counts = vec![2, 4];
    if !counts.contains(&cores) {
        counts.push(cores);
    }
    counts.sort();
    for threads in counts {
        group.bench_function(format!("record one request, {threads} threads"), |b| {
            b.iter_custom(|iters| {
                let barrier = std::sync::Barrier::new(threads);
                let mut slowest = Duration::ZERO;
                std::thread::scope(|s| {
                    let handles: Vec<_> = (0..threads)
                        .map(|t| {
                            let barrier = &barrier;
                            s.spawn(move || {
                                let method = if t % 2 == 0 {
                                    Method::GET
                                } else {
                                    Method::HEAD
                                };
                                barrier.wait();
                                let start = Instant::now();
                                for i in 0..iters {
                                    record_request(
                                        route,
                                        up,
                                        upstream,
                                        black_box(&method),
                                        black_box(200),
                                        black_box(0.001 + (i & 7) as f64 * 0.003),
                                        black_box(0.0031),
                                    );
                                }
                                start.elapsed()
                            })
                        })
                        .collect();
                    for h in handles {
                        slowest = slowest.max(h.join().expect("bench thread"));
                    }
                });
                slowest
            })
        });
    }
    group.finish();
}

criterion_group!(benches, single_thread, contended);
criterion_main!(benches);
