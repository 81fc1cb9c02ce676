//! The breaker's state machine: what `admit` answers in each state, what `record` counts, and
//! how every state change happens exactly once. The module doc (`breaker/mod.rs`) lists the
//! behaviour; this file explains the mechanics.
//!
//! ## One word of state, a generation in it
//!
//! `word` packs the state and a generation (`generation << 2 | code`). Every state change,
//! always made under the `cold` mutex, stores a new word with the generation bumped, and every
//! [`Pass`] carries the generation it was admitted in. So `record` knows, with one atomic load,
//! whether the pass belongs to the current state period; and a state change is won by whoever
//! finds the word still equal to the one that justified it, under the mutex: one
//! [`Transition`] per change, however many threads saw the threshold crossed.
//!
//! ## Where each path goes
//!
//! - `admit` while closed: one atomic load. While open and before the next probe: two loads
//!   (`next_probe_at` is stored before the word that makes it meaningful). Anything else
//!   (the open period is over, half-open) takes the `cold` mutex.
//! - `record` while closed: the calling thread's window shard (see `window.rs`), re-checking
//!   the generation under that shard's lock; a failure also sums the window, and a trip takes
//!   the `cold` mutex. A probe's record takes the `cold` mutex.
//! - Lock order: `cold`, then shards. `record` releases its shard before it takes `cold`.
//!
//! A reset (closing, enabling) clears the shards and the consecutive count before it publishes
//! the new word, and a record re-checks the word under its shard's lock, so a record from an
//! earlier period can never land in the fresh window.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

use super::jitter::Jitter;
use super::window::{Counts, Window};
use crate::config::policy::BreakerPolicy;

/// `retry_after` when the breaker is half-open and every probe slot is taken. When the next
/// probe may go is unknown: the round usually ends within one upstream round trip (closed, or
/// open again for a longer backoff). One second is the smallest hint `Retry-After` can carry.
pub const HALF_OPEN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The failure rate is held in parts per million, so that the trip test is integer arithmetic:
/// 3 failures in 30 requests reach a rate of 0.1, which `0.1 * 30.0 <= 3.0` gets wrong.
const PPM: u64 = 1_000_000;

/// Failed probe rounds beyond this no longer double the backoff (2^31 × even 1 ns is over two
/// seconds, and `max_open_for` caps it long before in any real config).
const MAX_DOUBLINGS: u32 = 31;

/// A circuit breaker for one upstream or one endpoint.
///
/// A handle: clones share one state, like a Prometheus metric handle, so it can sit in a map
/// that outlives policy reloads and be cloned into whatever needs it.
#[derive(Clone)]
pub struct Breaker {
    shared: Arc<Shared>,
}

/// The circuit's state, in circuit terms: closed lets traffic flow, open stops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

/// How an admitted request went, as classified by the caller: a connect error, a timeout, a
/// reset or a status in `failure_statuses` is a `Failure`; any other response is a `Success`.
/// A request the client abandoned has no outcome: drop (or [`Pass::release`]) its pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Failure,
}

/// `admit`'s answer.
#[must_use = "an admitted request must keep its pass until it is recorded or released"]
#[derive(Debug)]
pub enum Admission {
    /// Closed (or disabled): go ahead.
    Allow(Pass),
    /// Half-open: this request is a trial. `transition` is `Some` for the request whose
    /// admission moved the breaker from open to half-open.
    Probe {
        pass: Pass,
        transition: Option<Transition>,
    },
    /// Open, or half-open with every probe slot taken: do not send the request.
    /// `retry_after` is how long until a probe may be admitted, for `Retry-After` (see
    /// [`retry_after_secs`]).
    Reject { retry_after: Duration },
}

/// An admitted request's ticket, handed back to [`Breaker::record`] with its outcome.
///
/// A probe's pass holds one of the half-open round's slots: recording the pass, dropping it or
/// calling [`Pass::release`] frees the slot, so a probe whose client vanished cannot wedge the
/// breaker half-open. A pass admitted while closed holds nothing, and dropping it is free.
#[must_use = "record the outcome with Breaker::record, or release the pass"]
pub struct Pass {
    breaker: u64,
    generation: u64,
    /// `Some` for a probe whose slot is still held.
    probe: Option<Arc<Shared>>,
}

