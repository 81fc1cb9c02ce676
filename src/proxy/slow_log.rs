//! The slow-request log: one line for each request slower than its route's `slow_request`,
//! whether or not the access log is on, on stdout beside the access log and in its format.
//!
//! A slow backend makes every request slow at once, so the lines are rate-limited per
//! process: at most [`LINES_PER_SECOND`] in each wall-clock second; the next line written says
//! how many were left out since the previous one (`suppressed`), so nothing is lost silently.

use std::io::Write;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pingora::proxy::Session;
use pingora::Error;
use serde::Serialize;

use super::compression::Compression;
use super::failure::Failure;
use super::{cache, resilience, Ctx};
use crate::config::policy::LogFormat;
use crate::metrics::{coding_index, CODINGS};

/// The most slow-request lines written per second.
pub(crate) const LINES_PER_SECOND: u32 = 20;

#[derive(Serialize)]
pub(crate) struct Entry<'a> {
    pub(crate) ts: String,
    /// Always `slow_request`: tells these lines from access-log lines on the same stream.
    pub(crate) log: &'static str,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) route: &'a str,
    pub(crate) upstream: &'a str,
    pub(crate) endpoint: &'a str,
    pub(crate) status: u16,
    pub(crate) threshold_ms: f64,
    pub(crate) duration_ms: f64,
    /// Request start → upstream endpoint chosen: cache lookup, waiting on a cache fill of the
    /// same key, admission (`None` when no upstream was chosen).
    pub(crate) before_upstream_ms: Option<f64>,
    /// Endpoint chosen → upstream response header: connection (pooled or new) and the
    /// upstream's time to first byte.
    pub(crate) upstream_ms: Option<f64>,
    /// The part of `upstream_ms` spent getting a connection (about 0 when pooled)...
    pub(crate) connect_ms: Option<f64>,
    /// ...and the part spent waiting for the response header after it.
    pub(crate) first_byte_ms: Option<f64>,
    /// The connection came from the keep-alive pool.
    pub(crate) connection_reused: Option<bool>,
    /// After the upstream response header: the body, upstream to client.
    pub(crate) body_ms: Option<f64>,
    pub(crate) cache: &'a str,
    pub(crate) compression: &'a str,
    pub(crate) bytes_sent: usize,
    pub(crate) retries: u8,
    /// `breaker_open` or `over_limit` when the upstream refused the request, else `-`.
    pub(crate) refused: &'a str,
    /// The request failed at or past its route's `deadline` (the deadline, not the upstream's
    /// own timeout, ended it).
    pub(crate) deadline: bool,
    pub(crate) error: &'a str,
    /// Slow requests not logged since the previous line (the rate limit).
    pub(crate) suppressed: u64,
}

/// The per-process rate limit of the slow-request log.
#[derive(Default)]
pub(crate) struct SlowLog {
    state: Mutex<Window>,
}

#[derive(Default)]
struct Window {
    started: Option<Instant>,
    written: u32,
    suppressed: u64,
}

/// The time parts of a request, in milliseconds.
pub(crate) struct Parts {
    pub(crate) before_upstream_ms: Option<f64>,
    pub(crate) upstream_ms: Option<f64>,
    pub(crate) connect_ms: Option<f64>,
    pub(crate) first_byte_ms: Option<f64>,
    pub(crate) body_ms: Option<f64>,
}

// === impl SlowLog ===

impl SlowLog {
    /// Whether a line may be written at `now`, and if so how many were suppressed before it.
    /// Only slow requests get here, so the lock is not on the fast path.
    pub(crate) fn admit(&self, now: Instant) -> Option<u64> {
        let mut w = self.state.lock();
        let new_window = w
            .started
            .is_none_or(|s| now.saturating_duration_since(s) >= Duration::from_secs(1));
        if new_window {
            w.started = Some(now);
            w.written = 0;
        }
        if w.written >= LINES_PER_SECOND {
            w.suppressed += 1;
            return None;
        }
        w.written += 1;
        Some(std::mem::take(&mut w.suppressed))
    }
}

