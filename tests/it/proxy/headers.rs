//! Header hygiene: forwarding headers, Via, Host, hop-by-hop headers, HTTP/1.0 clients.

use reqwest::header::HOST;

use crate::proxy::helpers::all_values;
use crate::support::origin::pattern;
use crate::support::raw::{raw_exchange, raw_header};
use crate::support::{client, Origin, Proxy};

// ======================================================================================
// Header hygiene
// ======================================================================================

#[tokio::test]
async fn forwarding_headers_are_added_for_the_upstream() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let http = client();
    http.get(proxy.url("/fresh")).send().await.unwrap();
    http.get(proxy.url("/chained"))
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("via", "1.1 edge")
        .send()
        .await
        .unwrap();
    let seen = origin.requests();

    let fresh = &seen[0].headers;
    assert_eq!(fresh["x-forwarded-for"], "127.0.0.1");
    assert_eq!(fresh["x-forwarded-proto"], "http");
    assert_eq!(all_values(fresh, "via"), ["1.1 outrider"]);

    let chained = &seen[1].headers;
    assert_eq!(
        all_values(chained, "x-forwarded-for"),
        ["203.0.113.7, 127.0.0.1"]
    );
    assert_eq!(
        all_values(chained, "x-forwarded-proto"),
        ["http"],
        "client value must be overwritten"
    );
    assert_eq!(
        all_values(chained, "via").join(", "),
        "1.1 edge, 1.1 outrider"
    );
}

/// RFC 9110 §5.3: several field lines of one name mean the same as one comma-joined line.
#[tokio::test]
async fn x_forwarded_for_keeps_every_prior_field_line() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let (status, _, _) = raw_exchange(
        proxy.addr,
        "GET /xff HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\n\
         X-Forwarded-For: 10.0.0.2\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    let seen = origin.requests();
    assert_eq!(
        all_values(&seen[0].headers, "x-forwarded-for").join(", "),
        "10.0.0.1, 10.0.0.2, 127.0.0.1"
    );
}

#[tokio::test]
async fn via_is_added_to_the_response() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let plain = client().get(proxy.url("/v")).send().await.unwrap();
    assert_eq!(all_values(plain.headers(), "via"), ["1.1 outrider"]);
    let chained = client()
        .get(proxy.url("/v?h=via:1.1%20backend"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        all_values(chained.headers(), "via").join(", "),
        "1.1 backend, 1.1 outrider"
    );
}

#[tokio::test]
async fn host_header_reaches_the_upstream_as_the_client_sent_it() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let http = client();
    for host in ["app.example.com", "App.Example.com:8443", "10.1.2.3"] {
        let resp = http
            .get(proxy.url("/h"))
            .header(HOST, host)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let hosts: Vec<String> = origin
        .requests()
        .iter()
        .map(|r| all_values(&r.headers, "host").join(" | "))
        .collect();
    assert_eq!(
        hosts,
        ["app.example.com", "App.Example.com:8443", "10.1.2.3"]
    );
}

#[tokio::test]
async fn hop_by_hop_request_headers_do_not_reach_the_upstream() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let (status, _, _) = raw_exchange(
        proxy.addr,
        "GET /hop HTTP/1.1\r\nHost: h\r\nConnection: close, X-Private\r\nX-Private: 1\r\n\
         Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\n\
         Proxy-Authorization: Basic Zm9vOmJhcg==\r\nX-Public: 1\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    let seen = origin.requests();
    assert_eq!(seen.len(), 1);
    let h = &seen[0].headers;
    for name in [
        "x-private",
        "keep-alive",
        "te",
        "proxy-connection",
        "proxy-authorization",
    ] {
        assert!(h.get(name).is_none(), "{name} reached the origin: {h:?}");
    }
    let connection = all_values(h, "connection").join(",").to_ascii_lowercase();
    assert!(
        !connection.contains("x-private"),
        "connection: {connection}"
    );
    assert_eq!(h["x-public"], "1", "an end-to-end header was lost");
}

#[tokio::test]
async fn hop_by_hop_response_headers_do_not_reach_the_client() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let resp = client()
        .get(proxy.url(
            "/hop?h=connection:x-secret&h=x-secret:1&h=keep-alive:timeout%3D5&\
             h=proxy-connection:keep-alive&h=x-kept:yes",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    for name in ["x-secret", "keep-alive", "proxy-connection"] {
        assert!(h.get(name).is_none(), "{name} reached the client: {h:?}");
    }
    let connection = all_values(h, "connection").join(",").to_ascii_lowercase();
    assert!(!connection.contains("x-secret"), "connection: {connection}");
    assert_eq!(h["x-kept"], "yes", "an end-to-end header was lost");
}

#[tokio::test]
async fn connection_header_cannot_nominate_forwarding_headers() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let (status, _, _) = raw_exchange(
        proxy.addr,
        "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close, X-Forwarded-For\r\n\
         X-Forwarded-For: 10.9.9.9\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(origin.request_count(), 0);
}

#[tokio::test]
async fn http10_client_gets_via_1_0_and_an_exact_body() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let (status, headers, body) =
        raw_exchange(proxy.addr, "GET /old?size=10 HTTP/1.0\r\nHost: h\r\n\r\n").await;
    assert_eq!(status, 200);
    assert_eq!(raw_header(&headers, "via"), Some("1.0 outrider"));
    assert_eq!(body, pattern(0, 10));
    assert_eq!(origin.requests()[0].headers["via"], "1.0 outrider");
}

/// RFC 9112 §6.1: "A server MUST NOT send a response containing Transfer-Encoding unless the
/// corresponding request indicates HTTP/1.1 (or later minor revisions)."
#[tokio::test]
async fn http10_client_never_gets_a_chunked_response() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let (status, headers, body) = raw_exchange(
        proxy.addr,
        "GET /old?chunked=1&size=10 HTTP/1.0\r\nHost: h\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(raw_header(&headers, "transfer-encoding"), None);
    assert_eq!(
        body,
        pattern(0, 10),
        "the body must arrive without chunk framing"
    );
}
