//! Pipeline step 2 (and part of 6): the response cache in Pingora's hooks.
//!
//! pingora-cache runs the state machine (lookup, cache lock, Vary slots, stale serving,
//! revalidation); this file answers its questions with `crate::cache`'s pure decisions:
//! whether a request may use the cache, its key, whether and for how long a response is
//! stored, which request headers it varies on, whether a hit satisfies the request's own
//! directives, whether stale content may be served. It also writes what the client sees of
//! the cache (`Cache-Status`, the tag header removed) and invalidates on unsafe methods.
//!
//! Requests that use the cache take Pingora's leg, except a miss on a route that generates
//! ETags: the buffered leg fetches it and fills the cache (`cache_fill`), so that the miss
//! carries the same generated ETag as the hits after it. Elsewhere the stored object gets its
//! generated ETag when the fill finishes (`cache_storage::Fill`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use http::header;
use http::Method;
use log::debug;
use pingora::cache::key::CacheHashKey;
use pingora::cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora::cache::storage::HitHandler;
use pingora::cache::{
    CacheKey, CacheMeta, CacheOptionOverrides, CachePhase, ForcedFreshness, NoCacheReason,
    RespCacheable, VarianceBuilder,
};
use pingora::http::ResponseHeader;
use pingora::prelude::*;

use super::buffered;
use super::cache_conditional;
use super::cache_storage::{entry_key_of, CacheBackend, StaleWindows, StoreHints, StoredBody};
use super::cache_update;
use super::compression::{Compression, PreEncoded};
use super::Ctx;
use crate::breaker::Cause;
use crate::cache::control::targeted_field_consumed;
use crate::cache::freshness::{
    self, ExchangeTimes, HitVerdict, RequestFacts, ResponseFacts, Storability,
};
use crate::cache::key::{primary_key, push_url_overrides};
use crate::cache::status::{ttl_seconds, CacheStatus, Fwd};
use crate::cache::vary;
use crate::conditional::Outcome;
use crate::config::policy::{Coding, Route};
use crate::metrics::{coding_index, CacheResult};

/// What this request did with the cache, for `Cache-Status`, metrics and the 412 path.
#[derive(Debug, Default)]
pub(crate) struct CacheCtx {
    /// The route caches and this request looked the cache up.
    pub(crate) used: bool,
    /// The route caches but this request did not use it, and why.
    pub(crate) bypass: Option<&'static str>,
    /// Why the response was not stored (Cache-Status `detail`).
    pub(crate) not_stored: Option<&'static str>,
    pub(crate) stored: bool,
    pub(crate) only_if_cached: bool,
    /// The request's If-Match / If-Unmodified-Since failed against the cached response:
    /// `response_filter` answers 412 and the body is dropped.
    pub(crate) precondition_failed: bool,
    /// When the request reached `request_cache_filter`, as wall-clock time (RFC 9111 §4.2.3's
    /// request_time is when the upstream request was sent; the difference is the lookup).
    pub(crate) request_time: Option<SystemTime>,
    /// This hit's body is a memoised encoding (see `serve_memoised_encoding`).
    pub(crate) served_memoised: bool,
    /// The lookup found the URL stored, but for other values of its `Vary` fields.
    pub(crate) vary_miss: bool,
    /// A stale stored response answered because the upstream refused the request.
    pub(crate) served_on_open: bool,
    /// The fields of the origin's 304 to this request's revalidation (`cache_update`).
    pub(crate) validated_by: Option<http::HeaderMap>,
    /// The request's caching facts, parsed once by `request_cache_filter` for the hit filter.
    pub(crate) request: Option<RequestFacts>,
}

/// A `CacheLock` per distinct timeout: Pingora takes `&'static` locks and reads the age
/// timeout from the lock, so each timeout some upstream uses is leaked once, the way pingap
/// does it. Bounded by the number of distinct upstream timeouts ever configured.
fn cache_lock(timeout: Duration) -> &'static CacheKeyLockImpl {
    static LOCKS: OnceLock<Mutex<HashMap<Duration, &'static CacheKeyLockImpl>>> = OnceLock::new();
    let locks = LOCKS.get_or_init(Default::default);
    let mut locks = locks.lock().unwrap_or_else(|p| p.into_inner());
    *locks.entry(timeout).or_insert_with(|| {
        let lock: Box<CacheKeyLockImpl> = CacheLock::new_boxed(timeout);
        Box::leak(lock)
    })
}

