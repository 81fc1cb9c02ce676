//! The admin plane as an attacker and an operator meet it: a real Outrider (in-process, or the
//! built binary where `POST /reload` needs a file), a real backend that answers every request
//! with a marker naming what it saw, real clients (reqwest, or raw sockets where the exact
//! bytes matter).
//!
//! - The data plane has no route to the admin handlers: every admin path, on the data port,
//!   with any `Host` or an absolute-form target naming the admin listener, reaches the backend
//!   and changes nothing (a cached object survives a purge, no reload happens).
//! - With `[admin] token`, every mutating endpoint of `admin::ENDPOINTS` refuses a missing,
//!   wrong, prefixed or altered token with 401 and does nothing; the right bearer token
//!   works; reading endpoints need none.
//! - Malformed purge bodies are 400 with a message naming the problem; oversized bodies are
//!   413 as soon as the limit is passed; the proxy keeps serving after each.
//! - Unknown paths are 404, wrong methods 405 with `Allow`; the admin listener defaults to
//!   loopback.
//! - Mutations a web page makes a browser send (`Origin`, `Sec-Fetch-Site`) are refused (403):
//!   without a token, the default, they would reach 127.0.0.1 from any page.
//!
//! No sleeps: effects of an admin request happen before its response, so "nothing changed"
//! is checked right after it; the cache fill is polled for with a deadline.
//!
//! Modules: [`data_plane`] (no route from the data plane to the admin plane) ·
//! [`credentials`] (the bearer token; browsers) · [`requests`] (bodies; paths and methods;
//! defaults). The backend, the confs and the request helpers are in [`rig`].

mod credentials;
mod data_plane;
mod hosts;
mod requests;
mod rig;
