//! Compression throughput: what `compress::Encoder` costs the proxy per byte of response body,
//! for each coding and level an operator may pick, so that `gzip_level`, `brotli_level` and
//! `zstd_level` can be chosen against a number (MB/s of uncompressed input per core).
//!
//! Two bodies, generated deterministically: a ~100 KiB JSON API response and a ~1 MiB HTML
//! page. The main figures feed the body in 16 KiB chunks, as the proxy receives it from the
//! upstream; the encoder flushes after every chunk, which costs speed and ratio over one-shot
//! compression. The `whole` variants feed the body in one call, at the default levels, to
//! show that cost. Every iteration includes creating the encoder, as one response does.
//! The compressed size of each variant is printed once, before it is measured.

// A benchmark's setup states its expectations with unwrap/expect; the crate lints deny them
// in shipped code only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};

use outrider::compress::Encoder;
use outrider::config::policy::{Coding, CompressionPolicy};

// The shipped binary's allocator, as in benches/policy.rs.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The size of the pieces the body is fed in: a typical upstream read.
const CHUNK: usize = 16 * 1024;

/// xorshift64*: a fixed seed gives the same bodies on every run and machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const FIRST: [&str; 16] = [
    "Alice", "Bob", "Carol", "David", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory",
    "Niaj", "Olivia", "Peggy", "Rupert", "Sybil",
];
const LAST: [&str; 12] = [
    "Smith",
    "Johnson",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Taylor",
];
const CITIES: [&str; 10] = [
    "Springfield",
    "Riverside",
    "Franklin",
    "Greenville",
    "Bristol",
    "Clinton",
    "Fairview",
    "Salem",
    "Madison",
    "Georgetown",
];
const COUNTRIES: [&str; 6] = ["US", "DE", "FR", "GB", "JP", "BR"];
const ROLES: [&str; 5] = ["admin", "editor", "viewer", "billing", "support"];
const PLANS: [&str; 4] = ["free", "pro", "team", "enterprise"];
const WORDS: [&str; 40] = [
    "proxy", "request", "latency", "stream", "cache", "header", "server", "client", "route",
    "policy", "upstream", "response", "metric", "window", "buffer", "socket", "thread", "queue",
    "deploy", "service", "cluster", "region", "budget", "release", "feature", "config", "signal",
    "health", "status", "balance", "timeout", "retry", "origin", "token", "session", "payload",
    "encode", "module", "filter", "handler",
];

/// A ~100 KiB JSON API response: a page of user records with nested objects and arrays, the
/// same keys in every record and values drawn from small vocabularies, plus ids, hashes and
/// timestamps that don't repeat.
fn json_body() -> Vec<u8> {
    const TARGET: usize = 100 * 1024;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut s = String::from("{\"data\":[");
    let mut id = 100_000u64;
    while s.len() < TARGET - 400 {
        if id > 100_000 {
            s.push(',');
        }
        id += 1 + rng.below(7);
        let first = rng.pick(&FIRST);
        let last = rng.pick(&LAST);
        let roles: Vec<String> = (0..1 + rng.below(3))
            .map(|_| format!("\"{}\"", rng.pick(&ROLES)))
            .collect();
        let tags: Vec<String> = (0..rng.below(4))
            .map(|_| format!("\"{}\"", rng.pick(&WORDS)))
            .collect();
        s.push_str(&format!(
            concat!(
                "{{\"id\":{id},\"uuid\":\"{h1:016x}-{h2:016x}\",\"name\":\"{first} {last}\",",
                "\"email\":\"{fl}.{ll}{n}@example.com\",\"active\":{active},",
                "\"created_at\":\"2024-{mo:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z\",",
                "\"roles\":[{roles}],\"plan\":\"{plan}\",",
                "\"address\":{{\"street\":\"{street} {sw} St\",\"city\":\"{city}\",",
                "\"country\":\"{country}\",\"zip\":\"{zip:05}\"}},",
                "\"stats\":{{\"logins\":{logins},\"score\":{score}.{frac},\"last_seen\":{seen}}},",
                "\"tags\":[{tags}],\"links\":{{\"self\":\"/api/v2/users/{id}\",",
                "\"avatar\":\"https://cdn.example.com/avatars/{h3:08x}.png\"}}}}"
            ),
            id = id,
            h1 = rng.next(),
            h2 = rng.next(),
            first = first,
            last = last,
            fl = first.to_ascii_lowercase(),
            ll = last.to_ascii_lowercase(),
            n = rng.below(100),
            active = rng.below(5) != 0,
            mo = 1 + rng.below(12),
            d = 1 + rng.below(28),
            hh = rng.below(24),
            mm = rng.below(60),
            ss = rng.below(60),
            roles = roles.join(","),
            plan = rng.pick(&PLANS),
            street = 1 + rng.below(9999),
            sw = rng.pick(&CITIES),
            city = rng.pick(&CITIES),
            country = rng.pick(&COUNTRIES),
            zip = rng.below(100_000),
            logins = rng.below(5000),
            score = rng.below(100),
            frac = rng.below(10),
            seen = 1_700_000_000 + rng.below(30_000_000),
            tags = tags.join(","),
            h3 = rng.next() as u32,
        ));
    }
    s.push_str(&format!(
        "],\"meta\":{{\"page\":3,\"per_page\":{},\"next\":\"/api/v2/users?page=4\"}}}}",
        s.matches("\"uuid\"").count()
    ));
    s.into_bytes()
}

