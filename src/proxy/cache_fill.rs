//! A cache miss on a route that generates ETags is fetched by the buffered leg, which fills the
//! cache through pingora-cache's own miss handler (issue #21).
//!
//! Pingora's leg sends the response header before any body arrives, so a miss it serves cannot
//! carry the generated `ETag` that the stored object gets when the fill finishes: the first
//! client got no validator and every later one got the tag. The buffered leg holds the body
//! (up to `etag.max_body`) before the header, so the miss carries the same tag as the hits.
//! This module is the part of Pingora's `cache_http_task` the buffered leg needs: the
//! storability decision (our `response_cache_filter`), the `Vary` variance, the miss handler,
//! the object size bound, and finishing the fill, which releases the cache lock so that
//! coalesced requests are served the stored response.
//!
//! Scope: only the lock writer's `Miss` phase (revalidations and stale refreshes keep Pingora's
//! leg, which sends the validators), `GET` and `HEAD` without a body, an `Upgrade` or a `Range`
//! (Pingora's leg answers ranges from the full response it fills with).

use bytes::Bytes;
use http::{header, Method};
use log::warn;
use pingora::cache::{CachePhase, NoCacheReason, RespCacheable};
use pingora::http::ResponseHeader;
use pingora::prelude::*;

use super::{cache, Ctx, Outrider};

/// A fill in progress: the miss handler is set on the session's cache.
pub(super) struct Filling {
    written: usize,
    max: Option<usize>,
}

/// Whether this miss is fetched by the buffered leg (see the module documentation).
pub(super) fn wanted(session: &mut Session, ctx: &Ctx) -> bool {
    if !matches!(session.cache.phase(), CachePhase::Miss) || !session.is_body_empty() {
        return false;
    }
    let req = session.req_header();
    matches!(req.method, Method::GET | Method::HEAD)
        && !req.headers.contains_key(header::RANGE)
        && !req.headers.contains_key(header::UPGRADE)
        && ctx.route().is_some_and(|r| r.etag.generate)
}

/// Offers the response header (after `upstream_response_filter` and the generated ETag) to the
/// cache, as Pingora's leg does on its header task. `None` when there is nothing to fill.
pub(super) async fn start(
    proxy: &Outrider,
    session: &mut Session,
    resp: &ResponseHeader,
    ctx: &mut Ctx,
) -> Result<Option<Filling>> {
    if !matches!(session.cache.phase(), CachePhase::Miss) {
        return Ok(None);
    }
    let meta = match proxy.response_cache_filter(session, resp, ctx)? {
        RespCacheable::Cacheable(meta) => meta,
        RespCacheable::Uncacheable(reason) => {
            session.cache.response_became_uncacheable(reason);
            session.cache.disable(reason);
            return Ok(None);
        }
    };
    let max = session.cache.max_file_size_bytes();
    let declared = meta
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let (Some(max), Some(len)) = (max, declared) {
        if len > max {
            too_large(session);
            return Ok(None);
        }
    }
    let variance = cache::variance(&meta, ctx.route(), session.req_header());
    session.cache.set_cache_meta(meta);
    session.cache.update_variance(variance);
    session.cache.set_miss_handler().await?;
    Ok(Some(Filling { written: 0, max }))
}

/// The response is larger than an object may be: not stored, and not tried again soon.
fn too_large(session: &mut Session) {
    session
        .cache
        .response_became_uncacheable(NoCacheReason::ResponseTooLarge);
    session.cache.disable(NoCacheReason::ResponseTooLarge);
}

// === impl Filling ===

impl Filling {
    /// Adds a body chunk; `false` when the fill was given up (too large, or the store failed),
    /// which never fails the client's response.
    pub(super) async fn write(&mut self, session: &mut Session, chunk: &Bytes) -> bool {
        self.written = self.written.saturating_add(chunk.len());
        if self.max.is_some_and(|max| self.written > max) {
            too_large(session);
            return false;
        }
        let Some(handler) = session.cache.miss_handler() else {
            return false;
        };
        if let Err(e) = handler.write_body(chunk.clone(), false).await {
            warn!("cache fill failed: {e}");
            session.cache.disable(NoCacheReason::StorageError);
            return false;
        }
        true
    }

    /// The whole body is written: stores the object and lets coalesced requests read it.
    pub(super) async fn finish(self, session: &mut Session) {
        if let Err(e) = session.cache.finish_miss_handler().await {
            warn!("cache fill failed: {e}");
        }
    }

    /// The body will not be read to its end (a 304, a 412 or a HEAD answered from its start):
    /// nothing is stored, and the next request may fetch it.
    pub(super) fn abandon(self, session: &mut Session) {
        session.cache.disable(NoCacheReason::Deferred);
    }
}

/// Writes `chunks` into the fill, finishing it when `ended`; the fill that is still going, if any.
pub(super) async fn feed(
    fill: Option<Filling>,
    session: &mut Session,
    chunks: &[Bytes],
    ended: bool,
) -> Option<Filling> {
    let mut fill = fill?;
    for chunk in chunks {
        if !fill.write(session, chunk).await {
            return None;
        }
    }
    if ended {
        fill.finish(session).await;
        return None;
    }
    Some(fill)
}
