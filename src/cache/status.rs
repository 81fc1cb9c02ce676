//! The `Cache-Status` response field (RFC 9211): how this cache handled the request, for
//! whoever debugs a response downstream.
//!
//! The field is a Structured Fields List (RFC 8941); Outrider adds one member, its cache name
//! with parameters. Choices, and what this module does:
//! - Parameters are written in one fixed order: `hit`, `fwd`, `fwd-status`, `stored`,
//!   `collapsed`, `ttl`, `detail`, which is the order of RFC 9211's examples. Boolean
//!   parameters appear bare when true and are omitted when false (RFC 8941 §4.1.1.2).
//! - `hit` and `fwd` are mutually exclusive in meaning (§2.1, §2.2); the struct does not
//!   enforce it and writes what it is given, so a caller bug shows in the header, not as a
//!   panic. Use [`CacheStatus::hit`] and [`CacheStatus::forward`].
//! - A stale response served while revalidating in the background is a `hit` with a negative
//!   `ttl`: the request itself was not forwarded.
//! - `ttl` is clamped to the Structured Fields Integer range (15 digits).
//! - `detail` is always a String (`detail="set-cookie"`), never a Token, so any text can go in
//!   it: `"` and `\` are escaped, and bytes outside printable ASCII become `?`.
//! - The cache name is written as a Token when it is one (`outrider`), else as a String.
//! - `key` (§2.7) is not emitted: the key names a user's URL, not something to echo to
//!   everyone downstream.

use std::borrow::Cow;
use std::fmt::Write;
use std::time::SystemTime;

/// Why the request went to the origin (RFC 9211 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Fwd {
    /// The cache was configured not to handle this request.
    Bypass,
    /// The request method is not cacheable.
    Method,
    /// Nothing stored under the key.
    UriMiss,
    /// Something stored under the key, but `Vary` did not match.
    VaryMiss,
    /// A stored response was stale and had to be revalidated.
    Stale,
}

/// One `Cache-Status` member; `to_header_value` renders it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CacheStatus {
    /// Served from the cache without forwarding.
    pub(crate) hit: bool,
    pub(crate) fwd: Option<Fwd>,
    /// The status the origin answered the forwarded request with (e.g. 304 on revalidation).
    pub(crate) fwd_status: Option<u16>,
    /// The response was stored.
    pub(crate) stored: bool,
    /// The request was collapsed with another one for the same key.
    pub(crate) collapsed: bool,
    /// Remaining freshness in seconds, negative when stale ([`ttl_seconds`]).
    pub(crate) ttl: Option<i64>,
    /// Free text, here a `NotStoredReason` / `BypassReason` name.
    pub(crate) detail: Option<Cow<'static, str>>,
}

/// RFC 8941 §3.3.1: Integers have at most 15 digits.
const SF_INTEGER_MAX: i64 = 999_999_999_999_999;

/// A response's remaining freshness at `now`, in whole seconds (rounded towards zero),
/// negative once `fresh_until` has passed: RFC 9211 §2.5's `ttl`.
pub(crate) fn ttl_seconds(fresh_until: SystemTime, now: SystemTime) -> i64 {
    let clamp = |secs: u64| {
        i64::try_from(secs)
            .unwrap_or(SF_INTEGER_MAX)
            .min(SF_INTEGER_MAX)
    };
    match fresh_until.duration_since(now) {
        Ok(left) => clamp(left.as_secs()),
        Err(past) => -clamp(past.duration().as_secs()),
    }
}

// === impl Fwd ===

impl Fwd {
    /// The registered token (RFC 9211 §2.2).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Fwd::Bypass => "bypass",
            Fwd::Method => "method",
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Stale => "stale",
        }
    }
}

// === impl CacheStatus ===

impl CacheStatus {
    /// Served from the cache, `ttl` seconds of freshness left (negative: stale).
    pub(crate) fn hit(ttl: i64) -> Self {
        CacheStatus {
            hit: true,
            ttl: Some(ttl),
            ..CacheStatus::default()
        }
    }

    /// Forwarded to the origin for `fwd`.
    pub(crate) fn forward(fwd: Fwd) -> Self {
        CacheStatus {
            fwd: Some(fwd),
            ..CacheStatus::default()
        }
    }

