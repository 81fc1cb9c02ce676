//! Whether a response may be compressed at all, independent of what the client accepts.
//!
//! The caller combines this with [`negotiate`](super::negotiate): compress when `decide` says
//! [`Decision::Compress`] and `negotiate` names a coding.

use crate::config::policy::CompressionPolicy;

/// The parts of a response head that compression depends on, as plain values so that this
/// module needs no HTTP framework.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseFacts<'a> {
    pub status: u16,
    /// The request was `HEAD`: the response has no body to compress.
    pub is_head: bool,
    /// The `Content-Type` value, parameters and all.
    pub content_type: Option<&'a str>,
    /// The response has any `Content-Encoding` already.
    pub has_content_encoding: bool,
    /// Every `Cache-Control` field line, joined with ", " when there are several
    /// (RFC 9110 §5.3).
    pub cache_control: Option<&'a str>,
    /// The body length when known (`Content-Length`); `None` for a chunked or close-delimited
    /// body.
    pub content_length: Option<u64>,
}

/// What to do with a response's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Compress,
    Skip(SkipReason),
    /// Everything allows compression but the length is unknown. The caller buffers the body up
    /// to `policy.min_size` bytes and then calls [`decide_with_length`] with what it holds:
    /// the whole body if it ended sooner, else `min_size` (which is enough to qualify).
    Undecided,
}

/// Why a response passes through uncompressed (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The route turned compression off, or enables no algorithm.
    Disabled,
    /// 1xx, 204, 205, 304, or a response to `HEAD`: there is no body.
    NoBody,
    /// 206: a range of the representation's bytes; compressing it would change what the
    /// ranges refer to (RFC 9110 §14).
    PartialContent,
    /// The origin encoded it already; we never stack codings.
    AlreadyEncoded,
    /// `Cache-Control: no-transform` forbids intermediaries from changing the content
    /// (RFC 9111 §5.2.2.6).
    NoTransform,
    /// The media type is missing or not in `content_types`.
    MediaType,
    /// Shorter than `min_size`: the coding overhead would outweigh the saving.
    TooSmall,
}

/// Decide for a response head. Returns [`Decision::Undecided`] only when the length is the one
/// missing fact; see there.
pub fn decide(resp: &ResponseFacts, policy: &CompressionPolicy) -> Decision {
    if let Some(reason) = skip_reason(resp, policy) {
        return Decision::Skip(reason);
    }
    match resp.content_length {
        Some(length) => size_decision(length, policy),
        None => Decision::Undecided,
    }
}

/// [`decide`] with a body length the caller learned by buffering (see
/// [`Decision::Undecided`]); never answers `Undecided`.
pub fn decide_with_length(
    resp: &ResponseFacts,
    policy: &CompressionPolicy,
    length: u64,
) -> Decision {
    let known = ResponseFacts {
        content_length: Some(length),
        ..*resp
    };
    decide(&known, policy)
}

/// Whether the response needs `Vary: Accept-Encoding`: the route could send it compressed to
/// some client, whatever this client accepts (RFC 9110 §12.5.5). Status, `HEAD` and size are
/// deliberately not consulted: a 304, a `HEAD` or a short body answers for the same
/// representation as a compressible 200 would, and caches must key them alike.
pub fn could_compress(resp: &ResponseFacts, policy: &CompressionPolicy) -> bool {
    route_enabled(policy)
        && !resp.has_content_encoding
        && !has_no_transform(resp.cache_control)
        && media_type_matches(resp.content_type, &policy.content_types)
}

fn skip_reason(resp: &ResponseFacts, policy: &CompressionPolicy) -> Option<SkipReason> {
    let reason = if !route_enabled(policy) {
        SkipReason::Disabled
    } else if resp.is_head || !status_has_body(resp.status) {
        SkipReason::NoBody
    } else if resp.status == 206 {
        SkipReason::PartialContent
    } else if resp.has_content_encoding {
        SkipReason::AlreadyEncoded
    } else if has_no_transform(resp.cache_control) {
        SkipReason::NoTransform
    } else if !media_type_matches(resp.content_type, &policy.content_types) {
        SkipReason::MediaType
    } else {
        return None;
    };
    Some(reason)
}

fn route_enabled(policy: &CompressionPolicy) -> bool {
    policy.enabled && !policy.algorithms.is_empty()
}

