//! Request fields a client controls: forwarding headers, unkeyed fields, `Host`.

use crate::cache_poisoning::helpers::{
    all_values, header_of, is_hit, path_of, raw_get, Rig, SHARED,
};
use crate::support::raw::{raw_exchange, raw_header};
use crate::support::Reply;

// ======================================================================================
// 1. Forwarding headers the proxy sets itself
// ======================================================================================

/// `X-Forwarded-Proto` is the proxy's to say: a client's value (even on two field lines) never
/// reaches the origin, so a response that reflects it cannot carry the client's scheme to the
/// next client. `X-Forwarded-For` keeps the client's list but ends with the address the proxy
/// saw, so an origin that trusts the right-most element reflects the real peer.
#[tokio::test(flavor = "multi_thread")]
async fn client_supplied_forwarded_proto_and_for_do_not_reach_the_shared_entry() {
    let rig = Rig::new("enabled = true", |req| {
        let protos = all_values(req, "x-forwarded-proto").join("|");
        let xff = header_of(req, "x-forwarded-for").unwrap_or("");
        let last = xff.rsplit(',').next().unwrap_or("").trim().to_string();
        Reply::ok(format!("proto={protos} client={last}"))
            .header("Cache-Control", SHARED)
            .header("Location", &format!("{protos}://app.example/next"))
    });
    let evil = [
        ("x-forwarded-proto", "javascript"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-for", "6.6.6.6"),
    ];
    let a = rig.get("/fwd", &evil).await;
    assert_eq!(a.status, 200);
    let seen = rig.origin.requests().pop().expect("the origin saw A");
    assert_eq!(
        all_values(&seen, "x-forwarded-proto"),
        ["http"],
        "the client's X-Forwarded-Proto reached the origin"
    );
    assert_eq!(
        header_of(&seen, "x-forwarded-for"),
        Some("6.6.6.6, 127.0.0.1"),
        "X-Forwarded-For must end with the peer the proxy saw"
    );
    assert_eq!(a.text(), "proto=http client=127.0.0.1");
    rig.wait_lookups(1).await;

    let b = rig.get("/fwd", &[]).await;
    assert!(
        b.hit(),
        "the shared response was not stored: {}",
        b.cache_status()
    );
    assert_eq!(b.text(), "proto=http client=127.0.0.1");
    assert_eq!(b.header("location"), Some("http://app.example/next"));
    assert_eq!(rig.count("/fwd"), 1);
}

// ======================================================================================
// 2. Unkeyed request fields
// ======================================================================================

/// An origin that declares what its response depends on (`Vary`) is keyed by it: the evil
/// variant and the clean one are two entries, each served to its own kind of request.
#[tokio::test(flavor = "multi_thread")]
async fn vary_on_a_forwarding_header_keys_the_entry_by_it() {
    let rig = Rig::new("enabled = true", |req| {
        let path = path_of(&req.uri);
        let name = path.rsplit('/').next().unwrap_or("").to_string();
        let value = header_of(req, &name).unwrap_or("-").to_string();
        Reply::ok(format!("{name}={value}"))
            .header("Cache-Control", SHARED)
            .header("Vary", &name)
            .header("Location", &format!("http://{value}/next"))
    });
    let mut lookups = 0;
    for (name, evil) in [
        ("x-forwarded-host", "evil.example"),
        ("x-original-url", "/admin"),
        ("x-http-method-override", "DELETE"),
    ] {
        let path = format!("/vary/{name}");
        let a = rig.get(&path, &[(name, evil)]).await;
        assert_eq!(a.text(), format!("{name}={evil}"));
        lookups += 1;
        rig.wait_lookups(lookups).await;

        let b = rig.get(&path, &[]).await;
        assert!(!b.hit(), "{name}: B got A's variant: {}", b.cache_status());
        assert_eq!(
            b.text(),
            format!("{name}=-"),
            "{name}: B got A's reflection"
        );
        assert!(
            !b.header("location").unwrap_or("").contains(evil),
            "{name}: B's Location carries A's value"
        );
        lookups += 1;
        rig.wait_lookups(lookups).await;

        // Both variants are now stored and each is served to its own request.
        let a2 = rig.get(&path, &[(name, evil)]).await;
        assert!(a2.hit(), "{name}: {}", a2.cache_status());
        assert_eq!(a2.text(), format!("{name}={evil}"));
        let b2 = rig.get(&path, &[]).await;
        assert!(b2.hit(), "{name}: {}", b2.cache_status());
        assert_eq!(b2.text(), format!("{name}=-"));
        lookups += 2;
        assert_eq!(rig.count(&path), 2, "{name}");
    }
}

/// Request fields that origins commonly trust for building URLs, routing or picking the method,
/// reflected by an origin that does not list them in `Vary`. The proxy keys on the URL only, so
/// the only safe outcomes are that the client's value never reaches the origin (the proxy
/// strips it or overwrites it with what it knows, as it does for `X-Forwarded-Proto`) or that
/// the response is not shared. Client B must never be served A's value.
#[tokio::test(flavor = "multi_thread")]
async fn unkeyed_forwarding_headers_do_not_poison_the_shared_entry() {
    let rig = Rig::new("enabled = true", |req| {
        let path = path_of(&req.uri);
        let name = path.rsplit('/').next().unwrap_or("").to_string();
        let value = header_of(req, &name).unwrap_or("-").to_string();
        Reply::ok(format!("{name}={value}"))
            .header("Cache-Control", SHARED)
            .header("Location", &format!("http://{value}/next"))
    });
    let cases = [
        ("x-forwarded-host", "evil.example"),
        ("x-host", "evil.example"),
        ("x-forwarded-server", "evil.example"),
        ("x-forwarded-scheme", "nothttp"),
        ("x-forwarded-port", "6666"),
        ("x-forwarded-prefix", "/evil"),
        ("forwarded", "host=evil.example;proto=https"),
        ("x-original-url", "/evil-admin"),
        ("x-rewrite-url", "/evil-admin"),
        ("x-http-method-override", "DELETE"),
    ];
    let mut poisoned = Vec::new();
    for (i, (name, evil)) in cases.iter().enumerate() {
        let path = format!("/unkeyed/{name}");
        let a = rig.get(&path, &[(*name, *evil)]).await;
        assert_eq!(a.status, 200, "{name}");
        rig.wait_lookups(2 * i as u64 + 1).await;
        let b = rig.get(&path, &[]).await;
        rig.wait_lookups(2 * i as u64 + 2).await;
        let reached_origin = rig
            .origin
            .requests()
            .iter()
            .any(|r| path_of(&r.uri) == path && header_of(r, name) == Some(*evil));
        if b.text().contains(evil) || b.header("location").unwrap_or("").contains(evil) {
            poisoned.push(format!(
                "{name}: {evil:?} forwarded={reached_origin}, B got {:?} ({})",
                b.text(),
                b.cache_status()
            ));
        }
    }
    assert!(
        poisoned.is_empty(),
        "cache poisoning through unkeyed request fields: the proxy forwards them unchanged \
         and keys on the URL only, so client B was served client A's value (the proxy should \
         overwrite the X-Forwarded-* / Forwarded fields it owns, as it does X-Forwarded-Proto, \
         and drop the URL/method override fields):\n  {}",
        poisoned.join("\n  ")
    );
}

/// A GET's body is not part of the key; an origin that reads it ("fat GET") must not let one
/// client's body decide what the next client of that URL gets.
#[tokio::test(flavor = "multi_thread")]
async fn a_get_body_does_not_poison_the_entry() {
    let rig = Rig::new("enabled = true", |req| {
        Reply::ok(format!("body-bytes={}", req.body_len)).header("Cache-Control", SHARED)
    });
    let a = rig
        .send(reqwest::Method::GET, "/fat", &[], Some(b"evil=1".to_vec()))
        .await;
    assert_eq!(a.status, 200);
    rig.wait_lookups(1).await;
    let b = rig.get("/fat", &[]).await;
    assert_eq!(
        b.text(),
        "body-bytes=0",
        "B was served the response to A's GET body ({}): a GET with a body should not be \
         stored (or its body not forwarded)",
        b.cache_status()
    );
}

// ======================================================================================
// 3. Host
// ======================================================================================

/// Each host the client addresses is its own entry; only spellings of the same authority share
/// one (`A.TEST` and `a.test:80` are `a.test`). A `Host` crafted to look like another URL's
/// host-plus-path cannot write that URL's entry.
#[tokio::test(flavor = "multi_thread")]
async fn each_host_has_its_own_entry() {
    let rig = Rig::new("enabled = true", |req| {
        Reply::ok(format!("host={}", all_values(req, "host").join("|")))
            .header("Cache-Control", SHARED)
    });
    let addr = rig.proxy.addr;
    let mut lookups = 0;
    let mut get = |host: &'static str, path: &'static str| {
        lookups += 1;
        let n = lookups;
        let rig = &rig;
        async move {
            let got = raw_get(addr, path, host).await;
            rig.wait_lookups(n).await;
            got
        }
    };

    let (status, _, body) = get("a.test", "/h").await;
    assert_eq!((status, body.as_str()), (200, "host=a.test"));
    let (_, headers, body) = get("b.test", "/h").await;
    assert_eq!(body, "host=b.test", "b.test was served a.test's entry");
    assert!(!is_hit(raw_header(&headers, "cache-status").unwrap_or("")));
    assert_eq!(rig.count("/h"), 2);

    // Spellings of the same authority: one entry.
    for host in ["A.TEST", "a.test:80"] {
        let (_, headers, body) = get(host, "/h").await;
        assert_eq!(body, "host=a.test", "{host}");
        let status = raw_header(&headers, "cache-status").unwrap_or("");
        assert!(is_hit(status), "{host}: {status}");
    }
    // Another port is another origin.
    let (_, _, body) = get("a.test:8080", "/h").await;
    assert_eq!(body, "host=a.test:8080");
    assert_eq!(rig.count("/h"), 3);
    let (_, _, body) = get("b.test", "/h").await;
    assert_eq!(body, "host=b.test");

    // `Host: a.test/x` + `/h` must not fill `a.test` + `/x/h`.
    let (status, _, _) = get("a.test/x", "/h").await;
    let (_, headers, body) = get("a.test", "/x/h").await;
    assert_eq!(
        body, "host=a.test",
        "a crafted Host (answered {status}) wrote another URL's entry"
    );
    assert!(!is_hit(raw_header(&headers, "cache-status").unwrap_or("")));
}

/// RFC 9112 §3.2.2: with an absolute-form target the target's authority is the host, and a
/// proxy forwarding it must send that as `Host`, not the client's `Host`. The key uses the
/// target's authority, so if the client's `Host` reached the origin, a response built from it
/// would be stored under the other host's URL. (Outrider answers a `Host` that disagrees with
/// the target with 400 before routing; rewriting `Host` would be safe too, so the test accepts
/// either and checks what the clean client gets.)
#[tokio::test(flavor = "multi_thread")]
async fn absolute_form_cannot_store_one_hosts_response_under_another() {
    let rig = Rig::new("enabled = true", |req| {
        Reply::ok(format!("host={}", all_values(req, "host").join("|")))
            .header("Cache-Control", SHARED)
    });
    let addr = rig.proxy.addr;
    let (status, _, body) = raw_exchange(
        addr,
        "GET http://victim.test/abs HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let a_body = String::from_utf8_lossy(&body).into_owned();
    a_was_handled(&rig, status).await;
    let (_, headers, b_body) = raw_get(addr, "/abs", "victim.test").await;
    assert!(
        !b_body.contains("evil.test"),
        "victim.test's entry holds the response to Host: evil.test (A got {status} {a_body:?}, \
         B got {b_body:?}, {})",
        raw_header(&headers, "cache-status").unwrap_or("")
    );
}

/// Two `Host` lines are a 400 (RFC 9112 §3.2), which is what Outrider answers, without asking
/// the origin. Whatever the proxy does with them, the second must not end up in the entry of
/// the first one's URL.
#[tokio::test(flavor = "multi_thread")]
async fn duplicate_host_lines_cannot_poison_the_first_hosts_entry() {
    let rig = Rig::new("enabled = true", |req| {
        Reply::ok(format!("host={}", all_values(req, "host").join("|")))
            .header("Cache-Control", SHARED)
    });
    let addr = rig.proxy.addr;
    let (status, _, body) = raw_exchange(
        addr,
        "GET /dup HTTP/1.1\r\nHost: victim.test\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    let a_body = String::from_utf8_lossy(&body).into_owned();
    a_was_handled(&rig, status).await;
    let (_, headers, b_body) = raw_get(addr, "/dup", "victim.test").await;
    assert!(
        !b_body.contains("evil.test"),
        "victim.test's entry holds the response to a request with a second Host (A got \
         {status} {a_body:?}, B got {b_body:?}, {})",
        raw_header(&headers, "cache-status").unwrap_or("")
    );
}

/// A request the proxy refused with 400 never reached the origin; any other was routed and
/// looked up, and the test waits until its lookup (and any fill) is done.
async fn a_was_handled(rig: &Rig, status: u16) {
    if status == 400 {
        assert_eq!(
            rig.origin.request_count(),
            0,
            "a refused request reached the origin"
        );
    } else {
        rig.wait_lookups(1).await;
    }
}
