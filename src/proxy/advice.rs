//! Feeds the advisor (`crate::advisor`): one observation per request from `logging`, and the
//! body hash its cacheability and conditional estimates need.
//!
//! Hot-path cost: headers already parsed are classified in place (no allocation), and the
//! observation is handed over with `try_lock`: when another request holds the advisor, this
//! one is not counted rather than waited for. That is the sampling, and it keeps the lock out
//! of the request's latency. Bodies are hashed (xxh3, several GB/s) only for GETs answered
//! 200 on routes without a cache, or revalidating, and only up to `MAX_HASHED` bytes.

use std::time::Duration;

use bytes::Bytes;
use http::header;
use pingora::cache::CachePhase;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use xxhash_rust::xxh3::{xxh3_64, Xxh3Default};

use super::{Ctx, Failure, Shared};
use crate::advisor::{Cacheable, CompressionMiss, Observation};
use crate::breaker::Cause;

/// Larger bodies are not hashed: the estimate covers responses up to this size.
const MAX_HASHED: u64 = 256 * 1024;

/// Per request: the body hash in progress.
#[derive(Default)]
pub(super) struct Probe {
    url: u64,
    hasher: Option<Box<Xxh3Default>>,
    hashed: u64,
    /// This request's outcome opened its endpoint's breaker.
    breaker_opened: bool,
}

// === impl Probe ===

impl Probe {
    /// `resilience`: an endpoint breaker changed state after this request's attempt.
    pub(super) fn note_breaker(&mut self, opened: bool) {
        self.breaker_opened |= opened;
    }
}

/// `response_filter`: starts hashing when the body may tell the advisor something.
pub(super) fn start(session: &Session, resp: &ResponseHeader, ctx: &mut Ctx) {
    if !ctx.policy.admin.advisor {
        return;
    }
    let req = session.req_header();
    let Some(route) = ctx.route() else { return };
    let conditional = is_conditional(&req.headers);
    if req.method != http::Method::GET
        || resp.status.as_u16() != 200
        || (route.cache.enabled && !conditional)
        || session.as_downstream().is_subrequest()
    {
        return;
    }
    let host = req
        .headers
        .get(header::HOST)
        .map_or(&b""[..], |h| h.as_bytes());
    let target = req.uri.path_and_query().map_or("", |p| p.as_str());
    ctx.advice.url = xxh3_64(host) ^ xxh3_64(target.as_bytes()).rotate_left(1);
    ctx.advice.hasher = Some(Box::default());
}

/// `response_body_filter`: feeds the hash; gives up past `MAX_HASHED`.
pub(super) fn body(body: &Option<Bytes>, ctx: &mut Ctx) {
    let (Some(hasher), Some(chunk)) = (ctx.advice.hasher.as_mut(), body) else {
        return;
    };
    ctx.advice.hashed += chunk.len() as u64;
    if ctx.advice.hashed > MAX_HASHED {
        ctx.advice.hasher = None;
    } else {
        hasher.update(chunk);
    }
}

