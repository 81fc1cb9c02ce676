//! Response compression through the real proxy: a real Outrider in-process, a real HTTP/1.1
//! origin, real clients that never decompress by themselves (reqwest without its compression
//! features), bodies decoded here with the same crates the proxy encodes with.
//!
//! Sections, grouped into modules: [`negotiation`] (round trips · negotiation) · [`skipping`]
//! (skip conditions) · [`headers`] (header rewriting · what the upstream is asked for) ·
//! [`policy`] (per-route policy) · [`streaming`] · [`metrics`] · [`versions`] (HTTP
//! versions) · [`bodies`] (large bodies · the buffered leg). Helpers are in [`helpers`].

mod bodies;
mod headers;
mod helpers;
mod metrics;
mod negotiation;
mod policy;
mod skipping;
mod streaming;
mod versions;
