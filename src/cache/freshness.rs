//! What a shared cache may do with an exchange (RFC 9111): whether a request skips the cache
//! ([`request_bypass`]), whether a response may be stored and for how long it is fresh
//! ([`storability`], §3 and §4.2), whether a stored response satisfies a request's own
//! directives ([`hit_acceptable`], §5.2.1), and which stored URLs an unsafe request
//! invalidates ([`invalidation_targets`], §4.4).
//!
//! Pure functions over small fact structs: [`RequestFacts`] and [`ResponseFacts`] are read
//! from the header maps once, and the decisions are made on them with the route's
//! [`RouteCachePolicy`] and the times the caller passes in. No Pingora, no clock, no I/O.
//! Header values come from clients and origins; reading them is total (see `control` for the
//! directive grammar), and every decision below errs towards not storing or revalidating.
//!
//! Choices the RFC leaves open, or that a shared cache has to make, and what this module does:
//! - **Targeted fields replace Cache-Control.** When a field of the route's
//!   `targeted_cache_control` list is valid and non-empty (RFC 9213 §2.1), its directives
//!   replace `Cache-Control` for every response decision here, and `Expires` is ignored.
//! - **Request `no-store`** (§5.2.1.5) forbids storing the response to *this* request; the
//!   lookup still happens, since a response already stored is not "this response".
//! - **Authorization.** A request carrying `Authorization` bypasses the cache entirely (lookup
//!   and store) unless the route sets `cache_authorized`, as Varnish does: serving a stored
//!   anonymous response to a credentialed request can hide what that user should see. With
//!   `cache_authorized`, the response is stored only under `public`, `s-maxage` or
//!   `must-revalidate` (§3.5).
//! - **Set-Cookie** makes a response unstorable: a shared cache replaying one user's cookie to
//!   everyone is a session leak, and origins forget `private` far too often. The exception is
//!   an origin that names the field in `private="Set-Cookie"` or `no-cache="Set-Cookie"`: it
//!   has said the rest is shared, so the response is stored with the field stripped.
//! - **Qualified `private="X"` / `no-cache="X"`** store the response without field X
//!   (§5.2.2.4, §5.2.2.7): [`ResponseFacts::fields_to_strip`] lists what the adapter removes
//!   before storing. Stripping is the simplest way to honour `no-cache="X"`'s "not without
//!   revalidation".
//! - **`Vary: *`** is never stored (it never matches, §4.1). A `Vary` member that is not a
//!   field name counts as `*`: a cache that cannot tell what the response varies on must not
//!   reuse it. Field names are lowercased, sorted and deduplicated, so `Vary: B, a` and
//!   `Vary: A, b` give the same secondary key.
//! - **`must-understand`** (§5.2.2.3): for a status code this cache implements (RFC 9110's,
//!   except 206 and 304, which it never stores), `no-store` is ignored as the RFC asks;
//!   for any other status the response is not stored, `no-store` or not.
//! - **Status codes.** 1xx, 206 (no partial content is stored), 304 and anything outside
//!   100..=599 are never stored. The heuristically cacheable codes (RFC 9110 §15.1,
//!   [`HEURISTIC_STATUSES`]) are stored with explicit freshness or, lacking it, the route's
//!   `default_ttl` when non-zero. Every other code needs explicit freshness (`max-age`,
//!   `s-maxage`, `Expires`); `public` alone is not enough, which is stricter than §3.
//! - **Freshness lifetime** (§4.2.1): the route's `override_ttl` when set (it replaces the
//!   origin's lifetime, never its prohibitions, and for a status outside the heuristic list it
//!   still needs the origin's explicit freshness); else `s-maxage`, `max-age`, then
//!   `Expires − Date` (the response time when `Date` is absent or invalid). An invalid
//!   `Expires` (including `0`) or several `Expires` lines give lifetime 0 (stored, already
//!   stale). Origin lifetimes are capped at 2^31 s. Then the route's `default_ttl` stands in
//!   for the heuristic of §4.2.2: predictable for operators, unlike 10% of `Last-Modified`'s
//!   age. Unqualified `no-cache` stores with lifetime 0 and every reuse revalidated.
//! - **Age** (§4.2.3) is computed at storage time: `initial_age = max(apparent_age,
//!   Age + response_delay)`, capped at 2^31 s. An invalid `Age` is ignored; with several
//!   lines the largest valid value is used (older is the safe side). A response stored with
//!   `initial_age ≥ lifetime` is already stale.
//! - **Useless entries are not stored**: a response that is stale on arrival, has no
//!   validator (`ETag`, valid `Last-Modified`) and no stale-serving window could never be
//!   served without a full fetch ([`NotStoredReason::StaleWithoutValidator`]).
//! - **Stale serving** (RFC 5861, §4.2.4): the response's `stale-while-revalidate` /
//!   `stale-if-error`, or else the route's. `must-revalidate`, `proxy-revalidate` and
//!   `no-cache` forbid any stale serving (§4.2.4 names them). `s-maxage` implies
//!   `proxy-revalidate` for a shared cache (§5.2.2.10), so the route's defaults do not apply
//!   to it, but the response's own windows do: `s-maxage=60, stale-while-revalidate=30` is
//!   common CDN practice and the origin asked for it explicitly. In both cases a client's
//!   `max-stale` is not honoured (`Freshness::must_revalidate`).
//! - **Request directives on a hit** (§5.2.1): `no-cache`, `Pragma: no-cache` (only when the
//!   request has no `Cache-Control` field, §5.4), `max-age` and `min-fresh` force validation,
//!   and stale-while-revalidate must not answer for them ([`HitVerdict::RequestRevalidate`]).
//!   `max-stale` accepts a stale response unless the response forbids it. `only-if-cached`
//!   is left to the adapter (504 when nothing acceptable is stored). A request's
//!   `stale-if-error` is parsed, not used.
//! - **`Pragma` in responses** and `immutable` (RFC 8246) do not affect decisions.
//! - **Invalidation** (§4.4): any method other than GET, HEAD, OPTIONS and TRACE (so unknown
//!   methods too) with a 2xx or 3xx status invalidates the request URL, and `Location` /
//!   `Content-Location` when they resolve to the same origin (scheme, host, port with
//!   defaults). Only two reference forms are resolved, an absolute URL and an absolute path
//!   (`/x?y`); anything else (`../x`, `x`, `//host/x`) is ignored. The `url` crate would do
//!   all of RFC 3986 §5; these two forms are what origins send.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{
    AGE, AUTHORIZATION, CACHE_CONTROL, CONTENT_LOCATION, DATE, ETAG, EXPIRES, LAST_MODIFIED,
    LOCATION, PRAGMA, SET_COOKIE, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::control::{targeted, CacheControl, MaxStale, MAX_DELTA_SECONDS};
use super::key::{primary_key, UrlParts};
use super::status::{CacheStatus, Fwd};
use crate::conditional::parse_http_date;
use crate::config::policy::{KeyQueryPolicy, RouteCachePolicy};

/// The status codes a cache may store without explicit freshness (RFC 9110 §15.1).
pub const HEURISTIC_STATUSES: [u16; 11] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// What the caching decisions need from a response's header section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseFacts {
    pub status: u16,
    /// `Cache-Control`, all lines.
    pub cc: CacheControl,
    /// The winning targeted field (RFC 9213), which replaces `cc` and `expires` when present.
    pub targeted: Option<CacheControl>,
    pub expires: Expires,
    /// `Date`; `None` when absent, invalid or given more than once.
    pub date: Option<SystemTime>,
    /// `Age` in seconds (saturated at 2^31); `None` when absent or invalid.
    pub age: Option<u64>,
    /// `Last-Modified`; `None` when absent, invalid or given more than once.
    pub last_modified: Option<SystemTime>,
    pub set_cookie: bool,
    pub vary: Vary,
    /// An `ETag` field or a valid `Last-Modified`: something to revalidate with.
    pub has_validator: bool,
}

/// The `Expires` field (RFC 9111 §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expires {
    Absent,
    At(SystemTime),
    /// Not an HTTP-date (`0`, `-1`, garbage): already expired (§5.3).
    Invalid,
    /// More than one line: invalid freshness information (§4.2.1).
    Multiple,
}

