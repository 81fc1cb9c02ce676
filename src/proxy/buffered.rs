//! The buffered leg: fetch the upstream response, hold (a bounded start of) its body, then answer.
//!
//! Why it exists: Pingora writes the response header downstream as soon as the upstream's
//! arrives, before any body is read, and no hook can hold it back (PINGORA-NOTES.md §3.3). Some
//! answers need body bytes before the header can be written: a generated `ETag` is a hash of the
//! whole body (and a 304 or 412 depends on it), and whether a chunked body of unknown length
//! reaches the route's `compression.min_size` decides `Content-Encoding`. Those requests are
//! served here.
//!
//! It is also the cheaper of the two legs: it reads the upstream and writes the client in one
//! sequence, where Pingora's leg runs a downstream and an upstream half joined by two channels
//! per request and passes every header and body chunk between them. With the same
//! hooks on a 1 KiB `GET` it costs less CPU per request than Pingora's leg (README, "Where a
//! request's CPU goes"), so it stays.
//!
//! What it shares with Pingora's leg, and what it does not: it calls the same decision hooks,
//! in Pingora's order: `upstream_peer`
//! (endpoint choice, timeouts, in-flight gauge), `fail_to_connect` and `error_while_proxy`
//! (the retry rules), `upstream_request_filter` (forwarding headers, Accept-Encoding),
//! `upstream_response_filter` (upstream latency, hop-by-hop stripping, `Via`) and
//! `response_filter`; it writes through the session so the downstream modules (compression)
//! run; and it returns errors to Pingora, which calls `fail_to_proxy` and `logging` as for its
//! own leg. Each body chunk it sends goes through `response_body_filter` first, as on Pingora's
//! leg (`upstream_response_body_filter` is Pingora's default there, so there is nothing to
//! call). It has its own connector and keep-alive pool (`upstream_conn`, without Pingora's task per
//! idle connection), separate from Pingora's, and tries again wherever the hooks mark an error retryable, within Pingora's own
//! cap on tries (`max_retries`, 16), as Pingora's leg does.
//!
//! Scope, chosen so the leg never streams a request body or an upgrade: `GET` and `HEAD` with an
//! empty body and no `Upgrade`, on a route that generates ETags, or that compresses for this
//! client, or when the request carries preconditions, and a cache miss on a route that
//! generates ETags (it fills the cache through `cache_fill`). Everything else goes through
//! Pingora's leg. Memory per request is bounded by `etag.max_body` (or `compression.min_size`) plus one
//! read chunk; past it the body streams through without a generated tag. Responses that say
//! they are streams (`text/event-stream`, `X-Accel-Buffering: no`) or must not be kept
//! (`Cache-Control: no-store`) are never held.
//!
//! The leg evaluates the client's preconditions itself, so they are not sent upstream: the
//! upstream cannot know a generated tag, and would answer an `If-Match` with it by 412.
//! `If-Range` goes the same way and takes `Range` with it: the full representation is fetched,
//! and the proxy serves the range itself when `If-Range` matches strongly and the body was held;
//! otherwise the full representation, which RFC 9110 §14.2 allows (a server may ignore `Range`).
//!
//! A client that leaves while the upstream is still to answer is noticed at once (its
//! connection is watched until the response header arrives), which releases the upstream
//! connection and the concurrency slot; once the body is being read, a vanished client is
//! noticed only when the answer is written.

use bytes::Bytes;
use http::header;
use http::{Method, Version};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::http::client::HttpSession as UpstreamSession;

use super::cache_conditional;
use super::cache_fill;
use super::compression::{self, joined_field, Compression};
use super::{write_local, Ctx, Outrider};
use crate::compress::{self, Decision};
use crate::conditional::{self, BodyHasher, Outcome, Preconditions, Validators};

