//! `Server-Timing`.

use crate::metrics::requests::{route, send};
use crate::support::{Origin, Proxy};

// ---------------------------------------------------------------------------------------------
// Server-Timing.
// ---------------------------------------------------------------------------------------------

/// The `dur` of the `name` metric in a Server-Timing value.
fn timing(header: &str, name: &str) -> f64 {
    header
        .split(',')
        .map(str::trim)
        .find_map(|m| {
            let mut params = m.split(';').map(str::trim);
            (params.next() == Some(name))
                .then(|| params.find_map(|p| p.strip_prefix("dur=")))
                .flatten()
        })
        .unwrap_or_else(|| panic!("no {name};dur= in {header:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("{name} dur in {header:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn server_timing_only_where_the_route_asks() {
    let origin = Origin::start();
    let proxy = Proxy::start(&format!(
        "{}[[routes]]\nname = \"timed\"\nserver_timing = true\nmatch = {{ path_prefix = \"/timed/\" }}\n\n{}",
        origin.upstream_toml("app"),
        route("plain", "app", "/plain/")
    ));
    let resp = send("GET", proxy.url("/timed/x?delay_ms=60")).await;
    assert_eq!(resp.status(), 200);
    let values: Vec<&str> = resp
        .headers()
        .get_all("server-timing")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(values.len(), 1, "{values:?}");
    let upstream = timing(values[0], "upstream");
    let proxy_dur = timing(values[0], "proxy");
    assert!(
        upstream >= 60.0,
        "upstream;dur={upstream} < the origin's 60 ms"
    );
    assert!(upstream < 5000.0, "upstream;dur={upstream}");
    assert!((0.0..1000.0).contains(&proxy_dur), "proxy;dur={proxy_dur}");

    let resp = send("GET", proxy.url("/plain/x?delay_ms=10")).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("server-timing").is_none(),
        "{:?}",
        resp.headers()
    );
}
