//! Key names in Redis, all under the configured `key_prefix` so that several services can
//! share one Redis:
//!
//! - `{p}o:{primary}[:{variance}]`: one stored response, in the slot Pingora addresses it by
//!   (the primary hash, and the variance hash for a `Vary` variant in a secondary slot), so
//!   variants are shared exactly as they are stored locally.
//! - `{p}lock:{…}`: the fleet-wide fill lock of one object key.
//! - `{p}u:{url}` and `{p}t:{tag}`: sets of the object keys stored for a URL and a tag, with
//!   the TTL of their longest-lived member: purge by key and by tag.
//! - `{p}urls` and `{p}paths`: sorted sets (all scores 0, so ordered by bytes) of the URLs,
//!   and of `path-and-query NUL url`: purge by prefix with `ZRANGEBYLEX`, never `KEYS`/`SCAN`.
//! - `{p}tags`: the set of tags, for purging everything.
//! - `{p}epoch`: the purge epoch, incremented by every purge; `{p}purge`: the purge channel.

use crate::cache::store::EntryKey;

#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

/// The separator between a path and its URL in a `{p}paths` member: URLs never hold a NUL.
const PATH_SEPARATOR: char = '\0';

impl Keys {
    pub(crate) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn object(&self, key: &EntryKey) -> String {
        match key.variance {
            Some(variance) => format!(
                "{}o:{}:{}",
                self.prefix,
                hex::encode(key.primary),
                hex::encode(variance)
            ),
            None => format!("{}o:{}", self.prefix, hex::encode(key.primary)),
        }
    }

    pub(crate) fn lock(&self, key: &EntryKey) -> String {
        let object = self.object(key);
        format!("{}lock:{}", self.prefix, &object[self.prefix.len()..])
    }

    pub(crate) fn url_index(&self, url: &str) -> String {
        format!("{}u:{url}", self.prefix)
    }

    pub(crate) fn tag_index(&self, tag: &str) -> String {
        format!("{}t:{tag}", self.prefix)
    }

    pub(crate) fn urls(&self) -> String {
        format!("{}urls", self.prefix)
    }

    pub(crate) fn paths(&self) -> String {
        format!("{}paths", self.prefix)
    }

    pub(crate) fn tags(&self) -> String {
        format!("{}tags", self.prefix)
    }

    pub(crate) fn epoch(&self) -> String {
        format!("{}epoch", self.prefix)
    }

    pub(crate) fn channel(&self) -> String {
        format!("{}purge", self.prefix)
    }
}

/// The `{p}paths` member of `url`, whose path-and-query is `path`.
pub(crate) fn path_member(path: &str, url: &str) -> String {
    format!("{path}{PATH_SEPARATOR}{url}")
}

/// The URL of a `{p}paths` member.
pub(crate) fn url_of_path_member(member: &str) -> Option<&str> {
    member.split_once(PATH_SEPARATOR).map(|(_, url)| url)
}

/// `ZRANGEBYLEX` bounds selecting the members that start with `prefix` (members are ASCII
/// URLs, so no member byte sorts after 0xff).
pub(crate) fn lex_prefix(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    let mut min = b"[".to_vec();
    min.extend_from_slice(prefix.as_bytes());
    let mut max = min.clone();
    max.push(0xff);
    (min, max)
}

/// `ZRANGEBYLEX` bounds selecting the `{p}paths` members of exactly `path`.
pub(crate) fn lex_exact_path(path: &str) -> (Vec<u8>, Vec<u8>) {
    lex_prefix(&format!("{path}{PATH_SEPARATOR}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_variants_get_their_own_slot() {
        let keys = Keys::new("svc:");
        let primary = EntryKey::primary([0xab; 16]);
        let variant = EntryKey {
            primary: [0xab; 16],
            variance: Some([1; 16]),
        };
        assert_eq!(keys.object(&primary), format!("svc:o:{}", "ab".repeat(16)));
        assert_eq!(
            keys.object(&variant),
            format!("svc:o:{}:{}", "ab".repeat(16), "01".repeat(16))
        );
        assert_eq!(
            keys.lock(&primary),
            format!("svc:lock:o:{}", "ab".repeat(16))
        );
        assert_eq!(keys.url_index("http://h/a"), "svc:u:http://h/a");
        assert_eq!(keys.tag_index("t"), "svc:t:t");
        assert_eq!(keys.channel(), "svc:purge");
        assert_eq!(keys.epoch(), "svc:epoch");
    }

    #[test]
    fn path_members_and_lex_ranges() {
        let member = path_member("/a?b", "http://h/a?b");
        assert_eq!(url_of_path_member(&member), Some("http://h/a?b"));
        let (min, max) = lex_exact_path("/a?b");
        assert!(min.as_slice() <= [b"[", member.as_bytes()].concat().as_slice());
        assert!(member.as_bytes() < &max[1..]);
        // `/a?bc` is not the exact path `/a?b`.
        let other = path_member("/a?bc", "http://h/a?bc");
        assert!(other.as_bytes() > &max[1..] || other.as_bytes() < &min[1..]);
        let (min, max) = lex_prefix("/a");
        assert!(&min[1..] <= member.as_bytes() && member.as_bytes() < &max[1..]);
    }
}
