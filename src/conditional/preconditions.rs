//! Precondition evaluation (RFC 9110 §13.2.2), `If-Range` (§13.1.5) and HTTP-dates (§5.6.7).
//!
//! See the [module documentation](super) for how malformed values are treated.

use std::time::SystemTime;

use super::entity_tag::{match_list, Comparison, EntityTag, ListMatch};

/// Result of evaluating a request's preconditions against the selected representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Every condition holds (or none applies): handle the request as if unconditional.
    Proceed,
    /// 304: the client's stored representation is current (safe methods only).
    NotModified,
    /// 412: a condition failed; the method must not be applied.
    PreconditionFailed,
}

/// The request's conditional header values; a field sent on several lines is given joined by
/// ", " (RFC 9110 §5.3; the caller does that).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Preconditions<'a> {
    pub if_match: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
    pub if_unmodified_since: Option<&'a str>,
}

/// The representation's validators as the response carries them (raw header values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Validators<'a> {
    pub etag: Option<&'a str>,
    pub last_modified: Option<&'a str>,
}

/// Evaluates `pre` against the representation `current` describes, in the order of RFC 9110
/// §13.2.2 (If-Range, step 5, is [`if_range_matches`]).
///
/// `safe_read` is true for GET and HEAD. `status` is the status the response would have
/// without the conditions: anything but 2xx means there is no selected representation to
/// compare with, and the preconditions are ignored (§13.2.1). Methods that select no
/// representation at all (CONNECT, OPTIONS, TRACE) must not be evaluated (§13.2.1); that is
/// the caller's filter.
pub fn evaluate(
    pre: &Preconditions,
    safe_read: bool,
    status: u16,
    current: &Validators,
) -> Outcome {
    if !(200..300).contains(&status) {
        return Outcome::Proceed;
    }
    // Parsed only when a field needs them: most requests carry no precondition at all.
    let etag = || current.etag.and_then(EntityTag::parse);
    let last_modified = || current.last_modified.and_then(parse_http_date);

    // Steps 1 and 2: If-Match, or failing that If-Unmodified-Since. §13.1.1 lets a server
    // answer 2xx instead of 412 when it can tell the change was already made; a proxy cannot.
    match list(pre.if_match, etag, Comparison::Strong) {
        ListMatch::NotMatched => return Outcome::PreconditionFailed,
        ListMatch::Matched => {}
        ListMatch::Ignored => {
            let since = pre.if_unmodified_since.and_then(parse_http_date);
            if since.is_some_and(|since| last_modified().is_some_and(|m| m > since)) {
                return Outcome::PreconditionFailed;
            }
        }
    }

    // Steps 3 and 4: If-None-Match, or failing that If-Modified-Since (GET and HEAD only).
    match list(pre.if_none_match, etag, Comparison::Weak) {
        ListMatch::Matched if safe_read => Outcome::NotModified,
        ListMatch::Matched => Outcome::PreconditionFailed,
        ListMatch::NotMatched => Outcome::Proceed,
        ListMatch::Ignored => {
            let since = pre
                .if_modified_since
                .filter(|_| safe_read)
                .and_then(parse_http_date);
            if since.is_some_and(|since| last_modified().is_some_and(|m| m <= since)) {
                Outcome::NotModified
            } else {
                Outcome::Proceed
            }
        }
    }
}

/// If-Range (RFC 9110 §13.1.5): true when the `Range` may be honoured, false when the full
/// representation must be sent instead (including when `if_range` is malformed).
///
/// An entity-tag needs a strong match with the current `ETag` (so a weak one never matches).
/// A date needs a valid `Last-Modified` denoting exactly the same instant (the two may be
/// written in different HTTP-date formats).
///
/// Strictly, a date also has to be a strong validator (§8.8.2.2): for a cache, that means the
/// stored response's `Date` is at least one second after its `Last-Modified`. This function
/// does not ask for `Date` and accepts the exact match, as nginx does: the risk is a
/// representation that changed twice within one second, handing the client a range of the
/// second version to splice onto bytes of the first. Clients prefer the ETag when there is
/// one, and Outrider can generate a strong ETag for any response that lacks one.
pub fn if_range_matches(if_range: &str, current: &Validators) -> bool {
    let value = if_range.trim_matches([' ', '\t']);
    // An HTTP-date starts with a day name, so a leading quote or `W/` means an entity-tag,
    // and a malformed one must not be retried as a date.
    if value.starts_with('"') || value.starts_with("W/") {
        let current = current.etag.and_then(EntityTag::parse);
        return match (EntityTag::parse(value), current) {
            (Some(asked), Some(current)) => asked.strong_eq(current),
            _ => false,
        };
    }
    let modified = current.last_modified.and_then(parse_http_date);
    match (parse_http_date(value), modified) {
        (Some(asked), Some(modified)) => asked == modified,
        _ => false,
    }
}

/// An HTTP-date (RFC 9110 §5.6.7) in any of its three formats: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) or asctime
/// (`Sun Nov  6 08:49:37 1994`). `None` for anything else; see the module documentation for
/// the valid dates that are rejected too.
pub fn parse_http_date(value: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(value).ok()
}

/// A list field compared with the current tag; an absent field is [`ListMatch::Ignored`] like
/// one with no well-formed member.
fn list<'a>(
    value: Option<&str>,
    current: impl FnOnce() -> Option<EntityTag<'a>>,
    comparison: Comparison,
) -> ListMatch {
    value.map_or(ListMatch::Ignored, |value| {
        match_list(value, current(), comparison)
    })
}

// === impl Outcome ===

impl Outcome {
    /// The status to answer with instead of the unconditional one; `None` for
    /// [`Outcome::Proceed`].
    #[cfg(any(test, fuzzing))]
    pub(crate) fn status(self) -> Option<u16> {
        match self {
            Outcome::Proceed => None,
            Outcome::NotModified => Some(304),
            Outcome::PreconditionFailed => Some(412),
        }
    }
}

// === impl Preconditions ===

impl Preconditions<'_> {
    /// No conditional field at all: the common case, which needs no validator.
    #[cfg(any(test, fuzzing))]
    pub fn is_empty(&self) -> bool {
        let Self {
            if_match,
            if_none_match,
            if_modified_since,
            if_unmodified_since,
        } = self;
        if_match.is_none()
            && if_none_match.is_none()
            && if_modified_since.is_none()
            && if_unmodified_since.is_none()
    }
}
