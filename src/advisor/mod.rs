//! The advisor: recommendations learned from the traffic the proxy sees (`GET /advice`).
//!
//! Pure: the data plane hands one [`Observation`] per sampled request to [`Advisor::observe`]
//! with the time; [`Advisor::advice`] turns the counts into [`Advice`], each with its evidence,
//! the TOML change and an estimate whose basis is stated. Memory is bounded: at most
//! [`MAX_ROUTES`] route rows and [`MAX_UPSTREAMS`] upstream rows of fixed-size counters, and
//! the capped URL table of [`urls`]. Counts cover two windows (the current one and the one
//! before), so advice always rests on at least one whole window once the proxy has run that
//! long, and old traffic ages out.

mod report;
mod urls;

use std::time::{Duration, Instant};

pub use report::{Advice, Kind, ASSUMED_RATIO};
pub use urls::URL_CAP;
use urls::{Repeat, UrlTable};

/// No advice rests on fewer observations than this (per route or upstream and kind).
pub const MIN_SAMPLES: u64 = 50;
/// Rows beyond these are not tracked: route and upstream names come from the config.
pub const MAX_ROUTES: usize = 256;
pub const MAX_UPSTREAMS: usize = 64;
/// The TTL the cacheability estimate assumes (and recommends).
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// Each window's length; counts cover the current window and the one before.
pub const WINDOW: Duration = Duration::from_secs(300);

/// What the backend's `Cache-Control` (and `Set-Cookie`) said of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cacheable {
    /// No `Cache-Control`: a cache uses the route's `default_ttl`.
    Unspecified,
    /// A positive `max-age`/`s-maxage`.
    MaxAge,
    NoStore,
    Private,
    NoCache,
    SetCookie,
}

/// Why a compressible response went identity to a client that accepted a coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionMiss {
    RouteOff,
    BelowMinSize,
    TypeNotListed,
    /// The backend sent it compressed with a coding (no saving to estimate: counted only).
    AlreadyCompressed,
}

/// One finished request, as the data plane saw it. Built without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub route: &'a str,
    pub upstream: &'a str,
    pub status: u16,
    pub elapsed: Duration,
    /// A GET answered 200 whose whole body was hashed: (URL hash, body hash).
    pub body: Option<(u64, u64)>,
    pub bytes_sent: u64,
    pub cache_enabled: bool,
    pub cacheable: Cacheable,
    /// On a caching route: the response was not stored, and why.
    pub cache_refused: Option<&'static str>,
    /// The client revalidated (`If-None-Match` / `If-Modified-Since`).
    pub conditional: bool,
    /// The response carried `ETag` or `Last-Modified`.
    pub validators: bool,
    pub etag_generation: bool,
    pub compression: Option<CompressionMiss>,
    pub latency_objective: Option<Duration>,
    /// The share of requests that must meet the objective (ppm).
    pub latency_target_ppm: u32,
    /// The response's media type (without parameters), for the compression advice.
    pub content_type: &'a str,
    pub upstream_elapsed: Option<Duration>,
    pub read_timeout: Duration,
    pub timed_out: bool,
    /// Refused by the upstream's `max_concurrent`.
    pub over_limit: bool,
    pub max_concurrent: usize,
    /// The attempt's outcome opened its endpoint's breaker.
    pub breaker_opened: bool,
    /// The upstream's breaker setting, when its breaker is on.
    pub consecutive_failures: Option<u32>,
}

/// Per route, per window.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RouteCounts {
    requests: u64,
    /// Cacheability (routes without a cache): hashed GET 200s, and their repeats.
    hashed_gets: u64,
    identical: u64,
    identical_storable: u64,
    identical_bytes: u64,
    cache_control: [u64; 6],
    /// Caching routes: responses the cache refused, by reason (see `REFUSALS`).
    refused: [u64; REFUSALS.len()],
    /// Compression: identity responses to clients that accepted a coding, by reason.
    compression_missed: [u64; 4],
    compression_bytes: [u64; 4],
    /// The media type of the last response missed for `TypeNotListed` (truncated, no allocation).
    unlisted_type: TypeName,
    /// Conditional: revalidations answered without validators, and those with an unchanged body.
    revalidations: u64,
    could_304: u64,
    could_304_bytes: u64,
    /// Objective: requests timed against the objective, and those over it.
    timed: u64,
    over_objective: u64,
    max_elapsed_ms: u64,
}

/// Per upstream, per window.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct UpstreamCounts {
    attempts: u64,
    over_limit: u64,
    near_timeout: u64,
    timeouts: u64,
    breaker_opened: u64,
}

/// The reasons a cache refuses to store, as reported.
pub(crate) const REFUSALS: [&str; 6] = [
    "no-store",
    "private",
    "set-cookie",
    "no-cache",
    "status",
    "other",
];

/// A media type held inline: 32 bytes cover the types worth compressing.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TypeName {
    bytes: [u8; 32],
    len: u8,
}

