//! Outrider: a sidecar reverse-proxy data plane on Pingora.
//!
//! Layout follows the architecture: pure modules (`config`, `compress`, `conditional`, `cache`,
//! `breaker`, `limits`) know nothing of Pingora (`tests/architecture.rs` checks it); `proxy` wires them into
//! Pingora's hooks; `admin` serves the operator API; `metrics` owns the registry; `server` assembles the
//! Pingora `Server`.

pub mod admin;
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
pub mod server;
pub mod state;
