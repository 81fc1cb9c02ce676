//! The last purges, newest first, for `GET /cache` and the dashboard: after a content change
//! an operator checks there that the purge arrived and whether it matched anything.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

/// How many purges are kept; older ones are dropped.
pub(crate) const KEPT: usize = 20;

/// One purge, as it was asked and what it removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PurgeRecord {
    pub(crate) at: SystemTime,
    /// The selector kind (`key`, `prefix`, `tag`, `all`) and its value (empty for `all`).
    pub(crate) kind: &'static str,
    pub(crate) value: String,
    pub(crate) purged: usize,
    /// Sent to another replica and received here through the shared tier.
    pub(crate) received: bool,
}

#[derive(Debug, Default)]
pub(crate) struct PurgeLog {
    entries: Mutex<VecDeque<PurgeRecord>>,
}

impl PurgeLog {
    pub(crate) fn record(&self, record: PurgeRecord) {
        // A poisoned lock only means a panic elsewhere while pushing; the list is still valid.
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() == KEPT {
            entries.pop_back();
        }
        entries.push_front(record);
    }

    /// Newest first.
    pub(crate) fn recent(&self) -> Vec<PurgeRecord> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purge(n: usize) -> PurgeRecord {
        PurgeRecord {
            at: SystemTime::UNIX_EPOCH,
            kind: "tag",
            value: format!("t{n}"),
            purged: n,
            received: false,
        }
    }

    #[test]
    fn keeps_the_newest_first_and_at_most_kept() {
        let log = PurgeLog::default();
        assert!(log.recent().is_empty());
        for n in 0..(KEPT + 5) {
            log.record(purge(n));
        }
        let recent = log.recent();
        assert_eq!(recent.len(), KEPT);
        assert_eq!(recent[0].purged, KEPT + 4);
        assert_eq!(recent[KEPT - 1].purged, 5);
    }
}