/// How long a coalesced request waits for the one fetching: longer than that fetch may take
/// (connect plus read timeout, plus a margin), so that a slow origin does not turn into a
/// stampede of uncached requests when the waiters give up.
fn lock_timeout(ctx: &Ctx) -> Duration {
    let upstream = ctx.upstream().map_or(Duration::from_secs(30), |u| {
        u.connect_timeout + u.read_timeout
    });
    upstream + Duration::from_secs(1)
}

/// Pipeline step 2's gate: enables the cache for this request when its route caches and the
/// request may use a shared cache.
pub(super) fn request_cache_filter(
    backend: &'static CacheBackend,
    max_object_size: usize,
    session: &mut Session,
    ctx: &mut Ctx,
) {
    let Some(route) = ctx.route() else { return };
    if !route.cache.enabled {
        return;
    }
    let req = session.req_header();
    let facts = RequestFacts::from_parts(&req.method, &req.headers);
    if let Some(reason) = freshness::request_bypass(&facts, &route.cache) {
        ctx.cache.bypass = Some(reason.as_str());
        return;
    }
    ctx.cache.only_if_cached = facts.cc.only_if_cached;
    ctx.cache.request = Some(facts);
    ctx.cache.request_time = Some(SystemTime::now());
    let timeout = lock_timeout(ctx);
    let mut overrides = CacheOptionOverrides::default();
    overrides.wait_timeout = Some(timeout);
    session.cache.enable(
        backend,
        None,
        None,
        Some(cache_lock(timeout)),
        Some(overrides),
    );
    session.cache.set_max_file_size_bytes(max_object_size);
    ctx.cache.used = true;
}

/// The key: the route's normalised URL; HEAD shares GET's entry (Pingora fetches HEAD
/// misses as GET). The hints the store needs ride along in the key's extensions.
pub(super) fn cache_key(session: &Session, ctx: &Ctx) -> Result<CacheKey> {
    let Some(route) = ctx.route() else {
        return Error::e_explain(ErrorType::InternalError, "cache key without a route");
    };
    let req = session.req_header();
    let mut url = primary_key(
        "http",
        request_authority(session),
        req.uri.path(),
        req.uri.query(),
        &route.cache.key_query,
    );
    let hints = Arc::new(StoreHints {
        url: Arc::from(url.as_str()),
        tag_header: route.cache.tag_header_name.clone(),
        etag_max_body: route
            .etag
            .generate
            .then(|| usize::try_from(route.etag.max_body).unwrap_or(usize::MAX)),
        fence: Default::default(),
    });
    // After the hints: purges and invalidation find every entry of the URL by its plain
    // spelling, whatever override fields keyed it.
    push_url_overrides(&mut url, &req.headers);
    let mut key = CacheKey::new(url, "");
    // pingora-cache hashes the primary key (blake2) each time it is asked for it, and a
    // request asks several times (lookup, lock, store, memoised encodings): hash it once.
    key.set_primary_bin_override(key.primary_bin());
    key.extensions.insert(hints);
    let shared = ctx.policy.cache_store.shared.as_ref();
    if shared.is_some_and(|s| !s.fill_lock.is_zero()) {
        key.extensions
            .insert(Arc::new(super::shared_tier::FillLockSlot::default()));
    }
    Ok(key)
}

/// Host and port as the client addressed them: two ports are two origins.
fn request_authority(session: &Session) -> &str {
    let req = session.req_header();
    req.uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("")
}

