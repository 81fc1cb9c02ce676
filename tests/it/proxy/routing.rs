//! Route matching and the fallback rules.

use crate::proxy::helpers::{header_str, named_origin, route_of, two_upstreams};
use crate::support::{client, Origin, Proxy};

// ======================================================================================
// Route matching
// ======================================================================================

#[tokio::test]
async fn routes_by_exact_host_case_insensitively_and_ignoring_the_port() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "api"
upstream = "a"
match = { host = "api.example.com" }

[[routes]]
name = "www"
upstream = "b"
match = { host = "www.example.com" }
"#,
    ));
    assert_eq!(route_of(&proxy, "GET", "api.example.com", "/x").await, "a");
    assert_eq!(
        route_of(&proxy, "GET", "API.Example.COM:8080", "/x").await,
        "a"
    );
    assert_eq!(route_of(&proxy, "GET", "www.example.com", "/x").await, "b");
    assert_eq!(route_of(&proxy, "GET", "example.com", "/x").await, "404");
    assert_eq!(
        route_of(&proxy, "GET", "api.example.com.evil", "/x").await,
        "404"
    );
    assert_eq!(
        route_of(&proxy, "GET", "xapi.example.com", "/x").await,
        "404"
    );
    assert_eq!((a.request_count(), b.request_count()), (2, 1));
}

#[tokio::test]
async fn routes_by_wildcard_host_below_the_suffix_but_not_the_apex() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "subdomains"
upstream = "a"
match = { host = "*.example.com" }

[[routes]]
name = "apex"
upstream = "b"
match = { host = "example.com" }
"#,
    ));
    assert_eq!(route_of(&proxy, "GET", "api.example.com", "/").await, "a");
    assert_eq!(
        route_of(&proxy, "GET", "a.b.EXAMPLE.com:443", "/").await,
        "a"
    );
    assert_eq!(route_of(&proxy, "GET", "example.com", "/").await, "b");
    assert_eq!(route_of(&proxy, "GET", "badexample.com", "/").await, "404");
    assert_eq!(
        route_of(&proxy, "GET", "example.com.evil", "/").await,
        "404"
    );
    assert_eq!((a.request_count(), b.request_count()), (2, 1));
}

#[tokio::test]
async fn routes_by_path_prefix() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "api"
upstream = "a"
match = { path_prefix = "/api/" }

[[routes]]
name = "static"
upstream = "b"
match = { path_prefix = "/static/" }
"#,
    ));
    assert_eq!(route_of(&proxy, "GET", "h", "/api/users").await, "a");
    assert_eq!(route_of(&proxy, "GET", "h", "/api/").await, "a");
    assert_eq!(route_of(&proxy, "GET", "h", "/api/x?q=/static/").await, "a");
    assert_eq!(route_of(&proxy, "GET", "h", "/static/app.css").await, "b");
    assert_eq!(route_of(&proxy, "GET", "h", "/api").await, "404");
    assert_eq!(route_of(&proxy, "GET", "h", "/apix/y").await, "404");
    assert_eq!(route_of(&proxy, "GET", "h", "/").await, "404");
    assert_eq!(route_of(&proxy, "GET", "h", "/x/api/").await, "404");
    let seen: Vec<String> = a.requests().into_iter().map(|r| r.uri).collect();
    assert_eq!(seen, ["/api/users", "/api/", "/api/x?q=/static/"]);
    assert_eq!(b.request_count(), 1);
}

#[tokio::test]
async fn routes_by_path_regex_against_the_path_without_query() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "items"
upstream = "a"
match = { path_regex = '^/v[0-9]+/items/[0-9]+$' }

