//! Integration suite for the data plane ("foundation"): a real Outrider in-process, real
//! HTTP/1.1 origins, real clients. Every test asserts something that breaks if the feature does.
//!
//! Sections, grouped into modules: [`routing`] (route matching · fallback rules) ·
//! [`upstreams`] (load balancing and upstream keep-alive · upstream failures) · [`headers`]
//! (header hygiene) · [`bodies`] (bodies, `Expect: 100-continue`) · [`h2c`] (HTTP/2
//! cleartext) · [`admin`] (admin plane) · [`concurrency`]. Shared helpers are in [`helpers`].

mod admin;
mod bodies;
mod concurrency;
mod h2c;
mod headers;
mod helpers;
mod routing;
mod upstreams;