/// Pipeline step 6's storability: RFC 9111 §3 with the route's TTL rules, as
/// `crate::cache::freshness` decides it. Uncacheable responses give the lock up at once
/// (`Custom` maps to `GiveUp`), so that waiters go to the origin in parallel.
pub(super) fn response_cacheable(
    session: &Session,
    resp: &ResponseHeader,
    ctx: &mut Ctx,
) -> RespCacheable {
    let resp = &*cache_update::merged(resp, ctx);
    let Some(route) = ctx.route() else {
        return RespCacheable::Uncacheable(NoCacheReason::Custom("no-route"));
    };
    let req = session.req_header();
    let request = RequestFacts::from_parts(&req.method, &req.headers);
    let response = ResponseFacts::from_headers(
        resp.status.as_u16(),
        &resp.headers,
        &route.cache.targeted_cache_control,
    );
    let response_time = SystemTime::now();
    let times = ExchangeTimes {
        request_time: ctx.cache.request_time.unwrap_or(response_time),
        response_time,
    };
    match freshness::storability(&request, &response, &route.cache, times) {
        Storability::Store(fresh) => {
            let mut header = resp.clone();
            for name in response.fields_to_strip() {
                header.remove_header(&name);
            }
            // Pingora knows one stale-on-error window and checks it before asking
            // `should_serve_stale`, so it gets the longer one; `stale_on_error` then applies
            // the one that fits the error.
            let windows = StaleWindows {
                if_error: secs(fresh.stale_if_error),
                on_open: secs(fresh.stale_on_open),
            };
            let mut meta = CacheMeta::new(
                fresh.fresh_until(response_time),
                fresh.created(response_time),
                secs(fresh.stale_while_revalidate),
                windows.if_error.max(windows.on_open),
                header,
            );
            // Equal windows are the meta's own `stale-if-error` (what `stale_on_error` falls
            // back to): no extension, whose map every hit's rebuilt meta would allocate.
            if windows.if_error != windows.on_open {
                meta.extensions_mut().insert(windows);
            }
            ctx.cache.stored = true;
            RespCacheable::Cacheable(meta)
        }
        Storability::DontStore(reason) => {
            debug!(
                "not stored: route={} path={} reason={}",
                route.name,
                req.uri.path(),
                reason.as_str()
            );
            ctx.cache.not_stored = Some(reason.as_str());
            RespCacheable::Uncacheable(NoCacheReason::Custom(reason.as_str()))
        }
    }
}

/// Whether the stale response found by the lookup may answer for the upstream error of this
/// request: within `stale_on_open` when the proxy refused the request, else within
/// `stale-if-error`.
pub(super) fn stale_on_error(session: &Session, ctx: &mut Ctx) -> bool {
    let Some(meta) = session.cache.maybe_cache_meta() else {
        return false;
    };
    let refused = ctx.rejected.is_some();
    let window = match meta.extensions().get::<StaleWindows>() {
        Some(w) if refused => w.on_open,
        Some(w) => w.if_error,
        None => meta.stale_if_error_sec(),
    };
    let allowed = meta
        .fresh_until()
        .checked_add(Duration::from_secs(u64::from(window)))
        .is_some_and(|end| SystemTime::now() <= end);
    ctx.cache.served_on_open = allowed && refused;
    allowed
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// `Vary`: the secondary key from the request fields the stored response names. The
/// proxy asks the origin for identity and compresses per client itself, so an origin's
/// `Vary: Accept-Encoding` does not split the entry on a compressing route.
pub(super) fn variance(
    meta: &CacheMeta,
    route: Option<&Route>,
    req: &pingora::http::RequestHeader,
) -> Option<[u8; 16]> {
    let ignore_accept_encoding =
        route.is_some_and(|r| r.compression.compresses() && r.compression.upstream_identity);
    let normalize = route.is_some_and(|r| r.cache.normalize_vary);
    let mut builder = VarianceBuilder::new();
    for value in meta.headers().get_all(header::VARY) {
        let Ok(value) = value.to_str() else { continue };
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let name = name.to_ascii_lowercase();
            if ignore_accept_encoding && name == "accept-encoding" {
                continue;
            }
            let lines = req.headers.get_all(name.as_str());
            let value = vary::key_value(&name, lines.iter().map(|v| v.as_bytes()), normalize);
            builder.add_owned_name_value(name, value);
        }
    }
    builder.finalize()
}

/// A hit must also satisfy the request's own directives (RFC 9111 §5.2.1): `no-cache`,
/// `max-age` and `min-fresh` send it to revalidation; `max-stale` accepts a stale one.
pub(super) fn hit_filter(
    session: &mut Session,
    meta: &CacheMeta,
    hit_handler: &mut HitHandler,
    is_fresh: bool,
    ctx: &mut Ctx,
) -> Option<ForcedFreshness> {
    let forced = hit_directives(session, meta, is_fresh, ctx);
    let served_fresh = match forced {
        None => is_fresh,
        Some(ForcedFreshness::ForceFresh) => true,
        Some(_) => false,
    };
    if served_fresh {
        serve_memoised_encoding(session, hit_handler, ctx);
    }
    forced
}

