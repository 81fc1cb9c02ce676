//! Circuit breaking wired into the hooks: admission in `upstream_peer`, one recorded outcome
//! per upstream attempt, and the answer to a refused request. The decisions are `breaker`'s;
//! this file only knows where in Pingora's order each happens.
//!
//! Where an attempt's outcome is recorded, so that each attempt counts exactly once (in the
//! breaker and in `outrider_upstream_requests_total`):
//! - a connect error: `fail_to_connect`;
//! - an error after connecting (timeout, reset, invalid response): `error_while_proxy`, unless
//!   Pingora retries it on a fresh connection (a pooled connection the upstream had closed says
//!   nothing about its health);
//! - a status in `failure_statuses`: `upstream_response_filter`, as soon as the header is in,
//!   so a refresh that fails is counted before stale-if-error answers for it;
//! - anything else: `logging`, after the body, so that a reset mid-body is a failure.
//!
//! A client that went away leaves no outcome: its pass is dropped, which frees a half-open
//! probe slot without judging the upstream.

use std::time::Instant;

use bytes::Bytes;
use http::header;
use log::debug;
use pingora::http::ResponseHeader;
use pingora::prelude::*;

use super::{Ctx, Failure};
use crate::breaker::{self, retry_after_secs, Cause, Changes, Rejection};
use crate::metrics::{report_breaker_changes, Outcome};

/// How one upstream attempt ended, for the breaker and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// Counted with this outcome; a failure unless `Outcome::Ok`.
    Counted(Outcome),
    /// The client went away: counted as `ok` in the metrics (the upstream did nothing wrong)
    /// and not judged by the breaker.
    Abandoned,
}

/// Chooses the endpoint for this attempt: the upstream's concurrency slot (once per request),
/// then the first endpoint in round-robin order whose breaker admits it. A retry goes to any
/// endpoint but the one that failed, when the upstream has several. Refusals set `ctx.rejected` and count as `rejected`.
pub(super) fn admit(ctx: &mut Ctx, round_robin: usize) -> Result<usize> {
    let Some(upstream) = ctx.route().map(|r| r.upstream) else {
        return Error::e_explain(ErrorType::InternalError, "upstream_peer without a route");
    };
    let now = Instant::now();
    if ctx.permit.is_none() {
        match ctx.policy.breakers.get(upstream).map(|g| g.acquire()) {
            Some(Ok(permit)) => ctx.permit = Some(permit),
            Some(Err(rejection)) => return Err(refuse(ctx, rejection)),
            None => return Error::e_explain(ErrorType::InternalError, "no guard for the upstream"),
        }
    }
    let Some(guard) = ctx.policy.breakers.get(upstream) else {
        return Error::e_explain(ErrorType::InternalError, "no guard for the upstream");
    };
    // Active health checks take unhealthy endpoints out (the breakers' ejection, shared).
    if let Some(health) = ctx.policy.health.get(upstream) {
        if ctx.upstream().is_some_and(|u| u.health_check.is_some()) {
            let eligible = |i: usize| health.get(i).is_none_or(|h| h.is_healthy());
            let skip = if ctx.retries > 0 && health.len() > 1 {
                ctx.endpoint
            } else {
                None
            };
            let start = match (skip, ctx.retries) {
                (Some(failed), _) => failed + 1,
                _ => round_robin,
            };
            let chosen = match guard.choose_eligible(start, skip, &eligible, now) {
                Ok(chosen) => chosen,
                Err(rejection) => return Err(refuse(ctx, rejection)),
            };
            if chosen.changes != Changes::default() {
                report(ctx, chosen.index, chosen.changes);
            }
            ctx.attempt = Some(chosen.pass);
            return Ok(chosen.index);
        }
    }
    // A retry goes to another endpoint when there is one, else to the same.
    let several = ctx.upstream().is_some_and(|u| u.endpoints.len() > 1);
    let chosen = match (ctx.retries, ctx.endpoint) {
        (1.., Some(failed)) if several => {
            guard.choose_other(failed + 1, failed, now).map_err(|_| {
                // The other endpoints are all ejected: the refused connect is the answer.
                Error::explain(
                    ErrorType::ConnectError,
                    "connect failed and every other endpoint is ejected",
                )
                .into_up()
            })?
        }
        _ => match guard.choose(round_robin, now) {
            Ok(chosen) => chosen,
            Err(rejection) => return Err(refuse(ctx, rejection)),
        },
    };
    if chosen.changes != Changes::default() {
        report(ctx, chosen.index, chosen.changes);
    }
    ctx.attempt = Some(chosen.pass);
    Ok(chosen.index)
}

