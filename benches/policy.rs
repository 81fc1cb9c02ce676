//! Policy costs: compiling and swapping a 200-route policy (hot reload), and what the request
//! path pays per request to load the snapshot and match a route.

// A benchmark's setup states its expectations with unwrap/expect; the crate lints deny them
// in shipped code only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;

use arc_swap::ArcSwap;
use criterion::{criterion_group, criterion_main, Criterion};
use http::Method;

use outrider::config::compile;

// The shipped binary's allocator, so that allocation-heavy paths cost what they cost there.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use outrider::proxy::Shared;

/// A policy with `n` routes over 4 upstreams, mixing prefix, regex, host and method matchers.
fn policy_text(n: usize) -> String {
    let mut s = String::from(
        "[server]\nlisten = \"127.0.0.1:18080\"\n[admin]\nlisten = \"127.0.0.1:19901\"\n",
    );
    for u in 0..4 {
        s.push_str(&format!(
            "[upstreams.u{u}]\nendpoints = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n",
            3000 + u,
            4000 + u
        ));
    }
    for i in 0..n {
        let matcher = match i % 4 {
            0 => format!("{{ path_prefix = \"/svc{i}/\" }}"),
            1 => {
                format!("{{ path_regex = \"^/api/v[0-9]+/r{i}/\", methods = [\"GET\", \"HEAD\"] }}")
            }
            2 => format!("{{ host = \"*.h{i}.example.com\", path_prefix = \"/\" }}"),
            _ => format!("{{ host = \"h{i}.example.com\" }}"),
        };
        s.push_str(&format!(
            "[[routes]]\nname = \"r{i}\"\nupstream = \"u{}\"\nmatch = {matcher}\ncache = {{ enabled = true, default_ttl = \"{}s\" }}\n",
            i % 4,
            i + 1
        ));
    }
    s
}

fn compile_and_swap(c: &mut Criterion) {
    let text = policy_text(200);
    let shared = Shared::new(compile(&text, "bench.toml").expect("valid"), None);
    c.bench_function("reload/compile+swap 200 routes", |b| {
        b.iter(|| {
            let policy = compile(black_box(&text), "bench.toml").expect("valid");
            shared.store_policy(policy);
        })
    });
}

/// The reload target is stated as a p99, which criterion does not report: time each of 500
/// compile+swap runs and print the percentiles.
fn compile_and_swap_percentiles(_c: &mut Criterion) {
    let text = policy_text(200);
    let shared = Shared::new(compile(&text, "bench.toml").expect("valid"), None);
    let mut times: Vec<std::time::Duration> = (0..500)
        .map(|_| {
            let start = std::time::Instant::now();
            shared.store_policy(compile(black_box(&text), "bench.toml").expect("valid"));
            start.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "reload/compile+swap 200 routes, 500 runs: p50 {:?}  p99 {:?}  max {:?}",
        times[times.len() / 2],
        times[times.len() * 99 / 100],
        times[times.len() - 1]
    );
}

fn request_path(c: &mut Criterion) {
    let text = policy_text(200);
    let swap = ArcSwap::from_pointee(compile(&text, "bench.toml").expect("valid"));
    c.bench_function("request/load snapshot (ArcSwap::load_full)", |b| {
        b.iter(|| black_box(swap.load_full()))
    });
    let policy: Arc<_> = swap.load_full();
    // The last route (a host match) is the worst case for first-match-wins.
    c.bench_function("request/route match, 200 routes, last one matches", |b| {
        b.iter(|| {
            black_box(policy.route(black_box("h199.example.com"), black_box("/x"), &Method::GET))
        })
    });
    c.bench_function("request/route match, 200 routes, first one matches", |b| {
        b.iter(|| black_box(policy.route(black_box("any"), black_box("/svc0/x"), &Method::GET)))
    });
}

criterion_group!(
    benches,
    compile_and_swap,
    compile_and_swap_percentiles,
    request_path
);
criterion_main!(benches);
