//! Hostile clients: request smuggling and malformed framing, oversized input against the
//! `[limits]`, slowloris, and clients that vanish mid-response.
//!
//! Every test runs the real proxy on loopback in front of a real backend. The smuggling tests
//! use [`raw_backend::Backend`], a raw TCP backend defined here that records the exact bytes
//! the proxy sent and parses them strictly (CRLF only, one framing), so a test can count the
//! requests the upstream really saw. The invariant: a hostile request is either refused with a
//! 4xx and not forwarded, or forwarded as exactly ONE request whose framing is unambiguous
//! (never both `Content-Length` and `Transfer-Encoding`, never a second request cut out of the
//! body). After each case the same connection is probed (a request with `Connection: close`):
//! it must be served as exactly one response or the connection must already be closed, and a
//! fresh connection must be served normally.
//!
//! Modules: [`raw_backend`] (the raw backend) · [`raw_client`] (the raw client) ·
//! [`smuggling`] (the case harness; `framing`: HTTP/1.1 framing; `head`: control bytes and
//! absolute-form targets; `local_answers`: answers the proxy gives itself; `h2c`: h2c
//! downgrade) · [`expect`] (Expect) · [`limits`] · [`slowloris`] · [`vanishing`] (vanishing
//! clients). Each smuggling test prints one `observed:` line per case (`--nocapture`) saying
//! what the proxy answered and what the backend received.

mod expect;
mod limits;
mod raw_backend;
mod raw_client;
mod slowloris;
mod smuggling;
mod vanishing;
