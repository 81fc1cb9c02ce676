//! The shared cache tier's pure part: what a stored response looks like in Redis
//! ([`wire`]), how long Redis keeps it ([`ttl`]), the key names and purge indexes
//! ([`keys`]), and the purge message every replica receives ([`PurgeMessage`]).
//!
//! Pure: no Redis client, no runtime, no clock (`now` is passed in). `proxy/shared_tier`
//! drives Redis with these.

pub(crate) mod keys;
pub(crate) mod wire;

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// How long the shared copy of a response stays in Redis: until it can no longer be served
/// even stale (its freshness plus the longer of its stale windows). `None` when that moment
/// has passed: nothing to store. At least one millisecond, since Redis refuses `PX 0`.
pub(crate) fn ttl(
    fresh_until: SystemTime,
    stale_while_revalidate: u32,
    stale_if_error: u32,
    now: SystemTime,
) -> Option<Duration> {
    let stale = Duration::from_secs(u64::from(stale_while_revalidate.max(stale_if_error)));
    let end = fresh_until.checked_add(stale)?;
    let left = end.duration_since(now).ok()?;
    (!left.is_zero()).then(|| left.max(Duration::from_millis(1)))
}

/// What a purge selects, once the admin API has normalised it (the same selectors as the
/// local store's purges).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PurgeTarget {
    /// Every variant of one normalised URL (`http://host/path?query`).
    Url(String),
    /// Every URL with this path-and-query, on any host.
    Path(String),
    /// URLs whose path-and-query (for a prefix starting with `/`) or whole URL starts with it.
    Prefix(String),
    Tag(String),
    All,
}

impl PurgeTarget {
    /// The purge body's selector that asks for this: its kind and value (empty for `all`).
    pub(crate) fn selector(&self) -> (&'static str, &str) {
        match self {
            PurgeTarget::Url(v) | PurgeTarget::Path(v) => ("key", v),
            PurgeTarget::Prefix(v) => ("prefix", v),
            PurgeTarget::Tag(v) => ("tag", v),
            PurgeTarget::All => ("all", ""),
        }
    }
}

/// Published on the purge channel: which replica purged, what, and the purge epoch it
/// brought Redis to (see `proxy/shared_tier` for how replicas use the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PurgeMessage {
    pub(crate) from: String,
    pub(crate) epoch: u64,
    pub(crate) target: PurgeTarget,
}

impl PurgeMessage {
    pub(crate) fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// `None` for anything that is not a purge message (another program on the channel).
    pub(crate) fn decode(payload: &[u8]) -> Option<PurgeMessage> {
        serde_json::from_slice(payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_covers_freshness_and_the_longer_stale_window() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let fresh = now + Duration::from_secs(60);
        assert_eq!(ttl(fresh, 0, 0, now), Some(Duration::from_secs(60)));
        assert_eq!(ttl(fresh, 30, 120, now), Some(Duration::from_secs(180)));
        assert_eq!(ttl(fresh, 300, 10, now), Some(Duration::from_secs(360)));
        // Stale but still inside a stale window: kept for what is left of it.
        let stale = now - Duration::from_secs(10);
        assert_eq!(ttl(stale, 0, 15, now), Some(Duration::from_secs(5)));
        assert_eq!(ttl(stale, 0, 10, now), None);
        assert_eq!(ttl(stale, 0, 0, now), None);
        // A sub-millisecond remainder still gets the 1 ms Redis accepts.
        let edge = now + Duration::from_micros(10);
        assert_eq!(ttl(edge, 0, 0, now), Some(Duration::from_millis(1)));
    }

    #[test]
    fn purge_messages_round_trip_and_foreign_payloads_are_ignored() {
        for target in [
            PurgeTarget::Url("http://a/b?c".into()),
            PurgeTarget::Path("/b".into()),
            PurgeTarget::Prefix("/api/".into()),
            PurgeTarget::Tag("t1".into()),
            PurgeTarget::All,
        ] {
            let message = PurgeMessage {
                from: "replica-1".into(),
                epoch: 7,
                target,
            };
            assert_eq!(
                PurgeMessage::decode(message.encode().as_bytes()),
                Some(message)
            );
        }
        assert_eq!(PurgeMessage::decode(b"hello"), None);
        assert_eq!(PurgeMessage::decode(b"{\"from\":1}"), None);
    }
}
