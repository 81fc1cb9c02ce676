//! When the proxy does not compress.

use reqwest::Method;

use crate::compression::helpers::{Rig, BODY};
use crate::support::origin::pattern;

// ======================================================================================
// Skip conditions
// ======================================================================================

#[tokio::test]
async fn no_content_is_never_encoded() {
    let rig = Rig::new();
    let got = rig.get("/s?status=204&ct=text/plain", Some("gzip")).await;
    assert_eq!(got.status, 204);
    assert_eq!(got.coding(), None);
    assert!(got.body.is_empty());
}

#[tokio::test]
async fn not_modified_is_never_encoded_but_varies_like_the_200() {
    let rig = Rig::new();
    let got = rig
        .get("/s?status=304&ct=text/html&h=ETag:%22v1%22", Some("gzip"))
        .await;
    assert_eq!(got.status, 304);
    assert_eq!(got.coding(), None);
    assert!(got.body.is_empty());
    assert_eq!(
        got.header("etag"),
        Some("\"v1\""),
        "a 304's validator is kept as is"
    );
    assert_eq!(got.vary(), ["Accept-Encoding"]);
}

#[tokio::test]
async fn head_is_never_encoded_and_keeps_its_content_length() {
    let rig = Rig::new();
    let got = rig
        .send(
            Method::HEAD,
            &format!("/s?size={BODY}&ct=text/html"),
            &[("accept-encoding", "gzip")],
        )
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.coding(), None);
    assert_eq!(
        got.header("content-length"),
        Some(BODY.to_string().as_str())
    );
    assert!(got.body.is_empty());
    assert_eq!(got.vary(), ["Accept-Encoding"]);
}

#[tokio::test]
async fn partial_content_is_never_encoded() {
    let rig = Rig::new();
    let path = format!(
        "/s?status=206&size={BODY}&ct=text/plain&h=Content-Range:bytes%200-{}/40000",
        BODY - 1
    );
    let got = rig.get(&path, Some("gzip, br, zstd")).await;
    assert_eq!(got.status, 206);
    assert_eq!(got.coding(), None);
    assert_eq!(
        got.header("content-range"),
        Some(format!("bytes 0-{}/40000", BODY - 1).as_str())
    );
    assert_eq!(
        got.header("content-length"),
        Some(BODY.to_string().as_str())
    );
    assert!(got.body == pattern(0, BODY), "the range's bytes changed");
}

/// An origin that encoded the body itself is passed through untouched: never a second coding,
/// and no Vary of the proxy's (the proxy cannot produce another representation). An explicit
/// `Content-Encoding: identity` is no coding, so that body is compressed.
#[tokio::test]
async fn an_already_encoded_body_passes_through_unchanged() {
    let rig = Rig::new();
    // Not real gzip: the proxy must neither decode nor re-encode it.
    let path = format!("/s?size={BODY}&ct=text/plain&h=Content-Encoding:gzip");
    for accept in ["gzip", "br", "zstd, br, gzip"] {
        let got = rig.get(&path, Some(accept)).await;
        assert_eq!(got.status, 200, "{accept}");
        assert_eq!(got.all("content-encoding"), ["gzip"], "{accept}");
        assert_eq!(
            got.header("content-length"),
            Some(BODY.to_string().as_str()),
            "{accept}"
        );
        assert!(got.body == pattern(0, BODY), "{accept}: body changed");
        assert!(got.vary().is_empty(), "{accept}: {:?}", got.vary());
    }

    let identity = rig
        .get(
            &format!("/s?size={BODY}&ct=text/plain&h=Content-Encoding:identity"),
            Some("gzip"),
        )
        .await;
    assert_eq!(identity.all("content-encoding"), ["gzip"]);
    assert!(identity.decoded() == pattern(0, BODY));
}

#[tokio::test]
async fn no_transform_is_respected() {
    let rig = Rig::new();
    for cc in ["no-transform", "public,%20max-age=60,%20no-transform"] {
        let path = format!("/s?size={BODY}&ct=text/plain&h=Cache-Control:{cc}");
        let got = rig.get(&path, Some("gzip")).await;
        assert_eq!(got.coding(), None, "{cc}");
        assert_eq!(
            got.header("content-length"),
            Some(BODY.to_string().as_str()),
            "{cc}"
        );
        assert!(got.body == pattern(0, BODY), "{cc}: body changed");
        assert!(got.vary().is_empty(), "{cc}: {:?}", got.vary());
    }
    // The directive has to be exactly no-transform.
    let path = format!("/s?size={BODY}&ct=text/plain&h=Cache-Control:x-no-transform");
    assert_eq!(rig.get(&path, Some("gzip")).await.coding(), Some("gzip"));
}

/// A media type outside `content_types` (or none at all) is never compressed, and gets no
/// Vary since no client would get it compressed.
#[tokio::test]
async fn media_types_outside_the_list_are_not_compressed_nor_varied() {
    let rig = Rig::new();
    for ct in ["&ct=image/png", "&ct=application/octet-stream", ""] {
        let path = format!("/s?size={BODY}{ct}");
        let got = rig.get(&path, Some("gzip, br, zstd")).await;
        assert_eq!(got.coding(), None, "{path}");
        assert!(got.vary().is_empty(), "{path}: {:?}", got.vary());
        assert!(got.body == pattern(0, BODY), "{path}: body changed");
    }
    // Parameters and case do not matter; structured suffixes are matched.
    for ct in [
        "text/html;%20charset=utf-8",
        "Application/JSON",
        "application/ld%2Bjson",
        "image/svg%2Bxml",
    ] {
        let path = format!("/s?size={BODY}&ct={ct}");
        assert_eq!(
            rig.get(&path, Some("gzip")).await.coding(),
            Some("gzip"),
            "{ct}"
        );
    }
}

#[tokio::test]
async fn a_body_below_min_size_is_sent_as_is_but_varies() {
    let rig = Rig::new();
    for size in [0, 1, 500, 1023] {
        let got = rig
            .get(&format!("/s?size={size}&ct=text/plain"), Some("gzip"))
            .await;
        assert_eq!(got.coding(), None, "size {size}");
        assert_eq!(
            got.header("content-length"),
            Some(size.to_string().as_str()),
            "size {size}"
        );
        assert_eq!(got.vary(), ["Accept-Encoding"], "size {size}");
        assert!(got.body == pattern(0, size), "size {size}: body changed");
    }
    // Exactly min_size qualifies.
    let got = rig.get("/s?size=1024&ct=text/plain", Some("gzip")).await;
    assert_eq!(got.coding(), Some("gzip"));
    assert!(got.decoded() == pattern(0, 1024));
}
