//! The dashboard (`GET /`): one page, its script and its style, embedded at build time so the
//! binary serves them air-gapped. The script polls the JSON endpoints (GETs only); it gains
//! nothing the endpoints do not already give any local client.
//!
//! The script and style are separate paths so that the Content-Security-Policy can be
//! `'self'` with no `'unsafe-inline'`: injected markup could not run script. `frame-ancestors
//! 'none'` keeps other pages from framing it (clickjacking), and `connect-src 'self'` keeps
//! the script talking to this admin port only.

use http::{header, HeaderValue, Response, StatusCode};

use super::AdminRequest;
use crate::proxy::Shared;

const PAGE: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/dash.js");
const STYLE: &str = include_str!("ui/dash.css");

pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'none'";

pub(super) fn page(_shared: &Shared, _req: &AdminRequest) -> Response<Vec<u8>> {
    asset(PAGE, "text/html; charset=utf-8")
}

pub(super) fn script(_shared: &Shared, _req: &AdminRequest) -> Response<Vec<u8>> {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub(super) fn style(_shared: &Shared, _req: &AdminRequest) -> Response<Vec<u8>> {
    asset(STYLE, "text/css; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response<Vec<u8>> {
    let mut resp = Response::new(body.as_bytes().to_vec());
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, body.len().into());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}
