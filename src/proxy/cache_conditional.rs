//! Conditional answers from the cache look and count like the buffered leg's (issue #21).
//!
//! Pingora answers a precondition on a stored response itself (`cache_not_modified_filter`,
//! then `to_304`), and `to_304` drops `Content-Type` and `Content-Length`: the compression
//! module, seeing neither, neither weakens the `ETag` nor adds `Vary: Accept-Encoding`, so the
//! 304 named another representation than the 200 this client would get (RFC 9110 §15.4.5).
//! The stored 200 is at hand here, so the 304 is aligned from it as the buffered leg does.
//! Both legs count their answers in `outrider_conditional_responses_total` and give a 412 the
//! one shape of [`precondition_failed_header`].

use http::header;
use pingora::cache::CachePhase;
use pingora::http::ResponseHeader;
use pingora::prelude::*;

use super::buffered;
use super::compression::Compression;
use super::Ctx;
use crate::conditional::Outcome;

/// The 412 of either leg: no body (the representation is what failed), not to be stored.
pub(super) fn precondition_failed_header() -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(412, Some(3))?;
    resp.insert_header(header::CONTENT_LENGTH, "0")?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    Ok(resp)
}

/// In `response_filter`, before the 412 replaces the header: counts a 304 or 412 answered
/// from a stored response and gives the 304 the 200's `ETag` form and `Vary`.
pub(super) fn align(session: &Session, resp: &mut ResponseHeader, ctx: &Ctx) -> Result<()> {
    let from_store = matches!(
        session.cache.phase(),
        CachePhase::Hit
            | CachePhase::Stale
            | CachePhase::StaleUpdating
            | CachePhase::Revalidated
            | CachePhase::RevalidatedNoCache(_)
    );
    if !ctx.cache.used || !from_store {
        return Ok(());
    }
    if ctx.cache.precondition_failed {
        buffered::count(ctx, Outcome::PreconditionFailed);
        return Ok(());
    }
    if resp.status.as_u16() != 304 {
        return Ok(());
    }
    buffered::count(ctx, Outcome::NotModified);
    let (Some(meta), Some(module)) = (
        session.cache.maybe_cache_meta(),
        session.downstream_modules_ctx.get::<Compression>(),
    ) else {
        return Ok(());
    };
    module.align_not_modified(meta.response_header(), resp)
}
