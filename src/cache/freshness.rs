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
//! - **Cookie.** A response to a request carrying `Cookie` is stored only when the origin
//!   says it is shared: `public`, `s-maxage`, a targeted field (RFC 9213, addressed to shared
//!   caches by name), or `Vary: Cookie` (then each cookie has its own entry). RFC 9111 allows
//!   storing it on `max-age` alone, but an origin that personalises by cookie and forgets
//!   `private` would then serve one user's page to the next; Varnish does not store these at all.
//! - **A GET or HEAD with a body** bypasses the cache: the key does not cover the body, and an
//!   origin that reads it would let one client's body decide what everyone is served.
//! - **Set-Cookie** makes a response unstorable: a shared cache replaying one user's cookie to
//!   everyone is a session leak, and origins forget `private` far too often. The exceptions
//!   are an origin that names the field in `private="Set-Cookie"` or `no-cache="Set-Cookie"`
//!   (it has said the rest is shared, so the response is stored with the field stripped), and
//!   a route with `store_set_cookie`, whose operator vouches that its cookies are not per user
//!   (stored and replayed as RFC 9111 allows).
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
//!   Age + response_delay)`, capped at 2^31 s. `Age` is a singleton field: of several values,
//!   on one line (`Age: 7200, 0`) or on several, the first counts, as in the HTTP caching
//!   test suite; a first value that is not delta-seconds (`-1`, `1.5`, `7200a`) makes the
//!   field invalid, and an invalid `Age` is ignored (§1.2.2 and §4.2.3's "0 if not
//!   available"). A response stored with
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
//! - **Stale on open** (issue #7): while the proxy refuses to send a request upstream (breaker
//!   open, concurrency limit), a stored response may be served within the route's
//!   `stale_on_open`, else within its stale-if-error window. The route's window yields to the
//!   same prohibitions as the others (must-revalidate family, `s-maxage`), where the
//!   response's own `stale-if-error` still applies.
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
    AGE, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, COOKIE, DATE, ETAG, EXPIRES, LAST_MODIFIED,
    PRAGMA, SET_COOKIE, TRANSFER_ENCODING, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::control::{targeted, CacheControl, MaxStale, MAX_DELTA_SECONDS};
use super::key::UrlParts;
use crate::conditional::parse_http_date;
use crate::config::policy::RouteCachePolicy;

/// The status codes a cache may store without explicit freshness (RFC 9110 §15.1).
pub(crate) const HEURISTIC_STATUSES: [u16; 11] =
    [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// What the caching decisions need from a response's header section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResponseFacts {
    pub status: u16,
    /// `Cache-Control`, all lines.
    pub(crate) cc: CacheControl,
    /// The winning targeted field (RFC 9213), which replaces `cc` and `expires` when present.
    pub(crate) targeted: Option<CacheControl>,
    pub(crate) expires: Expires,
    /// `Date`; `None` when absent, invalid or given more than once.
    pub(crate) date: Option<SystemTime>,
    /// `Age` in seconds (saturated at 2^31); `None` when absent or invalid.
    pub(crate) age: Option<u64>,
    /// `Last-Modified`; `None` when absent, invalid or given more than once.
    pub(crate) last_modified: Option<SystemTime>,
    pub(crate) set_cookie: bool,
    pub(crate) vary: Vary,
    /// An `ETag` field or a valid `Last-Modified`: something to revalidate with.
    pub(crate) has_validator: bool,
}

/// The `Expires` field (RFC 9111 §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expires {
    Absent,
    At(SystemTime),
    /// Not an HTTP-date (`0`, `-1`, garbage): already expired (§5.3).
    Invalid,
    /// More than one line: invalid freshness information (§4.2.1).
    Multiple,
}

/// The `Vary` field (RFC 9110 §12.5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Vary {
    None,
    /// `*`, or a member that is not a field name.
    Star,
    /// Lowercased, sorted, without duplicates.
    Fields(Vec<HeaderName>),
}

/// What the caching decisions need from a request's header section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestFacts {
    pub(crate) method: MethodClass,
    pub(crate) cc: CacheControl,
    pub(crate) authorization: bool,
    /// The request carries `Cookie`.
    pub(crate) cookie: bool,
    /// The request has a body (a non-zero `Content-Length`, or `Transfer-Encoding`).
    pub(crate) body: bool,
    /// `Pragma: no-cache` on a request without `Cache-Control` (RFC 9111 §5.4).
    pub(crate) pragma_no_cache: bool,
}

/// The request method, as far as caching cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum MethodClass {
    Get,
    Head,
    /// Never looked up nor stored.
    Other,
}