/// An empty body is never worth a coding, even with `min_size = 0`.
fn size_decision(length: u64, policy: &CompressionPolicy) -> Decision {
    if length == 0 || length < policy.min_size {
        Decision::Skip(SkipReason::TooSmall)
    } else {
        Decision::Compress
    }
}

/// 1xx, 204 and 304 never have content (RFC 9110 §6.4.1); a server must not send any with 205
/// either (§15.3.6). Anything below 200 is treated as informational.
fn status_has_body(status: u16) -> bool {
    status >= 200 && !matches!(status, 204 | 205 | 304)
}

fn has_no_transform(cache_control: Option<&str>) -> bool {
    has_directive(cache_control, "no-transform")
}

/// Whether `cache_control` has directive `name` as a member of its own (names are
/// case-insensitive, RFC 9111 §5.2), not as part of another directive's name or argument.
/// Quoted arguments are not parsed, so `x="a, no-transform"` counts; that errs towards the
/// directive's caution.
pub fn has_directive(cache_control: Option<&str>, name: &str) -> bool {
    cache_control.is_some_and(|value| {
        value.split(',').any(|directive| {
            let directive_name = directive.split('=').next().unwrap_or("");
            directive_name
                .trim_matches([' ', '\t'])
                .eq_ignore_ascii_case(name)
        })
    })
}

/// Whether `content_type` (parameters ignored) matches one of `patterns`: `type/subtype`,
/// `type/*`, `*/*`, or a structured-syntax suffix wildcard like `application/*+json`
/// (RFC 6838 §4.2.8). All comparisons are case-insensitive (RFC 9110 §8.3.1).
pub fn media_type_matches(content_type: Option<&str>, patterns: &[String]) -> bool {
    let Some((kind, subtype)) = content_type.and_then(parse_media_type) else {
        return false;
    };
    patterns
        .iter()
        .filter_map(|p| p.split_once('/'))
        .any(|(p_kind, p_subtype)| {
            part_matches(p_kind, kind) && subtype_matches(p_subtype, subtype)
        })
}

/// `type "/" subtype` before any `;` parameters, both non-empty.
fn parse_media_type(content_type: &str) -> Option<(&str, &str)> {
    let essence = content_type.split(';').next()?;
    let (kind, subtype) = essence.trim_matches([' ', '\t']).split_once('/')?;
    let valid = |part: &str| !part.is_empty() && !part.contains(['/', ' ', '\t']);
    (valid(kind) && valid(subtype)).then_some((kind, subtype))
}

fn part_matches(pattern: &str, actual: &str) -> bool {
    pattern == "*" || pattern.eq_ignore_ascii_case(actual)
}

