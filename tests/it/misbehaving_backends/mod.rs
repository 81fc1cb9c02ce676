//! Backends that misbehave, behind the real proxy: the proxy must answer every client with an
//! honest message (a 502/504 of its own, or a response visibly cut short), never pass a broken
//! response off as complete, never store one, never panic, and keep serving the next request.
//!
//! The backends are written here ([`raw_backend::RawBackend`]): a tokio listener on an ephemeral loopback
//! port that reads a request head and writes exact bytes chosen by the request's path
//! ([`raw_backend::Step`]s: bytes, byte-by-byte trickles, pauses, FIN, RST, or waiting for the test's
//! signal), recording every request. The proxy is the real Outrider in-process with one caching
//! route in front of it; clients are reqwest or raw sockets where the exact bytes matter.
//!
//! Every broken response is made cacheable (`Cache-Control: public, max-age=60`), so that
//! "not stored" is observable: the next request for the same path reaches the backend again,
//! its `Cache-Status` is not a hit, and `GET /cache` counts no object. Nothing waits on a fixed
//! sleep for the proxy: the test polls `GET /cache` until the proxy has finished a request
//! (its lookup is counted in `logging`, after any fill), or signals the backend when the client
//! has seen what it needs to ([`raw_backend::Step::Await`]).
//!
//! Observed along the way (Pingora 0.9's HTTP/1 server, not a bug in these tests): a response
//! head with `Content-Length` is not flushed to the client until body bytes fill the write
//! buffer or the body ends, so a client sees nothing of a small sized response until the
//! upstream finishes or fails; chunked heads are flushed at once. Tests that need "the client
//! has the header" use a chunked response.
//!
//! Sections keep their numbers, grouped into modules: [`malformed`] (1 invalid status lines
//! and header fields · 2 bodies that are not what the header promised) · [`slow`] (3 slow and
//! vanishing backends). The proxy in front of the backend is the [`rig::Rig`]; the backend is
//! in [`raw_backend`].

mod malformed;
mod raw_backend;
mod rig;
mod slow;
