//! The shared cache tier: several real Outriders (in-process, each with its own store,
//! client and subscription) in front of one scripted origin and one real `redis-server`.
//!
//! - `replication`: a response fetched through one replica is a hit on another; `Vary`
//!   variants; fleet-wide coalescing; warm starts.
//! - `purges`: every selector sent to one replica leaves Redis and the other replicas; a
//!   replica cut off from the purge channel does not serve a purged entry once it is back.
//! - `outages`: Redis killed under load, Redis stalled.

mod cut;
mod outages;
mod purges;
mod replication;

use std::time::Duration;

use serde_json::Value;

use crate::cache::helpers::{poll, route, Backend};
use crate::support::got::Got;
use crate::support::redis_server::RedisServer;
use crate::support::{client, Proxy};

/// The name clients use for the service, on every replica.
pub(crate) const HOST: &str = "shop.test";

/// One replica: an in-process Outrider whose `[cache.shared]` points at `redis_url`.
pub(crate) struct Replica {
    pub(crate) proxy: Proxy,
}

/// The `[cache.shared]` table for `url`, with `extra` lines.
pub(crate) fn shared_table(url: &str, extra: &str) -> String {
    format!("[cache.shared]\nurl = \"{url}\"\nkey_prefix = \"t:\"\ntimeout = \"200ms\"\n{extra}\n")
}

/// The default route: caches, tags from `X-Tags`.
pub(crate) fn caching_route() -> String {
    route("c", "/", "enabled = true, tag_header = \"X-Tags\"", "")
}

impl Replica {
    /// A replica of `backend` using the Redis at `url`; `shared_extra` adds lines to
    /// `[cache.shared]`, `tail` adds tables after it.
    pub(crate) fn start(backend: &Backend, url: &str, shared_extra: &str, tail: &str) -> Replica {
        let body = format!(
            "[upstreams.app]\nendpoints = [\"{}\"]\n\n[cache]\n\n{}\n{tail}\n{}",
            backend.addr(),
            shared_table(url, shared_extra),
            caching_route()
        );
        Replica {
            proxy: Proxy::start(&body),
        }
    }

    /// GET `path` with `Host: shop.test` (every replica serves one name, as behind a
    /// Service), plus `headers`.
    pub(crate) async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Got {
        let mut all = vec![("host", HOST)];
        all.extend_from_slice(headers);
        Got::fetch(reqwest::Method::GET, self.proxy.url(path), &all, None).await
    }

    pub(crate) async fn cache(&self) -> Value {
        client()
            .get(self.proxy.admin_url("/cache"))
            .send()
            .await
            .expect("GET /cache")
            .json()
            .await
            .expect("GET /cache JSON")
    }

    pub(crate) async fn purge(&self, body: &str) -> Value {
        let resp = client()
            .post(self.proxy.admin_url("/cache/purge"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("POST /cache/purge");
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("purge answer")
    }

    pub(crate) async fn metrics(&self) -> String {
        client()
            .get(self.proxy.admin_url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .unwrap()
    }

    /// Waits until the replica's purge subscription is up (purges sent before it would not
    /// reach it, which the tests are not about).
    pub(crate) async fn wait_subscribed(&self) {
        poll(
            "the purge subscription",
            Duration::from_secs(10),
            || async { self.cache().await["shared"]["subscribed"] == Value::Bool(true) },
        )
        .await;
    }

    pub(crate) async fn wait_purges_received(&self, n: u64) {
        poll(
            &format!("{n} purges received"),
            Duration::from_secs(10),
            || async { self.cache().await["shared"]["purges_received"].as_u64() >= Some(n) },
        )
        .await;
    }
}

/// Waits until Redis holds `n` objects under the tests' prefix (writes are asynchronous).
pub(crate) async fn wait_shared_objects(redis: &RedisServer, n: usize) {
    poll(
        &format!("{n} objects in Redis"),
        Duration::from_secs(10),
        || async { redis.objects("t:").len() == n },
    )
    .await;
}