/// Whether this request is served by the buffered leg (see the module doc for the scope).
pub(super) fn wanted(session: &mut Session, ctx: &Ctx) -> bool {
    let body_empty = session.is_body_empty();
    let req = session.req_header();
    let Some(route) = ctx.route() else {
        return false;
    };
    let get = req.method == Method::GET;
    if !(get || req.method == Method::HEAD)
        || !body_empty
        || req.headers.contains_key(header::UPGRADE)
    {
        return false;
    }
    route.etag.generate
        || has_preconditions(req)
        || (get
            && route.compression.compresses()
            && session
                .downstream_modules_ctx
                .get::<Compression>()
                .is_some_and(|c| c.negotiated().is_some()))
}

/// Tries per request on this leg, the cap Pingora's leg has by default (`max_retries`).
const MAX_TRIES: usize = 16;

const CONDITIONAL_FIELDS: [header::HeaderName; 5] = [
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
];

fn has_preconditions(req: &RequestHeader) -> bool {
    CONDITIONAL_FIELDS[..4]
        .iter()
        .any(|name| req.headers.contains_key(name))
}

/// What the leg learned from the response header about holding its body.
struct Hold {
    /// Read this many bytes (or to the end) before writing the header.
    bytes: u64,
    /// Hash the body into an `ETag` if it ends within the hold.
    etag: bool,
}

/// Serves the request end to end. An `Err` goes back to Pingora, which answers it through
/// `fail_to_proxy` (or just closes the connection if the header is already out) and logs it.
pub(super) async fn serve(proxy: &Outrider, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
    let is_head = session.req_header().method == Method::HEAD;
    let (mut upstream, peer, mut resp) = exchange_header(proxy, session, ctx).await?;

    let no_body = matches!(resp.status.as_u16(), 204 | 304) || upstream.response_done();
    let hold = if no_body {
        Hold {
            bytes: 0,
            etag: false,
        }
    } else {
        plan_hold(&resp, ctx, is_head)
    };

    // Read up to the hold before anything goes downstream.
    let mut held: Vec<Bytes> = Vec::new();
    let mut held_len = 0u64;
    let mut ended = no_body;
    while !ended && held_len < hold.bytes {
        match upstream
            .read_response_body()
            .await
            .map_err(|e| e.into_up())?
        {
            Some(chunk) => {
                held_len += chunk.len() as u64;
                held.push(chunk);
            }
            None => ended = true,
        }
        ended = ended || upstream.response_done();
    }

    if ended && hold.etag {
        let mut hasher = BodyHasher::new();
        for chunk in &held {
            hasher.update(chunk);
        }
        resp.insert_header("ETag", hasher.finish())?;
    }
    if ended && hold.bytes > 0 {
        // The whole body is here: give it a length, so that the size rules see it.
        resp.remove_header(&header::TRANSFER_ENCODING);
        resp.insert_header(header::CONTENT_LENGTH, held_len.to_string())?;
    } else if !no_body
        && !resp.headers.contains_key(header::CONTENT_LENGTH)
        && !resp.headers.contains_key(header::TRANSFER_ENCODING)
    {
        // A close-delimited upstream body is re-framed so the client connection survives it,
        // as Pingora's leg does.
        resp.insert_header(header::TRANSFER_ENCODING, "chunked")?;
    }

    // A cache miss fills the cache from here (`cache_fill`); with the whole body held, the
    // fill is done before the client is answered.
    let fill = match cache_fill::start(proxy, session, &resp, ctx).await? {
        Some(fill) => cache_fill::feed(Some(fill), session, &held, ended).await,
        None => None,
    };

    match preconditions_outcome(session.req_header(), &resp) {
        Outcome::Proceed => {}
        Outcome::NotModified => {
            count(ctx, Outcome::NotModified);
            let mut not_modified = not_modified_from(&resp)?;
            if let Some(module) = session.downstream_modules_ctx.get::<Compression>() {
                module.align_not_modified(&resp, &mut not_modified)?;
            }
            proxy
                .response_filter(session, &mut not_modified, ctx)
                .await?;
            session
                .write_response_header(not_modified, true)
                .await
                .map_err(|e| e.into_down())?;
            if let Some(fill) = fill {
                fill.abandon(session);
            }
            return finish(proxy, upstream, &peer, ended).await;
        }
        Outcome::PreconditionFailed => {
            count(ctx, Outcome::PreconditionFailed);
            let failed = cache_conditional::precondition_failed_header()?;
            write_local(session, Box::new(failed), Bytes::new()).await?;
            if let Some(fill) = fill {
                fill.abandon(session);
            }
            return finish(proxy, upstream, &peer, ended).await;
        }
    }
    if ended && !is_head && held_len > 0 {
        if let Some(range) = if_range_range(session.req_header(), &mut resp) {
            let whole: Bytes = held.concat().into();
            held = vec![whole.slice(range)];
            held_len = held[0].len() as u64;
        }
    }
    proxy.response_filter(session, &mut resp, ctx).await?;

    // A HEAD was fetched as a GET (to hash its body); the client gets the header only.
    let header_only = is_head || (ended && held_len == 0);
    session
        .write_response_header(resp, header_only)
        .await
        .map_err(|e| e.into_down())?;
    if header_only {
        if let Some(fill) = fill {
            fill.abandon(session);
        }
        return finish(proxy, upstream, &peer, ended).await;
    }
    let last = held.len().saturating_sub(1);
    for (i, chunk) in held.into_iter().enumerate() {
        write_body(proxy, session, ctx, Some(chunk), ended && i == last).await?;
    }
    let mut fill = fill;
    while !ended {
        let chunk = upstream
            .read_response_body()
            .await
            .map_err(|e| e.into_up())?;
        ended = chunk.is_none() || upstream.response_done();
        let fed = chunk.as_slice();
        fill = cache_fill::feed(fill, session, fed, ended).await;
        if chunk.is_some() || ended {
            write_body(proxy, session, ctx, chunk, ended).await?;
        }
    }
    finish(proxy, upstream, &peer, true).await
}

