//! The per-upstream concurrency limit (`max_concurrent`): at most that many requests in flight,
//! and the one over it is turned away at once, never queued. Queueing in a sidecar only moves
//! the wait somewhere the client cannot see it, and holds a connection while it waits.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A handle: clones share one count, so it can outlive reloads in the per-upstream state.
#[derive(Clone)]
pub struct Limiter {
    shared: Arc<Counter>,
}

/// One request's place under the limit, given back when it is dropped.
#[must_use = "the permit is released as soon as it is dropped"]
pub struct Permit {
    shared: Arc<Counter>,
}

/// `in_flight` first: it shares a cache line with the `Arc`'s reference counts, which every
/// acquire and release also writes, so one line moves between cores instead of two.
struct Counter {
    in_flight: AtomicUsize,
    max: AtomicUsize,
}

// === impl Limiter ===

impl Limiter {
    pub fn new(max: usize) -> Self {
        Limiter {
            shared: Arc::new(Counter {
                in_flight: AtomicUsize::new(0),
                max: AtomicUsize::new(max),
            }),
        }
    }

    /// A permit if fewer than `max` are out, else `None`. Exact under concurrency: the count
    /// is only raised by a compare-and-swap from a value under the limit, so it never goes
    /// over, not even for an instant (a raise-then-undo scheme would briefly turn away a
    /// request that fits).
    pub fn try_acquire(&self) -> Option<Permit> {
        let max = self.shared.max.load(Ordering::Relaxed);
        self.shared
            .in_flight
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Permit {
                shared: Arc::clone(&self.shared),
            })
    }

    /// A reload's new limit. Lowering it below what is in flight revokes nothing: new requests
    /// are turned away until enough finish.
    pub(crate) fn set_max(&self, max: usize) {
        self.shared.max.store(max, Ordering::Relaxed);
    }

    pub(crate) fn max(&self) -> usize {
        self.shared.max.load(Ordering::Relaxed)
    }

    /// Requests holding a permit now (the `outrider_inflight_requests` gauge).
    pub(crate) fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("in_flight", &self.in_flight())
            .field("max", &self.max())
            .finish()
    }
}

// === impl Permit ===

impl Drop for Permit {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::Release);
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;

    #[test]
    fn admits_up_to_max_and_rejects_the_next_at_once() {
        let limiter = Limiter::new(2);
        let a = limiter.try_acquire();
        let b = limiter.try_acquire();
        assert!(a.is_some() && b.is_some());
        assert!(limiter.try_acquire().is_none());
        assert_eq!(limiter.in_flight(), 2);
        drop(a);
        assert_eq!(limiter.in_flight(), 1);
        let c = limiter.try_acquire();
        assert!(c.is_some());
        assert!(limiter.try_acquire().is_none());
        drop((b, c));
        assert_eq!(limiter.in_flight(), 0);
    }

    #[test]
    fn zero_admits_nothing() {
        let limiter = Limiter::new(0);
        assert!(limiter.try_acquire().is_none());
        assert_eq!(limiter.in_flight(), 0);
    }

    #[test]
    fn a_new_max_applies_to_the_next_acquire_and_revokes_nothing() {
        let limiter = Limiter::new(3);
        let held: Vec<Permit> = (0..3).filter_map(|_| limiter.try_acquire()).collect();
        assert_eq!(held.len(), 3);
        limiter.set_max(1);
        assert_eq!(limiter.max(), 1);
        assert_eq!(limiter.in_flight(), 3);
        let mut held = held;
        held.truncate(1);
        assert!(limiter.try_acquire().is_none(), "1 in flight, max 1");
        limiter.set_max(4);
        let more: Vec<Permit> = (0..5).filter_map(|_| limiter.try_acquire()).collect();
        assert_eq!(more.len(), 3);
        assert_eq!(limiter.in_flight(), 4);
    }

    #[test]
    fn clones_share_the_count() {
        let limiter = Limiter::new(1);
        let clone = limiter.clone();
        let _permit = limiter.try_acquire();
        assert!(clone.try_acquire().is_none());
        assert_eq!(clone.in_flight(), 1);
    }

    /// Eight threads race for five places, many times over: the count never exceeds the limit,
    /// and every permit comes back.
    #[test]
    fn concurrent_acquires_never_exceed_the_limit() {
        const THREADS: usize = 8;
        const MAX: usize = 5;
        let limiter = Limiter::new(MAX);
        let barrier = Barrier::new(THREADS);
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    barrier.wait();
                    for _ in 0..10_000 {
                        if let Some(permit) = limiter.try_acquire() {
                            assert!(limiter.in_flight() <= MAX);
                            drop(permit);
                        }
                    }
                });
            }
        });
        assert_eq!(limiter.in_flight(), 0);
    }
}
