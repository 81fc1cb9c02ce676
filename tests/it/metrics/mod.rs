//! Latency metrics and the admin API, end to end: a real proxy, real backends, a real client,
//! and the `/metrics` exposition read back through a Prometheus text parser.
//!
//! Every test runs its own proxy, so counts are exact. The `logging` hook records a request
//! after its response has left, so tests first wait until the expected number of requests is
//! counted, then assert every value exactly.
//!
//! Modules: [`exposition`] (the strict validator, prometheus-parse, and the validator's own
//! test) · [`requests`] (shared request and route helpers) · [`counts`] (the known sequence,
//! histogram resolution) · [`reload`] · [`stats`] (`/stats` against `/metrics`) ·
//! [`admin_plane`] · [`server_timing`] · [`access_log`] · [`slow_log`].

mod access_log;
mod admin_plane;
mod counts;
mod exposition;
mod reload;
mod requests;
mod server_timing;
mod slow_log;
mod stats;
mod stats_breakers;
