//! `cargo +nightly fuzz run range`: arbitrary `Range` / `If-Range` requests through what the
//! proxy serves ranges with: `conditional::range::plan` reads `Range` strictly, a strong
//! `If-Range` comparison decides whether it applies, and Pingora's `range_header_filter`
//! serves the normalised set (`src/proxy/ranges.rs`, on cache hits and held bodies).
//! `proxy::ranges::filter` is private, so `proxy_filter` below is a copy of it: keep the two
//! in step.
//!
//! Input: byte 0 is a set of flags (see the code), bytes 1-4 the representation's length (u32
//! LE), the rest the `Range` value; with If-Range mode 3 the rest is split at the first `\n`
//! into `Range` and `If-Range`. The representation is a 200 with `Content-Length`, a fixed
//! `ETag` (strong or weak) and a fixed `Last-Modified`.
//!
//! Invariants, whatever the input:
//! - `plan` equals an independent reference reading of RFC 9110 §14.1.2 (`reference` below):
//!   the whole representation for an invalid field, 416 when no range is satisfiable, else
//!   the satisfiable ranges clamped to the body, in order; its parts lie within the body and
//!   the normalised field (`field_of`) reads back the same.
//! - What is served follows the plan: no panic; a 206 only for a 200 to GET or HEAD with a
//!   `Content-Length`, only under a strongly matching `If-Range`, and only with exactly the
//!   planned ranges (non-empty, within the body, ascending and disjoint), a matching
//!   `Content-Length` and `Content-Range` (or multipart `Content-Type`); the planned ranges are
//!   served unless Pingora declines the set (overlapping, descending, 200 or more: the whole
//!   body, which RFC 9110 §14.2 allows); a 416 exactly when nothing is satisfiable, with
//!   `Content-Range: bytes */length`. So a field that is not a valid byte-range set never
//!   yields a 206, and no byte outside the body is ever promised.
//!
//! Pingora's own reading of `Range` has bugs this target found (see
//! `tests/it/fuzz_regressions.rs`), which is why the proxy no longer hands it the raw field.
#![no_main]

use std::ops::Range;

