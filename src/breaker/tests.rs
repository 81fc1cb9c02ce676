//! The breaker through its public API, on a fake clock (`t0 + offset`; nothing sleeps): every
//! transition, the window's edges, backoff, probes, stale outcomes, reloads, concurrency, and
//! random operation sequences (those two in `tests/concurrency.rs`). The window, jitter, limiter and endpoint picking are tested
//! beside their code.

use super::window::Counts;
use std::time::{Duration, Instant};

use super::*;
use crate::config::policy::BreakerPolicy;

const MS: Duration = Duration::from_millis(1);
const NS: Duration = Duration::from_nanos(1);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Opens on 3 failures in a row only (the rate needs more requests than any test sends);
/// 30 s open, doubling to at most 5 minutes; 2 probes.
fn policy() -> BreakerPolicy {
    BreakerPolicy {
        enabled: true,
        consecutive_failures: 3,
        failure_rate: 1.0,
        min_requests: 1_000_000,
        window: secs(10),
        open_for: secs(30),
        max_open_for: secs(300),
        half_open_probes: 2,
        failure_statuses: vec![502, 503, 504],
    }
}

/// Opens on the rate only.
fn rate_policy(failure_rate: f64, min_requests: u32) -> BreakerPolicy {
    BreakerPolicy {
        consecutive_failures: u32::MAX,
        failure_rate,
        min_requests,
        ..policy()
    }
}

fn breaker(policy: &BreakerPolicy, t0: Instant) -> Breaker {
    Breaker::new(policy, Jitter::none(), t0)
}

#[track_caller]
fn allow(breaker: &Breaker, now: Instant) -> Pass {
    match breaker.admit(now) {
        Admission::Allow(pass) => pass,
        other => panic!("expected Allow, got {other:?}"),
    }
}

#[track_caller]
fn probe(breaker: &Breaker, now: Instant) -> (Pass, Option<Transition>) {
    match breaker.admit(now) {
        Admission::Probe { pass, transition } => {
            assert!(pass.is_probe());
            (pass, transition)
        }
        other => panic!("expected Probe, got {other:?}"),
    }
}

#[track_caller]
fn reject(breaker: &Breaker, now: Instant) -> Duration {
    match breaker.admit(now) {
        Admission::Reject { retry_after } => retry_after,
        other => panic!("expected Reject, got {other:?}"),
    }
}

/// One request admitted while closed and recorded at once.
#[track_caller]
fn send(breaker: &Breaker, outcome: Outcome, now: Instant) -> Option<Transition> {
    let pass = allow(breaker, now);
    breaker.record(pass, outcome, now)
}

fn transition(from: State, to: State, reason: Reason) -> Option<Transition> {
    Some(Transition { from, to, reason })
}

fn counts(requests: u64, failures: u64) -> Counts {
    Counts { requests, failures }
}

/// Opens `breaker` (built with [`policy`]) at `now` with three failures.
#[track_caller]
fn trip(breaker: &Breaker, now: Instant) {
    send(breaker, Outcome::Failure, now);
    send(breaker, Outcome::Failure, now);
    assert_eq!(
        send(breaker, Outcome::Failure, now),
        transition(State::Closed, State::Open, Reason::ConsecutiveFailures)
    );
}

// --- closed → open -----------------------------------------------------------------------

#[test]
fn closed_allows_and_counts_in_the_window() {
    let t0 = Instant::now();
    let b = breaker(&policy(), t0);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(send(&b, Outcome::Success, t0), None);
    assert_eq!(send(&b, Outcome::Failure, t0), None);
    assert_eq!(send(&b, Outcome::Success, t0), None);
    let s = b.snapshot(t0);
    assert_eq!(s.window, counts(3, 1));
    assert_eq!(s.consecutive_failures, 0);
    assert!(s.enabled);
}

#[test]
fn consecutive_failures_open_it_at_exactly_the_limit() {
    let t0 = Instant::now();
    let b = breaker(&policy(), t0);
    assert_eq!(send(&b, Outcome::Failure, t0), None);
    assert_eq!(send(&b, Outcome::Failure, t0), None);
    assert_eq!(b.snapshot(t0).consecutive_failures, 2);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(
        send(&b, Outcome::Failure, t0),
        transition(State::Closed, State::Open, Reason::ConsecutiveFailures)
    );
    assert_eq!(b.state(), State::Open);
}

