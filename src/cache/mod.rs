//! The response cache's HTTP semantics and its store (RFC 9111 for a shared cache).
//!
//! Pure: header values and times in, decisions out; no Pingora, no I/O, no clock (`now` is
//! passed in). `proxy/cache.rs` wires these into pingora-cache's state machine and its
//! `Storage` trait.
//!
//! - `control`: `Cache-Control` and targeted cache-control (RFC 9213) parsing.
//! - `freshness`: storability (§3), freshness lifetime and age (§4.2), stale serving, the
//!   request directives a hit must satisfy (§5.2.1), invalidation targets (§4.4).
//! - `key`: the cache key's primary string (scheme, host, path, normalised query).
//! - `shared`: the shared (Redis) tier's wire format, TTL, key names and purge messages.
//! - `status`: the `Cache-Status` response field (RFC 9211).
//! - `store`: the sharded, byte-bounded, LRU in-memory store with purge indexes.
//! - `update`: what a 304 changes in a stored response (§3.2, §4.3.4).
//! - `vary`: the request values a `Vary` secondary key compares (§4.1).

pub(crate) mod control;
pub mod freshness;
pub(crate) mod key;
pub(crate) mod purge_log;
pub(crate) mod shared;
pub mod status;
pub mod store;
pub(crate) mod update;
pub(crate) mod vary;
