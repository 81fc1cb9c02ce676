//! The rolling window: requests and failures over the last `window`, in [`BUCKETS`] buckets,
//! sharded by thread so that concurrent records neither lose counts nor fight over one cache
//! line.
//!
//! ## Buckets
//!
//! Time since the breaker's origin is cut into slots of `window / BUCKETS` (whole nanoseconds,
//! at least one). A bucket holds one slot's counts and the slot number it holds; slot `s`
//! lives in bucket `s % BUCKETS`. Seen from slot `s`, the window is the buckets holding slots
//! `s - BUCKETS + 1 ..= s`: the current slot, partly elapsed, and the nine before it, so between
//! 90% and 100% of `window` of history. An event exactly on a slot boundary belongs to the new
//! slot. Nothing expires eagerly: a bucket is ignored by readers once its slot is out of the
//! window and overwritten by the next record that maps to it, so a record is O(1) and a read
//! O([`SHARDS`] × [`BUCKETS`]).
//!
//! ## Why shards of locks, not one ring of atomics
//!
//! Counting exactly while buckets roll over needs the slot number and both counts to change in
//! one atomic step. In one `AtomicU64` that leaves about 20 bits per count and a truncated slot
//! tag that aliases after a long enough silence, which then has to be detected and swept. A
//! ring per shard behind its own mutex is exact with full-width numbers and trivially correct,
//! and it is cheaper under contention too: each thread records into the shard it was assigned
//! on first use (round robin), so with Pingora's few worker threads each shard's lock and
//! cache lines are touched by one thread, where a shared ring would bounce its current bucket
//! between cores on every request. Reads (a failure's rate check, a snapshot) lock the shards
//! one at a time; the sum is not one instant's picture, which a threshold check does not need.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// Ten buckets, as in linkerd's `SuccessRateWindow`: the window slides in tenths, so an old
/// burst leaves it in ten steps rather than all at once, and a record stays O(1).
pub(crate) const BUCKETS: usize = 10;

/// More shards than the worker threads Outrider runs (2 by default), so that every thread has
/// its own; a few threads sharing a shard still count exactly, they only contend.
pub(crate) const SHARDS: usize = 8;

/// Requests and failures counted in the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) requests: u64,
    pub(crate) failures: u64,
}

/// All the shards. Each record goes to the calling thread's shard; reads sum them all.
pub(super) struct Window {
    shards: [Shard; SHARDS],
}

/// One shard on its own cache lines: 128 bytes, because x86 prefetches lines in pairs.
#[repr(align(128))]
struct Shard(Mutex<Ring>);

/// One shard's buckets, and the slot width they were cut with (kept together, so a record
/// computes its slot with the width of the buckets it writes, even while a reload changes it).
pub(super) struct Ring {
    width: u64,
    buckets: [Bucket; BUCKETS],
}

/// `requests == 0` means empty, whatever `slot` says.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    slot: u64,
    requests: u32,
    failures: u32,
}

// === impl Window ===

impl Window {
    pub(super) fn new(window: Duration) -> Self {
        let width = slot_width(window);
        Window {
            shards: std::array::from_fn(|_| Shard(Mutex::new(Ring::new(width)))),
        }
    }

    /// Runs `f` on the calling thread's shard, under its lock.
    pub(super) fn with_local_shard<R>(&self, f: impl FnOnce(&mut Ring) -> R) -> R {
        let mut ring = self.shards[local_shard()].0.lock();
        f(&mut ring)
    }

    /// The counts in the window as seen at `now` (nanoseconds since the breaker's origin).
    pub(super) fn counts(&self, now: u64) -> Counts {
        self.shards
            .iter()
            .map(|shard| shard.0.lock().counts(now))
            .fold(Counts::default(), |sum, c| Counts {
                requests: sum.requests.saturating_add(c.requests),
                failures: sum.failures.saturating_add(c.failures),
            })
    }

    /// Empties every bucket: a closed breaker starts cold.
    pub(super) fn clear(&self) {
        for shard in &self.shards {
            shard.0.lock().clear();
        }
    }

