//! The conf file format, exactly: serde types with `deny_unknown_fields`, nothing compiled.
//!
//! Every key has a default, so a file holding one `[upstreams.NAME]` table is a whole config.
//! Tables that a route may override key by key (`compression`, `etag`, `cache`) are all-`Option`
//! here and are layered in `policy.rs` as built-in default < `[defaults]` < the route's own table,
//! so that the same type describes `[defaults.X]` and `routes[i].X`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::units::{Dur, OptDur, Size};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct File {
    pub(crate) server: Server,
    pub(crate) admin: Admin,
    pub(crate) log: Log,
    pub(crate) upstreams: BTreeMap<String, Upstream>,
    pub(crate) cache: CacheStore,
    pub(crate) limits: Limits,
    pub(crate) defaults: Defaults,
    pub(crate) routes: Vec<Route>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    pub(crate) listen: Listen,
    pub(crate) threads: usize,
    pub(crate) grace_period: Dur,
    pub(crate) upgrade_sock: String,
}

/// One address or a list of them.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged, expecting = "an address \"host:port\" or a list of them")]
pub(crate) enum Listen {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    pub(crate) listen: String,
    pub(crate) token: String,
    /// `Host` names the admin port answers (any port); IP literals always pass.
    pub(crate) allowed_hosts: Vec<String>,
    pub(crate) readiness_upstreams: Vec<String>,
    /// Feed the traffic advisor (`GET /advice`) from every request.
    pub(crate) advisor: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub(crate) level: String,
    pub(crate) format: String,
    pub(crate) access_log: bool,
    /// Log every request slower than this; `0s` turns it off.
    pub(crate) slow_request: Dur,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Upstream {
    pub endpoints: Vec<String>,
    pub(crate) tls: bool,
    pub(crate) sni: String,
    pub(crate) connect_timeout: Dur,
    pub(crate) read_timeout: Dur,
    pub(crate) max_concurrent: usize,
    pub breaker: Breaker,
    pub retry: Retry,
    /// Absent: passive checks only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
}

/// `[upstreams.NAME.health_check]`: active probes of each endpoint.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheck {
    pub(crate) path: String,
    pub(crate) interval: Dur,
    pub(crate) timeout: Dur,
    pub(crate) healthy_threshold: u32,
    pub(crate) unhealthy_threshold: u32,
    pub(crate) expect_status: Vec<u16>,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            path: "/healthz".into(),
            interval: Dur::secs(5),
            timeout: Dur::secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            expect_status: vec![200, 204],
        }
    }
}

/// `[upstreams.NAME.retry]`: which failed attempts are tried again, and how many.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retry {
    pub(crate) attempts: u32,
    pub(crate) on: Vec<String>,
    pub(crate) idempotent_only: bool,
    pub(crate) backoff: Dur,
    /// A percentage: at most this share of the upstream's requests may be retries.
    pub(crate) budget: String,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 2,
            on: vec!["connect-failure".into()],
            idempotent_only: true,
            backoff: Dur::secs(0),
            budget: "20%".into(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Breaker {
    pub(crate) enabled: bool,
    pub(crate) consecutive_failures: u32,
    pub(crate) failure_rate: f64,
    pub(crate) min_requests: u32,
    pub(crate) window: Dur,
    pub(crate) open_for: Dur,
    /// `None`: the larger of `open_for` and 5 minutes, so raising `open_for` alone is valid.
    pub(crate) max_open_for: Option<Dur>,
    pub(crate) half_open_probes: u32,
    pub(crate) failure_statuses: Vec<u16>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheStore {
    pub(crate) max_size: Size,
    pub(crate) max_object_size: Size,
    /// `[cache.shared]`: absent means no shared tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) shared: Option<SharedTier>,
    pub(crate) warm: Warm,
}

/// `[cache.shared]`: the second cache tier in Redis (or Valkey), shared by every replica.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharedTier {
    pub(crate) url: String,
    pub(crate) key_prefix: String,
    pub(crate) timeout: Dur,
    pub(crate) max_object_size: Size,
    pub(crate) fill_lock: Dur,
}

impl Default for SharedTier {
    fn default() -> Self {
        SharedTier {
            url: String::new(),
            key_prefix: "outrider:".to_string(),
            timeout: Dur::millis(25),
            max_object_size: Size::mib(1),
            fill_lock: Dur::secs(2),
        }
    }
}

/// `[cache.warm]`: URLs fetched through the proxy at start and after each reload.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Warm {
    pub(crate) urls: Vec<String>,
    pub(crate) concurrency: usize,
}

impl Default for Warm {
    fn default() -> Self {
        Warm {
            urls: Vec::new(),
            concurrency: 4,
        }
    }
}

/// `[limits]`: what a client may send. `max_body = 0` means no limit.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Limits {
    pub(crate) max_request_line: Size,
    pub(crate) max_header_bytes: Size,
    pub(crate) max_headers: usize,
    pub(crate) max_body: Size,
    pub(crate) body_timeout: Dur,
    pub(crate) idle_timeout: Dur,
    pub(crate) header_timeout: Dur,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    pub(crate) upstream: Option<String>,
    pub(crate) server_timing: Option<bool>,
    pub(crate) compression: Compression,
    pub(crate) etag: Etag,
    pub(crate) cache: RouteCache,
    pub(crate) slo: Slo,
    pub(crate) rate_limit: RateLimit,
    /// Total time for a request until its response header (`0s` = none).
    pub(crate) deadline: Option<Dur>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Route {
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub matcher: Match,
    pub upstream: Option<String>,
    pub server_timing: Option<bool>,
    pub compression: Compression,
    pub etag: Etag,
    pub cache: RouteCache,
    pub slo: Slo,
    /// Overrides `[log] slow_request` for this route.
    pub(crate) slow_request: Option<Dur>,
    pub(crate) rate_limit: RateLimit,
    /// Overrides `[defaults] deadline` for this route.
    pub(crate) deadline: Option<Dur>,
}

