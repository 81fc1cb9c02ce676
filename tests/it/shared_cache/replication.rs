//! What one replica fetches, the others serve.

use std::time::{Duration, Instant};

use super::{wait_shared_objects, Replica, HOST};
use crate::cache::helpers::{is_hit, not_modified, ok, poll, req_header, until_stale, Backend};
use crate::support::metric;
use crate::support::redis_server::RedisServer;
use crate::support::Reply;

#[tokio::test(flavor = "multi_thread")]
async fn a_response_fetched_through_one_replica_is_a_hit_on_another() {
    fetched_through_one_replica_hit_on_another(&RedisServer::start()).await;
}

/// The test above, on `redis` (also run on Valkey by `super::valkey`).
pub(super) async fn fetched_through_one_replica_hit_on_another(redis: &RedisServer) {
    let backend = Backend::start();
    backend.reply("/a", ok("shared body", "max-age=60"));
    let a = Replica::start(&backend, &redis.url(), "", "");
    let b = Replica::start(&backend, &redis.url(), "", "");
    for replica in [&a, &b] {
        replica.wait_up().await;
    }

    let first = a.get("/a", &[]).await;
    assert_eq!(first.status, 200);
    assert!(!is_hit(first.cache_status()), "{}", first.cache_status());
    wait_shared_objects(redis, 1).await;

    let second = b.get("/a", &[]).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body, b"shared body");
    assert!(is_hit(second.cache_status()), "{}", second.cache_status());
    assert_eq!(backend.count("/a"), 1, "the origin was asked once");
    // Freshness comes from the stored times: the copy is as old on B as on A.
    let age: u64 = second.header("age").unwrap_or("0").parse().unwrap();
    assert!(age < 30, "age {age}");

    // B keeps it locally: a second read does not ask Redis.
    let third = b.get("/a", &[]).await;
    assert!(is_hit(third.cache_status()));
    let metrics = b.metrics().await;
    let hits = metric(
        &metrics,
        "outrider_cache_shared_requests_total",
        &[("op", "get"), ("result", "hit")],
    );
    assert_eq!(hits, Some(1.0), "{metrics}");
    assert_eq!(
        metric(&metrics, "outrider_cache_shared_up", &[]),
        Some(1.0),
        "{metrics}"
    );
    let report = b.cache().await;
    assert_eq!(report["shared"]["up"], true, "{report}");
    assert_eq!(report["shared"]["gets"]["hit"], 1, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn vary_variants_are_shared() {
    let redis = RedisServer::start();
    let backend = Backend::start();
    backend.on("/v", |req| {
        let lang = req_header(req, "accept-language")
            .unwrap_or("none")
            .to_string();
        ok(&format!("lang={lang}"), "max-age=60").header("Vary", "Accept-Language")
    });
    let a = Replica::start(&backend, &redis.url(), "", "");
    let b = Replica::start(&backend, &redis.url(), "", "");
    for replica in [&a, &b] {
        replica.wait_up().await;
    }

    for lang in ["en", "de"] {
        let got = a.get("/v", &[("accept-language", lang)]).await;
        assert_eq!(got.body, format!("lang={lang}").as_bytes());
    }
    assert_eq!(backend.count("/v"), 2);
    wait_shared_objects(&redis, 2).await;

    for lang in ["de", "en"] {
        let got = b.get("/v", &[("accept-language", lang)]).await;
        assert_eq!(got.body, format!("lang={lang}").as_bytes(), "{lang}");
        assert!(is_hit(got.cache_status()), "{lang}: {}", got.cache_status());
    }
    assert_eq!(backend.count("/v"), 2, "both variants came from Redis");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_misses_across_replicas_make_one_origin_request() {
    let redis = RedisServer::start();
    let backend = Backend::start();
    backend.reply(
        "/slow",
        Reply {
            delay: Duration::from_millis(700),
            ..ok("filled once", "max-age=60")
        },
    );
    let a = Replica::start(&backend, &redis.url(), "fill_lock = \"5s\"", "");
    let b = Replica::start(&backend, &redis.url(), "fill_lock = \"5s\"", "");
    for replica in [&a, &b] {
        replica.wait_up().await;
    }

    let mut requests = Vec::new();
    for i in 0..8 {
        let replica = if i % 2 == 0 { &a } else { &b };
        requests.push(replica.get("/slow", &[]));
    }
    let answers = futures_util::future::join_all(requests).await;
    for got in &answers {
        assert_eq!(got.status, 200);
        assert_eq!(got.body, b"filled once");
    }
    assert_eq!(
        backend.count("/slow"),
        1,
        "one origin request for the fleet"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn warm_urls_are_hits_on_the_first_request_and_fill_from_the_shared_tier() {
    let redis = RedisServer::start();
    let backend = Backend::start();
    backend.reply("/w1", ok("warm one", "max-age=60"));
    backend.reply("/w2", ok("warm two", "max-age=60"));
    let a = Replica::start(&backend, &redis.url(), "", "");
    // A filled /w1 into Redis before B starts: B warms it from there.
    a.get("/w1", &[]).await;
    wait_shared_objects(&redis, 1).await;

    let warm = format!(
        "[cache.warm]\nurls = [\"http://{HOST}/w1\", \"http://{HOST}/w2\"]\nconcurrency = 2\n"
    );
    let b = Replica::start(&backend, &redis.url(), "", &warm);
    poll("B's warm fetches", Duration::from_secs(10), || async {
        let metrics = b.metrics().await;
        metric(
            &metrics,
            "outrider_cache_warm_fetches_total",
            &[("result", "ok")],
        ) == Some(2.0)
    })
    .await;
    assert_eq!(backend.count("/w1"), 1, "B filled /w1 from Redis");
    assert_eq!(backend.count("/w2"), 1, "B fetched /w2 from the origin");
    for (path, body) in [("/w1", "warm one"), ("/w2", "warm two")] {
        let got = b.get(path, &[]).await;
        assert_eq!(got.body, body.as_bytes());
        assert!(is_hit(got.cache_status()), "{path}: {}", got.cache_status());
    }
}

/// A stale entry that one replica revalidates with a 304 is fresh again in Redis: another
/// replica, cold, serves it as a fresh hit without asking the origin.
#[tokio::test(flavor = "multi_thread")]
async fn a_304_revalidation_refreshes_the_shared_copy() {
    let redis = RedisServer::start();
    let backend = Backend::start();
    backend.on("/rv", |req| {
        if req_header(req, "if-none-match") == Some("\"v1\"") {
            not_modified()
                .header("ETag", "\"v1\"")
                .header("Cache-Control", "max-age=300")
        } else {
            ok("revalidated body", "max-age=1").header("ETag", "\"v1\"")
        }
    });
    let a = Replica::start(&backend, &redis.url(), "", "");
    let b = Replica::start(&backend, &redis.url(), "", "");

    let first = a.get("/rv", &[]).await;
    let received = Instant::now();
    assert_eq!(first.body, b"revalidated body");
    until_stale(received, 1).await;

    let revalidated = a.get("/rv", &[]).await;
    assert_eq!(revalidated.body, b"revalidated body");
    assert_eq!(backend.count("/rv"), 2);
    let conditional = backend.last("/rv");
    assert_eq!(req_header(&conditional, "if-none-match"), Some("\"v1\""));
    // The shared copy comes back with the 304's freshness: a TTL of minutes, not the 1 s the
    // first response allowed (which has run out by now).
    poll(
        "the refreshed copy in Redis",
        Duration::from_secs(10),
        || async {
            redis.objects("t:").first().is_some_and(|key| {
                redis.query::<i64>(&["PTTL", key]) > Duration::from_secs(60).as_millis() as i64
            })
        },
    )
    .await;

    let got = b.get("/rv", &[]).await;
    assert_eq!(got.body, b"revalidated body");
    assert!(is_hit(got.cache_status()), "{}", got.cache_status());
    assert!(
        !got.cache_status().contains("stale"),
        "B served it stale: {}",
        got.cache_status()
    );
    assert_eq!(backend.count("/rv"), 2, "B did not ask the origin");
}