/// A body chunk to the client through `response_body_filter`, as Pingora's leg sends one.
async fn write_body(
    proxy: &Outrider,
    session: &mut Session,
    ctx: &mut Ctx,
    mut body: Option<Bytes>,
    end: bool,
) -> Result<()> {
    proxy.response_body_filter(session, &mut body, end, ctx)?;
    session
        .write_response_body(body, end)
        .await
        .map_err(|e| e.into_down())
}

/// How much of the body to read before the header can be decided. An ETag needs all of it
/// (up to `etag.max_body`); a compression decision needs `min_size` when the length is unknown.
fn plan_hold(resp: &ResponseHeader, ctx: &Ctx, is_head: bool) -> Hold {
    let none = Hold {
        bytes: 0,
        etag: false,
    };
    let Some(route) = ctx.route() else {
        return none;
    };
    let header_str = |name| resp.headers.get(name).and_then(|v| v.to_str().ok());
    // `X-Accel-Buffering: no` is how backends tell nginx not to hold a response back; streams
    // that set it, and event streams, start at once (and are compressed as they come).
    if header_str("x-accel-buffering").is_some_and(|v| v.trim().eq_ignore_ascii_case("no"))
        || header_str(header::CONTENT_TYPE.as_str()).is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
        })
    {
        return none;
    }
    let cache_control = joined_field(&resp.headers, header::CACHE_CONTROL);
    let facts = compression::facts(resp, is_head, cache_control.as_deref());
    let etag = route.etag.generate
        && resp.status == http::StatusCode::OK
        && !resp.headers.contains_key(header::ETAG)
        && !compress::has_directive(facts.cache_control, "no-store")
        && facts
            .content_length
            .is_none_or(|len| len <= route.etag.max_body);
    if etag {
        return Hold {
            bytes: route.etag.max_body.saturating_add(1),
            etag: true,
        };
    }
    if is_head {
        return none;
    }
    match compress::decide(&facts, &route.compression) {
        Decision::Undecided => Hold {
            bytes: route.compression.min_size,
            etag: false,
        },
        _ => none,
    }
}

