//! Preconditions evaluated at the proxy: If-None-Match, If-Modified-Since, 412, unsafe
//! methods, If-Range, and their metrics.

use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::conditional::helpers::{enc, Rig};
use crate::support::origin::pattern;
use crate::support::raw::read_head;
use crate::support::{client, h2c_client};

const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

// ======================================================================================
// If-None-Match
// ======================================================================================

/// A matching If-None-Match gets a 304 without content that repeats the validators and
/// caching fields of the 200, but not its Content-Type or length.
#[tokio::test]
async fn if_none_match_with_the_generated_tag_is_304() {
    let rig = Rig::new();
    let path = format!(
        "/n?size=500&ct=text/plain&h={}&h={}&h={}&h={}&h={}",
        enc("Cache-Control:max-age=60"),
        enc("Expires:Thu, 01 Dec 2044 16:00:00 GMT"),
        enc("Vary:Origin"),
        enc("Content-Location:/n.txt"),
        enc(&format!("Last-Modified:{LM}")),
    );
    let full = rig.get(&path, &[]).await;
    assert_eq!(full.status, 200);
    let tag = full.header("etag").expect("ETag").to_string();
    assert!(full.header("date").is_some(), "the 200 has no Date");
    let nm = rig.get(&path, &[("if-none-match", &tag)]).await;
    assert_eq!(nm.status, 304);
    assert!(nm.body.is_empty(), "304 with a body");
    assert_eq!(nm.header("etag"), Some(tag.as_str()));
    for name in [
        "cache-control",
        "expires",
        "content-location",
        "last-modified",
    ] {
        assert_eq!(nm.header(name), full.header(name), "{name}");
    }
    assert!(nm.header("date").is_some(), "304 without Date");
    assert!(
        nm.all("vary").iter().any(|v| v.contains("Origin")),
        "304 lost Vary: {:?}",
        nm.all("vary")
    );
    assert_eq!(nm.header("content-type"), None, "304 with Content-Type");
    assert_eq!(nm.header("content-length"), None, "304 with Content-Length");
}

/// The tag forms that match: weak comparison, a list, `*`; and one that does not.
#[tokio::test]
async fn if_none_match_forms() {
    let rig = Rig::new();
    let path = "/f?size=300";
    let tag = rig.tag(path).await;
    let rows = [
        (format!("W/{tag}"), 304),
        (format!("\"x\", {tag}"), 304),
        (format!("\"x\",{tag}, \"y\""), 304),
        ("*".to_string(), 304),
        ("\"x\"".to_string(), 200),
        (format!("\"{}\"", &tag[1..tag.len() - 2]), 200),
    ];
    for (inm, status) in rows {
        let got = rig.get(path, &[("if-none-match", &inm)]).await;
        assert_eq!(got.status, status, "If-None-Match: {inm}");
        if status == 200 {
            assert!(got.body == pattern(0, 300), "If-None-Match: {inm}: body");
            assert_eq!(got.header("etag"), Some(tag.as_str()));
        } else {
            assert!(got.body.is_empty());
        }
    }
}

/// If-None-Match on two lines is one list.
#[tokio::test]
async fn if_none_match_on_two_lines() {
    let rig = Rig::new();
    let tag = rig.tag("/two?size=30").await;
    let got = rig
        .get(
            "/two?size=30",
            &[("if-none-match", "\"x\""), ("if-none-match", &tag)],
        )
        .await;
    assert_eq!(got.status, 304);
}

