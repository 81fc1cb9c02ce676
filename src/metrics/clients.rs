//! Counters of what clients do to the data plane before a request reaches a route.

use prometheus::{IntCounter, Registry};

use super::register;

pub(crate) struct ClientMetrics {
    /// `outrider_header_timeouts_total`: connections cut off because a request head took longer
    /// than `[limits] header_timeout` (slow or stalled clients, slowloris).
    pub(crate) header_timeouts: IntCounter,
}

impl ClientMetrics {
    // A static definition (constant name and help, never input) fails only on an invalid name,
    // which the metrics unit tests would catch at once.
    #[allow(clippy::expect_used)]
    pub(super) fn register(registry: &Registry) -> ClientMetrics {
        let header_timeouts = register(
            registry,
            IntCounter::new(
                "outrider_header_timeouts_total",
                "Connections cut off because a request head took longer than [limits] header_timeout.",
            )
            .expect("static metric definition is valid"),
        );
        ClientMetrics { header_timeouts }
    }
}
