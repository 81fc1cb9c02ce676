//! Who may mutate: the bearer token, and browsers sent by a web page.

use outrider::admin::ENDPOINTS;
use serde_json::Value;

use crate::admin_plane::rig::{
    cache_report, config_of, generation, get, is_hit, marker_origin, metric_total, open_conf, send,
    still_cached, still_serving, token_conf, url, warm, OBJECT, TOKEN,
};
use crate::support::BinaryProxy;

// ---------------------------------------------------------------------------------------------
// The bearer token
// ---------------------------------------------------------------------------------------------

/// Every mutating endpoint refuses missing and wrong credentials with 401 and
/// `WWW-Authenticate: Bearer`, whatever the body, and nothing changes: no reload (generation
/// and reload counters), no purge (the object is still a hit). Wrong credentials include a
/// prefix of the token, the token plus a byte, another case, another scheme, and the token
/// without a scheme.
#[tokio::test(flavor = "multi_thread")]
async fn mutating_endpoints_refuse_bad_credentials_and_change_nothing() {
    let origin = marker_origin();
    let proxy = BinaryProxy::spawn(|d, a| token_conf(d, a, &origin));
    warm(proxy.addr).await;
    let fetches = origin.requests().iter().filter(|r| r.uri == OBJECT).count();

    let prefix = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let longer = format!("Bearer {TOKEN}x");
    let upper = format!("Bearer {}", TOKEN.to_uppercase());
    let lower = format!("Bearer {}", TOKEN.to_lowercase());
    let bare = TOKEN.to_string();
    let basic = format!("Basic {TOKEN}");
    let glued = format!("Bearer{TOKEN}");
    let tab = format!("Bearer\t{TOKEN}");
    let doubled = format!("Bearer {TOKEN} {TOKEN}");
    let bad: Vec<Option<&str>> = vec![
        None,
        Some(""),
        Some("Bearer"),
        Some("Bearer "),
        Some("Bearer wrong"),
        Some(&prefix),
        Some(&longer),
        Some(&upper),
        Some(&lower),
        Some(&bare),
        Some(&basic),
        Some(&glued),
        Some(&tab),
        Some(&doubled),
    ];
    let mutating: Vec<_> = ENDPOINTS.iter().filter(|e| e.mutating).collect();
    assert!(
        mutating.iter().any(|e| e.path == "/reload")
            && mutating.iter().any(|e| e.path == "/cache/purge"),
        "ENDPOINTS no longer marks /reload and /cache/purge as mutating"
    );
    for endpoint in &mutating {
        for auth in &bad {
            // A valid purge body, then one that would be a 400: the token is checked first.
            for body in [&br#"{"all": true}"#[..], b"not json"] {
                let headers: Vec<(&str, &str)> =
                    auth.iter().map(|a| ("authorization", *a)).collect();
                let url = format!("http://{}{}", proxy.admin, endpoint.path);
                let answer = send(endpoint.method.as_str(), &url, &headers, Some(body)).await;
                assert_eq!(
                    answer.status, 401,
                    "{} {} with Authorization {auth:?}: {}",
                    endpoint.method, endpoint.path, answer.body
                );
                assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
            }
        }
    }
    let config = config_of(proxy.admin).await;
    assert_eq!(
        config["generation"], 1,
        "a refused reload reloaded: {config}"
    );
    assert_eq!(
        metric_total(proxy.admin, "outrider_config_reloads_total").await,
        0.0,
        "a refused reload was attempted"
    );
    still_cached(proxy.addr, &origin, fetches, "refused purges").await;
    assert_eq!(cache_report(proxy.admin).await["purged"], 0);
    still_serving(proxy.addr, proxy.admin, "refused requests").await;
}