    /// Applies a new window length, moving the counts onto the new slot grid (see
    /// [`Ring::resize`]).
    pub(super) fn resize(&self, window: Duration) {
        let width = slot_width(window);
        for shard in &self.shards {
            shard.0.lock().resize(width);
        }
    }
}

// === impl Ring ===

impl Ring {
    fn new(width: u64) -> Self {
        Ring {
            width,
            buckets: [Bucket::default(); BUCKETS],
        }
    }

    /// Counts one request at `now`, a failure if `failure`. A record more than a window older
    /// than what its bucket already holds (a thread that stalled that long before recording) is
    /// outside the window it would land in, so it is dropped.
    pub(super) fn record(&mut self, now: u64, failure: bool) {
        let slot = now / self.width;
        let bucket = &mut self.buckets[index(slot)];
        if bucket.requests == 0 || bucket.slot < slot {
            *bucket = Bucket {
                slot,
                requests: 0,
                failures: 0,
            };
        } else if bucket.slot > slot {
            return;
        }
        bucket.requests = bucket.requests.saturating_add(1);
        if failure {
            bucket.failures = bucket.failures.saturating_add(1);
        }
    }

    fn counts(&self, now: u64) -> Counts {
        let current = now / self.width;
        let mut counts = Counts::default();
        for bucket in &self.buckets {
            // A bucket ahead of `current` was filled by a thread whose `now` is a little later
            // than this reader's: it happened, so it counts.
            let in_window = bucket.slot > current || current - bucket.slot < BUCKETS as u64;
            if bucket.requests > 0 && in_window {
                counts.requests += u64::from(bucket.requests);
                counts.failures += u64::from(bucket.failures);
            }
        }
        counts
    }

    fn clear(&mut self) {
        self.buckets = [Bucket::default(); BUCKETS];
    }

    /// Re-cuts the buckets with a new slot width, keeping the counts: each bucket's counts move
    /// to the new slot holding its old slot's start, merged with others landing there. Where two
    /// new slots compete for one bucket (a shorter window) the newer wins, the older being out
    /// of the new window anyway. Moving by start time can make counts look up to one old slot
    /// older than they are, so a reload that changes `window` may let them leave a little early.
    fn resize(&mut self, width: u64) {
        if width == self.width {
            return;
        }
        let old = std::mem::replace(self, Ring::new(width));
        for bucket in old.buckets.iter().filter(|b| b.requests > 0) {
            let slot = bucket.slot.saturating_mul(old.width) / width;
            let target = &mut self.buckets[index(slot)];
            if target.requests == 0 || target.slot < slot {
                *target = Bucket { slot, ..*bucket };
            } else if target.slot == slot {
                target.requests = target.requests.saturating_add(bucket.requests);
                target.failures = target.failures.saturating_add(bucket.failures);
            }
        }
    }
}

/// The slot width for a window: a tenth of it in whole nanoseconds, at least one (a window
/// under 10 ns is really 10 ns long).
fn slot_width(window: Duration) -> u64 {
    let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
    (nanos / BUCKETS as u64).max(1)
}

fn index(slot: u64) -> usize {
    // The remainder is below BUCKETS, so the cast is lossless.
    (slot % BUCKETS as u64) as usize
}