/// A fresh hit for a client that negotiated a coding whose encoding of this body is memoised
/// is served that encoding: a hit never pays a full encoder run twice. Not for ranges (they
/// are ranges of the identity body) and only when the hit will be served as is: a stale one
/// may be replaced by a new body on revalidation.
fn serve_memoised_encoding(session: &mut Session, hit_handler: &mut HitHandler, ctx: &mut Ctx) {
    if session.req_header().headers.contains_key(header::RANGE) {
        return;
    }
    let Some(module) = session.downstream_modules_ctx.get_mut::<Compression>() else {
        return;
    };
    let Some(coding) = module.negotiated() else {
        return;
    };
    let id = memo_id(coding);
    let Some(stored) = hit_handler.as_any_mut().downcast_mut::<StoredBody>() else {
        return;
    };
    if let Some((identity_len, encoded_len)) = stored.use_encoded(id) {
        module.serve_pre_encoded(PreEncoded {
            identity_len: identity_len as u64,
            encoded_len: encoded_len as u64,
        });
        ctx.cache.served_memoised = true;
    }
}

/// The store's id for an encoding of a body.
fn memo_id(coding: &Coding) -> u8 {
    u8::try_from(coding_index(coding)).unwrap_or(u8::MAX)
}

/// On a fresh hit that the compression module is about to encode in full, keep the result for
/// the next client with the same coding (bounded by `max_object_size` and the store's budget).
fn memoise_encoding(
    backend: &'static CacheBackend,
    session: &mut Session,
    resp: &ResponseHeader,
    ctx: &Ctx,
) {
    if ctx.cache.served_memoised
        || !matches!(session.cache.phase(), CachePhase::Hit)
        || resp.status.as_u16() != 200
        || session.req_header().method != Method::GET
        || session.req_header().headers.contains_key(header::RANGE)
    {
        return;
    }
    let Some(key) = session.cache.maybe_cache_key().map(entry_key_of) else {
        return;
    };
    let limit = usize::try_from(ctx.policy.cache_store.max_object_size).unwrap_or(usize::MAX);
    let Some(module) = session.downstream_modules_ctx.get_mut::<Compression>() else {
        return;
    };
    if module.negotiated().is_none() {
        return;
    }
    module.memoise_into(
        limit,
        Box::new(move |coding: &Coding, encoded| {
            backend.store.attach_encoded(&key, memo_id(coding), encoded);
        }),
    );
}

fn hit_directives(
    session: &Session,
    meta: &CacheMeta,
    is_fresh: bool,
    ctx: &Ctx,
) -> Option<ForcedFreshness> {
    let route = ctx.route();
    let parsed;
    let facts = match &ctx.cache.request {
        Some(facts) => facts,
        None => {
            let req = session.req_header();
            parsed = RequestFacts::from_parts(&req.method, &req.headers);
            &parsed
        }
    };
    let lifetime = meta
        .fresh_until()
        .duration_since(meta.epoch())
        .unwrap_or_default();
    let age = meta.age();
    // The stored response's `must-revalidate` only matters to a stale hit the request accepts
    // with `max-stale`: its header is parsed for that case only, not on every hit.
    let must_revalidate = facts.cc.max_stale.is_some() && age >= lifetime && {
        let targeted = route.map_or(&[][..], |r| &r.cache.targeted_cache_control[..]);
        ResponseFacts::from_headers(
            meta.response_header().status.as_u16(),
            meta.headers(),
            targeted,
        )
        .must_revalidate()
    };
    match freshness::hit_acceptable(
        &facts.cc,
        facts.pragma_no_cache,
        age,
        lifetime,
        must_revalidate,
    ) {
        HitVerdict::Fresh | HitVerdict::StaleAccepted if !is_fresh => {
            Some(ForcedFreshness::ForceFresh)
        }
        HitVerdict::Stale if is_fresh => Some(ForcedFreshness::ForceExpired),
        // The client wants a validated response: not this copy, and not a stale one served
        // while revalidating either (ForceExpired closes the stale windows).
        HitVerdict::RequestRevalidate => Some(ForcedFreshness::ForceExpired),
        _ => None,
    }
}