pub(super) fn preconditions_outcome(req: &RequestHeader, resp: &ResponseHeader) -> Outcome {
    if !has_preconditions(req) {
        return Outcome::Proceed;
    }
    let if_match = joined_field(&req.headers, header::IF_MATCH);
    let if_none_match = joined_field(&req.headers, header::IF_NONE_MATCH);
    // Joined too: a date field sent twice becomes an invalid date, which is ignored.
    let if_modified_since = joined_field(&req.headers, header::IF_MODIFIED_SINCE);
    let if_unmodified_since = joined_field(&req.headers, header::IF_UNMODIFIED_SINCE);
    let pre = Preconditions {
        if_match: if_match.as_deref(),
        if_none_match: if_none_match.as_deref(),
        if_modified_since: if_modified_since.as_deref(),
        if_unmodified_since: if_unmodified_since.as_deref(),
    };
    let current = validators(resp);
    // The leg serves GET and HEAD only: both are safe reads.
    conditional::evaluate(&pre, true, resp.status.as_u16(), &current)
}

fn validators(resp: &ResponseHeader) -> Validators<'_> {
    let value = |name| resp.headers.get(name).and_then(|v| v.to_str().ok());
    Validators {
        etag: value(header::ETAG),
        last_modified: value(header::LAST_MODIFIED),
    }
}

/// For a request with `If-Range` and `Range` whose whole body is held: when `If-Range` matches
/// (strong comparison, RFC 9110 §13.1.5) and the range is one satisfiable range, turns `resp`
/// into the 206 (or the 416) and returns the bytes to send. Anything else keeps the full 200:
/// a multi-range request included, which the RFC lets a server answer in full.
fn if_range_range(
    req: &RequestHeader,
    resp: &mut ResponseHeader,
) -> Option<std::ops::Range<usize>> {
    let if_range = req.headers.get(header::IF_RANGE)?.to_str().ok()?;
    req.headers.get(header::RANGE)?;
    let current = validators(resp);
    if !conditional::if_range_matches(if_range, &current) {
        return None;
    }
    // Pingora's range filter parses `Range` and rewrites the header; it also compares
    // `If-Range` byte for byte, which a strong match passes.
    let mut ranged = resp.clone();
    match super::ranges::filter(req, &mut ranged) {
        pingora::proxy::RangeType::Single(range) => {
            *resp = ranged;
            Some(range)
        }
        pingora::proxy::RangeType::Invalid => {
            *resp = ranged;
            Some(0..0)
        }
        _ => None,
    }
}

/// The 304 for `full`: the fields RFC 9110 §15.4.5 requires a 304 to repeat (plus
/// `Last-Modified`, which caches use to update what they hold) and no content.
fn not_modified_from(full: &ResponseHeader) -> Result<Box<ResponseHeader>> {
    let mut resp = ResponseHeader::build(304, Some(8))?;
    for name in [
        header::ETAG,
        header::LAST_MODIFIED,
        header::CACHE_CONTROL,
        header::EXPIRES,
        header::VARY,
        header::CONTENT_LOCATION,
        header::DATE,
        header::VIA,
    ] {
        for value in full.headers.get_all(&name) {
            resp.append_header(name.clone(), value.clone())?;
        }
    }
    Ok(Box::new(resp))
}

pub(super) fn count(ctx: &Ctx, outcome: Outcome) {
    let Some(m) = ctx.route.and_then(|id| ctx.policy.metrics.routes.get(id)) else {
        return;
    };
    match outcome {
        Outcome::NotModified => m.not_modified.inc(),
        Outcome::PreconditionFailed => m.precondition_failed.inc(),
        Outcome::Proceed => {}
    }
}

/// Returns a fully read connection to the pool; one with body left unread is closed (reading
/// the rest only to reuse it would cost more than a new connection for large bodies).
async fn finish(
    proxy: &Outrider,
    upstream: UpstreamSession,
    peer: &HttpPeer,
    fully_read: bool,
) -> Result<()> {
    if fully_read {
        proxy.connector.release(upstream, peer).await;
    }
    Ok(())
}

