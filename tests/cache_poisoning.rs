//! A shared cache must not be poisonable: what one client sends must never decide what
//! another client is served, unless the origin said so (`Vary`, `public`).
//!
//! Every test runs the real proxy (in-process, ephemeral loopback ports) in front of a real
//! origin ([`Origin`] with a handler that reflects request fields into the response, the way
//! vulnerable applications do) and a real client (reqwest, or raw sockets where the `Host` or
//! the request line must be exact). The pattern is always: client A sends something evil, its
//! response is cacheable (`public, max-age=60` unless the test is about another directive),
//! then client B sends the clean request and must not receive A's reflected value.
//!
//! Synchronisation: a miss stores its object when the body has been written, possibly after
//! the client read it; so before B is sent the test waits (polling `GET /cache` with a
//! deadline) until the proxy has counted A's lookup, which happens in `logging`, after the
//! fill finished. Then "B was not a hit" means "A's response was not shared", not "B came too
//! early".
//!
//! What Outrider does, from `src/proxy/hygiene.rs` and `src/cache/`:
//! - `X-Forwarded-Proto` is overwritten with the proxy's own value, `X-Forwarded-For` gets the
//!   client address appended (the right-most element is the one the proxy vouches for), `Via`
//!   is appended. Every other request field, `X-Forwarded-Host` included, goes to the origin
//!   as the client sent it.
//! - The key is `http://host[:port]/path?query` (host lowercased, default port dropped) plus
//!   the `Vary` secondary key; `Vary: *` is never stored.
//! - `Authorization` bypasses the cache unless the route sets `cache_authorized`, and then the
//!   response must say `public`, `s-maxage` or `must-revalidate`.
//! - `Set-Cookie` makes a response unstorable, unless `private="Set-Cookie"` or
//!   `no-cache="Set-Cookie"` names it: then it is stored without the field.
//! - A request's `Cookie` has no rule of its own.
//!
//! Three tests here fail against the current proxy; each asserts the safe behaviour and its
//! message says what went wrong: `unkeyed_forwarding_headers_do_not_poison_the_shared_entry`
//! (client-sent `X-Forwarded-Host` & co. reach the origin and the response is shared),
//! `a_get_body_does_not_poison_the_entry` (a GET's body is forwarded and its response shared),
//! `responses_to_cookie_requests_are_shared_only_when_explicitly_public` (a response to a
//! `Cookie` request without `public` is shared).

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use support::got::Got;
use support::raw::{raw_exchange, raw_header};
use support::{client, Origin, Proxy, Recorded, Reply};

const SHARED: &str = "public, max-age=60";

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

// ======================================================================================
// 4. Authorization (RFC 9111 §3.5)
// ======================================================================================

/// With `cache_authorized`, a response to a request with `Authorization` is shared only when it
/// says so (`public`); without it, the next user goes to the origin and gets their own. On a
/// route without `cache_authorized` an authorized exchange is never stored, even `public`.
#[tokio::test(flavor = "multi_thread")]
async fn authorized_responses_are_shared_only_when_explicitly_public() {
    let routes = format!(
        "{}{}",
        route("strict", "/strict/", "enabled = true"),
        route("c", "/", "enabled = true, cache_authorized = true")
    );
    let rig = Rig::with_routes(&routes, |req| {
        let user = header_of(req, "authorization").unwrap_or("anonymous");
        let cc = if path_of(&req.uri).ends_with("/public") {
            SHARED
        } else {
            "max-age=60"
        };
        Reply::ok(format!("account of {user}")).header("Cache-Control", cc)
    });
    let alice = [("authorization", "Bearer alice")];
    let bob = [("authorization", "Bearer bob")];

    // No explicit permission: never stored, every user gets their own.
    let a = rig.get("/acct", &alice).await;
    assert_eq!(a.text(), "account of Bearer alice");
    assert!(!a.has("stored"), "{}", a.cache_status());
    rig.wait_lookups(1).await;
    let b = rig.get("/acct", &bob).await;
    assert_eq!(b.text(), "account of Bearer bob", "Bob got Alice's account");
    rig.wait_lookups(2).await;
    let anon = rig.get("/acct", &[]).await;
    assert_eq!(
        anon.text(),
        "account of anonymous",
        "an anonymous client got an account"
    );
    assert_eq!(rig.count("/acct"), 3);

    // `public`: the origin says it is the same for everyone.
    let a = rig.get("/acct/public", &alice).await;
    assert!(a.has("stored"), "{}", a.cache_status());
    rig.wait_lookups(4).await;
    let b = rig.get("/acct/public", &bob).await;
    assert!(b.hit(), "{}", b.cache_status());
    assert_eq!(b.text(), "account of Bearer alice");
    assert_eq!(rig.count("/acct/public"), 1);

    // Without `cache_authorized`: not even `public` is stored for an authorized request.
    let a = rig.get("/strict/public", &alice).await;
    assert_eq!(
        a.param("detail").as_deref(),
        Some("authorization"),
        "{}",
        a.cache_status()
    );
    rig.wait_lookups(6).await;
    let anon = rig.get("/strict/public", &[]).await;
    assert_eq!(
        anon.text(),
        "account of anonymous",
        "{}",
        anon.cache_status()
    );
    assert!(!anon.hit());
    assert_eq!(rig.count("/strict/public"), 2);
}

