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
    pub server: Server,
    pub admin: Admin,
    pub log: Log,
    pub upstreams: BTreeMap<String, Upstream>,
    pub cache: CacheStore,
    pub limits: Limits,
    pub defaults: Defaults,
    pub routes: Vec<Route>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    pub listen: Listen,
    pub threads: usize,
    pub grace_period: Dur,
    pub upgrade_sock: String,
}

/// One address or a list of them.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged, expecting = "an address \"host:port\" or a list of them")]
pub enum Listen {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    pub listen: String,
    pub token: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub level: String,
    pub format: String,
    pub access_log: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Upstream {
    pub endpoints: Vec<String>,
    pub tls: bool,
    pub sni: String,
    pub connect_timeout: Dur,
    pub read_timeout: Dur,
    pub max_concurrent: usize,
    pub breaker: Breaker,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Breaker {
    pub enabled: bool,
    pub consecutive_failures: u32,
    pub failure_rate: f64,
    pub min_requests: u32,
    pub window: Dur,
    pub open_for: Dur,
    /// `None`: the larger of `open_for` and 5 minutes, so raising `open_for` alone is valid.
    pub max_open_for: Option<Dur>,
    pub half_open_probes: u32,
    pub failure_statuses: Vec<u16>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheStore {
    pub max_size: Size,
    pub max_object_size: Size,
}

/// `[limits]`: what a client may send. `max_body = 0` means no limit.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_request_line: Size,
    pub max_header_bytes: Size,
    pub max_headers: usize,
    pub max_body: Size,
    pub body_timeout: Dur,
    pub idle_timeout: Dur,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    pub upstream: Option<String>,
    pub server_timing: Option<bool>,
    pub compression: Compression,
    pub etag: Etag,
    pub cache: RouteCache,
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
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Match {
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub path_regex: Option<String>,
    pub methods: Vec<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Compression {
    pub enabled: Option<bool>,
    pub algorithms: Option<Vec<String>>,
    pub min_size: Option<Size>,
    pub gzip_level: Option<u32>,
    pub brotli_level: Option<u32>,
    pub zstd_level: Option<i32>,
    pub content_types: Option<Vec<String>>,
    pub upstream_identity: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Etag {
    pub generate: Option<bool>,
    pub max_body: Option<Size>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteCache {
    pub enabled: Option<bool>,
    pub default_ttl: Option<Dur>,
    pub override_ttl: Option<OptDur>,
    pub stale_while_revalidate: Option<Dur>,
    pub stale_if_error: Option<Dur>,
    pub cache_authorized: Option<bool>,
    pub tag_header: Option<String>,
    pub targeted_cache_control: Option<Vec<String>>,
    pub stale_on_open: Option<OptDur>,
    pub key_query: Option<KeyQuery>,
    pub store_set_cookie: Option<bool>,
    /// A percentage, `"0%"` to `"100%"`.
    pub heuristic_freshness: Option<String>,
    pub heuristic_max: Option<Dur>,
    pub normalize_vary: Option<bool>,
}

/// `"all"`, `"none"`, or the list of query parameters that make up the key.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(
    untagged,
    expecting = "\"all\", \"none\" or a list of query parameter names"
)]
pub enum KeyQuery {
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
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
            format: "text".into(),
            access_log: false,
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
        }
    }
}

impl Default for CacheStore {
    fn default() -> Self {
        CacheStore {
            max_size: Size::mib(256),
            max_object_size: Size::mib(8),
        }
    }
}
