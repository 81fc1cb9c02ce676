//! `rediss://`: replicas (the built binary, so that the trust store is each process's own, as
//! an operator sets it with `SSL_CERT_FILE`) and a Redis that accepts TLS only, with a
//! certificate for 127.0.0.1 signed by a CA made here.

use std::time::Duration;

use serde_json::Value;

use super::{wait_shared_objects, Replica};
use crate::cache::helpers::{is_hit, ok, poll, Backend};
use crate::support::metric;
use crate::support::redis_server::RedisServer;
use crate::support::test_ca::make_certs;

/// The names the server certificate is for: the replicas connect to 127.0.0.1.
const SERVER_NAMES: &str = "DNS:localhost,IP:127.0.0.1";

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_through_a_tls_only_redis_they_trust() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path(), "outrider test CA", SERVER_NAMES);
    let ca = certs.ca.clone();
    let redis = RedisServer::start_tls(certs);
    assert!(redis.url().starts_with("rediss://"), "{}", redis.url());
    // TLS only: the plain protocol on its port gets no answer.
    let plain = redis::Client::open(format!("redis://127.0.0.1:{}/0", redis.port))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
    assert!(plain.is_err(), "plain PING answered: {plain:?}");

    let backend = Backend::start();
    backend.reply("/t", ok("over tls", "max-age=60"));
    let trust = [("SSL_CERT_FILE", ca.as_os_str())];
    let a = Replica::spawn(&backend, &redis.url(), &trust);
    let b = Replica::spawn(&backend, &redis.url(), &trust);
    for replica in [&a, &b] {
        replica.wait_subscribed().await;
        replica.wait_up().await;
    }

    let first = a.get("/t", &[]).await;
    assert_eq!(first.status, 200);
    assert!(!is_hit(first.cache_status()), "{}", first.cache_status());
    wait_shared_objects(&redis, 1).await;

    let second = b.get("/t", &[]).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body, b"over tls");
    assert!(is_hit(second.cache_status()), "{}", second.cache_status());
    assert_eq!(backend.count("/t"), 1, "the origin was asked once");
    let metrics = b.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "outrider_cache_shared_requests_total",
            &[("op", "get"), ("result", "hit")]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "outrider_cache_shared_up", &[]),
        Some(1.0),
        "{metrics}"
    );
    let log = b.log();
    assert!(!log.contains("shared cache tier: down"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_certificate_the_trust_store_rejects_is_the_tier_down() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path(), "outrider test CA", SERVER_NAMES);
    let redis = RedisServer::start_tls(certs);
    // The replica trusts a CA, but not the one that signed the server's certificate.
    let other = tempfile::tempdir().unwrap();
    let other_ca = make_certs(other.path(), "another CA", SERVER_NAMES).ca;

    let backend = Backend::start();
    backend.reply("/u", ok("from the origin", "max-age=60"));
    let replica = Replica::spawn(
        &backend,
        &redis.url(),
        &[("SSL_CERT_FILE", other_ca.as_os_str())],
    );
    let down_line = format!("shared cache tier: down ({}: ", redis.url());
    poll(
        "the log line saying the tier is down, and why",
        Duration::from_secs(15),
        || async { replica.log().contains(&down_line) },
    )
    .await;
    let log = replica.log();
    let line = log.lines().find(|l| l.contains(&down_line)).unwrap();
    assert!(line.contains("certificate"), "{line}");
    assert_eq!(log.matches("shared cache tier: down").count(), 1, "{log}");

    // Requests are served, from the origin, without Redis.
    for _ in 0..3 {
        let got = replica.get("/u", &[]).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, b"from the origin");
    }
    assert_eq!(backend.count("/u"), 1, "the local cache still serves");
    let metrics = replica.metrics().await;
    assert_eq!(
        metric(&metrics, "outrider_cache_shared_up", &[]),
        Some(0.0),
        "{metrics}"
    );
    for result in ["hit", "miss"] {
        let answered = metric(
            &metrics,
            "outrider_cache_shared_requests_total",
            &[("op", "get"), ("result", result)],
        );
        assert!(answered.unwrap_or(0.0) == 0.0, "{result}: {metrics}");
    }
    let report = replica.cache().await;
    assert_eq!(report["shared"]["up"], Value::Bool(false), "{report}");
    assert_eq!(
        report["shared"]["subscribed"],
        Value::Bool(false),
        "{report}"
    );
    assert!(redis.objects("t:").is_empty(), "nothing was written");
}
