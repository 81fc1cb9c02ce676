//! Request directives (RFC 9111 §5.2.1) and targeted cache control (RFC 9213).

use std::time::Instant;

use crate::cache::helpers::{not_modified, ok, req_header, until_stale, Rig, ON};

// ======================================================================================
// 5. Request directives (RFC 9111 §5.2.1)
// ======================================================================================

/// An origin for `/d`: 200 "dee" with ETag "d1" and max-age=60, or 304 to a matching
/// If-None-Match. Returns the rig with the entry stored and a first hit checked.
async fn directive_rig() -> Rig {
    let rig = Rig::new(ON);
    rig.backend.on("/d", |req| {
        if req_header(req, "if-none-match") == Some("\"d1\"") {
            not_modified()
                .header("ETag", "\"d1\"")
                .header("Cache-Control", "max-age=60")
        } else {
            ok("dee", "max-age=60").header("ETag", "\"d1\"")
        }
    });
    rig.get("/d", &[]).await;
    assert!(rig.get("/d", &[]).await.hit());
    assert_eq!(rig.backend.count("/d"), 1);
    rig
}

/// §5.2.1.4: a request's `no-cache` forbids answering from a stored response without
/// validating it first, fresh or not: the origin gets a conditional request with the stored
/// tag, and the entry stays usable for others.
#[tokio::test(flavor = "multi_thread")]
async fn request_no_cache_revalidates_a_fresh_entry() {
    let rig = directive_rig().await;
    let nc = rig.get("/d", &[("cache-control", "no-cache")]).await;
    assert_eq!((nc.status, nc.text().as_str()), (200, "dee"));
    assert!(
        !nc.hit(),
        "no-cache answered from cache: {}",
        nc.cache_status()
    );
    assert_eq!(rig.backend.count("/d"), 2);
    assert_eq!(
        req_header(&rig.backend.last("/d"), "if-none-match"),
        Some("\"d1\"")
    );
    let plain = rig.get("/d", &[]).await;
    assert!(plain.hit(), "{}", plain.cache_status());
    assert_eq!(rig.backend.count("/d"), 2);
}

/// §5.2.1.1: `max-age=0` on the request: every stored response is older than that, so it
/// goes to the origin.
#[tokio::test(flavor = "multi_thread")]
async fn request_max_age_0_goes_to_the_origin() {
    let rig = directive_rig().await;
    let ma = rig.get("/d", &[("cache-control", "max-age=0")]).await;
    assert_eq!((ma.status, ma.text().as_str()), (200, "dee"));
    assert!(
        !ma.hit(),
        "max-age=0 answered from cache: {}",
        ma.cache_status()
    );
    assert_eq!(rig.backend.count("/d"), 2);
}

/// §5.4: `Pragma: no-cache` without a `Cache-Control` field is `Cache-Control: no-cache`.
#[tokio::test(flavor = "multi_thread")]
async fn request_pragma_no_cache_goes_to_the_origin() {
    let rig = directive_rig().await;
    let pragma = rig.get("/d", &[("pragma", "no-cache")]).await;
    assert!(
        !pragma.hit(),
        "Pragma: no-cache answered from cache: {}",
        pragma.cache_status()
    );
    assert_eq!(rig.backend.count("/d"), 2);
}

/// §5.2.1.3: `min-fresh=N` wants at least N more seconds of freshness: 120 is more than the
/// entry has left (60), 10 is not.
#[tokio::test(flavor = "multi_thread")]
async fn request_min_fresh() {
    let rig = directive_rig().await;
    let enough = rig.get("/d", &[("cache-control", "min-fresh=10")]).await;
    assert!(enough.hit(), "{}", enough.cache_status());
    assert_eq!(rig.backend.count("/d"), 1);
    let wanting = rig.get("/d", &[("cache-control", "min-fresh=120")]).await;
    assert!(
        !wanting.hit(),
        "min-fresh=120 answered from cache: {}",
        wanting.cache_status()
    );
    assert_eq!(rig.backend.count("/d"), 2);
}

