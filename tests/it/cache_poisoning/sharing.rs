//! Who may be served a shared response: `Authorization`, `Cookie`, `Vary`, `Set-Cookie`,
//! `private` / `no-store`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::cache_poisoning::helpers::{header_of, path_of, poll, route, Rig, SHARED};
use crate::support::Reply;

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
