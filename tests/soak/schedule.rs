//! The schedule: durations from the environment.

use std::time::Duration;

// === the schedule ===

pub(crate) struct Schedule {
    pub(crate) warmup: Duration,
    pub(crate) run: Duration,
    pub(crate) fault_period: Duration,
    pub(crate) down: Duration,
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
        Schedule {
            warmup: Duration::from_secs_f64((run / 10.0).clamp(2.0, 10.0)),
            run: Duration::from_secs_f64(run),
            fault_period: Duration::from_secs_f64(period),
            down: Duration::from_secs_f64(down),
            reload_every: Duration::from_secs(1),
            purge_every: Duration::from_secs(3),
            admin_every: Duration::from_secs(2),
        }
    }
}