/// A state change, reported once, by the call that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transition {
    pub(crate) from: State,
    pub(crate) to: State,
    pub(crate) reason: Reason,
}

/// Why a transition happened, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Closed → open: `consecutive_failures` failures in a row.
    ConsecutiveFailures,
    /// Closed → open: the failure rate over the window reached `failure_rate` with at least
    /// `min_requests` requests.
    FailureRate,
    /// Open → half-open: the open period is over and a request arrived.
    OpenElapsed,
    /// Half-open → closed: the round's probes all succeeded.
    ProbesSucceeded,
    /// Half-open → open: a probe failed.
    ProbeFailed,
    /// Open or half-open → closed: a reload set `enabled = false`.
    Disabled,
}

/// What `GET /breakers` and the metrics show. Instants are the caller's to convert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub(crate) enabled: bool,
    /// A disabled breaker shows as closed.
    pub(crate) state: State,
    /// Requests and failures in the window. Kept while open, so they show what tripped it
    /// (ageing out as time passes); emptied when the breaker closes again.
    pub(crate) window: Counts,
    pub(crate) consecutive_failures: u32,
    /// When the breaker last opened; `None` while closed.
    pub(crate) opened_at: Option<Instant>,
    /// While open: when the next probe may be admitted. It is admitted by the first request
    /// that arrives from then on, so this can be in the past while the breaker still shows
    /// open. `None` otherwise.
    pub(crate) next_probe_at: Option<Instant>,
    /// The backoff (before jitter) of the current opening, or of the next one while closed:
    /// `open_for` doubled for each failed probe round, capped at `max_open_for`.
    pub(crate) open_for: Duration,
    /// While half-open: probes admitted and not yet finished, and probes that succeeded, in
    /// this round.
    pub(crate) probes_in_flight: u32,
    pub(crate) probe_successes: u32,
}

/// Everything behind the handle.
struct Shared {
    /// Tells passes of different breakers apart (`record` ignores a foreign pass).
    id: u64,
    /// Time zero for the atomics below, which hold nanoseconds since it.
    origin: Instant,
    word: AtomicU64,
    /// While open: when the next probe may be admitted (nanoseconds since `origin`).
    next_probe_at: AtomicU64,
    consecutive: AtomicU32,
    consecutive_limit: AtomicU32,
    rate_ppm: AtomicU32,
    min_requests: AtomicU32,
    window: Window,
    cold: Mutex<Cold>,
}

/// What only state changes, probes and snapshots touch.
struct Cold {
    open_for: Duration,
    max_open_for: Duration,
    half_open_probes: u32,
    /// Failed probe rounds since the breaker last closed: the backoff's exponent.
    failed_rounds: u32,
    /// Nanoseconds since `origin`; meaningful while open or half-open.
    opened_at: u64,
    round: Round,
    jitter: Jitter,
}

/// The half-open round in progress.
#[derive(Debug, Clone, Copy, Default)]
struct Round {
    /// `half_open_probes` when the round began: a reload changes the next round, not this one
    /// (lowering it under the successes already counted would leave no way to finish).
    probes: u32,
    in_flight: u32,
    successes: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
    Disabled = 3,
}

/// `generation << 2 | code`. 62 bits of generation do not wrap in the life of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Word(u64);

// === impl Breaker ===

