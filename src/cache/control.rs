//! `Cache-Control` (RFC 9111 §5.2, plus RFC 5861's `stale-while-revalidate` and
//! `stale-if-error`) and targeted cache-control fields such as `CDN-Cache-Control` (RFC 9213),
//! both parsed into one typed [`CacheControl`].
//!
//! Why a parser of our own: the directives decide whether a user's response may be replayed to
//! other users, so every malformed shape needs a decision that errs towards not caching, and
//! those decisions are listed here rather than left to a generic list parser. The values come
//! from clients and origins, so parsing is total: bytes in, a value out, never an error and
//! never a panic. Values are read with `HeaderValue::as_bytes`, so obs-text is just bytes.
//!
//! Choices the RFC leaves open, or that a shared cache has to make, and what this module does:
//! - All field lines are one list (RFC 9110 §5.3): `Cache-Control: public` and
//!   `Cache-Control: max-age=60` on two lines mean `public, max-age=60`. A quoted string does
//!   not span lines: an unterminated `"` ends with its line and makes its member malformed.
//! - Directive names are case-insensitive (§5.2); unknown directives are ignored (§5.2.3);
//!   empty members and whitespace around `,` and `=` are tolerated (`, ,public ,`).
//! - An argument is a token or a quoted-string, and a quoted delta-seconds (`max-age="60"`) is
//!   accepted, as §5.2 asks of recipients. Anything else after `=` (`max-age=6 0`,
//!   `max-age="60"x`, `max-age=`) is a malformed argument.
//! - delta-seconds (§1.2.2) is a run of ASCII digits; a value above 2^31 saturates to
//!   2147483648 ([`MAX_DELTA_SECONDS`]), so `max-age` is never more than about 68 years.
//! - An invalid `max-age` or `s-maxage` (`abc`, `-1`, empty, absent, malformed) counts as 0:
//!   the response is stale, per §4.2.1's advice for invalid freshness information.
//! - The same freshness directive twice with different values (`max-age=10, max-age=20`):
//!   §4.2.1 lets a cache use the first or consider the response stale; this module chooses
//!   stale (0), the conservative answer for a shared cache. The same value twice is fine.
//! - An invalid `stale-while-revalidate` / `stale-if-error` is ignored, as if absent (so the
//!   route's default may apply); twice with different values keeps the smaller.
//! - Request directives follow the same idea, choosing the answer that serves less stale
//!   content: an invalid `min-fresh` or `max-stale=N` is ignored; duplicates keep the larger
//!   `min-fresh` and the smaller `max-stale` (where `max-stale` without a value is "any"). The
//!   request's `max-age` shares the response's rule above (invalid or conflicting → 0, which
//!   asks for a validated response).
//! - `no-cache` and `private` take an optional field-name list (`private="Set-Cookie, X-A"`,
//!   or the token form `private=Set-Cookie`). A list that is empty or holds anything that is
//!   not a field name makes the directive unqualified: not knowing what the origin meant to
//!   protect, the whole response is protected. If both forms appear, the unqualified one wins
//!   (the field list is still kept, lowercased and without duplicates).
//! - Directives that take no argument are set whatever their argument: `no-store=1` is
//!   `no-store`. Permissive ones (`public`) are therefore also set by a junk argument; the
//!   permissions `public` grants are narrow (see `freshness`).
//!
//! Targeted fields (RFC 9213 §2) are Structured Fields Dictionaries (RFC 8941 §3.2) and use
//! that stricter grammar instead:
//! - The first name in the target list whose field is present, parses as a Dictionary and is
//!   non-empty wins; a field that fails to parse, or is empty, is ignored as if absent (§2.1).
//!   The validator implements all of RFC 8941 (Integer, Decimal, String, Token, Byte
//!   Sequence, Boolean, Inner List, Parameters), not RFC 9651's Date or Display String, so a
//!   field using those is invalid. Keys are lowercase (`Max-Age=5` invalid), and lines are
//!   joined with `, ` before parsing, as RFC 8941 §4.2 requires.
//! - A key given twice: the last value wins (RFC 8941 §4.2.2), never "conflict → stale".
//! - Values map by type (RFC 9213 §2.1): a bare key (Boolean true) is the directive without
//!   argument; `?0` is the directive absent; an Integer is delta-seconds (negative → invalid);
//!   a String is a field-name list. Any other type, and a quoted `max-age="60"`, violates the
//!   directive's type, which RFC 9213 says not to consume: it is an invalid argument and gets
//!   the rules above (`max-age=1.5` → 0, `private=foo` → unqualified). Parameters are ignored.

