//! `[cache.shared]` and `[cache.warm]`, compiled and checked.

use std::time::Duration;

use redis::IntoConnectionInfo;
use serde::{Serialize, Serializer};

use super::compile::{at, key, Problems};
use super::diagnostics::Seg;
use super::policy::duration_str;
use super::schema;

/// A Redis URL. Serialised (for `GET /config`) without its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrl(pub(crate) String);

impl RedisUrl {
    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return self.0.clone();
        };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        match rest[..authority_end].rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
                format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
            }
            None => self.0.clone(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for RedisUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

/// `[cache.shared]`, compiled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedTierPolicy {
    pub url: RedisUrl,
    pub key_prefix: String,
    #[serde(with = "duration_str")]
    pub timeout: Duration,
    pub max_object_size: u64,
    /// Zero: no fleet-wide coalescing.
    #[serde(with = "duration_str")]
    pub fill_lock: Duration,
}

/// `[cache.warm]`, compiled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WarmPolicy {
    /// Absolute `http://host/path` URLs.
    pub urls: Vec<String>,
    pub concurrency: usize,
}

pub(super) fn compile(
    cache: &schema::CacheStore,
    p: &mut Problems,
) -> (Option<SharedTierPolicy>, WarmPolicy) {
    let shared = cache.shared.as_ref().map(|s| shared_tier(s, p));
    (shared, warm(&cache.warm, p))
}

fn shared_tier(s: &schema::SharedTier, p: &mut Problems) -> SharedTierPolicy {
    let base = [key("cache"), key("shared")];
    let url = s.url.trim();
    if url.is_empty() {
        p.add(
            base.to_vec(),
            "url is required: redis://host:port/db (or rediss:// for TLS)",
        );
    } else {
        match url.split_once("://").map(|(scheme, _)| scheme) {
            Some("rediss") if !cfg!(feature = "tls") => p.add(
                at(&base, &["url"]),
                "rediss:// needs a build with the `tls` feature (the default); this one has no TLS",
            ),
            Some("redis" | "rediss") => {
                if let Err(e) = url.into_connection_info() {
                    p.add(at(&base, &["url"]), format!("invalid Redis URL: {e}"));
                }
            }
            Some(other) => p.add(
                at(&base, &["url"]),
                format!("unknown scheme {other:?}: use redis:// or rediss:// (TLS)"),
            ),
            None => p.add(
                at(&base, &["url"]),
                "invalid Redis URL: expected redis://host:port/db or rediss://host:port/db",
            ),
        }
    }
    if s.key_prefix.is_empty() || s.key_prefix.chars().any(char::is_whitespace) {
        p.add(
            at(&base, &["key_prefix"]),
            "must be non-empty and without whitespace (it namespaces this service's keys)",
        );
    }
    if s.timeout.0.is_zero() {
        p.add(
            at(&base, &["timeout"]),
            "must be more than 0 (it bounds every Redis operation on the request path)",
        );
    }
    if s.max_object_size.0 == 0 {
        p.add(at(&base, &["max_object_size"]), "must be more than 0");
    }
    SharedTierPolicy {
        url: RedisUrl(url.to_string()),
        key_prefix: s.key_prefix.clone(),
        timeout: s.timeout.0,
        max_object_size: s.max_object_size.0,
        fill_lock: s.fill_lock.0,
    }
}

fn warm(w: &schema::Warm, p: &mut Problems) -> WarmPolicy {
    let base = [key("cache"), key("warm")];
    for (i, url) in w.urls.iter().enumerate() {
        let path = {
            let mut path = at(&base, &["urls"]);
            path.push(Seg::Index(i));
            path
        };
        match url.parse::<http::Uri>() {
            Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() => {}
            Ok(uri) if uri.scheme_str().is_some_and(|s| s != "http") => p.add(
                path,
                format!(
                    "unknown scheme {:?}: warm URLs are http://host/path (the cache key \
                     is the same for clients that came over TLS)",
                    uri.scheme_str().unwrap_or_default()
                ),
            ),
            Ok(_) => p.add(
                path,
                "an absolute URL is needed (http://host/path), so that the cache key is the one clients use",
            ),
            Err(e) => p.add(path, format!("invalid URL: {e}")),
        }
    }
    if w.concurrency == 0 {
        p.add(at(&base, &["concurrency"]), "must be at least 1");
    }
    WarmPolicy {
        urls: w.urls.clone(),
        concurrency: w.concurrency,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        let url = |s: &str| RedisUrl(s.to_string()).redacted();
        assert_eq!(url("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
        assert_eq!(url("redis://:secret@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(url("rediss://user:secret@h/1"), "rediss://user:***@h/1");
    }
}
