//! The retry policy's decisions: which failures are retryable, the jittered doubling backoff,
//! and the per-upstream budget that keeps retries a bounded share of the traffic, so that a
//! failing upstream is not hit by a retry storm on top of the load that broke it.
//!
//! The budget is a rolling window of [`BUCKETS`] one-second buckets of (requests, retries),
//! counted with atomics (no lock on the request path). A retry is allowed while the window's
//! retries stay below `budget × requests + MIN_RETRIES`: the small floor lets a quiet upstream
//! (a handful of requests) still fail over once. A bucket is reset by the first event of its
//! new second; events racing with that reset may be lost, never invented, so the budget errs
//! on the side of fewer retries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The window's length in one-second buckets.
pub const BUCKETS: u64 = 10;
/// Retries always allowed per window, whatever the request count.
pub const MIN_RETRIES: u64 = 3;

/// What made an attempt fail, as `[upstreams.X.retry] on` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// The connection could not be made (refused, unreachable, connect timeout).
    ConnectFailure,
    /// The connection failed after it was made, before the response header (reset, closed).
    Reset,
    /// The upstream did not answer within `read_timeout`.
    Timeout,
    /// The upstream answered with this status.
    Status(u16),
}

/// The budget of one upstream; outlives reloads (see `RetryBudget::retry`).
pub struct RetryBudget {
    epoch: Instant,
    buckets: [Bucket; BUCKETS as usize],
}

#[derive(Default)]
struct Bucket {
    /// The second (since `epoch`) this bucket counts, plus one (0: never used).
    second: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

/// Every upstream's budget, kept across reloads by upstream name.
#[derive(Default)]
pub struct RetryBudgets {
    by_upstream: HashMap<Arc<str>, Arc<RetryBudget>>,
}

impl RetryBudgets {
    /// The budgets for a new policy's upstreams, in order: a name that stays keeps its window.
    pub fn bind<'a>(
        &mut self,
        upstreams: impl Iterator<Item = &'a Arc<str>>,
        now: Instant,
    ) -> Vec<Arc<RetryBudget>> {
        let mut kept = HashMap::new();
        let bound = upstreams
            .map(|name| {
                let budget = self
                    .by_upstream
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(RetryBudget::new(now)));
                kept.insert(name.clone(), budget.clone());
                budget
            })
            .collect();
        self.by_upstream = kept;
        bound
    }
}

// === impl RetryReason ===

impl RetryReason {
    /// Every `reason` label, in [`RetryReason::index`] order.
    pub const LABELS: [&'static str; 7] = [
        "connect-failure",
        "reset",
        "timeout",
        "502",
        "503",
        "504",
        "status",
    ];

    /// The position of this reason's label in [`RetryReason::LABELS`].
    pub fn index(self) -> usize {
        match self {
            RetryReason::ConnectFailure => 0,
            RetryReason::Reset => 1,
            RetryReason::Timeout => 2,
            RetryReason::Status(502) => 3,
            RetryReason::Status(503) => 4,
            RetryReason::Status(504) => 5,
            RetryReason::Status(_) => 6,
        }
    }

    /// The `reason` label of `outrider_upstream_retries_total`.
    pub fn label(self) -> &'static str {
        match self {
            RetryReason::ConnectFailure => "connect-failure",
            RetryReason::Reset => "reset",
            RetryReason::Timeout => "timeout",
            RetryReason::Status(502) => "502",
            RetryReason::Status(503) => "503",
            RetryReason::Status(504) => "504",
            RetryReason::Status(_) => "status",
        }
    }
}

// === impl RetryBudget ===

impl RetryBudget {
    pub fn new(epoch: Instant) -> RetryBudget {
        RetryBudget {
            epoch,
            buckets: Default::default(),
        }
    }

