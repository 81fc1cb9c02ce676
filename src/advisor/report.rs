//! From counts to recommendations: each with its evidence, the TOML change, and an estimate
//! whose basis is stated. Ordered by `per_minute`, the requests a minute the change would
//! have served better (fewer origin fetches, fewer bytes, fewer slow or refused requests).

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use super::{
    Advisor, CompressionMiss, Facts, RouteCounts, Row, UpstreamCounts, CACHE_TTL, MIN_SAMPLES,
    REFUSALS,
};

/// The compression estimate assumes text compresses 3:1 (gzip on JSON, HTML, CSS and JS is
/// typically 3-10:1), so two thirds of the identity bytes would have been saved.
pub const ASSUMED_RATIO: f64 = 3.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Cacheability,
    CacheRefusals,
    Compression,
    Objective,
    Upstream,
    Conditional,
}

/// One recommendation.
#[derive(Debug, Clone, Serialize)]
pub struct Advice {
    pub kind: Kind,
    /// The route, or the upstream for `Upstream` advice.
    pub target: String,
    pub summary: String,
    /// The numbers behind it, with `window_seconds` and `samples`.
    pub evidence: Value,
    /// The TOML to change (empty when the change is the backend's).
    pub change: String,
    /// What the change would have saved, and the basis of that estimate.
    pub estimate: Value,
    /// Requests a minute the change would have served better: the ordering key.
    pub per_minute: f64,
}

struct Ctx {
    minutes: f64,
    window_seconds: u64,
}

pub(super) fn advise(a: &Advisor, now: Instant) -> Vec<Advice> {
    let since = a.previous_started.unwrap_or(a.window_started);
    let span = now
        .saturating_duration_since(since)
        .max(Duration::from_secs(1));
    let ctx = Ctx {
        minutes: span.as_secs_f64() / 60.0,
        window_seconds: span.as_secs(),
    };
    let mut out = Vec::new();
    for r in &a.routes {
        let c = sum_route(r);
        cacheability(&ctx, r, &c, &mut out);
        refusals(&ctx, r, &c, &mut out);
        compression(&ctx, r, &c, &mut out);
        conditional(&ctx, r, &c, &mut out);
        objective(&ctx, r, &c, &mut out);
    }
    for u in &a.upstreams {
        upstream(&ctx, &u.name, &u.facts, &sum_upstream(u), &mut out);
    }
    out.sort_by(|x, y| y.per_minute.total_cmp(&x.per_minute));
    out
}

fn sum_route(r: &Row<RouteCounts>) -> RouteCounts {
    let (a, b) = (&r.current, &r.previous);
    let add = |x: &[u64], y: &[u64], out: &mut [u64]| {
        for ((o, x), y) in out.iter_mut().zip(x).zip(y) {
            *o = x + y;
        }
    };
    let mut c = RouteCounts {
        requests: a.requests + b.requests,
        hashed_gets: a.hashed_gets + b.hashed_gets,
        identical: a.identical + b.identical,
        identical_storable: a.identical_storable + b.identical_storable,
        identical_bytes: a.identical_bytes + b.identical_bytes,
        revalidations: a.revalidations + b.revalidations,
        could_304: a.could_304 + b.could_304,
        could_304_bytes: a.could_304_bytes + b.could_304_bytes,
        timed: a.timed + b.timed,
        over_objective: a.over_objective + b.over_objective,
        max_elapsed_ms: a.max_elapsed_ms.max(b.max_elapsed_ms),
        unlisted_type: if a.unlisted_type.len > 0 {
            a.unlisted_type
        } else {
            b.unlisted_type
        },
        ..RouteCounts::default()
    };
    add(&a.cache_control, &b.cache_control, &mut c.cache_control);
    add(&a.refused, &b.refused, &mut c.refused);
    add(
        &a.compression_missed,
        &b.compression_missed,
        &mut c.compression_missed,
    );
    add(
        &a.compression_bytes,
        &b.compression_bytes,
        &mut c.compression_bytes,
    );
    c
}