#[test]
fn a_success_resets_the_consecutive_count() {
    let t0 = Instant::now();
    let b = breaker(&policy(), t0);
    send(&b, Outcome::Failure, t0);
    send(&b, Outcome::Failure, t0);
    send(&b, Outcome::Success, t0);
    assert_eq!(b.snapshot(t0).consecutive_failures, 0);
    assert_eq!(send(&b, Outcome::Failure, t0), None);
    assert_eq!(send(&b, Outcome::Failure, t0), None);
    assert_eq!(b.state(), State::Closed);
    assert!(send(&b, Outcome::Failure, t0).is_some());
}

#[test]
fn a_rate_exactly_at_failure_rate_trips() {
    let t0 = Instant::now();
    let b = breaker(&rate_policy(0.5, 4), t0);
    assert_eq!(send(&b, Outcome::Success, t0), None);
    assert_eq!(send(&b, Outcome::Failure, t0), None); // 1 of 2, but under min_requests
    assert_eq!(send(&b, Outcome::Success, t0), None);
    assert_eq!(
        send(&b, Outcome::Failure, t0), // 2 of 4 = 0.5
        transition(State::Closed, State::Open, Reason::FailureRate)
    );
}

#[test]
fn just_under_the_rate_does_not_trip() {
    let t0 = Instant::now();
    let b = breaker(&rate_policy(0.5, 4), t0);
    for _ in 0..3 {
        send(&b, Outcome::Success, t0);
    }
    assert_eq!(send(&b, Outcome::Failure, t0), None); // 1 of 4
    assert_eq!(send(&b, Outcome::Failure, t0), None); // 2 of 5
    assert_eq!(b.state(), State::Closed);
    assert!(send(&b, Outcome::Failure, t0).is_some()); // 3 of 6
}

#[test]
fn the_rate_needs_min_requests() {
    let t0 = Instant::now();
    let b = breaker(&rate_policy(0.5, 4), t0);
    for _ in 0..3 {
        assert_eq!(send(&b, Outcome::Failure, t0), None); // 100%, but 1..3 requests
    }
    assert_eq!(
        send(&b, Outcome::Failure, t0),
        transition(State::Closed, State::Open, Reason::FailureRate)
    );
}

#[test]
fn the_rate_is_checked_on_failures_only() {
    let t0 = Instant::now();
    let b = breaker(&rate_policy(0.5, 4), t0);
    send(&b, Outcome::Failure, t0);
    send(&b, Outcome::Failure, t0);
    send(&b, Outcome::Success, t0);
    // The fourth request makes 2 of 4 = 0.5 with min_requests reached, but it is a success.
    assert_eq!(send(&b, Outcome::Success, t0), None);
    assert_eq!(b.state(), State::Closed);
    assert!(send(&b, Outcome::Failure, t0).is_some()); // 3 of 5
}

#[test]
fn the_rate_is_compared_without_rounding_errors() {
    // 0.1 * 30.0 is 3.0000000000000004 in floating point, so 3 of 30 would not "reach" 0.1.
    let t0 = Instant::now();
    let b = breaker(&rate_policy(0.1, 30), t0);
    for _ in 0..27 {
        send(&b, Outcome::Success, t0);
    }
    assert_eq!(send(&b, Outcome::Failure, t0), None);
    assert_eq!(send(&b, Outcome::Failure, t0), None);
    assert_eq!(
        send(&b, Outcome::Failure, t0),
        transition(State::Closed, State::Open, Reason::FailureRate)
    );
}

#[test]
fn either_condition_opens_it_whichever_comes_first() {
    let t0 = Instant::now();
    let b = breaker(
        &BreakerPolicy {
            consecutive_failures: 3,
            ..rate_policy(0.5, 4)
        },
        t0,
    );
    send(&b, Outcome::Failure, t0);
    send(&b, Outcome::Failure, t0);
    // Three in a row with three requests: the count trips before min_requests is reached.
    assert_eq!(
        send(&b, Outcome::Failure, t0),
        transition(State::Closed, State::Open, Reason::ConsecutiveFailures)
    );
}

// --- the window's edges ------------------------------------------------------------------