/// The right token works, with the scheme in any case and any run of spaces before the token
/// (RFC 9110 §11.4: `auth-scheme 1*SP token68`); reading endpoints need no token, and a wrong
/// one on them is ignored.
#[tokio::test(flavor = "multi_thread")]
async fn the_bearer_token_unlocks_mutations_and_reads_need_none() {
    let origin = marker_origin();
    let proxy = BinaryProxy::spawn(|d, a| token_conf(d, a, &origin));
    let reload = format!("http://{}/reload", proxy.admin);
    let mut generation = 1;
    for auth in [
        format!("Bearer {TOKEN}"),
        format!("bearer {TOKEN}"),
        format!("BEARER {TOKEN}"),
        format!("Bearer   {TOKEN}"),
    ] {
        let answer = send("POST", &reload, &[("authorization", &auth)], None).await;
        generation += 1;
        assert_eq!(
            answer.status, 200,
            "Authorization {auth:?}: {}",
            answer.body
        );
        let json = answer.json();
        assert_eq!(
            (json["result"].as_str(), json["generation"].as_u64()),
            (Some("applied"), Some(generation)),
            "Authorization {auth:?}: {json}"
        );
    }
    assert_eq!(config_of(proxy.admin).await["generation"], generation);

    warm(proxy.addr).await;
    let purge = format!("http://{}/cache/purge", proxy.admin);
    let auth = format!("Bearer {TOKEN}");
    let answer = send(
        "POST",
        &purge,
        &[("authorization", &auth)],
        Some(format!(r#"{{"key": "{OBJECT}"}}"#).as_bytes()),
    )
    .await;
    assert_eq!(
        (answer.status, &answer.json()["purged"]),
        (200, &Value::from(1))
    );
    assert!(
        !is_hit(&get(proxy.addr, OBJECT).await),
        "the purged object is still a hit"
    );

    for endpoint in ENDPOINTS.iter().filter(|e| !e.mutating) {
        let url = format!("http://{}{}", proxy.admin, endpoint.path);
        for headers in [&[][..], &[("authorization", "Bearer wrong")][..]] {
            let answer = send(endpoint.method.as_str(), &url, headers, None).await;
            assert_eq!(
                answer.status, 200,
                "{} {} with {headers:?}: {}",
                endpoint.method, endpoint.path, answer.body
            );
        }
    }
    // The token never leaves through /config.
    let config = get(proxy.admin, "/config").await.body;
    assert!(!config.contains(TOKEN), "/config shows the token: {config}");
}

// ---------------------------------------------------------------------------------------------
// Browsers
// ---------------------------------------------------------------------------------------------

/// A web page can make the browser of someone on the proxy's host send a cross-origin "simple"
/// POST (no preflight: `Content-Type: text/plain` or a form) to 127.0.0.1:9901. With no token
/// (the default), such a request must not purge the cache or reload the policy: it is refused
/// with 403 when it carries `Origin` or a `Sec-Fetch-Site` other than `none` (a typed URL),
/// which no admin client (curl, Prometheus, kubelet probes) sends. Reads and API clients are
/// unaffected.
#[tokio::test(flavor = "multi_thread")]
async fn cross_site_browser_posts_change_nothing() {
    let origin = marker_origin();
    let proxy = BinaryProxy::spawn(|d, a| open_conf(d, a, &origin));
    warm(proxy.addr).await;
    let fetches = origin.requests().iter().filter(|r| r.uri == OBJECT).count();
    let browsers: [&[(&str, &str)]; 4] = [
        &[
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "no-cors"),
        ],
        &[("origin", "null")],
        &[("sec-fetch-site", "same-site")],
        &[("sec-fetch-site", "cross-site")],
    ];
    for browser in browsers {
        for content_type in [
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "application/json",
        ] {
            let mut headers = browser.to_vec();
            headers.push(("content-type", content_type));
            let purge = send(
                "POST",
                &url(proxy.admin, "/cache/purge"),
                &headers,
                Some(br#"{"all": true}"#),
            )
            .await;
            let reload = send("POST", &url(proxy.admin, "/reload"), &headers, Some(b"a=b")).await;
            let reloaded = generation(proxy.admin).await > 1;
            assert!(
                purge.status == 403 && reload.status == 403 && !reloaded,
                "a browser POST ({headers:?}) was executed (src/admin/mod.rs, \
                 AdminApp::response): purge {} {:?}, reload {} (reloaded: {reloaded})",
                purge.status,
                purge.body,
                reload.status,
            );
        }
    }
    still_cached(proxy.addr, &origin, fetches, "cross-site purges").await;
    assert_eq!(cache_report(proxy.admin).await["purged"], 0);

    // A typed URL (Sec-Fetch-Site: none) and reads are not refused.
    let answer = send(
        "GET",
        &url(proxy.admin, "/metrics"),
        &[
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ],
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "a read with Origin");
    let answer = send(
        "POST",
        &url(proxy.admin, "/reload"),
        &[("sec-fetch-site", "none")],
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "Sec-Fetch-Site: none: {}", answer.body);
    assert_eq!(generation(proxy.admin).await, 2);
}