// ======================================================================================
// 5. Cookie
// ======================================================================================

/// `Vary: Cookie` keys a personalised response by the cookie: each session gets its own, and
/// the cookie-less client gets the anonymous one.
#[tokio::test(flavor = "multi_thread")]
async fn vary_cookie_keeps_sessions_apart() {
    let rig = Rig::new("enabled = true", |req| {
        let cookie = header_of(req, "cookie").unwrap_or("none");
        Reply::ok(format!("page for {cookie}"))
            .header("Cache-Control", SHARED)
            .header("Vary", "Cookie")
    });
    let sessions: [&[(&str, &str)]; 3] =
        [&[("cookie", "sid=alice")], &[("cookie", "sid=bob")], &[]];
    let expected = ["page for sid=alice", "page for sid=bob", "page for none"];
    for (n, (headers, body)) in sessions.iter().zip(expected).enumerate() {
        let got = rig.get("/home", headers).await;
        assert_eq!(got.text(), body);
        assert!(!got.hit(), "{body}: {}", got.cache_status());
        rig.wait_lookups(n as u64 + 1).await;
    }
    for (headers, body) in sessions.iter().zip(expected) {
        let got = rig.get("/home", headers).await;
        assert_eq!(got.text(), body, "a session got another one's page");
        assert!(got.hit(), "{body}: {}", got.cache_status());
    }
    assert_eq!(rig.count("/home"), 3);
    assert_eq!(rig.cache().await["objects"], 3);
}

/// A response to a request with `Cookie` that the origin marks `private` or `no-store` stays
/// with that client; `public` makes it shared.
#[tokio::test(flavor = "multi_thread")]
async fn private_responses_to_cookie_requests_are_not_shared() {
    let rig = Rig::new("enabled = true, default_ttl = \"1h\"", |req| {
        let cookie = header_of(req, "cookie").unwrap_or("none");
        let cc = match path_of(&req.uri) {
            "/private" => "private, max-age=60",
            "/no-store" => "no-store",
            "/public" => SHARED,
            _ => "private",
        };
        Reply::ok(format!("page for {cookie}")).header("Cache-Control", cc)
    });
    let mut lookups = 0;
    for path in ["/private", "/no-store", "/bare-private"] {
        let a = rig.get(path, &[("cookie", "sid=alice")]).await;
        assert_eq!(a.text(), "page for sid=alice");
        lookups += 1;
        rig.wait_lookups(lookups).await;
        let b = rig.get(path, &[]).await;
        lookups += 1;
        rig.wait_lookups(lookups).await;
        assert_eq!(b.text(), "page for none", "{path}: {}", b.cache_status());
        assert_eq!(rig.count(path), 2, "{path}");
    }
    let a = rig.get("/public", &[("cookie", "sid=alice")]).await;
    assert!(a.has("stored"), "{}", a.cache_status());
    rig.wait_lookups(lookups + 1).await;
    let b = rig.get("/public", &[]).await;
    assert!(b.hit(), "{}", b.cache_status());
    assert_eq!(rig.count("/public"), 1);
}

