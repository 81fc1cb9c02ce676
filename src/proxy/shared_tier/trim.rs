//! Trimming the purge indexes. The per-URL and per-tag sets expire with their objects, but
//! the sorted sets of URLs and paths and the set of tags have no expiry (a prefix purge must
//! find every URL), so the entries of URLs and tags whose objects have all expired would stay
//! forever. Every replica walks them a batch at a time in the background and removes the
//! entries whose set is gone; the check and the removal are one script, so that a URL stored
//! again meanwhile keeps its entry.

use std::time::Duration;

use super::SharedTier;
use crate::cache::key::path_of;
use crate::cache::shared::keys::path_member;

/// URLs looked at per step (a step runs every few seconds on each replica).
const BATCH: isize = 500;
/// Tags sampled per step.
const TAG_SAMPLE: usize = 100;
const STEP_TIMEOUT: Duration = Duration::from_secs(2);

/// KEYS: urls, paths. ARGV: prefix, then url and its paths member in pairs.
const TRIM_URLS: &str = r"
local removed = 0
for i = 2, #ARGV, 2 do
  if redis.call('EXISTS', ARGV[1] .. 'u:' .. ARGV[i]) == 0 then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i + 1])
    removed = removed + 1
  end
end
return removed";

/// KEYS: tags. ARGV: prefix, then tags.
const TRIM_TAGS: &str = r"
local removed = 0
for i = 2, #ARGV do
  if redis.call('EXISTS', ARGV[1] .. 't:' .. ARGV[i]) == 0 then
    redis.call('SREM', KEYS[1], ARGV[i])
    removed = removed + 1
  end
end
return removed";

impl SharedTier {
    /// One step of the walk from rank `cursor` of the URL index; the next cursor (0 once
    /// the walk has wrapped around), or `cursor` again if Redis did not answer.
    pub(crate) async fn trim_step(&self, cursor: isize) -> isize {
        let Some(mut c) = self.connection() else {
            return cursor;
        };
        let keys = self.keys.clone();
        let step = async move {
            let urls: Vec<String> = redis::cmd("ZRANGE")
                .arg(keys.urls())
                .arg(cursor)
                .arg(cursor + BATCH - 1)
                .query_async(&mut c)
                .await?;
            let mut removed = 0isize;
            if !urls.is_empty() {
                let trim_urls = redis::Script::new(TRIM_URLS);
                let mut script = trim_urls.prepare_invoke();
                script.key(keys.urls()).key(keys.paths()).arg(keys.prefix());
                for url in &urls {
                    script.arg(url).arg(path_member(path_of(url), url));
                }
                removed = script.invoke_async(&mut c).await?;
            }
            let tags: Vec<String> = redis::cmd("SRANDMEMBER")
                .arg(keys.tags())
                .arg(TAG_SAMPLE)
                .query_async(&mut c)
                .await?;
            if !tags.is_empty() {
                let trim_tags = redis::Script::new(TRIM_TAGS);
                let mut script = trim_tags.prepare_invoke();
                script.key(keys.tags()).arg(keys.prefix());
                for tag in &tags {
                    script.arg(tag);
                }
                let _: isize = script.invoke_async(&mut c).await?;
            }
            let next = if (urls.len() as isize) < BATCH {
                0
            } else {
                cursor + BATCH - removed
            };
            redis::RedisResult::Ok(next)
        };
        match tokio::time::timeout(STEP_TIMEOUT, step).await {
            Ok(Ok(next)) => next,
            _ => cursor,
        }
    }
}