/// The `Vary` field (RFC 9110 §12.5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vary {
    None,
    /// `*`, or a member that is not a field name.
    Star,
    /// Lowercased, sorted, without duplicates.
    Fields(Vec<HeaderName>),
}

/// What the caching decisions need from a request's header section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    pub method: MethodClass,
    pub cc: CacheControl,
    pub authorization: bool,
    /// `Pragma: no-cache` on a request without `Cache-Control` (RFC 9111 §5.4).
    pub pragma_no_cache: bool,
}

/// The request method, as far as caching cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodClass {
    Get,
    Head,
    /// Never looked up nor stored.
    Other,
}

/// When the request was sent upstream and when its response arrived (RFC 9111 §4.2.3's
/// `request_time` and `response_time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExchangeTimes {
    pub request_time: SystemTime,
    pub response_time: SystemTime,
}

/// Why a request skips the cache altogether (no lookup, no store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BypassReason {
    /// Neither GET nor HEAD.
    Method,
    /// `Authorization` on a route without `cache_authorized`.
    Authorization,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storability {
    Store(Freshness),
    DontStore(NotStoredReason),
}

/// How long a response to be stored is fresh, and how it may be served once stale.
///
/// Times are relative to the response time; see [`Freshness::created`] and
/// [`Freshness::fresh_until`] for the absolute instants a store records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Freshness lifetime (§4.2.1), counted from the response's creation.
    pub lifetime: Duration,
    /// The age the response already had when received (§4.2.3).
    pub initial_age: Duration,
    /// How long after going stale it may be served while revalidating in the background.
    pub stale_while_revalidate: Duration,
    /// How long after going stale it may be served when the origin fails.
    pub stale_if_error: Duration,
    /// No stale serving beyond the two windows above, which are zero when the origin sent
    /// `must-revalidate`, `proxy-revalidate` or `no-cache`; and a client's `max-stale` is not
    /// honoured.
    pub must_revalidate: bool,
    /// Unqualified `no-cache`: every reuse needs validation (lifetime is 0).
    pub always_revalidate: bool,
}

/// Why a response is not stored; [`NotStoredReason::as_str`] is the log and `Cache-Status`
/// `detail` spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotStoredReason {
    /// Neither GET nor HEAD.
    Method,
    /// The request said `no-store`.
    RequestNoStore,
    /// The response said `no-store`.
    NoStore,
    /// `must-understand` with a status code this cache does not implement.
    MustUnderstand,
    /// Unqualified `private`.
    Private,
    /// A request with `Authorization`, without the route's permission or the response's.
    Authorization,
    /// `Set-Cookie` that the origin did not mark private.
    SetCookie,
    /// `Vary: *` (or an unreadable `Vary`).
    VaryStar,
    /// A status code never stored, or not storable without explicit freshness.
    Status,
    /// No explicit freshness and no route default TTL.
    NoFreshness,
    /// Stale on arrival, nothing to revalidate with, no stale window: never servable.
    StaleWithoutValidator,
}

/// Whether a stored response may answer a request as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HitVerdict {
    /// Fresh and acceptable: serve it.
    Fresh,
    /// Stale, but within the client's `max-stale`: serve it.
    StaleAccepted,
    /// Stale: revalidate (stale-while-revalidate may serve it meanwhile, stale-if-error if
    /// the origin fails).
    Stale,
    /// The request's own directives (`no-cache`, `max-age`, `min-fresh`) demand a validated
    /// response: forward, and do not serve stale while revalidating.
    RequestRevalidate,
}

/// Why the request skips the cache entirely, or `None` when it may be looked up. Call it only
/// for routes with caching enabled.
pub fn request_bypass(req: &RequestFacts, policy: &RouteCachePolicy) -> Option<BypassReason> {
    if req.method == MethodClass::Other {
        return Some(BypassReason::Method);
    }
    if req.authorization && !policy.cache_authorized {
        return Some(BypassReason::Authorization);
    }
    None
}

/// Whether the response to `req` may be stored, and if so its freshness (RFC 9111 §3, §4.2).
/// The first reason that applies is returned, in the order of [`NotStoredReason`].
pub fn storability(
    req: &RequestFacts,
    rsp: &ResponseFacts,
    policy: &RouteCachePolicy,
    times: ExchangeTimes,
) -> Storability {
    use NotStoredReason as Not;
    let dont = Storability::DontStore;
    let cc = rsp.effective_cc();

    if req.method == MethodClass::Other {
        return dont(Not::Method);
    }
    if req.cc.no_store {
        return dont(Not::RequestNoStore);
    }
    if !ever_stored(rsp.status) {
        return dont(Not::Status);
    }
    if cc.must_understand {
        if !status_understood(rsp.status) {
            return dont(Not::MustUnderstand);
        }
    } else if cc.no_store {
        return dont(Not::NoStore);
    }
    if cc.private {
        return dont(Not::Private);
    }
    let response_allows_shared = cc.public || cc.s_maxage.is_some() || cc.must_revalidate;
    if req.authorization && !(policy.cache_authorized && response_allows_shared) {
        return dont(Not::Authorization);
    }
    if rsp.set_cookie && !rsp.fields_to_strip().contains(&SET_COOKIE) {
        return dont(Not::SetCookie);
    }
    if rsp.vary == Vary::Star {
        return dont(Not::VaryStar);
    }

    let explicit = rsp.explicit_lifetime(times.response_time);
    if explicit.is_none() && !HEURISTIC_STATUSES.contains(&rsp.status) {
        return dont(Not::Status);
    }
    let lifetime = if cc.no_cache {
        Duration::ZERO
    } else if let Some(override_ttl) = policy.override_ttl {
        override_ttl
    } else if let Some(explicit) = explicit {
        explicit
    } else if !policy.default_ttl.is_zero() {
        policy.default_ttl
    } else {
        return dont(Not::NoFreshness);
    };

    let (stale_while_revalidate, stale_if_error, must_revalidate) = stale_windows(cc, policy);
    let freshness = Freshness {
        lifetime,
        initial_age: initial_age(rsp, times),
        stale_while_revalidate,
        stale_if_error,
        must_revalidate,
        always_revalidate: cc.no_cache,
    };
    let servable = freshness.lifetime > freshness.initial_age
        || rsp.has_validator
        || !stale_while_revalidate.is_zero()
        || !stale_if_error.is_zero();
    if !servable {
        return dont(Not::StaleWithoutValidator);
    }
    Storability::Store(freshness)
}

/// Whether a stored response of `age` and freshness `lifetime` satisfies the request's
/// directives (RFC 9111 §5.2.1). `must_revalidate` is the stored response's
/// [`Freshness::must_revalidate`] (or [`ResponseFacts::must_revalidate`] of its headers).
pub fn hit_acceptable(
    req_cc: &CacheControl,
    pragma_no_cache: bool,
    age: Duration,
    lifetime: Duration,
    must_revalidate: bool,
) -> HitVerdict {
    if req_cc.no_cache || pragma_no_cache {
        return HitVerdict::RequestRevalidate;
    }
    if req_cc.max_age.is_some_and(|max_age| age > max_age) {
        return HitVerdict::RequestRevalidate;
    }
    if req_cc
        .min_fresh
        .is_some_and(|min_fresh| lifetime.saturating_sub(age) < min_fresh)
    {
        return HitVerdict::RequestRevalidate;
    }
    if age < lifetime {
        return HitVerdict::Fresh;
    }
    let staleness = age - lifetime;
    let accepted = match req_cc.max_stale {
        Some(MaxStale::Any) => true,
        Some(MaxStale::AtMost(limit)) => staleness <= limit,
        None => false,
    };
    if accepted && !must_revalidate {
        HitVerdict::StaleAccepted
    } else {
        HitVerdict::Stale
    }
}