#[test]
fn requests_on_bucket_boundaries_leave_the_window_one_bucket_apart() {
    // window 10 s: buckets of 1 s. One request just before the 1 s boundary, one on it.
    let t0 = Instant::now();
    let b = breaker(&rate_policy(1.0, 1_000), t0);
    send(&b, Outcome::Failure, t0 + secs(1) - NS);
    send(&b, Outcome::Success, t0 + secs(1));
    assert_eq!(b.snapshot(t0 + secs(10) - NS).window, counts(2, 1));
    assert_eq!(b.snapshot(t0 + secs(10)).window, counts(1, 0));
    assert_eq!(b.snapshot(t0 + secs(11) - NS).window, counts(1, 0));
    assert_eq!(b.snapshot(t0 + secs(11)).window, counts(0, 0));
}

#[test]
fn failures_that_left_the_window_do_not_count_toward_the_rate() {
    let t0 = Instant::now();
    let p = rate_policy(0.5, 4);
    // Three failures at t0, the fourth 9.999 s later: all four in the window → trips.
    let b = breaker(&p, t0);
    for _ in 0..3 {
        send(&b, Outcome::Failure, t0);
    }
    assert!(send(&b, Outcome::Failure, t0 + secs(10) - NS).is_some());
    // The same at 10 s: the first three have left; one request is under min_requests.
    let b = breaker(&p, t0);
    for _ in 0..3 {
        send(&b, Outcome::Failure, t0);
    }
    assert_eq!(send(&b, Outcome::Failure, t0 + secs(10)), None);
    assert_eq!(b.snapshot(t0 + secs(10)).window, counts(1, 1));
}

#[test]
fn old_successes_leave_too_so_the_rate_rises() {
    let t0 = Instant::now();
    let b = breaker(&rate_policy(0.5, 4), t0);
    for _ in 0..10 {
        send(&b, Outcome::Success, t0);
    }
    let later = t0 + secs(5);
    for _ in 0..3 {
        send(&b, Outcome::Failure, later); // 3 of 13
    }
    assert_eq!(b.state(), State::Closed);
    // At 10 s the ten successes leave: 1 more failure makes 4 of 4.
    assert!(send(&b, Outcome::Failure, t0 + secs(10)).is_some());
}

#[test]
fn a_tiny_window_is_ten_nanoseconds_long() {
    let t0 = Instant::now();
    let b = breaker(
        &BreakerPolicy {
            window: Duration::from_nanos(3),
            ..rate_policy(1.0, 1_000)
        },
        t0,
    );
    send(&b, Outcome::Failure, t0);
    assert_eq!(b.snapshot(t0 + 9 * NS).window, counts(1, 1));
    assert_eq!(b.snapshot(t0 + 10 * NS).window, counts(0, 0));
}

// --- open → half-open ----------------------------------------------------------------------

#[test]
fn open_rejects_until_the_next_probe_time() {
    let t0 = Instant::now();
    let b = breaker(&policy(), t0);
    let opened = t0 + secs(5);
    trip(&b, opened);
    assert_eq!(reject(&b, opened), secs(30));
    assert_eq!(reject(&b, opened + Duration::from_millis(29_500)), 500 * MS);
    assert_eq!(reject(&b, opened + secs(30) - NS), NS);
    let s = b.snapshot(opened);
    assert_eq!(s.opened_at, Some(opened));
    assert_eq!(s.next_probe_at, Some(opened + secs(30)));
    assert_eq!(s.open_for, secs(30));
    // Exactly at the probe time, the first request is the probe and reports the change.
    let (_pass, t) = probe(&b, opened + secs(30));
    assert_eq!(
        t,
        transition(State::Open, State::HalfOpen, Reason::OpenElapsed)
    );
    assert_eq!(b.state(), State::HalfOpen);
}

#[test]
fn open_stays_open_without_requests_and_shows_the_probe_time_passed() {
    let t0 = Instant::now();
    let b = breaker(&policy(), t0);
    trip(&b, t0);
    let s = b.snapshot(t0 + secs(60));
    assert_eq!(s.state, State::Open);
    assert_eq!(s.next_probe_at, Some(t0 + secs(30)));
}

// --- half-open ---------------------------------------------------------------------------

