//! Issue #21's opt-in route keys through the proxy: `store_set_cookie`,
//! `heuristic_freshness` / `heuristic_max`, `normalize_vary`. Each is off by default, and
//! the default behaviour is checked beside the opted-in one.

use std::time::{Duration, SystemTime};

use crate::cache::helpers::{ok, route, Rig, ON};
use crate::support::Reply;

/// Two routes on the same origin: `/on/` with `knob`, `/off/` with the defaults.
fn rig(knob: &str) -> Rig {
    let routes = format!(
        "{}{}",
        route("on", "/on/", &format!("{ON}, {knob}"), ""),
        route("off", "/off/", ON, "")
    );
    Rig::build("", &routes)
}

#[tokio::test(flavor = "multi_thread")]
async fn store_set_cookie_stores_and_replays_the_field() {
    let rig = rig("store_set_cookie = true");
    for path in ["/on/c", "/off/c"] {
        rig.backend.reply(
            path,
            ok("with cookie", "max-age=60").header("Set-Cookie", "consent=1"),
        );
        rig.get(path, &[]).await;
    }
    let on = rig.get("/on/c", &[]).await;
    assert!(on.hit(), "{}", on.cache_status());
    assert_eq!(on.header("set-cookie"), Some("consent=1"));
    let off = rig.get("/off/c", &[]).await;
    assert!(!off.hit(), "{}", off.cache_status());
    assert_eq!(rig.backend.count("/on/c"), 1);
    assert_eq!(rig.backend.count("/off/c"), 2);
}

/// Ten days since Last-Modified, 10%: one day, capped to an hour by `heuristic_max`; only for
/// heuristically cacheable statuses (404 yes, 302 no).
#[tokio::test(flavor = "multi_thread")]
async fn heuristic_freshness_uses_last_modified_for_heuristic_statuses() {
    let rig = rig("heuristic_freshness = \"10%\", heuristic_max = \"1h\"");
    let now = SystemTime::now();
    let date = httpdate::fmt_http_date(now);
    let lm = httpdate::fmt_http_date(now - Duration::from_secs(10 * 86_400));
    let dated = |status: u16| {
        let mut reply = Reply::status(status)
            .header("Date", &date)
            .header("Last-Modified", &lm);
        reply.body = Some("dated".into());
        if status == 302 {
            reply = reply.header("Location", "/elsewhere");
        }
        reply
    };
    for (path, status) in [
        ("/on/h", 200),
        ("/on/404", 404),
        ("/on/302", 302),
        ("/off/h", 200),
    ] {
        rig.backend.reply(path, dated(status));
        rig.get(path, &[]).await;
    }
    for path in ["/on/h", "/on/404"] {
        let got = rig.get(path, &[]).await;
        assert!(got.hit(), "{path}: {}", got.cache_status());
        let ttl: i64 = got.param("ttl").unwrap().parse().unwrap();
        assert!((3500..=3600).contains(&ttl), "{path}: ttl={ttl}");
        assert_eq!(rig.backend.count(path), 1, "{path}");
    }
    for path in ["/on/302", "/off/h"] {
        let got = rig.get(path, &[]).await;
        assert!(!got.hit(), "{path}: {}", got.cache_status());
        assert_eq!(rig.backend.count(path), 2, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn normalize_vary_compares_list_fields_as_sets() {
    let rig = rig("normalize_vary = true");
    for path in ["/on/v", "/off/v"] {
        rig.backend.reply(
            path,
            ok("varied", "max-age=60").header("Vary", "Accept-Language"),
        );
        rig.get(path, &[("accept-language", "en-US, fr;q=0.8")])
            .await;
    }
    let on = rig
        .get("/on/v", &[("accept-language", "FR;q=0.8,en-us")])
        .await;
    assert!(on.hit(), "{}", on.cache_status());
    let other = rig.get("/on/v", &[("accept-language", "de")]).await;
    assert!(!other.hit(), "{}", other.cache_status());
    let off = rig
        .get("/off/v", &[("accept-language", "FR;q=0.8,en-us")])
        .await;
    assert!(!off.hit(), "{}", off.cache_status());
}