/// `*+json` matches `ld+json` and `vnd.api+json`, but not bare `json` (that is a distinct type
/// a config lists on its own).
fn subtype_matches(pattern: &str, actual: &str) -> bool {
    match pattern.strip_prefix("*+") {
        Some(suffix) => actual
            .rsplit_once('+')
            .is_some_and(|(head, tail)| !head.is_empty() && tail.eq_ignore_ascii_case(suffix)),
        None => part_matches(pattern, actual),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::policy::{Coding, DEFAULT_COMPRESSIBLE_TYPES};

    fn policy() -> CompressionPolicy {
        CompressionPolicy {
            enabled: true,
            algorithms: vec![Coding::Zstd, Coding::Br, Coding::Gzip],
            min_size: 1024,
            gzip_level: 6,
            brotli_level: 4,
            zstd_level: 3,
            content_types: DEFAULT_COMPRESSIBLE_TYPES.map(String::from).to_vec(),
            upstream_identity: true,
        }
    }

    /// A response every check lets through.
    fn compressible() -> ResponseFacts<'static> {
        ResponseFacts {
            status: 200,
            is_head: false,
            content_type: Some("text/html; charset=utf-8"),
            has_content_encoding: false,
            cache_control: None,
            content_length: Some(4096),
        }
    }

    fn skip(reason: SkipReason) -> Decision {
        Decision::Skip(reason)
    }

    #[test]
    fn compressible_response_is_compressed() {
        assert_eq!(decide(&compressible(), &policy()), Decision::Compress);
        assert!(could_compress(&compressible(), &policy()));
    }

    #[test]
    fn each_skip_condition() {
        let base = compressible();
        let rows: &[(&str, ResponseFacts, Decision)] = &[
            (
                "HEAD",
                ResponseFacts {
                    is_head: true,
                    ..base
                },
                skip(SkipReason::NoBody),
            ),
            (
                "100",
                ResponseFacts {
                    status: 100,
                    ..base
                },
                skip(SkipReason::NoBody),
            ),
            (
                "103",
                ResponseFacts {
                    status: 103,
                    ..base
                },
                skip(SkipReason::NoBody),
            ),
            (
                "204",
                ResponseFacts {
                    status: 204,
                    ..base
                },
                skip(SkipReason::NoBody),
            ),
            (
                "205",
                ResponseFacts {
                    status: 205,
                    ..base
                },
                skip(SkipReason::NoBody),
            ),
            (
                "304",
                ResponseFacts {
                    status: 304,
                    ..base
                },
                skip(SkipReason::NoBody),
            ),
            (
                "0",
                ResponseFacts { status: 0, ..base },
                skip(SkipReason::NoBody),
            ),
            (
                "206",
                ResponseFacts {
                    status: 206,
                    ..base
                },
                skip(SkipReason::PartialContent),
            ),
            (
                "encoded",
                ResponseFacts {
                    has_content_encoding: true,
                    ..base
                },
                skip(SkipReason::AlreadyEncoded),
            ),
            (
                "no-transform",
                ResponseFacts {
                    cache_control: Some("no-transform"),
                    ..base
                },
                skip(SkipReason::NoTransform),
            ),
            (
                "no content type",
                ResponseFacts {
                    content_type: None,
                    ..base
                },
                skip(SkipReason::MediaType),
            ),
            (
                "image/png",
                ResponseFacts {
                    content_type: Some("image/png"),
                    ..base
                },
                skip(SkipReason::MediaType),
            ),
            (
                "small",
                ResponseFacts {
                    content_length: Some(1023),
                    ..base
                },
                skip(SkipReason::TooSmall),
            ),
            (
                "empty",
                ResponseFacts {
                    content_length: Some(0),
                    ..base
                },
                skip(SkipReason::TooSmall),
            ),
            (
                "exactly min_size",
                ResponseFacts {
                    content_length: Some(1024),
                    ..base
                },
                Decision::Compress,
            ),
            (
                "unknown length",
                ResponseFacts {
                    content_length: None,
                    ..base
                },
                Decision::Undecided,
            ),
            (
                "201",
                ResponseFacts {
                    status: 201,
                    ..base
                },
                Decision::Compress,
            ),
            (
                "404",
                ResponseFacts {
                    status: 404,
                    ..base
                },
                Decision::Compress,
            ),
            (
                "503",
                ResponseFacts {
                    status: 503,
                    ..base
                },
                Decision::Compress,
            ),
        ];
        for (name, facts, expected) in rows {
            assert_eq!(decide(facts, &policy()), *expected, "{name}");
        }
    }

    #[test]
    fn disabled_route_skips() {
        let mut off = policy();
        off.enabled = false;
        assert_eq!(decide(&compressible(), &off), skip(SkipReason::Disabled));
        assert!(!could_compress(&compressible(), &off));
        let mut none = policy();
        none.algorithms.clear();
        assert_eq!(decide(&compressible(), &none), skip(SkipReason::Disabled));
        assert!(!could_compress(&compressible(), &none));
    }

    #[test]
    fn min_size_zero_still_skips_empty_bodies() {
        let mut p = policy();
        p.min_size = 0;
        let facts = |n| ResponseFacts {
            content_length: Some(n),
            ..compressible()
        };
        assert_eq!(decide(&facts(0), &p), skip(SkipReason::TooSmall));
        assert_eq!(decide(&facts(1), &p), Decision::Compress);
    }

    #[test]
    fn unknown_length_is_settled_by_the_buffered_length() {
        let chunked = ResponseFacts {
            content_length: None,
            ..compressible()
        };
        let p = policy();
        assert_eq!(decide(&chunked, &p), Decision::Undecided);
        assert_eq!(
            decide_with_length(&chunked, &p, 10),
            skip(SkipReason::TooSmall)
        );
        assert_eq!(decide_with_length(&chunked, &p, 1024), Decision::Compress);
        // The other checks still come first.
        let head = ResponseFacts {
            is_head: true,
            ..chunked
        };
        assert_eq!(decide(&head, &p), skip(SkipReason::NoBody));
        assert_eq!(
            decide_with_length(&head, &p, 5000),
            skip(SkipReason::NoBody)
        );
    }

    #[test]
    fn no_transform_is_a_whole_directive() {
        let rows: &[(&str, bool)] = &[
            ("no-transform", true),
            ("No-Transform", true),
            ("NO-TRANSFORM", true),
            ("public, max-age=60, no-transform", true),
            ("max-age=60,no-transform", true),
            ("  no-transform  ,public", true),
            ("\tno-transform", true),
            ("no-transform=1", true),
            ("public, max-age=60", false),
            ("no-transformation", false),
            ("x-no-transform", false),
            ("no-store", false),
            ("", false),
            ("no transform", false),
        ];
        for (value, expected) in rows {
            assert_eq!(has_no_transform(Some(value)), *expected, "{value:?}");
        }
        assert!(!has_no_transform(None));
    }

    #[test]
    fn media_type_matching() {
        let patterns = policy().content_types;
        let rows: &[(&str, bool)] = &[
            ("text/html", true),
            ("text/plain; charset=utf-8", true),
            ("TEXT/HTML", true),
            ("Text/CSS;charset=UTF-8", true),
            ("  text/css  ", true),
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/ld+json", true),
            ("application/vnd.api+json", true),
            ("application/problem+JSON", true),
            ("application/atom+xml", true),
            ("image/svg+xml", true),
            ("application/javascript", true),
            ("application/octet-stream", false),
            ("application/jsonx", false),
            ("application/+json", false),
            ("application/json+ld", false),
            ("image/svg", false),
            ("image/png", false),
            ("video/mp4", false),
            ("text", false),
            ("text/", false),
            ("/html", false),
            ("", false),
            ("text/html/extra", false),
            // Streams are compressed too: the encoders flush every chunk (see `encoder`).
            ("text/event-stream", true),
            ("Text/Event-Stream; charset=utf-8", true),
            ("texte/html", false),
            ("tëxt/html", false),
        ];
        for (content_type, expected) in rows {
            assert_eq!(
                media_type_matches(Some(content_type), &patterns),
                *expected,
                "{content_type:?}"
            );
        }
        assert!(!media_type_matches(None, &patterns));
    }

    #[test]
    fn media_type_pattern_forms() {
        let any = vec!["*/*".to_string()];
        assert!(media_type_matches(Some("image/png"), &any));
        assert!(media_type_matches(Some("text/event-stream"), &any));
        let any_json = vec!["*/*+json".to_string()];
        assert!(media_type_matches(Some("text/x+json"), &any_json));
        assert!(!media_type_matches(Some("text/json"), &any_json));
        assert!(!media_type_matches(Some("text/html"), &[]));
        // Multi-byte characters next to the suffix boundary must not panic.
        let multibyte = vec!["application/*+jsön".to_string()];
        assert!(media_type_matches(Some("application/x+JSöN"), &multibyte));
        assert!(!media_type_matches(Some("application/ö"), &multibyte));
    }

    #[test]
    fn vary_ignores_status_head_and_size() {
        let p = policy();
        let base = compressible();
        let needs_vary = [
            ResponseFacts {
                status: 304,
                content_length: None,
                ..base
            },
            ResponseFacts {
                is_head: true,
                ..base
            },
            ResponseFacts {
                status: 206,
                ..base
            },
            ResponseFacts {
                content_length: Some(10),
                ..base
            },
        ];
        for facts in &needs_vary {
            assert!(could_compress(facts, &p), "{facts:?}");
        }
        let no_vary = [
            ResponseFacts {
                content_type: Some("image/png"),
                ..base
            },
            ResponseFacts {
                content_type: None,
                ..base
            },
            ResponseFacts {
                has_content_encoding: true,
                ..base
            },
            ResponseFacts {
                cache_control: Some("no-transform"),
                ..base
            },
            ResponseFacts {
                content_type: Some("image/png"),
                ..base
            },
        ];
        for facts in &no_vary {
            assert!(!could_compress(facts, &p), "{facts:?}");
        }
    }
}