    /// The field value: `cache_name` followed by the parameters that are set, e.g.
    /// `outrider; fwd=miss; fwd-status=200; stored`. Always a valid header value.
    pub(crate) fn to_header_value(&self, cache_name: &str) -> String {
        let Self {
            hit,
            fwd,
            fwd_status,
            stored,
            collapsed,
            ttl,
            detail,
        } = self;
        let mut out = String::with_capacity(64);
        if is_sf_token(cache_name) {
            out.push_str(cache_name);
        } else {
            push_sf_string(&mut out, cache_name);
        }
        if *hit {
            out.push_str("; hit");
        }
        if let Some(fwd) = fwd {
            let _ = write!(out, "; fwd={}", fwd.as_str());
        }
        if let Some(status) = fwd_status {
            let _ = write!(out, "; fwd-status={status}");
        }
        if *stored {
            out.push_str("; stored");
        }
        if *collapsed {
            out.push_str("; collapsed");
        }
        if let Some(ttl) = ttl {
            let _ = write!(
                out,
                "; ttl={}",
                (*ttl).clamp(-SF_INTEGER_MAX, SF_INTEGER_MAX)
            );
        }
        if let Some(detail) = detail {
            out.push_str("; detail=");
            push_sf_string(&mut out, detail);
        }
        out
    }
}

/// RFC 8941 §3.3.4: `( ALPHA / "*" ) *( tchar / ":" / "/" )`.
fn is_sf_token(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'*')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b))
}

/// RFC 8941 §3.3.3, with unrepresentable bytes replaced by `?`.
fn push_sf_string(out: &mut String, text: &str) {
    out.push('"');
    for b in text.bytes() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push('?'),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::{Duration, UNIX_EPOCH};

    use http::HeaderValue;
    use proptest::prelude::*;

    fn with(f: impl FnOnce(&mut CacheStatus)) -> CacheStatus {
        let mut status = CacheStatus::default();
        f(&mut status);
        status
    }

    #[test]
    fn header_values() {
        let rows: Vec<(CacheStatus, &str)> = vec![
            (CacheStatus::hit(42), "outrider; hit; ttl=42"),
            (
                with(|s| {
                    s.fwd = Some(Fwd::UriMiss);
                    s.fwd_status = Some(200);
                    s.stored = true;
                }),
                "outrider; fwd=uri-miss; fwd-status=200; stored",
            ),
            (
                with(|s| {
                    s.fwd = Some(Fwd::Stale);
                    s.fwd_status = Some(304);
                    s.ttl = Some(30);
                }),
                "outrider; fwd=stale; fwd-status=304; ttl=30",
            ),
            (
                with(|s| {
                    s.fwd = Some(Fwd::Bypass);
                    s.detail = Some("set-cookie".into());
                }),
                "outrider; fwd=bypass; detail=\"set-cookie\"",
            ),
            // Stale-while-revalidate: a hit, stale.
            (CacheStatus::hit(-5), "outrider; hit; ttl=-5"),
            (
                with(|s| {
                    s.fwd = Some(Fwd::VaryMiss);
                    s.collapsed = true;
                    s.fwd_status = Some(200);
                }),
                "outrider; fwd=vary-miss; fwd-status=200; collapsed",
            ),
            (CacheStatus::forward(Fwd::Method), "outrider; fwd=method"),
            (CacheStatus::default(), "outrider"),
            (
                with(|s| s.ttl = Some(i64::MAX)),
                "outrider; ttl=999999999999999",
            ),
            (
                with(|s| s.detail = Some(String::from("a\"b\\c\u{e9}\n").into())),
                "outrider; detail=\"a\\\"b\\\\c???\"",
            ),
        ];
        for (status, expected) in rows {
            assert_eq!(status.to_header_value("outrider"), expected, "{status:?}");
        }
    }

    #[test]
    fn cache_names() {
        let rows: &[(&str, &str)] = &[
            ("outrider", "outrider; hit"),
            ("Edge-1.example/a:b", "Edge-1.example/a:b; hit"),
            ("my cache", "\"my cache\"; hit"),
            ("1cache", "\"1cache\"; hit"),
            ("", "\"\"; hit"),
        ];
        for (name, expected) in rows {
            let status = CacheStatus {
                hit: true,
                ..CacheStatus::default()
            };
            assert_eq!(status.to_header_value(name), *expected);
        }
    }

    #[test]
    fn ttl_from_instants() {
        let t = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(ttl_seconds(t(1060), t(1000)), 60);
        assert_eq!(ttl_seconds(t(1000), t(1000)), 0);
        assert_eq!(ttl_seconds(t(1000), t(1030)), -30);
        assert_eq!(
            ttl_seconds(t(1000) + Duration::from_millis(1500), t(1000)),
            1,
            "rounded towards zero"
        );
    }

    proptest! {
        #[test]
        fn always_a_valid_header_value(
            name in ".{0,12}",
            detail in proptest::option::of(".{0,12}"),
            ttl in proptest::option::of(any::<i64>()),
            fwd_status in proptest::option::of(any::<u16>()),
            hit in any::<bool>(),
        ) {
            let status = CacheStatus {
                hit,
                fwd: Some(Fwd::UriMiss),
                fwd_status,
                ttl,
                detail: detail.map(Cow::Owned),
                ..CacheStatus::default()
            };
            let value = status.to_header_value(&name);
            prop_assert!(HeaderValue::from_str(&value).is_ok(), "{}", value);
            prop_assert!(value.is_ascii());
        }
    }
}
