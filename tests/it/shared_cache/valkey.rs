//! Valkey, the Redis fork distributions ship: the same protocol, so the same tier. These run on
//! `valkey-server` whatever `$OUTRIDER_TEST_REDIS_SERVER` says (scripts/deps.sh installs it);
//! `OUTRIDER_TEST_REDIS_SERVER=valkey-server` runs every shared-tier test on it.

use super::{purges, replication};
use crate::support::redis_server::RedisServer;

fn valkey() -> RedisServer {
    let server = RedisServer::start_program("valkey-server");
    let info = server.info_server();
    assert!(
        info.contains("server_name:valkey"),
        "not a Valkey server: {info}"
    );
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_fetched_through_one_replica_is_a_hit_on_another_on_valkey() {
    replication::fetched_through_one_replica_hit_on_another(&valkey()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_selector_sent_to_one_replica_purges_valkey_and_the_others() {
    purges::every_selector_purges_redis_and_the_others(&valkey()).await;
}