use http::header::{
    HeaderValue, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE,
    LAST_MODIFIED, RANGE,
};
use http::{Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use outrider::conditional::range::{field_of, plan, RangePlan};
use outrider::conditional::{if_range_matches, Validators};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{range_header_filter, RangeType};

const STRONG_ETAG: &str = "\"v1\"";
const WEAK_ETAG: &str = "W/\"v1\"";
const LAST_MODIFIED_DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

/// As `src/proxy/ranges.rs`: Pingora's default limit on the parts of one answer.
const MAX_RANGES: Option<usize> = Some(200);

fuzz_target!(|data: &[u8]| {
    let Some((&[flags, l0, l1, l2, l3], rest)) = data.split_first_chunk::<5>() else {
        return;
    };
    // Bits 0-1: GET, HEAD, POST, PUT. Bit 2: the status is 203, not 200. Bits 4-5: If-Range
    // absent, the ETag, the Last-Modified, or from the input. Bit 6: the ETag is weak. Bit 7:
    // no Content-Length. (Bit 3 is unused.)
    let method =
        [Method::GET, Method::HEAD, Method::POST, Method::PUT][usize::from(flags & 3)].clone();
    let status = if flags & 0x04 != 0 { 203 } else { 200 };
    let etag = if flags & 0x40 != 0 {
        WEAK_ETAG
    } else {
        STRONG_ETAG
    };
    let has_length = flags & 0x80 == 0;
    let len = u32::from_le_bytes([l0, l1, l2, l3]);
    let (range, if_range): (&[u8], Option<&[u8]>) = match (flags >> 4) & 3 {
        0 => (rest, None),
        1 => (rest, Some(etag.as_bytes())),
        2 => (rest, Some(LAST_MODIFIED_DATE.as_bytes())),
        _ => match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        },
    };

    // The strict reading, against the reference.
    let planned = plan(range, u64::from(len));
    let text = String::from_utf8_lossy(range);
    assert_eq!(
        planned,
        reference(range, u64::from(len)),
        "{text:?} on {len} bytes"
    );
    if let RangePlan::Parts(parts) = &planned {
        assert!(!parts.is_empty());
        for &(first, last) in parts {
            assert!(
                first <= last && last < u64::from(len),
                "{text:?}: {parts:?}"
            );
        }
        assert_eq!(plan(field_of(parts).as_bytes(), u64::from(len)), planned);
    }

    // What the proxy serves. Only what can arrive in a header field (no CR, LF, NUL or other
    // controls but HTAB).
    let Ok(range_value) = HeaderValue::from_bytes(range) else {
        return;
    };
    let if_range_value = match if_range.map(HeaderValue::from_bytes) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return,
    };
    let mut req = RequestHeader::build(method.clone(), b"/", Some(2)).unwrap();
    req.insert_header(RANGE, range_value).unwrap();
    if let Some(v) = &if_range_value {
        req.insert_header(IF_RANGE, v.clone()).unwrap();
    }
    let mut resp = ResponseHeader::build(status, Some(4)).unwrap();
    if has_length {
        resp.insert_header(CONTENT_LENGTH, len).unwrap();
    }
    resp.insert_header(CONTENT_TYPE, "text/plain").unwrap();
    resp.insert_header(ETAG, etag).unwrap();
    resp.insert_header(LAST_MODIFIED, LAST_MODIFIED_DATE)
        .unwrap();
    let before = resp.clone();
    let got = proxy_filter(&req, &mut resp);

    let len = len as usize;
    let eligible = status == 200 && has_length && (method == Method::GET || method == Method::HEAD);
    if status != 200 || !has_length {
        assert_eq!(resp.status, before.status);
        assert_eq!(
            resp.headers, before.headers,
            "a response not eligible was changed"
        );
    }
    let if_range_holds = if_range_value.as_ref().is_none_or(|v| {
        let current = Validators {
            etag: Some(etag),
            last_modified: Some(LAST_MODIFIED_DATE),
        };
        std::str::from_utf8(v.as_bytes()).is_ok_and(|v| if_range_matches(v, &current))
    });
    let served: Vec<Range<usize>> = match &got {
        RangeType::Single(r) => vec![r.clone()],
        RangeType::Multi(m) => m.ranges.clone(),
        RangeType::None | RangeType::Invalid => Vec::new(),
    };
    let expected = match (&planned, eligible && if_range_holds) {
        (_, false) | (RangePlan::Whole, _) => Expect::Whole,
        (RangePlan::Unsatisfiable, true) => Expect::Unsatisfiable,
        (RangePlan::Parts(parts), true) => {
            let want: Vec<Range<usize>> = parts
                .iter()
                .map(|&(first, last)| first as usize..last as usize + 1)
                .collect();
            let pingora_takes = want.len() < 200 && want.windows(2).all(|w| w[0].end <= w[1].start);
            if pingora_takes {
                Expect::Ranges(want)
            } else {
                Expect::Whole
            }
        }
    };
    let header = |name| {
        resp.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    match (expected, &got) {
        (Expect::Whole, RangeType::None) => {
            if eligible {
                assert_eq!(resp.status, 200);
                assert_eq!(header(ACCEPT_RANGES).as_deref(), Some("bytes"));
                assert!(header(CONTENT_RANGE).is_none());
            }
        }
        (Expect::Unsatisfiable, RangeType::Invalid) => {
            assert_eq!(resp.status, 416);
            assert_eq!(header(CONTENT_LENGTH).as_deref(), Some("0"));
            assert_eq!(header(CONTENT_RANGE), Some(format!("bytes */{len}")));
        }
        (Expect::Ranges(want), RangeType::Single(r)) => {
            assert_eq!(served, want, "{text:?} on {len} bytes");
            assert_eq!(resp.status, 206);
            assert_eq!(header(CONTENT_LENGTH), Some((r.end - r.start).to_string()));
            assert_eq!(
                header(CONTENT_RANGE),
                Some(format!("bytes {}-{}/{len}", r.start, r.end - 1))
            );
        }
        (Expect::Ranges(want), RangeType::Multi(m)) => {
            assert_eq!(served, want, "{text:?} on {len} bytes");
            assert!(m.ranges.len() >= 2);
            assert_eq!(resp.status, 206);
            assert_eq!(
                header(CONTENT_TYPE),
                Some(format!("multipart/byteranges; boundary={}", m.boundary))
            );
            let total: usize = m.ranges.iter().map(|r| r.end - r.start).sum();
            let declared: usize = header(CONTENT_LENGTH).unwrap().parse().unwrap();
            assert!(
                declared > total,
                "multipart Content-Length {declared} < {total}"
            );
        }
        (expected, got) => panic!(
            "{text:?} (If-Range {if_range_value:?}) on {len} bytes, {method} {status}: planned \
             {planned:?}, expected {expected:?}, served {got:?}"
        ),
    }
    for r in &served {
        assert!(
            r.start < r.end && r.end <= len,
            "range {r:?} of a {len}-byte body"
        );
    }
});

