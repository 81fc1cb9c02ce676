//! Round trips and the negotiation of a coding.

use crate::compression::helpers::{decode, main_route, Rig, BODY};
use crate::support::origin::pattern;

// ======================================================================================
// Round trips
// ======================================================================================

/// Every coding, for a body with a Content-Length and for a chunked one, decodes to exactly
/// the bytes an identity client gets.
#[tokio::test]
async fn every_coding_round_trips_byte_exact() {
    let rig = Rig::new();
    for ct in ["application/json", "text/html"] {
        for framing in ["", "&chunked=1"] {
            let path = format!("/r?size={BODY}&ct={ct}{framing}");
            let identity = rig.get(&path, None).await;
            assert_eq!(identity.status, 200);
            assert_eq!(identity.coding(), None, "{path}");
            assert!(
                identity.body == pattern(0, BODY),
                "{path}: identity body differs"
            );
            for coding in ["gzip", "br", "zstd"] {
                let got = rig.get(&path, Some(coding)).await;
                let what = format!("{coding} {path}");
                assert_eq!(got.status, 200, "{what}");
                assert_eq!(got.coding(), Some(coding), "{what}");
                assert_eq!(got.header("content-length"), None, "{what}");
                assert_eq!(got.vary(), ["Accept-Encoding"], "{what}");
                assert!(
                    got.body.len() < BODY / 4,
                    "{what}: {} encoded bytes for {BODY}: not really compressed",
                    got.body.len()
                );
                assert!(
                    decode(coding, &got.body) == identity.body,
                    "{what}: decoded body differs from the identity body"
                );
            }
        }
    }
}

// ======================================================================================
// Negotiation
// ======================================================================================

/// `(Accept-Encoding, expected coding)` through the proxy with the default algorithm order
/// zstd, br, gzip.
#[tokio::test]
async fn negotiation_follows_q_values_then_the_server_order() {
    let rig = Rig::new();
    let rows: &[(&str, Option<&str>)] = &[
        ("gzip", Some("gzip")),
        ("br", Some("br")),
        ("zstd", Some("zstd")),
        // Highest weight wins.
        ("gzip;q=1, br;q=0.5", Some("gzip")),
        ("gzip;q=0.5, br;q=0.9", Some("br")),
        ("br;q=0.8, zstd;q=0.81", Some("zstd")),
        // Ties go to the route's `algorithms` order.
        ("gzip, br", Some("br")),
        ("gzip, br, zstd", Some("zstd")),
        ("gzip;q=0.5, br;q=0.5", Some("br")),
        // q=0 means not acceptable.
        ("br;q=0, gzip", Some("gzip")),
        ("zstd;q=0, br;q=0, gzip;q=0.1", Some("gzip")),
        ("gzip;q=0", None),
        // `*` stands for every coding not listed.
        ("*", Some("zstd")),
        ("*;q=0.5, gzip", Some("gzip")),
        ("*;q=0.5, gzip;q=0.4", Some("zstd")),
        ("zstd;q=0, *", Some("br")),
        ("*;q=0", None),
        // Codings the proxy cannot produce, and identity, give identity.
        ("deflate", None),
        ("identity", None),
        // Aliases and case.
        ("x-gzip", Some("gzip")),
        ("GZIP", Some("gzip")),
        // A real browser.
        ("gzip, deflate, br, zstd", Some("zstd")),
    ];
    let path = format!("/n?size={BODY}&ct=text/plain");
    for (accept, expected) in rows {
        let got = rig.get(&path, Some(accept)).await;
        assert_eq!(got.coding(), *expected, "Accept-Encoding: {accept:?}");
        assert!(
            got.decoded() == pattern(0, BODY),
            "Accept-Encoding: {accept:?}: body differs"
        );
    }
}

/// With `algorithms = ["gzip", "br"]`, a tie goes to gzip and zstd is never produced.
#[tokio::test]
async fn negotiation_ties_follow_the_configured_algorithm_order() {
    let rig = Rig::with(r#"algorithms = ["gzip", "br"]"#, &[main_route()]);
    let rows: &[(&str, Option<&str>)] = &[
        ("br, gzip", Some("gzip")),
        ("gzip, br", Some("gzip")),
        ("*", Some("gzip")),
        ("br;q=1, gzip;q=0.9", Some("br")),
        ("zstd", None),
        ("zstd, br", Some("br")),
    ];
    let path = format!("/n?size={BODY}&ct=text/plain");
    for (accept, expected) in rows {
        let got = rig.get(&path, Some(accept)).await;
        assert_eq!(got.coding(), *expected, "Accept-Encoding: {accept:?}");
        assert!(
            got.decoded() == pattern(0, BODY),
            "Accept-Encoding: {accept:?}: body differs"
        );
    }
}

/// A client that accepts only identity (or says nothing) gets the body as the origin framed
/// it, Content-Length included, and still `Vary: Accept-Encoding`: the same URL is sent
/// compressed to other clients.
#[tokio::test]
async fn identity_only_clients_get_the_original_framing_and_vary() {
    let rig = Rig::new();
    let path = format!("/i?size={BODY}&ct=text/html");
    for accept in [None, Some("identity"), Some(""), Some("deflate, compress")] {
        let got = rig.get(&path, accept).await;
        assert_eq!(got.status, 200, "{accept:?}");
        assert_eq!(got.coding(), None, "{accept:?}");
        assert_eq!(
            got.header("content-length"),
            Some(BODY.to_string().as_str()),
            "{accept:?}"
        );
        assert_eq!(got.vary(), ["Accept-Encoding"], "{accept:?}");
        assert!(got.body == pattern(0, BODY), "{accept:?}: body differs");
    }
}
