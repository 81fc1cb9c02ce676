//! The admin plane: a second Pingora service on `[admin] listen` (127.0.0.1:9901 by default).
//!
//! Endpoints are rows of [`ENDPOINTS`]: adding one is one row and one handler function.
//! Unknown paths answer 404, known paths with another method 405 (with `Allow`). Endpoints
//! marked `mutating` need `Authorization: Bearer <token>` when `[admin] token` is set, and are
//! refused from web pages. Every request first needs a `Host` in `[admin] allowed_hosts`
//! (DNS rebinding; see `config::admin_hosts`). `GET /` is the read-only dashboard (`ui`).

mod breakers;
pub mod cache;
mod endpoints;
mod ui;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::proxy::Shared;

/// Larger admin request bodies are refused: no endpoint needs more than a small JSON object.
pub const MAX_BODY: usize = 64 * 1024;

/// What a handler sees of the request.
pub struct AdminRequest {
    pub query: Option<String>,
    pub body: Bytes,
}

pub type Handler = fn(&Shared, &AdminRequest) -> Response<Vec<u8>>;

pub struct Endpoint {
    pub path: &'static str,
    pub method: Method,
    /// Changes state: needs the bearer token when one is configured.
    pub mutating: bool,
    pub handler: Handler,
}

pub use endpoints::ENDPOINTS;

pub(crate) struct AdminApp {
    shared: Arc<Shared>,
}

impl AdminApp {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        AdminApp { shared }
    }
}

pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Response<Vec<u8>> {
    reply(
        status,
        "text/plain; charset=utf-8",
        body.into().into_bytes(),
    )
}

pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Vec<u8>> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    reply(status, "application/json", body)
}

fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    let len = resp.body().len();
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, len.into());
    resp
}

/// Compares without an early exit, so response timing does not reveal how much of a guessed
/// token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(shared: &Shared, session: &ServerSession) -> bool {
    let policy = shared.policy();
    let Some(token) = policy.admin.token.as_deref() else {
        return true;
    };
    let Some(credentials) = session
        .req_header()
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    // The scheme name is case-insensitive (RFC 9110 §11.1); the token is not.
    match credentials.trim().split_once(' ') {
        Some((scheme, given)) if scheme.eq_ignore_ascii_case("bearer") => {
            constant_time_eq(given.trim().as_bytes(), token.as_bytes())
        }
        _ => false,
    }
}

/// The `Allow` of a 405: the path's methods, and HEAD wherever GET is (it is served there).
fn allowed_methods<'a>(candidates: &[&'a Endpoint]) -> Vec<&'a str> {
    let mut allow = Vec::with_capacity(candidates.len() + 1);
    for endpoint in candidates {
        allow.push(endpoint.method.as_str());
        if endpoint.method == Method::GET {
            allow.push("HEAD");
        }
    }
    allow
}

/// A browser sends `Origin` (and `Sec-Fetch-Site`) with a POST a web page makes; the admin
/// API's clients (curl, scripts, probes) do not. Without this, any page the operator opens
/// could make their browser purge the cache or reload the policy on 127.0.0.1 when no token
/// is set: "simple" cross-origin POSTs need no preflight.
fn from_a_browser_page(session: &ServerSession) -> bool {
    let headers = &session.req_header().headers;
    headers.contains_key(header::ORIGIN)
        || headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() != b"none")
}

async fn read_body(session: &mut ServerSession) -> Result<Bytes, Response<Vec<u8>>> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(text(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request body over 64 KiB\n",
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.into()),
            Err(e) => {
                return Err(text(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read body: {e}\n"),
                ))
            }
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_string();
        let query = req.uri.query().map(str::to_string);
        let host = req
            .headers
            .get(header::HOST)
            .map(|v| v.to_str().unwrap_or(""))
            .or_else(|| req.uri.authority().map(|a| a.as_str()));
        let policy = self.shared.policy();
        if !crate::config::admin_hosts::allowed(host, &policy.admin.allowed_hosts) {
            return text(
                StatusCode::MISDIRECTED_REQUEST,
                "this Host is not in [admin] allowed_hosts (a DNS rebinding defence); \
                 use http://127.0.0.1:PORT/ or add the name\n",
            );
        }
        drop(policy);

        let candidates: Vec<&Endpoint> = ENDPOINTS.iter().filter(|e| e.path == path).collect();
        if candidates.is_empty() {
            return text(StatusCode::NOT_FOUND, format!("no admin endpoint {path}\n"));
        }
        let Some(endpoint) = candidates
            .iter()
            .find(|e| e.method == method || (method == Method::HEAD && e.method == Method::GET))
        else {
            let allow = allowed_methods(&candidates);
            let mut resp = text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{path} allows {}\n", allow.join(", ")),
            );
            if let Ok(v) = header::HeaderValue::from_str(&allow.join(", ")) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
            return resp;
        };
        if endpoint.mutating && from_a_browser_page(session) {
            return text(
                StatusCode::FORBIDDEN,
                "admin changes are not accepted from web pages (the request carries Origin or \
                 Sec-Fetch-Site); use curl or an API client\n",
            );
        }
        if endpoint.mutating && !authorized(&self.shared, session) {
            let mut resp = text(
                StatusCode::UNAUTHORIZED,
                "this endpoint needs Authorization: Bearer <admin.token>\n",
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return resp;
        }
        let body = match read_body(session).await {
            Ok(body) => body,
            Err(resp) => return resp,
        };
        let request = AdminRequest { query, body };
        // The one handler that waits on I/O: a purge in the shared tier.
        if endpoint.path == "/cache/purge" && self.shared.cache.tier.get().is_some() {
            return cache::purge_everywhere(&self.shared, &request).await;
        }
        (endpoint.handler)(&self.shared, &request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }

    #[test]
    fn endpoint_paths_and_methods_are_unique() {
        for (i, a) in ENDPOINTS.iter().enumerate() {
            for b in &ENDPOINTS[i + 1..] {
                assert!(
                    !(a.path == b.path && a.method == b.method),
                    "{} {}",
                    a.method,
                    a.path
                );
            }
        }
    }
}