fn sum_upstream(u: &Row<UpstreamCounts>) -> UpstreamCounts {
    let (a, b) = (&u.current, &u.previous);
    UpstreamCounts {
        attempts: a.attempts + b.attempts,
        over_limit: a.over_limit + b.over_limit,
        near_timeout: a.near_timeout + b.near_timeout,
        timeouts: a.timeouts + b.timeouts,
        breaker_opened: a.breaker_opened + b.breaker_opened,
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 * 1000.0 / whole as f64).round() / 10.0
}

fn cacheability(ctx: &Ctx, r: &Row<RouteCounts>, c: &RouteCounts, out: &mut Vec<Advice>) {
    if r.facts.cache_enabled || c.hashed_gets < MIN_SAMPLES || c.identical_storable == 0 {
        return;
    }
    let share = percent(c.identical_storable, c.hashed_gets);
    if share < 5.0 {
        return;
    }
    let ttl = CACHE_TTL.as_secs();
    let [unspecified, max_age, no_store, private, no_cache, set_cookie] = c.cache_control;
    out.push(Advice {
        kind: Kind::Cacheability,
        target: r.name.to_string(),
        summary: format!(
            "enabling the cache with a {ttl}s TTL on route {} would have answered ~{share}% of its GETs",
            r.name
        ),
        evidence: json!({
            "window_seconds": ctx.window_seconds,
            "samples": c.hashed_gets,
            "gets_200_hashed": c.hashed_gets,
            "identical_repeats": c.identical,
            "identical_repeats_storable": c.identical_storable,
            "backend_cache_control": {
                "none": unspecified, "max_age": max_age, "no_store": no_store,
                "private": private, "no_cache": no_cache, "set_cookie": set_cookie,
            },
        }),
        change: format!(
            "[[routes]]\nname = \"{}\"\ncache = {{ enabled = true, default_ttl = \"{ttl}s\" }}",
            r.name
        ),
        estimate: json!({
            "hit_ratio_percent": share,
            "origin_requests_saved": c.identical_storable,
            "origin_bytes_saved": c.identical_bytes,
            "basis": format!(
                "GETs answered 200 whose URL had returned a byte-identical body (xxh3) less than \
                 {ttl}s before; responses marked no-store, private, no-cache or Set-Cookie are \
                 not counted, since a cache would not have stored them"
            ),
        }),
        per_minute: c.identical_storable as f64 / ctx.minutes,
    });
}

fn refusals(ctx: &Ctx, r: &Row<RouteCounts>, c: &RouteCounts, out: &mut Vec<Advice>) {
    let total: u64 = c.refused.iter().sum();
    if !r.facts.cache_enabled || total < MIN_SAMPLES {
        return;
    }
    let reasons: serde_json::Map<String, Value> = REFUSALS
        .iter()
        .zip(c.refused)
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| ((*k).to_string(), json!(n)))
        .collect();
    let (top, _) = REFUSALS
        .iter()
        .zip(c.refused)
        .max_by_key(|(_, n)| *n)
        .unwrap_or((&"other", 0));
    out.push(Advice {
        kind: Kind::CacheRefusals,
        target: r.name.to_string(),
        summary: format!(
            "route {} caches, but the cache refused {total} responses (mostly {top}): the backend \
             marks them uncacheable",
            r.name
        ),
        evidence: json!({
            "window_seconds": ctx.window_seconds,
            "samples": c.requests,
            "refused": total,
            "reasons": reasons,
        }),
        change: String::new(),
        estimate: json!({
            "responses_not_stored": total,
            "basis": "responses the cache declined to store, by the header that made it decline; \
                      the fix is the backend's (drop no-store/private/Set-Cookie where the content \
                      is shared), or turn the route's cache off if it never stores",
        }),
        per_minute: total as f64 / ctx.minutes,
    });
}

