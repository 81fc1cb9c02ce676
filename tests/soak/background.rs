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

/// Kills the backend's first endpoint `down` before the end of each fault period and brings it
/// back on the same address at the end of it (the flapping endpoint is down then too, see
/// [`flap_loop`]: a whole-backend outage); returns the running origin and how many outages
/// there were.
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

/// Kills the flapping endpoint whenever `down_at(time into the run)` says so and brings it back
/// on the same address when it no longer does (checked every 10 ms: a schedule, not a wait for
/// anything); returns the running origin, up again at the end, and how many times it went down.
pub(crate) fn flap_loop(
    origin: Origin,
    bodies: Arc<Bodies>,
    start: Instant,
    down_at: impl Fn(Duration) -> bool,
    until: Instant,
) -> (Origin, u32) {
    let addr = origin.addr;
    let mut origin = Some(origin);
    let mut kills = 0;
    loop {
        let now = Instant::now();
        let down = now < until && down_at(now.saturating_duration_since(start));
        match (&origin, down) {
            (Some(_), true) => {
                drop(origin.take());
                kills += 1;
            }
            (None, false) => {
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
            }
            _ => {}
        }
        if now >= until {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (
        origin.expect("the flapping endpoint is up at the end"),
        kills,
    )
}

/// What the health checks said of the flapping endpoint, polled from
/// `outrider_endpoint_healthy` every 100 ms: transitions to unhealthy and back to healthy.
#[derive(Default, Debug)]
pub(crate) struct HealthWatch {
    pub(crate) polls: u64,
    pub(crate) to_unhealthy: u64,
    pub(crate) to_healthy: u64,
    pub(crate) failed: Vec<String>,
}

pub(crate) async fn health_watch(
    admin: SocketAddr,
    endpoint: String,
    until: Instant,
) -> HealthWatch {
    let http = support::client();
    let url = format!("http://{admin}/metrics");
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut w = HealthWatch::default();
    let mut last: Option<bool> = None;
    while Instant::now() < until {
        tick.tick().await;
        let text = match http.get(&url).send().await {
            Ok(resp) => resp.text().await.unwrap_or_default(),
            Err(e) => {
                w.failed.push(e.to_string());
                continue;
            }
        };
        w.polls += 1;
        let labels = [("upstream", "app"), ("endpoint", endpoint.as_str())];
        let Some(v) = support::metric(&text, "outrider_endpoint_healthy", &labels) else {
            continue;
        };
        let healthy = v >= 1.0;
        match (last, healthy) {
            (Some(true), false) => w.to_unhealthy += 1,
            (Some(false), true) if w.to_unhealthy > 0 => w.to_healthy += 1,
            _ => {}
        }
        last = Some(healthy);
    }
    w
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
