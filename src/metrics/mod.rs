//! Prometheus metrics: one private registry (not the crate's global default, so that no other
//! library can add or collide with our series), the `outrider_` prefix, and per-capability
//! family groups registered once at startup.
//!
//! Families live outside the policy snapshot, so their series survive reloads; the request path
//! holds handles resolved in advance and only does `inc`/`observe`.

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    pub config: ConfigMetrics,
}

/// `outrider_config_*`: what hot reload did.
pub struct ConfigMetrics {
    pub reload_success: IntCounter,
    pub reload_failure: IntCounter,
    pub last_reload_successful: IntGauge,
    pub generation: IntGauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry =
            Registry::new_custom(Some("outrider".into()), None).unwrap_or_else(|_| Registry::new());
        let config = ConfigMetrics::register(&registry);
        Metrics { registry, config }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition format (0.0.4) of every registered family.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec fails only on malformed families, which registration prevents.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Registers `collector`. Names are static and unique, so a failure is a programming error that
/// the unit test below catches; it is logged rather than fatal.
fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    collector: C,
) -> C {
    if let Err(e) = registry.register(Box::new(collector.clone())) {
        log::error!("metric registration failed: {e}");
    }
    collector
}

// Metric definitions below are compile-time constants (names, help, label names), never input;
// they only fail on an invalid name, which the unit test below would catch.
fn int_counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition is valid")
}

fn int_gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("static metric definition is valid")
}

impl ConfigMetrics {
    fn register(registry: &Registry) -> ConfigMetrics {
        let reloads = register(
            registry,
            int_counter_vec(
                "config_reloads_total",
                "Policy reload attempts by result.",
                &["result"],
            ),
        );
        let last = register(
            registry,
            int_gauge(
                "config_last_reload_successful",
                "1 if the last policy reload attempt succeeded (or none was attempted yet), else 0.",
            ),
        );
        let generation = register(
            registry,
            int_gauge(
                "config_generation",
                "Generation of the running policy: 1 at start, +1 per successful reload.",
            ),
        );
        last.set(1);
        generation.set(1);
        ConfigMetrics {
            reload_success: reloads.with_label_values(&["success"]),
            reload_failure: reloads.with_label_values(&["failure"]),
            last_reload_successful: last,
            generation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_register_and_encode_with_prefix() {
        let m = Metrics::new();
        m.config.reload_success.inc();
        let text = String::from_utf8(m.encode()).unwrap();
        assert!(
            text.contains("outrider_config_reloads_total{result=\"success\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("outrider_config_reloads_total{result=\"failure\"} 0"),
            "{text}"
        );
        assert!(text.contains("outrider_config_generation 1"), "{text}");
        assert!(
            text.contains("outrider_config_last_reload_successful 1"),
            "{text}"
        );
    }
}
