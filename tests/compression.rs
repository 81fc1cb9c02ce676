//! Response compression through the real proxy: a real Outrider in-process, a real HTTP/1.1
//! origin, real clients that never decompress by themselves (reqwest without its compression
//! features), bodies decoded here with the same crates the proxy encodes with.
//!
//! Sections: round trips · negotiation · skip conditions · header rewriting · what the
//! upstream is asked for · per-route policy · streaming · metrics · HTTP versions · large
//! bodies · the buffered leg (pending). Helpers are at the end of the file.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, ACCEPT_ENCODING};
use reqwest::Method;

use support::origin::pattern;
use support::raw::{raw_exchange, raw_header};
use support::{client, h2c_client, Origin, Proxy, Recorded, Reply};

/// Comfortably above the default `min_size` (1 KiB), small enough to be quick.
const BODY: usize = 10 * 1024;

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

// ======================================================================================
// Per-route policy
// ======================================================================================

#[tokio::test]
async fn per_route_overrides_apply_key_by_key() {
    let rig = Rig::with(
        "",
        &[
            route("off", "/off/", "enabled = false"),
            route("gz", "/gz/", r#"algorithms = ["gzip"]"#),
            route("big", "/big/", r#"min_size = "100KiB""#),
            route("pngs", "/png/", r#"content_types = ["image/png"]"#),
            main_route(),
        ],
    );
    let q = format!("?size={BODY}&ct=text/plain");

    let off = rig.get(&format!("/off/x{q}"), Some("gzip, br, zstd")).await;
    assert_eq!(off.coding(), None);
    assert!(off.vary().is_empty(), "{:?}", off.vary());
    assert_eq!(
        off.header("content-length"),
        Some(BODY.to_string().as_str())
    );
    assert!(off.body == pattern(0, BODY));

    let gz = rig.get(&format!("/gz/x{q}"), Some("br, gzip")).await;
    assert_eq!(gz.coding(), Some("gzip"));
    assert!(gz.decoded() == pattern(0, BODY));
    // The same client on the default route gets the default's preference.
    assert_eq!(
        rig.get(&format!("/x{q}"), Some("br, gzip")).await.coding(),
        Some("br")
    );

    let big = rig.get(&format!("/big/x{q}"), Some("gzip")).await;
    assert_eq!(big.coding(), None, "10 KiB is below this route's 100 KiB");
    assert_eq!(big.vary(), ["Accept-Encoding"]);
    assert_eq!(
        big.header("content-length"),
        Some(BODY.to_string().as_str())
    );
    let big = rig
        .get("/big/x?size=102400&ct=text/plain", Some("gzip"))
        .await;
    assert_eq!(big.coding(), Some("gzip"));
    assert!(big.decoded() == pattern(0, 102_400));

    let png = rig
        .get(&format!("/png/x?size={BODY}&ct=image/png"), Some("gzip"))
        .await;
    assert_eq!(png.coding(), Some("gzip"));
    let text = rig.get(&format!("/png/x{q}"), Some("gzip")).await;
    assert_eq!(text.coding(), None);
}

/// The configured levels reach the encoders: on a JSON-like body, the highest levels give
/// clearly smaller output than the lowest, and both decode exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_route_levels_reach_the_encoder() {
    let json = json_lines(256 * 1024);
    let served = json.clone();
    let origin = Origin::with_handler(move |_| {
        Reply::ok(served.clone()).header("content-type", "application/json")
    });
    let rig = Rig::with_origin(
        origin,
        "",
        &[
            route(
                "fast",
                "/fast/",
                "gzip_level = 1, brotli_level = 0, zstd_level = 1",
            ),
            route(
                "best",
                "/best/",
                "gzip_level = 9, brotli_level = 11, zstd_level = 19",
            ),
            main_route(),
        ],
    );
    for coding in ["gzip", "br", "zstd"] {
        let fast = rig.get("/fast/x", Some(coding)).await;
        let best = rig.get("/best/x", Some(coding)).await;
        assert_eq!(fast.coding(), Some(coding));
        assert_eq!(best.coding(), Some(coding));
        assert!(fast.decoded() == json, "{coding} fast: body differs");
        assert!(best.decoded() == json, "{coding} best: body differs");
        assert!(
            best.body.len() * 10 < fast.body.len() * 9,
            "{coding}: best {} is not clearly smaller than fast {}",
            best.body.len(),
            fast.body.len()
        );
    }
}

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

// ======================================================================================
// Metrics
// ======================================================================================

#[tokio::test]
async fn compressed_responses_and_bytes_are_counted() {
    let rig = Rig::new();
    let path = format!("/m?size={BODY}&ct=application/json");
    // Identity responses are not counted.
    let identity = rig.get(&path, None).await;
    assert_eq!(identity.coding(), None);
    let got = rig.get(&path, Some("gzip")).await;
    assert_eq!(got.coding(), Some("gzip"));
    assert!(got.decoded() == identity.body);

    let responses = |m: &Metrics| {
        m.value(
            "outrider_compression_responses_total",
            &[("route", "main"), ("algorithm", "gzip")],
        )
    };
    let m = Metrics::poll(&rig.proxy, "one compressed response", |m| {
        responses(m) == Some(1.0)
    })
    .await;
    for coding in ["br", "zstd"] {
        assert_eq!(
            m.value(
                "outrider_compression_responses_total",
                &[("route", "main"), ("algorithm", coding)]
            )
            .unwrap_or(0.0),
            0.0,
            "{coding}"
        );
    }
    assert_eq!(
        m.value(
            "outrider_compression_bytes_in_total",
            &[("algorithm", "gzip")]
        ),
        Some(BODY as f64)
    );
    assert_eq!(
        m.value(
            "outrider_compression_bytes_out_total",
            &[("algorithm", "gzip")]
        ),
        Some(got.body.len() as f64)
    );
}

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

// ======================================================================================
// Helpers
// ======================================================================================

/// One origin and one proxy in front of it. Fields drop in order: the proxy first.
struct Rig {
    proxy: Proxy,
    origin: Origin,
}

impl Rig {
    /// The built-in compression defaults and one catch-all route, "main".
    fn new() -> Rig {
        Rig::with("", &[main_route()])
    }

    /// `defaults`: lines for `[defaults.compression]`; `routes`: `[[routes]]` tables (see
    /// [`route`]), all to the one upstream "app".
    fn with(defaults: &str, routes: &[String]) -> Rig {
        Rig::with_origin(Origin::start(), defaults, routes)
    }

    /// [`Rig::with`] in front of a given origin.
    fn with_origin(origin: Origin, defaults: &str, routes: &[String]) -> Rig {
        let conf = format!(
            "{}[defaults.compression]\n{defaults}\n\n{}",
            origin.upstream_toml("app"),
            routes.concat()
        );
        let proxy = Proxy::start(&conf);
        Rig { proxy, origin }
    }

    /// GET with this `Accept-Encoding` (none at all for `None`).
    async fn get(&self, path: &str, accept: Option<&str>) -> Got {
        let headers: Vec<(&str, &str)> =
            accept.map(|a| ("accept-encoding", a)).into_iter().collect();
        self.send(Method::GET, path, &headers).await
    }

    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Got {
        let mut req = client().request(method, self.proxy.url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        Got::read(req.send().await.expect("request through the proxy")).await
    }
}

/// A `[[routes]]` table for path prefix `prefix` with inline `compression = { ... }` keys.
fn route(name: &str, prefix: &str, compression: &str) -> String {
    let compression = if compression.is_empty() {
        String::new()
    } else {
        format!("compression = {{ {compression} }}\n")
    };
    format!(
        "[[routes]]\nname = \"{name}\"\nupstream = \"app\"\n\
         match = {{ path_prefix = \"{prefix}\" }}\n{compression}\n"
    )
}

fn main_route() -> String {
    route("main", "/", "")
}

/// A whole response as the client saw it.
struct Got {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Got {
    async fn read(resp: reqwest::Response) -> Got {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.expect("response body").to_vec();
        Got {
            status,
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Every line of header `name`, in order.
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ASCII header"))
            .collect()
    }

    fn coding(&self) -> Option<&str> {
        self.header("content-encoding")
    }

    /// The members of every `Vary` line, trimmed, in order.
    fn vary(&self) -> Vec<&str> {
        self.all("vary")
            .into_iter()
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect()
    }

    /// The body with its Content-Encoding removed.
    fn decoded(&self) -> Vec<u8> {
        match self.coding() {
            None => self.body.clone(),
            Some(coding) => decode(coding, &self.body),
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().expect("ASCII header"))
}

/// `len` bytes of JSON lines with varied, pseudo-random content: compressible, but with
/// enough entropy that compression levels make a difference.
fn json_lines(len: usize) -> Vec<u8> {
    const WORDS: [&str; 8] = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let mut out = Vec::with_capacity(len + 128);
    let mut id = 0u64;
    while out.len() < len {
        let line = format!(
            "{{\"id\":{id},\"name\":\"{}-{}\",\"score\":{}.{:03},\"tag\":\"{}\"}}\n",
            WORDS[(next() % 8) as usize],
            next() % 10_000,
            next() % 100,
            next() % 1000,
            WORDS[(next() % 8) as usize],
        );
        out.extend_from_slice(line.as_bytes());
        id += 1;
    }
    out.truncate(len);
    out
}

/// A whole encoded body decoded; panics on a malformed or truncated stream.
fn decode(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            let mut reader = flate2::read::GzDecoder::new(data);
            reader.read_to_end(&mut out).expect("valid gzip");
        }
        "br" => {
            brotli::Decompressor::new(data, 4096)
                .read_to_end(&mut out)
                .expect("valid brotli");
        }
        "zstd" => out = zstd::stream::decode_all(data).expect("valid zstd"),
        other => panic!("unexpected Content-Encoding {other:?}"),
    }
    out
}

/// As much as can be decoded from the start of a stream that may not have ended yet.
fn decode_prefix(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut reader: Box<dyn Read + '_> = match coding {
        "gzip" => Box::new(flate2::read::GzDecoder::new(data)),
        "br" => Box::new(brotli::Decompressor::new(data, 4096)),
        "zstd" => Box::new(zstd::stream::read::Decoder::new(data).expect("zstd decoder")),
        other => panic!("unexpected Content-Encoding {other:?}"),
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// The `Accept-Encoding` lines the origin received.
fn upstream_accept(req: &Recorded) -> Vec<&str> {
    req.headers
        .get_all("accept-encoding")
        .iter()
        .map(|v| v.to_str().expect("ASCII header"))
        .collect()
}

/// One scrape of the admin `/metrics`.
struct Metrics(prometheus_parse::Scrape);

impl Metrics {
    async fn scrape(proxy: &Proxy) -> Metrics {
        let text = client()
            .get(proxy.admin_url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body");
        let lines = text.lines().map(|l| Ok(l.to_string()));
        Metrics(prometheus_parse::Scrape::parse(lines).expect("exposition format"))
    }

    /// Scrapes until `ready` holds (metrics are recorded as the response ends), for at most 5 s.
    async fn poll(proxy: &Proxy, what: &str, ready: impl Fn(&Metrics) -> bool) -> Metrics {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let m = Metrics::scrape(proxy).await;
            if ready(&m) {
                return m;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The value of the scalar series `name` with exactly `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0
            .samples
            .iter()
            .find(|s| {
                s.metric == name
                    && s.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("{name} is not a scalar: {other:?}"),
            })
    }
}
