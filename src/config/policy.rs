//! The compiled policy: an immutable snapshot with every decision a request needs precomputed
//! (route table with compiled matchers, upstream peers, per-route capability settings).
//!
//! A request loads one `Arc<Policy>` at its start and keeps it to its end, so a reload never
//! changes the rules under a request in flight. Nothing here knows Pingora.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use regex::Regex;
use serde::Serialize;

pub use super::slo::SloPolicy;

/// The whole compiled conf file.
#[derive(Debug, Serialize)]
pub struct Policy {
    pub server: ServerPolicy,
    pub admin: AdminPolicy,
    pub log: LogPolicy,
    pub cache_store: CacheStorePolicy,
    pub limits: LimitsPolicy,
    pub upstreams: Vec<Arc<Upstream>>,
    pub routes: RouteTable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerPolicy {
    pub listen: Vec<SocketAddr>,
    pub(crate) threads: usize,
    #[serde(with = "duration_str")]
    pub grace_period: Duration,
    /// The Unix socket over which a running process hands its listeners to a new one
    /// (`outrider --upgrade`, then SIGQUIT to the old).
    pub(crate) upgrade_sock: std::path::PathBuf,
}

/// Pingora's parser refuses a request head larger than this with a 400 before any hook runs,
/// so `[limits] max_header_bytes` above it could never apply.
pub(crate) const PARSER_MAX_HEAD_BYTES: u64 = 1_048_575;
/// Pingora's parser refuses more header fields than this with a 400 before any hook runs.
pub const PARSER_MAX_HEADERS: usize = 256;

/// The compiled `[limits]` table: what a client may send (checked in `crate::limits`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitsPolicy {
    /// Method, request target and version, as sent (414 beyond).
    pub(crate) max_request_line: u64,
    /// The request line plus every header line, as sent (431 beyond).
    pub(crate) max_header_bytes: u64,
    /// Header fields (431 beyond).
    pub(crate) max_headers: usize,
    /// Request body bytes; `None` for no limit (413 beyond).
    pub(crate) max_body: Option<u64>,
    /// The longest pause while a request body is read (408 beyond).
    #[serde(with = "duration_str")]
    pub(crate) body_timeout: Duration,
    /// How long an idle keep-alive connection is kept, and the longest pause inside the
    /// header block of a later request on it.
    #[serde(with = "duration_str")]
    pub(crate) idle_timeout: Duration,
    /// The most time from a request head's first byte to its end (408 beyond).
    #[serde(with = "duration_str")]
    pub(crate) header_timeout: Duration,
}

impl Default for LimitsPolicy {
    fn default() -> Self {
        LimitsPolicy {
            max_request_line: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_body: Some(64 * 1024 * 1024),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminPolicy {
    pub listen: SocketAddr,
    /// Bearer token for mutating endpoints; never serialized.
    #[serde(skip)]
    pub token: Option<String>,
    /// Lowercase host names (IPv6 in brackets) the admin port answers, on any port; `*` is
    /// any. Refusing other names defeats DNS rebinding: a web page on a name the attacker
    /// points at 127.0.0.1 reaches the admin port same-origin, but with its own name in `Host`.
    pub allowed_hosts: Vec<String>,
    /// `/readyz` fails while every endpoint of one of these upstreams is unhealthy.
    pub readiness_upstreams: Vec<String>,
    /// Requests feed the traffic advisor; off, `GET /advice` says so and costs nothing.
    pub advisor: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogPolicy {
    pub(crate) level: log::LevelFilter,
    pub(crate) format: LogFormat,
    pub access_log: bool,
    #[serde(with = "opt_duration_str")]
    pub(crate) slow_request: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheStorePolicy {
    pub max_size: u64,
    pub max_object_size: u64,
    /// The shared tier in Redis, if configured (fixed at start: a change needs a restart).
    pub shared: Option<SharedTierPolicy>,
    pub warm: WarmPolicy,
}

pub use super::shared_tier::{RedisUrl, SharedTierPolicy, WarmPolicy};

/// An upstream: where a route's requests go.
#[derive(Debug, Serialize)]
pub struct Upstream {
    pub name: Arc<str>,
    pub endpoints: Vec<Endpoint>,
    pub(crate) tls: bool,
    /// SNI and the Host the TLS handshake verifies; empty when `tls` is off.
    pub(crate) sni: String,
    #[serde(with = "duration_str")]
    pub(crate) connect_timeout: Duration,
    #[serde(with = "duration_str")]
    pub(crate) read_timeout: Duration,
    pub(crate) max_concurrent: usize,
    pub breaker: BreakerPolicy,
    pub retry: RetryPolicy,
    /// `[upstreams.NAME.health_check]`; `None`: passive checks only (the breaker).
    pub health_check: Option<HealthCheckPolicy>,
    /// Round-robin cursor. Lives in the snapshot: resetting it on reload is harmless, and the
    /// connection pools it points into are keyed by peer address, so they carry over anyway.
    #[serde(skip)]
    next: AtomicUsize,
}

/// One address of an upstream, as written (`label`) and as resolved (`addr`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub(crate) label: String,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerPolicy {
    pub enabled: bool,
    pub consecutive_failures: u32,
    pub failure_rate: f64,
    pub min_requests: u32,
    #[serde(with = "duration_str")]
    pub window: Duration,
    #[serde(with = "duration_str")]
    pub open_for: Duration,
    #[serde(with = "duration_str")]
    pub max_open_for: Duration,
    pub half_open_probes: u32,
    pub failure_statuses: Vec<u16>,
}

/// `[upstreams.NAME.health_check]`, compiled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheckPolicy {
    pub path: String,
    #[serde(with = "duration_str")]
    pub interval: Duration,
    #[serde(with = "duration_str")]
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub expect_status: Vec<u16>,
}

/// `[upstreams.NAME.retry]`, compiled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetryPolicy {
    /// Tries in total, the first included (1: no retry).
    pub attempts: u32,
    pub on_connect_failure: bool,
    pub on_reset: bool,
    pub on_timeout: bool,
    /// Upstream statuses that are retried (the response is discarded unless it is the last try).
    pub on_statuses: Vec<u16>,
    pub idempotent_only: bool,
    #[serde(with = "duration_str")]
    pub backoff: Duration,
    /// The most retries in the rolling window, as parts per million of its requests.
    pub budget_ppm: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 2,
            on_connect_failure: true,
            on_reset: false,
            on_timeout: false,
            on_statuses: Vec::new(),
            idempotent_only: true,
            backoff: Duration::ZERO,
            budget_ppm: 200_000,
        }
    }
}

