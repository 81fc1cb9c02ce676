//! The load: what each client sends, and the tally of what came back.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, ETAG};
use reqwest::Method;

use crate::content::{Bodies, Kind, Rng};
use crate::{
    API_KEYS, BIN_KEYS, CSS_KEYS, DECODE_ONE_IN, ENCODINGS, HOT_KEYS, KNOWN_CLOSE_AFTER_ERROR,
    KNOWN_H2C_HEAD_MISS, LIMITED_KEYS, LIMITED_ONE_IN, LIVE_KEYS, RATE_KEY_HEADER,
    REMEMBERED_ETAGS, REQUEST_TIMEOUT,
};

// === the load ===

struct Plan {
    method: Method,
    kind: Kind,
    key: u64,
    path: String,
    ae: usize,
    if_none_match: Option<String>,
    no_cache: bool,
    /// The `RATE_KEY_HEADER` value of a request to the rate-limited route.
    client_key: Option<u64>,
}

/// The request mix, per 100: 38 css (half hot keys), 7 bin, 18 api, 10 conditional (a
/// remembered ETag), 15 live, 5 HEAD, 4 POST (invalidates), 3 api with `no-cache`; and, before
/// that, one request in `LIMITED_ONE_IN` goes to the rate-limited route with one of
/// `LIMITED_KEYS` client keys.
fn plan(rng: &mut Rng, etags: &[(String, usize, String)]) -> Plan {
    let ae = rng.below(ENCODINGS.len() as u64) as usize;
    if rng.below(LIMITED_ONE_IN) == 0 {
        let k = rng.below(LIVE_KEYS);
        return Plan {
            method: Method::GET,
            kind: Kind::Limited,
            key: k,
            path: Kind::Limited.path(k),
            ae,
            if_none_match: None,
            no_cache: false,
            client_key: Some(rng.below(LIMITED_KEYS)),
        };
    }
    let roll = rng.below(100);
    let key = |rng: &mut Rng, n: u64| {
        if rng.below(2) == 0 {
            rng.below(HOT_KEYS)
        } else {
            rng.below(n)
        }
    };
    let (method, kind, k) = match roll {
        0..=37 => (Method::GET, Kind::Css, key(rng, CSS_KEYS)),
        38..=44 => (Method::GET, Kind::Bin, key(rng, BIN_KEYS)),
        45..=62 => (Method::GET, Kind::Api, key(rng, API_KEYS)),
        63..=72 if !etags.is_empty() => {
            let (path, ae, etag) = &etags[rng.below(etags.len() as u64) as usize];
            let (kind, key) = Kind::parse(path).expect("remembered paths parse");
            return Plan {
                method: Method::GET,
                kind,
                key,
                path: path.clone(),
                ae: *ae,
                if_none_match: Some(etag.clone()),
                no_cache: false,
                client_key: None,
            };
        }
        63..=87 => (Method::GET, Kind::Live, rng.below(LIVE_KEYS)),
        88..=92 => (Method::HEAD, Kind::Css, key(rng, CSS_KEYS)),
        93..=96 => (Method::POST, Kind::Api, key(rng, API_KEYS)),
        _ => {
            let k = key(rng, API_KEYS);
            return Plan {
                method: Method::GET,
                kind: Kind::Api,
                key: k,
                path: Kind::Api.path(k),
                ae,
                if_none_match: None,
                no_cache: true,
                client_key: None,
            };
        }
    };
    Plan {
        method,
        kind,
        key: k,
        path: kind.path(k),
        ae,
        if_none_match: None,
        no_cache: false,
        client_key: None,
    }
}

/// What one client saw.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) warmup_requests: u64,
    pub(crate) by_cause: BTreeMap<&'static str, u64>,
    pub(crate) by_encoding: BTreeMap<&'static str, u64>,
    pub(crate) latencies_us: Vec<u32>,
    /// Conditional requests sent, and how many got a 304.
    pub(crate) conditional: (u64, u64),
    pub(crate) decoded: u64,
    /// Wrong bodies, lengths or codings: (count, first few descriptions).
    pub(crate) corrupt: (u64, Vec<String>),
    /// Requests that failed at the connection level, by protocol, method, stage, innermost
    /// error and whether the backend was down (or just back) then.
    pub(crate) client_errors: BTreeMap<String, u64>,
    /// Failures matching one of the known defects (`KNOWN_*`).
    pub(crate) known: BTreeMap<&'static str, u64>,
    /// The first response of each cause: what it looked like.
    pub(crate) examples: BTreeMap<&'static str, String>,
    /// The rate-limited route, by client key: (200s, 429s, other statuses).
    pub(crate) limited: BTreeMap<u64, (u64, u64, u64)>,
}