/// Connects, sends the request and reads the response header (skipping interim 1xx
/// responses), then runs `upstream_response_filter` on it; tries again wherever the hooks
/// mark the error retryable (the upstream's `retry` policy, a stale pooled connection), as
/// Pingora's leg does, within Pingora's own cap on tries.
async fn exchange_header(
    proxy: &Outrider,
    session: &mut Session,
    ctx: &mut Ctx,
) -> Result<(UpstreamSession, Box<HttpPeer>, Box<ResponseHeader>)> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let peer = proxy.upstream_peer(session, ctx).await?;
        let (mut upstream, reused) = match proxy.connector.connect(&peer).await {
            Ok(connected) => connected,
            Err(mut e) => {
                e.as_up();
                let e = proxy.fail_to_connect(session, &peer, ctx, e);
                if e.retry() && attempts < MAX_TRIES {
                    continue;
                }
                return Err(e.into_up());
            }
        };
        // What Pingora's leg records in `connected_to_upstream`, for the slow-request log.
        ctx.connected = Some((std::time::Instant::now(), reused));
        upstream.set_read_timeout(peer.options.read_timeout);
        upstream.set_write_timeout(peer.options.write_timeout);
        let req = upstream_request(session, ctx, proxy).await?;
        let sent = async {
            upstream.write_request_header(req).await?;
            upstream.finish_request_body().await?;
            loop {
                upstream.read_response_header().await?;
                let informational = upstream
                    .response_header()
                    .is_some_and(|h| h.status.is_informational());
                if !informational {
                    return Ok::<(), Box<Error>>(());
                }
            }
        };
        // A client that leaves while the upstream thinks releases the upstream connection
        // and the concurrency slot now, not at `read_timeout` (Pingora's leg does the same).
        let client_gone = async {
            match session.as_downstream_mut().read_body_or_idle(true).await {
                Err(e) => e,
                Ok(_) => std::future::pending().await,
            }
        };
        let sent = tokio::select! {
            sent = sent => sent,
            gone = client_gone => return Err(gone.into_down()),
        };
        let mut e = match sent {
            Ok(()) => {
                let Some(head) = upstream.response_header() else {
                    return Error::e_explain(
                        ErrorType::InvalidHTTPHeader,
                        "no upstream response header",
                    );
                };
                let mut resp = Box::new(head.clone());
                match proxy
                    .upstream_response_filter(session, &mut resp, ctx)
                    .await
                {
                    Ok(()) => return Ok((upstream, peer, resp)),
                    // The upstream connection is dropped with its unread body, never pooled.
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        e.as_up();
        // A pooled connection the upstream had closed (nothing reached it), or the retry
        // policy: the request may go again on a fresh connection.
        let e = proxy.error_while_proxy(&peer, session, e, ctx, reused);
        if e.retry() && attempts < MAX_TRIES {
            continue;
        }
        return Err(e);
    }
}

/// The request as the upstream gets it: the client's, minus the fields that belong to the
/// client's connection (RFC 9110 §7.6.1), as HTTP/1.1 with `Host` from the target's authority
/// when it has one (RFC 9112 §3.2.2), then the pipeline's `upstream_request_filter`.
async fn upstream_request(
    session: &mut Session,
    ctx: &mut Ctx,
    proxy: &Outrider,
) -> Result<Box<RequestHeader>> {
    let mut req = Box::new(session.req_header().clone());
    req.set_version(Version::HTTP_11);
    // Preconditions are evaluated here, against what the upstream sends (see the module doc);
    // `If-Range` takes `Range` with it.
    let if_range = req.headers.contains_key(header::IF_RANGE);
    strip_request_fields(&mut req, |name| {
        CONDITIONAL_FIELDS.contains(name) || (if_range && name == header::RANGE)
    })?;
    // A HEAD is fetched as a GET when its ETag is to be generated: the tag hashes the body
    // the GET would carry, and HEAD must describe the same representation.
    if req.method == Method::HEAD && ctx.route().is_some_and(|r| r.etag.generate) {
        req.set_method(Method::GET);
    }
    if let Some(authority) = req.uri.authority().map(|a| a.as_str().to_owned()) {
        req.insert_header(header::HOST, authority)?;
        if let Some(path) = req.uri.path_and_query().cloned() {
            req.set_uri(http::Uri::from(path));
        }
    }
    proxy
        .upstream_request_filter(session, &mut req, ctx)
        .await?;
    Ok(req)
}

/// How many `Connection` options a request may name; more is rejected, not parsed (as
/// Pingora's leg does, after Envoy).
const MAX_CONNECTION_OPTIONS: usize = 10;

/// Removes the fields that belong to the client's connection (RFC 9110 §7.6.1): those its
/// `Connection` names and the standard hop-by-hop ones, and those `also` selects. A request
/// whose `Connection` names a field the proxy itself sets or routes by (so that dropping it
/// would let the client strip forwarding information), a pseudo-header, or a non-token is
/// refused with 400: the same rules as Pingora's leg, so both legs forward the same request.
///
/// One pass over the fields the request has, then a removal for each one to go: a request
/// carries a handful of fields, and a removal hashes its name in both of Pingora's maps, so
/// removing every listed name unconditionally cost more than the rest of this function.
fn strip_request_fields(
    req: &mut RequestHeader,
    also: impl Fn(&header::HeaderName) -> bool,
) -> Result<()> {
    let nominated = connection_options(req)?;
    let doomed: Vec<header::HeaderName> = req
        .headers
        .keys()
        .filter(|name| is_request_hop_by_hop(name) || nominated.contains(name) || also(name))
        .cloned()
        .collect();
    for name in &doomed {
        req.remove_header(name);
    }
    Ok(())
}

fn is_request_hop_by_hop(name: &header::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "http2-settings"
            // The request has no body; a stray `Content-Length: 0` adds nothing.
            | "content-length"
    )
}

