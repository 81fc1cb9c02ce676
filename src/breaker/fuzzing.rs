//! Random operation sequences against one breaker, with its invariants checked after every
//! step: what the fuzz target (`fuzz/fuzz_targets/breaker.rs`) and the proptest run. Public
//! only so that the fuzz crate can call it; compiled and exercised by `cargo test`.
//!
//! Every [`OP_LEN`] bytes are one operation: admit, record a held pass as a success or a
//! failure, drop a held pass, advance the clock, reload one of a few policies (an invalid one
//! included: the breaker must stay total), or record another breaker's pass. After each one:
//! - the transitions returned so far chain (`from` is where the previous one went, `from` ≠
//!   `to`) and end at the state the breaker reports: each change reported exactly once;
//! - half-open: the round's `in_flight` equals the probe passes of this round still held here
//!   (no slot leaks, none is freed twice), and `in_flight + successes ≤ probes`;
//! - the backoff and the open period never exceed `max_open_for`, a rejection's `retry_after`
//!   is positive and no longer than the open period, a disabled breaker allows everything;
//! - window failures never exceed window requests; nothing panics.

// A fuzzing model reports a bug by panicking: that is how libFuzzer and proptest see it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use super::{Admission, Breaker, Jitter, Outcome, Pass, State, Transition, HALF_OPEN_RETRY_AFTER};
use crate::config::policy::BreakerPolicy;

/// An opcode and an argument.
pub(crate) const OP_LEN: usize = 2;

/// Clock steps: none, a nanosecond, around bucket and open-period edges, and past everything.
const STEPS: [Duration; 8] = [
    Duration::ZERO,
    Duration::from_nanos(1),
    Duration::from_millis(1),
    Duration::from_millis(100),
    Duration::from_millis(999),
    Duration::from_secs(1),
    Duration::from_secs(3),
    Duration::from_secs(61),
];

/// The policies a reload can switch to. The first is the starting one.
fn policies() -> [BreakerPolicy; 6] {
    let base = BreakerPolicy {
        enabled: true,
        consecutive_failures: 3,
        failure_rate: 0.5,
        min_requests: 4,
        window: Duration::from_secs(10),
        open_for: Duration::from_secs(1),
        max_open_for: Duration::from_secs(8),
        half_open_probes: 2,
        failure_statuses: vec![502, 503, 504],
    };
    [
        base.clone(),
        BreakerPolicy {
            consecutive_failures: 1,
            failure_rate: 1.0,
            min_requests: 0,
            window: Duration::from_secs(1),
            open_for: Duration::from_secs(3),
            max_open_for: Duration::from_secs(3),
            half_open_probes: 1,
            ..base.clone()
        },
        BreakerPolicy {
            consecutive_failures: 5,
            failure_rate: 0.1,
            min_requests: 10,
            window: Duration::from_nanos(3),
            open_for: Duration::from_millis(100),
            max_open_for: Duration::from_secs(1),
            half_open_probes: 3,
            ..base.clone()
        },
        BreakerPolicy {
            enabled: false,
            ..base.clone()
        },
        BreakerPolicy {
            consecutive_failures: u32::MAX,
            failure_rate: 0.25,
            min_requests: 2,
            window: Duration::from_secs(60),
            max_open_for: Duration::from_secs(60),
            half_open_probes: 4,
            ..base.clone()
        },
        // Everything config validation would refuse.
        BreakerPolicy {
            consecutive_failures: 0,
            failure_rate: f64::NAN,
            window: Duration::ZERO,
            open_for: Duration::ZERO,
            max_open_for: Duration::ZERO,
            half_open_probes: 0,
            ..base
        },
    ]
}