impl Tally {
    pub(crate) fn merge(&mut self, other: Tally) {
        self.warmup_requests += other.warmup_requests;
        for (k, v) in other.by_cause {
            *self.by_cause.entry(k).or_default() += v;
        }
        for (k, v) in other.by_encoding {
            *self.by_encoding.entry(k).or_default() += v;
        }
        self.latencies_us.extend(other.latencies_us);
        self.conditional.0 += other.conditional.0;
        self.conditional.1 += other.conditional.1;
        self.decoded += other.decoded;
        self.corrupt.0 += other.corrupt.0;
        self.corrupt.1.extend(other.corrupt.1);
        for (k, v) in other.client_errors {
            *self.client_errors.entry(k).or_default() += v;
        }
        for (k, v) in other.known {
            *self.known.entry(k).or_default() += v;
        }
        for (k, v) in other.examples {
            self.examples.entry(k).or_insert(v);
        }
        for (k, (ok, limited, rest)) in other.limited {
            let e = self.limited.entry(k).or_default();
            e.0 += ok;
            e.1 += limited;
            e.2 += rest;
        }
    }

    pub(crate) fn client_error_count(&self) -> u64 {
        self.client_errors.values().sum()
    }

    pub(crate) fn requests(&self) -> u64 {
        self.by_cause.values().sum::<u64>()
            + self.client_error_count()
            + self.known.values().sum::<u64>()
    }
}

/// The innermost error of a chain: what actually went wrong on the socket or stream.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn note(slot: &mut (u64, Vec<String>), what: String) {
    slot.0 += 1;
    if slot.1.len() < 5 {
        slot.1.push(what);
    }
}

/// Why a response looks the way it does, from what the client can see (`limited`: the request
/// went to the rate-limited route, the only one where a 429 is expected).
fn cause(status: u16, headers: &HeaderMap, body: &[u8], limited: bool) -> &'static str {
    let cache_status = headers
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let body_has = |s: &str| String::from_utf8_lossy(body).contains(s);
    match status {
        200 if cache_status.contains("stale-breaker-open") => "200 stale, breaker open",
        200 if cache_status.contains("stale-over-limit") => "200 stale, over limit",
        200 if cache_status.contains("stale-if-error") => "200 stale, upstream error",
        200 if cache_status.contains("stale-while-revalidate") => "200 stale, revalidating",
        200 if cache_status.contains("; hit") => "200 hit",
        200 if cache_status.contains("fwd-status=304") => "200 revalidated",
        200 if cache_status.is_empty() => "200 uncached route",
        200 => "200 forwarded",
        304 if cache_status.contains("stale-breaker-open") => "304 stale, breaker open",
        304 if cache_status.contains("stale-over-limit") => "304 stale, over limit",
        304 if cache_status.contains("stale-if-error") => "304 stale, upstream error",
        304 if cache_status.contains("; hit") => "304 from a hit",
        304 => "304 forwarded",
        502 if body_has("unreachable") => "502 upstream unreachable",
        502 if body_has("invalid response") => "502 upstream invalid response",
        502 if body.is_empty() => "502 upstream error (HEAD)",
        502 => "502 other",
        503 if headers.contains_key("retry-after") && body_has("circuit breaker") => {
            "503 breaker open"
        }
        503 if headers.contains_key("retry-after") && body_has("in flight") => "503 over limit",
        // A HEAD answer has no body to tell which.
        503 if headers.contains_key("retry-after") && body.is_empty() => "503 refused (HEAD)",
        503 => "503 other",
        504 => "504 upstream timeout",
        429 if limited && headers.contains_key("retry-after") => "429 rate limited",
        _ => "unexpected status",
    }
}