/// A response to a request with `Cookie` that depends on it but says neither `private` nor
/// `public` nor `Vary: Cookie`: the conservative shared-cache rule (Varnish's default; the one
/// Outrider applies to `Authorization`) is not to share it unless it is explicitly public.
#[tokio::test(flavor = "multi_thread")]
async fn responses_to_cookie_requests_are_shared_only_when_explicitly_public() {
    let rig = Rig::new("enabled = true", |req| {
        let cookie = header_of(req, "cookie").unwrap_or("none");
        let cc = if path_of(&req.uri) == "/public" {
            SHARED
        } else {
            "max-age=60"
        };
        Reply::ok(format!("page for {cookie}")).header("Cache-Control", cc)
    });
    let a = rig.get("/public", &[("cookie", "sid=alice")]).await;
    assert_eq!(a.text(), "page for sid=alice");
    rig.wait_lookups(1).await;
    let b = rig.get("/public", &[]).await;
    assert!(
        b.hit(),
        "an explicitly public response was not shared: {}",
        b.cache_status()
    );
    rig.wait_lookups(2).await;

    let a = rig.get("/me", &[("cookie", "sid=alice")]).await;
    assert_eq!(a.text(), "page for sid=alice");
    rig.wait_lookups(3).await;
    let b = rig.get("/me", &[]).await;
    assert_eq!(
        b.text(),
        "page for none",
        "a response to Alice's Cookie request (Cache-Control: max-age=60, no public, no \
         Vary: Cookie) was stored and served to another client ({})",
        b.cache_status()
    );
}

// ======================================================================================
// 6. Vary (RFC 9111 §4.1)
// ======================================================================================

/// `Vary: Accept-Language`: each language is its own entry, and no client is ever served
/// another language's body.
#[tokio::test(flavor = "multi_thread")]
async fn vary_accept_language_serves_each_language_its_own_entry() {
    let rig = Rig::new("enabled = true", |req| {
        let lang = header_of(req, "accept-language").unwrap_or("any");
        Reply::ok(format!("lang={lang}"))
            .header("Cache-Control", SHARED)
            .header("Vary", "Accept-Language")
    });
    let mut lookups = 0;
    for lang in ["en", "fr"] {
        let got = rig.get("/v", &[("accept-language", lang)]).await;
        assert_eq!(got.text(), format!("lang={lang}"));
        assert!(!got.hit(), "{lang}: {}", got.cache_status());
        lookups += 1;
        rig.wait_lookups(lookups).await;
    }
    assert_eq!(rig.count("/v"), 2);
    for lang in ["fr", "en", "fr", "en"] {
        let got = rig.get("/v", &[("accept-language", lang)]).await;
        assert_eq!(
            got.text(),
            format!("lang={lang}"),
            "a variant answered the wrong language"
        );
        assert!(got.hit(), "{lang}: {}", got.cache_status());
    }
    // No Accept-Language is a value of its own, not "any stored variant".
    let none = rig.get("/v", &[]).await;
    assert_eq!(none.text(), "lang=any");
    assert!(!none.hit(), "{}", none.cache_status());
    assert_eq!(rig.count("/v"), 3);
    poll("3 variants stored", Duration::from_secs(5), || async {
        rig.cache().await["objects"] == 3
    })
    .await;
}

/// Several `Vary` fields (any case, several lines): a request matching on all but one of them
/// is another variant, so a tenant never gets another tenant's page.
#[tokio::test(flavor = "multi_thread")]
async fn vary_on_several_fields_needs_all_of_them_to_match() {
    let rig = Rig::new("enabled = true", |req| {
        let lang = header_of(req, "accept-language").unwrap_or("-");
        let tenant = header_of(req, "x-tenant").unwrap_or("-");
        Reply::ok(format!("{tenant}/{lang}"))
            .header("Cache-Control", SHARED)
            .header("Vary", "accept-language")
            .header("Vary", "X-TENANT")
    });
    let a = rig
        .get("/t", &[("accept-language", "en"), ("x-tenant", "acme")])
        .await;
    assert_eq!(a.text(), "acme/en");
    rig.wait_lookups(1).await;
    let b = rig
        .get("/t", &[("accept-language", "en"), ("x-tenant", "globex")])
        .await;
    assert_eq!(b.text(), "globex/en", "a tenant got another tenant's page");
    rig.wait_lookups(2).await;
    let c = rig.get("/t", &[("accept-language", "en")]).await;
    assert_eq!(c.text(), "-/en");
    let again = rig
        .get("/t", &[("x-tenant", "acme"), ("accept-language", "en")])
        .await;
    assert!(again.hit(), "{}", again.cache_status());
    assert_eq!(again.text(), "acme/en");
    assert_eq!(rig.count("/t"), 3);
}

