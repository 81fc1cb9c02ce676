//! The response cache through the real proxy: a real Outrider in-process (the built binary for
//! the reload test), a real HTTP/1.1 origin written here, a real client (reqwest, or raw
//! sockets where the exact bytes matter).
//!
//! The origin ([`helpers::Backend`]) is scripted per path (status, headers, body, delay, or a
//! closure that looks at the request, e.g. to answer a conditional request with 304), can be
//! changed mid-test and shut down, and records every request so that tests assert how many
//! requests reached it per path.
//!
//! Sections follow issue #6 and keep its numbers, grouped into modules: [`storing`] (1 hits ·
//! 2 storability · 3 freshness) · [`revalidation`] (4 revalidation · 8 stale-while-revalidate ·
//! 9 stale-if-error) · [`directives`] (5 request directives · 15 targeted cache control) ·
//! [`variants`] (6 Vary · 13 keys) · [`coalescing`] (7) · [`hits`] (10 ranges ·
//! 11 preconditions · 19 compression) · [`invalidation`] (12 invalidation · 14 purge) ·
//! [`store`] (16 memory bound · 18 reload) · [`metrics`] (17). Helpers are in [`helpers`].
//!
//! Timing: nothing waits on a fixed sleep for something to *happen*; background work (the SWR
//! refresh, `logging`-time invalidation and metrics) is polled for with a deadline. Where
//! time must *pass* for an entry to go stale, the test waits until `max-age` has elapsed since
//! the response was received ([`helpers::until_stale`]): the proxy's `response_time` is before
//! that instant, so the entry is stale by then whatever the origin's `Date` said.

mod coalescing;
mod conformance;
mod directives;
pub(crate) mod helpers;
mod hits;
mod invalidation;
mod knobs;
mod metrics;
mod revalidation;
mod store;
mod storing;
mod variants;