/// Routes in file order, then the fallback used when none matches (if there is one), so that
/// a route is named by its index for the life of a request.
#[derive(Debug, Serialize)]
pub struct RouteTable {
    pub routes: Vec<Route>,
    pub has_fallback: bool,
}

#[derive(Debug, Serialize)]
pub struct Route {
    pub name: Arc<str>,
    pub matcher: Matcher,
    /// Index into `Policy::upstreams`, resolved at compile time.
    pub upstream: usize,
    pub server_timing: bool,
    pub compression: CompressionPolicy,
    pub etag: EtagPolicy,
    pub cache: RouteCachePolicy,
    pub slo: SloPolicy,
    /// Requests slower than this get a slow-request log line; `None`: off.
    #[serde(with = "opt_duration_str")]
    pub slow_request: Option<Duration>,
    /// Token bucket per client key; `None`: no limit.
    pub rate_limit: Option<RateLimitPolicy>,
    /// The most time from the request header to the upstream's response header, connect and
    /// retries included (504 beyond, or stale); `None`: no deadline.
    #[serde(with = "opt_duration_str")]
    pub deadline: Option<Duration>,
}

/// A route's `rate_limit`: `requests` tokens refill every `per`, the bucket holds `burst`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateLimitPolicy {
    pub requests: u32,
    #[serde(with = "duration_str")]
    pub per: Duration,
    pub burst: u32,
    pub key: RateLimitKey,
}

/// What identifies a client to the rate limiter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RateLimitKey {
    /// The peer address of the connection.
    ClientIp,
    /// The value of this request header, lowercase (requests without it share one bucket).
    Header(String),
}

#[derive(Debug, Default, Serialize)]
pub struct Matcher {
    pub host: Option<HostMatch>,
    pub(crate) path_prefix: Option<String>,
    #[serde(with = "opt_regex")]
    pub(crate) path_regex: Option<Regex>,
    #[serde(serialize_with = "methods_str")]
    pub(crate) methods: Vec<Method>,
}

/// `example.com` matches that host only; `*.example.com` matches any name below it (not the
/// apex), as in nginx `server_name` and Envoy `domains`. Stored lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum HostMatch {
    Exact(String),
    /// The suffix including its leading dot: `.example.com`.
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Coding {
    Zstd,
    Br,
    Gzip,
}

