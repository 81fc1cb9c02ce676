//! Pipeline step 2b: the route's `rate_limit`, before the cache and the upstream, so that an
//! abusive client costs neither. Excess gets 429 with `Retry-After` (RFC 6585 §4) and the
//! `RateLimit-Policy` / `RateLimit` fields of draft-ietf-httpapi-ratelimit-headers.

use std::time::Instant;

use bytes::Bytes;
use http::header;
use pingora::http::ResponseHeader;
use pingora::prelude::*;

use crate::config::policy::RateLimitKey;
use crate::resilience::Decision;

use super::{client_ip, write_local, Ctx};

/// Takes a token for this request; answers 429 itself and returns true when there was none.
/// A route without a limit costs one vector lookup.
pub(super) async fn admit(session: &mut Session, ctx: &Ctx) -> Result<bool> {
    let Some(route) = ctx.route else {
        return Ok(false);
    };
    let Some(Some(limiter)) = ctx.policy.rate_limiters.get(route) else {
        return Ok(false);
    };
    // A stale-while-revalidate refresh is the proxy's own request, not a client's.
    if session.as_downstream().is_subrequest() {
        return Ok(false);
    }
    let key = match &limiter.policy().key {
        RateLimitKey::ClientIp => limiter.key(client_ip(session)),
        RateLimitKey::Header(name) => limiter.key(
            session
                .req_header()
                .headers
                .get(name.as_str())
                .map(|v| v.as_bytes()),
        ),
    };
    let Decision::Limit { retry_after, reset } = limiter.check(key, Instant::now()) else {
        return Ok(false);
    };
    if let Some(m) = ctx
        .policy
        .metrics
        .routes
        .get(route)
        .and_then(|m| m.rate_limited.as_ref())
    {
        m.inc();
    }
    let policy = limiter.policy();
    let name = ctx.route().map_or("default", |r| &r.name);
    let name = sf_string(name);
    let mut resp = ResponseHeader::build(429, Some(7))?;
    let body = Bytes::from_static(b"429 Too Many Requests: rate limit exceeded\n");
    resp.insert_header(header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    resp.insert_header(header::RETRY_AFTER, ceil_secs(retry_after).to_string())?;
    resp.insert_header(
        "ratelimit-policy",
        format!(
            "{name};q={};w={}",
            policy.requests,
            policy.per.as_secs().max(1)
        ),
    )?;
    resp.insert_header("ratelimit", format!("{name};r=0;t={}", ceil_secs(reset)))?;
    // A body the client may still be sending is not read: the connection cannot carry more.
    let headers = &session.req_header().headers;
    if headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
    {
        session.set_keepalive(None);
    }
    write_local(session, Box::new(resp), body).await?;
    Ok(true)
}

/// Whole seconds, rounded up and at least 1: a client told 0 would retry at once.
fn ceil_secs(d: std::time::Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// An RFC 8941 sf-string: printable ASCII, with `"` and `\` escaped; anything else dropped.
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|c| (' '..='~').contains(c)) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn seconds_round_up() {
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::ZERO), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1500)), 2);
        assert_eq!(ceil_secs(Duration::from_secs(3)), 3);
    }

    #[test]
    fn names_are_sf_strings() {
        assert_eq!(sf_string("api"), "\"api\"");
        assert_eq!(sf_string("a\"b\\c\u{e9}"), "\"a\\\"b\\\\c\"");
    }
}
