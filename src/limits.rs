//! What a client may send before the proxy refuses it: the request line, the header block and
//! the body, each bounded (`[limits]` in the conf file).
//!
//! Pingora's HTTP/1 parser already enforces hard ceilings (1 MiB of head, 256 header fields)
//! and answers 400 beyond them; these limits sit below those ceilings and answer with the
//! statuses clients and intermediaries understand: 414, 431 and 413. The checks are pure and
//! run once the head is parsed, before anything is sent upstream.

use http::{HeaderMap, Method, Version};

pub(crate) use crate::config::policy::LimitsPolicy as Limits;

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    RequestLineTooLong { len: u64, max: u64 },
    HeadersTooLarge { len: u64, max: u64 },
    TooManyHeaders { count: usize, max: usize },
    BodyTooLarge { len: u64, max: u64 },
}

impl Violation {
    pub(crate) fn status(self) -> u16 {
        match self {
            Violation::RequestLineTooLong { .. } => 414,
            Violation::HeadersTooLarge { .. } | Violation::TooManyHeaders { .. } => 431,
            Violation::BodyTooLarge { .. } => 413,
        }
    }

    /// A stable label for logs and metrics.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Violation::RequestLineTooLong { .. } => "request_line_too_long",
            Violation::HeadersTooLarge { .. } => "headers_too_large",
            Violation::TooManyHeaders { .. } => "too_many_headers",
            Violation::BodyTooLarge { .. } => "body_too_large",
        }
    }

    /// The response body: the status line and which limit, so a developer hitting it knows
    /// which knob to turn.
    pub(crate) fn message(self) -> String {
        match self {
            Violation::RequestLineTooLong { len, max } => format!(
                "414 URI Too Long: the request line is {len} bytes; the limit is {max} (limits.max_request_line)\n"
            ),
            Violation::HeadersTooLarge { len, max } => format!(
                "431 Request Header Fields Too Large: the header block is {len} bytes; the limit is {max} (limits.max_header_bytes)\n"
            ),
            Violation::TooManyHeaders { count, max } => format!(
                "431 Request Header Fields Too Large: {count} header fields; the limit is {max} (limits.max_headers)\n"
            ),
            Violation::BodyTooLarge { len, max } => format!(
                "413 Content Too Large: the request body is at least {len} bytes; the limit is {max} (limits.max_body)\n"
            ),
        }
    }
}

/// Checks a parsed request head against the limits. `target` is the request target as sent
/// (Pingora keeps the raw bytes); the line length counts the two spaces and the version.
pub(crate) fn check_head(
    limits: &Limits,
    method: &Method,
    target: &[u8],
    version: Version,
    headers: &HeaderMap,
) -> Result<(), Violation> {
    let version_len = if version == Version::HTTP_2 { 0 } else { 8 };
    let line = (method.as_str().len() + 1 + target.len() + 1 + version_len) as u64;
    if line > limits.max_request_line {
        return Err(Violation::RequestLineTooLong {
            len: line,
            max: limits.max_request_line,
        });
    }
    let count = headers.len();
    if count > limits.max_headers {
        return Err(Violation::TooManyHeaders {
            count,
            max: limits.max_headers,
        });
    }
    // Each field line is "name: value\r\n"; the request line ends with "\r\n" too.
    let fields: u64 = headers
        .iter()
        .map(|(name, value)| (name.as_str().len() + 2 + value.len() + 2) as u64)
        .sum();
    let head = line + 2 + fields;
    if head > limits.max_header_bytes {
        return Err(Violation::HeadersTooLarge {
            len: head,
            max: limits.max_header_bytes,
        });
    }
    Ok(())
}

/// Checks a declared `Content-Length` before any of the body is read.
pub(crate) fn check_declared_body(
    limits: &Limits,
    content_length: Option<u64>,
) -> Result<(), Violation> {
    match (limits.max_body, content_length) {
        (Some(max), Some(len)) if len > max => Err(Violation::BodyTooLarge { len, max }),
        _ => Ok(()),
    }
}

/// Counts body bytes as they stream in; refuses once the total passes the limit. For chunked
/// bodies, whose size is known only at the end.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct BodyMeter {
    seen: u64,
}