[[routes]]
name = "images"
upstream = "b"
match = { path_regex = '\.(png|jpe?g)$' }
"#,
    ));
    assert_eq!(route_of(&proxy, "GET", "h", "/v1/items/42").await, "a");
    assert_eq!(route_of(&proxy, "GET", "h", "/v12/items/7?x=1").await, "a");
    assert_eq!(route_of(&proxy, "GET", "h", "/img/cat.jpeg").await, "b");
    assert_eq!(route_of(&proxy, "GET", "h", "/img/cat.png?v=2").await, "b");
    assert_eq!(route_of(&proxy, "GET", "h", "/v1/items/abc").await, "404");
    assert_eq!(route_of(&proxy, "GET", "h", "/x/v1/items/1").await, "404");
    assert_eq!(
        route_of(&proxy, "GET", "h", "/img/cat.png.txt").await,
        "404"
    );
    assert_eq!((a.request_count(), b.request_count()), (2, 2));
}

#[tokio::test]
async fn routes_by_method() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "reads"
upstream = "a"
match = { path_prefix = "/res/", methods = ["GET", "HEAD"] }

[[routes]]
name = "writes"
upstream = "b"
match = { path_prefix = "/res/", methods = ["POST", "DELETE"] }
"#,
    ));
    assert_eq!(route_of(&proxy, "GET", "h", "/res/1").await, "a");
    assert_eq!(route_of(&proxy, "HEAD", "h", "/res/1").await, "a");
    assert_eq!(route_of(&proxy, "POST", "h", "/res/1").await, "b");
    assert_eq!(route_of(&proxy, "DELETE", "h", "/res/1").await, "b");
    assert_eq!(route_of(&proxy, "PUT", "h", "/res/1").await, "404");
    assert_eq!(route_of(&proxy, "PATCH", "h", "/res/1").await, "404");
    let methods =
        |o: &Origin| -> Vec<String> { o.requests().into_iter().map(|r| r.method).collect() };
    // HEAD is fetched as GET: the generated ETag (on by default) hashes the body GET would get.
    assert_eq!(methods(&a), ["GET", "GET"]);
    assert_eq!(methods(&b), ["POST", "DELETE"]);
}

#[tokio::test]
async fn all_conditions_of_a_route_must_hold() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "strict"
upstream = "a"
match = { host = "*.svc.local", path_prefix = "/api/", path_regex = '^/api/v[0-9]+/', methods = ["GET"] }
"#,
    ));
    assert_eq!(
        route_of(&proxy, "GET", "users.svc.local", "/api/v2/x").await,
        "a"
    );
    assert_eq!(
        route_of(&proxy, "POST", "users.svc.local", "/api/v2/x").await,
        "404"
    );
    assert_eq!(
        route_of(&proxy, "GET", "users.svc.other", "/api/v2/x").await,
        "404"
    );
    assert_eq!(
        route_of(&proxy, "GET", "users.svc.local", "/api/x").await,
        "404"
    );
    assert_eq!(
        route_of(&proxy, "GET", "users.svc.local", "/v2/x").await,
        "404"
    );
    assert_eq!((a.request_count(), b.request_count()), (1, 0));
}

#[tokio::test]
async fn first_matching_route_in_file_order_wins() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let broad_first = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "broad"
upstream = "a"
match = { path_prefix = "/api/" }

[[routes]]
name = "narrow"
upstream = "b"
match = { path_prefix = "/api/v2/" }
"#,
    ));
    assert_eq!(route_of(&broad_first, "GET", "h", "/api/v2/x").await, "a");
    assert_eq!(route_of(&broad_first, "GET", "h", "/api/v1/x").await, "a");
    assert_eq!(
        b.request_count(),
        0,
        "the shadowed route must never be used"
    );
    drop(broad_first);

    let narrow_first = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "narrow"
upstream = "b"
match = { path_prefix = "/api/v2/" }

[[routes]]
name = "broad"
upstream = "a"
match = { path_prefix = "/api/" }
"#,
    ));
    assert_eq!(route_of(&narrow_first, "GET", "h", "/api/v2/x").await, "b");
    assert_eq!(route_of(&narrow_first, "GET", "h", "/api/v1/x").await, "a");
    assert_eq!((a.request_count(), b.request_count()), (3, 1));
}

