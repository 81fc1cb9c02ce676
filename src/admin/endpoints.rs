//! The admin endpoints. One row in `ENDPOINTS` and one function each.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use http::{Method, Response, StatusCode};
use serde_json::json;

use super::{json, text, AdminRequest, Endpoint};
use crate::proxy::Shared;
use crate::reload::{ReloadOutcome, Trigger};

pub static ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        path: "/",
        method: Method::GET,
        mutating: false,
        handler: super::ui::page,
    },
    Endpoint {
        path: "/ui/dash.js",
        method: Method::GET,
        mutating: false,
        handler: super::ui::script,
    },
    Endpoint {
        path: "/ui/dash.css",
        method: Method::GET,
        mutating: false,
        handler: super::ui::style,
    },
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
    Endpoint {
        path: "/metrics",
        method: Method::GET,
        mutating: false,
        handler: metrics,
    },
    Endpoint {
        path: "/config",
        method: Method::GET,
        mutating: false,
        handler: config,
    },
    Endpoint {
        path: "/reload",
        method: Method::POST,
        mutating: true,
        handler: reload,
    },
    Endpoint {
        path: "/stats",
        method: Method::GET,
        mutating: false,
        handler: stats,
    },
    Endpoint {
        path: "/cache",
        method: Method::GET,
        mutating: false,
        handler: super::cache::report,
    },
    Endpoint {
        path: "/cache/purge",
        method: Method::POST,
        mutating: true,
        handler: super::cache::purge,
    },
    Endpoint {
        path: "/advice",
        method: Method::GET,
        mutating: false,
        handler: advice,
    },
    Endpoint {
        path: "/breakers",
        method: Method::GET,
        mutating: false,
        handler: super::breakers::report,
    },
];

/// Per route and upstream, over the last minute: request rate, error ratio, p50/p95/p99.
fn stats(shared: &Shared, _req: &AdminRequest) -> Response<Vec<u8>> {
    let active = shared.policy();
    let now =
        crate::metrics::stats::sample(&active.policy, &active.metrics, std::time::Instant::now());
    let baseline = shared.stats.baseline();
    let mut report =
        crate::metrics::stats::report(&active.policy, &now, baseline.as_ref(), shared.started);
    for (upstream, guard) in active.policy.upstreams.iter().zip(&active.breakers) {
        if let Some(v) = report["upstreams"].get_mut(&*upstream.name) {
            v["breaker"] = json!(guard.state().as_str());
        }
    }
    json(StatusCode::OK, &report)
}

/// The advisor's recommendations, best first, with the rules they follow.
fn advice(shared: &Shared, _req: &AdminRequest) -> Response<Vec<u8>> {
    use crate::advisor;
    let advisor = shared
        .advisor
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (urls, untracked) = advisor.url_table();
    // Off (`[admin] advisor = false`): what it learned before the switch is not advice about now.
    let enabled = shared.policy().admin.advisor;
    let advice = if enabled {
        advisor.advice(std::time::Instant::now())
    } else {
        Vec::new()
    };
    drop(advisor);
    json(
        StatusCode::OK,
        &json!({
            "enabled": enabled,
            "min_samples": advisor::MIN_SAMPLES,
            "window_seconds": advisor::WINDOW.as_secs() * 2,
            "assumed": {
                "cache_ttl_seconds": advisor::CACHE_TTL.as_secs(),
                "compression_ratio": advisor::ASSUMED_RATIO,
            },
            "url_table": {"urls": urls, "capacity": advisor::URL_CAP, "untracked": untracked},
            "advice": advice,
        }),
    )
}

/// 200 while the process serves: liveness only, no dependency checks.
fn healthz(_shared: &Shared, _req: &AdminRequest) -> Response<Vec<u8>> {
    text(StatusCode::OK, "ok\n")
}

/// 200 when a policy is loaded and every data-plane listener accepts connections; 503 while
/// draining for shutdown. Pingora closes the listeners at the moment shutdown starts, so a
/// probe on a new connection is refused from then on; a prober holding a keep-alive
/// connection gets this 503.
fn readyz(shared: &Shared, _req: &AdminRequest) -> Response<Vec<u8>> {
    if shared.is_draining() {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "reason": "draining"}),
        );
    }
    let policy = shared.policy();
    // An upstream the operator listed whose every endpoint fails its health checks: take
    // the pod out of its Service rather than answer 503s.
    let unhealthy: Vec<&str> = policy
        .admin
        .readiness_upstreams
        .iter()
        .filter(|name| {
            policy
                .policy
                .upstreams
                .iter()
                .position(|u| &*u.name == name.as_str())
                .and_then(|i| policy.health.get(i))
                .is_some_and(|eps| !eps.is_empty() && eps.iter().all(|h| !h.is_healthy()))
        })
        .map(String::as_str)
        .collect();
    if !unhealthy.is_empty() {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "reason": "upstream_unhealthy", "upstreams": unhealthy}),
        );
    }
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

/// The Prometheus text exposition of every family.
fn metrics(shared: &Shared, _req: &AdminRequest) -> Response<Vec<u8>> {
    let mut resp = Response::new(shared.metrics.encode());
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    let len = resp.body().len();
    resp.headers_mut()
        .insert(http::header::CONTENT_LENGTH, len.into());
    resp
}

/// The running policy (secrets redacted) and its reload history.
fn config(shared: &Shared, _req: &AdminRequest) -> Response<Vec<u8>> {
    let status = shared.reload_status();
    let policy = shared.policy();
    let mut policy_json = serde_json::to_value(&policy.policy).unwrap_or(serde_json::Value::Null);
    if let Some(admin) = policy_json.get_mut("admin").and_then(|a| a.as_object_mut()) {
        let token = if policy.admin.token.is_some() {
            "<redacted>"
        } else {
            ""
        };
        admin.insert("token".into(), json!(token));
    }
    json(
        StatusCode::OK,
        &json!({
            "generation": status.generation,
            "source": shared.config_path.as_ref().map(|p| p.display().to_string()),
            "source_sha256": status.source_sha256,
            "loaded_at": humantime::format_rfc3339_millis(status.loaded_at).to_string(),
            "last_error": status.last_error,
            "pending_restart": status.pending_restart,
            "policy": policy_json,
        }),
    )
}

/// Reloads the conf file now: 200 with the new generation, or 422 with every error.
fn reload(shared: &Shared, _req: &AdminRequest) -> Response<Vec<u8>> {
    match crate::reload::reload(shared, Trigger::Admin) {
        ReloadOutcome::Applied {
            generation,
            pending_restart,
        } => json(
            StatusCode::OK,
            &json!({"result": "applied", "generation": generation, "pending_restart": pending_restart}),
        ),
        ReloadOutcome::Unchanged => json(
            StatusCode::OK,
            &json!({"result": "unchanged", "generation": shared.reload_status().generation}),
        ),
        ReloadOutcome::Failed(errors) => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &json!({
                "result": "rejected",
                "generation": shared.reload_status().generation,
                "errors": errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            }),
        ),
    }
}
