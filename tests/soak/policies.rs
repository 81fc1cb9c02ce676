//! The policies the run reloads between.

use std::net::SocketAddr;
use std::path::Path;

use crate::{
    HEALTHY_THRESHOLD, HEALTH_INTERVAL_MS, HEALTH_PATH, HEALTH_TIMEOUT_MS, RATE_BURST,
    RATE_KEY_HEADER, RATE_REQUESTS, UNHEALTHY_THRESHOLD,
};

// === the policies ===

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Variant {
    A,
    B,
    /// B with an invalid duration: must be rejected, A or B kept.
    Invalid,
}

/// Both valid files carry the same second endpoint, health check, retry policy and rate limit
/// (a route keeps its buckets across a reload only while its limit stays the same).
pub(crate) fn policy(data: u16, admin: u16, origins: [SocketAddr; 2], variant: Variant) -> String {
    let [origin, flapping] = origins;
    let (gzip, brotli, zstd, api_ttl, static_ttl, timing) = match variant {
        Variant::A => (6, 4, 3, "2s", "30s", false),
        Variant::B => (5, 5, 4, "3s", "60s", true),
        Variant::Invalid => (5, 5, 4, "3 parsecs", "60s", true),
    };
    format!(
        r#"[server]
listen = "127.0.0.1:{data}"
threads = 2
grace_period = "1s"

[admin]
listen = "127.0.0.1:{admin}"

[log]
level = "warn"
access_log = true

[upstreams.app]
endpoints = ["{origin}", "{flapping}"]
connect_timeout = "500ms"
read_timeout = "5s"
max_concurrent = 256

[upstreams.app.breaker]
enabled = true
consecutive_failures = 5
failure_rate = 0.5
min_requests = 20
window = "10s"
open_for = "500ms"
max_open_for = "2s"
half_open_probes = 2

[upstreams.app.health_check]
path = "{HEALTH_PATH}"
interval = "{HEALTH_INTERVAL_MS}ms"
timeout = "{HEALTH_TIMEOUT_MS}ms"
healthy_threshold = {HEALTHY_THRESHOLD}
unhealthy_threshold = {UNHEALTHY_THRESHOLD}
expect_status = [200]

[upstreams.app.retry]
attempts = 2
on = ["connect-failure", "reset"]
idempotent_only = true
backoff = "0s"
budget = "20%"

[cache]
max_size = "8MiB"
max_object_size = "1MiB"

[defaults]
upstream = "app"
server_timing = {timing}

[defaults.compression]
enabled = true
algorithms = ["zstd", "br", "gzip"]
min_size = "1KiB"
gzip_level = {gzip}
brotli_level = {brotli}
zstd_level = {zstd}

[defaults.etag]
generate = true
max_body = "1MiB"

[[routes]]
name = "static"
match = {{ path_prefix = "/static/" }}
cache = {{ enabled = true, default_ttl = "{static_ttl}", stale_if_error = "10m", key_query = "none" }}

[[routes]]
name = "api"
match = {{ path_prefix = "/api/", methods = ["GET", "HEAD", "POST"] }}
cache = {{ enabled = true, default_ttl = "{api_ttl}", stale_while_revalidate = "1s", stale_if_error = "30s" }}

[[routes]]
name = "limited"
match = {{ path_prefix = "/limited/" }}
rate_limit = {{ requests = {RATE_REQUESTS}, per = "1s", burst = {RATE_BURST}, key = "header:{RATE_KEY_HEADER}" }}

[[routes]]
name = "live"
match = {{ path_prefix = "/" }}
"#
    )
}

/// Replaces the file atomically, so that the watcher never reads half of it.
pub(crate) fn write_renamed(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write conf");
    std::fs::rename(&tmp, path).expect("rename conf");
}