#[tokio::test]
async fn each_route_sends_to_its_own_upstream_with_path_and_query_intact() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "to-a"
upstream = "a"
match = { path_prefix = "/a/" }

[[routes]]
name = "to-b"
upstream = "b"
match = { path_prefix = "/b/" }
"#,
    ));
    for i in 0..3 {
        assert_eq!(
            route_of(&proxy, "GET", "h", &format!("/a/{i}?k=v%20w")).await,
            "a"
        );
        assert_eq!(route_of(&proxy, "GET", "h", &format!("/b/{i}")).await, "b");
    }
    let uris = |o: &Origin| -> Vec<String> { o.requests().into_iter().map(|r| r.uri).collect() };
    assert_eq!(uris(&a), ["/a/0?k=v%20w", "/a/1?k=v%20w", "/a/2?k=v%20w"]);
    assert_eq!(uris(&b), ["/b/0", "/b/1", "/b/2"]);
}

#[tokio::test]
async fn unrouted_request_is_a_short_404_from_the_proxy_and_never_reaches_an_origin() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&two_upstreams(
        &a,
        &b,
        r#"
[[routes]]
name = "api"
upstream = "a"
match = { path_prefix = "/api/" }
"#,
    ));
    let resp = client().get(proxy.url("/nowhere")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.headers().get("x-origin").is_none());
    assert!(header_str(&resp, "content-type").starts_with("text/plain"));
    let body = resp.text().await.unwrap();
    assert!(body.contains("no route"), "body: {body:?}");
    assert!(body.len() < 200, "a short body, got {} bytes", body.len());
    // The client connection is still usable afterwards.
    let again = client()
        .post(proxy.url("/nowhere"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    assert_eq!(a.request_count() + b.request_count(), 0);
}

// ======================================================================================
// Fallback rules
// ======================================================================================

#[tokio::test]
async fn config_with_only_an_upstream_proxies_everything() {
    let origin = named_origin("only");
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/any/deep/path?x=1"),
        ("POST", "/submit"),
        ("DELETE", "/thing/1"),
        ("OPTIONS", "/"),
    ] {
        assert_eq!(
            route_of(&proxy, method, "whatever.host", path).await,
            "only",
            "{method} {path}"
        );
    }
    assert_eq!(origin.request_count(), 5);
}

#[tokio::test]
async fn with_routes_and_no_explicit_default_an_unmatched_request_is_404() {
    let origin = named_origin("app");
    // A single upstream is the implicit upstream of routes that name none, but it does not
    // turn into a catch-all.
    let proxy = Proxy::start(&format!(
        "{}[[routes]]\nname = \"api\"\nmatch = {{ path_prefix = \"/api/\" }}\n",
        origin.upstream_toml("app")
    ));
    assert_eq!(route_of(&proxy, "GET", "h", "/api/x").await, "app");
    assert_eq!(route_of(&proxy, "GET", "h", "/other").await, "404");
    assert_eq!(route_of(&proxy, "POST", "h", "/").await, "404");
    assert_eq!(origin.request_count(), 1);
}

#[tokio::test]
async fn explicit_default_upstream_catches_unmatched_requests() {
    let (a, b) = (named_origin("a"), named_origin("b"));
    let proxy = Proxy::start(&format!(
        "{}{}[defaults]\nupstream = \"b\"\n\n{}",
        a.upstream_toml("a"),
        b.upstream_toml("b"),
        r#"
[[routes]]
name = "api"
upstream = "a"
match = { path_prefix = "/api/" }

[[routes]]
name = "implicit"
match = { path_prefix = "/implicit/" }
"#
    ));
    assert_eq!(route_of(&proxy, "GET", "h", "/api/x").await, "a");
    assert_eq!(route_of(&proxy, "GET", "h", "/other").await, "b");
    assert_eq!(route_of(&proxy, "PUT", "h", "/").await, "b");
    // A route without `upstream` uses the default one.
    assert_eq!(route_of(&proxy, "GET", "h", "/implicit/1").await, "b");
    assert_eq!((a.request_count(), b.request_count()), (1, 3));
}