#[derive(Debug)]
enum Expect {
    Whole,
    Unsatisfiable,
    Ranges(Vec<Range<usize>>),
}

/// A copy of `src/proxy/ranges.rs`'s `filter` (private there).
fn proxy_filter(req: &RequestHeader, resp: &mut ResponseHeader) -> RangeType {
    let Some(field) = req.headers.get(RANGE) else {
        return range_header_filter(req, resp, MAX_RANGES);
    };
    let length = resp
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let (Some(length), StatusCode::OK) = (length, resp.status) else {
        return range_header_filter(req, resp, MAX_RANGES);
    };
    let holds = req.headers.get(IF_RANGE).is_none_or(|if_range| {
        let value = |name| resp.headers.get(name).and_then(|v| v.to_str().ok());
        let current = Validators {
            etag: value(ETAG),
            last_modified: value(LAST_MODIFIED),
        };
        std::str::from_utf8(if_range.as_bytes()).is_ok_and(|v| if_range_matches(v, &current))
    });
    let planned = if holds {
        plan(field.as_bytes(), length)
    } else {
        RangePlan::Whole
    };
    let mut decided = req.clone();
    decided.remove_header(&IF_RANGE);
    match planned {
        RangePlan::Whole => {
            decided.remove_header(&RANGE);
        }
        RangePlan::Unsatisfiable => {
            if decided
                .insert_header(RANGE, format!("bytes={length}-"))
                .is_err()
            {
                decided.remove_header(&RANGE);
            }
        }
        RangePlan::Parts(parts) => {
            if decided.insert_header(RANGE, field_of(&parts)).is_err() {
                decided.remove_header(&RANGE);
            }
        }
    }
    range_header_filter(&decided, resp, MAX_RANGES)
}

/// RFC 9110 §14.1.2, written apart from `plan`: `bytes` (case-insensitive) `=` then
/// 1#( first-pos "-" [ last-pos ] / "-" suffix-length ) with OWS (SP, HTAB) around list
/// elements, empty elements skipped (§5.6.1.2), positions of ASCII digits. Anything else, or
/// `last-pos < first-pos` (§14.1.1), is an invalid field: the whole representation. A
/// satisfiable spec (`first-pos < len`, or a non-zero suffix of a non-empty body) is clamped
/// to the body; none satisfiable is a 416.
fn reference(value: &[u8], len: u64) -> RangePlan {
    const OWS: [char; 2] = [' ', '\t'];
    let Ok(text) = std::str::from_utf8(value) else {
        return RangePlan::Whole;
    };
    let Some((unit, set)) = text.trim_matches(OWS).split_once('=') else {
        return RangePlan::Whole;
    };
    if !unit.eq_ignore_ascii_case("bytes") {
        return RangePlan::Whole;
    }
    let number = |s: &str| -> Option<u128> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(s.parse::<u128>().unwrap_or(u128::MAX))
    };
    let len = u128::from(len);
    let mut parts = Vec::new();
    let mut specs = 0;
    for spec in set.split(',').map(|s| s.trim_matches(OWS)) {
        if spec.is_empty() {
            continue;
        }
        specs += 1;
        let Some((first, last)) = spec.split_once('-') else {
            return RangePlan::Whole;
        };
        let range = if first.is_empty() {
            let Some(suffix) = number(last) else {
                return RangePlan::Whole;
            };
            (suffix > 0 && len > 0).then(|| (len - suffix.min(len), len - 1))
        } else {
            // Ordered as written (u128 saturates too): without leading zeros, the longer run
            // of digits is the larger number.
            let written = |s: &str| {
                let s = s.trim_start_matches('0');
                (s.len(), s.to_string())
            };
            let (Some(first_value), last_value) = (number(first), number(last)) else {
                return RangePlan::Whole;
            };
            let last = match (last.is_empty(), last_value) {
                (true, _) => u128::MAX,
                (false, Some(value)) if written(last) >= written(first) => value,
                (false, _) => return RangePlan::Whole,
            };
            let first = first_value;
            (first < len).then(|| (first, last.min(len - 1)))
        };
        parts.extend(range.map(|(a, b)| (a as u64, b as u64)));
    }
    match (specs, parts.is_empty()) {
        (0, _) => RangePlan::Whole,
        (_, true) => RangePlan::Unsatisfiable,
        (_, false) => RangePlan::Parts(parts),
    }
}
