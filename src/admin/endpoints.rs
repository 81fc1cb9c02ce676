//! The admin endpoints. One row in `ENDPOINTS` and one function each.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use http::{Method, Response, StatusCode};
use serde_json::json;

use super::{json, text, AdminRequest, Endpoint};
use crate::state::Shared;

pub static ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        path: "/healthz",
        method: Method::GET,
        mutating: false,
        handler: healthz,
    },
    Endpoint {
        path: "/readyz",
        method: Method::GET,
        mutating: false,
        handler: readyz,
    },
];

/// 200 while the process serves: liveness only, no dependency checks.
fn healthz(_shared: &Shared, _req: &AdminRequest) -> Response<Vec<u8>> {
    text(StatusCode::OK, "ok\n")
}

/// 200 when a policy is loaded and every data-plane listener accepts connections; 503 while
/// draining for shutdown, so that a load balancer stops sending before the listeners close.
fn readyz(shared: &Shared, _req: &AdminRequest) -> Response<Vec<u8>> {
    if shared.is_draining() {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "reason": "draining"}),
        );
    }
    let policy = shared.policy();
    let down: Vec<String> = policy
        .server
        .listen
        .iter()
        .filter(|addr| !accepts(**addr))
        .map(|a| a.to_string())
        .collect();
    if down.is_empty() {
        json(StatusCode::OK, &json!({"ready": true}))
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "reason": "listener not accepting", "listeners": down}),
        )
    }
}

/// Probes a listener the way a client would: a wildcard address is reached over loopback.
fn accepts(addr: SocketAddr) -> bool {
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    TcpStream::connect_timeout(&target, Duration::from_millis(250)).is_ok()
}
