//! `[admin] allowed_hosts`, the DNS rebinding defence: a page on a name its attacker points at
//! 127.0.0.1 talks to the admin port same-origin, but its `Host` is still its own name. The
//! admin port answers 421 to any name not listed (default: localhost, 127.0.0.1, [::1], any
//! port), on every endpoint, the dashboard included; IP literals cannot be rebound and pass.

use crate::admin_plane::rig::{marker_origin, open_conf};
use crate::config_check::helpers::{assert_errors, check_text, UPSTREAM};
use crate::support::raw::raw_exchange;
use crate::support::{Origin, Proxy};

async fn status_with_host(
    admin: std::net::SocketAddr,
    method: &str,
    path: &str,
    host: &str,
) -> u16 {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    raw_exchange(admin, &request).await.0
}

#[tokio::test(flavor = "multi_thread")]
async fn default_allows_loopback_names_and_refuses_others_with_421() {
    let origin = marker_origin();
    let proxy = Proxy::start_with(|d, a| open_conf(d, a, &origin));
    let port = proxy.admin.port();
    for host in [
        format!("localhost:{port}"),
        "LocalHost".to_string(),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "10.0.0.7:9901".to_string(),
    ] {
        assert_eq!(
            status_with_host(proxy.admin, "GET", "/healthz", &host).await,
            200,
            "Host {host}"
        );
    }
    for host in [
        format!("rebind.attacker.example:{port}"),
        "localhost.attacker.example".to_string(),
        format!("127.0.0.1.nip.io:{port}"),
    ] {
        for (method, path) in [
            ("GET", "/healthz"),
            ("GET", "/config"),
            ("GET", "/stats"),
            ("GET", "/"),
            ("GET", "/advice"),
            ("POST", "/reload"),
            ("POST", "/cache/purge"),
        ] {
            assert_eq!(
                status_with_host(proxy.admin, method, path, &host).await,
                421,
                "{method} {path} with Host {host}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn listed_names_are_allowed_and_star_allows_any() {
    let origin = Origin::start();
    let listed = Proxy::start_with(|d, a| {
        open_conf(d, a, &origin).replace(
            "[admin]\n",
            "[admin]\nallowed_hosts = [\"outrider.internal\", \"localhost\"]\n",
        )
    });
    let admin = listed.admin;
    assert_eq!(
        status_with_host(admin, "GET", "/healthz", "Outrider.Internal:9901").await,
        200
    );
    assert_eq!(
        status_with_host(admin, "GET", "/healthz", "localhost").await,
        200
    );
    assert_eq!(
        status_with_host(admin, "GET", "/healthz", "other.internal").await,
        421
    );
    drop(listed);
    let any = Proxy::start_with(|d, a| {
        open_conf(d, a, &origin).replace("[admin]\n", "[admin]\nallowed_hosts = [\"*\"]\n")
    });
    assert_eq!(
        status_with_host(any.admin, "GET", "/healthz", "any.example").await,
        200
    );
}

#[test]
fn entries_are_validated_with_their_position() {
    let text =
        format!("[admin]\nallowed_hosts = [\"localhost\", \"evil:80\", \"::1\"]\n{UPSTREAM}");
    let run = check_text(&text);
    assert_errors(
        &run,
        &[
            (2, 31, "admin.allowed_hosts[1]", "without a port"),
            (2, 42, "admin.allowed_hosts[2]", "in brackets"),
        ],
    );
}