/// When the request was sent upstream and when its response arrived (RFC 9111 §4.2.3's
/// `request_time` and `response_time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExchangeTimes {
    pub(crate) request_time: SystemTime,
    pub(crate) response_time: SystemTime,
}

/// Why a request skips the cache altogether (no lookup, no store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum BypassReason {
    /// Neither GET nor HEAD.
    Method,
    /// `Authorization` on a route without `cache_authorized`.
    Authorization,
    /// A GET or HEAD with a body: the key does not cover it, yet the origin may answer by it.
    Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Storability {
    Store(Freshness),
    DontStore(NotStoredReason),
}

/// How long a response to be stored is fresh, and how it may be served once stale.
///
/// Times are relative to the response time; see [`Freshness::created`] and
/// [`Freshness::fresh_until`] for the absolute instants a store records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Freshness {
    /// Freshness lifetime (§4.2.1), counted from the response's creation.
    pub(crate) lifetime: Duration,
    /// The age the response already had when received (§4.2.3).
    pub(crate) initial_age: Duration,
    /// How long after going stale it may be served while revalidating in the background.
    pub(crate) stale_while_revalidate: Duration,
    /// How long after going stale it may be served when the origin fails.
    pub(crate) stale_if_error: Duration,
    /// How long after going stale it may be served while the proxy refuses to send requests
    /// to the origin (breaker open, over the concurrency limit).
    pub(crate) stale_on_open: Duration,
    /// No stale serving beyond the two windows above, which are zero when the origin sent
    /// `must-revalidate`, `proxy-revalidate` or `no-cache`; and a client's `max-stale` is not
    /// honoured.
    pub(crate) must_revalidate: bool,
    /// Unqualified `no-cache`: every reuse needs validation (lifetime is 0).
    pub(crate) always_revalidate: bool,
}