#[test]
fn half_open_admits_half_open_probes_at_a_time() {
    let t0 = Instant::now();
    let b = breaker(&policy(), t0);
    trip(&b, t0);
    let now = t0 + secs(30);
    let (_p1, t1) = probe(&b, now);
    let (_p2, t2) = probe(&b, now);
    assert!(t1.is_some());
    assert_eq!(t2, None, "the transition is reported once");
    assert_eq!(reject(&b, now), HALF_OPEN_RETRY_AFTER);
    let s = b.snapshot(now);
    assert_eq!((s.probes_in_flight, s.probe_successes), (2, 0));
    assert_eq!(s.opened_at, Some(t0));
    assert_eq!(s.next_probe_at, None);
}

#[test]
fn a_probe_dropped_without_an_outcome_frees_its_slot() {
    let t0 = Instant::now();
    let b = breaker(&policy(), t0);
    trip(&b, t0);
    let now = t0 + secs(30);
    let (p1, _) = probe(&b, now);
    let (p2, _) = probe(&b, now);
    reject(&b, now);
    drop(p1); // the client went away
    assert_eq!(b.snapshot(now).probes_in_flight, 1);
    let (p3, _) = probe(&b, now);
    p2.release();
    assert_eq!(b.record(p3, Outcome::Success, now), None);
    // One success, nothing in flight: one more probe completes the round.
    let (p4, _) = probe(&b, now);
    reject(&b, now);
    assert_eq!(
        b.record(p4, Outcome::Success, now),
        transition(State::HalfOpen, State::Closed, Reason::ProbesSucceeded)
    );
}

#[test]
fn all_probes_succeeding_close_it_cold() {
    let t0 = Instant::now();
    let b = breaker(&policy(), t0);
    send(&b, Outcome::Success, t0);
    trip(&b, t0);
    let now = t0 + secs(30);
    let (p1, _) = probe(&b, now);
    let (p2, _) = probe(&b, now);
    assert_eq!(b.record(p1, Outcome::Success, now), None);
    assert_eq!(b.snapshot(now).probe_successes, 1);
    assert_eq!(
        b.record(p2, Outcome::Success, now),
        transition(State::HalfOpen, State::Closed, Reason::ProbesSucceeded)
    );
    let s = b.snapshot(now);
    assert_eq!(s.state, State::Closed);
    assert_eq!(s.window, counts(0, 0));
    assert_eq!(s.consecutive_failures, 0);
    assert_eq!((s.opened_at, s.next_probe_at), (None, None));
    assert_eq!((s.probes_in_flight, s.probe_successes), (0, 0));
    let _ = allow(&b, now);
}

#[test]
fn any_failed_probe_ends_the_round() {
    let t0 = Instant::now();
    let b = breaker(&policy(), t0);
    trip(&b, t0);
    let now = t0 + secs(30);
    let (p1, _) = probe(&b, now);
    let (p2, _) = probe(&b, now);
    assert_eq!(
        b.record(p1, Outcome::Failure, now),
        transition(State::HalfOpen, State::Open, Reason::ProbeFailed)
    );
    // The other probe of that round finishes later: it neither closes nor reopens anything.
    assert_eq!(b.record(p2, Outcome::Success, now + MS), None);
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.snapshot(now).opened_at, Some(now));
}

#[test]
fn failed_rounds_double_the_open_period_up_to_max_open_for_and_closing_resets_it() {
    let t0 = Instant::now();
    let b = breaker(
        &BreakerPolicy {
            max_open_for: secs(100),
            half_open_probes: 1,
            ..policy()
        },
        t0,
    );
    trip(&b, t0);
    let mut now = t0;
    for expected in [30, 60, 100, 100] {
        assert_eq!(reject(&b, now), secs(expected));
        assert_eq!(b.snapshot(now).open_for, secs(expected));
        now += secs(expected);
        let (pass, _) = probe(&b, now);
        assert_eq!(
            b.record(pass, Outcome::Failure, now),
            transition(State::HalfOpen, State::Open, Reason::ProbeFailed)
        );
    }
    assert_eq!(reject(&b, now), secs(100));
    // A successful round closes it and resets the backoff.
    now += secs(100);
    let (pass, _) = probe(&b, now);
    assert!(b.record(pass, Outcome::Success, now).is_some());
    assert_eq!(b.snapshot(now).open_for, secs(30));
    trip(&b, now);
    assert_eq!(reject(&b, now), secs(30));
}