impl Breaker {
    /// A closed breaker (or a disabled one) with an empty window. `now` is its time zero:
    /// instants passed later that are earlier than it count as it.
    pub fn new(policy: &BreakerPolicy, jitter: Jitter, now: Instant) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let code = if policy.enabled {
            Code::Closed
        } else {
            Code::Disabled
        };
        let shared = Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            origin: now,
            word: AtomicU64::new(Word::new(0, code).0),
            next_probe_at: AtomicU64::new(0),
            consecutive: AtomicU32::new(0),
            consecutive_limit: AtomicU32::new(0),
            rate_ppm: AtomicU32::new(0),
            min_requests: AtomicU32::new(0),
            window: Window::new(policy.window),
            cold: Mutex::new(Cold {
                open_for: policy.open_for,
                max_open_for: policy.max_open_for,
                half_open_probes: policy.half_open_probes,
                failed_rounds: 0,
                opened_at: 0,
                round: Round::default(),
                jitter,
            }),
        };
        shared.store_thresholds(policy);
        Breaker {
            shared: Arc::new(shared),
        }
    }

    /// Whether a request may go to the upstream now. See [`Admission`].
    pub fn admit(&self, now: Instant) -> Admission {
        let shared = &*self.shared;
        let word = shared.load_word();
        match word.code() {
            Code::Closed | Code::Disabled => Admission::Allow(self.pass(word, false)),
            Code::Open => {
                let now = shared.nanos(now);
                let next_probe_at = shared.next_probe_at.load(Ordering::Relaxed);
                if now < next_probe_at {
                    return Admission::Reject {
                        retry_after: Duration::from_nanos(next_probe_at - now),
                    };
                }
                self.admit_locked(now)
            }
            Code::HalfOpen => self.admit_locked(shared.nanos(now)),
        }
    }

    /// Records how an admitted request went, and returns the transition it caused, if any.
    ///
    /// The outcome only counts if the breaker is still in the state period the pass was
    /// admitted in. Otherwise (a request admitted while closed that finishes after the breaker
    /// opened; a probe from a round that already ended; a pass from before a reload disabled
    /// the breaker) it is ignored: it tells about the upstream as it was before the change,
    /// and the state that followed gathers its own evidence. A pass from another breaker is
    /// ignored as well.
    pub fn record(&self, mut pass: Pass, outcome: Outcome, now: Instant) -> Option<Transition> {
        if pass.breaker != self.shared.id {
            return None;
        }
        // The slot is accounted for below (or the round is over), not by the pass's drop.
        let probe = pass.probe.take();
        let word = self.shared.load_word();
        if word.generation() != pass.generation {
            return None;
        }
        match word.code() {
            Code::Closed => self.record_closed(word, outcome, now),
            Code::HalfOpen if probe.is_some() => self.record_probe(word, outcome, now),
            Code::HalfOpen | Code::Open | Code::Disabled => None,
        }
    }

    /// Applies a reloaded policy to the existing state, which is kept:
    /// - thresholds (`consecutive_failures`, `failure_rate`, `min_requests`) apply from the
    ///   next failure;
    /// - a new `window` length keeps the counts, re-cut onto the new buckets;
    /// - `open_for` and `max_open_for` apply from the next opening, except that an open period
    ///   in progress is shortened to end at most `max_open_for` after it began;
    /// - `half_open_probes` applies from the next round;
    /// - `enabled = false` closes the breaker (reporting open/half-open → closed) and empties
    ///   it, and from then on it allows everything and counts nothing; `enabled = true` again
    ///   starts it closed and empty.
    pub(crate) fn reconfigure(&self, policy: &BreakerPolicy) -> Option<Transition> {
        let shared = &*self.shared;
        let mut cold = shared.cold.lock();
        shared.store_thresholds(policy);
        shared.window.resize(policy.window);
        cold.open_for = policy.open_for;
        cold.max_open_for = policy.max_open_for;
        cold.half_open_probes = policy.half_open_probes;

        let word = shared.load_word();
        match (word.code(), policy.enabled) {
            (Code::Open, true) => {
                let latest = cold.opened_at.saturating_add(nanos(cold.max_open_for));
                shared.next_probe_at.fetch_min(latest, Ordering::Relaxed);
                None
            }
            (Code::Disabled, true) => {
                shared.reset(&mut cold);
                shared.publish(word.next(Code::Closed));
                None
            }
            (Code::Disabled, false) | (Code::Closed | Code::HalfOpen, true) => None,
            (code, false) => {
                shared.reset(&mut cold);
                shared.publish(word.next(Code::Disabled));
                let from = code.state();
                (from != State::Closed).then_some(Transition {
                    from,
                    to: State::Closed,
                    reason: Reason::Disabled,
                })
            }
        }
    }

    /// The current state, from one atomic load (for the `breaker_state` gauge).
    pub(crate) fn state(&self) -> State {
        self.shared.load_word().code().state()
    }

    /// Everything `GET /breakers` shows, with the window as seen at `now`.
    pub(crate) fn snapshot(&self, now: Instant) -> Snapshot {
        let shared = &*self.shared;
        let cold = shared.cold.lock();
        let word = shared.load_word();
        let code = word.code();
        let (opened, half_open) = (code == Code::Open, code == Code::HalfOpen);
        let instant = |nanos: u64| shared.origin.checked_add(Duration::from_nanos(nanos));
        Snapshot {
            enabled: code != Code::Disabled,
            state: code.state(),
            window: shared.window.counts(shared.nanos(now)),
            consecutive_failures: shared.consecutive.load(Ordering::Relaxed),
            opened_at: if opened || half_open {
                instant(cold.opened_at)
            } else {
                None
            },
            next_probe_at: if opened {
                instant(shared.next_probe_at.load(Ordering::Relaxed))
            } else {
                None
            },
            open_for: cold.backoff(),
            probes_in_flight: if half_open { cold.round.in_flight } else { 0 },
            probe_successes: if half_open { cold.round.successes } else { 0 },
        }
    }

    fn pass(&self, word: Word, probe: bool) -> Pass {
        Pass {
            breaker: self.shared.id,
            generation: word.generation(),
            probe: probe.then(|| Arc::clone(&self.shared)),
        }
    }

    /// `admit` when the open period may be over, or half-open: under the `cold` mutex, from the
    /// state as it is now (another thread may have moved it since `admit` looked).
    fn admit_locked(&self, now: u64) -> Admission {
        let shared = &*self.shared;
        let mut cold = shared.cold.lock();
        let word = shared.load_word();
        match word.code() {
            Code::Closed | Code::Disabled => Admission::Allow(self.pass(word, false)),
            Code::Open => {
                let next_probe_at = shared.next_probe_at.load(Ordering::Relaxed);
                if now < next_probe_at {
                    return Admission::Reject {
                        retry_after: Duration::from_nanos(next_probe_at - now),
                    };
                }
                cold.round = Round {
                    probes: cold.half_open_probes.max(1),
                    in_flight: 1,
                    successes: 0,
                };
                let next = word.next(Code::HalfOpen);
                shared.publish(next);
                Admission::Probe {
                    pass: self.pass(next, true),
                    transition: Some(Transition {
                        from: State::Open,
                        to: State::HalfOpen,
                        reason: Reason::OpenElapsed,
                    }),
                }
            }
            Code::HalfOpen => {
                let round = &mut cold.round;
                if round.in_flight.saturating_add(round.successes) < round.probes {
                    round.in_flight += 1;
                    Admission::Probe {
                        pass: self.pass(word, true),
                        transition: None,
                    }
                } else {
                    Admission::Reject {
                        retry_after: HALF_OPEN_RETRY_AFTER,
                    }
                }
            }
        }
    }

    fn record_closed(&self, word: Word, outcome: Outcome, now: Instant) -> Option<Transition> {
        let shared = &*self.shared;
        let now = shared.nanos(now);
        let failure = outcome == Outcome::Failure;
        let run = shared.window.with_local_shard(|ring| {
            // Under the shard lock, so that a reset (which clears this shard before it
            // publishes a new word) cannot slip between this check and the count.
            if shared.load_word() != word {
                return None;
            }
            ring.record(now, failure);
            if failure {
                Some(
                    shared
                        .consecutive
                        .fetch_add(1, Ordering::Relaxed)
                        .saturating_add(1),
                )
            } else {
                // Read first: a success while nothing is failing then writes nothing, so the
                // line stays shared between the cores.
                if shared.consecutive.load(Ordering::Relaxed) != 0 {
                    shared.consecutive.store(0, Ordering::Relaxed);
                }
                Some(0)
            }
        })?;
        if !failure {
            return None;
        }
        let reason = if run >= shared.consecutive_limit.load(Ordering::Relaxed) {
            Reason::ConsecutiveFailures
        } else if shared.rate_reached(now) {
            Reason::FailureRate
        } else {
            return None;
        };

        let mut cold = shared.cold.lock();
        if shared.load_word() != word {
            return None; // another record tripped it first
        }
        shared.open(&mut cold, word, now);
        Some(Transition {
            from: State::Closed,
            to: State::Open,
            reason,
        })
    }

    fn record_probe(&self, word: Word, outcome: Outcome, now: Instant) -> Option<Transition> {
        let shared = &*self.shared;
        let mut cold = shared.cold.lock();
        if shared.load_word() != word {
            return None; // the round ended while this probe was in flight
        }
        cold.round.in_flight = cold.round.in_flight.saturating_sub(1);
        match outcome {
            Outcome::Success => {
                cold.round.successes += 1;
                if cold.round.successes < cold.round.probes {
                    return None;
                }
                shared.reset(&mut cold);
                shared.publish(word.next(Code::Closed));
                Some(Transition {
                    from: State::HalfOpen,
                    to: State::Closed,
                    reason: Reason::ProbesSucceeded,
                })
            }
            Outcome::Failure => {
                cold.failed_rounds = (cold.failed_rounds + 1).min(MAX_DOUBLINGS);
                shared.open(&mut cold, word, shared.nanos(now));
                Some(Transition {
                    from: State::HalfOpen,
                    to: State::Open,
                    reason: Reason::ProbeFailed,
                })
            }
        }
    }

    /// The round's size, for the fuzz harness's invariants.
    #[cfg(any(test, fuzzing))]
    pub(super) fn round_probes(&self) -> u32 {
        self.shared.cold.lock().round.probes
    }

    /// The current generation, for the fuzz harness's invariants.
    #[cfg(any(test, fuzzing))]
    pub(super) fn generation(&self) -> u64 {
        self.shared.load_word().generation()
    }
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