use std::borrow::Cow;
use std::time::Duration;

use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderName, HeaderValue};

/// 2^31: the largest delta-seconds kept; anything larger saturates to it (RFC 9111 §1.2.2).
pub(crate) const MAX_DELTA_SECONDS: u64 = 1 << 31;

/// The directives of one or more `Cache-Control` field lines (or of one targeted field).
///
/// Request and response directives share the struct because they share the grammar; which
/// fields matter depends on the message. Durations are whole seconds, at most
/// [`MAX_DELTA_SECONDS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CacheControl {
    // --- Request and response ---
    /// `no-store` (§5.2.1.5, §5.2.2.5).
    pub(crate) no_store: bool,
    /// Unqualified `no-cache` (§5.2.1.4, §5.2.2.4): every reuse needs validation.
    pub(crate) no_cache: bool,
    /// The field names of a qualified `no-cache="a, b"`, lowercased: those fields must not be
    /// reused without validation (a cache strips them).
    pub(crate) no_cache_fields: Vec<HeaderName>,
    /// `max-age` (§5.2.1.1, §5.2.2.1); invalid or conflicting → zero.
    pub(crate) max_age: Option<Duration>,
    /// `no-transform` (§5.2.1.6, §5.2.2.6).
    pub(crate) no_transform: bool,
    /// `stale-if-error` (RFC 5861 §4), which both requests and responses may carry.
    pub(crate) stale_if_error: Option<Duration>,

    // --- Response ---
    /// Unqualified `private` (§5.2.2.7): a shared cache must not store the response.
    pub(crate) private: bool,
    /// The field names of a qualified `private="a, b"`, lowercased: a shared cache must not
    /// store those fields.
    pub(crate) private_fields: Vec<HeaderName>,
    /// `public` (§5.2.2.9).
    pub(crate) public: bool,
    /// `must-revalidate` (§5.2.2.2).
    pub(crate) must_revalidate: bool,
    /// `proxy-revalidate` (§5.2.2.8).
    pub(crate) proxy_revalidate: bool,
    /// `must-understand` (§5.2.2.3).
    pub(crate) must_understand: bool,
    /// `immutable` (RFC 8246). Parsed; caching decisions do not use it.
    pub(crate) immutable: bool,
    /// `s-maxage` (§5.2.2.10); invalid or conflicting → zero.
    pub(crate) s_maxage: Option<Duration>,
    /// `stale-while-revalidate` (RFC 5861 §3).
    pub(crate) stale_while_revalidate: Option<Duration>,

    // --- Request ---
    /// `max-stale` (§5.2.1.2).
    pub(crate) max_stale: Option<MaxStale>,
    /// `min-fresh` (§5.2.1.3).
    pub(crate) min_fresh: Option<Duration>,
    /// `only-if-cached` (§5.2.1.7): answer from the cache or with 504, never forward.
    pub(crate) only_if_cached: bool,
}

/// How stale a response the client accepts (`max-stale`, RFC 9111 §5.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum MaxStale {
    /// `max-stale` without a value: any staleness.
    Any,
    /// `max-stale=N`: stale by at most N seconds.
    AtMost(Duration),
}

/// The directive a member names, once matched case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directive {
    MaxAge,
    SMaxage,
    NoCache,
    NoStore,
    NoTransform,
    Private,
    Public,
    MustRevalidate,
    ProxyRevalidate,
    MustUnderstand,
    Immutable,
    StaleWhileRevalidate,
    StaleIfError,
    MaxStale,
    MinFresh,
    OnlyIfCached,
}

const DIRECTIVES: [(&str, Directive); 16] = [
    ("max-age", Directive::MaxAge),
    ("s-maxage", Directive::SMaxage),
    ("no-cache", Directive::NoCache),
    ("no-store", Directive::NoStore),
    ("no-transform", Directive::NoTransform),
    ("private", Directive::Private),
    ("public", Directive::Public),
    ("must-revalidate", Directive::MustRevalidate),
    ("proxy-revalidate", Directive::ProxyRevalidate),
    ("must-understand", Directive::MustUnderstand),
    ("immutable", Directive::Immutable),
    ("stale-while-revalidate", Directive::StaleWhileRevalidate),
    ("stale-if-error", Directive::StaleIfError),
    ("max-stale", Directive::MaxStale),
    ("min-fresh", Directive::MinFresh),
    ("only-if-cached", Directive::OnlyIfCached),
];

