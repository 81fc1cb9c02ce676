//! Per-route compression policy.

use crate::compression::helpers::{json_lines, main_route, route, Rig, BODY};
use crate::support::origin::pattern;
use crate::support::{Origin, Reply};

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