/// The URLs whose stored responses an unsafe request invalidates (RFC 9111 §4.4): the request
/// URL first, then `Location` and `Content-Location` when they resolve to the same origin,
/// without duplicates. Empty for safe methods and for statuses other than 2xx and 3xx.
///
/// `request_url` is absolute (`https://host/path?query`); resolved references come back in the
/// same form without fragment. The adapter turns each into a key with the route's key rule
/// ([`UrlParts::primary_key`]).
pub fn invalidation_targets(
    method: &Method,
    status: u16,
    request_url: &str,
    location: Option<&str>,
    content_location: Option<&str>,
) -> Vec<String> {
    if method.is_safe() || !(200..400).contains(&status) {
        return Vec::new();
    }
    let mut targets = vec![request_url.to_string()];
    let Some(base) = UrlParts::parse(request_url) else {
        return targets;
    };
    for reference in [location, content_location].into_iter().flatten() {
        let Some(resolved) = base.resolve(reference.trim()) else {
            continue;
        };
        if resolved.same_origin(&base) {
            let url = resolved.to_string();
            if !targets.contains(&url) {
                targets.push(url);
            }
        }
    }
    targets
}

/// Never stored whatever the directives: informational, partial and not-modified responses,
/// and codes outside HTTP's range.
fn ever_stored(status: u16) -> bool {
    (200..=599).contains(&status) && status != 206 && status != 304
}

/// The status codes whose caching requirements this cache implements, for `must-understand`
/// (RFC 9111 §5.2.2.3): those of RFC 9110 §15, minus 206 and 304 (never stored here).
fn status_understood(status: u16) -> bool {
    matches!(
        status,
        200..=205 | 300..=303 | 305 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505
    )
}

/// `(stale-while-revalidate, stale-if-error, must_revalidate)`; see the module documentation.
fn stale_windows(cc: &CacheControl, policy: &RouteCachePolicy) -> (Duration, Duration, bool) {
    if cc.no_cache || cc.must_revalidate || cc.proxy_revalidate {
        (Duration::ZERO, Duration::ZERO, true)
    } else if cc.s_maxage.is_some() {
        let swr = cc.stale_while_revalidate.unwrap_or(Duration::ZERO);
        let sie = cc.stale_if_error.unwrap_or(Duration::ZERO);
        (swr, sie, true)
    } else {
        let swr = cc
            .stale_while_revalidate
            .unwrap_or(policy.stale_while_revalidate);
        let sie = cc.stale_if_error.unwrap_or(policy.stale_if_error);
        (swr, sie, false)
    }
}

/// RFC 9111 §4.2.3's `corrected_initial_age`, capped at 2^31 s.
fn initial_age(rsp: &ResponseFacts, times: ExchangeTimes) -> Duration {
    let ExchangeTimes {
        request_time,
        response_time,
    } = times;
    let date = rsp.date.unwrap_or(response_time);
    let apparent_age = response_time.duration_since(date).unwrap_or_default();
    let response_delay = response_time
        .duration_since(request_time)
        .unwrap_or_default();
    let corrected_age_value =
        Duration::from_secs(rsp.age.unwrap_or(0)).saturating_add(response_delay);
    apparent_age
        .max(corrected_age_value)
        .min(Duration::from_secs(MAX_DELTA_SECONDS))
}

/// `t + d`, or `t + 2^31 s` if that overflows (a route TTL of billions of years).
fn later(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(MAX_DELTA_SECONDS)))
        .unwrap_or(t)
}

/// A field given on exactly one line, as text.
fn single_line(headers: &HeaderMap, name: HeaderName) -> Option<&HeaderValue> {
    let mut lines = headers.get_all(name).iter();
    let first = lines.next()?;
    lines.next().is_none().then_some(first)
}

fn http_date(value: &HeaderValue) -> Option<SystemTime> {
    std::str::from_utf8(value.as_bytes())
        .ok()
        .and_then(|text| parse_http_date(text.trim()))
}

/// An `Age` line: delta-seconds, saturated at 2^31.
fn age_seconds(value: &HeaderValue) -> Option<u64> {
    let digits = value.as_bytes().trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10)
            .saturating_add(u64::from(d - b'0'))
            .min(MAX_DELTA_SECONDS)
    }))
}

/// Whether a comma-separated token list contains `token` (ASCII case-insensitive).
fn list_contains(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|member| member.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

// === impl ResponseFacts ===

impl ResponseFacts {
    /// Reads the facts from a response's header section; `targeted_names` is the route's
    /// `targeted_cache_control` list.
    pub fn from_headers(status: u16, headers: &HeaderMap, targeted_names: &[String]) -> Self {
        let mut expires_lines = headers.get_all(EXPIRES).iter();
        let expires = match (expires_lines.next(), expires_lines.next()) {
            (None, _) => Expires::Absent,
            (Some(_), Some(_)) => Expires::Multiple,
            (Some(value), None) => http_date(value).map_or(Expires::Invalid, Expires::At),
        };
        let last_modified = single_line(headers, LAST_MODIFIED).and_then(http_date);
        ResponseFacts {
            status,
            cc: CacheControl::from_headers(headers),
            targeted: targeted(headers, targeted_names).map(|(_, cc)| cc),
            expires,
            date: single_line(headers, DATE).and_then(http_date),
            age: headers.get_all(AGE).iter().filter_map(age_seconds).max(),
            last_modified,
            set_cookie: headers.contains_key(SET_COOKIE),
            vary: Vary::from_headers(headers),
            has_validator: headers.contains_key(ETAG) || last_modified.is_some(),
        }
    }

    /// The directives that decide: the targeted field when there is one, else Cache-Control.
    pub fn effective_cc(&self) -> &CacheControl {
        self.targeted.as_ref().unwrap_or(&self.cc)
    }

    /// The fields the adapter removes before storing (from `private="…"` and `no-cache="…"`),
    /// lowercased and without duplicates.
    pub fn fields_to_strip(&self) -> Vec<HeaderName> {
        let cc = self.effective_cc();
        let mut fields = cc.private_fields.clone();
        for name in &cc.no_cache_fields {
            if !fields.contains(name) {
                fields.push(name.clone());
            }
        }
        fields
    }

    /// Whether stale serving is restricted to the response's own windows, as
    /// [`Freshness::must_revalidate`] says; for re-deriving it from a stored header.
    pub fn must_revalidate(&self) -> bool {
        let cc = self.effective_cc();
        cc.no_cache || cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.is_some()
    }

    /// Explicit freshness: `s-maxage`, `max-age`, then `Expires − Date` (unless a targeted
    /// field decides), capped at 2^31 s.
    fn explicit_lifetime(&self, response_time: SystemTime) -> Option<Duration> {
        let cc = self.effective_cc();
        if let Some(lifetime) = cc.s_maxage.or(cc.max_age) {
            return Some(lifetime);
        }
        if self.targeted.is_some() {
            return None;
        }
        match self.expires {
            Expires::Absent => None,
            Expires::Invalid | Expires::Multiple => Some(Duration::ZERO),
            Expires::At(expires) => {
                let date = self.date.unwrap_or(response_time);
                let lifetime = expires.duration_since(date).unwrap_or_default();
                Some(lifetime.min(Duration::from_secs(MAX_DELTA_SECONDS)))
            }
        }
    }
}

// === impl Vary ===

impl Vary {
    fn from_headers(headers: &HeaderMap) -> Self {
        let mut fields = Vec::new();
        for value in headers.get_all(VARY) {
            for member in value.as_bytes().split(|&b| b == b',') {
                let member = member.trim_ascii();
                if member.is_empty() {
                    continue;
                }
                if member == b"*" {
                    return Vary::Star;
                }
                match HeaderName::from_bytes(member) {
                    Ok(name) => fields.push(name),
                    // Not a field name: nothing a request could be matched on.
                    Err(_) => return Vary::Star,
                }
            }
        }
        if fields.is_empty() {
            return Vary::None;
        }
        fields.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        fields.dedup();
        Vary::Fields(fields)
    }
}

// === impl RequestFacts ===

impl RequestFacts {
    pub fn from_parts(method: &Method, headers: &HeaderMap) -> Self {
        let method = match *method {
            Method::GET => MethodClass::Get,
            Method::HEAD => MethodClass::Head,
            _ => MethodClass::Other,
        };
        RequestFacts {
            method,
            cc: CacheControl::from_headers(headers),
            authorization: headers.contains_key(AUTHORIZATION),
            pragma_no_cache: !headers.contains_key(CACHE_CONTROL)
                && list_contains(headers, PRAGMA, "no-cache"),
        }
    }
}

// === impl BypassReason ===

impl BypassReason {
    /// The log and `Cache-Status` `detail` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            BypassReason::Method => "method",
            BypassReason::Authorization => "authorization",
        }
    }
}

