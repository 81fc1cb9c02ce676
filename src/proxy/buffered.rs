//! The buffered leg: fetch the upstream response, hold the start of its body, then answer.
//!
//! Why it exists: Pingora writes the response header downstream as soon as the upstream's
//! arrives, before any body is read, and no hook can hold it back (PINGORA-NOTES.md §3.3). Some
//! decisions need body bytes before the header can be written: whether a chunked body of
//! unknown length reaches the route's `compression.min_size`. Those requests are served here.
//!
//! How it stays one pipeline: this is a second *driver* of the same `ProxyHttp` hooks, not a
//! second copy of them. It calls `upstream_peer` (endpoint choice, timeouts, in-flight gauge),
//! `fail_to_connect` and `error_while_proxy` (the retry rules), `upstream_request_filter`
//! (forwarding headers, Accept-Encoding), `upstream_response_filter` (upstream latency,
//! hop-by-hop stripping, `Via`) and `response_filter` in Pingora's order, writes through the
//! session so the downstream modules (compression) run, and returns errors to Pingora, which
//! calls `fail_to_proxy` and `logging` exactly as for its own leg.
//!
//! Scope, chosen so the leg never needs to stream a request body or an upgrade: `GET` with an
//! empty body and no `Upgrade`, on a route that compresses, from a client that accepts one of
//! its codings. Everything else goes through Pingora's leg. Memory per request is bounded by
//! `min_size` (plus one read chunk); past it the body streams through.
//!
//! Pingora's leg also watches the client while waiting for the upstream; this one notices a
//! vanished client only when it writes, within the upstream's read timeout.

use bytes::Bytes;
use http::header;
use http::{Method, Version};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::http::client::HttpSession as UpstreamSession;
use pingora::upstreams::peer::Peer;

use super::compression::Compression;
use super::{Ctx, Outrider};
use crate::compress::{self, Decision, ResponseFacts};

/// Whether this request is served by the buffered leg (see the module doc for the scope).
pub(super) fn wanted(session: &mut Session, ctx: &Ctx) -> bool {
    let body_empty = session.is_body_empty();
    let req = session.req_header();
    req.method == Method::GET
        && body_empty
        && !req.headers.contains_key(header::UPGRADE)
        && ctx.route().is_some_and(|r| r.compression.compresses())
        && session
            .downstream_modules_ctx
            .get::<Compression>()
            .is_some_and(|c| c.negotiated().is_some())
}

/// Serves the request end to end. An `Err` goes back to Pingora, which answers it through
/// `fail_to_proxy` (or just closes the connection if the header is already out) and logs it.
pub(super) async fn serve(proxy: &Outrider, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
    let (mut upstream, peer) = exchange_header(proxy, session, ctx).await?;
    let Some(head) = upstream.response_header() else {
        return Error::e_explain(ErrorType::InvalidHTTPHeader, "no upstream response header");
    };
    let mut resp = Box::new(head.clone());
    proxy
        .upstream_response_filter(session, &mut resp, ctx)
        .await?;

    let no_body = matches!(resp.status.as_u16(), 204 | 304) || upstream.response_done();
    let hold = if no_body {
        0
    } else {
        bytes_to_hold(&resp, ctx)
    };

    // Read up to `hold` bytes before anything goes downstream.
    let mut held: Vec<Bytes> = Vec::new();
    let mut held_len = 0u64;
    let mut ended = no_body;
    while !ended && held_len < hold {
        match upstream.read_response_body().await? {
            Some(chunk) => {
                held_len += chunk.len() as u64;
                held.push(chunk);
            }
            None => ended = true,
        }
        ended = ended || upstream.response_done();
    }

    if ended && hold > 0 {
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
    proxy.response_filter(session, &mut resp, ctx).await?;

    let header_only = ended && held_len == 0;
    session.write_response_header(resp, header_only).await?;
    if header_only {
        release(proxy, upstream, &peer).await;
        return Ok(());
    }
    let last = held.len().saturating_sub(1);
    for (i, chunk) in held.into_iter().enumerate() {
        session
            .write_response_body(Some(chunk), ended && i == last)
            .await?;
    }
    while !ended {
        let chunk = upstream.read_response_body().await?;
        ended = chunk.is_none() || upstream.response_done();
        if chunk.is_some() || ended {
            session.write_response_body(chunk, ended).await?;
        }
    }
    release(proxy, upstream, &peer).await;
    Ok(())
}

/// How many body bytes must be read before the header can be decided: `min_size` when the
/// response would be compressed but its length is unknown, else none.
fn bytes_to_hold(resp: &ResponseHeader, ctx: &Ctx) -> u64 {
    let Some(route) = ctx.route() else { return 0 };
    let policy = &route.compression;
    let header_str = |name| resp.headers.get(name).and_then(|v| v.to_str().ok());
    // `X-Accel-Buffering: no` is how backends tell nginx not to hold a response back; streams
    // that set it, and event streams, start at once and are compressed as they come.
    if header_str("x-accel-buffering").is_some_and(|v| v.trim().eq_ignore_ascii_case("no"))
        || header_str(header::CONTENT_TYPE.as_str()).is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
        })
    {
        return 0;
    }
    let facts = ResponseFacts {
        status: resp.status.as_u16(),
        is_head: false,
        content_type: header_str(header::CONTENT_TYPE.as_str()),
        has_content_encoding: resp.headers.contains_key(header::CONTENT_ENCODING),
        cache_control: header_str(header::CACHE_CONTROL.as_str()),
        content_length: header_str(header::CONTENT_LENGTH.as_str())
            .and_then(|v| v.trim().parse().ok()),
    };
    match compress::decide(&facts, policy) {
        Decision::Undecided => policy.min_size,
        _ => 0,
    }
}

