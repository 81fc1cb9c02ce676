//! The schedule: durations from the environment.

use std::time::Duration;

// === the schedule ===

#[derive(Clone)]
pub(crate) struct Schedule {
    pub(crate) warmup: Duration,
    pub(crate) run: Duration,
    pub(crate) fault_period: Duration,
    pub(crate) down: Duration,
    /// The second endpoint flaps on its own, shorter period: down `flap_down` at the end of
    /// each `flap_period` (and during every whole-backend outage too).
    pub(crate) flap_period: Duration,
    pub(crate) flap_down: Duration,
    pub(crate) reload_every: Duration,
    pub(crate) purge_every: Duration,
    pub(crate) admin_every: Duration,
}

fn env_secs(name: &str) -> Option<f64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a number of seconds")),
    )
}

impl Schedule {
    pub(crate) fn from_env() -> Schedule {
        let run = env_secs("OUTRIDER_SOAK_SECS").unwrap_or(30.0);
        assert!(run >= 6.0, "OUTRIDER_SOAK_SECS must be at least 6");
        let period = env_secs("OUTRIDER_SOAK_FAULT_PERIOD_SECS").unwrap_or((run / 3.0).min(20.0));
        let down = env_secs("OUTRIDER_SOAK_DOWN_SECS").unwrap_or(period / 5.0);
        assert!(
            down > 0.0 && down < period,
            "the backend must be down for part of each fault period ({down} s of {period} s)"
        );
        let flap_period = env_secs("OUTRIDER_SOAK_FLAP_PERIOD_SECS").unwrap_or(period / 3.0);
        let flap_down = env_secs("OUTRIDER_SOAK_FLAP_DOWN_SECS").unwrap_or(flap_period * 0.4);
        assert!(
            flap_period < period && flap_down > 0.0 && flap_down < flap_period,
            "the second endpoint flaps faster than the outages and is down for part of each \
             flap period ({flap_down} s of {flap_period} s, outages every {period} s)"
        );
        Schedule {
            warmup: Duration::from_secs_f64((run / 10.0).clamp(2.0, 10.0)),
            run: Duration::from_secs_f64(run),
            fault_period: Duration::from_secs_f64(period),
            down: Duration::from_secs_f64(down),
            flap_period: Duration::from_secs_f64(flap_period),
            flap_down: Duration::from_secs_f64(flap_down),
            reload_every: Duration::from_secs(1),
            purge_every: Duration::from_secs(3),
            admin_every: Duration::from_secs(2),
        }
    }

    /// Whether the whole backend (both endpoints) is down `t` into the run.
    pub(crate) fn outage_at(&self, t: Duration) -> bool {
        in_window(t, self.fault_period, self.down)
    }

    /// Whether the flapping endpoint is down `t` into the run: its own windows, and every
    /// whole-backend outage.
    pub(crate) fn flap_down_at(&self, t: Duration) -> bool {
        in_window(t, self.flap_period, self.flap_down) || self.outage_at(t)
    }
}

/// Whether `t` falls in the last `down` of its `period`.
fn in_window(t: Duration, period: Duration, down: Duration) -> bool {
    let period = period.as_secs_f64();
    t.as_secs_f64() % period >= period - down.as_secs_f64()
}
