//! Circuit breaking (issue #7): a [`Breaker`] per upstream and per endpoint, the per-upstream
//! concurrency [`Limiter`], and endpoint ejection ([`pick_endpoint`]).
//!
//! Pure: no Pingora, no clock (every `now` is passed in, so tests drive a fake clock and never
//! sleep), no I/O, no task. `proxy/` calls [`Breaker::admit`] before it picks a peer,
//! [`Breaker::record`] once the outcome is known, and turns each returned [`Transition`] into
//! a log line and `outrider_breaker_transitions_total{upstream,to}`. `admin/` reads
//! [`Breaker::snapshot`]. Nothing panics, and the request path allocates nothing.
//!
//! The states, in circuit terms (closed lets traffic flow):
//! - **Closed → open** when `consecutive_failures` failures happen in a row, or when the
//!   failures in the rolling `window` reach `failure_rate` of its requests with at least
//!   `min_requests` requests there.
//! - **Open → half-open** once the open period (`open_for`, jittered) is over.
//! - **Half-open** lets through at most `half_open_probes` trial requests at a time. When the
//!   round's `half_open_probes` probes have all succeeded it is **closed** again, with an empty
//!   window and the base `open_for`; the first probe that fails makes it **open** again for
//!   twice as long as before, up to `max_open_for`.
//!
//! Choices the issue leaves open, and what this module does:
//! - Every admitted request holds a [`Pass`] until [`Breaker::record`] takes it with the
//!   outcome, or until it is dropped ([`Pass::release`]) because the request ended without one
//!   (the client went away: that says nothing about the upstream). A probe's pass holds its
//!   half-open slot, so a slot can never leak: a vanished client frees it when its pass drops.
//! - Outcomes are only counted in the state period their request was admitted in. Each state
//!   change bumps a generation and a pass carries the one it was admitted in; a pass from an
//!   earlier period is ignored. So a slow request admitted while closed that fails after the
//!   breaker opened does not reopen it from half-open, nor count in the window after it closes
//!   again; a late success does not count as a probe; a probe from a round that has ended
//!   neither finishes nor frees a slot of the next round. Their evidence is about the upstream
//!   before the change, and the state that followed gathers its own.
//! - The round: probes are admitted while `in flight + succeeded < half_open_probes`, so a
//!   released probe's slot is given to the next request, and no more than
//!   `half_open_probes` outcomes are needed to close. Its size is fixed when it starts; a
//!   reload changes the next round.
//! - The trip conditions are checked when a failure is recorded, never on a success: a breaker
//!   opens because of a failure. (A success that brings the window up to `min_requests` while
//!   the rate is already at the threshold does not open it; the next failure does.)
//! - A rate exactly equal to `failure_rate` trips ("reaches"). The comparison is in integers
//!   (parts per million), so 3 failures in 30 requests do reach 0.1.
//! - The window is 10 buckets of `window / 10`, each thread counting into its own shard (see
//!   `window.rs` for why not one ring of atomics): exact under any concurrency, O(1) per
//!   record, and a failure's rate check sums the shards. It holds between 90% and 100% of
//!   `window` of history, and an event on a bucket boundary belongs to the new bucket. It is
//!   kept while open (it shows what tripped the breaker) and emptied when the breaker closes
//!   or is disabled.
//! - No clock, so nothing happens by itself: open becomes half-open when the first request
//!   after `next_probe_at` calls `admit`, and that call reports the transition (inside
//!   [`Admission::Probe`]). A snapshot in between shows open with `next_probe_at` in the past.
//! - Every [`Transition`] is returned exactly once, by the call that made it: `admit`
//!   (open → half-open), `record` (closed → open, half-open → open or closed) or `reconfigure`
//!   (open or half-open → closed when disabled). Concurrent records that all see a threshold
//!   crossed produce one transition between them.
//! - Jitter is deterministic ([`Jitter::seeded`], ±10%; [`Jitter::none`] in tests). It is
//!   applied after the doubling and capped again at `max_open_for`, so the breaker never stays
//!   open longer than the operator allowed.
//! - `retry_after`: while open, the time until `next_probe_at`; while half-open with every
//!   slot taken, [`HALF_OPEN_RETRY_AFTER`] (the round's end is unknown, and usually near).
//!   [`retry_after_secs`] rounds it up to whole seconds for the header.
//! - [`Breaker::reconfigure`] keeps the state and applies the new thresholds to it (see there
//!   for each key). `enabled = false` makes every admission `Allow` and records nothing.
//! - Instants earlier than the one the breaker was created with count as that instant, and all
//!   time arithmetic saturates, so a caller's clock skew between threads is harmless.
//! - [`Limiter`]: exact (compare-and-swap, never over the limit even transiently), no queue,
//!   a lowered limit revokes nothing.
//! - [`pick_endpoint`]: the first endpoint from the round-robin index whose breaker admits;
//!   when none does, the upstream rejects with the soonest `retry_after` among them. Asking a
//!   breaker that rejects has no effect on it.

mod endpoints;
mod jitter;
mod limiter;
mod state;
mod upstream;
mod window;

/// The fuzzing model: compiled only for unit tests and the fuzz crate (`--cfg fuzzing`), not
/// shipped.
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod fuzzing;

pub use endpoints::{pick_endpoint, pick_other_endpoint, Pick};
pub use jitter::Jitter;
pub use limiter::{Limiter, Permit};
pub use state::{
    retry_after_secs, Admission, Breaker, Outcome, Pass, Reason, Snapshot, State, Transition,
    HALF_OPEN_RETRY_AFTER,
};
pub use upstream::{
    Cause, Changes, Chosen, Registry, Rejection, ReloadChange, UpstreamGuard, UpstreamSnapshot,
    OVER_LIMIT_RETRY_AFTER,
};

#[cfg(test)]
mod tests;