// === impl Freshness ===

impl Freshness {
    /// When the response was generated by the origin, as this cache reckons:
    /// `response_time − initial_age` (saturating at the epoch).
    pub fn created(&self, response_time: SystemTime) -> SystemTime {
        response_time
            .checked_sub(self.initial_age)
            .unwrap_or(UNIX_EPOCH.min(response_time))
    }

    /// When it stops being fresh: `created + lifetime`, in the past for a response stale on
    /// arrival.
    pub fn fresh_until(&self, response_time: SystemTime) -> SystemTime {
        later(self.created(response_time), self.lifetime)
    }

    /// When the store may drop it: `fresh_until` plus the longer stale window.
    pub fn expires(&self, response_time: SystemTime) -> SystemTime {
        let window = self.stale_while_revalidate.max(self.stale_if_error);
        later(self.fresh_until(response_time), window)
    }
}

// === impl NotStoredReason ===

impl NotStoredReason {
    /// Kebab-case, for logs and `Cache-Status` `detail`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotStoredReason::Method => "method",
            NotStoredReason::RequestNoStore => "request-no-store",
            NotStoredReason::NoStore => "no-store",
            NotStoredReason::MustUnderstand => "must-understand",
            NotStoredReason::Private => "private",
            NotStoredReason::Authorization => "authorization",
            NotStoredReason::SetCookie => "set-cookie",
            NotStoredReason::VaryStar => "vary-star",
            NotStoredReason::Status => "status",
            NotStoredReason::NoFreshness => "no-freshness",
            NotStoredReason::StaleWithoutValidator => "stale-without-validator",
        }
    }
}