/// `Vary: *` (alone, among other fields, or a member that is not a field name) never matches
/// a later request: every request goes to the origin and nothing is stored.
#[tokio::test(flavor = "multi_thread")]
async fn vary_star_is_never_served_from_the_cache() {
    let counter = Arc::new(AtomicUsize::new(0));
    let n = counter.clone();
    let rig = Rig::new("enabled = true, default_ttl = \"1h\"", move |req| {
        let vary = match path_of(&req.uri) {
            "/star" => "*",
            "/star-among" => "Accept-Language, *",
            _ => "Accept-Language, not a field",
        };
        let i = n.fetch_add(1, Ordering::SeqCst);
        Reply::ok(format!("response {i}"))
            .header("Cache-Control", SHARED)
            .header("Vary", vary)
    });
    let mut lookups = 0;
    for path in ["/star", "/star-among", "/star-invalid"] {
        let mut bodies = Vec::new();
        for _ in 0..3 {
            let got = rig.get(path, &[]).await;
            assert!(!got.hit(), "{path}: {}", got.cache_status());
            assert!(!got.has("stored"), "{path}: {}", got.cache_status());
            bodies.push(got.text());
            lookups += 1;
            rig.wait_lookups(lookups).await;
        }
        bodies.dedup();
        assert_eq!(
            bodies.len(),
            3,
            "{path}: a response was replayed: {bodies:?}"
        );
        assert_eq!(rig.count(path), 3, "{path}");
    }
    assert_eq!(rig.cache().await["objects"], 0);
}

// ======================================================================================
// 7. Set-Cookie
// ======================================================================================

/// A response with `Set-Cookie` is never replayed to another client, whatever its
/// `Cache-Control` says (`public`, `s-maxage`, `must-revalidate`, or nothing on a route with a
/// default TTL): B gets its own cookie from the origin, never A's.
#[tokio::test(flavor = "multi_thread")]
async fn set_cookie_is_never_replayed_to_another_client() {
    let counter = Arc::new(AtomicUsize::new(0));
    let n = counter.clone();
    let rig = Rig::new("enabled = true, default_ttl = \"1h\"", move |req| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        let reply = Reply::ok(format!("welcome #{i}"))
            .header("Set-Cookie", &format!("sid=session-{i}; HttpOnly"))
            .header("Set-Cookie", &format!("csrf=token-{i}"));
        match path_of(&req.uri) {
            "/public" => reply.header("Cache-Control", SHARED),
            "/s-maxage" => reply.header("Cache-Control", "s-maxage=60"),
            "/must-revalidate" => {
                reply.header("Cache-Control", "public, must-revalidate, max-age=60")
            }
            "/immutable" => reply.header("Cache-Control", "public, max-age=60, immutable"),
            "/targeted" => reply
                .header("Cache-Control", "no-cache")
                .header("CDN-Cache-Control", "max-age=60"),
            _ => reply,
        }
    });
    let mut lookups = 0;
    for path in [
        "/public",
        "/s-maxage",
        "/must-revalidate",
        "/immutable",
        "/targeted",
        "/bare",
    ] {
        let a = rig.get(path, &[]).await;
        let a_cookies = a.all("set-cookie").join("; ");
        assert!(
            a_cookies.contains("sid=session-"),
            "{path}: A lost its own cookie"
        );
        lookups += 1;
        rig.wait_lookups(lookups).await;
        let b = rig.get(path, &[]).await;
        lookups += 1;
        rig.wait_lookups(lookups).await;
        for cookie in a.all("set-cookie") {
            assert!(
                !b.all("set-cookie").contains(&cookie),
                "{path}: B was sent A's cookie {cookie:?} ({})",
                b.cache_status()
            );
        }
        assert_ne!(
            b.text(),
            a.text(),
            "{path}: B got A's response ({})",
            b.cache_status()
        );
        assert!(!b.hit(), "{path}: {}", b.cache_status());
        assert_eq!(rig.count(path), 2, "{path}");
    }
    assert_eq!(rig.cache().await["objects"], 0);
}

