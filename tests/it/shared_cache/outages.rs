//! Redis down or slow: requests keep being served, within `timeout`.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::Replica;
use crate::cache::helpers::{ok, poll, Backend};
use crate::support::metric;
use crate::support::redis_server::RedisServer;

#[tokio::test(flavor = "multi_thread")]
async fn killing_redis_under_load_fails_no_request() {
    let mut redis = RedisServer::start();
    let backend = Backend::start();
    for i in 0..20 {
        backend.reply(&format!("/l{i}"), ok(&format!("load {i}"), "max-age=1"));
    }
    let a = Replica::start(&backend, &redis.url(), "fill_lock = \"1s\"", "");
    let b = Replica::start(&backend, &redis.url(), "fill_lock = \"1s\"", "");
    a.wait_subscribed().await;

    let load = |replica: &'static Replica, worker: usize| async move {
        let mut statuses = Vec::new();
        for n in 0..60 {
            let path = format!("/l{}", (worker * 7 + n) % 20);
            let got = replica.get(&path, &[]).await;
            statuses.push((path, got.status, got.body.len()));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        statuses
    };
    let (a, b): (&'static Replica, &'static Replica) =
        (Box::leak(Box::new(a)), Box::leak(Box::new(b)));
    let workers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(load(if w % 2 == 0 { a } else { b }, w)))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    for worker in workers {
        for (path, status, len) in worker.await.unwrap() {
            assert_eq!(status, 200, "{path}");
            assert!(len > 0, "{path}");
        }
    }
    poll(
        "the tier to report down",
        Duration::from_secs(10),
        || async { a.cache().await["shared"]["up"] == Value::Bool(false) },
    )
    .await;
    let metrics = a.metrics().await;
    assert_eq!(metric(&metrics, "outrider_cache_shared_up", &[]), Some(0.0));

    // Back: found again in the background, by the time the breaker's open period (doubled
    // by each failed probe, at most 30 s) is over; no request needs to try it.
    redis.restart();
    poll(
        "the tier to report up again",
        Duration::from_secs(45),
        || async { a.cache().await["shared"]["up"] == Value::Bool(true) },
    )
    .await;
}

/// Whether Redis is stalled: a PING on a fresh connection gets no answer in 50 ms.
fn stalled(redis: &RedisServer) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", redis.port)) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let _ = s.write_all(b"PING\r\n");
    let mut buf = [0u8; 16];
    s.read(&mut buf).is_err()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_redis_adds_at_most_the_timeout() {
    let redis = RedisServer::start();
    let backend = Backend::start();
    for i in 0..3 {
        backend.reply(&format!("/s{i}"), ok("fast origin", "max-age=60"));
    }
    let a = Replica::start(&backend, &redis.url(), "fill_lock = \"2s\"", "");
    a.wait_subscribed().await;
    // A request before the stall: the connection is up.
    a.get("/s0", &[]).await;

    let url = redis.url();
    let sleeper = std::thread::spawn(move || {
        let client = redis::Client::open(url).unwrap();
        let mut c = client.get_connection().unwrap();
        let _: redis::RedisResult<()> = redis::cmd("DEBUG").arg("SLEEP").arg(4).query(&mut c);
    });
    crate::support::wait_until("redis to stall", Duration::from_secs(5), || stalled(&redis));

    // timeout = 200ms; the origin answers at once; Redis sleeps 4 s.
    for path in ["/s1", "/s2"] {
        let started = Instant::now();
        let got = a.get(path, &[]).await;
        let took = started.elapsed();
        assert_eq!(got.status, 200, "{path}");
        assert_eq!(got.body, b"fast origin");
        assert!(
            took < Duration::from_millis(1500),
            "{path} took {took:?} with a 200 ms timeout and a 4 s stall"
        );
    }
    sleeper.join().unwrap();
    let metrics = a.metrics().await;
    let timeouts = metric(
        &metrics,
        "outrider_cache_shared_requests_total",
        &[("op", "get"), ("result", "timeout")],
    );
    assert!(timeouts >= Some(1.0), "{metrics}");
}
