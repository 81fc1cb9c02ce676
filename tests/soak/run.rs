//! The run: the test itself.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::background::{
    admin_loop, fault_loop, flap_loop, health_watch, purge_loop, reload_loop, sample_loop, Sample,
};
use crate::content::{origin_handler, Bodies, Kind};
use crate::load::{load, LoadCtx, Tally};
use crate::policies::{policy, write_renamed, Variant};
use crate::proxy_process::ProxyProcess;
use crate::report::{count_lines, metric_sum, mib, percentile, scan_log, thousands};
use crate::schedule::Schedule;
use crate::support::{metric, Origin};
use crate::{
    support, CACHE_BUDGET, CLIENTS, FD_MARGIN, H2C_CLIENTS, KNOWN_CLOSE_AFTER_ERROR,
    KNOWN_DANGLING_LOCK, KNOWN_H2C_HEAD_MISS, LIMITED_KEYS, RATE_BURST, RATE_MARGIN, RATE_REQUESTS,
    RSS_MARGIN,
};

// === the run ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_under_faults() {
    let s = Schedule::from_env();
    let bodies = Arc::new(Bodies::new());
    let origin = Origin::with_handler(origin_handler(bodies.clone()));
    // The second endpoint, which flaps: its port is bound here and kept for the whole run.
    let flapping = Origin::with_handler(origin_handler(bodies.clone()));
    let origins = [origin.addr, flapping.addr];
    let flap_label = flapping.addr.to_string();
    let mut proxy = ProxyProcess::spawn(|d, a| policy(d, a, origins, Variant::A));
    let (data_port, admin_port) = (proxy.addr.port(), proxy.admin.port());
    let texts = [Variant::A, Variant::B, Variant::Invalid]
        .map(|v| policy(data_port, admin_port, origins, v));
    let idle = proxy.probe().expect("probe the idle proxy");

    // Warm-up: load only, not counted.
    let ctx = Arc::new(LoadCtx {
        base: proxy.url(""),
        start: std::sync::OnceLock::new(),
        fault_period: s.fault_period,
        down: s.down,
        stop: Arc::new(AtomicBool::new(false)),
        measuring: Arc::new(AtomicBool::new(false)),
        total: Arc::new(AtomicU64::new(0)),
        bodies: bodies.clone(),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(load(i, i < H2C_CLIENTS, ctx.clone())))
        .collect();
    tokio::time::sleep(s.warmup).await;
    let warm = proxy.probe().expect("probe after warm-up");

    // The run: load, reloads, purges, admin reads, outages, samples, all until `until`.
    let start = Instant::now();
    let until = start + s.run;
    let _ = ctx.start.set(start);
    ctx.measuring.store(true, Ordering::Relaxed);
    let faults = {
        let (bodies, period, down) = (bodies.clone(), s.fault_period, s.down);
        std::thread::spawn(move || fault_loop(origin, bodies, start, period, down, until))
    };
    let flaps = {
        let (bodies, s) = (bodies.clone(), s.clone());
        std::thread::spawn(move || flap_loop(flapping, bodies, start, |t| s.flap_down_at(t), until))
    };
    let health = tokio::spawn(health_watch(proxy.admin, flap_label.clone(), until));
    let reloads = tokio::spawn(reload_loop(
        proxy.admin,
        proxy.config.clone(),
        texts.clone(),
        s.reload_every,
        until,
    ));
    let purges = tokio::spawn(purge_loop(proxy.admin, proxy.addr, s.purge_every, until));
    let admin_reads = tokio::spawn(admin_loop(proxy.admin, s.admin_every, until));
    let samples = tokio::spawn(sample_loop(proxy.pid(), ctx.total.clone(), start, until));
    let samples = samples.await.expect("sampler");
    let reloads = reloads.await.expect("reloader");
    let purges = purges.await.expect("purger");
    let (admin_reads, admin_failed) = admin_reads.await.expect("admin reader");
    let (origin, outages) = tokio::task::spawn_blocking(move || faults.join())
        .await
        .expect("join")
        .expect("fault thread");
    let (flapping, flap_kills) = tokio::task::spawn_blocking(move || flaps.join())
        .await
        .expect("join")
        .expect("flap thread");
    let health = health.await.expect("health watcher");
    ctx.stop.store(true, Ordering::Relaxed);
    let mut tally = Tally::default();
    for c in clients {
        tally.merge(c.await.expect("client task"));
    }
    let ran = start.elapsed();
    let at_stop = proxy.probe();

    // Afterwards: the proxy still serves a request that needs the backend (the breaker may be
    // open right after the last outage, so poll), the last reload is a valid one, the fds
    // drain, and SIGTERM stops it cleanly.
    let http = support::client();
    let live = proxy.url(&Kind::Live.path(1));
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    let served_after = loop {
        if let Ok(resp) = http.get(&live).send().await {
            let status = resp.status().as_u16();
            let body = resp.bytes().await.unwrap_or_default();
            if status == 200 && body == bodies.body(Kind::Live, 1) {
                break true;
            }
            last = format!("{status}: {}", String::from_utf8_lossy(&body));
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    write_renamed(&proxy.config, &texts[0]);
    let final_reload = http
        .post(proxy.admin_url("/reload"))
        .send()
        .await
        .map(|r| r.status().as_u16());
    let metrics = http
        .get(proxy.admin_url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    let cache: Value = http
        .get(proxy.admin_url("/cache"))
        .send()
        .await
        .expect("GET /cache")
        .json()
        .await
        .expect("cache json");
    drop(http);
    let fd_bound = warm.fds + FD_MARGIN;
    let deadline = Instant::now() + Duration::from_secs(20);
    let settled = loop {
        let p = proxy.probe().expect("probe at the end");
        if p.fds <= fd_bound || Instant::now() > deadline {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let alive = proxy.alive();
    let _ = Command::new("kill")
        .args(["-TERM", &proxy.pid().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Ok(Some(status)) = proxy.child.try_wait() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    drop(origin);
    drop(flapping);
    let log_text = proxy.log_text();
    let log = scan_log(&log_text);
    let taken_out = format!("endpoint={flap_label} is unhealthy");
    let flap_taken_out = log_text.lines().filter(|l| l.contains(&taken_out)).count();
    drop(log_text);
    let access_lines = count_lines(&proxy.access_log);

    // The report.
    let m = |name: &str, labels: &[(&str, &str)]| metric(&metrics, name, labels).unwrap_or(0.0);
    let mut lat = std::mem::take(&mut tally.latencies_us);
    lat.sort_unstable();
    let requests = tally.requests();
    let at_stop = at_stop.unwrap_or_default();
    let half = samples.len() / 2;
    let max_rss = |s: &[Sample]| s.iter().map(|s| s.probe.rss_kib).max().unwrap_or(0);
    let (rss_first_half, rss_second_half) = (max_rss(&samples[..half]), max_rss(&samples[half..]));
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let mut out = String::new();
    let mut row = |k: &str, v: String| out.push_str(&format!("| {k} | {v} |\n"));
    row(
        "run",
        format!(
            "{:.0} s ({profile} build) after a {:.0} s warm-up; {CLIENTS} clients ({H2C_CLIENTS} h2c)",
            ran.as_secs_f64(),
            s.warmup.as_secs_f64()
        ),
    );
    row(
        "requests",
        format!(
            "{} ({:.0}/s); {} more in warm-up",
            thousands(requests),
            requests as f64 / ran.as_secs_f64(),
            thousands(tally.warmup_requests)
        ),
    );
    for (cause, n) in &tally.by_cause {
        row(
            &format!("&nbsp;&nbsp;{cause}"),
            format!(
                "{} ({:.2}%)",
                thousands(*n),
                *n as f64 * 100.0 / requests.max(1) as f64
            ),
        );
    }
    row(
        "&nbsp;&nbsp;client errors (no response)",
        thousands(tally.client_error_count()),
    );
    for (kind, n) in &tally.client_errors {
        row(&format!("&nbsp;&nbsp;&nbsp;&nbsp;{kind}"), thousands(*n));
    }
    row(
        "200s by coding",
        tally
            .by_encoding
            .iter()
            .map(|(k, v)| format!("{k} {}", thousands(*v)))
            .collect::<Vec<_>>()
            .join(", "),
    );
    row(
        "conditional",
        format!(
            "{} sent, {} answered 304",
            thousands(tally.conditional.0),
            thousands(tally.conditional.1)
        ),
    );
    row(
        "bodies checked",
        format!(
            "identity all, {} compressed decoded; {} wrong {:?}",
            thousands(tally.decoded),
            tally.corrupt.0,
            tally.corrupt.1
        ),
    );
    row(
        "latency p50 / p90 / p99 / p99.9 / max",
        format!(
            "{:.2} / {:.2} / {:.2} / {:.2} / {:.1} ms",
            percentile(&lat, 0.50),
            percentile(&lat, 0.90),
            percentile(&lat, 0.99),
            percentile(&lat, 0.999),
            percentile(&lat, 1.0)
        ),
    );
    let mut took = reloads.took_ms.clone();
    took.sort_by(f64::total_cmp);
    row(
        "reloads (POST /reload)",
        format!(
            "{} applied, {} invalid rejected, {} unexpected; slowest {:.1} ms; metrics: success {}, failure {}, generation {}",
            reloads.applied,
            reloads.rejected,
            reloads.unexpected.len(),
            took.last().copied().unwrap_or(0.0),
            m("outrider_config_reloads_total", &[("result", "success")]),
            m("outrider_config_reloads_total", &[("result", "failure")]),
            m("outrider_config_generation", &[])
        ),
    );
    row(
        "purges",
        format!(
            "{} ok ({} objects), {} failed",
            purges.ok,
            thousands(purges.objects),
            purges.failed.len()
        ),
    );
    row(
        "admin reads",
        format!("{admin_reads}, {} failed", admin_failed.len()),
    );
    row(
        "backend outages",
        format!(
            "{outages} × {:.1} s down, every {:.1} s; breaker opened {} times",
            s.down.as_secs_f64(),
            s.fault_period.as_secs_f64(),
            m("outrider_breaker_transitions_total", &[("to", "open")])
        ),
    );
    row(
        "upstream attempts",
        ["ok", "http_failure", "timeout", "connect_error", "rejected"]
            .iter()
            .map(|o| {
                let n = m("outrider_upstream_requests_total", &[("outcome", o)]);
                format!("{o} {}", thousands(n as u64))
            })
            .collect::<Vec<_>>()
            .join(", "),
    );
    let ran_s = ran.as_secs_f64();
    // Per key: a full bucket at the start of the run, then `RATE_REQUESTS` a second.
    let rate_bound = RATE_REQUESTS as f64 * ran_s + RATE_BURST as f64;
    let rate_allowed = (rate_bound * 1.01) as u64 + RATE_MARGIN;
    let limited_200: u64 = tally.limited.values().map(|v| v.0).sum();
    let limited_429: u64 = tally.limited.values().map(|v| v.1).sum();
    let limited_other: u64 = tally.limited.values().map(|v| v.2).sum();
    row(
        "rate-limited route",
        format!(
            "{} 200s, {} 429s (with Retry-After), {} other, over {LIMITED_KEYS} keys at {RATE_REQUESTS}/s, burst {RATE_BURST}: at most {rate_bound:.0} 200s per key; per key 200s/429s {}; outrider_rate_limited_total {} (warm-up included)",
            thousands(limited_200),
            thousands(limited_429),
            thousands(limited_other),
            tally
                .limited
                .iter()
                .map(|(k, v)| format!("client-{k} {}/{}", v.0, v.1))
                .collect::<Vec<_>>()
                .join(", "),
            m("outrider_rate_limited_total", &[("route", "limited")])
        ),
    );
    let retries = metric_sum(&metrics, "outrider_upstream_retries_total", &[]);
    row(
        "retries (/metrics)",
        format!(
            "{} in all: {}; {} refused by the budget",
            thousands(retries as u64),
            [
                "connect-failure",
                "reset",
                "timeout",
                "502",
                "503",
                "504",
                "status"
            ]
            .iter()
            .map(|r| format!(
                "{r} {}",
                thousands(metric_sum(
                    &metrics,
                    "outrider_upstream_retries_total",
                    &[("reason", r)]
                ) as u64)
            ))
            .collect::<Vec<_>>()
            .join(", "),
            thousands(metric_sum(&metrics, "outrider_upstream_retries_refused_total", &[]) as u64)
        ),
    );
    let checks = |labels: &[(&str, &str)]| {
        thousands(metric_sum(&metrics, "outrider_health_check_total", labels) as u64)
    };
    row(
        "health checks (/metrics)",
        format!(
            "ok {}, fail {}; of the flapping endpoint: ok {}, fail {}",
            checks(&[("result", "ok")]),
            checks(&[("result", "fail")]),
            checks(&[("endpoint", &flap_label), ("result", "ok")]),
            checks(&[("endpoint", &flap_label), ("result", "fail")])
        ),
    );
    row(
        "flapping endpoint",
        format!(
            "down {flap_kills} times ({:.1} s every {:.1} s, and in every outage); seen unhealthy {} times and healthy again {} times ({} polls of /metrics, {} failed); {flap_taken_out} \"taken out\" warnings in the log",
            s.flap_down.as_secs_f64(),
            s.flap_period.as_secs_f64(),
            health.to_unhealthy,
            health.to_healthy,
            health.polls,
            health.failed.len()
        ),
    );
    row(
        "cache at the end",
        format!(
            "{} objects, {} of {} bytes; {} evictions, {} purged",
            cache["objects"],
            thousands(cache["bytes"].as_u64().unwrap_or(0)),
            thousands(cache["max_bytes"].as_u64().unwrap_or(0)),
            thousands(cache["evictions"].as_u64().unwrap_or(0)),
            thousands(cache["purged"].as_u64().unwrap_or(0))
        ),
    );
    row(
        "RSS idle / after warm-up / end",
        format!(
            "{} / {} / {} (peak {}); max in 1st / 2nd half of the run {} / {}",
            mib(idle.rss_kib),
            mib(warm.rss_kib),
            mib(at_stop.rss_kib),
            mib(at_stop.hwm_kib),
            mib(rss_first_half),
            mib(rss_second_half)
        ),
    );
    row(
        "open fds idle / after warm-up / at stop / settled",
        format!(
            "{} / {} / {} / {}",
            idle.fds, warm.fds, at_stop.fds, settled.fds
        ),
    );
    row(
        "proxy log",
        format!(
            "{} lines: {} errors, {} warnings, {} panics (+ {} known, below)",
            thousands(log.lines),
            thousands(log.errors),
            thousands(log.warnings),
            log.panics.values().sum::<u64>(),
            log.known_panics
        ),
    );
    let mut known = tally.known.clone();
    if log.known_panics > 0 {
        known.insert(KNOWN_DANGLING_LOCK, log.known_panics);
    }
    for issue in [
        KNOWN_CLOSE_AFTER_ERROR,
        KNOWN_H2C_HEAD_MISS,
        KNOWN_DANGLING_LOCK,
    ] {
        let n = known.get(issue).copied().unwrap_or(0);
        row(&format!("known defect: {issue}"), thousands(n));
    }
    row("access log", format!("{} lines", thousands(access_lines)));
    row(
        "after the run",
        format!(
            "serves a backend request: {served_after}; final reload: {final_reload:?}; SIGTERM exit: {exit:?}"
        ),
    );
    println!("\n| soak | |\n|---|---|\n{out}");
    println!("timeline (s, req/s, RSS, fds):");
    let step = (samples.len() / 10).max(1);
    let mut prev = (Duration::ZERO, tally.warmup_requests);
    for (i, sample) in samples.iter().enumerate() {
        if i % step != 0 && i + 1 != samples.len() {
            continue;
        }
        let dt = (sample.at - prev.0).as_secs_f64().max(1e-3);
        println!(
            "  {:>6.0}  {:>7.0}  {:>10}  {:>4}",
            sample.at.as_secs_f64(),
            sample.requests.saturating_sub(prev.1) as f64 / dt,
            mib(sample.probe.rss_kib),
            sample.probe.fds
        );
        prev = (sample.at, sample.requests);
    }
    println!("an example of each cause:");
    for (cause, example) in &tally.examples {
        println!("  {cause}: {example}");
    }
    println!("most frequent log lines:");
    for (n, shape) in &log.top {
        println!("  {:>8}  {shape}", thousands(*n));
    }

    if !log.first_panic.is_empty() {
        println!(
            "the first panic in the proxy's log:\n{}",
            log.first_panic.join("\n")
        );
    }

    // The verdict.
    let strict = !std::env::var("OUTRIDER_SOAK_STRICT").is_ok_and(|v| v == "0");
    if known.values().any(|n| *n > 0) {
        println!(
            "KNOWN DEFECTS OBSERVED (see the KNOWN_* constants in tests/soak/main.rs){}: {known:#?}",
            if strict {
                ", failing (OUTRIDER_SOAK_STRICT=0 only reports them)"
            } else {
                "; tolerated: OUTRIDER_SOAK_STRICT=0"
            }
        );
    }
    assert!(
        !strict || known.is_empty(),
        "known defects observed: {known:#?}"
    );
    assert!(
        log.panics.is_empty(),
        "panics in the proxy's log (site and message: count): {:#?}",
        log.panics
    );
    assert!(alive, "the proxy died during the soak");
    assert!(
        served_after,
        "the proxy does not serve after the soak: {last}"
    );
    assert_eq!(
        tally.client_error_count(),
        0,
        "requests failed at the connection level: {:#?}",
        tally.client_errors
    );
    assert_eq!(
        tally.corrupt.0, 0,
        "wrong bodies or codings: {:?}",
        tally.corrupt.1
    );
    let allowed = [
        "200 ",
        "304 ",
        "502 upstream",
        "503 breaker open",
        "503 refused (HEAD)",
        "504 ",
        "429 rate limited",
    ];
    let unexpected: Vec<_> = tally
        .by_cause
        .iter()
        .filter(|(c, _)| !allowed.iter().any(|a| c.starts_with(a)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "unexpected responses: {unexpected:?}"
    );
    assert!(
        tally.by_cause.iter().any(|(c, _)| c.starts_with("200 hit")),
        "no cache hits at all"
    );
    assert!(
        reloads.unexpected.is_empty(),
        "reloads: {:?}",
        reloads.unexpected
    );
    assert!(reloads.applied >= 1 && reloads.rejected >= 1, "{reloads:?}");
    assert!(
        m("outrider_config_reloads_total", &[("result", "failure")]) >= reloads.rejected as f64,
        "every rejected reload is counted"
    );
    assert_eq!(final_reload.ok(), Some(200), "the final, valid reload");
    assert_eq!(m("outrider_config_last_reload_successful", &[]), 1.0);
    assert!(purges.ok >= 1 && purges.failed.is_empty(), "{purges:?}");
    assert!(admin_failed.is_empty(), "admin reads: {admin_failed:?}");
    assert!(outages >= 1);
    assert!(
        m("outrider_breaker_transitions_total", &[("to", "open")]) >= 1.0,
        "the breaker never opened"
    );
    assert!(
        cache["evictions"].as_u64().unwrap_or(0) > 0,
        "the cache never went over its budget"
    );
    assert!(
        cache["bytes"].as_u64().unwrap_or(u64::MAX) <= CACHE_BUDGET,
        "{cache}"
    );
    assert!(
        settled.fds <= fd_bound,
        "open fds: {} after warm-up, still {} at the end",
        warm.fds,
        settled.fds
    );
    let rss_bound = warm.rss_kib + (CACHE_BUDGET + RSS_MARGIN) / 1024;
    assert!(
        at_stop.rss_kib <= rss_bound,
        "RSS grew from {} after warm-up to {} (bound {})",
        mib(warm.rss_kib),
        mib(at_stop.rss_kib),
        mib(rss_bound)
    );
    for (key, (ok, _, _)) in &tally.limited {
        assert!(
            *ok <= rate_allowed,
            "client-{key} got {ok} 200s on the rate-limited route in {ran_s:.1} s: more than \
             {RATE_REQUESTS}/s + a burst of {RATE_BURST} allows ({rate_bound:.0}, {rate_allowed} with the margin)"
        );
    }
    assert!(
        limited_200 > 0 && limited_429 > 0,
        "the rate-limited route saw {limited_200} 200s and {limited_429} 429s"
    );
    assert!(
        m("outrider_rate_limited_total", &[("route", "limited")]) >= limited_429 as f64,
        "every 429 is counted in outrider_rate_limited_total"
    );
    assert!(retries >= 1.0, "no retry while an endpoint flapped");
    assert!(
        health.to_unhealthy >= 1 && health.to_healthy >= 1,
        "the flapping endpoint {flap_label} was not seen marked unhealthy and healthy again: {health:?}"
    );
    assert!(
        health.failed.is_empty(),
        "/metrics polls: {:?}",
        health.failed
    );
    let exit = exit.expect("outrider did not exit within 15 s of SIGTERM");
    assert!(exit.success(), "exit after SIGTERM: {exit}");
}
