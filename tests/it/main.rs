//! The integration suites, one test binary: each links Pingora, hyper and reqwest, and on two
//! cores linking 25 binaries dominated the test run. Each suite is a module (its tests keep
//! their names under the suite's prefix: `cargo test --test it cache::`); `support` is the
//! harness they share. The soak (`tests/soak/`) stays a target of its own so that its load
//! runs alone.
//!
//! Every suite starts the real proxy (in-process or the built binary) on ephemeral loopback
//! ports, in front of a real backend written in the test, and drives it with a real client.

// Tests state their expectations with unwrap/expect/panic; the crate-wide lints deny them in
// the shipped code only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod admin_plane;
mod advisor;
mod alerts;
mod architecture;
mod breaker;
mod cache;
mod cache_poisoning;
mod chaos;
mod compress_negotiate;
mod compression;
mod conditional;
mod config_check;
mod config_fuzz;
mod dashboard;
mod fuzz_regressions;
mod grafana_dashboard;
mod hostile_clients;
mod k8s_manifests;
mod large_bodies;
mod lifecycle;
mod metrics;
mod misbehaving_backends;
mod proxy;
mod proxy_basics;
mod reload;
mod resilience;
mod shared_cache;
mod tls;
mod upgrade;
