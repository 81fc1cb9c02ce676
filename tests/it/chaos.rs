//! The chaos run of issue #7: constant load through the real proxy while its backend is killed
//! and brought back on the same port, three times. Bounded (about 7 s, loopback only, four
//! client tasks).
//!
//! For each outage it measures, and prints (`cargo test --test it chaos:: -- --nocapture`):
//! - time to open: from the kill to the first request the proxy refused;
//! - attempts that reached the dead backend: upstream attempts counted as failed while it was
//!   down (the trip, then one probe per open period);
//! - time to recover: from the restart to the first 200;
//! - the slowest refusal: no client waits on a dead backend once the breaker is open.
//!
//! And asserts the bounds those must keep.

use crate::support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{client, metric, Origin, Proxy, Reply};

const CLIENTS: usize = 4;
const OUTAGES: usize = 3;
const UP: Duration = Duration::from_millis(800);
const DOWN: Duration = Duration::from_millis(1200);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const CONSECUTIVE_FAILURES: u64 = 3;
const MAX_OPEN_FOR: Duration = Duration::from_millis(400);

#[derive(Clone, Copy, Debug)]
struct Sample {
    sent: Instant,
    took: Duration,
    status: u16,
    refused: bool,
}

fn origin_at(addr: Option<SocketAddr>) -> Origin {
    let handler = |_: &support::Recorded| Reply::ok("up");
    match addr {
        Some(addr) => Origin::with_handler_at(addr, handler),
        None => Origin::with_handler(handler),
    }
}

async fn failed_attempts(proxy: &Proxy) -> u64 {
    let text = client()
        .get(proxy.admin_url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    ["connect_error", "timeout", "http_failure"]
        .iter()
        .map(|o| {
            let labels = [("upstream", "app"), ("outcome", *o)];
            metric(&text, "outrider_upstream_requests_total", &labels).unwrap_or(0.0) as u64
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_through_repeated_outages() {
    let mut origin = origin_at(None);
    let addr = origin.addr;
    let proxy = Proxy::start(&format!(
        "[upstreams.app]\nendpoints = [\"{addr}\"]\nconnect_timeout = \"{}ms\"\n\n\
         [upstreams.app.breaker]\nconsecutive_failures = {CONSECUTIVE_FAILURES}\n\
         open_for = \"200ms\"\nmax_open_for = \"{}ms\"\nhalf_open_probes = 1\n\n\
         [defaults]\nupstream = \"app\"\n",
        CONNECT_TIMEOUT.as_millis(),
        MAX_OPEN_FOR.as_millis()
    ));

    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (samples, stop, url) = (samples.clone(), stop.clone(), proxy.url("/"));
            tokio::spawn(async move {
                let c = client();
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    let Ok(resp) = c.get(&url).send().await else {
                        continue;
                    };
                    let status = resp.status().as_u16();
                    let refused = resp.headers().contains_key("retry-after");
                    let _ = resp.bytes().await;
                    let took = sent.elapsed();
                    if let Ok(mut s) = samples.lock() {
                        s.push(Sample {
                            sent,
                            took,
                            status,
                            refused,
                        });
                    }
                }
            })
        })
        .collect();

    let mut outages = Vec::new();
    for _ in 0..OUTAGES {
        tokio::time::sleep(UP).await;
        let failed_before = failed_attempts(&proxy).await;
        let killed = Instant::now();
        drop(origin);
        tokio::time::sleep(DOWN).await;
        let failed_while_down = failed_attempts(&proxy).await - failed_before;
        origin = origin_at(Some(addr));
        outages.push((killed, Instant::now(), failed_while_down));
    }
    tokio::time::sleep(UP).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        let _ = task.await;
    }

    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let served = samples.iter().filter(|s| s.status == 200).count();
    println!(
        "chaos: {} requests, {served} served, {} refused, {OUTAGES} outages of {DOWN:?}",
        samples.len(),
        samples.iter().filter(|s| s.refused).count()
    );
    for (i, &(killed, restarted, failed_while_down)) in outages.iter().enumerate() {
        let first_refusal = samples
            .iter()
            .filter(|s| s.refused && s.sent >= killed && s.sent < restarted)
            .map(|s| s.sent + s.took)
            .min()
            .expect("the breaker opened during the outage");
        let time_to_open = first_refusal - killed;
        let recovered = samples
            .iter()
            .filter(|s| s.status == 200 && s.sent >= restarted)
            .map(|s| s.sent + s.took)
            .min()
            .expect("served again after the restart");
        let time_to_recover = recovered - restarted;
        // Once open: every refused request, and every request sent after the first refusal
        // while the backend was down.
        let slowest_once_open = samples
            .iter()
            .filter(|s| s.sent >= first_refusal && s.sent < restarted)
            .map(|s| s.took)
            .max()
            .unwrap_or_default();
        println!(
            "outage {}: open after {:?}, {failed_while_down} attempts reached the dead backend, \
             recovered {:?} after the restart, slowest answer once open {:?}",
            i + 1,
            time_to_open,
            time_to_recover,
            slowest_once_open
        );
        // The trip, then at most one probe per open period (the first one is at least
        // open_for jittered down by 10%), plus what was in flight when it opened.
        let periods = (DOWN.as_millis() / 180) as u64;
        let bound = CONSECUTIVE_FAILURES + CLIENTS as u64 + periods;
        assert!(
            failed_while_down <= bound,
            "outage {}: {failed_while_down} attempts reached the dead backend (bound {bound})",
            i + 1
        );
        assert!(time_to_open < DOWN, "outage {}", i + 1);
        // Back within one (jittered) open period plus a request's round trip.
        assert!(
            time_to_recover < MAX_OPEN_FOR * 2,
            "outage {}: recovered after {time_to_recover:?}",
            i + 1
        );
        assert!(
            slowest_once_open < CONNECT_TIMEOUT,
            "outage {}: a client waited {slowest_once_open:?} once open",
            i + 1
        );
    }
    assert!(served > 0);
}