// === impl State ===

impl State {
    /// The `to` label of `outrider_breaker_transitions_total`, and the JSON name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }

    /// The value of the `outrider_breaker_state` gauge: 0 closed, 1 half-open, 2 open, so
    /// that higher is worse.
    pub(crate) fn gauge_value(self) -> i64 {
        match self {
            State::Closed => 0,
            State::HalfOpen => 1,
            State::Open => 2,
        }
    }
}

// === impl Pass ===

impl Pass {
    /// Whether this pass is a half-open probe.
    pub(crate) fn is_probe(&self) -> bool {
        self.probe.is_some()
    }

    /// Ends the request without an outcome (the client went away): the same as dropping the
    /// pass, spelled out for the call site.
    pub(crate) fn release(self) {}

    /// For the fuzz harness, which checks that the round's `in_flight` matches the probe passes
    /// it holds.
    #[cfg(any(test, fuzzing))]
    pub(super) fn generation(&self) -> u64 {
        self.generation
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        if let Some(shared) = self.probe.take() {
            shared.release_probe(self.generation);
        }
    }
}

impl fmt::Debug for Pass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pass")
            .field("generation", &self.generation)
            .field("probe", &self.is_probe())
            .finish()
    }
}

// === impl Reason ===

impl Reason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::ConsecutiveFailures => "consecutive_failures",
            Reason::FailureRate => "failure_rate",
            Reason::OpenElapsed => "open_elapsed",
            Reason::ProbesSucceeded => "probes_succeeded",
            Reason::ProbeFailed => "probe_failed",
            Reason::Disabled => "disabled",
        }
    }
}

