//! `/stats` lists every upstream with its breaker state, as `/breakers` reports it: also an
//! upstream no route uses and one that has seen no request yet.

use serde_json::Value;

use crate::metrics::requests::route;
use crate::support::{client, Origin, Proxy};

async fn get_json(proxy: &Proxy, path: &str) -> Value {
    client()
        .get(proxy.admin_url(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_list_every_upstream_with_its_breaker_state() {
    let origin = Origin::start();
    let proxy = Proxy::start(&format!(
        "{}{}{}",
        origin.upstream_toml("app"),
        origin.upstream_toml("spare"),
        route("api", "app", "/api/")
    ));
    let stats = get_json(&proxy, "/stats").await;
    let breakers = get_json(&proxy, "/breakers").await;
    for name in ["app", "spare"] {
        let state = &breakers["upstreams"][name]["state"];
        assert!(state.is_string(), "/breakers lacks {name}: {breakers}");
        assert_eq!(
            &stats["upstreams"][name]["breaker"], state,
            "{name}: /stats {stats} vs /breakers {breakers}"
        );
    }
}
