//! A 304 from the origin updates the stored response (RFC 9111 §3.2, §4.3.4) with
//! `crate::cache::update`'s rule instead of pingora-cache's five-name merge.
//!
//! Pingora calls `upstream_response_filter` with the origin's 304, then `response_cache_filter`
//! with its own merge of the stored header; it offers no hook to replace that merge. So the
//! 304's fields are kept here when the 304 arrives, and the merge is redone on the header
//! `response_cache_filter` sees (that header becomes the stored and served one), and, when the
//! response is no longer storable, on the header `response_filter` serves.

use std::time::SystemTime;

use http::header::DATE;
use http::HeaderMap;
use pingora::cache::CachePhase;
use pingora::http::ResponseHeader;
use pingora::prelude::*;

use super::Ctx;
use crate::cache::update::{dropped_on_validation, updates_from_304};

/// In `upstream_response_filter` (after hop-by-hop hygiene): keeps the fields of a 304 that
/// answers this request's revalidation of a stored response.
pub(super) fn note_not_modified(session: &Session, resp: &ResponseHeader, ctx: &mut Ctx) {
    if resp.status.as_u16() != 304 || !matches!(session.cache.phase(), CachePhase::Stale) {
        return;
    }
    let mut fields = resp.headers.clone();
    // RFC 9110 §6.6.1: a recipient that caches a response without Date records when it came.
    if !fields.contains_key(DATE) {
        if let Ok(now) = httpdate::fmt_http_date(SystemTime::now()).parse() {
            fields.insert(DATE, now);
        }
    }
    ctx.cache.validated_by = Some(fields);
}

/// The stored header `header` (Pingora's merge of it) updated with the kept 304, if any.
pub(super) fn merged<'a>(
    header: &'a ResponseHeader,
    ctx: &Ctx,
) -> std::borrow::Cow<'a, ResponseHeader> {
    match &ctx.cache.validated_by {
        Some(fields) => {
            let mut updated = header.clone();
            apply(&mut updated, fields);
            std::borrow::Cow::Owned(updated)
        }
        None => std::borrow::Cow::Borrowed(header),
    }
}

/// In `response_filter`: a revalidated response that could not be stored again is served from
/// Pingora's merge; it gets the 304's fields too.
pub(super) fn serve_updated(session: &Session, resp: &mut ResponseHeader, ctx: &Ctx) {
    if !matches!(session.cache.phase(), CachePhase::RevalidatedNoCache(_)) {
        return;
    }
    if let Some(fields) = &ctx.cache.validated_by {
        apply(resp, fields);
    }
}

fn apply(header: &mut ResponseHeader, not_modified: &HeaderMap) {
    for name in dropped_on_validation() {
        header.remove_header(&name);
    }
    for update in updates_from_304(not_modified) {
        header.remove_header(&update.name);
        for value in update.values {
            if let Err(e) = header.append_header(update.name.clone(), value) {
                log::debug!("304 field {} not applied: {e}", update.name);
            }
        }
    }
}
