//! Which responses get which ETag: generated or the upstream's own, bodies that are not held,
//! HEAD, compression, streams.

use std::io::Read;
use std::time::{Duration, Instant};

use reqwest::Method;

use crate::conditional::helpers::{conf, enc, fetch_tag, generated, text_origin, Rig};
use crate::support::origin::pattern;
use crate::support::{client, server_section, BinaryProxy, Origin, Proxy};

// ======================================================================================
// Generated ETags
// ======================================================================================

/// A 200 GET without an upstream ETag gets a strong 32-hex ETag on the first response, with
/// the body byte-exact and a Content-Length.
#[tokio::test]
async fn first_response_gets_a_strong_generated_etag() {
    let rig = Rig::new();
    let got = rig.get("/g?size=1000", &[]).await;
    assert_eq!(got.status, 200);
    generated(got.header("etag").expect("no ETag on the first response"));
    assert_eq!(got.header("content-length"), Some("1000"));
    assert!(got.body == pattern(0, 1000), "body differs");
}

/// Same body → same tag across two proxies; a different body (same or different length) →
/// a different tag.
#[tokio::test]
async fn the_tag_depends_on_the_body_only() {
    let a = Rig::with_origin(text_origin(), "");
    let b = Rig::with_origin(text_origin(), "");
    let tag_a = a.tag("/t?body=hello-world").await;
    let tag_b = b.tag("/t?body=hello-world").await;
    assert_eq!(tag_a, tag_b, "same body, two proxies, different tags");
    assert_eq!(tag_a, a.tag("/other/path?body=hello-world").await);
    assert_ne!(tag_a, a.tag("/t?body=hello-World").await, "same length");
    assert_ne!(tag_a, a.tag("/t?body=hello-world!").await, "longer");
}

/// The tag survives a restart of the process (the built binary, twice) and matches the
/// in-process proxy's.
#[tokio::test]
async fn the_tag_is_stable_across_restarts() {
    let origin = Origin::start();
    let body = conf(&origin, "");
    let url = |p: &BinaryProxy| format!("http://{}/r?size=777", p.addr);
    let first = {
        let p = BinaryProxy::spawn(|d, a| format!("{}{body}", server_section(d, a)));
        fetch_tag(&url(&p)).await
    };
    let second = {
        let p = BinaryProxy::spawn(|d, a| format!("{}{body}", server_section(d, a)));
        fetch_tag(&url(&p)).await
    };
    generated(&first);
    assert_eq!(first, second, "the tag changed across a restart");
    let in_process = Proxy::start(&body);
    assert_eq!(
        first,
        fetch_tag(&in_process.url("/r?size=777")).await,
        "binary and in-process proxies disagree"
    );
}

// ======================================================================================
// The upstream's own ETag
// ======================================================================================

/// An upstream ETag is kept as is and answers If-None-Match even though the origin ignores it.
#[tokio::test]
async fn the_upstreams_etag_is_kept_and_used_for_304() {
    let rig = Rig::new();
    let path = format!("/u?size=200&h={}", enc("ETag:\"v1\""));
    let full = rig.get(&path, &[]).await;
    assert_eq!(full.status, 200);
    assert_eq!(full.header("etag"), Some("\"v1\""));
    let nm = rig.get(&path, &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(nm.status, 304);
    assert_eq!(nm.header("etag"), Some("\"v1\""));
    let weak_upstream = format!("/u?size=200&h={}", enc("ETag:W/\"w\""));
    let got = rig.get(&weak_upstream, &[]).await;
    assert_eq!(got.header("etag"), Some("W/\"w\""));
    let nm = rig.get(&weak_upstream, &[("if-none-match", "\"w\"")]).await;
    assert_eq!(
        nm.status, 304,
        "weak comparison against a weak upstream tag"
    );
    let miss = rig.get(&path, &[("if-none-match", "\"v2\"")]).await;
    assert_eq!(miss.status, 200);
    assert!(miss.body == pattern(0, 200));
}

// ======================================================================================
// Bodies that are not held, and responses that get no tag
// ======================================================================================

#[tokio::test]
async fn a_body_over_max_body_with_a_length_gets_no_etag() {
    let rig = Rig::with("max_body = \"4KiB\"");
    let got = rig.get("/big?size=10000", &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("etag"), None);
    assert_eq!(got.header("content-length"), Some("10000"));
    assert!(got.body == pattern(0, 10000));
}

#[tokio::test]
async fn a_chunked_body_over_max_body_gets_no_etag_but_arrives_whole() {
    let rig = Rig::with("max_body = \"4KiB\"");
    let got = rig.get("/big?size=10000&chunked=1&chunks=7", &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("etag"), None);
    assert_eq!(got.body.len(), 10000);
    assert!(got.body == pattern(0, 10000), "body differs");
}

/// The limit is inclusive, for both framings; a chunked body within it gets a length.
#[tokio::test]
async fn max_body_boundary() {
    let rig = Rig::with("max_body = \"4KiB\"");
    for framing in ["", "&chunked=1&chunks=3"] {
        let at = rig.get(&format!("/b?size=4096{framing}"), &[]).await;
        generated(
            at.header("etag")
                .unwrap_or_else(|| panic!("{framing}: none at the limit")),
        );
        assert_eq!(at.header("content-length"), Some("4096"), "{framing}");
        assert!(at.body == pattern(0, 4096));
        let over = rig.get(&format!("/b?size=4097{framing}"), &[]).await;
        assert_eq!(over.header("etag"), None, "{framing}: one byte over");
        assert!(over.body == pattern(0, 4097));
    }
}

#[tokio::test]
async fn no_store_errors_and_disabled_routes_get_no_etag() {
    let rig = Rig::new();
    let no_store = rig
        .get(
            &format!("/x?size=100&h={}", enc("Cache-Control:private, no-store")),
            &[],
        )
        .await;
    assert_eq!(no_store.status, 200);
    assert_eq!(no_store.header("etag"), None, "no-store");
    assert!(no_store.body == pattern(0, 100));
    let not_found = rig.get("/x?status=404&size=100", &[]).await;
    assert_eq!(not_found.status, 404);
    assert_eq!(not_found.header("etag"), None, "404");
    let disabled = rig.get("/plain/x?size=100", &[]).await;
    assert_eq!(disabled.status, 200);
    assert_eq!(disabled.header("etag"), None, "etag.generate = false");
    assert!(disabled.body == pattern(0, 100));
    // ... and a generated tag cannot be used for a 304 there.
    let nm = rig
        .get("/plain/x?size=100", &[("if-none-match", "*")])
        .await;
    assert_eq!(nm.status, 304, "* matches any current representation");
}

/// An empty 200 is tagged too (the hash of nothing) and keeps Content-Length: 0.
#[tokio::test]
async fn an_empty_body_is_tagged() {
    let rig = Rig::new();
    let got = rig.get("/empty?size=0&chunked=1", &[]).await;
    assert_eq!(got.status, 200);
    let tag = got
        .header("etag")
        .expect("no ETag on an empty body")
        .to_string();
    generated(&tag);
    assert!(got.body.is_empty());
    let nm = rig
        .get("/empty?size=0&chunked=1", &[("if-none-match", &tag)])
        .await;
    assert_eq!(nm.status, 304);
}

// ======================================================================================
// HEAD
// ======================================================================================

#[tokio::test]
async fn head_gets_the_same_etag_and_length_as_get() {
    let rig = Rig::new();
    let get = rig.get("/h?size=1234", &[]).await;
    let head = rig.send(Method::HEAD, "/h?size=1234", &[], None).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("etag"), get.header("etag"));
    generated(head.header("etag").expect("HEAD without ETag"));
    assert_eq!(head.header("content-length"), Some("1234"));
    assert!(head.body.is_empty());
    let tag = get.header("etag").unwrap();
    let nm = rig
        .send(
            Method::HEAD,
            "/h?size=1234",
            &[("if-none-match", tag)],
            None,
        )
        .await;
    assert_eq!(nm.status, 304);
    assert_eq!(nm.header("etag"), Some(tag));
}