/// The calling thread's shard: handed out round robin on the thread's first record.
fn local_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
    }
    SHARD
        .try_with(|shard| match shard.get() {
            Some(index) => index,
            None => {
                let index = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
                shard.set(Some(index));
                index
            }
        })
        // During thread-local destruction (a record from another thread-local's destructor)
        // any shard will do: every shard counts exactly.
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn ring(window_secs: u64) -> Ring {
        Ring::new(slot_width(Duration::from_secs(window_secs)))
    }

    fn counts(requests: u64, failures: u64) -> Counts {
        Counts { requests, failures }
    }

    #[test]
    fn slot_width_is_a_tenth_of_the_window_and_at_least_a_nanosecond() {
        assert_eq!(slot_width(Duration::from_secs(10)), SECOND);
        assert_eq!(slot_width(Duration::from_nanos(25)), 2);
        assert_eq!(slot_width(Duration::from_nanos(3)), 1);
        assert_eq!(slot_width(Duration::ZERO), 1);
        assert_eq!(slot_width(Duration::MAX), u64::MAX / 10);
    }

    #[test]
    fn a_record_on_a_slot_boundary_belongs_to_the_new_slot() {
        let mut ring = ring(10);
        ring.record(SECOND - 1, true); // slot 0
        ring.record(SECOND, false); // slot 1
        assert_eq!(ring.counts(SECOND), counts(2, 1));
        // At 10 s slot 0 has left the window (slots 1..=10 remain); slot 1 is still in it.
        assert_eq!(ring.counts(10 * SECOND - 1), counts(2, 1));
        assert_eq!(ring.counts(10 * SECOND), counts(1, 0));
        assert_eq!(ring.counts(11 * SECOND - 1), counts(1, 0));
        assert_eq!(ring.counts(11 * SECOND), counts(0, 0));
    }

    #[test]
    fn a_bucket_is_reused_once_its_slot_has_left_the_window() {
        let mut ring = ring(10);
        ring.record(0, true);
        ring.record(0, true);
        ring.record(10 * SECOND, false); // slot 10 reuses slot 0's bucket
        assert_eq!(ring.counts(10 * SECOND), counts(1, 0));
    }

    #[test]
    fn a_record_a_whole_window_late_is_dropped_and_a_slightly_late_one_counts() {
        let mut ring = ring(10);
        ring.record(10 * SECOND, false); // slot 10
        ring.record(0, true); // slot 0: same bucket, a window older
        assert_eq!(ring.counts(10 * SECOND), counts(1, 0));
        ring.record(9 * SECOND, true); // slot 9: its own bucket, inside the window
        assert_eq!(ring.counts(10 * SECOND), counts(2, 1));
        // A reader slightly behind the writers still sees their buckets.
        assert_eq!(ring.counts(9 * SECOND), counts(2, 1));
    }

    #[test]
    fn resizing_keeps_counts_on_the_new_grid() {
        let mut ring = ring(10);
        for second in 0..10 {
            ring.record(second * SECOND, second % 2 == 0);
        }
        assert_eq!(ring.counts(9 * SECOND), counts(10, 5));
        // Longer window (20 s, slots of 2 s): pairs of old buckets merge, nothing is lost.
        ring.resize(2 * SECOND);
        assert_eq!(ring.counts(9 * SECOND), counts(10, 5));
        assert_eq!(ring.counts(19 * SECOND), counts(10, 5));
        assert_eq!(ring.counts(20 * SECOND), counts(8, 4));
        assert_eq!(ring.counts(28 * SECOND), counts(0, 0));
        // Shorter window (5 s, slots of 500 ms): only the last five seconds are kept.
        ring.resize(SECOND / 2);
        assert_eq!(ring.counts(9 * SECOND), counts(4, 2));
    }

    #[test]
    fn counts_saturate_instead_of_wrapping() {
        let mut ring = ring(10);
        ring.buckets[0] = Bucket {
            slot: 0,
            requests: u32::MAX,
            failures: u32::MAX,
        };
        ring.record(0, true);
        assert_eq!(
            ring.counts(0),
            counts(u64::from(u32::MAX), u64::from(u32::MAX))
        );
    }

    #[test]
    fn the_window_sums_every_shard() {
        let window = Window::new(Duration::from_secs(10));
        for (i, shard) in window.shards.iter().enumerate() {
            shard.0.lock().record(0, i % 2 == 0);
        }
        assert_eq!(window.counts(0), counts(SHARDS as u64, SHARDS as u64 / 2));
        window.clear();
        assert_eq!(window.counts(0), counts(0, 0));
    }

    #[test]
    fn a_thread_keeps_its_shard() {
        // Which shard a thread gets depends on how many threads asked before it (other tests
        // included), so only stability and range are checked here.
        let shard = local_shard();
        assert!(shard < SHARDS);
        assert_eq!(local_shard(), shard);
        let other = std::thread::spawn(|| (local_shard(), local_shard())).join();
        assert!(matches!(other, Ok((a, b)) if a == b && a < SHARDS));
    }
}
