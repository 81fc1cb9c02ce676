//! `deadline`: a slow backend is cut at the route's deadline with 504, on both legs (a GET takes
//! the buffered leg, a POST Pingora's), and the timed-out upstream connection is not reused.
//! The margins are wide (the deadline is 1 s, the backend would take 20 s; the cut must land
//! between 0.9 s and 5 s) so that a busy machine cannot fail it.

use crate::support;

use std::time::{Duration, Instant};

use support::{client, Origin, Proxy};

fn conf(origin: &Origin) -> String {
    format!(
        "{}\n[defaults]\nupstream = \"app\"\n\n\
         [[routes]]\nname = \"bounded\"\nmatch = {{ path_prefix = \"/bounded\" }}\ndeadline = \"1s\"\n\n\
         [[routes]]\nname = \"free\"\nmatch = {{ path_prefix = \"/\" }}\n",
        origin.upstream_toml("app")
    )
}

async fn timed(req: reqwest::RequestBuilder) -> (u16, Duration) {
    let started = Instant::now();
    let resp = req.send().await.expect("the proxy answers");
    let status = resp.status().as_u16();
    let _ = resp.bytes().await;
    (status, started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_backend_is_cut_at_the_deadline_on_both_legs() {
    let origin = Origin::start();
    let proxy = Proxy::start(&conf(&origin));
    for req in [
        client().get(proxy.url("/bounded/get?delay_ms=20000")),
        client()
            .post(proxy.url("/bounded/post?delay_ms=20000"))
            .body("x"),
    ] {
        let (status, took) = timed(req).await;
        assert_eq!(status, 504);
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "cut after {took:?}"
        );
    }
    // A fast request on the same route is untouched, and a route without a deadline waits.
    assert_eq!(timed(client().get(proxy.url("/bounded/fast"))).await.0, 200);
    let (status, took) = timed(client().get(proxy.url("/free?delay_ms=1500"))).await;
    assert_eq!(status, 200);
    assert!(took >= Duration::from_millis(1400), "{took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_timed_out_upstream_connection_is_not_reused() {
    let origin = Origin::start();
    let proxy = Proxy::start(&conf(&origin));
    assert_eq!(timed(client().get(proxy.url("/bounded/warm"))).await.0, 200);
    assert_eq!(
        timed(client().get(proxy.url("/bounded/slow?delay_ms=20000")))
            .await
            .0,
        504
    );
    assert_eq!(
        timed(client().get(proxy.url("/bounded/after"))).await.0,
        200
    );
    let seen = origin.requests();
    let peer_of = |path: &str| {
        seen.iter()
            .find(|r| r.uri.starts_with(path))
            .map(|r| r.peer)
            .unwrap_or_else(|| panic!("{path} reached the origin"))
    };
    assert_ne!(
        peer_of("/bounded/slow"),
        peer_of("/bounded/after"),
        "the connection that timed out was pooled again"
    );
}