/// A directive's argument, from either grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Arg<'a> {
    /// No `=` (or a Structured Fields Boolean true).
    None,
    /// `=token` (Cache-Control only).
    Token(&'a [u8]),
    /// `="quoted string"`, unescaped (Cache-Control only).
    Quoted(Cow<'a, [u8]>),
    /// A Structured Fields String, unescaped.
    SfString(Cow<'a, [u8]>),
    /// A Structured Fields Integer.
    SfInteger(i64),
    /// Anything else: broken syntax, or a Structured Fields type the directive cannot take.
    Malformed,
}

/// A Structured Fields Dictionary member value, as far as cache directives care.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SfValue<'a> {
    True,
    False,
    Integer(i64),
    String(Cow<'a, [u8]>),
    /// Token, Decimal, Byte Sequence or Inner List: valid syntax, never a directive's type.
    Other,
}

/// A cursor over a Structured Fields value (RFC 8941 §4.2).
struct SfParser<'a> {
    input: &'a [u8],
    pos: usize,
}

/// The first targeted field (RFC 9213) in `names` that is present, valid and non-empty, as its
/// index in `names` and its directives; `None` when there is none, and Cache-Control with
/// Expires then applies. Names that are not valid field names are skipped.
pub(crate) fn targeted(headers: &HeaderMap, names: &[String]) -> Option<(usize, CacheControl)> {
    names.iter().enumerate().find_map(|(index, name)| {
        let mut lines = headers.get_all(name.as_str()).iter().peekable();
        lines.peek()?;
        // RFC 8941 §4.2: lines are combined with ", " before parsing.
        let mut joined = Vec::new();
        for (i, line) in lines.enumerate() {
            if i > 0 {
                joined.extend_from_slice(b", ");
            }
            joined.extend_from_slice(line.as_bytes());
        }
        let cc = CacheControl::parse_dictionary(&joined)?;
        Some((index, cc))
    })
}

/// Whether a targeted field of the route's list is removed before the response leaves. RFC
/// 9213 §2.1: a field targeted at this cache alone is consumed here, but `CDN-Cache-Control`
/// (§3) addresses every CDN on the path, so one further downstream still needs it. Other names
/// in the list are the operator's own targets (`Outrider-Cache-Control` by default) and go.
pub fn targeted_field_consumed(name: &str) -> bool {
    !name.eq_ignore_ascii_case("cdn-cache-control")
}

// === impl CacheControl ===

impl CacheControl {
    /// Parses every field line given, as one list.
    pub(crate) fn parse<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Self {
        let mut cc = CacheControl::default();
        for value in values {
            for_each_member(value.as_bytes(), |name, arg| {
                if let Some(directive) = directive_named(name) {
                    cc.apply(directive, &arg);
                }
            });
        }
        cc
    }

    /// The message's `Cache-Control` lines, parsed.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        Self::parse(headers.get_all(CACHE_CONTROL))
    }

    /// A targeted field's value, or `None` if it is not a non-empty Structured Fields
    /// Dictionary (RFC 9213 §2.1).
    fn parse_dictionary(value: &[u8]) -> Option<Self> {
        let mut cc = CacheControl::default();
        let mut members = 0usize;
        // Only known directives are kept, so the duplicate search stays within 16 entries
        // however many members an adversarial field has.
        let mut known: Vec<(Directive, SfValue<'_>)> = Vec::new();
        SfParser::new(value).dictionary(|key, value| {
            members += 1;
            let Some(directive) = directive_named(key) else {
                return;
            };
            match known.iter_mut().find(|(d, _)| *d == directive) {
                Some(slot) => slot.1 = value,
                None => known.push((directive, value)),
            }
        })?;
        if members == 0 {
            return None;
        }
        for (directive, value) in known {
            let arg = match value {
                SfValue::False => continue,
                SfValue::True => Arg::None,
                SfValue::Integer(n) => Arg::SfInteger(n),
                SfValue::String(s) => Arg::SfString(s),
                SfValue::Other => Arg::Malformed,
            };
            cc.apply(directive, &arg);
        }
        Some(cc)
    }

    fn apply(&mut self, directive: Directive, arg: &Arg<'_>) {
        match directive {
            Directive::MaxAge => merge_freshness(&mut self.max_age, delta_seconds(arg)),
            Directive::SMaxage => merge_freshness(&mut self.s_maxage, delta_seconds(arg)),
            Directive::NoCache => match field_names(arg) {
                Some(names) => merge_fields(&mut self.no_cache_fields, names),
                None => self.no_cache = true,
            },
            Directive::Private => match field_names(arg) {
                Some(names) => merge_fields(&mut self.private_fields, names),
                None => self.private = true,
            },
            Directive::NoStore => self.no_store = true,
            Directive::NoTransform => self.no_transform = true,
            Directive::Public => self.public = true,
            Directive::MustRevalidate => self.must_revalidate = true,
            Directive::ProxyRevalidate => self.proxy_revalidate = true,
            Directive::MustUnderstand => self.must_understand = true,
            Directive::Immutable => self.immutable = true,
            Directive::OnlyIfCached => self.only_if_cached = true,
            Directive::StaleWhileRevalidate => {
                keep_smaller(&mut self.stale_while_revalidate, delta_seconds(arg))
            }
            Directive::StaleIfError => keep_smaller(&mut self.stale_if_error, delta_seconds(arg)),
            Directive::MinFresh => {
                if let Some(value) = delta_seconds(arg) {
                    self.min_fresh = Some(self.min_fresh.map_or(value, |v| v.max(value)));
                }
            }
            Directive::MaxStale => {
                let value = match arg {
                    Arg::None => Some(MaxStale::Any),
                    _ => delta_seconds(arg).map(MaxStale::AtMost),
                };
                if let Some(value) = value {
                    self.max_stale = Some(match (self.max_stale, value) {
                        (None | Some(MaxStale::Any), v) | (Some(v), MaxStale::Any) => v,
                        (Some(MaxStale::AtMost(a)), MaxStale::AtMost(b)) => {
                            MaxStale::AtMost(a.min(b))
                        }
                    });
                }
            }
        }
    }
}

/// `max-age` / `s-maxage`: invalid counts as 0; a second, different value makes it 0.
fn merge_freshness(slot: &mut Option<Duration>, value: Option<Duration>) {
    let value = value.unwrap_or(Duration::ZERO);
    *slot = Some(match *slot {
        Some(previous) if previous != value => Duration::ZERO,
        _ => value,
    });
}

/// `stale-while-revalidate` / `stale-if-error`: invalid is ignored; duplicates keep the smaller.
fn keep_smaller(slot: &mut Option<Duration>, value: Option<Duration>) {
    if let Some(value) = value {
        *slot = Some(slot.map_or(value, |v| v.min(value)));
    }
}

fn merge_fields(fields: &mut Vec<HeaderName>, names: Vec<HeaderName>) {
    for name in names {
        if !fields.contains(&name) {
            fields.push(name);
        }
    }
}

fn directive_named(name: &[u8]) -> Option<Directive> {
    DIRECTIVES
        .iter()
        .find(|(known, _)| name.eq_ignore_ascii_case(known.as_bytes()))
        .map(|&(_, directive)| directive)
}

/// A delta-seconds argument (saturated at [`MAX_DELTA_SECONDS`]), or `None` if invalid.
fn delta_seconds(arg: &Arg<'_>) -> Option<Duration> {
    let seconds = match arg {
        Arg::Token(digits) => digits_value(digits)?,
        Arg::Quoted(digits) => digits_value(digits)?,
        Arg::SfInteger(n) => u64::try_from(*n).ok()?.min(MAX_DELTA_SECONDS),
        Arg::None | Arg::SfString(_) | Arg::Malformed => return None,
    };
    Some(Duration::from_secs(seconds))
}

fn digits_value(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10)
            .saturating_add(u64::from(d - b'0'))
            .min(MAX_DELTA_SECONDS)
    }))
}

