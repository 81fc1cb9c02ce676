//! `[upstreams.X.health_check]`: the background service that probes each endpoint on its own
//! jittered schedule (`GET path`, a status in `expect_status` within `timeout` is a success),
//! feeds `resilience::EndpointHealth` (whose verdict `resilience::admit` reads to take an
//! endpoint out of the rotation) and exports `outrider_health_check_total` and
//! `outrider_endpoint_healthy`. Probes are plain HTTP/1.1 over TCP (a TLS upstream's probe
//! checks that the port accepts connections only).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use log::{info, warn};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Shared;
use crate::config::policy::HealthCheckPolicy;

/// The longest the prober sleeps: how soon it sees a reload that adds health checks or
/// endpoints. Otherwise it wakes when the next probe is due, so a sidecar whose upstreams have
/// no health check wakes once a second rather than on a fixed fast tick.
const LONGEST_SLEEP: Duration = Duration::from_secs(1);
/// The shortest: probes are spawned per wake, so a tiny `interval` must not spin the loop.
const SHORTEST_SLEEP: Duration = Duration::from_millis(10);

pub(crate) struct HealthProber(pub(crate) Arc<Shared>);

#[async_trait]
impl BackgroundService for HealthProber {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut next_due: HashMap<(Arc<str>, String), Instant> = HashMap::new();
        let random = std::collections::hash_map::RandomState::new();
        let mut wake = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            if *shutdown.borrow() {
                return;
            }
            let active = self.0.policy();
            let now = Instant::now();
            for (ui, upstream) in active.policy.upstreams.iter().enumerate() {
                let Some(policy) = &upstream.health_check else {
                    continue;
                };
                for (ei, endpoint) in upstream.endpoints.iter().enumerate() {
                    let key = (upstream.name.clone(), endpoint.label.clone());
                    // A new endpoint's first probe lands anywhere in its first interval.
                    let due = *next_due
                        .entry(key.clone())
                        .or_insert_with(|| now + jitter(policy.interval, random.hash_one(&key)));
                    if due > now {
                        continue;
                    }
                    next_due.insert(
                        key.clone(),
                        now + policy.interval.mul_f64(0.9)
                            + jitter(policy.interval / 5, random.hash_one((&key, now))),
                    );
                    let shared = self.0.clone();
                    let (policy, addr, tls) = (policy.clone(), endpoint.addr, upstream.tls);
                    let (upstream_name, label) = key;
                    tokio::spawn(async move {
                        let ok = probe(addr, tls, &policy).await;
                        record(&shared, ui, ei, &upstream_name, &label, ok, &policy);
                    });
                }
            }
            next_due.retain(|(u, e), _| {
                active.policy.upstream(u).is_some_and(|up| {
                    up.health_check.is_some() && up.endpoints.iter().any(|x| &x.label == e)
                })
            });
            wake = next_wake(next_due.values().copied(), now);
        }
    }
}

/// When to look at the schedule again: when the first probe is due, between
/// [`SHORTEST_SLEEP`] and [`LONGEST_SLEEP`] from now.
fn next_wake(due: impl Iterator<Item = Instant>, now: Instant) -> Instant {
    due.fold(now + LONGEST_SLEEP, Instant::min)
        .max(now + SHORTEST_SLEEP)
}

fn jitter(span: Duration, random: u64) -> Duration {
    let nanos = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX).max(1);
    Duration::from_nanos(random % nanos)
}

/// Records a probe's result against the endpoint's health in the policy that is current now
/// (by name: the policy may have been reloaded while the probe ran).
fn record(
    shared: &Shared,
    ui: usize,
    ei: usize,
    upstream: &str,
    label: &str,
    ok: bool,
    policy: &HealthCheckPolicy,
) {
    let active = shared.policy();
    let same = active.policy.upstreams.get(ui).is_some_and(|u| {
        &*u.name == upstream
            && u.health_check.is_some()
            && u.endpoints.get(ei).is_some_and(|e| e.label == label)
    });
    // A probe that was in flight across a reload removing its endpoint is dropped, so that
    // it does not bring back the series the reload pruned.
    let Some(health) = active
        .health
        .get(ui)
        .and_then(|h| h.get(ei))
        .filter(|_| same)
    else {
        return;
    };
    shared.metrics.health_check(upstream, label, ok);
    if let Some(healthy) = health.record(ok, policy) {
        if healthy {
            info!("health check: upstream={upstream} endpoint={label} is healthy again");
        } else {
            warn!("health check: upstream={upstream} endpoint={label} is unhealthy, taken out");
        }
    }
    shared
        .metrics
        .endpoint_healthy(upstream, label, health.is_healthy());
}

/// One probe: `GET path` answered with an expected status within `timeout`.
async fn probe(addr: SocketAddr, tls: bool, policy: &HealthCheckPolicy) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        if tls {
            return Some(true);
        }
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: outrider-health-check\r\n\
             Connection: close\r\n\r\n",
            policy.path
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        let status: u16 = std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()?;
        Some(head.starts_with(b"HTTP/1.") && policy.expect_status.contains(&status))
    };
    matches!(
        tokio::time::timeout(policy.timeout, attempt).await,
        Ok(Some(true))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prober_wakes_when_the_first_probe_is_due_within_bounds() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        // No health check anywhere: once a second, to see reloads.
        assert_eq!(next_wake(std::iter::empty(), now), now + LONGEST_SLEEP);
        // The earliest due probe, not a fixed tick.
        let due = [now + ms(700), now + ms(250), now + ms(900)];
        assert_eq!(next_wake(due.into_iter(), now), now + ms(250));
        // Never later than a second, never sooner than the floor.
        assert_eq!(
            next_wake([now + ms(5_000)].into_iter(), now),
            now + LONGEST_SLEEP
        );
        assert_eq!(
            next_wake([now + ms(1)].into_iter(), now),
            now + SHORTEST_SLEEP
        );
    }
}