/// `logging`: one observation, if the advisor is free.
pub(super) fn observe(
    shared: &Shared,
    session: &Session,
    e: Option<&Error>,
    ctx: &Ctx,
    status: u16,
    elapsed: Duration,
) {
    let (Some(route), Some(upstream)) = (ctx.route(), ctx.upstream()) else {
        return;
    };
    if !ctx.policy.admin.advisor || session.as_downstream().is_subrequest() {
        return;
    }
    let req = &session.req_header().headers;
    let resp = session.response_written().map(|r| &r.headers);
    let value = |name: header::HeaderName| {
        resp.and_then(|h| h.get(&name))
            .and_then(|v| v.to_str().ok())
    };
    let cacheable = cacheable(
        value(header::CACHE_CONTROL),
        value(header::SET_COOKIE).is_some(),
    );
    let content_type = value(header::CONTENT_TYPE).unwrap_or("");
    let bytes_sent = session.body_bytes_sent() as u64;
    let body = match (&ctx.advice.hasher, e) {
        (Some(hasher), None) => Some((ctx.advice.url, hasher.digest())),
        _ => None,
    };
    // Pingora disables the cache for a response it declines to store.
    let refused = route.cache.enabled
        && ctx.cache.used
        && ctx.cache.bypass.is_none()
        && status != 0
        && matches!(
            session.cache.phase(),
            CachePhase::Disabled(_) | CachePhase::RevalidatedNoCache(_)
        );
    let observation = Observation {
        route: &route.name,
        upstream: &upstream.name,
        status,
        elapsed,
        body,
        bytes_sent,
        cache_enabled: route.cache.enabled,
        cacheable,
        cache_refused: refused.then(|| refusal(cacheable, status)),
        conditional: is_conditional(req),
        validators: value(header::ETAG).is_some() || value(header::LAST_MODIFIED).is_some(),
        etag_generation: route.etag.generate,
        compression: compression_miss(
            req.get(header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok()),
            value(header::CONTENT_ENCODING).is_some(),
            content_type,
            bytes_sent,
            &route.compression,
        ),
        latency_objective: route.slo.latency,
        latency_target_ppm: route.slo.latency_target_ppm,
        content_type: content_type.split(';').next().unwrap_or("").trim(),
        upstream_elapsed: ctx.upstream_elapsed,
        read_timeout: upstream.read_timeout,
        timed_out: e.is_some_and(|e| matches!(Failure::classify(e), Failure::Timeout)),
        over_limit: ctx
            .rejected
            .is_some_and(|r| matches!(r.cause, Cause::OverLimit)),
        max_concurrent: upstream.max_concurrent,
        breaker_opened: ctx.advice.breaker_opened,
        consecutive_failures: upstream
            .breaker
            .enabled
            .then_some(upstream.breaker.consecutive_failures),
    };
    if let Ok(mut advisor) = shared.advisor.try_lock() {
        advisor.observe(&observation, std::time::Instant::now());
    }
}

fn is_conditional(headers: &http::HeaderMap) -> bool {
    headers.contains_key(header::IF_NONE_MATCH) || headers.contains_key(header::IF_MODIFIED_SINCE)
}

fn cacheable(cache_control: Option<&str>, set_cookie: bool) -> Cacheable {
    let has = |d: &str| crate::compress::has_directive(cache_control, d);
    if has("no-store") {
        Cacheable::NoStore
    } else if has("private") {
        Cacheable::Private
    } else if set_cookie {
        Cacheable::SetCookie
    } else if has("no-cache") {
        Cacheable::NoCache
    } else if cache_control.is_some_and(|cc| cc.contains("max-age") && !cc.contains("max-age=0")) {
        Cacheable::MaxAge
    } else {
        Cacheable::Unspecified
    }
}

fn refusal(cacheable: Cacheable, status: u16) -> &'static str {
    match cacheable {
        Cacheable::NoStore => "no-store",
        Cacheable::Private => "private",
        Cacheable::SetCookie => "set-cookie",
        Cacheable::NoCache => "no-cache",
        _ if !matches!(
            status,
            200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
        ) =>
        {
            "status"
        }
        _ => "other",
    }
}

/// Text worth compressing, whatever the route lists: text/*, JSON, JavaScript, XML, SVG.
fn compressible(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let lower = |s: &str, p: &str| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
    let ends = |p: &str| {
        (essence.len().checked_sub(p.len()))
            .and_then(|start| essence.get(start..))
            .is_some_and(|t| t.eq_ignore_ascii_case(p))
    };
    lower(essence, "text/")
        || (lower(essence, "application/") && (ends("json") || ends("javascript") || ends("xml")))
        || essence.eq_ignore_ascii_case("image/svg+xml")
}

fn compression_miss(
    accept_encoding: Option<&str>,
    encoded: bool,
    content_type: &str,
    bytes: u64,
    policy: &crate::config::policy::CompressionPolicy,
) -> Option<CompressionMiss> {
    let accepts = accept_encoding.is_some_and(|a| {
        a.split(',').any(|c| {
            let mut parts = c.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            !refused
                && ["gzip", "br", "zstd"]
                    .iter()
                    .any(|k| coding.eq_ignore_ascii_case(k))
        })
    });
    if !accepts || encoded || bytes == 0 || !compressible(content_type) {
        return None;
    }
    Some(if !policy.compresses() {
        CompressionMiss::RouteOff
    } else if !crate::compress::media_type_matches(Some(content_type), &policy.content_types) {
        CompressionMiss::TypeNotListed
    } else if bytes < policy.min_size {
        CompressionMiss::BelowMinSize
    } else {
        return None;
    })
}