/// Whether a response of this cause came out of the proxy's failure path (Pingora's
/// `fail_to_proxy`, or stale content served for an upstream error or refusal): after those the
/// proxy closes an HTTP/1.1 connection although the response said keep-alive.
fn on_failure_path(cause: &str) -> bool {
    cause.starts_with('5')
        || cause.contains("stale, breaker open")
        || cause.contains("stale, over limit")
        || cause.contains("stale, upstream error")
}

fn coding_name(headers: &HeaderMap) -> &'static str {
    match headers.get(CONTENT_ENCODING).map(|v| v.as_bytes()) {
        None => "identity",
        Some(b"gzip") => "gzip",
        Some(b"br") => "br",
        Some(b"zstd") => "zstd",
        Some(_) => "other",
    }
}

fn accepted(ae: usize, coding: &str) -> bool {
    coding == "identity" || ENCODINGS[ae].is_some_and(|list| list.contains(coding))
}

fn decode(coding: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let read = match coding {
        "gzip" => flate2::read::GzDecoder::new(body).read_to_end(&mut out),
        "br" => brotli::Decompressor::new(body, 4096).read_to_end(&mut out),
        "zstd" => return zstd::stream::decode_all(body).map_err(|e| e.to_string()),
        other => return Err(format!("unknown coding {other}")),
    };
    read.map(|_| out).map_err(|e| e.to_string())
}

pub(crate) struct LoadCtx {
    pub(crate) base: String,
    /// When the run (after warm-up) started, and the fault schedule: to tell whether a request
    /// was sent while the backend was down or had just come back.
    pub(crate) start: std::sync::OnceLock<Instant>,
    pub(crate) fault_period: Duration,
    pub(crate) down: Duration,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) measuring: Arc<AtomicBool>,
    pub(crate) total: Arc<AtomicU64>,
    pub(crate) bodies: Arc<Bodies>,
}

impl LoadCtx {
    /// Whether `sent` fell in an outage (from the kill to a second after the restart).
    fn phase(&self, sent: Instant) -> &'static str {
        let Some(start) = self.start.get() else {
            return "warm-up";
        };
        let Some(t) = sent.checked_duration_since(*start) else {
            return "warm-up";
        };
        let period = self.fault_period.as_secs_f64();
        let into = t.as_secs_f64() % period;
        if into >= period - self.down.as_secs_f64() || (t.as_secs_f64() >= period && into < 1.0) {
            "backend down or just back"
        } else {
            "backend up"
        }
    }
}