impl BodyMeter {
    pub(crate) fn add(&mut self, limits: &Limits, chunk_len: usize) -> Result<(), Violation> {
        self.seen = self.seen.saturating_add(chunk_len as u64);
        match limits.max_body {
            Some(max) if self.seen > max => Err(Violation::BodyTooLarge {
                len: self.seen,
                max,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn small() -> Limits {
        Limits {
            max_request_line: 64,
            max_header_bytes: 256,
            max_headers: 4,
            max_body: Some(10),
            ..Limits::default()
        }
    }

    fn headers(n: usize, value_len: usize) -> HeaderMap {
        let mut map = HeaderMap::new();
        for i in 0..n {
            let name = http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap();
            map.insert(name, HeaderValue::from_str(&"v".repeat(value_len)).unwrap());
        }
        map
    }

    #[test]
    fn request_line_counts_method_target_and_version() {
        let limits = small();
        // "GET " + target + " HTTP/1.1" = 4 + len + 9
        let fits = vec![b'a'; 64 - 13];
        assert_eq!(
            check_head(
                &limits,
                &Method::GET,
                &fits,
                Version::HTTP_11,
                &headers(0, 0)
            ),
            Ok(())
        );
        let over = vec![b'a'; 64 - 12];
        assert_eq!(
            check_head(
                &limits,
                &Method::GET,
                &over,
                Version::HTTP_11,
                &headers(0, 0)
            ),
            Err(Violation::RequestLineTooLong { len: 65, max: 64 })
        );
        assert_eq!(
            check_head(
                &limits,
                &Method::GET,
                &over,
                Version::HTTP_11,
                &headers(0, 0)
            )
            .unwrap_err()
            .status(),
            414
        );
    }

    #[test]
    fn header_count_and_bytes_are_bounded() {
        let limits = small();
        assert!(check_head(
            &limits,
            &Method::GET,
            b"/",
            Version::HTTP_11,
            &headers(4, 1)
        )
        .is_ok());
        let many = check_head(
            &limits,
            &Method::GET,
            b"/",
            Version::HTTP_11,
            &headers(5, 1),
        );
        assert_eq!(many, Err(Violation::TooManyHeaders { count: 5, max: 4 }));
        // line "GET / HTTP/1.1\r\n" = 16; field "x-h0: " + 232 + "\r\n" = 240: 256 fits.
        assert!(check_head(
            &limits,
            &Method::GET,
            b"/",
            Version::HTTP_11,
            &headers(1, 232)
        )
        .is_ok());
        let large = check_head(
            &limits,
            &Method::GET,
            b"/",
            Version::HTTP_11,
            &headers(1, 233),
        );
        assert_eq!(
            large,
            Err(Violation::HeadersTooLarge { len: 257, max: 256 })
        );
        assert_eq!(large.unwrap_err().status(), 431);
    }

    #[test]
    fn declared_and_streamed_bodies_are_bounded() {
        let limits = small();
        assert!(check_declared_body(&limits, Some(10)).is_ok());
        assert!(check_declared_body(&limits, None).is_ok());
        assert_eq!(
            check_declared_body(&limits, Some(11)).map_err(Violation::status),
            Err(413)
        );
        let mut meter = BodyMeter::default();
        assert!(meter.add(&limits, 6).is_ok());
        assert!(meter.add(&limits, 4).is_ok());
        assert_eq!(
            meter.add(&limits, 1),
            Err(Violation::BodyTooLarge { len: 11, max: 10 })
        );
        let unlimited = Limits {
            max_body: None,
            ..small()
        };
        assert!(check_declared_body(&unlimited, Some(u64::MAX)).is_ok());
        assert!(BodyMeter::default().add(&unlimited, usize::MAX).is_ok());
    }

    #[test]
    fn every_violation_names_its_knob() {
        let all = [
            Violation::RequestLineTooLong { len: 2, max: 1 },
            Violation::HeadersTooLarge { len: 2, max: 1 },
            Violation::TooManyHeaders { count: 2, max: 1 },
            Violation::BodyTooLarge { len: 2, max: 1 },
        ];
        for v in all {
            let msg = v.message();
            assert!(msg.starts_with(&v.status().to_string()), "{msg}");
            assert!(msg.contains("limits."), "{msg}");
        }
    }
}
