//! `[limits]` applied to the downstream connection: the head checks before anything goes
//! upstream, the body meter as the body streams, and the read timeouts Pingora leaves at its
//! own defaults (60 s per body read; no timeout at all between keep-alive requests).

use bytes::Bytes;
use log::debug;
use pingora::prelude::*;

use crate::limits::{self, Violation};

use super::{respond_text, Ctx};

/// Checks the parsed head and the declared body size, and sets this connection's timeouts.
/// Answers a violation itself and returns true when it did.
pub(super) async fn admit(session: &mut Session, ctx: &Ctx) -> Result<bool> {
    let limits = &ctx.policy.limits;
    // Keep-alive applies between requests and to the reads inside a later request's head;
    // Pingora would otherwise wait forever (HTTP/1.1 default). A connection Pingora has
    // already marked for closing (shutdown, `Connection: close`) stays marked.
    if session.get_keepalive().is_some() {
        session.set_keepalive(Some(limits.idle_timeout.as_secs().max(1)));
    }
    session.set_read_timeout(Some(limits.body_timeout));

    let raw_head = || match session.as_downstream() {
        pingora::protocols::http::ServerSession::H1(h1) => Some(h1.get_headers_raw_bytes()),
        _ => None,
    };
    if super::hygiene::has_conflicting_framing(session.req_header(), raw_head) {
        // The body is not read: the connection cannot carry another request.
        session.set_keepalive(None);
        debug!("request refused: 400 Content-Length with Transfer-Encoding");
        respond_text(
            session,
            400,
            Bytes::from_static(b"400 Bad Request: Content-Length with Transfer-Encoding\n"),
        )
        .await?;
        return Ok(true);
    }

    let req = session.req_header();
    let checked = limits::check_head(
        limits,
        &req.method,
        req.raw_path(),
        req.version,
        &req.headers,
    )
    .and_then(|()| limits::check_declared_body(limits, declared_length(session)));
    let Err(violation) = checked else {
        return Ok(false);
    };
    refuse(session, violation).await?;
    Ok(true)
}

/// Counts a request body chunk; past the limit the request ends with 413 (if no response
/// has begun) and the connection closes, since the rest of the body is never read.
pub(super) fn meter_body(session: &mut Session, body: &Option<Bytes>, ctx: &mut Ctx) -> Result<()> {
    let Some(chunk) = body else {
        return Ok(());
    };
    match ctx.body_meter.add(&ctx.policy.limits, chunk.len()) {
        Ok(()) => Ok(()),
        Err(violation) => {
            session.set_keepalive(None);
            debug!("request body refused: {}", violation.label());
            Err(Error::explain(
                ErrorType::HTTPStatus(violation.status()),
                violation.message(),
            )
            .into_down())
        }
    }
}

async fn refuse(session: &mut Session, violation: Violation) -> Result<()> {
    debug!(
        "request refused: {} {}",
        violation.status(),
        violation.label()
    );
    // The body (if any) is not read, so the connection cannot carry another request.
    session.set_keepalive(None);
    respond_text(
        session,
        violation.status(),
        Bytes::from(violation.message()),
    )
    .await
}

/// The body length the client declared; Pingora has already refused malformed or
/// conflicting values, and `Transfer-Encoding` overrides it (RFC 9112 §6.3).
fn declared_length(session: &Session) -> Option<u64> {
    let headers = &session.req_header().headers;
    if headers.contains_key(http::header::TRANSFER_ENCODING) {
        return None;
    }
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}
