//! Header rewriting, and the `Accept-Encoding` the upstream is asked for.

use crate::compression::helpers::{main_route, route, upstream_accept, Rig, BODY};
use crate::support::origin::pattern;

// ======================================================================================
// Header rewriting
// ======================================================================================

#[tokio::test]
async fn vary_is_merged_into_one_line_or_left_as_star() {
    let rig = Rig::new();
    let origin_vary = rig
        .get(
            &format!("/v?size={BODY}&ct=text/plain&h=Vary:Origin"),
            Some("gzip"),
        )
        .await;
    assert_eq!(origin_vary.coding(), Some("gzip"));
    assert_eq!(
        origin_vary.all("vary").len(),
        1,
        "{:?}",
        origin_vary.all("vary")
    );
    assert_eq!(origin_vary.vary(), ["Origin", "Accept-Encoding"]);

    // Identity clients get the same merged Vary: caches key both alike.
    let identity = rig
        .get(&format!("/v?size={BODY}&ct=text/plain&h=Vary:Origin"), None)
        .await;
    assert_eq!(identity.coding(), None);
    assert_eq!(identity.vary(), ["Origin", "Accept-Encoding"]);

    let already = rig
        .get(
            &format!("/v?size={BODY}&ct=text/plain&h=Vary:accept-encoding"),
            Some("gzip"),
        )
        .await;
    assert_eq!(already.coding(), Some("gzip"));
    assert_eq!(already.all("vary"), ["accept-encoding"]);

    let star = rig
        .get(
            &format!("/v?size={BODY}&ct=text/plain&h=Vary:*"),
            Some("gzip"),
        )
        .await;
    assert_eq!(star.coding(), Some("gzip"));
    assert_eq!(star.all("vary"), ["*"]);
    assert!(star.decoded() == pattern(0, BODY));
}

#[tokio::test]
async fn accept_ranges_is_dropped_only_when_the_body_is_encoded() {
    let rig = Rig::new();
    let path = format!("/a?size={BODY}&ct=text/plain&h=Accept-Ranges:bytes");
    let encoded = rig.get(&path, Some("br")).await;
    assert_eq!(encoded.coding(), Some("br"));
    assert_eq!(encoded.header("accept-ranges"), None);
    let identity = rig.get(&path, None).await;
    assert_eq!(identity.coding(), None);
    assert_eq!(identity.header("accept-ranges"), Some("bytes"));
}

#[tokio::test]
async fn a_strong_etag_is_weakened_when_encoded_and_a_weak_one_kept() {
    let rig = Rig::new();
    let strong = format!("/e?size={BODY}&ct=text/plain&h=ETag:%22abc%22");
    let got = rig.get(&strong, Some("gzip")).await;
    assert_eq!(got.coding(), Some("gzip"));
    assert_eq!(got.all("etag"), ["W/\"abc\""]);
    // The identity representation keeps the strong validator.
    assert_eq!(rig.get(&strong, None).await.all("etag"), ["\"abc\""]);

    let weak = format!("/e?size={BODY}&ct=text/plain&h=ETag:W/%22abc%22");
    let got = rig.get(&weak, Some("zstd")).await;
    assert_eq!(got.coding(), Some("zstd"));
    assert_eq!(got.all("etag"), ["W/\"abc\""]);
}

// ======================================================================================
// What the upstream is asked for
// ======================================================================================

#[tokio::test]
async fn a_compressing_route_asks_the_upstream_for_identity() {
    let rig = Rig::new();
    let path = format!("/u?size={BODY}&ct=text/plain");
    for accept in [Some("gzip, br"), None, Some("identity")] {
        rig.get(&path, accept).await;
        assert_eq!(
            upstream_accept(&rig.origin.requests().pop().unwrap()),
            ["identity"],
            "client sent {accept:?}"
        );
    }
}

#[tokio::test]
async fn upstream_identity_false_forwards_the_clients_accept_encoding() {
    let rig = Rig::with("upstream_identity = false", &[main_route()]);
    let got = rig
        .get(&format!("/u?size={BODY}&ct=text/plain"), Some("gzip, br"))
        .await;
    // The origin answered identity anyway, so the proxy still compresses.
    assert_eq!(got.coding(), Some("br"));
    assert!(got.decoded() == pattern(0, BODY));
    assert_eq!(upstream_accept(&rig.origin.requests()[0]), ["gzip, br"]);
}

#[tokio::test]
async fn a_route_without_compression_forwards_the_clients_accept_encoding() {
    let rig = Rig::with(
        "",
        &[route("off", "/off/", "enabled = false"), main_route()],
    );
    let got = rig
        .get("/off/u?size=10&ct=text/plain", Some("gzip, br"))
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(upstream_accept(&rig.origin.requests()[0]), ["gzip, br"]);
    // The neighbouring route compresses, so it asks for identity.
    rig.get("/u?size=10&ct=text/plain", Some("gzip, br")).await;
    assert_eq!(upstream_accept(&rig.origin.requests()[1]), ["identity"]);
}

/// `algorithms = []` compresses nothing (like `enabled = false`), so the client's own
/// preference should still reach the upstream.
#[tokio::test]
async fn a_route_with_no_algorithms_forwards_the_clients_accept_encoding() {
    let rig = Rig::with("", &[route("none", "/", "algorithms = []")]);
    let got = rig
        .get(&format!("/u?size={BODY}&ct=text/plain"), Some("gzip, br"))
        .await;
    assert_eq!(got.coding(), None);
    assert!(got.vary().is_empty(), "{:?}", got.vary());
    assert_eq!(upstream_accept(&rig.origin.requests()[0]), ["gzip, br"]);
}