/// The field names of a qualified `no-cache` / `private`; `None` means "treat as unqualified"
/// (no argument, or one that is not a non-empty list of valid field names).
fn field_names(arg: &Arg<'_>) -> Option<Vec<HeaderName>> {
    let list: &[u8] = match arg {
        Arg::Token(token) => token,
        Arg::Quoted(text) | Arg::SfString(text) => text,
        Arg::None | Arg::SfInteger(_) | Arg::Malformed => return None,
    };
    let mut names = Vec::new();
    for member in list.split(|&b| b == b',') {
        let member = trim_ows(member);
        if member.is_empty() {
            continue;
        }
        names.push(HeaderName::from_bytes(member).ok()?);
    }
    (!names.is_empty()).then_some(names)
}

/// Calls `visit(name, argument)` for each non-empty member of one Cache-Control line.
fn for_each_member<'a>(line: &'a [u8], mut visit: impl FnMut(&'a [u8], Arg<'a>)) {
    let mut rest = line;
    loop {
        while let [b' ' | b'\t' | b',', tail @ ..] = rest {
            rest = tail;
        }
        if rest.is_empty() {
            return;
        }
        let name_end = rest
            .iter()
            .position(|&b| b == b',' || b == b'=')
            .unwrap_or(rest.len());
        let name = trim_ows(&rest[..name_end]);
        rest = &rest[name_end..];
        let arg = match rest {
            [b'=', after @ ..] => {
                let (arg, after_member) = argument(after);
                rest = after_member;
                arg
            }
            _ => Arg::None,
        };
        if !name.is_empty() {
            visit(name, arg);
        }
    }
}