    /// Counts a request (its first attempt).
    pub fn request(&self, now: Instant) {
        self.bucket(now).requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes a retry from the budget if the window has room for one at `budget_ppm` (parts
    /// per million of the window's requests); false when the budget refuses it.
    pub fn retry(&self, budget_ppm: u32, now: Instant) -> bool {
        let (requests, retries) = self.window(now);
        let allowed = requests.saturating_mul(u64::from(budget_ppm)) / 1_000_000 + MIN_RETRIES;
        if retries >= allowed {
            return false;
        }
        self.bucket(now).retries.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// (requests, retries) in the window ending at `now`.
    pub fn window(&self, now: Instant) -> (u64, u64) {
        let current = self.second(now) + 1;
        self.buckets
            .iter()
            .filter(|b| {
                let s = b.second.load(Ordering::Relaxed);
                s != 0 && s + BUCKETS > current
            })
            .fold((0, 0), |(q, r), b| {
                (
                    q + b.requests.load(Ordering::Relaxed),
                    r + b.retries.load(Ordering::Relaxed),
                )
            })
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    fn bucket(&self, now: Instant) -> &Bucket {
        let second = self.second(now);
        let bucket = &self.buckets[(second % BUCKETS) as usize];
        let tag = second + 1;
        let seen = bucket.second.load(Ordering::Acquire);
        if seen != tag
            && bucket
                .second
                .compare_exchange(seen, tag, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            bucket.requests.store(0, Ordering::Relaxed);
            bucket.retries.store(0, Ordering::Relaxed);
        }
        bucket
    }
}

/// The wait before retry number `retry` (1 for the first): `base` doubled for each earlier
/// retry, then jittered into its upper half by `random`, so that clients that failed together
/// do not come back together.
pub fn backoff(base: Duration, retry: u32, random: u64) -> Duration {
    if base.is_zero() {
        return Duration::ZERO;
    }
    let full = base.saturating_mul(1u32 << retry.saturating_sub(1).min(16));
    let half = full / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).max(1);
    half + Duration::from_nanos(random % nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_allows_its_share_plus_the_floor() {
        let t0 = Instant::now();
        let b = RetryBudget::new(t0);
        for _ in 0..100 {
            b.request(t0);
        }
        // 20% of 100, plus the floor of 3.
        let allowed = (0..1000).filter(|_| b.retry(200_000, t0)).count();
        assert_eq!(allowed, 23);
        assert_eq!(b.window(t0), (100, 23));
    }

    #[test]
    fn the_window_rolls() {
        let t0 = Instant::now();
        let b = RetryBudget::new(t0);
        for _ in 0..50 {
            b.request(t0);
        }
        assert_eq!(b.window(t0 + Duration::from_secs(9)).0, 50);
        assert_eq!(b.window(t0 + Duration::from_secs(10)).0, 0);
        // After the window, only the floor is left.
        let later = t0 + Duration::from_secs(30);
        assert_eq!((0..10).filter(|_| b.retry(200_000, later)).count(), 3);
    }

    #[test]
    fn backoff_doubles_with_jitter_in_the_upper_half() {
        let base = Duration::from_millis(100);
        for random in [0, 1, 12345, u64::MAX] {
            let first = backoff(base, 1, random);
            assert!(
                first >= Duration::from_millis(50) && first < base,
                "{first:?}"
            );
            let third = backoff(base, 3, random);
            assert!(third >= Duration::from_millis(200) && third < Duration::from_millis(400));
        }
        assert_eq!(backoff(Duration::ZERO, 1, 7), Duration::ZERO);
    }

    #[test]
    fn reasons_have_bounded_labels() {
        assert_eq!(RetryReason::Status(503).label(), "503");
        assert_eq!(RetryReason::Status(500).label(), "status");
        assert_eq!(RetryReason::ConnectFailure.label(), "connect-failure");
        for r in [
            RetryReason::ConnectFailure,
            RetryReason::Reset,
            RetryReason::Timeout,
            RetryReason::Status(502),
            RetryReason::Status(503),
            RetryReason::Status(504),
            RetryReason::Status(599),
        ] {
            assert_eq!(RetryReason::LABELS[r.index()], r.label());
        }
    }
}