// --- stale outcomes ------------------------------------------------------------------------

#[test]
fn a_late_outcome_from_closed_does_not_touch_half_open_or_the_next_window() {
    let t0 = Instant::now();
    let b = breaker(&policy(), t0);
    // Slow requests admitted while closed, still running when the breaker opens.
    let slow: Vec<Pass> = (0..4).map(|_| allow(&b, t0)).collect();
    let mut slow = slow.into_iter();
    trip(&b, t0);
    let now = t0 + secs(30);
    let (p1, _) = probe(&b, now);
    // A late success is not a probe success; a late failure does not reopen it.
    assert_eq!(b.record(slow.next().unwrap(), Outcome::Success, now), None);
    assert_eq!(b.record(slow.next().unwrap(), Outcome::Failure, now), None);
    let s = b.snapshot(now);
    assert_eq!(s.state, State::HalfOpen);
    assert_eq!((s.probes_in_flight, s.probe_successes), (1, 0));
    // Nor does it free a probe slot.
    drop(slow.next());
    assert_eq!(b.snapshot(now).probes_in_flight, 1);
    // After the breaker closes, the last one does not land in the fresh window.
    let (p2, _) = probe(&b, now);
    b.record(p1, Outcome::Success, now);
    assert!(b.record(p2, Outcome::Success, now).is_some());
    assert_eq!(b.record(slow.next().unwrap(), Outcome::Failure, now), None);
    assert_eq!(b.snapshot(now).window, counts(0, 0));
    assert_eq!(b.snapshot(now).consecutive_failures, 0);
}

#[test]
fn a_probe_from_an_earlier_round_is_ignored() {
    let t0 = Instant::now();
    let b = breaker(&policy(), t0);
    trip(&b, t0);
    let first = t0 + secs(30);
    let (old, _) = probe(&b, first);
    let (failing, _) = probe(&b, first);
    b.record(failing, Outcome::Failure, first); // open again, for 60 s
    let second = first + secs(60);
    let (current, t) = probe(&b, second);
    assert!(t.is_some());
    // The old probe's success is not this round's, and its drop frees none of its slots.
    assert_eq!(b.record(old, Outcome::Success, second), None);
    let s = b.snapshot(second);
    assert_eq!((s.probes_in_flight, s.probe_successes), (1, 0));
    drop(current);
    assert_eq!(b.snapshot(second).probes_in_flight, 0);
}

#[test]
fn a_pass_from_another_breaker_is_ignored() {
    let t0 = Instant::now();
    let (a, b) = (breaker(&policy(), t0), breaker(&policy(), t0));
    for _ in 0..5 {
        let pass = allow(&b, t0);
        assert_eq!(a.record(pass, Outcome::Failure, t0), None);
    }
    assert_eq!(a.snapshot(t0).window, counts(0, 0));
    assert_eq!(b.snapshot(t0).window, counts(0, 0));
    // A foreign probe's slot goes back to its own breaker.
    trip(&b, t0);
    let (pass, _) = probe(&b, t0 + secs(30));
    assert_eq!(a.record(pass, Outcome::Success, t0 + secs(30)), None);
    assert_eq!(b.snapshot(t0 + secs(30)).probes_in_flight, 0);
}

// --- reloads -------------------------------------------------------------------------------

#[test]
fn reconfigure_keeps_the_state_and_applies_new_thresholds_to_it() {
    let t0 = Instant::now();
    let b = breaker(&policy(), t0);
    send(&b, Outcome::Success, t0);
    send(&b, Outcome::Failure, t0);
    send(&b, Outcome::Failure, t0);
    let stricter = BreakerPolicy {
        consecutive_failures: 10,
        ..policy()
    };
    assert_eq!(b.reconfigure(&stricter), None);
    let s = b.snapshot(t0);
    assert_eq!(
        (s.state, s.window, s.consecutive_failures),
        (State::Closed, counts(3, 2), 2)
    );
    assert_eq!(send(&b, Outcome::Failure, t0), None); // 3 in a row no longer trips
                                                      // Lower than the run so far: the next failure trips.
    let looser = BreakerPolicy {
        consecutive_failures: 2,
        ..policy()
    };
    b.reconfigure(&looser);
    assert!(send(&b, Outcome::Failure, t0).is_some());
    // An open breaker stays open, with its probe time.
    assert_eq!(b.reconfigure(&policy()), None);
    assert_eq!(b.state(), State::Open);
    assert_eq!(reject(&b, t0), secs(30));
}