/// One argument, from just after `=`; returns it and the input from the end of the member
/// (a `,` or nothing).
fn argument(input: &[u8]) -> (Arg<'_>, &[u8]) {
    let input = trim_ows_start(input);
    if let [b'"', body @ ..] = input {
        let Some((text, after)) = quoted_string(body) else {
            // Unterminated: the quote swallows the rest of the line.
            return (Arg::Malformed, &[]);
        };
        let after = trim_ows_start(after);
        return match after {
            [] | [b',', ..] => (Arg::Quoted(text), after),
            _ => {
                let end = after.iter().position(|&b| b == b',').unwrap_or(after.len());
                (Arg::Malformed, &after[end..])
            }
        };
    }
    let end = input.iter().position(|&b| b == b',').unwrap_or(input.len());
    let token = trim_ows(&input[..end]);
    let arg = if !token.is_empty() && token.iter().all(|&b| is_tchar(b)) {
        Arg::Token(token)
    } else {
        Arg::Malformed
    };
    (arg, &input[end..])
}

/// The contents of a quoted-string whose opening quote has been consumed, unescaped, and the
/// input after its closing quote; `None` if it is not closed.
fn quoted_string(body: &[u8]) -> Option<(Cow<'_, [u8]>, &[u8])> {
    let mut owned: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                let text = owned.map_or(Cow::Borrowed(&body[..i]), Cow::Owned);
                return Some((text, &body[i + 1..]));
            }
            b'\\' => {
                let escaped = *body.get(i + 1)?;
                owned
                    .get_or_insert_with(|| body[..i].to_vec())
                    .push(escaped);
                i += 2;
            }
            b => {
                if let Some(owned) = owned.as_mut() {
                    owned.push(b);
                }
                i += 1;
            }
        }
    }
    None
}

/// tchar (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_ows_start(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', tail @ ..] = s {
        s = tail;
    }
    s
}

fn trim_ows(s: &[u8]) -> &[u8] {
    let mut s = trim_ows_start(s);
    while let [head @ .., b' ' | b'\t'] = s {
        s = head;
    }
    s
}

// === impl SfParser ===

