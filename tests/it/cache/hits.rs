//! What a hit answers with: ranges, preconditions, compression.

use crate::cache::helpers::{ok, text_body, Rig, ON};

// ======================================================================================
// 10. Ranges from the cache (RFC 9110 §14)
// ======================================================================================

/// A single range is cut from the stored body (206, Content-Range) without the origin;
/// If-Range (§13.1.5) with the stored strong ETag gets the range, with another tag the
/// whole 200.
#[tokio::test(flavor = "multi_thread")]
async fn ranges_are_served_from_the_stored_body() {
    let rig = Rig::new(ON);
    rig.backend.reply(
        "/r",
        ok("0123456789abcdef", "max-age=60").header("ETag", "\"r1\""),
    );
    rig.get("/r", &[]).await;

    let part = rig.get("/r", &[("range", "bytes=0-4")]).await;
    assert_eq!(part.status, 206, "{}", part.cache_status());
    assert_eq!(part.text(), "01234");
    assert_eq!(part.header("content-range"), Some("bytes 0-4/16"));
    assert!(part.hit(), "{}", part.cache_status());

    let tail = rig.get("/r", &[("range", "bytes=10-")]).await;
    assert_eq!((tail.status, tail.text().as_str()), (206, "abcdef"));

    let same = rig
        .get("/r", &[("range", "bytes=5-9"), ("if-range", "\"r1\"")])
        .await;
    assert_eq!((same.status, same.text().as_str()), (206, "56789"));
    let other = rig
        .get("/r", &[("range", "bytes=5-9"), ("if-range", "\"other\"")])
        .await;
    assert_eq!(
        (other.status, other.text().as_str()),
        (200, "0123456789abcdef")
    );
    assert_eq!(rig.backend.count("/r"), 1, "a range went to the origin");
}

// ======================================================================================
// 11. Preconditions on hits (RFC 9110 §13)
// ======================================================================================

/// §13.1.2: If-None-Match matching the stored tag → 304 with the ETag and no body; §13.1.1:
/// If-Match not matching → 412; matching → 200. None reach the origin.
#[tokio::test(flavor = "multi_thread")]
async fn preconditions_are_evaluated_against_the_stored_response() {
    let rig = Rig::new(ON);
    rig.backend.reply("/p", ok("precondition", "max-age=60"));
    rig.get("/p", &[]).await;
    let hit = rig.get("/p", &[]).await;
    let tag = hit.header("etag").expect("a hit without ETag").to_string();

    let nm = rig.get("/p", &[("if-none-match", &tag)]).await;
    assert_eq!(nm.status, 304, "{}", nm.cache_status());
    assert!(nm.body.is_empty());
    assert_eq!(nm.header("etag"), Some(tag.as_str()));

    let other = rig.get("/p", &[("if-none-match", "\"nope\"")]).await;
    assert_eq!((other.status, other.text().as_str()), (200, "precondition"));

    let failed = rig.get("/p", &[("if-match", "\"nope\"")]).await;
    assert_eq!(failed.status, 412, "{}", failed.cache_status());
    assert!(failed.body.is_empty(), "412 with the stored body");
    assert!(
        failed.hit(),
        "the 412 was not answered from the stored response: {}",
        failed.cache_status()
    );

    let matched = rig.get("/p", &[("if-match", &tag)]).await;
    assert_eq!(
        (matched.status, matched.text().as_str()),
        (200, "precondition")
    );
    assert_eq!(rig.backend.count("/p"), 1);
}

// ======================================================================================
// 19. Compression of hits
// ======================================================================================

/// On a compressing route a hit is compressed for a client that accepts gzip (and decodes to
/// the stored body) while an identity client gets the stored bytes from the same entry.
#[tokio::test(flavor = "multi_thread")]
async fn hits_are_compressed_per_client() {
    let rig = Rig::new(ON);
    let body = text_body(8192);
    rig.backend.reply(
        "/z",
        ok(&body, "max-age=60").header("Content-Type", "text/plain; charset=utf-8"),
    );
    rig.get("/z", &[("accept-encoding", "gzip")]).await;
    for round in 0..2 {
        let gz = rig.get("/z", &[("accept-encoding", "gzip")]).await;
        assert!(gz.hit(), "round {round}: {}", gz.cache_status());
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "round {round}");
        assert!(gz.body.len() < body.len(), "round {round}: not compressed");
        assert_eq!(
            gz.decoded(),
            body.as_bytes(),
            "round {round}: gzip body differs"
        );
        assert!(
            gz.all("vary")
                .iter()
                .any(|v| v.to_ascii_lowercase().contains("accept-encoding")),
            "round {round}: no Vary: Accept-Encoding"
        );
        // The first gzip hit runs the encoder (chunked, length unknown up front) and keeps
        // the result beside the object; the next one is sent from it, with its length.
        let memoised = gz.header("content-length").map(str::to_string);
        if round == 0 {
            assert_eq!(
                memoised, None,
                "the first gzip hit was not encoded on the fly"
            );
        } else {
            assert_eq!(
                memoised,
                Some(gz.body.len().to_string()),
                "the second gzip hit was encoded again instead of sent from the memoised copy"
            );
        }

        let plain = rig.get("/z", &[]).await;
        assert!(plain.hit(), "round {round}: {}", plain.cache_status());
        assert_eq!(plain.header("content-encoding"), None, "round {round}");
        assert_eq!(
            plain.body,
            body.as_bytes(),
            "round {round}: identity body differs"
        );
    }
    assert_eq!(rig.backend.count("/z"), 1);
}
