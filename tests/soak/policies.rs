//! The policies the run reloads between.

use std::net::SocketAddr;
use std::path::Path;

// === the policies ===

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Variant {
    A,
    B,
    /// B with an invalid duration: must be rejected, A or B kept.
    Invalid,
}

pub(crate) fn policy(data: u16, admin: u16, origin: SocketAddr, variant: Variant) -> String {
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
endpoints = ["{origin}"]
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