pub(crate) async fn load(id: usize, h2c: bool, ctx: Arc<LoadCtx>) -> Tally {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(REQUEST_TIMEOUT);
    if h2c {
        builder = builder.http2_prior_knowledge();
    }
    let http = builder.build().expect("client");
    let mut rng = Rng(id as u64 + 1);
    let mut etags: Vec<(String, usize, String)> = Vec::with_capacity(REMEMBERED_ETAGS);
    let mut t = Tally::default();
    // The cause of this client's last response: a sequential client keeps reusing its
    // kept-alive connection, so this is (nearly always) what that connection carried last.
    let mut previous: Option<&'static str> = None;
    while !ctx.stop.load(Ordering::Relaxed) {
        let plan = plan(&mut rng, &etags);
        let mut req = http.request(plan.method.clone(), format!("{}{}", ctx.base, plan.path));
        if let Some(ae) = ENCODINGS[plan.ae] {
            req = req.header(ACCEPT_ENCODING, ae);
        }
        if let Some(etag) = &plan.if_none_match {
            req = req.header("if-none-match", etag);
        }
        if plan.no_cache {
            req = req.header(CACHE_CONTROL, "no-cache");
        }
        if let Some(key) = plan.client_key {
            req = req.header(RATE_KEY_HEADER, format!("client-{key}"));
        }
        if plan.method == Method::POST {
            req = req
                .header("content-type", "application/json")
                .body(r#"{"update": true}"#);
        }
        let measured = ctx.measuring.load(Ordering::Relaxed);
        let sent = Instant::now();
        let result = match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                match resp.bytes().await {
                    Ok(body) => Ok((status, headers, body)),
                    Err(e) => Err(("body", e)),
                }
            }
            Err(e) => Err(("request", e)),
        };
        let took = sent.elapsed();
        ctx.total.fetch_add(1, Ordering::Relaxed);
        if !measured {
            t.warmup_requests += 1;
        }
        let (status, headers, body) = match result {
            Ok(r) => r,
            Err((stage, e)) => {
                let stage = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    stage
                };
                // Connection-level failures are counted in warm-up too: there are none allowed.
                let root = root_cause(&e);
                let known = if !h2c
                    && stage == "request"
                    && previous.is_some_and(on_failure_path)
                    && (root.contains("reset by peer") || root.contains("closed before message"))
                {
                    Some(KNOWN_CLOSE_AFTER_ERROR)
                } else if h2c
                    && plan.method == Method::HEAD
                    && stage == "body"
                    && (root.contains("protocol error")
                        || root.contains("too_many_internal_resets"))
                {
                    Some(KNOWN_H2C_HEAD_MISS)
                } else {
                    None
                };
                match known {
                    Some(issue) => *t.known.entry(issue).or_default() += 1,
                    None => {
                        let key = format!(
                            "{} {} {stage}: {root} ({}{})",
                            if h2c { "h2c" } else { "h1" },
                            plan.method,
                            ctx.phase(sent),
                            previous.map_or(String::new(), |c| format!(", after a {c}"))
                        );
                        *t.client_errors.entry(key).or_default() += 1;
                    }
                }
                continue;
            }
        };
        let cause = cause(status, &headers, &body, plan.client_key.is_some());
        previous = Some(cause);
        if plan.if_none_match.is_some() && measured {
            t.conditional.0 += 1;
            t.conditional.1 += u64::from(status == 304);
        }
        let coding = coding_name(&headers);
        if measured {
            *t.by_cause.entry(cause).or_default() += 1;
            t.examples.entry(cause).or_insert_with(|| {
                let cache_status = headers.get("cache-status").and_then(|v| v.to_str().ok());
                let text = String::from_utf8_lossy(&body[..body.len().min(100)]).into_owned();
                format!(
                    "{} {} ({}): cache-status {cache_status:?}, body {:?}",
                    plan.method,
                    plan.path,
                    if h2c { "h2c" } else { "h1" },
                    if status == 200 {
                        "…"
                    } else {
                        text.trim_end()
                    }
                )
            });
            t.latencies_us
                .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
            if status == 200 {
                *t.by_encoding.entry(coding).or_default() += 1;
            }
            if let Some(key) = plan.client_key {
                let e = t.limited.entry(key).or_default();
                match status {
                    200 => e.0 += 1,
                    429 => e.1 += 1,
                    _ => e.2 += 1,
                }
            }
        }
        if !accepted(plan.ae, coding) {
            note(
                &mut t.corrupt,
                format!(
                    "{} {}: Content-Encoding {coding} for Accept-Encoding {:?}",
                    plan.method, plan.path, ENCODINGS[plan.ae]
                ),
            );
        }
        if status != 200 || plan.method != Method::GET {
            continue;
        }
        let want = ctx.bodies.body(plan.kind, plan.key);
        let got: Option<Cow<'_, [u8]>> = if coding == "identity" {
            Some(Cow::Borrowed(&body[..]))
        } else if rng.below(DECODE_ONE_IN) == 0 {
            t.decoded += 1;
            match decode(coding, &body) {
                Ok(d) => Some(Cow::Owned(d)),
                Err(e) => {
                    note(&mut t.corrupt, format!("GET {}: {coding}: {e}", plan.path));
                    None
                }
            }
        } else {
            None
        };
        if let Some(got) = got {
            if got[..] != want[..] {
                note(
                    &mut t.corrupt,
                    format!(
                        "GET {} ({coding}): {} bytes, not the origin's {}",
                        plan.path,
                        got.len(),
                        want.len()
                    ),
                );
            }
        }
        // Conditional requests carry no client key: the rate-limited route's ETags are not
        // remembered.
        if plan.client_key.is_some() {
            continue;
        }
        if let Some(etag) = headers.get(ETAG).and_then(|v| v.to_str().ok()) {
            let entry = (plan.path, plan.ae, etag.to_string());
            if etags.len() < REMEMBERED_ETAGS {
                etags.push(entry);
            } else {
                let i = rng.below(REMEMBERED_ETAGS as u64) as usize;
                etags[i] = entry;
            }
        }
    }
    t
}