/// `[defaults] rate_limit` and a route's `rate_limit`, layered key by key; `requests = 0` (or
/// no `requests` anywhere) means no limit.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimit {
    pub(crate) requests: Option<u32>,
    pub(crate) per: Option<Dur>,
    pub(crate) burst: Option<u32>,
    pub(crate) key: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Match {
    pub(crate) host: Option<String>,
    pub(crate) path_prefix: Option<String>,
    pub(crate) path_regex: Option<String>,
    pub(crate) methods: Vec<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Compression {
    pub(crate) enabled: Option<bool>,
    pub(crate) algorithms: Option<Vec<String>>,
    pub(crate) min_size: Option<Size>,
    pub(crate) gzip_level: Option<u32>,
    pub(crate) brotli_level: Option<u32>,
    pub(crate) zstd_level: Option<i32>,
    pub(crate) content_types: Option<Vec<String>>,
    pub(crate) upstream_identity: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Etag {
    pub(crate) generate: Option<bool>,
    pub(crate) max_body: Option<Size>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteCache {
    pub(crate) enabled: Option<bool>,
    pub(crate) default_ttl: Option<Dur>,
    pub(crate) override_ttl: Option<OptDur>,
    pub(crate) stale_while_revalidate: Option<Dur>,
    pub(crate) stale_if_error: Option<Dur>,
    pub(crate) cache_authorized: Option<bool>,
    pub(crate) tag_header: Option<String>,
    pub(crate) targeted_cache_control: Option<Vec<String>>,
    pub(crate) stale_on_open: Option<OptDur>,
    pub(crate) key_query: Option<KeyQuery>,
    pub(crate) store_set_cookie: Option<bool>,
    /// A percentage, `"0%"` to `"100%"`.
    pub(crate) heuristic_freshness: Option<String>,
    pub(crate) heuristic_max: Option<Dur>,
    pub(crate) normalize_vary: Option<bool>,
}

/// `[defaults.slo]` and a route's `slo`: the objectives `outrider rules` turns into alerts.
/// An empty string turns an objective off (so a route can drop one its defaults set).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Slo {
    pub(crate) latency: Option<OptDur>,
    /// A percentage, e.g. `"95%"`: the share of requests that must be faster than `latency`.
    pub(crate) latency_target: Option<String>,
    /// A percentage: the share of requests not answered 5xx.
    pub(crate) availability: Option<String>,
    /// A percentage: warn when the cache hit ratio stays below it.
    pub(crate) cache_hit_ratio: Option<String>,
}

/// `"all"`, `"none"`, or the list of query parameters that make up the key.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(
    untagged,
    expecting = "\"all\", \"none\" or a list of query parameter names"
)]
pub(crate) enum KeyQuery {
    Mode(String),
    Allow(Vec<String>),
}

// === Defaults: the values DESIGN.md documents, in one place ===

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: Listen::One("0.0.0.0:8080".into()),
            threads: 2,
            grace_period: Dur::secs(5),
            upgrade_sock: "/tmp/outrider_upgrade.sock".into(),
        }
    }
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            listen: "127.0.0.1:9901".into(),
            token: String::new(),
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()],
            readiness_upstreams: Vec::new(),
            advisor: true,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
            format: "text".into(),
            access_log: false,
            slow_request: Dur::secs(0),
        }
    }
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream {
            endpoints: Vec::new(),
            tls: false,
            sni: String::new(),
            connect_timeout: Dur::secs(1),
            read_timeout: Dur::secs(30),
            max_concurrent: 1024,
            breaker: Breaker::default(),
            retry: Retry::default(),
            health_check: None,
        }
    }
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            enabled: true,
            consecutive_failures: 5,
            failure_rate: 0.5,
            min_requests: 20,
            window: Dur::secs(10),
            open_for: Dur::secs(30),
            max_open_for: None,
            half_open_probes: 3,
            failure_statuses: vec![502, 503, 504],
        }
    }
}

impl Default for Limits {
    /// The built-in values live with the compiled policy; this is their conf-file form.
    fn default() -> Self {
        let built_in = super::policy::LimitsPolicy::default();
        Limits {
            max_request_line: Size(built_in.max_request_line),
            max_header_bytes: Size(built_in.max_header_bytes),
            max_headers: built_in.max_headers,
            max_body: Size(built_in.max_body.unwrap_or(0)),
            body_timeout: Dur(built_in.body_timeout),
            idle_timeout: Dur(built_in.idle_timeout),
            header_timeout: Dur(built_in.header_timeout),
        }
    }
}

impl Default for CacheStore {
    fn default() -> Self {
        CacheStore {
            max_size: Size::mib(256),
            max_object_size: Size::mib(8),
            shared: None,
            warm: Warm::default(),
        }
    }
}