/// `private="Set-Cookie"` / `no-cache="Set-Cookie"` (quoted or token, any case, among other
/// names): the rest is shared and stored, the named fields are not, so a hit carries neither A's
/// cookie nor the other named field.
#[tokio::test(flavor = "multi_thread")]
async fn a_qualified_directive_stores_the_response_without_the_cookie() {
    let counter = Arc::new(AtomicUsize::new(0));
    let n = counter.clone();
    let rig = Rig::new("enabled = true", move |req| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        let cc = match path_of(&req.uri) {
            "/private-quoted" => "private=\"Set-Cookie\", max-age=60",
            "/private-token" => "max-age=60, private=set-cookie",
            "/no-cache-list" => "public, max-age=60, no-cache=\"X-User, SET-COOKIE\"",
            _ => "private=\"X-User, Set-Cookie\", s-maxage=60",
        };
        Reply::ok("shared part")
            .header("Cache-Control", cc)
            .header("Set-Cookie", &format!("sid=session-{i}"))
            .header("Set-Cookie", &format!("pref=p{i}"))
            .header("X-User", &format!("user-{i}"))
    });
    let mut lookups = 0;
    for path in [
        "/private-quoted",
        "/private-token",
        "/no-cache-list",
        "/private-list",
    ] {
        let a = rig.get(path, &[]).await;
        assert_eq!(
            a.all("set-cookie").len(),
            2,
            "{path}: A lost its own cookies"
        );
        assert!(a.has("stored"), "{path}: {}", a.cache_status());
        lookups += 1;
        rig.wait_lookups(lookups).await;
        let b = rig.get(path, &[]).await;
        lookups += 1;
        assert!(b.hit(), "{path}: {}", b.cache_status());
        assert_eq!(b.text(), "shared part");
        assert_eq!(
            b.all("set-cookie"),
            Vec::<&str>::new(),
            "{path}: a hit replayed A's cookie"
        );
        if path != "/private-quoted" && path != "/private-token" {
            assert_eq!(
                b.header("x-user"),
                None,
                "{path}: a hit replayed A's X-User"
            );
        }
        assert_eq!(rig.count(path), 1, "{path}");
    }
}

/// A 304 that carries `Set-Cookie` (for the client whose request revalidated the entry) does
/// not add the cookie to the stored response: later clients do not get it.
#[tokio::test(flavor = "multi_thread")]
async fn a_cookie_on_a_revalidation_304_is_not_stored() {
    let counter = Arc::new(AtomicUsize::new(0));
    let n = counter.clone();
    let rig = Rig::new("enabled = true", move |req| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        if header_of(req, "if-none-match") == Some("\"v1\"") {
            Reply {
                status: 304,
                chunked: true,
                ..Default::default()
            }
            .header("ETag", "\"v1\"")
            .header("Cache-Control", "public, no-cache")
            .header("Set-Cookie", &format!("sid=revalidated-{i}"))
        } else {
            Reply::ok("validated body")
                .header("ETag", "\"v1\"")
                .header("Cache-Control", "public, no-cache")
        }
    });
    let first = rig.get("/rv", &[]).await;
    assert!(first.has("stored"), "{}", first.cache_status());
    let mut seen = Vec::new();
    for n in 1..=3u64 {
        rig.wait_lookups(n).await;
        let got = rig.get("/rv", &[]).await;
        assert_eq!((got.status, got.text().as_str()), (200, "validated body"));
        assert_eq!(
            got.param("fwd-status").as_deref(),
            Some("304"),
            "{}",
            got.cache_status()
        );
        for cookie in got.all("set-cookie") {
            assert!(
                !seen.contains(&cookie.to_string()),
                "a later client got an earlier revalidation's cookie {cookie:?}"
            );
            seen.push(cookie.to_string());
        }
    }
    assert_eq!(rig.count("/rv"), 4);
}

// ======================================================================================
// 8. private / no-store
// ======================================================================================

/// `private` (any case, unqualified, or with an empty or invalid field list, which counts as
/// unqualified) and `no-store` beat `public`, `s-maxage`, `max-age` and the route's TTLs.
#[tokio::test(flavor = "multi_thread")]
async fn private_and_no_store_beat_every_permission() {
    let rig = Rig::new(
        "enabled = true, default_ttl = \"1h\", override_ttl = \"1h\"",
        |req| {
            let user = header_of(req, "x-user").unwrap_or("nobody");
            let cc = match path_of(&req.uri) {
                "/1" => "private, max-age=60",
                "/2" => "PRIVATE, public, s-maxage=60",
                "/3" => "public, max-age=60, private=\"\"",
                "/4" => "private=\"not a field!\", max-age=60",
                "/5" => "no-store, public, max-age=60",
                "/6" => "public, s-maxage=60, No-Store",
                _ => "private",
            };
            Reply::ok(format!("data of {user}")).header("Cache-Control", cc)
        },
    );
    let mut lookups = 0;
    for path in ["/1", "/2", "/3", "/4", "/5", "/6", "/7"] {
        let a = rig.get(path, &[("x-user", "alice")]).await;
        assert_eq!(a.text(), "data of alice");
        lookups += 1;
        rig.wait_lookups(lookups).await;
        let b = rig.get(path, &[]).await;
        lookups += 1;
        rig.wait_lookups(lookups).await;
        assert_eq!(b.text(), "data of nobody", "{path}: {}", b.cache_status());
        assert_eq!(rig.count(path), 2, "{path}");
    }
    assert_eq!(rig.cache().await["objects"], 0);
}