/// A 304 and a 412 leave the client connection usable: the next request on it gets a whole
/// 200.
#[tokio::test]
async fn the_connection_survives_304_and_412() {
    let rig = Rig::new();
    let tag = rig.tag("/k?size=20").await;
    let mut stream = tokio::net::TcpStream::connect(rig.proxy.addr)
        .await
        .unwrap();
    let head = |extra: &str| format!("GET /k?size=20 HTTP/1.1\r\nHost: t\r\n{extra}\r\n");
    stream
        .write_all(head(&format!("If-None-Match: {tag}\r\n")).as_bytes())
        .await
        .unwrap();
    let (status, headers) = read_head(&mut stream).await;
    assert_eq!(status, 304);
    assert!(headers
        .iter()
        .all(|(k, _)| k != "content-length" && k != "transfer-encoding"));
    stream
        .write_all(head("If-Match: \"no\"\r\n").as_bytes())
        .await
        .unwrap();
    let (status, headers) = read_head(&mut stream).await;
    assert_eq!(status, 412);
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .expect("412 without Content-Length");
    let mut skip = vec![0u8; len];
    stream.read_exact(&mut skip).await.unwrap();
    stream
        .write_all(head("Connection: close\r\n").as_bytes())
        .await
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
        .await
        .expect("the proxy did not close")
        .unwrap();
    let text = String::from_utf8_lossy(&rest);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        rest.ends_with(&pattern(0, 20)),
        "third response body differs"
    );
}

/// Over h2c too.
#[tokio::test]
async fn h2c_revalidation() {
    let rig = Rig::new();
    let tag = rig.tag("/h2?size=40").await;
    let resp = h2c_client()
        .get(rig.proxy.url("/h2?size=40"))
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 304);
    assert_eq!(
        resp.headers().get("etag").and_then(|v| v.to_str().ok()),
        Some(tag.as_str())
    );
    let resp = h2c_client()
        .get(rig.proxy.url("/h2?size=40"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers().get("etag").and_then(|v| v.to_str().ok()),
        Some(tag.as_str())
    );
    assert!(resp.bytes().await.unwrap() == pattern(0, 40));
}

/// The proxy evaluates the preconditions itself: none of them reaches the upstream.
#[tokio::test]
async fn preconditions_are_not_forwarded_on_get() {
    let rig = Rig::new();
    let tag = rig.tag("/p?size=10").await;
    let got = rig
        .get(
            "/p?size=10",
            &[
                ("if-none-match", &tag),
                ("if-match", "\"a\""),
                ("if-modified-since", LM),
                ("if-unmodified-since", LM),
            ],
        )
        .await;
    assert!(matches!(got.status, 304 | 412), "{}", got.status);
    let seen = rig.origin.requests();
    assert_eq!(seen.len(), 2);
    for name in [
        "if-none-match",
        "if-match",
        "if-modified-since",
        "if-unmodified-since",
    ] {
        assert!(
            !seen[1].headers.contains_key(name),
            "the origin saw {name}: {:?}",
            seen[1].headers
        );
    }
}

// ======================================================================================
// If-Modified-Since
// ======================================================================================

#[tokio::test]
async fn if_modified_since_in_all_three_formats() {
    let rig = Rig::new();
    let path = format!("/m?size=50&h={}", enc(&format!("Last-Modified:{LM}")));
    let rows = [
        (LM, 304),
        ("Sun, 06 Nov 1994 08:49:38 GMT", 304),
        ("Mon, 07 Nov 1994 08:49:37 GMT", 304),
        ("Sun, 06 Nov 1994 08:49:36 GMT", 200),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 304),
        ("Saturday, 05-Nov-94 08:49:37 GMT", 200),
        ("Sun Nov  6 08:49:37 1994", 304),
        ("Sat Nov  5 08:49:37 1994", 200),
        ("not a date", 200),
        ("Sun, 06 Nov 1994 25:49:37 GMT", 200),
    ];
    for (ims, status) in rows {
        let got = rig.get(&path, &[("if-modified-since", ims)]).await;
        assert_eq!(got.status, status, "If-Modified-Since: {ims}");
        if status == 200 {
            assert!(got.body == pattern(0, 50), "If-Modified-Since: {ims}: body");
        }
    }
}

/// If-Modified-Since also works on a route that generates no ETag (the preconditions alone
/// send the request through the evaluating leg).
#[tokio::test]
async fn if_modified_since_without_generated_etags() {
    let rig = Rig::new();
    let path = format!("/plain/m?size=50&h={}", enc(&format!("Last-Modified:{LM}")));
    let got = rig.get(&path, &[("if-modified-since", LM)]).await;
    assert_eq!(got.status, 304);
    assert_eq!(got.header("etag"), None);
    assert_eq!(got.header("last-modified"), Some(LM));
    let got = rig
        .get(&path, &[("if-modified-since", "Sat Nov  5 08:49:37 1994")])
        .await;
    assert_eq!(got.status, 200);
}

