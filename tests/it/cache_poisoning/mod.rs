//! A shared cache must not be poisonable: what one client sends must never decide what
//! another client is served, unless the origin said so (`Vary`, `public`).
//!
//! Every test runs the real proxy (in-process, ephemeral loopback ports) in front of a real
//! origin ([`support::Origin`] with a handler that reflects request fields into the response, the way
//! vulnerable applications do) and a real client (reqwest, or raw sockets where the `Host` or
//! the request line must be exact). The pattern is always: client A sends something evil, its
//! response is cacheable (`public, max-age=60` unless the test is about another directive),
//! then client B sends the clean request and must not receive A's reflected value.
//!
//! Synchronisation: a miss stores its object when the body has been written, possibly after
//! the client read it; so before B is sent the test waits (polling `GET /cache` with a
//! deadline) until the proxy has counted A's lookup, which happens in `logging`, after the
//! fill finished. Then "B was not a hit" means "A's response was not shared", not "B came too
//! early".
//!
//! What Outrider does, from `src/proxy/hygiene.rs` and `src/cache/`:
//! - `X-Forwarded-Proto` is overwritten with the proxy's own value, `X-Forwarded-For` gets the
//!   client address appended (the right-most element is the one the proxy vouches for), `Via`
//!   is appended. Every other request field, `X-Forwarded-Host` included, goes to the origin
//!   as the client sent it.
//! - The key is `http://host[:port]/path?query` (host lowercased, default port dropped) plus
//!   the `Vary` secondary key; `Vary: *` is never stored. Fields that can change the URL an
//!   origin sees (`X-Forwarded-Host`, `X-Original-URL`, the method overrides, `Forwarded`, …)
//!   are part of the key when present, so a request carrying one never shares an entry with
//!   one that does not.
//! - A GET or HEAD with a body bypasses the cache.
//! - `Authorization` bypasses the cache unless the route sets `cache_authorized`, and then the
//!   response must say `public`, `s-maxage` or `must-revalidate`.
//! - `Set-Cookie` makes a response unstorable, unless `private="Set-Cookie"` or
//!   `no-cache="Set-Cookie"` names it: then it is stored without the field.
//! - A response to a request with `Cookie` is stored only if it says `public` or `s-maxage`,
//!   targets the shared cache, or varies on `Cookie`.
//!
//! Sections keep their numbers, grouped into modules: [`request_fields`] (1 forwarding headers
//! the proxy sets itself · 2 unkeyed request fields · 3 Host) · [`sharing`] (4 Authorization ·
//! 5 Cookie · 6 Vary · 7 Set-Cookie · 8 private / no-store). Helpers (the [`helpers::Rig`]:
//! origin + proxy) are in [`helpers`].

mod helpers;
mod request_fields;
mod sharing;