/// `[defaults.compression] content_types` when the conf file says nothing.
pub(crate) const DEFAULT_COMPRESSIBLE_TYPES: [&str; 7] = [
    "text/*",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/*+json",
    "application/*+xml",
    "image/svg+xml",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompressionPolicy {
    pub enabled: bool,
    pub algorithms: Vec<Coding>,
    pub min_size: u64,
    pub gzip_level: u32,
    pub brotli_level: u32,
    pub zstd_level: i32,
    pub content_types: Vec<String>,
    /// Send `Accept-Encoding: identity` upstream so the body arrives uncompressed and the
    /// proxy chooses the coding per client.
    pub upstream_identity: bool,
}

impl CompressionPolicy {
    /// The route compresses at all: enabled, with at least one coding to offer.
    pub fn compresses(&self) -> bool {
        self.enabled && !self.algorithms.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EtagPolicy {
    pub generate: bool,
    pub max_body: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyQueryPolicy {
    All,
    None,
    Allow(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteCachePolicy {
    pub enabled: bool,
    #[serde(with = "duration_str")]
    pub default_ttl: Duration,
    #[serde(with = "opt_duration_str")]
    pub(crate) override_ttl: Option<Duration>,
    #[serde(with = "duration_str")]
    pub(crate) stale_while_revalidate: Duration,
    #[serde(with = "duration_str")]
    pub stale_if_error: Duration,
    pub(crate) cache_authorized: bool,
    pub tag_header: String,
    /// `tag_header` parsed once, for the request path.
    #[serde(skip)]
    pub(crate) tag_header_name: Option<http::HeaderName>,
    pub(crate) targeted_cache_control: Vec<String>,
    /// `targeted_cache_control` parsed once, for the request path.
    #[serde(skip)]
    pub(crate) targeted_names: Vec<http::HeaderName>,
    /// How stale a stored response may be served while the upstream refuses requests (breaker
    /// open, over the limit). `None`: the response's own stale-if-error window.
    #[serde(with = "opt_duration_str")]
    pub stale_on_open: Option<Duration>,
    pub key_query: KeyQueryPolicy,
    /// Store responses carrying `Set-Cookie` (and replay the field on hits).
    pub store_set_cookie: bool,
    /// RFC 9111 §4.2.2's heuristic: this share of `Date − Last-Modified`, in basis points
    /// (an integer, so that the policy stays `Eq`), as freshness; 0 turns it off.
    pub heuristic_freshness_bp: u32,
    /// The cap on a heuristic freshness lifetime.
    #[serde(with = "duration_str")]
    pub heuristic_max: Duration,
    /// Compare list-valued `Vary` fields (`Accept-Language`, ...) after normalising case,
    /// whitespace and member order.
    pub normalize_vary: bool,
}

// === impl Policy ===

impl Policy {
    /// The route for a request, in file order, else the fallback. `host` is the request's
    /// authority without port; matching is ASCII case-insensitive.
    pub fn route(&self, host: &str, path: &str, method: &Method) -> Option<usize> {
        let table = &self.routes;
        let explicit = table.routes.len() - usize::from(table.has_fallback);
        table.routes[..explicit]
            .iter()
            .position(|r| r.matcher.matches(host, path, method))
            .or(table.has_fallback.then_some(explicit))
    }

    pub fn route_by_id(&self, id: usize) -> Option<&Route> {
        self.routes.routes.get(id)
    }

    pub fn upstream_of(&self, route: &Route) -> &Arc<Upstream> {
        // `upstream` was resolved against this very vector at compile time.
        &self.upstreams[route.upstream]
    }

    pub fn upstream(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.iter().find(|u| &*u.name == name)
    }

    /// All routes, fallback last.
    pub fn all_routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.routes.iter()
    }

    /// A human summary for `outrider check`.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let listen: Vec<String> = self.server.listen.iter().map(|a| a.to_string()).collect();
        let _ = writeln!(
            s,
            "listen {} ({} threads), admin {}",
            listen.join(", "),
            self.server.threads,
            self.admin.listen
        );
        let _ = writeln!(s, "upstreams ({}):", self.upstreams.len());
        for u in &self.upstreams {
            let eps: Vec<&str> = u.endpoints.iter().map(|e| e.label.as_str()).collect();
            let _ = writeln!(
                s,
                "  {:<16} {}{} connect {} read {}",
                u.name,
                eps.join(", "),
                if u.tls {
                    format!(" tls sni={}", u.sni)
                } else {
                    String::new()
                },
                humantime::format_duration(u.connect_timeout),
                humantime::format_duration(u.read_timeout),
            );
        }
        let _ = writeln!(s, "routes ({}, in match order):", self.all_routes().count());
        for r in self.all_routes() {
            let _ = writeln!(
                s,
                "  {:<16} {:<40} -> {}{}{}{}",
                r.name,
                r.matcher.describe(),
                self.upstream_of(r).name,
                if r.cache.enabled { "  cache" } else { "" },
                if r.compression.enabled {
                    "  compress"
                } else {
                    ""
                },
                r.slo.describe(),
            );
        }
        s
    }
}

// === impl Upstream ===

impl Upstream {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: Arc<str>,
        endpoints: Vec<Endpoint>,
        tls: bool,
        sni: String,
        connect_timeout: Duration,
        read_timeout: Duration,
        max_concurrent: usize,
        breaker: BreakerPolicy,
    ) -> Self {
        Upstream {
            name,
            endpoints,
            tls,
            sni,
            connect_timeout,
            read_timeout,
            max_concurrent,
            breaker,
            retry: RetryPolicy::default(),
            health_check: None,
            next: AtomicUsize::new(0),
        }
    }

    /// The index of the next endpoint in round-robin order. Compile guarantees at least one.
    pub(crate) fn next_endpoint_index(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len()
    }
}

// === impl Matcher ===

impl Matcher {
    pub(crate) fn matches(&self, host: &str, path: &str, method: &Method) -> bool {
        if let Some(h) = &self.host {
            if !h.matches(host) {
                return false;
            }
        }
        if let Some(prefix) = &self.path_prefix {
            if !path.starts_with(prefix.as_str()) {
                return false;
            }
        }
        if let Some(re) = &self.path_regex {
            if !re.is_match(path) {
                return false;
            }
        }
        self.methods.is_empty() || self.methods.contains(method)
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        match &self.host {
            Some(HostMatch::Exact(h)) => parts.push(format!("host={h}")),
            Some(HostMatch::Suffix(s)) => parts.push(format!("host=*{s}")),
            None => {}
        }
        if let Some(p) = &self.path_prefix {
            parts.push(format!("prefix={p}"));
        }
        if let Some(r) = &self.path_regex {
            parts.push(format!("regex={}", r.as_str()));
        }
        if !self.methods.is_empty() {
            let m: Vec<&str> = self.methods.iter().map(|m| m.as_str()).collect();
            parts.push(format!("methods={}", m.join(",")));
        }
        if parts.is_empty() {
            "(everything)".into()
        } else {
            parts.join(" ")
        }
    }
}

impl HostMatch {
    pub(crate) fn parse(pattern: &str) -> HostMatch {
        let p = pattern.trim().to_ascii_lowercase();
        match p.strip_prefix('*') {
            Some(suffix) => HostMatch::Suffix(suffix.to_string()),
            None => HostMatch::Exact(p),
        }
    }

    pub(crate) fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Exact(h) => host.eq_ignore_ascii_case(h),
            HostMatch::Suffix(s) => {
                host.len() > s.len()
                    && host
                        .get(host.len() - s.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(s))
            }
        }
    }
}

// === serde helpers for the /config view ===

pub(super) mod duration_str {
    use std::time::Duration;
    pub(crate) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }
}

pub(super) mod opt_duration_str {
    use std::time::Duration;
    pub(crate) fn serialize<S: serde::Serializer>(
        d: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(&humantime::format_duration(*d)),
            None => s.serialize_str(""),
        }
    }
}

mod opt_regex {
    pub(crate) fn serialize<S: serde::Serializer>(
        r: &Option<regex::Regex>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match r {
            Some(r) => s.serialize_str(r.as_str()),
            None => s.serialize_none(),
        }
    }
}

fn methods_str<S: serde::Serializer>(m: &[Method], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(m.iter().map(|m| m.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        let exact = HostMatch::parse("Example.com");
        assert!(exact.matches("example.COM"));
        assert!(!exact.matches("www.example.com"));
        let wild = HostMatch::parse("*.example.com");
        assert!(wild.matches("api.example.com"));
        assert!(wild.matches("a.b.EXAMPLE.com"));
        assert!(!wild.matches("example.com"));
        assert!(!wild.matches("badexample.com"));
    }

    #[test]
    fn matcher_combines_all_conditions() {
        let m = Matcher {
            host: Some(HostMatch::parse("*.svc")),
            path_prefix: Some("/api/".into()),
            path_regex: Some(Regex::new(r"^/api/v\d+/").unwrap()),
            methods: vec![Method::GET],
        };
        assert!(m.matches("a.svc", "/api/v2/x", &Method::GET));
        assert!(!m.matches("a.svc", "/api/v2/x", &Method::POST));
        assert!(!m.matches("a.svc", "/api/x", &Method::GET));
        assert!(!m.matches("svc", "/api/v2/x", &Method::GET));
        assert!(Matcher::default().matches("any", "/", &Method::DELETE));
    }
}
