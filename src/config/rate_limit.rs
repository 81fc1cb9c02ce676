//! A route's `rate_limit`: `[defaults] rate_limit` layered under the route's own, key by key.

use std::time::Duration;

use super::compile::{at, Problems};
use super::diagnostics::Seg;
use super::policy::{RateLimitKey, RateLimitPolicy};
use super::schema;

/// `None` when the route has no limit (`requests` unset or 0).
pub(super) fn rate_limit(
    d: &schema::RateLimit,
    r: &schema::RateLimit,
    base: &[Seg],
    p: &mut Problems,
) -> Option<RateLimitPolicy> {
    let base = at(base, &["rate_limit"]);
    let requests = r.requests.or(d.requests).unwrap_or(0);
    let per = r.per.or(d.per).map_or(Duration::from_secs(1), |d| d.0);
    let burst = r.burst.or(d.burst).unwrap_or(requests);
    let key_text = r
        .key
        .clone()
        .or_else(|| d.key.clone())
        .unwrap_or_else(|| "client-ip".into());
    let before = p.len();
    // The IETF RateLimit fields carry the window in whole seconds.
    if per < Duration::from_secs(1) || per.subsec_nanos() != 0 {
        p.add(
            at(&base, &["per"]),
            "must be a whole number of seconds, at least 1s (RateLimit-Policy states it in seconds)",
        );
    }
    if requests > 0 && burst == 0 {
        p.add(at(&base, &["burst"]), "must be at least 1");
    }
    let key = match key_text.split_once(':') {
        None if key_text == "client-ip" => Some(RateLimitKey::ClientIp),
        Some(("header", name)) if http::HeaderName::from_bytes(name.as_bytes()).is_ok() => {
            Some(RateLimitKey::Header(name.to_ascii_lowercase()))
        }
        _ => {
            p.add(
                at(&base, &["key"]),
                format!("invalid key {key_text:?}; \"client-ip\" or \"header:NAME\""),
            );
            None
        }
    };
    if requests == 0 || p.len() != before {
        return None;
    }
    Some(RateLimitPolicy {
        requests,
        per,
        burst,
        key: key?,
    })
}