/// If-None-Match present (and not matching) makes If-Modified-Since ignored.
#[tokio::test]
async fn if_none_match_overrides_if_modified_since() {
    let rig = Rig::new();
    let path = format!("/m?size=50&h={}", enc(&format!("Last-Modified:{LM}")));
    let got = rig
        .get(
            &path,
            &[("if-none-match", "\"nope\""), ("if-modified-since", LM)],
        )
        .await;
    assert_eq!(got.status, 200);
    assert!(got.body == pattern(0, 50));
}

/// Without Last-Modified, If-Modified-Since has nothing to compare with.
#[tokio::test]
async fn if_modified_since_without_last_modified_is_200() {
    let rig = Rig::new();
    let got = rig
        .get(
            "/m?size=50",
            &[("if-modified-since", "Sun, 06 Nov 2044 08:49:37 GMT")],
        )
        .await;
    assert_eq!(got.status, 200);
}

// ======================================================================================
// 412
// ======================================================================================

#[tokio::test]
async fn if_match_against_the_generated_tag() {
    let rig = Rig::new();
    let tag = rig.tag("/im?size=64").await;
    let failed = rig.get("/im?size=64", &[("if-match", "\"nope\"")]).await;
    assert_eq!(failed.status, 412);
    assert!(
        failed.body != pattern(0, 64),
        "412 carried the representation"
    );
    let ok = rig.get("/im?size=64", &[("if-match", &tag)]).await;
    assert_eq!(ok.status, 200);
    assert!(ok.body == pattern(0, 64));
    let star = rig.get("/im?size=64", &[("if-match", "*")]).await;
    assert_eq!(star.status, 200);
    // If-Match uses the strong comparison: a weak tag never matches.
    let weak = rig
        .get("/im?size=64", &[("if-match", &format!("W/{tag}"))])
        .await;
    assert_eq!(weak.status, 412);
}