/// §5.2.1.2: `max-stale` accepts a stale response without contacting the origin (a hit),
/// unless the response forbids it. The RFC permits rather than requires this, but
/// `freshness::hit_acceptable` decides `StaleAccepted` for it, and the issue lists
/// `max-stale` among the honoured directives.
#[tokio::test(flavor = "multi_thread")]
async fn request_max_stale_accepts_a_stale_entry() {
    let rig = Rig::new(ON);
    rig.backend
        .reply("/ms", ok("old", "max-age=1").header("ETag", "\"m1\""));
    rig.get("/ms", &[]).await;
    until_stale(Instant::now(), 1).await;
    rig.backend.reply("/ms", ok("new", "max-age=60"));
    let stale = rig.get("/ms", &[("cache-control", "max-stale=60")]).await;
    assert_eq!(
        (stale.status, stale.text().as_str()),
        (200, "old"),
        "{}",
        stale.cache_status()
    );
    assert!(stale.hit(), "{}", stale.cache_status());
    assert_eq!(rig.backend.count("/ms"), 1);
    let plain = rig.get("/ms", &[]).await;
    assert_eq!(plain.text(), "new", "{}", plain.cache_status());
    assert_eq!(rig.backend.count("/ms"), 2);
}

/// §5.2.1.4 again, for a stale entry inside a stale-while-revalidate window: the request
/// asked for a validated response, so the stale body must not answer it (RFC 5861 only
/// permits serving stale where the request does not forbid it).
#[tokio::test(flavor = "multi_thread")]
async fn request_no_cache_is_not_answered_stale_while_revalidating() {
    let rig = Rig::new(ON);
    rig.backend
        .reply("/swrnc", ok("old", "max-age=1, stale-while-revalidate=30"));
    rig.get("/swrnc", &[]).await;
    until_stale(Instant::now(), 1).await;
    rig.backend.reply("/swrnc", ok("new", "max-age=60"));
    let got = rig.get("/swrnc", &[("cache-control", "no-cache")]).await;
    assert_eq!(got.text(), "new", "{}", got.cache_status());
    assert!(!got.hit(), "{}", got.cache_status());
}

/// §5.2.1.7: `only-if-cached` with nothing stored is a 504 without contacting the origin;
/// with a fresh entry it is a hit.
#[tokio::test(flavor = "multi_thread")]
async fn only_if_cached() {
    let rig = Rig::new(ON);
    rig.backend.reply("/oic", ok("warm", "max-age=60"));
    let cold = rig
        .get("/oic", &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!(cold.status, 504);
    assert_eq!(
        rig.backend.count("/oic"),
        0,
        "only-if-cached reached the origin"
    );
    rig.get("/oic", &[]).await;
    let warm = rig
        .get("/oic", &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!((warm.status, warm.text().as_str()), (200, "warm"));
    assert!(warm.hit(), "{}", warm.cache_status());
    assert_eq!(rig.backend.count("/oic"), 1);
}

// ======================================================================================
// 15. Targeted cache control (RFC 9213)
// ======================================================================================

/// `Outrider-Cache-Control` replaces `Cache-Control` for this cache's decisions (RFC 9213
/// §2.1) and is not forwarded to the client; `CDN-Cache-Control` is used when ours is absent;
/// the first field of the configured list that is present wins.
#[tokio::test(flavor = "multi_thread")]
async fn targeted_cache_control_wins_and_ours_is_not_forwarded() {
    let rig = Rig::new(ON);
    rig.backend.reply(
        "/ours",
        ok("ours", "no-store").header("Outrider-Cache-Control", "max-age=60"),
    );
    rig.backend.reply(
        "/cdn",
        ok("cdn", "no-store").header("CDN-Cache-Control", "max-age=60"),
    );
    rig.backend.reply(
        "/both",
        ok("both", "max-age=60")
            .header("Outrider-Cache-Control", "no-store")
            .header("CDN-Cache-Control", "max-age=60"),
    );
    for path in ["/ours", "/cdn", "/both"] {
        let miss = rig.get(path, &[]).await;
        assert_eq!(
            miss.header("outrider-cache-control"),
            None,
            "{path}: forwarded (miss)"
        );
        assert_eq!(
            miss.header("cache-control"),
            Some(if path == "/both" {
                "max-age=60"
            } else {
                "no-store"
            }),
            "{path}: Cache-Control is for downstream caches and must be kept"
        );
    }
    for path in ["/ours", "/cdn", "/both"] {
        let got = rig.get(path, &[]).await;
        assert_eq!(got.hit(), path != "/both", "{path}: {}", got.cache_status());
        assert_eq!(
            got.header("outrider-cache-control"),
            None,
            "{path}: forwarded (2nd)"
        );
    }
    assert_eq!(rig.backend.count("/ours"), 1);
    assert_eq!(rig.backend.count("/cdn"), 1);
    assert_eq!(
        rig.backend.count("/both"),
        2,
        "CDN-Cache-Control beat Outrider-Cache-Control"
    );
}