/// The parser follows RFC 8941 §4.2's algorithms step by step; each returns `None` on the
/// first violation, which invalidates the whole field.
impl<'a> SfParser<'a> {
    fn new(input: &'a [u8]) -> Self {
        SfParser { input, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let matched = self.peek() == Some(byte);
        self.pos += usize::from(matched);
        matched
    }

    fn take(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    fn skip_sp(&mut self) {
        while self.eat(b' ') {}
    }

    fn skip_ows(&mut self) {
        while self.eat(b' ') || self.eat(b'\t') {}
    }

    fn at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    /// §4.2.2 (with §4.2's leading and trailing SP): `visit` sees each member in order.
    fn dictionary(mut self, mut visit: impl FnMut(&'a [u8], SfValue<'a>)) -> Option<()> {
        self.skip_sp();
        while !self.at_end() {
            let key = self.key()?;
            let value = if self.eat(b'=') {
                self.item_or_inner_list()?
            } else {
                self.parameters()?;
                SfValue::True
            };
            visit(key, value);
            self.skip_ows();
            if self.at_end() {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
            self.skip_ows();
            if self.at_end() {
                return None; // trailing comma
            }
        }
        Some(())
    }

    fn item_or_inner_list(&mut self) -> Option<SfValue<'a>> {
        if self.eat(b'(') {
            loop {
                self.skip_sp();
                if self.eat(b')') {
                    self.parameters()?;
                    return Some(SfValue::Other);
                }
                self.bare_item()?;
                self.parameters()?;
                if !matches!(self.peek(), Some(b' ' | b')')) {
                    return None;
                }
            }
        }
        let value = self.bare_item()?;
        self.parameters()?;
        Some(value)
    }

    /// §4.2.3.2; parameters are valid syntax and otherwise ignored.
    fn parameters(&mut self) -> Option<()> {
        while self.eat(b';') {
            self.skip_sp();
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Some(())
    }

    /// §4.2.3.3: `( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )`.
    fn key(&mut self) -> Option<&'a [u8]> {
        let start = self.pos;
        if !matches!(self.peek(), Some(b'a'..=b'z' | b'*')) {
            return None;
        }
        while matches!(
            self.peek(),
            Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*')
        ) {
            self.pos += 1;
        }
        Some(&self.input[start..self.pos])
    }

    /// §4.2.3.1.
    fn bare_item(&mut self) -> Option<SfValue<'a>> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => self.string(),
            b'*' | b'a'..=b'z' | b'A'..=b'Z' => {
                self.token();
                Some(SfValue::Other)
            }
            b':' => self.byte_sequence(),
            b'?' => self.boolean(),
            _ => None,
        }
    }

    /// §4.2.4: at most 15 integer digits; a Decimal has at most 12 before the point and 1 to
    /// 3 after it.
    fn number(&mut self) -> Option<SfValue<'a>> {
        let negative = self.eat(b'-');
        let start = self.pos;
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return None;
        }
        let mut point = None;
        while let Some(byte) = self.peek() {
            match byte {
                b'0'..=b'9' => {}
                b'.' if point.is_none() => {
                    if self.pos - start > 12 {
                        return None;
                    }
                    point = Some(self.pos);
                }
                _ => break,
            }
            self.pos += 1;
            let length = self.pos - start;
            if (point.is_none() && length > 15) || length > 16 {
                return None;
            }
        }
        if let Some(point) = point {
            let decimals = self.pos - point - 1;
            return (1..=3).contains(&decimals).then_some(SfValue::Other);
        }
        let magnitude = self.input[start..self.pos]
            .iter()
            .fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0'));
        Some(SfValue::Integer(if negative {
            -magnitude
        } else {
            magnitude
        }))
    }

    /// §4.2.5: printable ASCII, with `\"` and `\\` the only escapes.
    fn string(&mut self) -> Option<SfValue<'a>> {
        self.eat(b'"');
        let start = self.pos;
        let mut owned: Option<Vec<u8>> = None;
        loop {
            let byte = self.take()?;
            match byte {
                b'"' => {
                    let text =
                        owned.map_or(Cow::Borrowed(&self.input[start..self.pos - 1]), Cow::Owned);
                    return Some(SfValue::String(text));
                }
                b'\\' => {
                    let escaped = self.take()?;
                    if escaped != b'"' && escaped != b'\\' {
                        return None;
                    }
                    let before = &self.input[start..self.pos - 2];
                    owned.get_or_insert_with(|| before.to_vec()).push(escaped);
                }
                0x20..=0x7e => {
                    if let Some(owned) = owned.as_mut() {
                        owned.push(byte);
                    }
                }
                _ => return None,
            }
        }
    }

    /// §4.2.6: `( ALPHA / "*" ) *( tchar / ":" / "/" )`; the caller checked the first byte.
    fn token(&mut self) {
        self.pos += 1;
        while self
            .peek()
            .is_some_and(|b| is_tchar(b) || b == b':' || b == b'/')
        {
            self.pos += 1;
        }
    }

    /// §4.2.7: base64 between colons.
    fn byte_sequence(&mut self) -> Option<SfValue<'a>> {
        self.eat(b':');
        loop {
            match self.take()? {
                b':' => return Some(SfValue::Other),
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => {}
                _ => return None,
            }
        }
    }

    /// §4.2.8: `?1` or `?0`.
    fn boolean(&mut self) -> Option<SfValue<'a>> {
        self.eat(b'?');
        match self.take()? {
            b'1' => Some(SfValue::True),
            b'0' => Some(SfValue::False),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
