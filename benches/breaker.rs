//! What the breaker and the concurrency limit cost the request path (issue #7's target: under
//! 100 ns per request for admission + record, under contention).
//!
//! - closed: `admit` then `record` of a success, the path of nearly every request; and of a
//!   failure, which also sums the window for the rate check (the breaker never trips here);
//! - open: `admit` answering `Reject`, what every request costs while the upstream is down;
//! - limiter: `try_acquire` and the permit's drop;
//! - contended: a request's breaker work from several threads on one upstream at once, wall
//!   time per request per thread: the bare breaker, and the proxy's whole path through
//!   `UpstreamGuard` (concurrency permit, endpoint choice, record).
//!
//! The clock advances by a microsecond per request, so buckets roll as they do under load.

// A benchmark's setup states its expectations with unwrap/expect; the crate lints deny them
// in shipped code only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

use outrider::breaker::{Admission, Breaker, Jitter, Limiter, Outcome, Registry, UpstreamGuard};
use outrider::config::policy::BreakerPolicy;

// The shipped binary's allocator, as in benches/policy.rs.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The documented defaults, except that nothing trips: the rate needs more requests than a
/// window ever holds here, and the failures in a row are capped far above what a run makes.
fn policy() -> BreakerPolicy {
    BreakerPolicy {
        enabled: true,
        consecutive_failures: u32::MAX,
        failure_rate: 0.5,
        min_requests: u32::MAX,
        window: Duration::from_secs(10),
        open_for: Duration::from_secs(30),
        max_open_for: Duration::from_secs(300),
        half_open_probes: 3,
        failure_statuses: vec![502, 503, 504],
    }
}

/// One request's breaker work: admit, then record the outcome.
fn admit_and_record(breaker: &Breaker, outcome: Outcome, now: Instant) {
    match breaker.admit(now) {
        Admission::Allow(pass) | Admission::Probe { pass, .. } => {
            black_box(breaker.record(pass, outcome, now));
        }
        Admission::Reject { retry_after } => {
            black_box(retry_after);
        }
    }
}

fn single_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("breaker");
    let t0 = Instant::now();
    let micro = Duration::from_micros(1);

    for (name, outcome) in [
        ("closed: admit + record success", Outcome::Success),
        (
            "closed: admit + record failure (rate check)",
            Outcome::Failure,
        ),
    ] {
        let breaker = Breaker::new(&policy(), Jitter::seeded(1), t0);
        let mut now = t0;
        group.bench_function(name, |b| {
            b.iter(|| {
                now += micro;
                admit_and_record(&breaker, black_box(outcome), now);
            })
        });
    }

    let open = Breaker::new(
        &BreakerPolicy {
            consecutive_failures: 1,
            open_for: Duration::from_secs(3600),
            max_open_for: Duration::from_secs(3600),
            ..policy()
        },
        Jitter::none(),
        t0,
    );
    admit_and_record(&open, Outcome::Failure, t0);
    group.bench_function("open: admit (reject)", |b| {
        b.iter(|| black_box(open.admit(black_box(t0 + micro))))
    });

    let limiter = Limiter::new(1024);
    group.bench_function("limiter: try_acquire + drop", |b| {
        b.iter(|| black_box(limiter.try_acquire()))
    });
    group.finish();
}

/// The proxy's guard for an upstream with the documented defaults and one endpoint.
fn guard() -> UpstreamGuard {
    let text = "[upstreams.app]\nendpoints = [\"127.0.0.1:3000\"]\n";
    let Ok(policy) = outrider::config::compile(text, "bench.toml") else {
        panic!("the bench config compiles");
    };
    let (mut guards, _) = Registry::default().bind(&policy.upstreams, Instant::now());
    guards.remove(0)
}

/// What `upstream_peer` and the outcome hooks do per request: the permit, the endpoint
/// choice, the record; the permit drops at the end as the request's context does.
fn guarded_request(guard: &UpstreamGuard, now: Instant) {
    let Ok(permit) = guard.acquire() else {
        return;
    };
    if let Ok(chosen) = guard.choose(0, now) {
        black_box(guard.record(chosen.index, chosen.pass, Outcome::Success, now));
    }
    drop(black_box(permit));
}

/// `threads` threads each run `iters` requests through one upstream at once; the figure is the
/// slowest thread's wall time / `iters`. The bare breaker, and the proxy's guard, whose
/// limiter is the one shared counter every request writes (the breaker's window is sharded
/// per thread).
fn contended(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut counts = vec![2, 4];
    if !counts.contains(&cores) {
        counts.push(cores);
    }
    counts.sort();

    let mut group = c.benchmark_group("breaker contended");
    for threads in counts {
        for through_guard in [false, true] {
            let t0 = Instant::now();
            let breaker = Breaker::new(&policy(), Jitter::seeded(1), t0);
            let guard = guard();
            // Each sample's clock starts where the last one's stopped, so records never go
            // back in time (a record a window older than its bucket would take a shortcut).
            let mut clock = t0;
            let name = if through_guard {
                format!("guard: permit + choose + record success, {threads} threads")
            } else {
                format!("admit + record success, {threads} threads")
            };
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let sample_start = clock;
                    clock += Duration::from_micros(iters);
                    let barrier = std::sync::Barrier::new(threads);
                    let mut slowest = Duration::ZERO;
                    std::thread::scope(|s| {
                        let handles: Vec<_> = (0..threads)
                            .map(|_| {
                                let (barrier, breaker, guard) = (&barrier, &breaker, &guard);
                                s.spawn(move || {
                                    barrier.wait();
                                    let start = Instant::now();
                                    let mut now = sample_start;
                                    for _ in 0..iters {
                                        now += Duration::from_micros(1);
                                        if through_guard {
                                            guarded_request(guard, now);
                                        } else {
                                            admit_and_record(breaker, Outcome::Success, now);
                                        }
                                    }
                                    start.elapsed()
                                })
                            })
                            .collect();
                        for h in handles {
                            slowest = slowest.max(h.join().unwrap_or(Duration::MAX));
                        }
                    });
                    slowest
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, single_thread, contended);
criterion_main!(benches);