fn compression(ctx: &Ctx, r: &Row<RouteCounts>, c: &RouteCounts, out: &mut Vec<Advice>) {
    let missed: u64 = c.compression_missed.iter().sum();
    if missed < MIN_SAMPLES {
        return;
    }
    let reasons = [
        CompressionMiss::RouteOff,
        CompressionMiss::BelowMinSize,
        CompressionMiss::TypeNotListed,
        CompressionMiss::AlreadyCompressed,
    ];
    let Some(&main) = reasons
        .iter()
        .filter(|m| **m != CompressionMiss::AlreadyCompressed)
        .max_by_key(|m| c.compression_bytes[**m as usize])
        .filter(|m| c.compression_missed[**m as usize] > 0)
    else {
        return;
    };
    let savable: u64 = c.compression_bytes[..3].iter().sum();
    let saved = (savable as f64 * (1.0 - 1.0 / ASSUMED_RATIO)).round() as u64;
    let name = &r.name;
    let unlisted = c.unlisted_type.as_str();
    let change = match main {
        CompressionMiss::RouteOff => format!(
            "[[routes]]\nname = \"{name}\"\ncompression = {{ enabled = true }}"
        ),
        CompressionMiss::BelowMinSize => format!(
            "[[routes]]\nname = \"{name}\"\ncompression = {{ min_size = \"256B\" }}"
        ),
        _ => format!(
            "[[routes]]\nname = \"{name}\"\ncompression = {{ content_types = [\"text/*\", \"application/json\", \"{unlisted}\"] }}  # keep the types listed now"
        ),
    };
    let why = |m: CompressionMiss| json!({"responses": c.compression_missed[m as usize], "bytes": c.compression_bytes[m as usize]});
    out.push(Advice {
        kind: Kind::Compression,
        target: name.to_string(),
        summary: format!(
            "route {name} sent {} compressible bytes uncompressed to clients that accepted a coding ({})",
            savable,
            match main {
                CompressionMiss::RouteOff => "compression is off on the route".to_string(),
                CompressionMiss::BelowMinSize => "below min_size".to_string(),
                _ => format!("content type {unlisted} not listed"),
            }
        ),
        evidence: json!({
            "window_seconds": ctx.window_seconds,
            "samples": missed,
            "route_off": why(CompressionMiss::RouteOff),
            "below_min_size": why(CompressionMiss::BelowMinSize),
            "type_not_listed": why(CompressionMiss::TypeNotListed),
            "already_compressed_upstream": why(CompressionMiss::AlreadyCompressed),
        }),
        change,
        estimate: json!({
            "bytes_saved": saved,
            "bytes_saved_per_minute": (saved as f64 / ctx.minutes).round(),
            "basis": format!(
                "identity bytes of text responses to clients whose Accept-Encoding named gzip, br \
                 or zstd, at an assumed {ASSUMED_RATIO}:1 ratio; responses the backend had \
                 already compressed are counted but not in the saving"
            ),
        }),
        per_minute: (missed - c.compression_missed[3]) as f64 / ctx.minutes,
    });
}

fn conditional(ctx: &Ctx, r: &Row<RouteCounts>, c: &RouteCounts, out: &mut Vec<Advice>) {
    if r.facts.etag_generation || c.revalidations < MIN_SAMPLES || c.could_304 == 0 {
        return;
    }
    let name = &r.name;
    out.push(Advice {
        kind: Kind::Conditional,
        target: name.to_string(),
        summary: format!(
            "clients revalidated route {name} {} times, but its backend sends no ETag or \
             Last-Modified: {} of them could have been 304s",
            c.revalidations, c.could_304
        ),
        evidence: json!({
            "window_seconds": ctx.window_seconds,
            "samples": c.revalidations,
            "revalidations_without_validators": c.revalidations,
            "unchanged_bodies": c.could_304,
        }),
        change: format!("[[routes]]\nname = \"{name}\"\netag = {{ generate = true }}"),
        estimate: json!({
            "not_modified_possible": c.could_304,
            "bytes_saved": c.could_304_bytes,
            "basis": "conditional GETs answered 200 without validators whose body was \
                      byte-identical (xxh3) to the last one sent for the URL within 30s",
        }),
        per_minute: c.could_304 as f64 / ctx.minutes,
    });
}