/// Connects (retrying once where the hooks allow), sends the request and reads the response
/// header, skipping interim 1xx responses.
async fn exchange_header(
    proxy: &Outrider,
    session: &mut Session,
    ctx: &mut Ctx,
) -> Result<(UpstreamSession, Box<HttpPeer>)> {
    // Pingora's leg allows one retry per request by default; so does this one.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let peer = proxy.upstream_peer(session, ctx).await?;
        let (mut upstream, reused) = match proxy.connector.get_http_session(&*peer).await {
            Ok(connected) => connected,
            Err(mut e) => {
                e.as_up();
                let e = proxy.fail_to_connect(session, &peer, ctx, e);
                if e.retry() && attempts < 2 {
                    continue;
                }
                return Err(e.into_up());
            }
        };
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
        }
        .await;
        match sent {
            Ok(()) => return Ok((upstream, peer)),
            Err(mut e) => {
                e.as_up();
                // A pooled connection the upstream had closed: nothing reached it, so the
                // request may go again on a fresh one.
                let e = proxy.error_while_proxy(&peer, session, e, ctx, reused);
                if e.retry() && attempts < 2 {
                    continue;
                }
                return Err(e);
            }
        }
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
    strip_request_hop_by_hop(&mut req);
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

fn strip_request_hop_by_hop(req: &mut RequestHeader) {
    let nominated: Vec<String> = req
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in &nominated {
        // The fields that frame or route the message are never the client's to drop.
        if !matches!(
            name.as_str(),
            "host" | "content-length" | "transfer-encoding"
        ) {
            req.remove_header(name.as_str());
        }
    }
    for name in [
        header::CONNECTION.as_str(),
        "keep-alive",
        "proxy-connection",
        header::TE.as_str(),
        header::TRAILER.as_str(),
        header::TRANSFER_ENCODING.as_str(),
        header::UPGRADE.as_str(),
        "http2-settings",
        // The request has no body; a stray `Content-Length: 0` adds nothing.
        header::CONTENT_LENGTH.as_str(),
    ] {
        req.remove_header(name);
    }
}

/// Returns a fully read connection to the pool (the connector keeps only reusable ones).
async fn release(proxy: &Outrider, upstream: UpstreamSession, peer: &HttpPeer) {
    proxy
        .connector
        .release_http_session(upstream, peer, peer.idle_timeout())
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_fields_and_the_ones_it_names_are_removed() {
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        for (name, value) in [
            ("host", "a.example"),
            ("connection", "keep-alive, X-Secret, Host"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("accept", "*/*"),
        ] {
            req.append_header(name, value).unwrap();
        }
        strip_request_hop_by_hop(&mut req);
        let left: Vec<&str> = req.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["host", "accept"]);
    }
}