/// A sentence of `n` words from the vocabulary.
fn sentence(rng: &mut Rng, n: u64) -> String {
    let words: Vec<&str> = (0..n).map(|_| rng.pick(&WORDS)).collect();
    let text = words.join(" ");
    text[..1].to_ascii_uppercase() + &text[1..] + "."
}

/// A ~1 MiB HTML page: head, navigation, then a long listing of article cards (the same markup
/// with varying classes, ids, links, text and attributes) and a footer.
fn html_body() -> Vec<u8> {
    const TARGET: usize = 1024 * 1024;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Articles - Example News</title>\n\
         <link rel=\"stylesheet\" href=\"/static/css/main.3f9a1c.css\">\n\
         <script defer src=\"/static/js/app.8b2d77.js\"></script>\n</head>\n<body class=\"page-list\">\n\
         <header class=\"site-header\"><nav class=\"nav\"><ul class=\"nav-list\">\n",
    );
    for w in &WORDS[..12] {
        s.push_str(&format!(
            "<li class=\"nav-item\"><a class=\"nav-link\" href=\"/section/{w}\">{w}</a></li>\n"
        ));
    }
    s.push_str("</ul></nav></header>\n<main id=\"content\" class=\"container\">\n");
    let mut n = 0u64;
    while s.len() < TARGET - 2048 {
        n += 1;
        let section = rng.pick(&WORDS);
        let slug: Vec<&str> = (0..3 + rng.below(3)).map(|_| rng.pick(&WORDS)).collect();
        let slug = slug.join("-");
        let featured = if rng.below(8) == 0 {
            " card--featured"
        } else {
            ""
        };
        s.push_str(&format!(
            "<article class=\"card card--{section}{featured}\" id=\"post-{n}\" data-id=\"{id}\">\n\
             <a class=\"card-link\" href=\"/{section}/{y}/{m:02}/{slug}-{n}\">\n\
             <img class=\"card-img\" src=\"/img/{h:08x}.jpg\" alt=\"{alt}\" width=\"320\" height=\"180\" loading=\"lazy\">\n\
             <h2 class=\"card-title\">{title}</h2></a>\n\
             <p class=\"card-meta\">By <a href=\"/author/{af}-{al}\">{af_cap} {al_cap}</a> \
             &middot; <time datetime=\"{y}-{m:02}-{d:02}\">{d} {mon} {y}</time> &middot; {mins} min read</p>\n\
             <p class=\"card-summary\">{summary}</p>\n\
             <ul class=\"card-tags\">{tags}</ul>\n</article>\n",
            id = 500_000 + n * 3 + rng.below(3),
            y = 2020 + rng.below(5),
            m = 1 + rng.below(12),
            d = 1 + rng.below(28),
            h = rng.next() as u32,
            alt = sentence(&mut rng, 4),
            title = { let n = 5 + rng.below(6); sentence(&mut rng, n) },
            af = rng.pick(&FIRST).to_ascii_lowercase(),
            al = rng.pick(&LAST).to_ascii_lowercase(),
            af_cap = rng.pick(&FIRST),
            al_cap = rng.pick(&LAST),
            mon = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
                [rng.below(12) as usize],
            mins = 2 + rng.below(15),
            summary = (0..2 + rng.below(3))
                .map(|_| {
                    let n = 8 + rng.below(10);
                    sentence(&mut rng, n)
                })
                .collect::<Vec<_>>()
                .join(" "),
            tags = (0..1 + rng.below(4))
                .map(|_| {
                    let t = rng.pick(&WORDS);
                    format!("<li><a class=\"tag\" href=\"/tag/{t}\">#{t}</a></li>")
                })
                .collect::<String>(),
        ));
    }
    s.push_str(
        "</main>\n<footer class=\"site-footer\"><p>&copy; 2024 Example News. All rights reserved.</p>\
         </footer>\n</body>\n</html>\n",
    );
    s.into_bytes()
}