/// Preconditions against a cached (or just stored) 200: 304 through Pingora's own path;
/// a failed If-Match / If-Unmodified-Since is noted for `response_filter`'s 412.
pub(super) fn not_modified(session: &Session, resp: &ResponseHeader, ctx: &mut Ctx) -> bool {
    match buffered::preconditions_outcome(session.req_header(), resp) {
        Outcome::NotModified => true,
        Outcome::PreconditionFailed => {
            ctx.cache.precondition_failed = true;
            false
        }
        Outcome::Proceed => false,
    }
}

/// What the client sees of the cache: `Cache-Status`, and neither the tag header nor the
/// targeted cache-control fields meant for us (RFC 9213 §2.1).
pub(super) fn response_filter(
    backend: &'static CacheBackend,
    session: &mut Session,
    resp: &mut ResponseHeader,
    ctx: &mut Ctx,
) -> Result<()> {
    let Some(route) = ctx.route() else {
        return Ok(());
    };
    if !route.cache.enabled {
        return Ok(());
    }
    memoise_encoding(backend, session, resp, ctx);
    cache_update::serve_updated(session, resp, ctx);
    let Some(route) = ctx.route() else {
        return Ok(());
    };
    // Removal looks the name up in both of Pingora's header maps: only for fields present.
    if let Some(name) = &route.cache.tag_header_name {
        if resp.headers.contains_key(name) {
            resp.remove_header(name);
        }
    }
    for name in &route.cache.targeted_names {
        if targeted_field_consumed(name.as_str()) && resp.headers.contains_key(name) {
            resp.remove_header(name);
        }
    }
    cache_conditional::align(session, resp, ctx)?;
    let status = cache_status(session, resp, ctx);
    if ctx.cache.precondition_failed {
        *resp = cache_conditional::precondition_failed_header()?;
    }
    resp.insert_header("cache-status", status.to_header_value("outrider"))?;
    Ok(())
}

fn ttl(meta: Option<&CacheMeta>, now: SystemTime) -> Option<i64> {
    meta.map(|meta| ttl_seconds(meta.fresh_until(), now))
}

/// A hit whose remaining freshness the stored meta tells (no meta: no `ttl`).
fn hit(meta: Option<&CacheMeta>, now: SystemTime) -> CacheStatus {
    match ttl(meta, now) {
        Some(ttl) => CacheStatus::hit(ttl),
        None => CacheStatus {
            hit: true,
            ..CacheStatus::default()
        },
    }
}