#[tokio::test]
async fn if_match_against_the_upstreams_tag() {
    let rig = Rig::new();
    let path = format!("/im?size=64&h={}", enc("ETag:\"v1\""));
    assert_eq!(rig.get(&path, &[("if-match", "\"v2\"")]).await.status, 412);
    assert_eq!(
        rig.get(&path, &[("if-match", "\"v2\", \"v1\"")])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn if_unmodified_since() {
    let rig = Rig::new();
    let path = format!("/ius?size=64&h={}", enc(&format!("Last-Modified:{LM}")));
    let earlier = rig
        .get(
            &path,
            &[("if-unmodified-since", "Sat, 05 Nov 1994 08:49:37 GMT")],
        )
        .await;
    assert_eq!(earlier.status, 412);
    let equal = rig.get(&path, &[("if-unmodified-since", LM)]).await;
    assert_eq!(equal.status, 200);
    assert!(equal.body == pattern(0, 64));
    let invalid = rig.get(&path, &[("if-unmodified-since", "garbage")]).await;
    assert_eq!(invalid.status, 200);
}

/// A precondition on an error response is not evaluated: the 404 goes through.
#[tokio::test]
async fn preconditions_do_not_apply_to_errors() {
    let rig = Rig::new();
    let got = rig
        .get("/e?status=404&size=9", &[("if-match", "\"nope\"")])
        .await;
    assert_eq!(got.status, 404);
    let got = rig
        .get("/e?status=404&size=9", &[("if-none-match", "*")])
        .await;
    assert_eq!(got.status, 404);
}

// ======================================================================================
// Unsafe methods
// ======================================================================================

/// PUT, PATCH, DELETE, POST go upstream with their preconditions and come back with the
/// upstream's status, whatever the proxy would have thought of them.
#[tokio::test]
async fn unsafe_methods_keep_their_preconditions_and_the_upstreams_status() {
    let rig = Rig::new();
    let rows = [
        (Method::PUT, "if-match", "\"nope\"", 200),
        (Method::PATCH, "if-match", "\"nope\"", 204),
        (Method::DELETE, "if-match", "\"nope\"", 200),
        (Method::POST, "if-none-match", "*", 201),
        (Method::PUT, "if-none-match", "*", 200),
        (Method::PUT, "if-match", "\"x\"", 412),
    ];
    for (i, (method, name, value, status)) in rows.into_iter().enumerate() {
        let path = format!("/w/{i}?status={status}&size=5");
        let got = rig
            .send(
                method.clone(),
                &path,
                &[(name, value)],
                Some(b"hello".to_vec()),
            )
            .await;
        assert_eq!(got.status, status, "{method} {name}: {value}");
        let seen = rig
            .origin
            .requests()
            .into_iter()
            .find(|r| r.uri == path)
            .unwrap_or_else(|| panic!("{method} never reached the origin"));
        assert_eq!(seen.method, method.as_str());
        assert_eq!(
            seen.headers.get(name).and_then(|v| v.to_str().ok()),
            Some(value),
            "{method}: the origin did not see {name}"
        );
        assert_eq!(seen.body_len, 5, "{method}: request body");
    }
}

// ======================================================================================
// If-Range
// ======================================================================================

#[tokio::test]
async fn if_range_is_evaluated_strongly_at_the_proxy() {
    let rig = Rig::new();
    let tag = rig.tag("/r?size=100").await;
    // A strong match: the range of the full body, answered by the proxy.
    let got = rig
        .get(
            "/r?size=100",
            &[("range", "bytes=10-19"), ("if-range", tag.as_str())],
        )
        .await;
    assert_eq!(got.status, 206);
    assert!(got.body == pattern(10, 10), "206 body");
    assert_eq!(got.header("content-range"), Some("bytes 10-19/100"));
    assert_eq!(got.header("etag"), Some(tag.as_str()));
    // No match (another tag, the weak form, a date without Last-Modified): the range is
    // ignored and the full representation sent.
    let weak = format!("W/{tag}");
    for if_range in ["\"other\"", weak.as_str(), LM] {
        let got = rig
            .get(
                "/r?size=100",
                &[("range", "bytes=0-9"), ("if-range", if_range)],
            )
            .await;
        assert_eq!(got.status, 200, "If-Range: {if_range}");
        assert!(got.body == pattern(0, 100), "If-Range: {if_range}: body");
        assert_eq!(got.header("etag"), Some(tag.as_str()));
    }
    // A matching If-Range with a range past the end: 416.
    let got = rig
        .get(
            "/r?size=100",
            &[("range", "bytes=500-600"), ("if-range", tag.as_str())],
        )
        .await;
    assert_eq!(got.status, 416);
    assert_eq!(got.header("content-range"), Some("bytes */100"));
    for seen in rig.origin.requests().iter().skip(1) {
        assert!(!seen.headers.contains_key("range"), "origin saw Range");
        assert!(
            !seen.headers.contains_key("if-range"),
            "origin saw If-Range"
        );
    }
}

// ======================================================================================
// Metrics
// ======================================================================================

#[tokio::test]
async fn not_modified_and_precondition_failed_are_counted_per_route() {
    let rig = Rig::new();
    let tag = rig.tag("/mx?size=10").await;
    assert_eq!(
        rig.get("/mx?size=10", &[("if-none-match", &tag)])
            .await
            .status,
        304
    );
    assert_eq!(
        rig.get("/mx?size=10", &[("if-match", "\"no\"")])
            .await
            .status,
        412
    );
    let url = rig.proxy.admin_url("/metrics");
    let want = [
        "outrider_conditional_responses_total{route=\"main\",status=\"304\"} 1",
        "outrider_conditional_responses_total{route=\"main\",status=\"412\"} 1",
    ];
    let start = Instant::now();
    loop {
        let text = client()
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if want.iter().all(|w| text.lines().any(|l| l == *w)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "metrics never showed {want:?}:\n{}",
            text.lines()
                .filter(|l| l.contains("conditional"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
