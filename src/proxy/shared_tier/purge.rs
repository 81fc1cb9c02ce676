//! Purges: the epoch moves, the matching objects leave Redis (found through the indexes,
//! never by scanning the keyspace), and the purge is published for every other replica.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use redis::RedisResult;

use super::SharedTier;
use crate::cache::key::path_of;
use crate::cache::shared::keys::{lex_exact_path, lex_prefix, path_member, url_of_path_member};
use crate::cache::shared::{PurgeMessage, PurgeTarget};
use crate::metrics::shared_cache::{SharedOp, SharedResult};

/// URLs purged per pipeline.
const BATCH: usize = 200;

/// What a purge removed: locally, and in Redis (`None` when Redis did not answer).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PurgeCounts {
    pub(crate) shared: Option<usize>,
}

impl SharedTier {
    /// [`SharedTier::purge`] from a spawned task, for the invalidation after an unsafe
    /// method: without it the replica's next lookup would find the shared copy it just
    /// invalidated locally. A failure is counted, not logged (it happens per request).
    pub(crate) fn purge_later(self: &Arc<Self>, target: PurgeTarget) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let tier = self.clone();
        runtime.spawn(async move { tier.purge_quietly(&target, false).await });
    }

    /// Removes what `target` selects from Redis and tells every replica; `None` if Redis
    /// did not answer (the local purge has happened anyway).
    pub(crate) async fn purge(&self, target: &PurgeTarget) -> PurgeCounts {
        self.purge_quietly(target, true).await
    }

    async fn purge_quietly(&self, target: &PurgeTarget, log_failure: bool) -> PurgeCounts {
        let keys = self.keys.clone();
        let from = self.instance.clone();
        let target_owned = target.clone();
        let answer = self
            .run(
                SharedOp::Purge,
                super::PURGE_TIMEOUT,
                false,
                |_: &(usize, u64)| SharedResult::Ok,
                |mut c| async move {
                    // The epoch moves first: a write of a response fetched before the purge
                    // (conditional on the epoch it saw, see `write`) is refused from here on,
                    // and one that landed before is among what the deletes below find.
                    let epoch: u64 = redis::cmd("INCR")
                        .arg(keys.epoch())
                        .query_async(&mut c)
                        .await?;
                    let purged = purge_in_redis(&mut c, &keys, &target_owned).await?;
                    let message = PurgeMessage {
                        from,
                        epoch,
                        target: target_owned,
                    };
                    let _: i64 = redis::cmd("PUBLISH")
                        .arg(keys.channel())
                        .arg(message.encode())
                        .query_async(&mut c)
                        .await?;
                    Ok((purged, epoch))
                },
            )
            .await;
        match answer {
            Ok((purged, epoch)) => {
                self.account_epoch(epoch);
                PurgeCounts {
                    shared: Some(purged),
                }
            }
            Err(e) if log_failure => {
                log::warn!("shared cache tier: purge {target:?} not applied in Redis ({e:?}); other replicas keep their copies until they expire");
                PurgeCounts { shared: None }
            }
            Err(_) => PurgeCounts { shared: None },
        }
    }
}

async fn purge_in_redis(
    c: &mut ConnectionManager,
    keys: &crate::cache::shared::keys::Keys,
    target: &PurgeTarget,
) -> RedisResult<usize> {
    let urls: Vec<String> = match target {
        PurgeTarget::Url(url) => vec![url.clone()],
        PurgeTarget::Path(path) => {
            let (min, max) = lex_exact_path(path);
            urls_of_paths(range(c, &keys.paths(), min, max).await?)
        }
        PurgeTarget::Prefix(prefix) if prefix.starts_with('/') => {
            let (min, max) = lex_prefix(prefix);
            urls_of_paths(range(c, &keys.paths(), min, max).await?)
        }
        PurgeTarget::Prefix(prefix) => {
            let (min, max) = lex_prefix(prefix);
            range(c, &keys.urls(), min, max).await?
        }
        PurgeTarget::Tag(tag) => {
            let index = keys.tag_index(tag);
            let members: Vec<String> = redis::cmd("SMEMBERS").arg(&index).query_async(c).await?;
            let mut purged = 0;
            for chunk in members.chunks(BATCH) {
                let n: usize = redis::cmd("DEL").arg(chunk).query_async(c).await?;
                purged += n;
            }
            redis::pipe()
                .cmd("DEL")
                .arg(&index)
                .ignore()
                .cmd("SREM")
                .arg(keys.tags())
                .arg(tag)
                .ignore()
                .query_async::<()>(c)
                .await?;
            return Ok(purged);
        }
        PurgeTarget::All => {
            let urls: Vec<String> = redis::cmd("ZRANGE")
                .arg(keys.urls())
                .arg(0)
                .arg(-1)
                .query_async(c)
                .await?;
            let purged = purge_urls(c, keys, &urls).await?;
            let tags: Vec<String> = redis::cmd("SMEMBERS")
                .arg(keys.tags())
                .query_async(c)
                .await?;
            for chunk in tags.chunks(BATCH) {
                let indexes: Vec<String> = chunk.iter().map(|t| keys.tag_index(t)).collect();
                let _: usize = redis::cmd("DEL").arg(indexes).query_async(c).await?;
            }
            let _: usize = redis::cmd("DEL")
                .arg(keys.urls())
                .arg(keys.paths())
                .arg(keys.tags())
                .query_async(c)
                .await?;
            return Ok(purged);
        }
    };
    purge_urls(c, keys, &urls).await
}

async fn range(
    c: &mut ConnectionManager,
    set: &str,
    min: Vec<u8>,
    max: Vec<u8>,
) -> RedisResult<Vec<String>> {
    redis::cmd("ZRANGEBYLEX")
        .arg(set)
        .arg(min)
        .arg(max)
        .query_async(c)
        .await
}

fn urls_of_paths(members: Vec<String>) -> Vec<String> {
    members
        .iter()
        .filter_map(|m| url_of_path_member(m))
        .map(str::to_string)
        .collect()
}

/// Deletes every object of `urls` and their index entries; the number of objects deleted.
async fn purge_urls(
    c: &mut ConnectionManager,
    keys: &crate::cache::shared::keys::Keys,
    urls: &[String],
) -> RedisResult<usize> {
    let mut purged = 0;
    for chunk in urls.chunks(BATCH) {
        let mut pipe = redis::pipe();
        for url in chunk {
            pipe.cmd("SMEMBERS").arg(keys.url_index(url));
        }
        let members: Vec<Vec<String>> = pipe.query_async(c).await?;
        let objects: Vec<&String> = members.iter().flatten().collect();
        if !objects.is_empty() {
            let n: usize = redis::cmd("DEL").arg(objects).query_async(c).await?;
            purged += n;
        }
        let mut pipe = redis::pipe();
        let indexes: Vec<String> = chunk.iter().map(|u| keys.url_index(u)).collect();
        pipe.cmd("DEL").arg(indexes).ignore();
        pipe.cmd("ZREM").arg(keys.urls()).arg(chunk).ignore();
        let members: Vec<String> = chunk.iter().map(|u| path_member(path_of(u), u)).collect();
        pipe.cmd("ZREM").arg(keys.paths()).arg(members).ignore();
        pipe.query_async::<()>(c).await?;
    }
    Ok(purged)
}