/// Runs the operations encoded in `data`; `Err` names the first broken invariant.
pub fn run_ops(data: &[u8]) -> Result<(), String> {
    let policies = policies();
    let t0 = Instant::now();
    let mut now = t0;
    let mut policy = policies[0].clone();
    let breaker = Breaker::new(&policy, Jitter::seeded(0x5EED), t0);
    let other = Breaker::new(&policy, Jitter::none(), t0);
    let mut held: Vec<Pass> = Vec::new();
    let mut state = State::Closed;
    let mut largest_round = policy.half_open_probes.max(1);

    for (step, op) in data.chunks_exact(OP_LEN).enumerate() {
        let arg = usize::from(op[1]);
        let transition = match op[0] % 8 {
            0 | 1 => admit(&breaker, &policy, now, &mut held)?,
            op @ (2 | 3) if !held.is_empty() => {
                let pass = held.swap_remove(arg % held.len());
                let outcome = if op == 2 {
                    Outcome::Success
                } else {
                    Outcome::Failure
                };
                breaker.record(pass, outcome, now)
            }
            4 if !held.is_empty() => {
                held.swap_remove(arg % held.len()).release();
                None
            }
            5 => {
                now += STEPS[arg % STEPS.len()];
                None
            }
            6 => {
                policy = policies[arg % policies.len()].clone();
                largest_round = largest_round.max(policy.half_open_probes);
                breaker.reconfigure(&policy)
            }
            7 => match other.admit(now) {
                Admission::Allow(pass) | Admission::Probe { pass, .. } => {
                    let outcome = if arg % 2 == 0 {
                        Outcome::Success
                    } else {
                        Outcome::Failure
                    };
                    match breaker.record(pass, outcome, now) {
                        None => None,
                        Some(t) => return Err(format!("foreign pass made {t:?}")),
                    }
                }
                Admission::Reject { .. } => None,
            },
            _ => None,
        };
        if let Some(t) = transition {
            if t.from != state || t.from == t.to {
                return Err(format!("step {step}: {t:?} does not follow {state:?}"));
            }
            state = t.to;
        }
        check(&breaker, &policy, &held, now, state, largest_round)
            .map_err(|e| format!("step {step}: {e}"))?;
    }

    held.clear();
    let snapshot = breaker.snapshot(now);
    if snapshot.probes_in_flight != 0 {
        return Err(format!("{snapshot:?} after every pass was dropped"));
    }
    Ok(())
}

/// One admission, checked against the state; an admitted pass is kept.
fn admit(
    breaker: &Breaker,
    policy: &BreakerPolicy,
    now: Instant,
    held: &mut Vec<Pass>,
) -> Result<Option<Transition>, String> {
    let before = breaker.state();
    match breaker.admit(now) {
        Admission::Allow(pass) => {
            if before != State::Closed {
                return Err(format!("allowed while {before:?}"));
            }
            held.push(pass);
            Ok(None)
        }
        Admission::Probe { pass, transition } => {
            if !policy.enabled || !pass.is_probe() {
                return Err(format!("probe {pass:?} with enabled = {}", policy.enabled));
            }
            held.push(pass);
            Ok(transition)
        }
        Admission::Reject { retry_after } => {
            let longest = policy.max_open_for.max(HALF_OPEN_RETRY_AFTER);
            if !policy.enabled || retry_after.is_zero() || retry_after > longest {
                return Err(format!(
                    "rejected for {retry_after:?} while {before:?}, enabled = {}",
                    policy.enabled
                ));
            }
            Ok(None)
        }
    }
}

fn check(
    breaker: &Breaker,
    policy: &BreakerPolicy,
    held: &[Pass],
    now: Instant,
    state: State,
    largest_round: u32,
) -> Result<(), String> {
    let s = breaker.snapshot(now);
    let fail = |what: &str| Err(format!("{what}: {s:?}"));
    if s.state != state || breaker.state() != state {
        return fail(&format!("transitions ended at {state:?}"));
    }
    if s.enabled != policy.enabled {
        return fail("enabled differs from the policy");
    }
    if s.window.failures > s.window.requests {
        return fail("more failures than requests");
    }
    if s.open_for > policy.max_open_for {
        return fail("backoff over max_open_for");
    }
    let generation = breaker.generation();
    let probes_held = held
        .iter()
        .filter(|p| p.is_probe() && p.generation() == generation)
        .count();
    match s.state {
        State::Closed => {
            if s.opened_at.is_some() || s.next_probe_at.is_some() || s.probes_in_flight != 0 {
                return fail("closed with open or half-open details");
            }
        }
        State::Open => {
            let (Some(opened_at), Some(next_probe_at)) = (s.opened_at, s.next_probe_at) else {
                return fail("open without its times");
            };
            if next_probe_at.saturating_duration_since(opened_at) > policy.max_open_for {
                return fail("open for longer than max_open_for");
            }
            if s.probes_in_flight != 0 || s.probe_successes != 0 {
                return fail("open with probes");
            }
        }
        State::HalfOpen => {
            let probes = breaker.round_probes();
            if s.opened_at.is_none() || s.next_probe_at.is_some() {
                return fail("half-open with the wrong times");
            }
            if usize::try_from(s.probes_in_flight).ok() != Some(probes_held) {
                return fail(&format!("{probes_held} probe passes held"));
            }
            if s.probes_in_flight + s.probe_successes > probes
                || probes == 0
                || probes > largest_round
            {
                return fail(&format!("round of {probes}"));
            }
        }
    }
    Ok(())
}