/// Records the attempt in progress, if any: its breaker outcome and its metric.
pub(super) fn end_attempt(ctx: &mut Ctx, ended: Ended) {
    let Some(pass) = ctx.attempt.take() else {
        return;
    };
    let (Some(route), Some(index)) = (ctx.route(), ctx.endpoint) else {
        return;
    };
    let upstream = route.upstream;
    if let Some(m) = ctx.policy.metrics.upstreams.get(upstream) {
        m.record(match ended {
            Ended::Counted(outcome) => outcome,
            Ended::Abandoned => Outcome::Ok,
        });
    }
    let Ended::Counted(outcome) = ended else {
        pass.release();
        return;
    };
    let Some(guard) = ctx.policy.breakers.get(upstream) else {
        return;
    };
    let verdict = if outcome == Outcome::Ok {
        breaker::Outcome::Success
    } else {
        breaker::Outcome::Failure
    };
    let changes = guard.record(index, pass, verdict, Instant::now());
    if changes != Changes::default() {
        report(ctx, index, changes);
        ctx.advice.note_breaker(
            changes
                .endpoint
                .is_some_and(|t| t.to == breaker::State::Open),
        );
    }
}

/// How an attempt that failed with `e` ended.
pub(super) fn ended_by_error(e: &Error) -> Ended {
    match Failure::classify(e) {
        Failure::Timeout => Ended::Counted(Outcome::Timeout),
        Failure::ConnectFailed => Ended::Counted(Outcome::ConnectError),
        Failure::BadResponse | Failure::Status(_) | Failure::Internal => {
            Ended::Counted(Outcome::HttpFailure)
        }
        Failure::ClientGone
        | Failure::BadRequest
        | Failure::Refused(_)
        | Failure::ClientTimeout => Ended::Abandoned,
    }
}

/// How an attempt whose response header had `status` ended, if that already decides it.
pub(super) fn failure_status(ctx: &Ctx, status: u16) -> Option<Ended> {
    ctx.upstream()
        .is_some_and(|u| u.breaker.failure_statuses.contains(&status))
        .then_some(Ended::Counted(Outcome::HttpFailure))
}

fn refuse(ctx: &mut Ctx, rejection: Rejection) -> Box<Error> {
    ctx.rejected = Some(rejection);
    if let Some(m) = ctx.upstream_metrics() {
        m.record(Outcome::Rejected);
    }
    debug!(
        "refused: route={} upstream={} cause={} retry_after={}s",
        ctx.route().map_or("-", |r| &r.name),
        ctx.upstream().map_or("-", |u| &u.name),
        cause_label(rejection.cause),
        retry_after_secs(rejection.retry_after)
    );
    // An upstream-side error, so that Pingora offers the stored response to
    // `should_serve_stale` before answering (stale on open).
    Error::explain(ErrorType::HTTPStatus(503), "upstream refused by the proxy").into_up()
}

fn report(ctx: &Ctx, index: usize, changes: Changes) {
    let Some(route) = ctx.route() else {
        return;
    };
    let upstream = ctx.policy.upstream_of(route);
    let label = upstream
        .endpoints
        .get(index)
        .map_or("-", |e| e.label.as_str());
    report_breaker_changes(
        &upstream.name,
        label,
        changes,
        ctx.policy.metrics.upstreams.get(route.upstream),
    );
}

pub(super) fn cause_label(cause: Cause) -> &'static str {
    match cause {
        Cause::BreakerOpen => "breaker_open",
        Cause::OverLimit => "over_limit",
    }
}

/// The answer to a refused request: 503, `Retry-After` in whole seconds (at least 1), and a
/// short body naming the upstream and why.
pub(super) fn refusal_response(
    upstream: &str,
    max_concurrent: usize,
    rejection: Rejection,
) -> Result<(Box<ResponseHeader>, Bytes)> {
    let retry_after = retry_after_secs(rejection.retry_after);
    let body = Bytes::from(match rejection.cause {
        Cause::BreakerOpen => format!(
            "503 Service Unavailable: upstream \"{upstream}\" is failing and its circuit breaker is open; retry in {retry_after}s\n"
        ),
        Cause::OverLimit => format!(
            "503 Service Unavailable: upstream \"{upstream}\" has {max_concurrent} requests in flight, its limit\n"
        ),
    });
    let mut resp = ResponseHeader::build(503, Some(5))?;
    resp.insert_header(header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    resp.insert_header(header::RETRY_AFTER, retry_after.to_string())?;
    Ok((Box::new(resp), body))
}