fn objective(ctx: &Ctx, r: &Row<RouteCounts>, c: &RouteCounts, out: &mut Vec<Advice>) {
    let Some(objective) = r.facts.objective else {
        return;
    };
    if c.timed < MIN_SAMPLES {
        return;
    }
    let allowed = f64::from(1_000_000 - r.facts.target_ppm.min(1_000_000)) / 10_000.0;
    let over = percent(c.over_objective, c.timed);
    if over <= allowed {
        return;
    }
    let name = &r.name;
    let ms = objective.as_millis();
    out.push(Advice {
        kind: Kind::Objective,
        target: name.to_string(),
        summary: format!(
            "route {name}: {over}% of requests took longer than its {ms}ms objective (at most \
             {allowed}% may)"
        ),
        evidence: json!({
            "window_seconds": ctx.window_seconds,
            "samples": c.timed,
            "over_objective": c.over_objective,
            "objective_ms": ms,
            "slowest_ms": c.max_elapsed_ms,
        }),
        change: format!(
            "# make the backend faster, cache the route, or state what it does:\n[[routes]]\nname = \"{name}\"\nslo = {{ latency = \"{}ms\" }}",
            c.max_elapsed_ms.max(1)
        ),
        estimate: json!({
            "requests_over_objective": c.over_objective,
            "basis": "each request's total time (proxy and backend) against the route's slo.latency",
        }),
        per_minute: c.over_objective as f64 / ctx.minutes,
    });
}

/// An endpoint breaker that opened this often in the window is flapping: each opening
/// refuses requests for `open_for`, then lets the same failures trip it again.
const FLAPS: u64 = 3;

fn upstream(ctx: &Ctx, name: &str, f: &Facts, c: &UpstreamCounts, out: &mut Vec<Advice>) {
    if c.attempts < MIN_SAMPLES {
        return;
    }
    if let (true, Some(threshold)) = (c.breaker_opened >= FLAPS, f.consecutive_failures) {
        out.push(Advice {
            kind: Kind::Upstream,
            target: name.to_string(),
            summary: format!(
                "upstream {name}: endpoint breakers opened {} times in {} requests (flapping)",
                c.breaker_opened, c.attempts
            ),
            evidence: json!({
                "window_seconds": ctx.window_seconds,
                "samples": c.attempts,
                "breaker_openings": c.breaker_opened,
                "consecutive_failures": threshold,
            }),
            change: format!(
                "# if the failures are short blips the backend recovers from:
[upstreams.{name}.breaker]
consecutive_failures = {}",
                threshold.saturating_mul(2)
            ),
            estimate: json!({
                "breaker_openings": c.breaker_opened,
                "basis": format!(
                    "transitions of an endpoint breaker to open; {FLAPS} or more in the window is a flap"
                ),
            }),
            per_minute: c.breaker_opened as f64 / ctx.minutes,
        });
    }
    if c.over_limit > 0 && f.max_concurrent > 0 {
        out.push(Advice {
            kind: Kind::Upstream,
            target: name.to_string(),
            summary: format!(
                "upstream {name} refused {} of {} requests at max_concurrent = {}",
                c.over_limit, c.attempts, f.max_concurrent
            ),
            evidence: json!({
                "window_seconds": ctx.window_seconds,
                "samples": c.attempts,
                "max_concurrent_rejections": c.over_limit,
                "max_concurrent": f.max_concurrent,
            }),
            change: format!(
                "# if the backend can take it:\n[upstreams.{name}]\nmax_concurrent = {}",
                f.max_concurrent * 2
            ),
            estimate: json!({
                "requests_refused": c.over_limit,
                "basis": "503s the proxy answered because the upstream's concurrency limit was reached",
            }),
            per_minute: c.over_limit as f64 / ctx.minutes,
        });
    }
    if c.near_timeout > 0 && percent(c.near_timeout, c.attempts) >= 1.0 {
        let ms = f.read_timeout.as_millis();
        out.push(Advice {
            kind: Kind::Upstream,
            target: name.to_string(),
            summary: format!(
                "upstream {name}: {} of {} responses came within 20% of read_timeout ({ms}ms) or \
                 timed out ({} did)",
                c.near_timeout, c.attempts, c.timeouts
            ),
            evidence: json!({
                "window_seconds": ctx.window_seconds,
                "samples": c.attempts,
                "near_read_timeout": c.near_timeout,
                "timeouts": c.timeouts,
                "read_timeout_ms": ms,
            }),
            change: format!(
                "# if these requests are legitimately slow:\n[upstreams.{name}]\nread_timeout = \"{}ms\"",
                ms * 2
            ),
            estimate: json!({
                "requests_at_risk": c.near_timeout,
                "basis": "time to the response header of at least 80% of read_timeout, or a read timeout",
            }),
            per_minute: c.near_timeout as f64 / ctx.minutes,
        });
    }
}
