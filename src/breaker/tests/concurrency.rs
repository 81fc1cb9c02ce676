//! Shared handles from many threads, and random operation sequences: whatever the
//! interleaving, counts are exact, each state change is reported once and the invariants hold.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;

use proptest::prelude::*;

use super::*;

#[test]
fn clones_share_one_state() {
    let t0 = Instant::now();
    let b = breaker(&policy(), t0);
    let clone = b.clone();
    trip(&clone, t0);
    assert_eq!(b.state(), State::Open);
    assert!(format!("{b:?}").contains("Open"));
}

// --- concurrency -----------------------------------------------------------------------------

const THREADS: usize = 8;
const PER_THREAD: usize = 10_000;

/// 8 threads × 10 000 records, a third of them failures, spread over 10 s of a 60 s window:
/// every one is counted, none twice.
#[test]
fn concurrent_records_count_exactly() {
    let t0 = Instant::now();
    let b = breaker(
        &BreakerPolicy {
            window: secs(60),
            ..rate_policy(1.0, u32::MAX)
        },
        t0,
    );
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                barrier.wait();
                for i in 0..PER_THREAD {
                    let now = t0 + MS * u32::try_from(i).unwrap_or(0);
                    let outcome = if i % 3 == 0 {
                        Outcome::Failure
                    } else {
                        Outcome::Success
                    };
                    assert_eq!(send(&b, outcome, now), None);
                }
            });
        }
    });
    let failures_per_thread = PER_THREAD.div_ceil(3);
    assert_eq!(
        b.snapshot(t0 + secs(10)).window,
        counts(
            (THREADS * PER_THREAD) as u64,
            (THREADS * failures_per_thread) as u64
        )
    );
}

/// Passes admitted while closed, then failures recorded from 8 threads at once, far past both
/// thresholds: one transition in all, and the breaker open.
#[test]
fn a_threshold_crossed_concurrently_reports_one_transition() {
    let t0 = Instant::now();
    let b = breaker(
        &BreakerPolicy {
            consecutive_failures: 100,
            failure_rate: 0.5,
            min_requests: 100,
            ..policy()
        },
        t0,
    );
    let transitions = AtomicUsize::new(0);
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                let passes: Vec<Pass> = (0..PER_THREAD).map(|_| allow(&b, t0)).collect();
                barrier.wait();
                for pass in passes {
                    if let Some(t) = b.record(pass, Outcome::Failure, t0) {
                        assert_eq!((t.from, t.to), (State::Closed, State::Open));
                        transitions.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(transitions.load(Ordering::Relaxed), 1);
    assert_eq!(b.state(), State::Open);
    // Records after the trip belong to the closed period that ended: not counted.
    let s = b.snapshot(t0);
    assert!(s.window.requests >= 100 && s.window.requests < (THREADS * PER_THREAD) as u64);
}

/// 8 threads asking at once when the open period is over: one reports the transition, and
/// exactly `half_open_probes` get a probe.
#[test]
fn concurrent_admissions_get_exactly_half_open_probes() {
    let t0 = Instant::now();
    let b = breaker(
        &BreakerPolicy {
            half_open_probes: 3,
            ..policy()
        },
        t0,
    );
    trip(&b, t0);
    let now = t0 + secs(30);
    let (probes, transitions) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                barrier.wait();
                let mut held = Vec::new();
                for _ in 0..100 {
                    if let Admission::Probe { pass, transition } = b.admit(now) {
                        probes.fetch_add(1, Ordering::Relaxed);
                        transitions.fetch_add(usize::from(transition.is_some()), Ordering::Relaxed);
                        held.push(pass);
                    }
                }
                barrier.wait(); // hold every probe until all threads are done asking
            });
        }
    });
    assert_eq!(probes.load(Ordering::Relaxed), 3);
    assert_eq!(transitions.load(Ordering::Relaxed), 1);
    assert_eq!(b.snapshot(now).probes_in_flight, 0, "every probe dropped");
}

// --- random sequences ----------------------------------------------------------------------

#[test]
fn fixed_operation_sequences_keep_the_invariants() {
    let sequences: [&[u8]; 5] = [
        &[],
        // admit ×3, fail ×3 → open; advance 61 s; admit ×3 (two probes, one rejected);
        // succeed both → closed.
        &[
            0, 0, 0, 0, 0, 0, 3, 0, 3, 0, 3, 0, 5, 7, 0, 0, 0, 0, 0, 0, 2, 0, 2, 0,
        ],
        // the same, then a failed probe, a reload to the invalid policy, probes, a reload to
        // disabled, foreign passes.
        &[
            0, 0, 0, 0, 0, 0, 3, 0, 3, 0, 3, 0, 5, 7, 0, 0, 0, 0, 3, 0, 6, 5, 0, 0, 0, 0, 2, 0, 3,
            1, 6, 3, 7, 0, 7, 1, 0, 0, 6, 0,
        ],
        // probes dropped without outcomes, then the round finished.
        &[
            0, 0, 0, 0, 0, 0, 3, 0, 3, 0, 3, 0, 5, 7, 0, 0, 0, 0, 4, 0, 4, 0, 0, 0, 0, 0, 2, 1, 2,
            0,
        ],
        // reloads across every policy while open.
        &[
            0, 0, 3, 0, 6, 1, 0, 0, 3, 0, 6, 2, 5, 3, 6, 4, 5, 2, 0, 0, 6, 0,
        ],
    ];
    for ops in sequences {
        assert_eq!(fuzzing::run_ops(ops), Ok(()), "{ops:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_the_invariants(ops in prop::collection::vec(any::<u8>(), 0..400)) {
        prop_assert_eq!(fuzzing::run_ops(&ops), Ok(()));
    }

    /// Biased toward what moves the state: admits and failures, and clock steps.
    #[test]
    fn random_failure_heavy_operations_keep_the_invariants(
        ops in prop::collection::vec(
            (prop::sample::select(vec![0u8, 0, 2, 3, 3, 4, 5, 6]), any::<u8>()),
            0..300,
        )
    ) {
        let bytes: Vec<u8> = ops.into_iter().flat_map(|(op, arg)| [op, arg]).collect();
        prop_assert_eq!(fuzzing::run_ops(&bytes), Ok(()));
    }
}

/// What the proxy keeps in its per-request context must cross threads.
#[test]
fn handles_and_passes_are_send_and_sync() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Breaker>();
    send_sync::<Pass>();
    send_sync::<Admission>();
    send_sync::<Limiter>();
    send_sync::<Permit>();
    send_sync::<Pick>();
}