#[test]
fn a_new_max_open_for_shortens_the_open_period_in_progress() {
    let t0 = Instant::now();
    let b = breaker(&policy(), t0);
    trip(&b, t0);
    let shorter = BreakerPolicy {
        max_open_for: secs(10),
        ..policy()
    };
    b.reconfigure(&shorter);
    assert_eq!(reject(&b, t0 + secs(4)), secs(6));
    assert_eq!(b.snapshot(t0).open_for, secs(10));
    // A longer one does not lengthen it.
    b.reconfigure(&policy());
    assert_eq!(reject(&b, t0 + secs(4)), secs(6));
    let (_pass, t) = probe(&b, t0 + secs(10));
    assert!(t.is_some());
}

#[test]
fn a_new_round_size_applies_from_the_next_round() {
    let t0 = Instant::now();
    let b = breaker(&policy(), t0);
    trip(&b, t0);
    let now = t0 + secs(30);
    let (p1, _) = probe(&b, now);
    b.reconfigure(&BreakerPolicy {
        half_open_probes: 1,
        ..policy()
    });
    let (p2, _) = probe(&b, now); // still two slots this round
    reject(&b, now);
    assert_eq!(b.record(p1, Outcome::Success, now), None);
    assert!(b.record(p2, Outcome::Success, now).is_some());
}

#[test]
fn a_new_window_length_keeps_the_counts() {
    let t0 = Instant::now();
    let b = breaker(&policy(), t0);
    send(&b, Outcome::Success, t0);
    send(&b, Outcome::Failure, t0 + secs(1));
    b.reconfigure(&BreakerPolicy {
        window: secs(20),
        ..policy()
    });
    assert_eq!(b.snapshot(t0 + secs(1)).window, counts(2, 1));
    // Now 20 s long, in buckets of 2 s: both requests are in the first bucket, still there
    // at 15 s, gone at 20 s.
    assert_eq!(b.snapshot(t0 + secs(15)).window, counts(2, 1));
    assert_eq!(b.snapshot(t0 + secs(20) - NS).window, counts(2, 1));
    assert_eq!(b.snapshot(t0 + secs(20)).window, counts(0, 0));
}

// --- disabled ------------------------------------------------------------------------------

#[test]
fn a_disabled_breaker_allows_everything_and_counts_nothing() {
    let t0 = Instant::now();
    let b = breaker(
        &BreakerPolicy {
            enabled: false,
            consecutive_failures: 1,
            ..policy()
        },
        t0,
    );
    for _ in 0..10 {
        assert_eq!(send(&b, Outcome::Failure, t0), None);
    }
    let s = b.snapshot(t0);
    assert!(!s.enabled);
    assert_eq!(
        (s.state, s.window, s.consecutive_failures),
        (State::Closed, counts(0, 0), 0)
    );
}

#[test]
fn disabling_closes_an_open_breaker_and_enabling_starts_cold() {
    let t0 = Instant::now();
    let b = breaker(&policy(), t0);
    trip(&b, t0);
    let disabled = BreakerPolicy {
        enabled: false,
        ..policy()
    };
    assert_eq!(
        b.reconfigure(&disabled),
        transition(State::Open, State::Closed, Reason::Disabled)
    );
    assert_eq!(b.reconfigure(&disabled), None);
    let pass = allow(&b, t0);
    assert_eq!(b.reconfigure(&policy()), None);
    let s = b.snapshot(t0);
    assert!(s.enabled);
    assert_eq!(
        (s.state, s.window, s.consecutive_failures),
        (State::Closed, counts(0, 0), 0)
    );
    // A pass from the disabled period does not count once enabled.
    assert_eq!(b.record(pass, Outcome::Failure, t0), None);
    assert_eq!(b.snapshot(t0).window, counts(0, 0));
    // A closed breaker disabled reports nothing: it was closed and still shows closed.
    assert_eq!(b.reconfigure(&disabled), None);
}

