//! The shared cache tier: several real Outriders (in-process, each with its own store,
//! client and subscription, or the built binary) in front of one scripted origin and one real
//! `redis-server` (`$OUTRIDER_TEST_REDIS_SERVER`: `valkey-server` runs them all on Valkey).
//!
//! - `replication`: a response fetched through one replica is a hit on another; `Vary`
//!   variants; fleet-wide coalescing; warm starts.
//! - `purges`: every selector sent to one replica leaves Redis and the other replicas; a
//!   replica cut off from the purge channel does not serve a purged entry once it is back.
//! - `outages`: Redis killed under load, Redis stalled.
//! - `tls`: `rediss://` to a TLS-only server, trusted through `SSL_CERT_FILE`; a certificate
//!   the trust store does not accept is the tier down.
//! - `valkey`: sharing and purges on `valkey-server`, whatever the default program is.

mod cut;
mod outages;
mod purges;
mod replication;
#[cfg(feature = "tls")]
mod tls;
mod valkey;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::cache::helpers::{poll, route, Backend};
use crate::support::got::Got;
use crate::support::redis_server::RedisServer;
use crate::support::{client, server_section, BinaryProxy, Proxy};

/// The name clients use for the service, on every replica.
pub(crate) const HOST: &str = "shop.test";

/// One replica: an Outrider whose `[cache.shared]` points at a Redis.
pub(crate) struct Replica {
    data: SocketAddr,
    admin: SocketAddr,
    running: Running,
}

/// Where a replica runs: in this process (each with its own store, client and subscription),
/// or as the built binary (its own environment: the trust store of `rediss://`).
/// Each holds what stops the replica when dropped.
enum Running {
    InProcess {
        _proxy: Proxy,
    },
    Binary {
        _process: BinaryProxy,
        /// What the process has written to its standard error so far.
        log: Arc<Mutex<String>>,
    },
}

/// The `[cache.shared]` table for `url`, with `extra` lines.
pub(crate) fn shared_table(url: &str, extra: &str) -> String {
    format!("[cache.shared]\nurl = \"{url}\"\nkey_prefix = \"t:\"\ntimeout = \"200ms\"\n{extra}\n")
}

/// A replica's conf (without `[server]`, `[admin]` and `[log]`): `backend` as the upstream,
/// `[cache.shared]` at `url` with `shared_extra`, then `tail` and [`caching_route`].
fn replica_conf(backend: &Backend, url: &str, shared_extra: &str, tail: &str) -> String {
    format!(
        "[upstreams.app]\nendpoints = [\"{}\"]\n\n[cache]\n\n{}\n{tail}\n{}",
        backend.addr(),
        shared_table(url, shared_extra),
        caching_route()
    )
}

/// The default route: caches, tags from `X-Tags`.
pub(crate) fn caching_route() -> String {
    route("c", "/", "enabled = true, tag_header = \"X-Tags\"", "")
}

impl Replica {
    /// A replica of `backend` using the Redis at `url`; `shared_extra` adds lines to
    /// `[cache.shared]`, `tail` adds tables after it.
    pub(crate) fn start(backend: &Backend, url: &str, shared_extra: &str, tail: &str) -> Replica {
        let proxy = Proxy::start(&replica_conf(backend, url, shared_extra, tail));
        Replica {
            data: proxy.addr,
            admin: proxy.admin,
            running: Running::InProcess { _proxy: proxy },
        }
    }

    /// A replica of `backend` using the Redis at `url`, as the built `outrider` binary with
    /// the environment variables `env` (as an operator would set them).
    pub(crate) fn spawn(backend: &Backend, url: &str, env: &[(&str, &OsStr)]) -> Replica {
        let mut proxy = BinaryProxy::spawn_with(
            |data, admin| {
                format!(
                    "{}{}",
                    server_section(data, admin),
                    replica_conf(backend, url, "", "")
                )
            },
            |command| {
                command.envs(env.iter().copied());
            },
        );
        let log = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = proxy.child.stderr.take() {
            let log = log.clone();
            // Until the process ends (the pipe closes).
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        Replica {
            data: proxy.addr,
            admin: proxy.admin,
            running: Running::Binary {
                _process: proxy,
                log,
            },
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.data)
    }

    pub(crate) fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// What a binary replica has logged so far.
    pub(crate) fn log(&self) -> String {
        match &self.running {
            Running::Binary { log, .. } => log.lock().unwrap().clone(),
            Running::InProcess { .. } => panic!("an in-process replica logs into the test process"),
        }
    }

    /// GET `path` with `Host: shop.test` (every replica serves one name, as behind a
    /// Service), plus `headers`.
    pub(crate) async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Got {
        let mut all = vec![("host", HOST)];
        all.extend_from_slice(headers);
        Got::fetch(reqwest::Method::GET, self.url(path), &all, None).await
    }

    pub(crate) async fn cache(&self) -> Value {
        client()
            .get(self.admin_url("/cache"))
            .send()
            .await
            .expect("GET /cache")
            .json()
            .await
            .expect("GET /cache JSON")
    }

    pub(crate) async fn purge(&self, body: &str) -> Value {
        let resp = client()
            .post(self.admin_url("/cache/purge"))
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
            .get(self.admin_url("/metrics"))
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

    /// Waits until the replica's background ping has gone through its shared connection
    /// (made on first use: over TLS, on a busy machine, the handshake can outlast `timeout`).
    pub(crate) async fn wait_up(&self) {
        poll(
            "the shared tier to be up",
            Duration::from_secs(10),
            || async { self.cache().await["shared"]["up"] == Value::Bool(true) },
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
