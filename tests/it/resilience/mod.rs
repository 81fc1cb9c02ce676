//! Resilience in front of a fragile backend (issue 22), through the real proxy.

mod deadline;
mod header_timeout;
mod health_check;
mod hop_by_hop;
mod pipelining;
mod rate_limit;
mod retry;

use crate::support::{client, Proxy};

/// The proxy's `/metrics` text.
async fn metrics_text(proxy: &Proxy) -> String {
    client()
        .get(proxy.admin_url("/metrics"))
        .send()
        .await
        .expect("admin answers")
        .text()
        .await
        .expect("text")
}