fn policy(coding: &Coding, level: i32) -> CompressionPolicy {
    let mut p = CompressionPolicy {
        enabled: true,
        algorithms: vec![coding.clone()],
        min_size: 0,
        gzip_level: 6,
        brotli_level: 4,
        zstd_level: 3,
        content_types: vec![],
        upstream_identity: true,
    };
    match coding {
        Coding::Gzip => p.gzip_level = level as u32,
        Coding::Br => p.brotli_level = level as u32,
        Coding::Zstd => p.zstd_level = level,
    }
    p
}

/// One response's worth of work: a new encoder, the body in `chunk`-sized pieces (the last one
/// ends the stream, as Pingora passes `end_of_stream` with the final body chunk). Returns the
/// compressed size.
fn compress(coding: &Coding, policy: &CompressionPolicy, body: &[u8], chunk: usize) -> usize {
    let mut enc = Encoder::new(coding.clone(), policy).expect("encoder");
    let pieces = body.len().div_ceil(chunk);
    let mut out = 0;
    for (i, piece) in body.chunks(chunk).enumerate() {
        out += black_box(enc.encode(piece, i + 1 == pieces).expect("encode")).len();
    }
    out
}

fn name(coding: &Coding) -> &'static str {
    match coding {
        Coding::Gzip => "gzip",
        Coding::Br => "br",
        Coding::Zstd => "zstd",
    }
}

/// Benchmarks `body` for each (coding, levels) in 16 KiB chunks, then at the default levels in
/// one piece.
fn bench_body(c: &mut Criterion, group: &str, body: &[u8], levels: &[(Coding, &[i32])]) {
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(body.len() as u64));
    let mut run = |variant: &str, coding: &Coding, level: i32, chunk: usize| {
        let p = policy(coding, level);
        let start = Instant::now();
        let size = compress(coding, &p, body, chunk);
        let once = start.elapsed();
        // From a few ms per iteration (the 1 MiB body, the high levels), linear sampling needs
        // more than the measurement time for 20 samples: flat sampling, and only 10 samples
        // where even 20 single iterations would not fit (brotli 11).
        let (mode, samples) = match once.as_millis() {
            0..=1 => (SamplingMode::Auto, 20),
            2..=100 => (SamplingMode::Flat, 20),
            _ => (SamplingMode::Flat, 10),
        };
        g.sampling_mode(mode).sample_size(samples);
        eprintln!(
            "{group}/{}-{level}/{variant}: {} -> {size} bytes ({:.1}%)",
            name(coding),
            body.len(),
            size as f64 * 100.0 / body.len() as f64
        );
        g.bench_with_input(
            BenchmarkId::new(format!("{}/{variant}", name(coding)), level),
            &p,
            |b, p| b.iter(|| compress(coding, p, black_box(body), chunk)),
        );
    };
    for (coding, ls) in levels {
        for &level in *ls {
            run("16k", coding, level, CHUNK);
        }
    }
    for (coding, level) in [(Coding::Gzip, 6), (Coding::Br, 4), (Coding::Zstd, 3)] {
        run("whole", &coding, level, body.len());
    }
    g.finish();
}

fn json(c: &mut Criterion) {
    let body = json_body();
    bench_body(
        c,
        "compress/json-100k",
        &body,
        &[
            (Coding::Gzip, &[1, 6, 9]),
            (Coding::Br, &[1, 4, 9, 11]),
            (Coding::Zstd, &[1, 3, 9, 19]),
        ],
    );
}

fn html(c: &mut Criterion) {
    let body = html_body();
    bench_body(
        c,
        "compress/html-1m",
        &body,
        &[
            (Coding::Gzip, &[1, 6, 9]),
            (Coding::Br, &[1, 4, 9]),
            (Coding::Zstd, &[1, 3, 9]),
        ],
    );
}

// 26 variants at ~1 s warm-up + 3 s measurement each: a little over 2 minutes, plus the build.
criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = json, html
}
criterion_main!(benches);
