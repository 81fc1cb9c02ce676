//! The response header a cached object keeps. Two things make it differ from the header
//! Pingora parsed:
//!
//! - It owns its bytes. Pingora parses an upstream header zero-copy: names and values are
//!   slices of the connection's read buffer, so a stored clone would pin that whole buffer
//!   (measured: about 7 KiB per object) for as long as the object is cached.
//! - Field names spelled the usual way point at static text. Pingora keeps each field's
//!   spelling beside the `HeaderMap` (one `Bytes` per field), and every hit clones the stored
//!   header twice (into the `CacheMeta`, then for the response) and drops both clones: a copied
//!   name costs an atomic increment and decrement each time, a static one nothing. The same
//!   goes for a few values nearly every response carries (`bytes`, `Accept-Encoding`, common
//!   media types).

use bytes::Bytes;
use http::header::HeaderValue;
use pingora::http::ResponseHeader;

/// Response field names as origins commonly spell them, title case and lowercase (HTTP/2
/// origins and some servers send lowercase). A name spelled otherwise is copied as it came.
static COMMON_SPELLINGS: &[&str] = &[
    "Accept-Ranges",
    "Access-Control-Allow-Origin",
    "Age",
    "Cache-Control",
    "Connection",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Security-Policy",
    "Content-Type",
    "Date",
    "ETag",
    "Etag",
    "Expires",
    "Keep-Alive",
    "Last-Modified",
    "Link",
    "Location",
    "Pragma",
    "Server",
    "Set-Cookie",
    "Strict-Transport-Security",
    "Surrogate-Key",
    "Vary",
    "Via",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "accept-ranges",
    "access-control-allow-origin",
    "age",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-security-policy",
    "content-type",
    "date",
    "etag",
    "expires",
    "last-modified",
    "link",
    "location",
    "server",
    "set-cookie",
    "strict-transport-security",
    "surrogate-key",
    "vary",
    "via",
    "x-content-type-options",
    "x-frame-options",
];

/// Field values common enough to keep as static text (see [`COMMON_SPELLINGS`]).
static COMMON_VALUES: &[&str] = &[
    "Accept-Encoding",
    "accept-encoding",
    "application/javascript",
    "application/json",
    "application/json; charset=utf-8",
    "application/octet-stream",
    "bytes",
    "chunked",
    "close",
    "gzip",
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/svg+xml",
    "image/webp",
    "keep-alive",
    "max-age=0",
    "no-cache",
    "no-store",
    "nosniff",
    "public",
    "text/css",
    "text/html",
    "text/html; charset=UTF-8",
    "text/html; charset=utf-8",
    "text/javascript",
    "text/plain",
    "text/plain; charset=utf-8",
];

/// A copy of `header` for the store: its own bytes, common names static (see the module doc).
pub(super) fn owned_header(header: &ResponseHeader) -> ResponseHeader {
    let size = Some(header.headers.len());
    let built = if header.has_case() {
        ResponseHeader::build(header.status, size)
    } else {
        ResponseHeader::build_no_case(header.status, size)
    };
    let Ok(mut copy) = built else {
        return header.clone();
    };
    copy.set_version(header.version);
    if copy.set_reason_phrase(header.get_reason_phrase()).is_err() {
        return header.clone();
    }
    let value_of = |value: &HeaderValue| {
        let bytes = value.as_bytes();
        match COMMON_VALUES
            .iter()
            .find(|common| common.as_bytes() == bytes)
        {
            Some(common) => HeaderValue::from_static(common),
            None => HeaderValue::from_bytes(bytes).unwrap_or_else(|_| value.clone()),
        }
    };
    let copied = if header.has_case() {
        header.case_header_iter().try_for_each(|(name, value)| {
            copy.append_header(spelling(name.as_slice()), value_of(value))
                .map(drop)
        })
    } else {
        header
            .headers
            .iter()
            .try_for_each(|(name, value)| copy.append_header(name, value_of(value)).map(drop))
    };
    match copied {
        Ok(()) => copy,
        Err(_) => header.clone(),
    }
}

