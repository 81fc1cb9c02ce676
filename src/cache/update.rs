//! Updating a stored response from a `304 Not Modified` (RFC 9111 §3.2, §4.3.4).
//!
//! A 304 that validates a stored response carries the fields the origin would send with the
//! 200 now, so every field in it replaces the stored field of the same name, whatever the
//! name (`X-Custom`, `Test-Header`, ...). pingora-cache's own merge copies five names only
//! (`Cache-Control`, `Expires`, `ETag`, `Cache-Tag`, `CDN-Cache-Control`), so a changed
//! `Date`, `Last-Modified` or application field stayed stale for the object's whole life.
//!
//! Choices, per §3.2's list of exceptions:
//! - **Not updated:** `Content-Length` (it describes the stored body, not the 304's empty one),
//!   the hop-by-hop fields of §3.1 (`Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`,
//!   `Transfer-Encoding`, `Upgrade`, `Trailer`, and every field the 304's `Connection` names),
//!   and the proxy-authentication fields (`Proxy-Authenticate`, `Proxy-Authentication-Info`,
//!   `Proxy-Authorization`), which §3.1 never stores.
//! - **Fields the stored body depends upon** (§3.2 lets a cache keep these): `Content-Encoding`
//!   and `Content-Range` label the stored bytes, so a 304 claiming another coding cannot relabel
//!   them; `Vary` stays because pingora-cache keeps the stored variance over a 304, and a
//!   `Vary` that disagreed with the variance would file the object under the wrong request.
//! - **`Date` and `Age` describe the validating exchange**, not the stored one: the stored ones
//!   are dropped even when the 304 has none, so the object's age restarts from the 304 (RFC
//!   9111 §4.3.4's freshened response) instead of carrying the first fetch's age forward.
//! - A name repeated in the 304 replaces the stored field with all of its lines, in order.

use http::header::{
    AGE, CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, DATE, PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop or stored-body fields a 304 never changes, besides those its `Connection` names.
const KEPT: [&str; 5] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authentication-info",
    "content-encoding",
    "content-range",
];

/// A field of the stored response replaced by a 304: its name and every value the 304 gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Update {
    pub(crate) name: HeaderName,
    pub(crate) values: Vec<HeaderValue>,
}

/// What a 304 changes in the stored response, in the 304's field order: each [`Update`]
/// replaces every stored line of its name.
pub(crate) fn updates_from_304(not_modified: &HeaderMap) -> Vec<Update> {
    let named_by_connection = connection_names(not_modified);
    let mut updates: Vec<Update> = Vec::new();
    for name in not_modified.keys() {
        if !updatable(name) || named_by_connection.contains(name) {
            continue;
        }
        let values = not_modified.get_all(name).iter().cloned().collect();
        updates.push(Update {
            name: name.clone(),
            values,
        });
    }
    updates
}

/// The stored fields a validation drops whether or not the 304 replaces them.
pub(crate) fn dropped_on_validation() -> [HeaderName; 2] {
    [DATE, AGE]
}

/// Applies a 304 to a stored header map: the rule of [`updates_from_304`] and
/// [`dropped_on_validation`] on `http` types, which the unit tests check it through.
#[cfg(test)]
pub(crate) fn merge_304(stored: &mut HeaderMap, not_modified: &HeaderMap) {
    for name in dropped_on_validation() {
        stored.remove(name);
    }
    for update in updates_from_304(not_modified) {
        stored.remove(&update.name);
        for value in update.values {
            stored.append(update.name.clone(), value);
        }
    }
}

/// Whether a 304's field of this name replaces the stored one (see the module documentation).
pub(crate) fn updatable(name: &HeaderName) -> bool {
    let fixed = [
        CONTENT_LENGTH,
        CONNECTION,
        TE,
        TRANSFER_ENCODING,
        UPGRADE,
        TRAILER,
        PROXY_AUTHENTICATE,
        PROXY_AUTHORIZATION,
        CONTENT_ENCODING,
        CONTENT_RANGE,
        VARY,
    ];
    !fixed.contains(name) && !KEPT.contains(&name.as_str())
}

