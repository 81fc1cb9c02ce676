//! No route from the data plane to the admin plane: admin paths, `Host` tricks and
//! absolute-form targets on the data port reach the backend.

use std::time::Duration;

use outrider::admin::ENDPOINTS;
use serde_json::Value;

use crate::admin_plane::rig::{
    cache_report, generation, get, is_hit, marker, marker_origin, metric_total, open_conf, send,
    still_cached, url, warm, OBJECT,
};
use crate::support::raw::raw_exchange;
use crate::support::BinaryProxy;

// ---------------------------------------------------------------------------------------------
// No route from the data plane to the admin plane
// ---------------------------------------------------------------------------------------------

/// Every admin path, with the admin method (and GET), sent to the data port is proxied to the
/// backend: the marker comes back and the backend recorded the request. A purge body on the
/// data port purges nothing and a `POST /reload` reloads nothing; the same requests on the
/// admin port then do both, so the checks can see an effect.
#[tokio::test(flavor = "multi_thread")]
async fn data_port_proxies_every_admin_path_to_the_backend() {
    let origin = marker_origin();
    let proxy = BinaryProxy::spawn(|d, a| open_conf(d, a, &origin));
    warm(proxy.addr).await;
    let fetches = origin.requests().iter().filter(|r| r.uri == OBJECT).count();
    let purge_all = br#"{"all": true}"#;

    let mut paths: Vec<(&str, &str)> = ENDPOINTS
        .iter()
        .flat_map(|e| [(e.method.as_str(), e.path), ("GET", e.path)])
        .collect();
    paths.extend([("DELETE", "/cache/purge"), ("GET", "/metrics?name=x")]);
    for (method, path) in paths {
        let body = (method != "GET").then_some(&purge_all[..]);
        let before = origin.request_count();
        let answer = send(method, &url(proxy.addr, path), &[], body).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (200, marker(method, path).as_str()),
            "{method} {path} on the data port was not answered by the backend"
        );
        let seen = origin.requests();
        assert_eq!(seen.len(), before + 1, "{method} {path}: backend requests");
        let last = seen.last().unwrap();
        assert_eq!((last.method.as_str(), last.uri.as_str()), (method, path));
        assert_eq!(last.body_len, body.map_or(0, |b| b.len() as u64));
    }

    still_cached(
        proxy.addr,
        &origin,
        fetches,
        "POST /cache/purge on the data port",
    )
    .await;
    let report = cache_report(proxy.admin).await;
    assert_eq!(report["purged"], 0, "{report}");
    assert_eq!(
        generation(proxy.admin).await,
        1,
        "POST /reload on the data port reloaded"
    );
    assert_eq!(
        metric_total(proxy.admin, "outrider_config_reloads_total").await,
        0.0,
        "POST /reload on the data port attempted a reload"
    );

    // Controls: the admin port does both.
    let answer = send("POST", &url(proxy.admin, "/reload"), &[], None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(generation(proxy.admin).await, 2);
    let answer = send(
        "POST",
        &url(proxy.admin, "/cache/purge"),
        &[],
        Some(purge_all),
    )
    .await;
    assert_eq!(
        (answer.status, &answer.json()["purged"]),
        (200, &Value::from(1))
    );
    assert!(
        !is_hit(&get(proxy.addr, OBJECT).await),
        "purged object still a hit"
    );
}

/// A `Host` naming the admin listener, an absolute-form target naming it, or a CONNECT to it
/// on the data port still goes to the backend (or is refused): the admin handlers never
/// answer, and the cache survives a purge sent that way.
#[tokio::test(flavor = "multi_thread")]
async fn host_tricks_on_the_data_port_do_not_reach_the_admin_plane() {
    let origin = marker_origin();
    let proxy = BinaryProxy::spawn(|d, a| open_conf(d, a, &origin));
    warm(proxy.addr).await;
    let fetches = origin.requests().iter().filter(|r| r.uri == OBJECT).count();
    let admin = proxy.admin;
    let purge = r#"{"all": true}"#;
    let mut reached = 0;
    for host in [
        admin.to_string(),
        format!("localhost:{}", admin.port()),
        "127.0.0.1".to_string(),
    ] {
        for (method, target, body) in [
            ("GET", "/metrics".to_string(), ""),
            ("GET", format!("http://{admin}/config"), ""),
            ("POST", "/cache/purge".to_string(), purge),
            ("POST", format!("http://{admin}/cache/purge"), purge),
            ("POST", format!("http://{admin}/reload"), ""),
        ] {
            let request = format!(
                "{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let before = origin.request_count();
            let (status, _, reply) = raw_exchange(proxy.addr, &request).await;
            let reply = String::from_utf8_lossy(&reply).into_owned();
            let seen = origin.requests();
            let absolute = target.starts_with("http://");
            if seen.len() == before && absolute && (400..500).contains(&status) {
                // Pingora refuses an absolute-form target whose authority the Host does not
                // match: refused, and not by an admin handler.
                assert!(
                    !reply.contains("outrider_") && !reply.contains("purged"),
                    "{reply:?}"
                );
                continue;
            }
            assert_eq!(
                seen.len(),
                before + 1,
                "{method} {target} (Host {host}) did not reach the backend: {status} {reply:?}"
            );
            let last = seen.last().unwrap();
            let path = target.trim_start_matches(&format!("http://{admin}"));
            assert!(
                last.uri.ends_with(path),
                "{method} {target}: the backend saw {}",
                last.uri
            );
            assert_eq!(
                (status, reply),
                (200, marker(method, &last.uri)),
                "{method} {target} (Host {host})"
            );
            if !absolute {
                assert_eq!(
                    last.headers.get("host").and_then(|h| h.to_str().ok()),
                    Some(host.as_str()),
                    "the Host the backend saw"
                );
            }
            reached += 1;
        }
    }
    assert!(reached >= 9, "only {reached} tricks reached the backend");

    // CONNECT to the admin listener, then a request through the would-be tunnel.
    let request = format!(
        "CONNECT {admin} HTTP/1.1\r\nHost: {admin}\r\n\r\n\
         GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"
    );
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut reply),
    )
    .await
    .expect("the data port neither answered nor closed a CONNECT");
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        !reply.contains("outrider_") && !reply.starts_with("HTTP/1.1 200"),
        "CONNECT on the data port tunnelled to the admin plane: {reply:?}"
    );

    still_cached(proxy.addr, &origin, fetches, "purges through Host tricks").await;
    assert_eq!(cache_report(admin).await["purged"], 0);
    assert_eq!(generation(admin).await, 1, "a reload through a Host trick");
}