/// The body of `fuzz/fuzz_targets/cache_control.rs`, here so that `cargo test` runs it on
/// random input too. Not an API.
///
/// Layout: byte 0 picks the method (bits 0-1) and the route policy (bits 2-6: default TTL,
/// override TTL, stale-while-revalidate, stale-if-error, cache_authorized); byte 1 the
/// status; byte 2 the response delay and the ages tried against `hit_acceptable`. The rest is
/// split on `\n` into header lines: each line's first byte picks the field (request or
/// response side), the remaining bytes are its value.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    const STATUSES: [u16; 16] = [
        200, 203, 204, 206, 301, 302, 304, 307, 404, 410, 500, 503, 100, 299, 600, 0,
    ];
    /// `(name, on the request)`.
    const FIELDS: [(&str, bool); 17] = [
        ("cache-control", false),
        ("cache-control", true),
        ("outrider-cache-control", false),
        ("cdn-cache-control", false),
        ("expires", false),
        ("date", false),
        ("age", false),
        ("last-modified", false),
        ("etag", false),
        ("vary", false),
        ("set-cookie", false),
        ("location", false),
        ("content-location", false),
        ("pragma", true),
        ("authorization", true),
        ("host", true),
        (":path", true),
    ];
    let Some((&[knobs, status_byte, time_byte], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let method = match knobs & 0b11 {
        0 => Method::GET,
        1 => Method::HEAD,
        2 => Method::POST,
        _ => Method::DELETE,
    };
    let secs = |on: bool, n: u64| Duration::from_secs(if on { n } else { 0 });
    let policy = RouteCachePolicy {
        enabled: true,
        default_ttl: secs(knobs & 0x04 != 0, 60),
        override_ttl: (knobs & 0x08 != 0).then_some(Duration::from_secs(30)),
        stale_while_revalidate: secs(knobs & 0x10 != 0, 10),
        stale_if_error: secs(knobs & 0x20 != 0, 300),
        cache_authorized: knobs & 0x40 != 0,
        tag_header: String::new(),
        targeted_cache_control: vec![
            "Outrider-Cache-Control".to_string(),
            "CDN-Cache-Control".to_string(),
        ],
        stale_on_open: Duration::ZERO,
        key_query: KeyQueryPolicy::All,
    };
    let status = if status_byte & 0x80 != 0 {
        u16::from(status_byte & 0x7f) * 5
    } else {
        STATUSES[usize::from(status_byte) % STATUSES.len()]
    };

    let mut req_headers = HeaderMap::new();
    let mut rsp_headers = HeaderMap::new();
    let mut host = "example.com";
    let mut path_and_query = "/";
    for line in rest.split(|&b| b == b'\n') {
        let Some((&selector, value)) = line.split_first() else {
            continue;
        };
        let (name, on_request) = FIELDS[usize::from(selector) % FIELDS.len()];
        if name == "host" || name == ":path" {
            if let Ok(text) = std::str::from_utf8(value) {
                if name == "host" {
                    host = text;
                } else {
                    path_and_query = text;
                }
            }
            continue;
        }
        let Ok(value) = HeaderValue::from_bytes(value) else {
            continue;
        };
        let headers = if on_request {
            &mut req_headers
        } else {
            &mut rsp_headers
        };
        headers.append(HeaderName::from_static(name), value);
    }

    // Parsing is deterministic.
    let names = &policy.targeted_cache_control;
    let cc = CacheControl::from_headers(&rsp_headers);
    assert_eq!(cc, CacheControl::from_headers(&rsp_headers));
    let chosen = targeted(&rsp_headers, names);
    assert_eq!(chosen, targeted(&rsp_headers, names));
    assert!(chosen.as_ref().is_none_or(|(i, _)| *i < names.len()));
    let req = RequestFacts::from_parts(&method, &req_headers);
    let rsp = ResponseFacts::from_headers(status, &rsp_headers, names);
    assert_eq!(
        rsp,
        ResponseFacts::from_headers(status, &rsp_headers, names)
    );
    for d in [
        cc.max_age,
        cc.s_maxage,
        cc.stale_while_revalidate,
        cc.stale_if_error,
    ] {
        assert!(d.is_none_or(|d| d.as_secs() <= MAX_DELTA_SECONDS));
    }

    let bypass = request_bypass(&req, &policy);
    assert_eq!(
        bypass == Some(BypassReason::Method),
        !(method == Method::GET || method == Method::HEAD)
    );

    let request_time = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let times = ExchangeTimes {
        request_time,
        response_time: request_time + Duration::from_secs(u64::from(time_byte & 0x0f)),
    };
    let decision = storability(&req, &rsp, &policy, times);
    assert_eq!(decision, storability(&req, &rsp, &policy, times));
    let effective = rsp.effective_cc();
    match &decision {
        Storability::Store(f) => {
            assert!(matches!(method, Method::GET | Method::HEAD));
            assert!(!req.cc.no_store);
            assert!(ever_stored(status));
            assert!(!effective.no_store || effective.must_understand, "{rsp:?}");
            assert!(!effective.private, "{rsp:?}");
            assert!(!req.authorization || policy.cache_authorized);
            assert!(!rsp.set_cookie || rsp.fields_to_strip().contains(&SET_COOKIE));
            assert_ne!(rsp.vary, Vary::Star);
            assert!(f.lifetime.as_secs() <= MAX_DELTA_SECONDS, "{f:?}");
            assert!(f.initial_age.as_secs() <= MAX_DELTA_SECONDS, "{f:?}");
            if f.always_revalidate {
                assert!(f.lifetime.is_zero() && f.must_revalidate);
            }
            if effective.no_cache || effective.must_revalidate || effective.proxy_revalidate {
                assert!(f.stale_while_revalidate.is_zero() && f.stale_if_error.is_zero());
                assert!(f.must_revalidate);
            }
            assert_eq!(f.must_revalidate, rsp.must_revalidate());
            let rt = times.response_time;
            assert!(f.created(rt) <= rt);
            assert!(f.fresh_until(rt) >= f.created(rt));
            assert!(f.expires(rt) >= f.fresh_until(rt));
            assert!(
                rsp.has_validator
                    || f.lifetime > f.initial_age
                    || !f.stale_while_revalidate.is_zero()
                    || !f.stale_if_error.is_zero()
            );

            let ages = [
                Duration::ZERO,
                f.lifetime,
                f.lifetime.saturating_sub(Duration::from_secs(1)),
                f.lifetime + Duration::from_secs(u64::from(time_byte >> 4)),
            ];
            for age in ages {
                let verdict = hit_acceptable(
                    &req.cc,
                    req.pragma_no_cache,
                    age,
                    f.lifetime,
                    f.must_revalidate,
                );
                assert_eq!(
                    verdict,
                    hit_acceptable(
                        &req.cc,
                        req.pragma_no_cache,
                        age,
                        f.lifetime,
                        f.must_revalidate
                    )
                );
                match verdict {
                    HitVerdict::Fresh => assert!(age < f.lifetime),
                    HitVerdict::StaleAccepted => {
                        assert!(age >= f.lifetime && !f.must_revalidate)
                    }
                    HitVerdict::Stale => assert!(age >= f.lifetime),
                    HitVerdict::RequestRevalidate => {}
                }
                if req.cc.no_cache || req.pragma_no_cache {
                    assert_eq!(verdict, HitVerdict::RequestRevalidate);
                }
            }
        }
        Storability::DontStore(reason) => {
            let status = CacheStatus {
                fwd: Some(Fwd::Miss),
                fwd_status: Some(rsp.status),
                detail: Some(reason.as_str().into()),
                ..CacheStatus::default()
            };
            let value = status.to_header_value("outrider");
            assert!(HeaderValue::from_str(&value).is_ok(), "{value}");
        }
    }

    // Invalidation: only unsafe methods, only same-origin targets, request URL first.
    let request_url = format!("http://{host}{path_and_query}");
    let header_text = |name: HeaderName| {
        rsp_headers
            .get(name)
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
    };
    let targets = invalidation_targets(
        &method,
        status,
        &request_url,
        header_text(LOCATION),
        header_text(CONTENT_LOCATION),
    );
    if method.is_safe() || !(200..400).contains(&status) {
        assert!(targets.is_empty());
    } else {
        assert_eq!(targets.first(), Some(&request_url));
        if let Some(base) = UrlParts::parse(&request_url) {
            for target in &targets[1..] {
                let parsed = UrlParts::parse(target).expect("targets are absolute URLs");
                assert!(parsed.same_origin(&base), "{target} vs {request_url}");
            }
        }
    }

    // Keys: deterministic, and normalising twice changes nothing.
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    for rule in [
        KeyQueryPolicy::All,
        KeyQueryPolicy::None,
        KeyQueryPolicy::Allow(vec!["a".into(), "b".into()]),
    ] {
        let key = primary_key("HTTP", host, path, query, &rule);
        assert_eq!(key, primary_key("HTTP", host, path, query, &rule));
        assert!(key.starts_with("http://"));
        let normalized_query = key.split_once('?').map(|(_, q)| q);
        if rule == KeyQueryPolicy::None {
            assert_eq!(normalized_query, None);
        }
        assert_eq!(
            key,
            primary_key("http", host, path, normalized_query, &rule),
            "{path_and_query:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;
    use NotStoredReason as N;

    /// The request time; the response arrives one second later.
    const T0: u64 = 1_700_000_000;

    // HTTP-dates around T0 (Tue, 14 Nov 2023 22:13:20 GMT), named by their offset from T0.
    const MINUS_3600: &str = "Tue, 14 Nov 2023 21:13:20 GMT";
    const MINUS_100: &str = "Tue, 14 Nov 2023 22:11:40 GMT";
    const MINUS_99: &str = "Tue, 14 Nov 2023 22:11:41 GMT";
    const MINUS_59: &str = "Tue, 14 Nov 2023 22:12:21 GMT";
    const MINUS_9: &str = "Tue, 14 Nov 2023 22:13:11 GMT";
    const PLUS_1: &str = "Tue, 14 Nov 2023 22:13:21 GMT";
    const PLUS_101: &str = "Tue, 14 Nov 2023 22:15:01 GMT";
    const PLUS_1000: &str = "Tue, 14 Nov 2023 22:30:00 GMT";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn policy() -> RouteCachePolicy {
        RouteCachePolicy {
            enabled: true,
            default_ttl: Duration::ZERO,
            override_ttl: None,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            cache_authorized: false,
            tag_header: String::new(),
            targeted_cache_control: vec![
                "Outrider-Cache-Control".into(),
                "CDN-Cache-Control".into(),
            ],
            stale_on_open: Duration::ZERO,
            key_query: KeyQueryPolicy::All,
        }
    }

    /// Header fields written as lines of `name: value`, so that a table row fits on a line.
    fn fields(spec: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in spec.lines().filter(|line| !line.is_empty()) {
            let (name, value) = line.split_once(": ").unwrap_or((line, ""));
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("valid test name"),
                HeaderValue::from_str(value).expect("valid test value"),
            );
        }
        map
    }

    /// Request at T0, response at T0 + 1 s.
    fn times() -> ExchangeTimes {
        ExchangeTimes {
            request_time: at(T0),
            response_time: at(T0 + 1),
        }
    }

    fn decide_with(
        method: &Method,
        req: &str,
        status: u16,
        rsp: &str,
        policy: &RouteCachePolicy,
    ) -> Storability {
        let req = RequestFacts::from_parts(method, &fields(req));
        let rsp = ResponseFacts::from_headers(status, &fields(rsp), &policy.targeted_cache_control);
        storability(&req, &rsp, policy, times())
    }

    fn decide(status: u16, rsp: &str) -> Storability {
        decide_with(&Method::GET, "", status, rsp, &policy())
    }

    /// The lifetime in seconds of a stored response, or the reason it is not stored.
    fn lifetime(decision: Storability) -> Result<u64, N> {
        match decision {
            Storability::Store(f) => Ok(f.lifetime.as_secs()),
            Storability::DontStore(reason) => Err(reason),
        }
    }

    fn stored(decision: Storability) -> Freshness {
        match decision {
            Storability::Store(f) => f,
            Storability::DontStore(reason) => panic!("not stored: {}", reason.as_str()),
        }
    }

    /// §3, §5.2.1: the request's side. Each row: method, request fields, decision for a
    /// `200` with `max-age=60`.
    #[test]
    fn storability_by_request() {
        let rows: &[(Method, &str, Result<u64, N>)] = &[
            (Method::GET, "", Ok(60)),
            (Method::HEAD, "", Ok(60)),
            // §3: only methods whose responses this cache stores.
            (Method::POST, "", Err(N::Method)),
            (Method::OPTIONS, "", Err(N::Method)),
            // §5.2.1.5.
            (
                Method::GET,
                "cache-control: no-store",
                Err(N::RequestNoStore),
            ),
            (
                Method::GET,
                "cache-control: No-Store, max-age=5",
                Err(N::RequestNoStore),
            ),
            // Request no-cache does not affect storing.
            (Method::GET, "cache-control: no-cache", Ok(60)),
            // §3.5: Authorization on a route without cache_authorized.
            (
                Method::GET,
                "authorization: Bearer x",
                Err(N::Authorization),
            ),
        ];
        for (method, req, expected) in rows {
            let got = decide_with(method, req, 200, "cache-control: max-age=60", &policy());
            assert_eq!(lifetime(got), *expected, "{method} {req:?}");
        }
    }

    /// §3, §5.2.2: the response's directives. Each row: status, Cache-Control, decision for
    /// a plain GET.
    #[test]
    fn storability_by_response_directives() {
        let rows: &[(u16, &str, Result<u64, N>)] = &[
            (200, "max-age=60", Ok(60)),
            // §5.2.2.5: no-store, on any line.
            (200, "max-age=60, no-store", Err(N::NoStore)),
            (200, "max-age=60\ncache-control: NO-STORE", Err(N::NoStore)),
            // §5.2.2.3: must-understand lets a status this cache implements through no-store.
            (200, "max-age=60, no-store, must-understand", Ok(60)),
            (
                299,
                "max-age=60, no-store, must-understand",
                Err(N::MustUnderstand),
            ),
            (299, "max-age=60, must-understand", Err(N::MustUnderstand)),
            // §5.2.2.7: private; qualified forms store the rest.
            (200, "max-age=60, private", Err(N::Private)),
            (200, "max-age=60, private=\"x-user\"", Ok(60)),
            (200, "max-age=60, private=\"\"", Err(N::Private)),
            (200, "max-age=60, private=\"bad name\"", Err(N::Private)),
            // Status codes: 206, 304, 1xx and out of range never.
            (206, "max-age=60", Err(N::Status)),
            (304, "max-age=60", Err(N::Status)),
            (100, "max-age=60", Err(N::Status)),
            (600, "max-age=60", Err(N::Status)),
            // Others than RFC 9110 §15.1's list need explicit freshness; public is not enough.
            (302, "max-age=60", Ok(60)),
            (503, "s-maxage=5", Ok(5)),
            (302, "", Err(N::Status)),
            (302, "public", Err(N::Status)),
            (500, "no-cache", Err(N::Status)),
            // Heuristic statuses without freshness and without a route default.
            (404, "", Err(N::NoFreshness)),
            (200, "public", Err(N::NoFreshness)),
        ];
        for (status, cc, expected) in rows {
            let got = decide(*status, &format!("cache-control: {cc}"));
            assert_eq!(lifetime(got), *expected, "{status} {cc:?}");
        }
    }

    /// Set-Cookie and Vary. Each row: response fields, decision for a plain GET.
    #[test]
    fn storability_by_response_fields() {
        let rows: &[(&str, Result<u64, N>)] = &[
            // A shared cache never replays a cookie the origin did not mark private.
            (
                "cache-control: max-age=60\nset-cookie: a=1",
                Err(N::SetCookie),
            ),
            (
                "cache-control: max-age=60, private=\"Set-Cookie\"\nset-cookie: a=1",
                Ok(60),
            ),
            (
                "cache-control: max-age=60, no-cache=\"set-cookie\"\nset-cookie: a=1",
                Ok(60),
            ),
            (
                "cache-control: max-age=60, private=\"x-a\"\nset-cookie: a=1",
                Err(N::SetCookie),
            ),
            // §4.1: Vary: * never matches; neither does a Vary we cannot read.
            (
                "cache-control: max-age=60\nvary: accept, *",
                Err(N::VaryStar),
            ),
            (
                "cache-control: max-age=60\nvary: accept\nvary: *",
                Err(N::VaryStar),
            ),
            ("cache-control: max-age=60\nvary: a b", Err(N::VaryStar)),
            ("cache-control: max-age=60\nvary: Accept-Encoding", Ok(60)),
        ];
        for (rsp, expected) in rows {
            assert_eq!(lifetime(decide(200, rsp)), *expected, "{rsp:?}");
        }
    }

    /// §3.5: with the route's permission, an authorized response needs the response's too.
    #[test]
    fn authorization_with_cache_authorized() {
        let allowed = RouteCachePolicy {
            cache_authorized: true,
            ..policy()
        };
        let rows: &[(&str, Result<u64, N>)] = &[
            ("max-age=60", Err(N::Authorization)),
            ("public, max-age=60", Ok(60)),
            ("s-maxage=60", Ok(60)),
            ("must-revalidate, max-age=60", Ok(60)),
        ];
        for (cc, expected) in rows {
            let rsp = format!("cache-control: {cc}");
            let got = decide_with(&Method::GET, "authorization: x", 200, &rsp, &allowed);
            assert_eq!(lifetime(got), *expected, "{cc}");
        }
    }

    #[test]
    fn bypass_rules() {
        let with_auth = RouteCachePolicy {
            cache_authorized: true,
            ..policy()
        };
        // (method, request fields, route allows Authorization, bypass)
        let rows: &[(Method, &str, bool, Option<BypassReason>)] = &[
            (Method::GET, "", false, None),
            (Method::HEAD, "", false, None),
            (Method::POST, "", false, Some(BypassReason::Method)),
            (Method::PUT, "", true, Some(BypassReason::Method)),
            (Method::OPTIONS, "", false, Some(BypassReason::Method)),
            (
                Method::GET,
                "authorization: x",
                false,
                Some(BypassReason::Authorization),
            ),
            (Method::GET, "authorization: x", true, None),
            // §5.2.1.5: request no-store still looks up (it only forbids storing).
            (Method::GET, "cache-control: no-store", false, None),
        ];
        for (method, req, allow_auth, expected) in rows {
            let policy = if *allow_auth { &with_auth } else { &policy() };
            let req_facts = RequestFacts::from_parts(method, &fields(req));
            assert_eq!(
                request_bypass(&req_facts, policy),
                *expected,
                "{method} {req}"
            );
        }
        assert_eq!(BypassReason::Authorization.as_str(), "authorization");
        assert_eq!(BypassReason::Method.as_str(), "method");
    }

    /// §4.2.1: where the lifetime comes from. The response arrives at T0 + 1.
    #[test]
    fn lifetime_sources() {
        let rows: &[(String, Result<u64, N>)] = &[
            (
                String::from("cache-control: s-maxage=30, max-age=60"),
                Ok(30),
            ),
            (
                format!("cache-control: max-age=60\nexpires: {PLUS_101}"),
                Ok(60),
            ),
            (format!("expires: {PLUS_101}\ndate: {PLUS_1}"), Ok(100)),
            // Date absent or invalid: the response time stands in.
            (format!("expires: {PLUS_101}"), Ok(100)),
            (format!("expires: {PLUS_101}\ndate: yesterday"), Ok(100)),
            // Date a minute earlier: the lifetime counts from Date.
            (format!("expires: {PLUS_101}\ndate: {MINUS_59}"), Ok(160)),
            // Expires before Date: stale on arrival.
            (format!("expires: {MINUS_100}\netag: \"v1\""), Ok(0)),
            // §5.3: an invalid Expires (0 included) has expired; several are invalid.
            (String::from("expires: 0\netag: \"v1\""), Ok(0)),
            (
                format!("expires: {PLUS_101}\nexpires: {PLUS_101}\netag: \"v1\""),
                Ok(0),
            ),
            // ...and without a validator such a response could never be served.
            (String::from("expires: 0"), Err(N::StaleWithoutValidator)),
            // Origin lifetimes are capped at 2^31 s.
            (
                String::from("expires: Fri, 31 Dec 9999 23:59:59 GMT"),
                Ok(MAX_DELTA_SECONDS),
            ),
            // §4.2.1: an invalid or conflicting max-age is stale.
            (
                String::from("cache-control: max-age=ten\netag: \"v1\""),
                Ok(0),
            ),
            (
                String::from("cache-control: max-age=10, max-age=20\netag: \"v1\""),
                Ok(0),
            ),
            // Unqualified no-cache: stored with lifetime 0, every use revalidated.
            (
                String::from("cache-control: no-cache, max-age=60\netag: \"v1\""),
                Ok(0),
            ),
            (
                String::from("cache-control: no-cache"),
                Err(N::StaleWithoutValidator),
            ),
        ];
        for (rsp, expected) in rows {
            assert_eq!(lifetime(decide(200, rsp)), *expected, "{rsp:?}");
        }
        let f = stored(decide(200, "cache-control: no-cache\netag: \"v1\""));
        assert!(f.always_revalidate && f.must_revalidate);
    }

    /// The route's TTLs: the default only without explicit freshness, on heuristic statuses;
    /// the override replaces the lifetime but none of the prohibitions.
    #[test]
    fn route_ttls() {
        let default_120 = RouteCachePolicy {
            default_ttl: s(120),
            ..policy()
        };
        let override_5 = RouteCachePolicy {
            override_ttl: Some(s(5)),
            ..policy()
        };
        let rows: &[(&RouteCachePolicy, u16, &str, Result<u64, N>)] = &[
            (&default_120, 200, "", Ok(120)),
            (&default_120, 404, "", Ok(120)),
            (&default_120, 200, "max-age=7", Ok(7)),
            (
                &default_120,
                200,
                "max-age=0",
                Err(N::StaleWithoutValidator),
            ),
            (&default_120, 302, "", Err(N::Status)),
            (&default_120, 503, "", Err(N::Status)),
            (&override_5, 200, "max-age=600", Ok(5)),
            (&override_5, 200, "", Ok(5)),
            (&override_5, 302, "", Err(N::Status)),
            (&override_5, 302, "max-age=600", Ok(5)),
            (&override_5, 200, "max-age=600, no-store", Err(N::NoStore)),
            (&override_5, 200, "max-age=600, private", Err(N::Private)),
            (&override_5, 200, "no-cache", Err(N::StaleWithoutValidator)),
        ];
        for (policy, status, cc, expected) in rows {
            let rsp = format!("cache-control: {cc}");
            let got = decide_with(&Method::GET, "", *status, &rsp, policy);
            assert_eq!(lifetime(got), *expected, "{status} {cc:?}");
        }
    }

    /// RFC 9213 §2.1: a valid targeted field replaces Cache-Control and Expires.
    #[test]
    fn targeted_field_replaces_cache_control() {
        // (Cache-Control, CDN-Cache-Control, Outrider-Cache-Control; "-" absent, decision)
        let rows: &[(&str, &str, &str, Result<u64, N>)] = &[
            ("no-store", "max-age=600", "-", Ok(600)),
            ("max-age=60", "no-store", "-", Err(N::NoStore)),
            ("max-age=60", "private", "-", Err(N::Private)),
            ("max-age=60", "max-age=600", "max-age=5", Ok(5)),
            (
                "max-age=60",
                "max-age=600",
                "no-store=?0",
                Err(N::NoFreshness),
            ),
            // Invalid or empty targeted fields fall back to the next, then Cache-Control.
            ("max-age=60", "Max-Age=600", "-", Ok(60)),
            ("max-age=60", "", "-", Ok(60)),
            ("max-age=60", "max-age=600", "max-age=5,", Ok(600)),
            // Expires is ignored too, which leaves no explicit freshness.
            ("-", "public", "-", Err(N::NoFreshness)),
        ];
        for (cc, cdn, outrider, expected) in rows {
            let mut rsp = format!("expires: {PLUS_101}\nother-cache-control: no-store");
            for (name, value) in [
                ("cache-control", cc),
                ("cdn-cache-control", cdn),
                ("outrider-cache-control", outrider),
            ] {
                if *value != "-" {
                    rsp.push_str(&format!("\n{name}: {value}"));
                }
            }
            assert_eq!(lifetime(decide(200, &rsp)), *expected, "{rsp:?}");
        }
    }

    /// §4.2.3: the age a response has on arrival; the exchange took 1 s.
    #[test]
    fn initial_age_calculation() {
        // (Date and Age fields, initial age)
        let rows: &[(String, u64)] = &[
            (String::new(), 1),
            (format!("date: {PLUS_1}"), 1),
            // apparent_age = response_time − Date.
            (format!("date: {MINUS_9}"), 10),
            // corrected_age_value = Age + response_delay; the larger of the two wins.
            (format!("date: {PLUS_1}\nage: 30"), 31),
            (format!("date: {MINUS_99}\nage: 30"), 100),
            // Date in the future (origin clock ahead): apparent age 0.
            (format!("date: {PLUS_1000}"), 1),
            // Invalid Age ignored; several lines: the largest valid one.
            ("age: abc".into(), 1),
            ("age: -5".into(), 1),
            ("age: 5\nage: x\nage: 50".into(), 51),
            ("age: 99999999999999".into(), MAX_DELTA_SECONDS),
        ];
        for (rsp, expected) in rows {
            let rsp_fields = format!("cache-control: max-age=600\netag: \"v1\"\n{rsp}");
            let f = stored(decide(200, &rsp_fields));
            assert_eq!(f.initial_age, s(*expected), "{rsp:?}");
        }
    }

    #[test]
    fn freshness_instants() {
        let f = Freshness {
            lifetime: s(60),
            initial_age: s(10),
            stale_while_revalidate: s(5),
            stale_if_error: s(300),
            must_revalidate: false,
            always_revalidate: false,
        };
        let rt = at(T0);
        assert_eq!(f.created(rt), at(T0 - 10));
        assert_eq!(f.fresh_until(rt), at(T0 + 50));
        assert_eq!(f.expires(rt), at(T0 + 350));
        // Stale on arrival: fresh_until is already past.
        let stale = Freshness {
            initial_age: s(100),
            ..f
        };
        assert_eq!(stale.fresh_until(rt), at(T0 - 40));
        // Huge route TTLs do not overflow.
        let forever = Freshness {
            lifetime: Duration::MAX,
            ..f
        };
        assert!(forever.expires(rt) > rt);
    }

    /// RFC 5861 and §4.2.4: the stale windows and who may extend them.
    #[test]
    fn stale_serving() {
        let defaults = RouteCachePolicy {
            stale_while_revalidate: s(10),
            stale_if_error: s(600),
            ..policy()
        };
        // (Cache-Control, stale-while-revalidate, stale-if-error, must_revalidate)
        let rows: &[(&str, u64, u64, bool)] = &[
            ("max-age=60", 10, 600, false),
            ("max-age=60, stale-while-revalidate=30", 30, 600, false),
            ("max-age=60, stale-if-error=0", 10, 0, false),
            ("max-age=60, stale-while-revalidate=bad", 10, 600, false),
            // §4.2.4: explicit prohibitions.
            (
                "max-age=60, must-revalidate, stale-while-revalidate=30",
                0,
                0,
                true,
            ),
            ("max-age=60, proxy-revalidate", 0, 0, true),
            ("no-cache, stale-if-error=60", 0, 0, true),
            // §5.2.2.10: s-maxage implies proxy-revalidate; only explicit windows remain.
            ("s-maxage=60", 0, 0, true),
            ("s-maxage=60, stale-while-revalidate=30", 30, 0, true),
        ];
        for (cc, swr, sie, must_revalidate) in rows {
            let rsp = format!("cache-control: {cc}\netag: \"v1\"");
            let f = stored(decide_with(&Method::GET, "", 200, &rsp, &defaults));
            let got = (
                f.stale_while_revalidate,
                f.stale_if_error,
                f.must_revalidate,
            );
            assert_eq!(got, (s(*swr), s(*sie), *must_revalidate), "{cc}");
            let facts = ResponseFacts::from_headers(200, &fields(&rsp), &[]);
            assert_eq!(facts.must_revalidate(), *must_revalidate, "{cc}");
        }
        // Stale on arrival and no validator, but a stale window makes it servable.
        let got = decide_with(&Method::GET, "", 200, "cache-control: max-age=0", &defaults);
        assert_eq!(lifetime(got), Ok(0));
        let got = decide(200, "cache-control: max-age=0");
        assert_eq!(lifetime(got), Err(N::StaleWithoutValidator));
    }

    #[test]
    fn fields_to_strip() {
        let rsp = "cache-control: max-age=60, private=\"Set-Cookie, X-User\"\n\
                   cache-control: no-cache=\"x-user, x-debug\"";
        let facts = ResponseFacts::from_headers(200, &fields(rsp), &[]);
        let strip = facts.fields_to_strip();
        let names: Vec<&str> = strip.iter().map(HeaderName::as_str).collect();
        assert_eq!(names, ["set-cookie", "x-user", "x-debug"]);
    }

    #[test]
    fn vary_fields() {
        let rows: &[(&str, Vary)] = &[
            ("", Vary::None),
            ("vary: ", Vary::None),
            ("vary:  , ", Vary::None),
            ("vary: *", Vary::Star),
            ("vary: accept\nvary: *", Vary::Star),
            ("vary: a b", Vary::Star),
            (
                "vary: Accept-Encoding, accept\nvary: ACCEPT-encoding",
                Vary::Fields(vec![
                    HeaderName::from_static("accept"),
                    HeaderName::from_static("accept-encoding"),
                ]),
            ),
        ];
        for (rsp, expected) in rows {
            let facts = ResponseFacts::from_headers(200, &fields(rsp), &[]);
            assert_eq!(facts.vary, *expected, "{rsp:?}");
        }
    }

    #[test]
    fn response_facts_fields() {
        let rsp = format!("last-modified: {MINUS_3600}\ndate: garbage\nset-cookie: a=1");
        let facts = ResponseFacts::from_headers(200, &fields(&rsp), &[]);
        assert_eq!(facts.last_modified, Some(at(T0 - 3600)));
        assert_eq!(facts.date, None);
        assert!(facts.has_validator && facts.set_cookie);
        assert_eq!(facts.expires, Expires::Absent);
        // (fields, has a validator)
        let rows: &[(&str, bool)] = &[
            ("last-modified: nope", false),
            ("etag: \"v1\"", true),
            ("etag: W/\"v1\"", true),
            ("", false),
        ];
        for (rsp, expected) in rows {
            let facts = ResponseFacts::from_headers(200, &fields(rsp), &[]);
            assert_eq!(facts.has_validator, *expected, "{rsp}");
        }
    }

    /// §5.4: Pragma: no-cache only counts without Cache-Control.
    #[test]
    fn pragma() {
        let rows: &[(&str, bool)] = &[
            ("pragma: no-cache", true),
            ("pragma: foo, No-Cache", true),
            ("pragma: no-cache\ncache-control: max-stale", false),
            ("pragma: no-cache=1", false),
            ("", false),
        ];
        for (req, expected) in rows {
            let facts = RequestFacts::from_parts(&Method::GET, &fields(req));
            assert_eq!(facts.pragma_no_cache, *expected, "{req:?}");
        }
    }

    /// §5.2.1: request directives against a stored response's age and lifetime.
    #[test]
    fn hit_verdicts() {
        use HitVerdict::{Fresh, RequestRevalidate, Stale, StaleAccepted};
        // (request Cache-Control, Pragma: no-cache, age, lifetime, must_revalidate, verdict)
        let rows: &[(&str, bool, u64, u64, bool, HitVerdict)] = &[
            ("", false, 10, 60, false, Fresh),
            ("", false, 60, 60, false, Stale),
            ("", false, 61, 60, false, Stale),
            // §5.2.1.4 and §5.4.
            ("no-cache", false, 10, 60, false, RequestRevalidate),
            ("", true, 10, 60, false, RequestRevalidate),
            // §5.2.1.1: max-age bounds the age.
            ("max-age=10", false, 10, 60, false, Fresh),
            ("max-age=10", false, 11, 60, false, RequestRevalidate),
            ("max-age=0", false, 0, 60, false, Fresh),
            ("max-age=0", false, 1, 60, false, RequestRevalidate),
            ("max-age=abc", false, 1, 60, false, RequestRevalidate),
            // §5.2.1.3: min-fresh wants that much freshness left.
            ("min-fresh=20", false, 40, 60, false, Fresh),
            ("min-fresh=20", false, 41, 60, false, RequestRevalidate),
            ("min-fresh=20", false, 70, 60, false, RequestRevalidate),
            // §5.2.1.2: max-stale, unless the response forbids stale serving.
            ("max-stale", false, 1000, 60, false, StaleAccepted),
            ("max-stale=10", false, 70, 60, false, StaleAccepted),
            ("max-stale=10", false, 71, 60, false, Stale),
            ("max-stale", false, 1000, 60, true, Stale),
            ("max-stale=10", false, 10, 60, true, Fresh),
            (
                "max-stale, max-age=100",
                false,
                101,
                60,
                false,
                RequestRevalidate,
            ),
        ];
        for (cc, pragma, age, lifetime, must_revalidate, expected) in rows {
            let req = CacheControl::parse([&HeaderValue::from_str(cc).expect("valid")]);
            let got = hit_acceptable(&req, *pragma, s(*age), s(*lifetime), *must_revalidate);
            let context = format!("{cc:?} pragma={pragma} age={age} lifetime={lifetime}");
            assert_eq!(got, *expected, "{context}");
        }
        let only = CacheControl::parse([&HeaderValue::from_static("only-if-cached")]);
        assert!(only.only_if_cached);
    }

    /// §4.4: what an unsafe request invalidates.
    #[test]
    fn invalidation() {
        const URL: &str = "https://H.test/1?x";
        // (method, status, Location, Content-Location, targets after URL, "-" for none at all)
        let rows: &[(&str, u16, &str, &str, &str)] = &[
            ("GET", 200, "", "", "-"),
            ("HEAD", 200, "", "", "-"),
            ("OPTIONS", 200, "", "", "-"),
            ("TRACE", 200, "", "", "-"),
            ("POST", 200, "", "", ""),
            ("DELETE", 204, "", "", ""),
            ("PATCH", 200, "", "", ""),
            ("PURGEX", 200, "", "", ""),
            // Error statuses invalidate nothing.
            ("POST", 404, "", "", "-"),
            ("POST", 500, "", "", "-"),
            ("PUT", 302, "/a", "", "https://H.test/a"),
            ("POST", 201, "/a?v=1#top", "", "https://H.test/a?v=1"),
            (
                "POST",
                201,
                "https://h.test:443/a",
                "",
                "https://h.test:443/a",
            ),
            ("POST", 201, "/a", "/b", "https://H.test/a https://H.test/b"),
            // Other hosts, schemes and ports; reference forms not resolved.
            ("POST", 201, "https://evil.test/1", "", ""),
            ("POST", 201, "http://h.test/1", "", ""),
            ("POST", 201, "https://h.test:8443/1", "", ""),
            ("POST", 201, "../x", "//h.test/x", ""),
            ("POST", 201, "x", "?q", ""),
            // No duplicates.
            ("POST", 201, URL, URL, ""),
            ("POST", 201, "/a", "/a", "https://H.test/a"),
        ];
        for (method, status, location, content_location, expected) in rows {
            let method = Method::from_bytes(method.as_bytes()).expect("valid method");
            let location = (!location.is_empty()).then_some(*location);
            let content_location = (!content_location.is_empty()).then_some(*content_location);
            let got = invalidation_targets(&method, *status, URL, location, content_location);
            let expected: Vec<&str> = match *expected {
                "-" => Vec::new(),
                more => std::iter::once(URL)
                    .chain(more.split_whitespace())
                    .collect(),
            };
            let context = format!("{method} {status} {location:?} {content_location:?}");
            assert_eq!(got, expected, "{context}");
        }
        // An unparseable request URL is still invalidated itself.
        let got = invalidation_targets(&Method::POST, 200, "not a url", Some("/x"), None);
        assert_eq!(got, ["not a url"]);
    }

    #[test]
    fn reason_names_are_kebab_case() {
        let all = [
            N::Method,
            N::RequestNoStore,
            N::NoStore,
            N::MustUnderstand,
            N::Private,
            N::Authorization,
            N::SetCookie,
            N::VaryStar,
            N::Status,
            N::NoFreshness,
            N::StaleWithoutValidator,
        ];
        for reason in all {
            let name = reason.as_str();
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{name}"
            );
        }
        assert_eq!(N::SetCookie.as_str(), "set-cookie");
        assert_eq!(N::StaleWithoutValidator.as_str(), "stale-without-validator");
    }

    #[test]
    fn fuzz_check_regressions() {
        let seeds: &[&[u8]] = &[
            b"",
            b"\x00\x00\x00",
            b"\x00\x00\x00\n\x00max-age=60\n\x08\"v1\"",
            b"\x7f\xff\xff\n\x00max-age=60, no-store, must-understand\n\x03max-age=5,",
            b"\x02\x00\x00\n\x0bhttps://example.com/x\n\x0c/y\n\x0fexample.com:80\n\x10/a?b&a=2",
            b"\x00\x00\x00\n\x0f\n\x10",
            b"\x00\x00\x00\n\x0fa/b\n\x10x?q",
        ];
        for seed in seeds {
            fuzz_check(seed);
        }
    }

    proptest! {
        #[test]
        fn fuzz_check_on_random_input(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            fuzz_check(&data);
        }

        /// Random lines of plausible directives, so that the storing branches get exercised.
        #[test]
        fn fuzz_check_on_directive_lines(
            knobs in any::<[u8; 3]>(),
            lines in proptest::collection::vec((0u8..17, LINE), 0..6),
        ) {
            let mut data = knobs.to_vec();
            for (selector, value) in lines {
                data.push(b'\n');
                data.push(selector);
                data.extend_from_slice(value.as_bytes());
            }
            fuzz_check(&data);
        }
    }

    /// Values for [`fuzz_check_on_directive_lines`].
    const LINE: &str = "[a-z =,\"0-9-]{0,24}|max-age=[0-9]{1,3}|no-store|private|no-cache\
                        |\"v1\"|/p\\?a=1&b=2|Tue, 14 Nov 2023 22:1[0-9]:00 GMT";
}