// === impl Shared ===

impl Shared {
    fn load_word(&self) -> Word {
        Word(self.word.load(Ordering::Acquire))
    }

    /// Stores a new word. Callers hold `cold` and have written everything the new state reads
    /// (`next_probe_at`, a cleared window) before: the release store publishes it.
    fn publish(&self, word: Word) {
        self.word.store(word.0, Ordering::Release);
    }

    fn nanos(&self, now: Instant) -> u64 {
        nanos(now.saturating_duration_since(self.origin))
    }

    fn store_thresholds(&self, policy: &BreakerPolicy) {
        // Out-of-range rates (config validation forbids them) clamp to [0, 1]; NaN becomes 0.
        let rate_ppm = (policy.failure_rate * PPM as f64)
            .round()
            .clamp(0.0, PPM as f64) as u32;
        self.consecutive_limit
            .store(policy.consecutive_failures, Ordering::Relaxed);
        self.rate_ppm.store(rate_ppm, Ordering::Relaxed);
        self.min_requests
            .store(policy.min_requests, Ordering::Relaxed);
    }

    /// Whether the window's failure rate has reached the threshold, with enough requests.
    fn rate_reached(&self, now: u64) -> bool {
        let counts = self.window.counts(now);
        let min_requests = u64::from(self.min_requests.load(Ordering::Relaxed));
        let rate_ppm = u128::from(self.rate_ppm.load(Ordering::Relaxed));
        counts.requests > 0
            && counts.requests >= min_requests
            && u128::from(counts.failures) * u128::from(PPM)
                >= rate_ppm * u128::from(counts.requests)
    }

