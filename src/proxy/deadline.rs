//! The route's `deadline`: the time from the request header to the upstream's response header,
//! connect, retries and waiting included. Checked where every attempt starts (`upstream_peer`,
//! on both legs), and enforced by shortening the attempt's timeouts to what is left, so that a
//! slow upstream is cut at the deadline by Pingora's own timers (a timed-out connection is
//! closed, never pooled) and the request ends 504, or stale where the route allows it.

use std::time::Duration;

use pingora::prelude::*;

use super::Ctx;

/// What is left of the request's deadline (`None`: the route has none). Past it, the request
/// fails as an upstream timeout, so stale-if-error applies.
pub(super) fn remaining(ctx: &Ctx) -> Result<Option<Duration>> {
    let Some(deadline) = ctx.route().and_then(|r| r.deadline) else {
        return Ok(None);
    };
    let left = deadline.saturating_sub(ctx.started.elapsed());
    if left.is_zero() {
        return Err(
            Error::explain(ErrorType::HTTPStatus(504), "request deadline exceeded").into_up(),
        );
    }
    Ok(Some(left))
}

/// Caps the attempt's timeouts at what is left of the deadline.
pub(super) fn bound(peer: &mut HttpPeer, remaining: Option<Duration>) {
    let Some(left) = remaining else {
        return;
    };
    let cap = |t: &mut Option<Duration>| *t = Some(t.map_or(left, |t| t.min(left)));
    cap(&mut peer.options.connection_timeout);
    cap(&mut peer.options.total_connection_timeout);
    cap(&mut peer.options.read_timeout);
    cap(&mut peer.options.write_timeout);
}
