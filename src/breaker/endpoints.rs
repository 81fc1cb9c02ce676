//! Endpoint ejection: with one breaker per endpoint, the round robin skips an endpoint whose
//! breaker rejects, until a probe to it succeeds; the upstream as a whole is unusable only when
//! every endpoint rejects.

use std::time::{Duration, Instant};

use super::state::{Admission, Breaker, Pass, Transition};

/// Where a request goes, or why it goes nowhere.
#[must_use = "a chosen endpoint's pass must be kept until the request is recorded or released"]
#[derive(Debug)]
pub enum Pick {
    /// The endpoint at `index` admitted the request, as a probe if `pass.is_probe()`.
    /// `transition` is that endpoint's (open → half-open), if this admission made one.
    Endpoint {
        index: usize,
        pass: Pass,
        transition: Option<Transition>,
    },
    /// No endpoint admits: reject the request. `retry_after` is the soonest any endpoint
    /// may take a probe (zero when there are no endpoints at all).
    Exhausted { retry_after: Duration },
}

/// Asks the endpoints' breakers in round-robin order from `start` (taken modulo the length)
/// and picks the first that admits (allow or probe). A breaker that rejects is left as it was:
/// asking it has no effect.
pub fn pick_endpoint(breakers: &[Breaker], start: usize, now: Instant) -> Pick {
    pick(breakers, start, None, &|_| true, now)
}

/// As [`pick_endpoint`] (or [`pick_other_endpoint`] with `skip`), over the endpoints
/// `eligible` admits only (active health checks take the others out). With none eligible the
/// upstream is exhausted, as when every breaker is open.
pub fn pick_eligible(
    breakers: &[Breaker],
    start: usize,
    skip: Option<usize>,
    eligible: &dyn Fn(usize) -> bool,
    now: Instant,
) -> Pick {
    pick(breakers, start, skip, eligible, now)
}

/// As [`pick_endpoint`], but never `skip`: for the one retry of an idempotent request whose
/// connection to `skip` failed, which must go to another endpoint.
pub fn pick_other_endpoint(breakers: &[Breaker], start: usize, skip: usize, now: Instant) -> Pick {
    pick(breakers, start, Some(skip), &|_| true, now)
}

fn pick(
    breakers: &[Breaker],
    start: usize,
    skip: Option<usize>,
    eligible: &dyn Fn(usize) -> bool,
    now: Instant,
) -> Pick {
    let len = breakers.len();
    let mut soonest: Option<Duration> = None;
    for offset in 0..len {
        let index = start.wrapping_add(offset) % len;
        if Some(index) == skip || !eligible(index) {
            continue;
        }
        match breakers[index].admit(now) {
            Admission::Allow(pass) => {
                return Pick::Endpoint {
                    index,
                    pass,
                    transition: None,
                }
            }
            Admission::Probe { pass, transition } => {
                return Pick::Endpoint {
                    index,
                    pass,
                    transition,
                }
            }
            Admission::Reject { retry_after } => {
                soonest = Some(soonest.map_or(retry_after, |s| s.min(retry_after)));
            }
        }
    }
    Pick::Exhausted {
        retry_after: soonest.unwrap_or(Duration::ZERO),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Jitter, Outcome, State};
    use super::*;
    use crate::config::policy::BreakerPolicy;

    fn policy(open_for_secs: u64) -> BreakerPolicy {
        BreakerPolicy {
            enabled: true,
            consecutive_failures: 1,
            failure_rate: 1.0,
            min_requests: 100,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(open_for_secs),
            max_open_for: Duration::from_secs(300),
            half_open_probes: 1,
            failure_statuses: vec![502, 503, 504],
        }
    }

    fn breakers(open_for_secs: &[u64], t0: Instant) -> Vec<Breaker> {
        open_for_secs
            .iter()
            .map(|&secs| Breaker::new(&policy(secs), Jitter::none(), t0))
            .collect()
    }

    /// Trips a breaker with one failure (its policy opens on the first).
    fn trip(breaker: &Breaker, now: Instant) {
        let Admission::Allow(pass) = breaker.admit(now) else {
            panic!("expected a closed breaker");
        };
        assert!(breaker.record(pass, Outcome::Failure, now).is_some());
        assert_eq!(breaker.state(), State::Open);
    }

    fn chosen(pick: &Pick) -> Option<(usize, bool)> {
        match pick {
            Pick::Endpoint { index, pass, .. } => Some((*index, pass.is_probe())),
            Pick::Exhausted { .. } => None,
        }
    }

    #[test]
    fn starts_at_the_round_robin_index_and_wraps() {
        let t0 = Instant::now();
        let all = breakers(&[30, 30, 30], t0);
        assert_eq!(chosen(&pick_endpoint(&all, 0, t0)), Some((0, false)));
        assert_eq!(chosen(&pick_endpoint(&all, 2, t0)), Some((2, false)));
        assert_eq!(chosen(&pick_endpoint(&all, 4, t0)), Some((1, false)));
        assert_eq!(
            chosen(&pick_endpoint(&all, usize::MAX, t0)),
            Some((0, false))
        );
    }

    #[test]
    fn skips_an_ejected_endpoint_until_it_may_be_probed() {
        let t0 = Instant::now();
        let all = breakers(&[30, 30, 30], t0);
        trip(&all[1], t0);
        assert_eq!(chosen(&pick_endpoint(&all, 1, t0)), Some((2, false)));
        // After its open period, the same start index makes the next request its probe.
        let later = t0 + Duration::from_secs(30);
        let pick = pick_endpoint(&all, 1, later);
        assert_eq!(chosen(&pick), Some((1, true)));
        assert!(matches!(
            pick,
            Pick::Endpoint {
                transition: Some(_),
                ..
            }
        ));
        // Its single probe slot is taken: the next request skips it again.
        assert_eq!(chosen(&pick_endpoint(&all, 1, later)), Some((2, false)));
    }

    #[test]
    fn exhausted_reports_the_soonest_probe() {
        let t0 = Instant::now();
        let all = breakers(&[30, 10, 20], t0);
        for breaker in &all {
            trip(breaker, t0);
        }
        let now = t0 + Duration::from_secs(4);
        let pick = pick_endpoint(&all, 0, now);
        assert!(matches!(
            pick,
            Pick::Exhausted { retry_after } if retry_after == Duration::from_secs(6)
        ));
        // Asking rejected breakers changed nothing.
        assert!(all.iter().all(|b| b.state() == State::Open));
    }

    #[test]
    fn no_endpoints_is_exhausted_now() {
        let pick = pick_endpoint(&[], 3, Instant::now());
        assert!(matches!(pick, Pick::Exhausted { retry_after } if retry_after.is_zero()));
    }

    #[test]
    fn the_retry_goes_elsewhere() {
        let t0 = Instant::now();
        let all = breakers(&[30, 30], t0);
        assert_eq!(
            chosen(&pick_other_endpoint(&all, 0, 0, t0)),
            Some((1, false))
        );
        assert_eq!(
            chosen(&pick_other_endpoint(&all, 1, 0, t0)),
            Some((1, false))
        );
        trip(&all[1], t0);
        assert!(matches!(
            pick_other_endpoint(&all, 0, 0, t0),
            Pick::Exhausted { retry_after } if retry_after == Duration::from_secs(30)
        ));
        let one = breakers(&[30], t0);
        assert!(matches!(
            pick_other_endpoint(&one, 0, 0, t0),
            Pick::Exhausted { retry_after } if retry_after.is_zero()
        ));
    }
}
