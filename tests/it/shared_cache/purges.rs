//! A purge sent to one replica reaches Redis and every other replica.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::cut::Relay;
use super::{wait_shared_objects, Replica, HOST};
use crate::cache::helpers::{is_hit, ok, poll, Backend};
use crate::support::redis_server::RedisServer;

/// Fills `paths` through A, reads them through B (so B holds them locally) once A's shared
/// copies are in (A writes them in the background).
async fn spread(redis: &RedisServer, a: &Replica, b: &Replica, paths: &[&str]) {
    for replica in [a, b] {
        replica.wait_up().await;
    }
    for path in paths {
        a.get(path, &[]).await;
    }
    poll("A's shared copies", Duration::from_secs(10), || async {
        paths
            .iter()
            .all(|path| redis.query::<bool>(&["EXISTS", &format!("t:u:http://{HOST}{path}")]))
    })
    .await;
    for path in paths {
        let got = b.get(path, &[]).await;
        assert!(
            is_hit(got.cache_status()),
            "{path} on B: {}",
            got.cache_status()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_selector_sent_to_one_replica_purges_redis_and_the_others() {
    every_selector_purges_redis_and_the_others(&RedisServer::start()).await;
}

/// The test above, on `redis` (also run on Valkey by `super::valkey`).
pub(super) async fn every_selector_purges_redis_and_the_others(redis: &RedisServer) {
    let backend = Backend::start();
    for path in ["/k1", "/keep", "/pre/a", "/pre/b", "/t1", "/t2"] {
        let reply = ok(&format!("body of {path}"), "max-age=300");
        let reply = match path {
            "/t1" | "/t2" => reply.header("X-Tags", "group other"),
            _ => reply,
        };
        backend.reply(path, reply);
    }
    let a = Replica::start(&backend, &redis.url(), "", "");
    let b = Replica::start(&backend, &redis.url(), "", "");
    b.wait_subscribed().await;

    spread(
        redis,
        &a,
        &b,
        &["/k1", "/keep", "/pre/a", "/pre/b", "/t1", "/t2"],
    )
    .await;
    wait_shared_objects(redis, 6).await;

    // (body, paths it selects, objects purged in A's store, objects purged in Redis). Each
    // purged path is read again through B afterwards, which stores it again in Redis but not
    // in A's store: by the time of `all`, A holds only /keep and Redis holds all six.
    let cases: [(String, &[&str], usize, usize); 4] = [
        (format!(r#"{{"key": "http://{HOST}/k1"}}"#), &["/k1"], 1, 1),
        (
            r#"{"prefix": "/pre/"}"#.to_string(),
            &["/pre/a", "/pre/b"],
            2,
            2,
        ),
        (r#"{"tag": "group"}"#.to_string(), &["/t1", "/t2"], 2, 2),
        (
            r#"{"all": true}"#.to_string(),
            &["/keep", "/k1", "/t1"],
            1,
            6,
        ),
    ];
    let mut in_redis = 6;
    for (received, (body, purged, local, shared)) in cases.into_iter().enumerate() {
        let answer = a.purge(&body).await;
        assert_eq!(answer["local"], local, "{body}: {answer}");
        assert_eq!(answer["shared"], shared, "{body}: {answer}");
        in_redis -= shared;
        assert_eq!(redis.objects("t:").len(), in_redis, "{body}: left in Redis");
        b.wait_purges_received(received as u64 + 1).await;
        for path in purged {
            let before = backend.count(path);
            let got = b.get(path, &[]).await;
            assert!(
                !is_hit(got.cache_status()),
                "{body}: {path} still served by B"
            );
            assert_eq!(backend.count(path), before + 1, "{body}: {path}");
        }
        in_redis += purged.len();
        wait_shared_objects(redis, in_redis).await;
    }
    let report = b.cache().await;
    assert_eq!(report["shared"]["purges_received"], Value::from(4u64));
    // B lists the purges it received, newest first, as sent to A.
    let listed: Vec<(String, String)> = report["recent_purges"]
        .as_array()
        .unwrap_or_else(|| panic!("no recent_purges: {report}"))
        .iter()
        .map(|p| (p["selector"].to_string(), p["from"].to_string()))
        .collect();
    let replica = "\"replica\"".to_string();
    assert_eq!(
        listed,
        vec![
            (r#"{"all":true}"#.to_string(), replica.clone()),
            (r#"{"tag":"group"}"#.to_string(), replica.clone()),
            (r#"{"prefix":"/pre/"}"#.to_string(), replica.clone()),
            (format!(r#"{{"key":"http://{HOST}/k1"}}"#), replica),
        ],
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_cut_off_from_purges_does_not_serve_a_purged_entry_once_back() {
    let redis = RedisServer::start();
    let backend = Backend::start();
    backend.reply("/c", ok("old content", "max-age=300"));
    let relay = Relay::to(([127, 0, 0, 1], redis.port).into());
    let a = Replica::start(&backend, &redis.url(), "", "");
    let b = Replica::start(&backend, &relay.url(), "", "");
    b.wait_subscribed().await;
    spread(&redis, &a, &b, &["/c"]).await;
    wait_shared_objects(&redis, 1).await;

    relay.cut();
    poll(
        "B to lose its subscription",
        Duration::from_secs(10),
        || async { b.cache().await["shared"]["subscribed"] == Value::Bool(false) },
    )
    .await;
    backend.reply("/c", ok("new content", "max-age=300"));
    let answer = a.purge(&format!(r#"{{"key": "http://{HOST}/c"}}"#)).await;
    assert_eq!(answer["shared"], 1, "{answer}");
    let epoch: u64 = redis.query(&["GET", "t:epoch"]);

    relay.restore();
    poll(
        "B to account for the purge epoch",
        Duration::from_secs(15),
        || async { b.cache().await["shared"]["purge_epoch"].as_u64() == Some(epoch) },
    )
    .await;
    let got = b.get("/c", &[]).await;
    assert_eq!(got.body, b"new content", "B served the purged entry");
    assert_eq!(b.cache().await["shared"]["purges_received"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsafe_method_through_one_replica_invalidates_the_shared_copy_everywhere() {
    let redis = RedisServer::start();
    let backend = Backend::start();
    backend.reply("/inv", ok("v1", "max-age=300"));
    let a = Replica::start(&backend, &redis.url(), "", "");
    let b = Replica::start(&backend, &redis.url(), "", "");
    b.wait_subscribed().await;
    spread(&redis, &a, &b, &["/inv"]).await;
    wait_shared_objects(&redis, 1).await;

    backend.reply("/inv", ok("v2", "max-age=300"));
    let posted = crate::support::got::Got::fetch(
        reqwest::Method::POST,
        a.url("/inv"),
        &[("host", HOST)],
        Some(b"change".to_vec()),
    )
    .await;
    assert_eq!(posted.status, 200);
    wait_shared_objects(&redis, 0).await;
    b.wait_purges_received(1).await;
    for (name, replica) in [("A", &a), ("B", &b)] {
        let got = replica.get("/inv", &[]).await;
        assert_eq!(got.body, b"v2", "{name} served the invalidated response");
    }
}

/// The prefix indexes have no expiry of their own: the entries of URLs whose objects expired
/// are trimmed in the background, and those of live objects kept.
#[tokio::test(flavor = "multi_thread")]
async fn index_entries_of_expired_objects_are_trimmed() {
    let redis = RedisServer::start();
    let backend = Backend::start();
    backend.reply("/short", ok("short", "max-age=2").header("X-Tags", "brief"));
    backend.reply(
        "/long",
        ok("long", "max-age=300").header("X-Tags", "lasting"),
    );
    let a = Replica::start(&backend, &redis.url(), "", "");
    a.wait_subscribed().await;
    a.get("/long", &[]).await;
    a.get("/short", &[]).await;
    // /short may be gone from Redis already (its Date has whole seconds, and a busy machine
    // writes late): its index entries stay until a trim step finds it gone.
    poll("both URLs indexed", Duration::from_secs(10), || async {
        redis.query::<usize>(&["ZCARD", "t:urls"]) == 2
            && redis.query::<usize>(&["SCARD", "t:tags"]) == 2
    })
    .await;

    poll(
        "the expired URL's index entries to go",
        Duration::from_secs(30),
        || async {
            redis.query::<usize>(&["ZCARD", "t:urls"]) == 1
                && redis.query::<usize>(&["ZCARD", "t:paths"]) == 1
                && redis.query::<usize>(&["SCARD", "t:tags"]) == 1
        },
    )
    .await;
    let left: Vec<String> = redis.query(&["ZRANGE", "t:urls", "0", "-1"]);
    assert_eq!(left, vec![format!("http://{HOST}/long")]);
    let tags: Vec<String> = redis.query(&["SMEMBERS", "t:tags"]);
    assert_eq!(tags, vec!["lasting".to_string()]);
}

/// Held requests wait at most this long for the test to release them.
const HOLD_AT_MOST: Duration = Duration::from_secs(30);

/// A gate the origin holds a response at until the test opens it.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn wait(&self) {
        let (open, opened) = &*self.0;
        let guard = open.lock().unwrap();
        let _open = opened
            .wait_timeout_while(guard, HOLD_AT_MOST, |open| !*open)
            .unwrap();
    }

    fn open(&self) {
        let (open, opened) = &*self.0;
        *open.lock().unwrap() = true;
        opened.notify_all();
    }
}

/// A response on its way from the origin while a purge that selects it runs (sent to the
/// other replica or to the one fetching, by each selector) is served to the request that
/// asked for it, but stored neither locally nor in Redis: it is the content the purge was
/// about.
#[tokio::test(flavor = "multi_thread")]
async fn a_fill_in_flight_during_a_purge_does_not_bring_the_purged_content_back() {
    let redis = RedisServer::start();
    let backend = Backend::start();
    let a = Replica::start(&backend, &redis.url(), "", "");
    let b = Replica::start(&backend, &redis.url(), "", "");
    a.wait_subscribed().await;
    b.wait_subscribed().await;
    let index = |path: &str| format!("t:u:http://{HOST}{path}");

    // (selector, purged on B rather than on A, the request path).
    let cases = [
        (
            "key",
            true,
            format!(r#"{{"key": "http://{HOST}/race/key"}}"#),
        ),
        ("tag", true, r#"{"tag": "race-tag"}"#.to_string()),
        ("prefix", false, r#"{"prefix": "/race/prefix"}"#.to_string()),
        ("all", false, r#"{"all": true}"#.to_string()),
    ];
    let mut received_by_a = 0;
    for (kind, on_b, purge) in cases {
        let path = format!("/race/{kind}");
        let sentinel = format!("/sentinel/{kind}");
        let tag = format!("race-{kind}");
        // The first request for the path is held at the origin until the gate opens.
        let gate = Gate::default();
        let held = gate.clone();
        let asked = Arc::new(AtomicUsize::new(0));
        backend.on(&path, move |_| {
            if asked.fetch_add(1, Ordering::SeqCst) == 0 {
                held.wait();
                ok("old content", "max-age=300").header("X-Tags", &tag)
            } else {
                ok("new content", "max-age=300").header("X-Tags", &tag)
            }
        });
        backend.reply(&sentinel, ok("sentinel", "max-age=300"));

        let in_flight = tokio::spawn({
            let url = a.url(&path);
            async move {
                crate::support::got::Got::fetch(reqwest::Method::GET, url, &[("host", HOST)], None)
                    .await
            }
        });
        poll(
            &format!("{kind}: the origin to hold {path}"),
            Duration::from_secs(10),
            || async { backend.count(&path) == 1 },
        )
        .await;
        if on_b {
            b.purge(&purge).await;
            received_by_a += 1;
            a.wait_purges_received(received_by_a).await;
        } else {
            a.purge(&purge).await;
        }
        gate.open();
        let first = in_flight.await.unwrap();
        assert_eq!(first.body, b"old content", "{kind}: the request that asked");

        // A's write of the path, had it been made, was spawned before the sentinel's: once
        // the sentinel is in Redis, a resurrected response would be there too.
        a.get(&sentinel, &[]).await;
        poll(
            &format!("{kind}: the sentinel in Redis"),
            Duration::from_secs(10),
            || async { redis.query::<bool>(&["EXISTS", &index(&sentinel)]) },
        )
        .await;
        assert!(
            !redis.query::<bool>(&["EXISTS", &index(&path)]),
            "{kind}: the purged response is back in Redis"
        );
        for (name, replica) in [("B", &b), ("A", &a)] {
            let got = replica.get(&path, &[]).await;
            assert_eq!(
                got.body, b"new content",
                "{kind}: {name} served the purged response"
            );
        }
    }
}