/// The name as it was spelled: static text when it is a common spelling, else a copy.
fn spelling(name: &[u8]) -> Bytes {
    COMMON_SPELLINGS
        .iter()
        .find(|common| common.as_bytes() == name)
        .map_or_else(
            || Bytes::copy_from_slice(name),
            |common| Bytes::from_static(common.as_bytes()),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header parsed the way Pingora parses one: names and values are slices of one read
    /// buffer.
    fn parsed_from(buf: &Bytes, fields: &[(&str, &str)]) -> ResponseHeader {
        let mut header = ResponseHeader::build(200, None).unwrap();
        for (name, value) in fields {
            let start = buf
                .windows(name.len())
                .position(|w| w == name.as_bytes())
                .unwrap();
            let name_bytes = buf.slice(start..start + name.len());
            let vstart = buf
                .windows(value.len())
                .position(|w| w == value.as_bytes())
                .unwrap();
            let value =
                HeaderValue::from_maybe_shared(buf.slice(vstart..vstart + value.len())).unwrap();
            header.append_header(name_bytes, value).unwrap();
        }
        header
    }

    #[test]
    fn a_stored_header_does_not_pin_the_read_buffer() {
        let mut wire =
            b"X-Custom-Name: Some-Value\r\nCache-Control: max-age=60\r\ncontent-TYPE: text/plain\r\n"
                .to_vec();
        wire.resize(8192, b' ');
        let buf = Bytes::from(wire);
        let fields = [
            ("X-Custom-Name", "Some-Value"),
            ("Cache-Control", "max-age=60"),
            ("content-TYPE", "text/plain"),
        ];
        let parsed = parsed_from(&buf, &fields);
        assert!(!buf.is_unique(), "the fixture shares the buffer");

        let owned = owned_header(&parsed);
        let mut before = Vec::new();
        parsed.header_to_h1_wire(&mut before);
        drop(parsed);
        assert!(
            buf.is_unique(),
            "the copy still points into the read buffer"
        );

        let mut after = Vec::new();
        owned.header_to_h1_wire(&mut after);
        assert_eq!(after, before, "names (with their case) and values are kept");
        assert_eq!(owned.status, 200);
    }

    #[test]
    fn common_spellings_point_at_static_text() {
        let at = |name: &str| spelling(name.as_bytes()).as_ptr();
        let listed = |name: &str| {
            COMMON_SPELLINGS
                .iter()
                .find(|common| **common == name)
                .unwrap()
                .as_ptr()
        };
        assert_eq!(at("Content-Type"), listed("Content-Type"));
        assert_eq!(at("etag"), listed("etag"));
        // Spelled otherwise: a copy, with the spelling it came with.
        let odd = spelling(b"CONTENT-TYPE");
        assert_eq!(&odd[..], b"CONTENT-TYPE");
        assert_ne!(odd.as_ptr(), listed("Content-Type"));
        assert_eq!(&spelling(b"X-Custom")[..], b"X-Custom");
    }

    #[test]
    fn the_lists_hold_valid_distinct_entries() {
        for (i, name) in COMMON_SPELLINGS.iter().enumerate() {
            assert!(
                http::HeaderName::from_bytes(name.as_bytes()).is_ok(),
                "{name}"
            );
            assert!(!COMMON_SPELLINGS[..i].contains(name), "{name} twice");
        }
        // `HeaderValue::from_static` panics on what a header value may not hold.
        for (i, value) in COMMON_VALUES.iter().enumerate() {
            assert!(HeaderValue::from_str(value).is_ok(), "{value}");
            assert!(!COMMON_VALUES[..i].contains(value), "{value} twice");
        }
    }

    #[test]
    fn common_values_point_at_static_text() {
        let mut header = ResponseHeader::build(200, None).unwrap();
        header.append_header("Accept-Ranges", "bytes").unwrap();
        header.append_header("X-Note", "bytes and more").unwrap();
        let owned = owned_header(&header);
        let listed = COMMON_VALUES.iter().find(|v| **v == "bytes").unwrap();
        let ranges = owned.headers.get("accept-ranges").unwrap();
        assert_eq!(ranges.as_bytes().as_ptr(), listed.as_ptr());
        assert_eq!(owned.headers.get("x-note").unwrap(), "bytes and more");
    }
}