/// The field names a `Connection` field lists (RFC 9110 §7.6.1), lowercased.
fn connection_names(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|member| HeaderName::from_bytes(member.trim_ascii()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(fields: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn every_field_of_the_304_replaces_the_stored_one_whatever_its_name() {
        let mut stored = map(&[
            ("Test-Header", "old"),
            ("X-Custom", "old"),
            ("Content-Foo", "old"),
            ("ETag", "\"v1\""),
            ("Cache-Control", "max-age=1"),
            ("Kept", "untouched"),
        ]);
        let nm = map(&[
            ("Test-Header", "new"),
            ("X-Custom", "new"),
            ("Content-Foo", "new"),
            ("ETag", "\"v1\""),
            ("Cache-Control", "max-age=60"),
            ("Added", "by the 304"),
        ]);
        merge_304(&mut stored, &nm);
        for name in ["test-header", "x-custom", "content-foo"] {
            assert_eq!(values(&stored, name), ["new"], "{name}");
        }
        assert_eq!(values(&stored, "cache-control"), ["max-age=60"]);
        assert_eq!(values(&stored, "kept"), ["untouched"]);
        assert_eq!(values(&stored, "added"), ["by the 304"]);
    }

    #[test]
    fn a_repeated_field_replaces_all_stored_lines_in_order() {
        let mut stored = map(&[("Link", "a"), ("Link", "b"), ("Link", "c")]);
        merge_304(&mut stored, &map(&[("Link", "x"), ("Link", "y")]));
        assert_eq!(values(&stored, "link"), ["x", "y"]);
    }

    #[test]
    fn content_length_framing_and_hop_by_hop_fields_are_not_updated() {
        let mut stored = map(&[
            ("Content-Length", "11"),
            ("Content-Encoding", "gzip"),
            ("Vary", "Accept-Language"),
        ]);
        let nm = map(&[
            ("Content-Length", "0"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "keep-alive, X-Hop"),
            ("Keep-Alive", "timeout=5"),
            ("X-Hop", "hop"),
            ("Upgrade", "h2c"),
            ("TE", "trailers"),
            ("Trailer", "X-Sum"),
            ("Proxy-Authenticate", "Basic"),
            ("Content-Encoding", "br"),
            ("Vary", "Cookie"),
        ]);
        assert!(
            updates_from_304(&nm).is_empty(),
            "{:?}",
            updates_from_304(&nm)
        );
        merge_304(&mut stored, &nm);
        assert_eq!(values(&stored, "content-length"), ["11"]);
        assert_eq!(values(&stored, "content-encoding"), ["gzip"]);
        assert_eq!(values(&stored, "vary"), ["Accept-Language"]);
        for name in [
            "transfer-encoding",
            "connection",
            "keep-alive",
            "x-hop",
            "upgrade",
        ] {
            assert!(values(&stored, name).is_empty(), "{name}");
        }
    }

    #[test]
    fn date_and_age_come_from_the_304_or_not_at_all() {
        let mut stored = map(&[("Date", "Sun, 06 Nov 1994 08:49:37 GMT"), ("Age", "7200")]);
        merge_304(
            &mut stored,
            &map(&[("Date", "Mon, 07 Nov 1994 08:49:37 GMT")]),
        );
        assert_eq!(values(&stored, "date"), ["Mon, 07 Nov 1994 08:49:37 GMT"]);
        assert!(values(&stored, "age").is_empty());

        let mut stored = map(&[("Date", "Sun, 06 Nov 1994 08:49:37 GMT"), ("Age", "7200")]);
        merge_304(&mut stored, &map(&[("Age", "3")]));
        assert!(values(&stored, "date").is_empty());
        assert_eq!(values(&stored, "age"), ["3"]);
    }

    #[test]
    fn an_empty_304_changes_nothing_but_date_and_age() {
        let mut stored = map(&[("ETag", "\"a\""), ("X-Custom", "v")]);
        merge_304(&mut stored, &HeaderMap::new());
        assert_eq!(values(&stored, "etag"), ["\"a\""]);
        assert_eq!(values(&stored, "x-custom"), ["v"]);
    }
}
