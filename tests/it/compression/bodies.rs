//! Large bodies, and chunked bodies that the buffered leg decides by size.

use crate::compression::helpers::Rig;
use crate::support::origin::pattern;

// ======================================================================================
// Large bodies
// ======================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2mib_body_round_trips_with_gzip() {
    const SIZE: usize = 2 * 1024 * 1024;
    let rig = Rig::new();
    for framing in ["", "&chunked=1&chunks=7"] {
        let got = rig
            .get(
                &format!("/big?size={SIZE}&ct=text/plain{framing}"),
                Some("gzip"),
            )
            .await;
        assert_eq!(got.coding(), Some("gzip"), "{framing}");
        assert!(
            got.body.len() < SIZE / 20,
            "{framing}: {} bytes",
            got.body.len()
        );
        let decoded = got.decoded();
        assert_eq!(decoded.len(), SIZE, "{framing}");
        assert!(decoded == pattern(0, SIZE), "{framing}: body differs");
    }
}

// ======================================================================================
// Chunked bodies without Content-Length: the buffered leg decides them by size
// ======================================================================================

/// A chunked body that ends before `min_size` is sent as is, with the Content-Length the proxy
/// learned by buffering it.
#[tokio::test]
async fn a_short_chunked_body_is_sent_uncompressed_with_a_content_length() {
    let rig = Rig::new();
    for size in [0, 500, 1023] {
        let got = rig
            .get(
                &format!("/c?size={size}&chunked=1&ct=text/plain"),
                Some("gzip"),
            )
            .await;
        assert_eq!(got.status, 200, "size {size}");
        assert_eq!(got.coding(), None, "size {size}");
        assert_eq!(
            got.header("content-length"),
            Some(size.to_string().as_str()),
            "size {size}"
        );
        assert_eq!(got.header("transfer-encoding"), None, "size {size}");
        assert_eq!(got.vary(), ["Accept-Encoding"], "size {size}");
        assert!(got.body == pattern(0, size), "size {size}: body differs");
    }
}

/// A chunked body that reaches `min_size` only over several small pieces is compressed.
#[tokio::test]
async fn a_chunked_body_longer_than_min_size_is_compressed() {
    let rig = Rig::new();
    // Four pieces of 600 bytes: none alone reaches the 1 KiB min_size.
    let got = rig
        .get(
            "/c?size=2400&chunked=1&chunks=4&chunk_delay_ms=20&ct=text/plain",
            Some("gzip"),
        )
        .await;
    assert_eq!(got.coding(), Some("gzip"));
    assert_eq!(got.header("content-length"), None);
    assert_eq!(got.vary(), ["Accept-Encoding"]);
    assert!(got.decoded() == pattern(0, 2400));
    // Exactly min_size qualifies too.
    let got = rig
        .get("/c?size=1024&chunked=1&ct=text/plain", Some("gzip"))
        .await;
    assert_eq!(got.coding(), Some("gzip"));
    assert!(got.decoded() == pattern(0, 1024));
}
