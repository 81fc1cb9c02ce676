//! `[upstreams.X.retry]` wired into the hooks, the same on both legs: `fail_to_connect`
//! (connect-failure), `error_while_proxy` (reset, timeout) and `upstream_response_filter`
//! (a retryable status, turned into a retryable error before anything reaches the client) ask
//! [`decide`]; `upstream_peer` counts each request in the budget ([`first_attempt`]) and waits
//! out the backoff ([`wait`]). The decisions themselves are `resilience`'s.
//!
//! A retry goes to another endpoint whose breaker admits it when the upstream has several,
//! else to the same one, except after a connect failure (never retried on the only endpoint).
//!
//! Never retried: anything once the response header reached the client; a request body that
//! streamed past Pingora's retry buffer; a non-idempotent method while `idempotent_only`; an
//! attempt past the route's deadline.

use std::time::Instant;

use log::debug;
use pingora::prelude::*;

use crate::resilience::{backoff, RetryReason};

use super::{deadline, is_idempotent, Ctx};

/// Counts a request's first attempt in its upstream's budget.
pub(super) fn first_attempt(ctx: &Ctx) {
    if let Some(budget) = ctx
        .route()
        .and_then(|r| ctx.policy.retry_budgets.get(r.upstream))
    {
        budget.request(Instant::now());
    }
}

/// Waits out the backoff a retry was given, within what is left of the deadline.
pub(super) async fn wait(ctx: &mut Ctx) {
    let Some(pause) = ctx.backoff.take() else {
        return;
    };
    let pause = match deadline::remaining(ctx) {
        Ok(Some(left)) => pause.min(left),
        Ok(None) => pause,
        Err(_) => return,
    };
    if !pause.is_zero() {
        tokio::time::sleep(pause).await;
    }
}

/// What an error after connecting says about the attempt, if it is retryable at all.
pub(super) fn reason_of(e: &Error) -> Option<RetryReason> {
    use ErrorType::*;
    match e.etype() {
        ConnectionClosed | ReadError | WriteError | H2Error => Some(RetryReason::Reset),
        ReadTimedout | WriteTimedout => Some(RetryReason::Timeout),
        _ => None,
    }
}

/// Whether the attempt that failed for `reason` is tried again: the policy, the method, the
/// response not begun, the body still replayable, the deadline, then the budget (a refusal
/// is counted). A yes counts the retry and sets its backoff.
pub(super) fn decide(ctx: &mut Ctx, session: &Session, reason: RetryReason) -> bool {
    let Some((index, upstream)) = ctx.route().map(|r| (r.upstream, ctx.policy.upstream_of(r)))
    else {
        return false;
    };
    let policy = &upstream.retry;
    let wanted = match reason {
        RetryReason::ConnectFailure => policy.on_connect_failure,
        RetryReason::Reset => policy.on_reset,
        RetryReason::Timeout => policy.on_timeout,
        RetryReason::Status(s) => policy.on_statuses.contains(&s),
    };
    // A refused connect on the only endpoint would be refused again at once (and count twice
    // against its breaker): connect failures fail over to another endpoint only.
    let elsewhere = reason != RetryReason::ConnectFailure || upstream.endpoints.len() > 1;
    if !wanted
        || !elsewhere
        || u32::from(ctx.retries) + 1 >= policy.attempts
        || (policy.idempotent_only && !is_idempotent(&session.req_header().method))
        || session.response_written().is_some()
        || session.as_ref().retry_buffer_truncated()
        || deadline::remaining(ctx).is_err()
    {
        return false;
    }
    let now = Instant::now();
    let metrics = ctx.policy.metrics.upstreams.get(index);
    let allowed = ctx
        .policy
        .retry_budgets
        .get(index)
        .is_some_and(|b| b.retry(policy.budget_ppm, now));
    if !allowed {
        if let Some(m) = metrics {
            m.retries_refused.inc();
        }
        debug!(
            "retry refused by the budget: upstream={} reason={}",
            upstream.name,
            reason.label()
        );
        return false;
    }
    if let Some(m) = metrics {
        m.retries[reason.index()].inc();
    }
    ctx.retries = ctx.retries.saturating_add(1);
    let random =
        std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), now);
    let pause = backoff(policy.backoff, u32::from(ctx.retries), random);
    ctx.backoff = (!pause.is_zero()).then_some(pause);
    true
}

/// A retryable status turns into a retryable error, so that Pingora's leg (and the buffered
/// leg, which mirrors it) tries again instead of sending it on; `error_while_proxy` keeps it
/// retryable. The last try's response goes to the client as it is.
pub(super) fn on_status(ctx: &mut Ctx, session: &Session, status: u16) -> Option<Box<Error>> {
    if status < 500 || !decide(ctx, session, RetryReason::Status(status)) {
        return None;
    }
    // The attempt is over; its pass goes back without a verdict unless the breaker already
    // judged the status (see `resilience::failure_status`).
    ctx.attempt = None;
    ctx.retry_pending = true;
    let mut e = Error::explain(ErrorType::HTTPStatus(status), "retrying a retryable status");
    e.set_retry(true);
    Some(e.into_up())
}
