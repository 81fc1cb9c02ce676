//! Breaker transitions told to the operator: a log line per change and the upstream's state
//! gauge and transition counter. Called from the data plane when a request moves a breaker and
//! when a reload binds an upstream whose state changed meanwhile.

use log::{info, warn};

use super::UpstreamMetrics;
use crate::breaker::{self, Changes};

/// The log lines and metrics for breaker transitions: an endpoint's at info (ejection and
/// return are routine with several endpoints), the upstream's at warn (it is what pages).
pub(crate) fn report_breaker_changes(
    upstream: &str,
    endpoint: &str,
    changes: Changes,
    metrics: Option<&UpstreamMetrics>,
) {
    if let Some(t) = changes.endpoint {
        info!(
            "breaker: upstream={upstream} endpoint={endpoint} {} -> {} ({})",
            t.from.as_str(),
            t.to.as_str(),
            t.reason.as_str()
        );
    }
    if let Some((from, to)) = changes.upstream {
        warn!(
            "breaker: upstream={upstream} {} -> {}{}",
            from.as_str(),
            to.as_str(),
            match to {
                breaker::State::Open => ": no endpoint is usable, requests are refused",
                breaker::State::HalfOpen => ": probing",
                breaker::State::Closed => ": serving again",
            }
        );
        if let Some(m) = metrics {
            m.breaker_state.set(to.gauge_value());
            let index = usize::try_from(to.gauge_value()).unwrap_or(0);
            if let Some(counter) = m.breaker_transitions.get(index) {
                counter.inc();
            }
        }
    }
}