#[test]
fn disabling_a_closed_breaker_empties_it() {
    let t0 = Instant::now();
    let b = breaker(&policy(), t0);
    send(&b, Outcome::Failure, t0);
    send(&b, Outcome::Failure, t0);
    let pass = allow(&b, t0);
    b.reconfigure(&BreakerPolicy {
        enabled: false,
        ..policy()
    });
    let s = b.snapshot(t0);
    assert_eq!((s.window, s.consecutive_failures), (counts(0, 0), 0));
    // Re-enabled, the failures before do not add up with new ones.
    b.reconfigure(&policy());
    assert_eq!(b.record(pass, Outcome::Failure, t0), None);
    assert_eq!(send(&b, Outcome::Failure, t0), None);
    assert_eq!(send(&b, Outcome::Failure, t0), None);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn disabling_a_half_open_breaker_frees_nothing_twice() {
    let t0 = Instant::now();
    let b = breaker(&policy(), t0);
    trip(&b, t0);
    let (pass, _) = probe(&b, t0 + secs(30));
    let disabled = BreakerPolicy {
        enabled: false,
        ..policy()
    };
    assert_eq!(
        b.reconfigure(&disabled),
        transition(State::HalfOpen, State::Closed, Reason::Disabled)
    );
    assert_eq!(b.record(pass, Outcome::Failure, t0 + secs(30)), None);
    assert_eq!(b.state(), State::Closed);
}

// --- jitter, time, retry-after ----------------------------------------------------------

#[test]
fn jitter_spreads_the_open_period_deterministically_and_within_max_open_for() {
    let t0 = Instant::now();
    let mut expected = Jitter::seeded(9);
    let expected = expected.apply(secs(30));
    assert_ne!(expected, secs(30));
    assert!(expected >= secs(27) && expected <= secs(33));
    for _ in 0..2 {
        let b = Breaker::new(&policy(), Jitter::seeded(9), t0);
        trip(&b, t0);
        assert_eq!(reject(&b, t0), expected);
    }
    // At the cap, jitter may shorten the period but never lengthen it.
    let capped = BreakerPolicy {
        max_open_for: secs(30),
        ..policy()
    };
    for seed in 0..50 {
        let b = Breaker::new(&capped, Jitter::seeded(seed), t0);
        trip(&b, t0);
        let retry_after = reject(&b, t0);
        assert!(
            retry_after <= secs(30) && retry_after >= secs(27),
            "{retry_after:?}"
        );
    }
}

#[test]
fn instants_before_creation_count_as_creation() {
    let t0 = Instant::now() + secs(100);
    let b = breaker(&policy(), t0);
    send(&b, Outcome::Failure, t0 - secs(50));
    assert_eq!(b.snapshot(t0).window, counts(1, 1));
    send(&b, Outcome::Failure, t0 - secs(100));
    assert!(send(&b, Outcome::Failure, t0 - secs(100)).is_some());
    assert_eq!(reject(&b, t0 - secs(1)), secs(30));
    assert_eq!(b.snapshot(t0).opened_at, Some(t0));
}

#[test]
fn retry_after_secs_rounds_up_to_at_least_one() {
    assert_eq!(retry_after_secs(Duration::ZERO), 1);
    assert_eq!(retry_after_secs(NS), 1);
    assert_eq!(retry_after_secs(secs(1)), 1);
    assert_eq!(retry_after_secs(secs(1) + NS), 2);
    assert_eq!(retry_after_secs(Duration::from_millis(29_500)), 30);
    assert_eq!(retry_after_secs(Duration::MAX), u64::MAX);
}

#[test]
fn state_labels_and_gauge_values() {
    let names: Vec<_> = [State::Closed, State::HalfOpen, State::Open]
        .iter()
        .map(|s| (s.as_str(), s.gauge_value()))
        .collect();
    assert_eq!(names, [("closed", 0), ("half_open", 1), ("open", 2)]);
    assert_eq!(
        serde_json::to_string(&State::HalfOpen).ok().as_deref(),
        Some("\"half_open\"")
    );
    assert_eq!(Reason::ConsecutiveFailures.as_str(), "consecutive_failures");
}

mod concurrency;
