//! `Range` on responses the proxy serves from a whole body (cache hits, held bodies): the
//! strict reading of `conditional::range` and a strong `If-Range` comparison decide, then
//! Pingora's filter serves the normalised set (it builds the 206, the multipart body, the 416).

use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{range_header_filter, RangeType};

use crate::conditional::range::{self, RangePlan};
use crate::conditional::{if_range_matches, Validators};

/// As many parts as Pingora's default allows in one multipart answer.
const MAX_RANGES: Option<usize> = Some(200);

/// Decides `resp`'s range answer for `req` and rewrites `resp` to it (206, 416, or the 200
/// with `Accept-Ranges`).
pub(super) fn filter(req: &RequestHeader, resp: &mut ResponseHeader) -> RangeType {
    let Some(field) = req.headers.get(header::RANGE) else {
        return range_header_filter(req, resp, MAX_RANGES);
    };
    let length = resp
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let (Some(length), http::StatusCode::OK) = (length, resp.status) else {
        return range_header_filter(req, resp, MAX_RANGES);
    };
    let plan = if if_range_holds(req, resp) {
        range::plan(field.as_bytes(), length)
    } else {
        RangePlan::Whole
    };
    // Pingora sees only what was decided: the normalised set, and no `If-Range` (already
    // compared, strongly; its own comparison is byte for byte).
    let mut decided = req.clone();
    decided.remove_header(&header::IF_RANGE);
    match plan {
        RangePlan::Whole => {
            decided.remove_header(&header::RANGE);
        }
        // A first position at the end is unsatisfiable for Pingora too: its 416.
        RangePlan::Unsatisfiable => {
            if decided
                .insert_header(header::RANGE, format!("bytes={length}-"))
                .is_err()
            {
                decided.remove_header(&header::RANGE);
            }
        }
        RangePlan::Parts(parts) => {
            if decided
                .insert_header(header::RANGE, range::field_of(&parts))
                .is_err()
            {
                decided.remove_header(&header::RANGE);
            }
        }
    }
    range_header_filter(&decided, resp, MAX_RANGES)
}

/// No `If-Range`, or one that matches the response strongly (RFC 9110 §13.1.5).
fn if_range_holds(req: &RequestHeader, resp: &ResponseHeader) -> bool {
    let Some(if_range) = req.headers.get(header::IF_RANGE) else {
        return true;
    };
    let value = |name| resp.headers.get(name).and_then(|v| v.to_str().ok());
    let current = Validators {
        etag: value(header::ETAG),
        last_modified: value(header::LAST_MODIFIED),
    };
    std::str::from_utf8(if_range.as_bytes()).is_ok_and(|v| if_range_matches(v, &current))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ten_bytes() -> ResponseHeader {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("content-length", "10").unwrap();
        resp.insert_header("etag", "\"v1\"").unwrap();
        resp
    }

    fn answer(fields: &[(&str, &str)], mut resp: ResponseHeader) -> (RangeType, ResponseHeader) {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (name, value) in fields {
            req.insert_header(name.to_string(), *value).unwrap();
        }
        let kind = filter(&req, &mut resp);
        (kind, resp)
    }

    #[test]
    fn a_zero_suffix_is_416_not_an_empty_206() {
        let (kind, resp) = answer(&[("range", "bytes=-0")], ten_bytes());
        assert!(matches!(kind, RangeType::Invalid), "{kind:?}");
        assert_eq!(resp.status, 416);
        assert_eq!(resp.headers["content-range"], "bytes */10");
    }

    #[test]
    fn an_unreadable_position_is_ignored_not_a_suffix() {
        let (kind, resp) = answer(&[("range", "bytes=99999999999999999999-5")], ten_bytes());
        assert!(matches!(kind, RangeType::None), "{kind:?}");
        assert_eq!(resp.status, 200);
    }

    #[test]
    fn a_satisfiable_range_is_served_and_a_weak_if_range_is_not() {
        let (kind, resp) = answer(&[("range", "bytes=2-3")], ten_bytes());
        assert!(
            matches!(kind, RangeType::Single(ref r) if *r == (2..4)),
            "{kind:?}"
        );
        assert_eq!(resp.headers["content-range"], "bytes 2-3/10");
        let (kind, _) = answer(
            &[("range", "bytes=2-3"), ("if-range", "\"v1\"")],
            ten_bytes(),
        );
        assert!(matches!(kind, RangeType::Single(_)), "{kind:?}");
        let mut weak = ten_bytes();
        weak.insert_header("etag", "W/\"v1\"").unwrap();
        let (kind, resp) = answer(&[("range", "bytes=2-3"), ("if-range", "W/\"v1\"")], weak);
        assert!(matches!(kind, RangeType::None), "{kind:?}");
        assert_eq!(resp.status, 200);
    }

    #[test]
    fn any_suffix_on_an_empty_body_is_416() {
        let mut empty = ResponseHeader::build(200, None).unwrap();
        empty.insert_header("content-length", "0").unwrap();
        let (kind, resp) = answer(&[("range", "bytes=-5")], empty);
        assert!(matches!(kind, RangeType::Invalid), "{kind:?}");
        assert_eq!(resp.headers["content-range"], "bytes */0");
    }
}