fn cache_status(session: &Session, resp: &ResponseHeader, ctx: &Ctx) -> CacheStatus {
    let cache = &session.cache;
    let now = SystemTime::now();
    let upstream_status = Some(resp.status.as_u16());
    if let Some(reason) = ctx.cache.bypass {
        if reason == freshness::BypassReason::Method.as_str() {
            return CacheStatus::forward(Fwd::Method);
        }
        let mut status = CacheStatus::forward(Fwd::Bypass);
        status.detail = Some(reason.into());
        return status;
    }
    let coalesced = cache.lock_duration().is_some();
    let meta = cache.maybe_cache_meta();
    match cache.phase() {
        CachePhase::Hit => {
            let mut status = hit(meta, now);
            status.collapsed = coalesced;
            status
        }
        CachePhase::StaleUpdating => {
            let mut status = hit(meta, now);
            status.detail = Some("stale-while-revalidate".into());
            status
        }
        CachePhase::Stale if ctx.cache.served_on_open => {
            // Not forwarded at all: the upstream refused it, so a hit, stale, and why.
            let mut status = hit(meta, now);
            status.detail = Some(match ctx.rejected.map(|r| r.cause) {
                Some(Cause::OverLimit) => "stale-over-limit".into(),
                _ => "stale-breaker-open".into(),
            });
            status
        }
        CachePhase::Stale => {
            // Still Stale when the response goes out: served stale because the origin failed.
            let mut status = CacheStatus::forward(Fwd::Stale);
            status.ttl = ttl(meta, now);
            status.detail = Some("stale-if-error".into());
            status
        }
        CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => {
            let mut status = CacheStatus::forward(Fwd::Stale);
            status.fwd_status = Some(304);
            status.stored = matches!(cache.phase(), CachePhase::Revalidated);
            status.ttl = ttl(meta, now);
            status
        }
        CachePhase::Expired => {
            let mut status = CacheStatus::forward(Fwd::Stale);
            status.fwd_status = upstream_status;
            status.stored = ctx.cache.stored;
            status.detail = ctx.cache.not_stored.map(Into::into);
            status
        }
        CachePhase::Miss => {
            let mut status = CacheStatus::forward(if ctx.cache.vary_miss {
                Fwd::VaryMiss
            } else {
                Fwd::UriMiss
            });
            status.fwd_status = upstream_status;
            status.stored = ctx.cache.stored;
            status.collapsed = coalesced;
            status.detail = ctx.cache.not_stored.map(Into::into);
            status
        }
        CachePhase::Disabled(reason) => {
            let mut status = CacheStatus::forward(if ctx.cache.used {
                Fwd::UriMiss
            } else {
                Fwd::Bypass
            });
            status.fwd_status = upstream_status;
            status.detail = Some(ctx.cache.not_stored.unwrap_or(reason.as_str()).into());
            status
        }
        CachePhase::Bypass | CachePhase::Uninit | CachePhase::CacheKey => {
            CacheStatus::forward(Fwd::Bypass)
        }
    }
}

/// Drops the body of a response turned into a 412 by `response_filter`.
pub(super) fn body_filter(body: &mut Option<bytes::Bytes>, ctx: &Ctx) {
    if ctx.cache.precondition_failed {
        *body = None;
    }
}

/// RFC 9111 §4.4: a non-error response to an unsafe method invalidates the stored responses
/// for its URL and for the same-origin `Location` / `Content-Location` it names.
pub(super) fn invalidate_after_unsafe(
    backend: &CacheBackend,
    session: &Session,
    status: u16,
    ctx: &Ctx,
) -> usize {
    let req = session.req_header();
    if matches!(
        req.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) {
        return 0;
    }
    let Some(route) = ctx.route() else { return 0 };
    if !route.cache.enabled {
        return 0;
    }
    let authority = request_authority(session);
    let request_url = format!(
        "http://{authority}{}",
        req.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let resp = session.response_written();
    let field = |name| {
        resp.and_then(|r| r.headers.get(name))
            .and_then(|v| v.to_str().ok())
    };
    let targets = freshness::invalidation_targets(
        &req.method,
        status,
        &request_url,
        field(header::LOCATION),
        field(header::CONTENT_LOCATION),
    );
    let mut purged = 0;
    for target in targets {
        let Ok(uri) = target.parse::<http::Uri>() else {
            continue;
        };
        let key = primary_key(
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map_or(authority, |a| a.as_str()),
            uri.path(),
            uri.query(),
            &route.cache.key_query,
        );
        // By URL, not by primary hash: entries keyed with URL-override fields share the URL.
        purged += backend.store.purge_url(&key);
        if let Some(tier) = backend.tier.get() {
            tier.purge_later(crate::cache::shared::PurgeTarget::Url(key));
        }
    }
    purged
}

/// What the cache did for this request, for `outrider_cache_lookups_total` and `GET /cache`;
/// `None` on routes that do not cache.
pub(super) fn lookup_result(session: &Session, ctx: &Ctx) -> Option<CacheResult> {
    if !ctx.route()?.cache.enabled {
        return None;
    }
    if ctx.cache.bypass.is_some() || !ctx.cache.used {
        return Some(CacheResult::Bypass);
    }
    let coalesced = session.cache.lock_duration().is_some();
    Some(match session.cache.phase() {
        CachePhase::Hit if coalesced => CacheResult::Coalesced,
        CachePhase::Hit => CacheResult::Hit,
        CachePhase::Stale | CachePhase::StaleUpdating => CacheResult::Stale,
        CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => CacheResult::Revalidated,
        CachePhase::Bypass => CacheResult::Bypass,
        _ => CacheResult::Miss,
    })
}