    /// Moves to open from `word` (closed or half-open): the backoff for the failed rounds so
    /// far, jittered, never more than `max_open_for`.
    fn open(&self, cold: &mut Cold, word: Word, now: u64) {
        let delay = cold.jitter.apply(cold.backoff()).min(cold.max_open_for);
        cold.opened_at = now;
        cold.round = Round::default();
        self.next_probe_at
            .store(now.saturating_add(nanos(delay)), Ordering::Relaxed);
        self.publish(word.next(Code::Open));
    }

    /// A closed breaker starts cold: empty window, no failures in a row, base backoff.
    fn reset(&self, cold: &mut Cold) {
        self.window.clear();
        self.consecutive.store(0, Ordering::Relaxed);
        cold.failed_rounds = 0;
        cold.round = Round::default();
    }

    /// A probe pass dropped without an outcome: frees its slot if its round is still on.
    fn release_probe(&self, generation: u64) {
        let mut cold = self.cold.lock();
        if self.load_word() == Word::new(generation, Code::HalfOpen) {
            cold.round.in_flight = cold.round.in_flight.saturating_sub(1);
        }
    }
}

// === impl Cold ===

impl Cold {
    /// `open_for` doubled per failed round, capped at `max_open_for`.
    fn backoff(&self) -> Duration {
        self.open_for
            .saturating_mul(1 << self.failed_rounds)
            .min(self.max_open_for)
    }
}

// === impl Code ===

impl Code {
    fn from_bits(bits: u64) -> Code {
        match bits & 0b11 {
            0 => Code::Closed,
            1 => Code::Open,
            2 => Code::HalfOpen,
            _ => Code::Disabled,
        }
    }

    fn state(self) -> State {
        match self {
            Code::Closed | Code::Disabled => State::Closed,
            Code::Open => State::Open,
            Code::HalfOpen => State::HalfOpen,
        }
    }
}

// === impl Word ===

impl Word {
    fn new(generation: u64, code: Code) -> Word {
        Word((generation << 2) | code as u64)
    }

    fn generation(self) -> u64 {
        self.0 >> 2
    }

    fn code(self) -> Code {
        Code::from_bits(self.0)
    }

    fn next(self, code: Code) -> Word {
        Word::new(self.generation() + 1, code)
    }
}

/// Whole seconds for a `Retry-After` header: rounded up (a client told 0 or told too early
/// would only be rejected again), and at least 1.
pub fn retry_after_secs(retry_after: Duration) -> u64 {
    let secs = retry_after.as_secs();
    let secs = if retry_after.subsec_nanos() > 0 {
        secs.saturating_add(1)
    } else {
        secs
    };
    secs.max(1)
}

/// Whole nanoseconds, saturating at `u64::MAX` (584 years).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
