//! The URL table behind the cacheability and conditional estimates: URL hash → the hash of the
//! last body seen for it and when. Capped: when full, entries older than the horizon are
//! dropped (at most one sweep per horizon), and a new URL that still finds no room is not
//! tracked (counted, so the estimate can say how much it missed).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Enough URLs for the hot set of a legacy service; 8,192 × ~40 bytes ≈ 330 KB at most.
pub const URL_CAP: usize = 8192;

#[derive(Debug, Clone, Copy)]
struct Seen {
    body: u64,
    at: Instant,
}

/// What one sighting of a URL tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// The same body as the last sighting, within the horizon.
    Identical,
    /// Seen within the horizon, with another body.
    Changed,
    /// First sighting (or the last one is older than the horizon).
    New,
    /// The table is full: not tracked.
    Untracked,
}

#[derive(Debug)]
pub(crate) struct UrlTable {
    horizon: Duration,
    seen: HashMap<u64, Seen>,
    last_sweep: Option<Instant>,
}

// === impl UrlTable ===

impl UrlTable {
    pub(crate) fn new(horizon: Duration) -> Self {
        UrlTable {
            horizon,
            seen: HashMap::new(),
            last_sweep: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }

    /// Records `body` for `url` at `now` and says how it compares with the last sighting.
    pub(crate) fn observe(&mut self, url: u64, body: u64, now: Instant) -> Repeat {
        if let Some(last) = self.seen.get_mut(&url) {
            let fresh = now.saturating_duration_since(last.at) <= self.horizon;
            let repeat = match (fresh, last.body == body) {
                (true, true) => Repeat::Identical,
                (true, false) => Repeat::Changed,
                (false, _) => Repeat::New,
            };
            // A repeat does not refresh the time: a cache with this TTL would have expired it.
            if repeat != Repeat::Identical {
                *last = Seen { body, at: now };
            }
            return repeat;
        }
        if self.seen.len() >= URL_CAP {
            self.sweep(now);
            if self.seen.len() >= URL_CAP {
                return Repeat::Untracked;
            }
        }
        self.seen.insert(url, Seen { body, at: now });
        Repeat::New
    }

    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < self.horizon)
        {
            return;
        }
        self.last_sweep = Some(now);
        let horizon = self.horizon;
        self.seen
            .retain(|_, s| now.saturating_duration_since(s.at) <= horizon);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_the_horizon_count_as_a_cache_would() {
        let t0 = Instant::now();
        let mut t = UrlTable::new(Duration::from_secs(30));
        assert_eq!(t.observe(1, 10, t0), Repeat::New);
        assert_eq!(
            t.observe(1, 10, t0 + Duration::from_secs(29)),
            Repeat::Identical
        );
        // 31 s after the stored copy: a 30 s TTL would have expired it.
        assert_eq!(t.observe(1, 10, t0 + Duration::from_secs(31)), Repeat::New);
        assert_eq!(
            t.observe(1, 11, t0 + Duration::from_secs(32)),
            Repeat::Changed
        );
    }

    #[test]
    fn the_table_is_capped_and_swept() {
        let t0 = Instant::now();
        let mut t = UrlTable::new(Duration::from_secs(30));
        for url in 0..URL_CAP as u64 {
            t.observe(url, 0, t0);
        }
        assert_eq!(t.observe(u64::MAX, 0, t0), Repeat::Untracked);
        assert_eq!(t.len(), URL_CAP);
        let later = t0 + Duration::from_secs(60);
        assert_eq!(t.observe(u64::MAX, 0, later), Repeat::New);
        assert_eq!(t.len(), 1);
    }
}