impl TypeName {
    fn of(name: &str) -> Self {
        let mut t = TypeName::default();
        // Cut at a character boundary, so `as_str` always reads valid UTF-8.
        let mut end = name.len().min(t.bytes.len());
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        t.bytes[..end].copy_from_slice(&name.as_bytes()[..end]);
        t.len = end as u8;
        t
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

#[derive(Debug)]
struct Row<T> {
    name: Box<str>,
    /// Policy facts of the latest observation (for the TOML change and the objective).
    facts: Facts,
    current: T,
    previous: T,
}

#[derive(Debug, Default, Clone, Copy)]
struct Facts {
    cache_enabled: bool,
    etag_generation: bool,
    objective: Option<Duration>,
    target_ppm: u32,
    read_timeout: Duration,
    max_concurrent: usize,
    consecutive_failures: Option<u32>,
}

/// The advisor's state: see the module doc.
#[derive(Debug)]
pub struct Advisor {
    window_started: Instant,
    previous_started: Option<Instant>,
    routes: Vec<Row<RouteCounts>>,
    upstreams: Vec<Row<UpstreamCounts>>,
    urls: UrlTable,
    untracked_urls: u64,
}

// === impl Advisor ===

impl Advisor {
    pub fn new(now: Instant) -> Self {
        Advisor {
            window_started: now,
            previous_started: None,
            routes: Vec::new(),
            upstreams: Vec::new(),
            urls: UrlTable::new(CACHE_TTL),
            untracked_urls: 0,
        }
    }

    fn roll(&mut self, now: Instant) {
        if now.saturating_duration_since(self.window_started) < WINDOW {
            return;
        }
        // More than two windows idle: the previous one is empty too.
        let idle = now.saturating_duration_since(self.window_started) >= 2 * WINDOW;
        for r in &mut self.routes {
            r.previous = if idle {
                RouteCounts::default()
            } else {
                r.current
            };
            r.current = RouteCounts::default();
        }
        for u in &mut self.upstreams {
            u.previous = if idle {
                UpstreamCounts::default()
            } else {
                u.current
            };
            u.current = UpstreamCounts::default();
        }
        self.previous_started = Some(if idle { now } else { self.window_started });
        self.window_started = now;
    }

    /// Counts one request. Allocates only the first time a route or upstream name is seen.
    pub fn observe(&mut self, o: &Observation<'_>, now: Instant) {
        self.roll(now);
        let repeat = o.body.map(|(url, body)| self.urls.observe(url, body, now));
        if repeat == Some(Repeat::Untracked) {
            self.untracked_urls += 1;
        }
        let facts = Facts {
            cache_enabled: o.cache_enabled,
            etag_generation: o.etag_generation,
            objective: o.latency_objective,
            target_ppm: o.latency_target_ppm,
            read_timeout: o.read_timeout,
            max_concurrent: o.max_concurrent,
            consecutive_failures: o.consecutive_failures,
        };
        if let Some(row) = row(&mut self.routes, o.route, MAX_ROUTES) {
            row.facts = facts;
            count_route(&mut row.current, o, repeat);
        }
        if o.upstream.is_empty() {
            return;
        }
        if let Some(row) = row(&mut self.upstreams, o.upstream, MAX_UPSTREAMS) {
            row.facts = facts;
            let c = &mut row.current;
            c.attempts += 1;
            c.over_limit += u64::from(o.over_limit);
            c.timeouts += u64::from(o.timed_out);
            c.breaker_opened += u64::from(o.breaker_opened);
            let near = o
                .upstream_elapsed
                .is_some_and(|d| d * 5 >= o.read_timeout * 4);
            c.near_timeout += u64::from(near || o.timed_out);
        }
    }

    /// The recommendations, best first.
    pub fn advice(&self, now: Instant) -> Vec<Advice> {
        report::advise(self, now)
    }

    /// How many URLs the table holds, and how many sightings found it full.
    pub fn url_table(&self) -> (usize, u64) {
        (self.urls.len(), self.untracked_urls)
    }
}

fn row<'a, T: Default>(
    rows: &'a mut Vec<Row<T>>,
    name: &str,
    cap: usize,
) -> Option<&'a mut Row<T>> {
    match rows.iter().position(|r| &*r.name == name) {
        Some(i) => rows.get_mut(i),
        None if rows.len() < cap => {
            rows.push(Row {
                name: name.into(),
                facts: Facts::default(),
                current: T::default(),
                previous: T::default(),
            });
            rows.last_mut()
        }
        None => None,
    }
}

fn count_route(c: &mut RouteCounts, o: &Observation<'_>, repeat: Option<Repeat>) {
    c.requests += 1;
    if !o.cache_enabled && o.body.is_some() {
        c.hashed_gets += 1;
        c.cache_control[o.cacheable as usize] += 1;
        if repeat == Some(Repeat::Identical) {
            c.identical += 1;
            if matches!(o.cacheable, Cacheable::Unspecified | Cacheable::MaxAge) {
                c.identical_storable += 1;
                c.identical_bytes += o.bytes_sent;
            }
        }
    }
    if let Some(reason) = o.cache_refused {
        let i = REFUSALS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(REFUSALS.len() - 1);
        c.refused[i] += 1;
    }
    if let Some(miss) = o.compression {
        c.compression_missed[miss as usize] += 1;
        c.compression_bytes[miss as usize] += o.bytes_sent;
        if miss == CompressionMiss::TypeNotListed {
            c.unlisted_type = TypeName::of(o.content_type);
        }
    }
    if o.conditional && !o.validators && !o.etag_generation && o.status == 200 {
        c.revalidations += 1;
        if repeat == Some(Repeat::Identical) {
            c.could_304 += 1;
            c.could_304_bytes += o.bytes_sent;
        }
    }
    if let Some(objective) = o.latency_objective {
        c.timed += 1;
        c.over_objective += u64::from(o.elapsed > objective);
        c.max_elapsed_ms = c.max_elapsed_ms.max(o.elapsed.as_millis() as u64);
    }
}

#[cfg(test)]
mod tests;
