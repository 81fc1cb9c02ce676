//! Conditional requests (RFC 9110 §13) and validators (§8.8): whether a request's
//! preconditions let it proceed or turn it into a 304 or a 412 (`evaluate`), whether a
//! `Range` may be honoured (`if_range_matches`), and the strong ETag Outrider generates for a
//! response that has none (`BodyHasher`, made weak by `weaken` when the body is transformed).
//!
//! Pure: header values in, decisions out. No Pingora, no I/O, no clock; `proxy/` wires it in.
//! The values come from clients and origins, so parsing is total: malformed input is ignored
//! as described below, never an error and never a panic, and nothing is allocated except the
//! strings `BodyHasher::finish` and `weaken` return.
//!
//! Choices the RFC leaves open, or that a proxy has to make, and what this module does:
//! - Preconditions are only evaluated when the unconditional response is 2xx (§13.2.1): any
//!   other status means there is no selected representation, so `Proceed`. In particular `*`
//!   can always match, since a 2xx means a current representation exists.
//! - `*` is the whole field in the grammar (`"*" / #entity-tag`); here it may also be a
//!   member of a list, and then it wins: a list is a disjunction and `"a", *` says no more
//!   than `*`. That is what a client sending `*` and `"a"` on two lines ends up with once the
//!   caller joins them.
//! - A malformed member of an `If-Match` / `If-None-Match` list (`abc`, `w/"a"`, `"a b"`, an
//!   unterminated `"a`) is skipped. A comma may sit inside a tag, so where a broken member
//!   ends is a guess: at the first comma after the point where it stopped parsing. Skipping
//!   only removes candidates, so a broken member can make a match fail, never succeed.
//! - A list with no well-formed member and no `*` (`If-Match: abc`, an empty value) is
//!   ignored as if absent, like an invalid date: `If-Unmodified-Since` or `If-Modified-Since`
//!   then applies. For `If-Match` this fails open: an unquoted `If-Match: v1` (a common client
//!   bug) lets the write proceed instead of answering 412, just as an invalid
//!   `If-Unmodified-Since` does by the RFC's own rule.
//! - `W/` is case-sensitive (`%s"W/"`) and opaque-tags compare byte for byte, so `w/"a"` is
//!   malformed and `"a"` ≠ `"A"`. obs-text (any non-ASCII character) is accepted inside tags.
//!   The caller passes `&str`: `http::HeaderValue::to_str` refuses obs-text, so a caller that
//!   wants those tags converts with `std::str::from_utf8(value.as_bytes())`.
//! - A current `ETag` that is malformed (or a list of several) counts as no entity-tag at all:
//!   `If-Match` with tags fails, `If-None-Match` with tags does not match (and still disables
//!   `If-Modified-Since`, being present).
//! - An invalid date in `If-Modified-Since` / `If-Unmodified-Since` (a list of dates included)
//!   ignores that field (§13.1.3, §13.1.4); an invalid or missing `Last-Modified` means no
//!   modification date, which ignores both. Dates compare at one-second resolution, the only
//!   one HTTP-dates have.
//! - HTTP-dates are parsed by `httpdate`, which accepts all three formats of §5.6.7 but also
//!   rejects some grammatical ones: years before 1970, a leap second (`:60`), and a day name
//!   that does not match the date. Those are treated as invalid. Names are case-sensitive, as
//!   the grammar says, and whitespace around the value is trimmed. An RFC 850 two-digit year
//!   maps 00–69 to 20xx and 70–99 to 19xx; §5.6.7's sliding 50-year rule would need the
//!   clock, and the fixed pivot only differs for dates after 2069 in an obsolete format.
//! - No clock, so a date in the future is taken at face value: `If-Modified-Since` a year
//!   ahead gets a 304 (RFC 9110 no longer calls such dates invalid).
//! - `If-Range` with a date matches on exact equality with `Last-Modified` without asking
//!   whether that date is a strong validator; see [`if_range_matches`] for why.

mod entity_tag;
mod hash;
mod preconditions;
pub mod range;

pub use entity_tag::weaken;
pub use hash::BodyHasher;
pub use preconditions::{
    evaluate, if_range_matches, parse_http_date, Outcome, Preconditions, Validators,
};

#[cfg(test)]
mod tests;
