//! Outrider: a sidecar reverse-proxy data plane on Pingora.
//!
//! Layout follows the architecture, in layers that import only downwards (`tests/it/architecture.rs`
//! checks both rules):
//! - pure modules (`config`, `compress`, `conditional`, `cache`, `breaker`, `limits`, `slo`):
//!   HTTP semantics, policy and the alert rules derived from it, no Pingora, no runtime, none
//!   of the layers above;
//! - `metrics` (the registry, the reload history) and `logging`;
//! - `proxy`: the pipeline wired into Pingora's hooks, and the state it runs on (`proxy::Active`,
//!   the bound per-policy snapshot; `proxy::Shared`, what outlives a policy);
//! - `reload`: file watch, SIGHUP and `POST /reload` → compile → swap;
//! - `admin`: the operator API; `server`: assembles the Pingora `Server`.

pub mod admin;
pub mod advisor;
pub mod breaker;
pub mod cache;
pub mod compress;
pub mod conditional;
pub mod config;
pub mod demo;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod resilience;
pub mod server;
pub mod slo;