// ======================================================================================
// Compression
// ======================================================================================

#[tokio::test]
async fn a_compressed_body_gets_the_weak_form_of_the_tag() {
    let rig = Rig::new();
    let path = "/c?size=10000&ct=text/plain";
    let identity = rig.get(path, &[]).await;
    assert_eq!(identity.header("content-encoding"), None);
    let strong = identity.header("etag").expect("identity ETag").to_string();
    generated(&strong);
    let gz = rig.get(path, &[("accept-encoding", "gzip")]).await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let weak = format!("W/{strong}");
    assert_eq!(gz.header("etag"), Some(weak.as_str()));
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_end(&mut decoded)
        .expect("valid gzip");
    assert!(decoded == pattern(0, 10000), "decoded body differs");
    for inm in [weak.as_str(), strong.as_str()] {
        let nm = rig
            .get(path, &[("accept-encoding", "gzip"), ("if-none-match", inm)])
            .await;
        assert_eq!(nm.status, 304, "If-None-Match: {inm}");
        assert_eq!(
            nm.header("etag"),
            Some(weak.as_str()),
            "If-None-Match: {inm}"
        );
        assert!(
            nm.all("vary").iter().any(|v| v.contains("Accept-Encoding")),
            "304 without Vary: Accept-Encoding: {:?}",
            nm.all("vary")
        );
        assert_eq!(nm.header("content-encoding"), None);
        assert!(nm.body.is_empty());
    }
    // An identity client revalidating gets the strong tag back.
    let nm = rig.get(path, &[("if-none-match", &weak)]).await;
    assert_eq!(nm.status, 304);
    assert_eq!(nm.header("etag"), Some(strong.as_str()));
}

// ======================================================================================
// Streaming
// ======================================================================================

/// Event streams and `X-Accel-Buffering: no` responses are not held to hash them: the first
/// piece reaches the client long before the origin ends the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_not_held_for_an_etag() {
    const PIECE: usize = 100;
    const PIECES: usize = 4;
    const GAP: Duration = Duration::from_millis(400);
    let rig = Rig::new();
    for kind in [
        "ct=text/event-stream".to_string(),
        format!(
            "ct=application/octet-stream&h={}",
            enc("X-Accel-Buffering:no")
        ),
    ] {
        let path = format!(
            "/s?size={}&chunked=1&chunks={PIECES}&chunk_delay_ms={}&{kind}",
            PIECE * PIECES,
            GAP.as_millis()
        );
        let started = Instant::now();
        let mut resp = client().get(rig.proxy.url(&path)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers().get("etag"),
            None,
            "{kind}: a stream was tagged"
        );
        let mut body = Vec::new();
        let mut first_at = None;
        while let Some(chunk) = resp.chunk().await.unwrap() {
            body.extend_from_slice(&chunk);
            if first_at.is_none() && !body.is_empty() {
                first_at = Some(started.elapsed());
            }
        }
        let total = started.elapsed();
        assert!(body == pattern(0, PIECE * PIECES), "{kind}: body differs");
        let paced = GAP * (PIECES as u32 - 1);
        assert!(
            total >= paced - Duration::from_millis(100),
            "origin did not pace"
        );
        let first_at = first_at.expect("no body");
        assert!(
            first_at < paced / 2,
            "{kind}: first piece after {first_at:?} of {total:?}: held back"
        );
    }
}