// ======================================================================================
// Helpers
// ======================================================================================

struct Rig {
    origin: Origin,
    proxy: Proxy,
}

impl Rig {
    /// One route on `/` with the inline cache table `cache`, in front of an origin answering
    /// with `handler`.
    fn new(cache: &str, handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Rig {
        Rig::with_routes(&route("c", "/", cache), handler)
    }

    fn with_routes(
        routes: &str,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Rig {
        let origin = Origin::with_handler(handler);
        let proxy = Proxy::start(&format!("{}{routes}", origin.upstream_toml("app")));
        Rig { origin, proxy }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Got {
        self.send(reqwest::Method::GET, path, headers, None).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Got {
        let mut req = client().request(method, self.proxy.url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let started = Instant::now();
        let resp = req.send().await.expect("request through the proxy");
        Got::read(resp, started).await
    }

    /// Requests the origin saw for `path` (any query).
    fn count(&self, path: &str) -> usize {
        self.origin
            .requests()
            .iter()
            .filter(|r| path_of(&r.uri) == path)
            .count()
    }

    async fn cache(&self) -> Value {
        let resp = client()
            .get(self.proxy.admin_url("/cache"))
            .send()
            .await
            .expect("GET /cache");
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("GET /cache JSON")
    }

    /// Cache lookups the proxy has finished (counted in `logging`, after any fill).
    async fn lookups(&self) -> u64 {
        let cache = self.cache().await;
        let lookups = cache["lookups"].as_object().expect("lookups");
        lookups.values().filter_map(Value::as_u64).sum()
    }

    /// Waits until `n` requests have been through the whole pipeline.
    async fn wait_lookups(&self, n: u64) {
        poll(
            &format!("{n} finished cache lookups"),
            Duration::from_secs(5),
            || async { self.lookups().await >= n },
        )
        .await;
    }
}

fn route(name: &str, prefix: &str, cache: &str) -> String {
    format!(
        "[[routes]]\nname = \"{name}\"\nupstream = \"app\"\nmatch = {{ path_prefix = \"{prefix}\" }}\n\
         cache = {{ {cache} }}\n\n"
    )
}

/// GET `path` with `Host: host` over a raw socket: status, headers, body.
async fn raw_get(addr: SocketAddr, path: &str, host: &str) -> (u16, Vec<(String, String)>, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let (status, headers, body) = raw_exchange(addr, &request).await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn path_of(uri: &str) -> &str {
    uri.split_once('?').map_or(uri, |(p, _)| p)
}

fn header_of<'a>(req: &'a Recorded, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn all_values<'a>(req: &'a Recorded, name: &str) -> Vec<&'a str> {
    req.headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

async fn poll<F, Fut>(what: &str, deadline: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The parameters of the `outrider` member of a `Cache-Status` value (RFC 9211).
fn params(value: &str) -> Vec<(String, Option<String>)> {
    let member = value
        .split(',')
        .map(str::trim)
        .find(|m| m.starts_with("outrider"))
        .unwrap_or("");
    member
        .split(';')
        .skip(1)
        .map(|p| match p.trim().split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.trim_matches('"').to_string())),
            None => (p.trim().to_string(), None),
        })
        .collect()
}

fn is_hit(cache_status: &str) -> bool {
    params(cache_status).iter().any(|(k, _)| k == "hit")
}

impl Got {
    fn cache_status(&self) -> &str {
        self.header("cache-status").unwrap_or("")
    }

    fn hit(&self) -> bool {
        is_hit(self.cache_status())
    }

    fn has(&self, name: &str) -> bool {
        params(self.cache_status()).iter().any(|(k, _)| k == name)
    }

    fn param(&self, name: &str) -> Option<String> {
        params(self.cache_status())
            .into_iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v)
    }
}
