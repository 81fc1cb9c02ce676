//! HTTP/1.0 and h2c clients.

use reqwest::header::ACCEPT_ENCODING;

use crate::compression::helpers::{Got, Rig, BODY};
use crate::support::h2c_client;
use crate::support::origin::pattern;
use crate::support::raw::{raw_exchange, raw_header};

// ======================================================================================
// HTTP versions
// ======================================================================================

/// HTTP/1.0 has no chunked framing, so the proxy never compresses for it (it would have to
/// close the connection to end the body).
#[tokio::test]
async fn http10_clients_get_identity() {
    let rig = Rig::new();
    let (status, headers, body) = raw_exchange(
        rig.proxy.addr,
        &format!(
            "GET /old?size={BODY}&ct=text/html HTTP/1.0\r\nHost: h\r\nAccept-Encoding: gzip\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(raw_header(&headers, "content-encoding"), None);
    assert_eq!(raw_header(&headers, "transfer-encoding"), None);
    assert_eq!(
        raw_header(&headers, "content-length"),
        Some(BODY.to_string().as_str())
    );
    assert_eq!(raw_header(&headers, "vary"), Some("Accept-Encoding"));
    assert!(body == pattern(0, BODY), "body differs");
}

#[tokio::test]
async fn h2c_clients_get_compressed_bodies() {
    let rig = Rig::new();
    for framing in ["", "&chunked=1"] {
        let resp = h2c_client()
            .get(
                rig.proxy
                    .url(&format!("/h2?size={BODY}&ct=text/plain{framing}")),
            )
            .header(ACCEPT_ENCODING, "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        let got = Got::read(resp).await;
        assert_eq!(got.coding(), Some("gzip"), "{framing}");
        assert_eq!(got.header("content-length"), None, "{framing}");
        assert_eq!(got.header("transfer-encoding"), None, "{framing}");
        assert!(got.decoded() == pattern(0, BODY), "{framing}");
    }
}