/// The `logging` hook's part: a line when the request took longer than its route allows.
pub(super) fn log_if_slow(
    slow_log: &SlowLog,
    session: &Session,
    e: Option<&Error>,
    ctx: &Ctx,
    status: u16,
    elapsed: Duration,
) {
    let Some(threshold) = ctx.route().and_then(|r| r.slow_request) else {
        return;
    };
    if elapsed <= threshold {
        return;
    }
    let Some(suppressed) = slow_log.admit(Instant::now()) else {
        return;
    };
    let req = session.req_header();
    let parts = parts(
        ctx.started,
        ctx.upstream_started,
        ctx.connected.map(|(at, _)| at),
        ctx.upstream_elapsed,
        elapsed,
    );
    let compression = session
        .downstream_modules_ctx
        .get::<Compression>()
        .and_then(|m| m.negotiated())
        .map_or("-", |c| CODINGS[coding_index(c)]);
    write(
        ctx.policy.log.format,
        &Entry {
            ts: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            log: "slow_request",
            method: req.method.as_str(),
            path: req.uri.path(),
            route: ctx.route().map_or("-", |r| &r.name),
            upstream: ctx.upstream().map_or("-", |u| &u.name),
            endpoint: ctx.endpoint_label(),
            status,
            threshold_ms: threshold.as_secs_f64() * 1000.0,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            before_upstream_ms: parts.before_upstream_ms,
            upstream_ms: parts.upstream_ms,
            connect_ms: parts.connect_ms,
            first_byte_ms: parts.first_byte_ms,
            connection_reused: ctx.connected.map(|(_, reused)| reused),
            body_ms: parts.body_ms,
            cache: cache::lookup_result(session, ctx).map_or("-", |r| r.label()),
            compression,
            bytes_sent: session.body_bytes_sent(),
            retries: ctx.retries,
            refused: ctx
                .rejected
                .map_or("-", |r| resilience::cause_label(r.cause)),
            deadline: e.is_some()
                && ctx
                    .route()
                    .and_then(|r| r.deadline)
                    .is_some_and(|deadline| elapsed >= deadline),
            error: e.map_or("-", |e| Failure::classify(e).label()),
            suppressed,
        },
    );
}

/// Splits `total` at the moment the endpoint was chosen, its connection was ready, and its
/// response header came.
pub(crate) fn parts(
    started: Instant,
    upstream_started: Option<Instant>,
    connected: Option<Instant>,
    upstream: Option<Duration>,
    total: Duration,
) -> Parts {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let before = upstream_started.map(|u| u.saturating_duration_since(started));
    let connect = upstream_started
        .zip(connected)
        .map(|(u, c)| c.saturating_duration_since(u));
    Parts {
        before_upstream_ms: before.map(ms),
        upstream_ms: upstream.map(ms),
        connect_ms: connect.map(ms),
        first_byte_ms: connect.zip(upstream).map(|(c, u)| ms(u.saturating_sub(c))),
        body_ms: before
            .zip(upstream)
            .map(|(b, u)| ms(total.saturating_sub(b + u))),
    }
}

fn write(format: LogFormat, e: &Entry<'_>) {
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |ms| format!("{ms:.3}"));
    let mut out = std::io::stdout().lock();
    // A closed stdout must not fail the request.
    let _ = match format {
        LogFormat::Json => serde_json::to_writer(&mut out, e)
            .map_err(std::io::Error::other)
            .and_then(|_| out.write_all(b"\n")),
        LogFormat::Text => writeln!(
            out,
            "ts={} log={} method={} path={:?} route={} upstream={} endpoint={} status={} threshold_ms={:.3} duration_ms={:.3} before_upstream_ms={} upstream_ms={} connect_ms={} first_byte_ms={} connection_reused={} body_ms={} cache={} compression={} bytes_sent={} retries={} refused={} deadline={} error={} suppressed={}",
            e.ts,
            e.log,
            e.method,
            e.path,
            e.route,
            e.upstream,
            e.endpoint,
            e.status,
            e.threshold_ms,
            e.duration_ms,
            opt(e.before_upstream_ms),
            opt(e.upstream_ms),
            opt(e.connect_ms),
            opt(e.first_byte_ms),
            e.connection_reused.map_or("-".to_string(), |r| r.to_string()),
            opt(e.body_ms),
            e.cache,
            e.compression,
            e.bytes_sent,
            e.retries,
            e.refused,
            e.deadline,
            e.error,
            e.suppressed
        ),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_limit_per_second_then_the_suppressed_count() {
        let log = SlowLog::default();
        let t0 = Instant::now();
        for _ in 0..LINES_PER_SECOND {
            assert_eq!(log.admit(t0), Some(0));
        }
        assert_eq!(log.admit(t0 + Duration::from_millis(500)), None);
        assert_eq!(log.admit(t0 + Duration::from_millis(999)), None);
        assert_eq!(log.admit(t0 + Duration::from_secs(1)), Some(2));
        assert_eq!(log.admit(t0 + Duration::from_secs(1)), Some(0));
    }

    #[test]
    fn parts_add_up_to_the_total() {
        let t0 = Instant::now();
        let p = parts(
            t0,
            Some(t0 + Duration::from_millis(10)),
            Some(t0 + Duration::from_millis(15)),
            Some(Duration::from_millis(300)),
            Duration::from_millis(1000),
        );
        assert_eq!(p.before_upstream_ms, Some(10.0));
        assert_eq!(p.upstream_ms, Some(300.0));
        assert_eq!(p.connect_ms, Some(5.0));
        assert_eq!(p.first_byte_ms, Some(295.0));
        assert_eq!(p.body_ms, Some(690.0));
        let local = parts(t0, None, None, None, Duration::from_millis(5));
        assert!(local.before_upstream_ms.is_none() && local.body_ms.is_none());
    }
}
