//! What runs beside the load: reloads, purges, admin reads, faults, samples.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::content::{origin_handler, Bodies};
use crate::policies::{write_renamed, Variant};
use crate::proxy_process::{probe, Probe};
use crate::support::Origin;
use crate::{support, HOT_KEYS, TAGS};

// === reloads, purges, admin reads, faults, samples ===

#[derive(Default, Debug)]
pub(crate) struct Reloads {
    pub(crate) applied: u64,
    pub(crate) rejected: u64,
    pub(crate) unexpected: Vec<String>,
    pub(crate) took_ms: Vec<f64>,
}

/// One reload per tick, until `until`: B, A, B, A, invalid, B, A, ...; each written to the
/// file (the watcher sees it) and then applied with `POST /reload`, whose answer is checked.
pub(crate) async fn reload_loop(
    admin: SocketAddr,
    config: PathBuf,
    texts: [String; 3],
    every: Duration,
    until: Instant,
) -> Reloads {
    let http = support::client();
    let url = format!("http://{admin}/reload");
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut r = Reloads::default();
    for i in 0u64.. {
        tick.tick().await;
        if Instant::now() >= until {
            break;
        }
        let variant = if i % 5 == 4 {
            Variant::Invalid
        } else if (i - i / 5) % 2 == 0 {
            Variant::B
        } else {
            Variant::A
        };
        let text = match variant {
            Variant::A => &texts[0],
            Variant::B => &texts[1],
            Variant::Invalid => &texts[2],
        };
        write_renamed(&config, text);
        let started = Instant::now();
        let answer = match http.post(&url).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let v: Value = resp.json().await.unwrap_or(Value::Null);
                Ok((status, v))
            }
            Err(e) => Err(e.to_string()),
        };
        r.took_ms.push(started.elapsed().as_secs_f64() * 1e3);
        match (variant, answer) {
            (Variant::Invalid, Ok((422, v))) if v["result"] == "rejected" => r.rejected += 1,
            (Variant::A | Variant::B, Ok((200, v))) if v["result"] == "applied" => r.applied += 1,
            (variant, answer) => r.unexpected.push(format!("{variant:?}: {answer:?}")),
        }
    }
    r
}

#[derive(Default, Debug)]
pub(crate) struct Purges {
    pub(crate) ok: u64,
    pub(crate) objects: u64,
    pub(crate) failed: Vec<String>,
}

pub(crate) async fn purge_loop(
    admin: SocketAddr,
    data: SocketAddr,
    every: Duration,
    until: Instant,
) -> Purges {
    let http = support::client();
    let url = format!("http://{admin}/cache/purge");
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut p = Purges::default();
    for i in 0u64.. {
        tick.tick().await;
        if Instant::now() >= until {
            break;
        }
        let body = match i % 5 {
            0 => json!({ "tag": format!("t{}", i % TAGS) }),
            1 => json!({ "prefix": format!("/static/{}", i % 10) }),
            2 => json!({ "key": format!("/static/{}.css", i % HOT_KEYS) }),
            3 => json!({ "key": format!("http://{data}/api/items/{}?page=1", i % HOT_KEYS) }),
            _ if (i / 5) % 3 == 2 => json!({ "all": true }),
            _ => json!({ "tag": "api" }),
        };
        match http.post(&url).json(&body).send().await {
            Ok(resp) if resp.status() == 200 => {
                let v: Value = resp.json().await.unwrap_or(Value::Null);
                match v["purged"].as_u64() {
                    Some(n) => {
                        p.ok += 1;
                        p.objects += n;
                    }
                    None => p.failed.push(format!("{body}: {v}")),
                }
            }
            Ok(resp) => p.failed.push(format!("{body}: {}", resp.status())),
            Err(e) => p.failed.push(format!("{body}: {e}")),
        }
    }
    p
}

/// Reads every admin endpoint once per tick; returns (reads, failures).
pub(crate) async fn admin_loop(
    admin: SocketAddr,
    every: Duration,
    until: Instant,
) -> (u64, Vec<String>) {
    let http = support::client();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut reads, mut failed) = (0, Vec::new());
    loop {
        tick.tick().await;
        if Instant::now() >= until {
            break;
        }
        for path in [
            "/metrics",
            "/stats",
            "/cache",
            "/breakers",
            "/config",
            "/healthz",
            "/readyz",
        ] {
            reads += 1;
            match http.get(format!("http://{admin}{path}")).send().await {
                Ok(resp) if resp.status() == 200 => {
                    let _ = resp.bytes().await;
                }
                Ok(resp) => failed.push(format!("{path}: {}", resp.status())),
                Err(e) => failed.push(format!("{path}: {e}")),
            }
        }
    }
    (reads, failed)
}

/// Kills the backend `down` before the end of each fault period and brings it back on the same
/// address at the end of it; returns the running origin and how many outages there were.
pub(crate) fn fault_loop(
    origin: Origin,
    bodies: Arc<Bodies>,
    start: Instant,
    period: Duration,
    down: Duration,
    until: Instant,
) -> (Origin, u32) {
    let addr = origin.addr;
    let mut origin = Some(origin);
    let mut outages = 0;
    for n in 1u32.. {
        let kill_at = start + period * n - down;
        if kill_at >= until {
            break;
        }
        sleep_until(kill_at);
        drop(origin.take());
        sleep_until(kill_at + down);
        // The port is ours again as soon as nothing holds it; wait for that rather than fail.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpListener::bind(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "{addr} stayed taken after the kill"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        origin = Some(Origin::with_handler_at(
            addr,
            origin_handler(bodies.clone()),
        ));
        outages += 1;
    }
    (origin.expect("the origin runs between outages"), outages)
}

fn sleep_until(at: Instant) {
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
}

pub(crate) struct Sample {
    pub(crate) at: Duration,
    pub(crate) probe: Probe,
    pub(crate) requests: u64,
}

/// RSS, fds and the request count once a second, until `until`.
pub(crate) async fn sample_loop(
    pid: u32,
    total: Arc<AtomicU64>,
    start: Instant,
    until: Instant,
) -> Vec<Sample> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut samples = Vec::new();
    loop {
        tick.tick().await;
        let now = Instant::now();
        if let Some(probe) = probe(pid) {
            samples.push(Sample {
                at: now - start,
                probe,
                requests: total.load(Ordering::Relaxed),
            });
        }
        if now >= until {
            break;
        }
    }
    samples
}