/// Why a response is not stored; [`NotStoredReason::as_str`] is the log and `Cache-Status`
/// `detail` spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum NotStoredReason {
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
    /// A request with `Cookie`, and a response that does not say it is shared.
    Cookie,
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
pub(crate) enum HitVerdict {
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
pub(crate) fn request_bypass(
    req: &RequestFacts,
    policy: &RouteCachePolicy,
) -> Option<BypassReason> {
    if req.method == MethodClass::Other {
        return Some(BypassReason::Method);
    }
    if req.authorization && !policy.cache_authorized {
        return Some(BypassReason::Authorization);
    }
    if req.body {
        return Some(BypassReason::Body);
    }
    None
}

/// Whether the response to `req` may be stored, and if so its freshness (RFC 9111 §3, §4.2).
/// The first reason that applies is returned, in the order of [`NotStoredReason`].
pub(crate) fn storability(
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
    if req.cookie
        && !(cc.public || cc.s_maxage.is_some() || rsp.targeted.is_some() || rsp.varies_on(&COOKIE))
    {
        return dont(Not::Cookie);
    }
    if rsp.set_cookie && !policy.store_set_cookie && !rsp.fields_to_strip().contains(&SET_COOKIE) {
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
    } else if let Some(heuristic) = heuristic::lifetime(rsp, policy, times.response_time) {
        heuristic
    } else if !policy.default_ttl.is_zero() {
        policy.default_ttl
    } else {
        return dont(Not::NoFreshness);
    };

    let (stale_while_revalidate, stale_if_error, must_revalidate) = stale_windows(cc, policy);
    // The operator's window for an upstream known to be down; like stale-if-error it yields to
    // the origin's must-revalidate family (RFC 9111 §4.2.4: no stale response without
    // validation, even when disconnected) and, with s-maxage, to the origin's own windows.
    let stale_on_open = match policy.stale_on_open {
        Some(window) if !must_revalidate => window,
        _ => stale_if_error,
    };
    let freshness = Freshness {
        lifetime,
        initial_age: initial_age(rsp, times),
        stale_while_revalidate,
        stale_if_error,
        stale_on_open,
        must_revalidate,
        always_revalidate: cc.no_cache,
    };
    let servable = freshness.lifetime > freshness.initial_age
        || rsp.has_validator
        || !stale_while_revalidate.is_zero()
        || !stale_if_error.is_zero()
        || !stale_on_open.is_zero();
    if !servable {
        return dont(Not::StaleWithoutValidator);
    }
    Storability::Store(freshness)
}

/// Whether a stored response of `age` and freshness `lifetime` satisfies the request's
/// directives (RFC 9111 §5.2.1). `must_revalidate` is the stored response's
/// [`Freshness::must_revalidate`] (or [`ResponseFacts::must_revalidate`] of its headers).
pub(crate) fn hit_acceptable(
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
/// ([`super::key::primary_key`]).
pub(crate) fn invalidation_targets(
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

/// The first non-empty member of a field's comma-separated values, over all its lines in
/// order (RFC 9110 §5.3: several lines are one list).
fn first_member(headers: &HeaderMap, name: HeaderName) -> Option<&[u8]> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .find(|member| !member.is_empty())
}

/// An `Age` value: delta-seconds, saturated at 2^31.
fn age_seconds(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
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
    pub(crate) fn from_headers(
        status: u16,
        headers: &HeaderMap,
        targeted_names: &[String],
    ) -> Self {
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
            age: first_member(headers, AGE).and_then(age_seconds),
            last_modified,
            set_cookie: headers.contains_key(SET_COOKIE),
            vary: Vary::from_headers(headers),
            has_validator: headers.contains_key(ETAG) || last_modified.is_some(),
        }
    }

    /// The response's `Vary` names `field` (lowercase).
    pub(crate) fn varies_on(&self, field: &HeaderName) -> bool {
        matches!(&self.vary, Vary::Fields(fields) if fields.contains(field))
    }

    /// The directives that decide: the targeted field when there is one, else Cache-Control.
    pub(crate) fn effective_cc(&self) -> &CacheControl {
        self.targeted.as_ref().unwrap_or(&self.cc)
    }

    /// The fields the adapter removes before storing (from `private="…"` and `no-cache="…"`),
    /// lowercased and without duplicates.
    pub(crate) fn fields_to_strip(&self) -> Vec<HeaderName> {
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
    pub(crate) fn must_revalidate(&self) -> bool {
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
    pub(crate) fn from_parts(method: &Method, headers: &HeaderMap) -> Self {
        let method = match *method {
            Method::GET => MethodClass::Get,
            Method::HEAD => MethodClass::Head,
            _ => MethodClass::Other,
        };
        RequestFacts {
            method,
            cc: CacheControl::from_headers(headers),
            authorization: headers.contains_key(AUTHORIZATION),
            cookie: headers.contains_key(COOKIE),
            body: headers.contains_key(TRANSFER_ENCODING)
                || headers
                    .get(CONTENT_LENGTH)
                    .is_some_and(|v| v.as_bytes().iter().any(|&b| b != b'0')),
            pragma_no_cache: !headers.contains_key(CACHE_CONTROL)
                && list_contains(headers, PRAGMA, "no-cache"),
        }
    }
}

// === impl BypassReason ===

impl BypassReason {
    /// The log and `Cache-Status` `detail` spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BypassReason::Method => "method",
            BypassReason::Authorization => "authorization",
            BypassReason::Body => "request-body",
        }
    }
}

// === impl Freshness ===

impl Freshness {
    /// When the response was generated by the origin, as this cache reckons:
    /// `response_time − initial_age` (saturating at the epoch).
    pub(crate) fn created(&self, response_time: SystemTime) -> SystemTime {
        response_time
            .checked_sub(self.initial_age)
            .unwrap_or(UNIX_EPOCH.min(response_time))
    }

    /// When it stops being fresh: `created + lifetime`, in the past for a response stale on
    /// arrival.
    pub(crate) fn fresh_until(&self, response_time: SystemTime) -> SystemTime {
        later(self.created(response_time), self.lifetime)
    }

    /// When the store may drop it: `fresh_until` plus the longer stale window.
    #[cfg(any(test, fuzzing))]
    pub(crate) fn expires(&self, response_time: SystemTime) -> SystemTime {
        let window = self
            .stale_while_revalidate
            .max(self.stale_if_error)
            .max(self.stale_on_open);
        later(self.fresh_until(response_time), window)
    }
}

// === impl NotStoredReason ===

impl NotStoredReason {
    /// Kebab-case, for logs and `Cache-Status` `detail`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NotStoredReason::Method => "method",
            NotStoredReason::RequestNoStore => "request-no-store",
            NotStoredReason::NoStore => "no-store",
            NotStoredReason::MustUnderstand => "must-understand",
            NotStoredReason::Private => "private",
            NotStoredReason::Authorization => "authorization",
            NotStoredReason::Cookie => "cookie",
            NotStoredReason::SetCookie => "set-cookie",
            NotStoredReason::VaryStar => "vary-star",
            NotStoredReason::Status => "status",
            NotStoredReason::NoFreshness => "no-freshness",
            NotStoredReason::StaleWithoutValidator => "stale-without-validator",
        }
    }
}

// The fuzzing model: compiled for unit tests and the fuzz crate (`--cfg fuzzing`), not shipped.
#[cfg(any(test, fuzzing))]
mod fuzzing;
mod heuristic;
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub use fuzzing::fuzz_check;

#[cfg(test)]
mod tests;