/// The field names the request's `Connection` header lists, checked as described at
/// [`strip_request_fields`].
fn connection_options(req: &RequestHeader) -> Result<Vec<header::HeaderName>> {
    let mut nominated: Vec<header::HeaderName> = Vec::new();
    for token in req
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
    {
        if nominated.len() + 1 >= MAX_CONNECTION_OPTIONS {
            return Error::e_explain(
                ErrorType::InvalidHTTPHeader,
                "too many Connection header options",
            )
            .map_err(|e: Box<Error>| e.into_down());
        }
        let valid_token = !token.starts_with(b":")
            && token
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b));
        let name = match header::HeaderName::from_bytes(token) {
            Ok(name) if valid_token => name,
            _ => {
                return Error::e_explain(
                    ErrorType::InvalidHTTPHeader,
                    "invalid option in the Connection header",
                )
                .map_err(|e: Box<Error>| e.into_down())
            }
        };
        if matches!(
            name.as_str(),
            "host" | "x-forwarded-for" | "x-forwarded-host" | "x-forwarded-proto"
        ) {
            return Error::e_explain(
                ErrorType::InvalidHTTPHeader,
                "protected header named by the Connection header",
            )
            .map_err(|e: Box<Error>| e.into_down());
        }
        nominated.push(name);
    }
    Ok(nominated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_fields_and_the_ones_it_names_are_removed() {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        for (name, value) in [
            ("host", "a.example"),
            ("connection", "keep-alive, X-Secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("accept", "*/*"),
        ] {
            req.append_header(name, value).unwrap();
        }
        strip_request_fields(&mut req, |_| false).unwrap();
        let left: Vec<&str> = req.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["host", "accept"]);
    }

    #[test]
    fn connection_cannot_name_what_the_proxy_sets() {
        for named in ["X-Forwarded-For", "host", ":authority", "\"x-a\""] {
            let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
            req.append_header("connection", format!("close, {named}"))
                .unwrap();
            let err = strip_request_fields(&mut req, |_| false).unwrap_err();
            assert_eq!(err.esource(), &pingora::ErrorSource::Downstream, "{named}");
        }
    }
}
