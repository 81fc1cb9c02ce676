//! Streaming: each piece is flushed as it is sent.

use std::io::Write;
use std::time::{Duration, Instant};

use reqwest::header::ACCEPT_ENCODING;

use crate::compression::helpers::{decode, decode_prefix, header, Rig};
use crate::support::client;
use crate::support::origin::pattern;

// ======================================================================================
// Streaming
// ======================================================================================

/// An event stream written in pieces 500 ms apart: each piece is decodable at the client as
/// soon as it is sent, long before the origin ends the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_streams_each_piece_before_the_origin_finishes() {
    // Event streams must never be held back to learn their length or hash them; and each
    // piece is above min_size anyway, so a size decision needs only the first one.
    const PIECE: usize = 4096;
    const PIECES: usize = 5;
    const GAP: Duration = Duration::from_millis(500);
    let rig = Rig::new();
    let path = format!(
        "/sse?size={}&chunked=1&chunks={PIECES}&chunk_delay_ms={}&ct=text/event-stream",
        PIECE * PIECES,
        GAP.as_millis()
    );
    let started = Instant::now();
    let mut resp = client()
        .get(rig.proxy.url(&path))
        .header(ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(resp.headers(), "content-encoding"), Some("gzip"));

    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    // (when, how many decoded bytes) the first time a whole piece was decodable.
    let mut first: Option<(Duration, usize)> = None;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        decoder.write_all(&chunk).unwrap();
        decoder.flush().unwrap();
        let decoded = decoder.get_ref().len();
        if first.is_none() && decoded >= PIECE {
            first = Some((started.elapsed(), decoded));
        }
    }
    let total = started.elapsed();
    let body = decoder.finish().unwrap();
    assert!(body == pattern(0, PIECE * PIECES), "streamed body differs");
    let expected_total = GAP * (PIECES as u32 - 1);
    assert!(
        total >= expected_total - Duration::from_millis(100),
        "the origin did not pace its body ({total:?})"
    );
    let (first_at, first_len) = first.expect("no piece was ever decoded");
    assert_eq!(
        first_len, PIECE,
        "the first piece only became decodable together with later ones (after {first_at:?})"
    );
    assert!(
        first_at < expected_total / 2,
        "the first piece took {first_at:?} of {total:?}: held back by the proxy"
    );
}

/// The same for brotli and zstd: every piece is flushed, not only gzip's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_coding_flushes_the_first_piece() {
    const PIECE: usize = 4096;
    let rig = Rig::new();
    let path = format!(
        "/sse?size={}&chunked=1&chunks=3&chunk_delay_ms=700&ct=text/event-stream",
        PIECE * 3
    );
    for coding in ["br", "zstd"] {
        let started = Instant::now();
        let mut resp = client()
            .get(rig.proxy.url(&path))
            .header(ACCEPT_ENCODING, coding)
            .send()
            .await
            .unwrap();
        assert_eq!(header(resp.headers(), "content-encoding"), Some(coding));
        let mut received = Vec::new();
        let mut first: Option<(Duration, usize)> = None;
        while let Some(chunk) = resp.chunk().await.unwrap() {
            received.extend_from_slice(&chunk);
            if first.is_none() {
                let decoded = decode_prefix(coding, &received);
                if decoded.len() >= PIECE {
                    assert!(
                        decoded == pattern(0, decoded.len()),
                        "{coding}: prefix differs"
                    );
                    first = Some((started.elapsed(), decoded.len()));
                }
            }
        }
        let total = started.elapsed();
        assert!(
            decode(coding, &received) == pattern(0, PIECE * 3),
            "{coding}"
        );
        let (first_at, first_len) = first.expect("no piece was ever decoded");
        assert_eq!(
            first_len, PIECE,
            "{coding}: first piece held back ({first_at:?})"
        );
        assert!(
            first_at + Duration::from_millis(700) < total,
            "{coding}: first piece at {first_at:?}, body ended at {total:?}"
        );
    }
}
