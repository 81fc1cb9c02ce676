//! The floor `benches/load.sh` holds Outrider against: the least a Pingora proxy can be, a
//! `ProxyHttp` with only `upstream_peer`, built with the same profile and allocator as the
//! Outrider binary it is compared with. Not shipped: an example, built on demand by the bench.
//!
//! ```text
//! floor_proxy LISTEN UPSTREAM              # pass-through to UPSTREAM (one worker thread)
//! floor_proxy LISTEN UPSTREAM --memory F   # answer every request with file F from memory
//! floor_proxy LISTEN UPSTREAM --cache      # cache every response for an hour, Pingora's way
//! ```
//!
//! `--memory` is the cache-hit ceiling: Pingora writing a stored answer (a header and a body
//! held in memory) with no cache machinery around it, so a cache hit can be compared with
//! what answering from memory costs Pingora itself. `--cache` is Pingora's own cache with the
//! least a product must add: pingora-cache's `HttpCache` over its in-memory storage
//! (`MemCache`), the URL as key, every response stored. Between the two lies what
//! pingora-cache's hit path costs, whoever builds on it.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use async_trait::async_trait;
use bytes::Bytes;
use pingora::cache::{CacheKey, CacheMeta, CachePhase, MemCache, RespCacheable};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

/// `--cache`'s storage: pingora-cache wants it `'static`.
static MEMORY_CACHE: LazyLock<MemCache> = LazyLock::new(MemCache::new);

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Floor {
    upstream: String,
    /// `--memory`: the answer's header and body, built once.
    memory: Option<(ResponseHeader, Bytes)>,
    /// `--cache`: through pingora-cache instead.
    cache: bool,
}

#[async_trait]
impl ProxyHttp for Floor {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        let Some((header, body)) = &self.memory else {
            return Ok(false);
        };
        session
            .write_response_header(Box::new(header.clone()), false)
            .await?;
        session
            .write_response_body(Some(body.clone()), true)
            .await?;
        Ok(true)
    }

    fn request_cache_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<()> {
        if self.cache {
            session.cache.enable(&*MEMORY_CACHE, None, None, None, None);
        }
        Ok(())
    }

    fn cache_key_callback(&self, session: &Session, _ctx: &mut ()) -> Result<CacheKey> {
        Ok(CacheKey::new(session.req_header().uri.to_string(), ""))
    }

    fn response_cache_filter(
        &self,
        _session: &Session,
        resp: &ResponseHeader,
        _ctx: &mut (),
    ) -> Result<RespCacheable> {
        let now = SystemTime::now();
        let fresh_until = now + Duration::from_secs(3600);
        Ok(RespCacheable::Cacheable(CacheMeta::new(
            fresh_until,
            now,
            0,
            0,
            resp.clone(),
        )))
    }

    /// `--cache` says whether it answered from the cache, as nginx's `X-Cache-Status` does,
    /// for benches/load.sh's check that the rows it measures are hits.
    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        if self.cache {
            let hit = matches!(session.cache.phase(), CachePhase::Hit);
            resp.insert_header("X-Cache-Status", if hit { "HIT" } else { "MISS" })?;
        }
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (listen, upstream) = match args.as_slice() {
        [_, listen, upstream, ..] => (listen.clone(), upstream.clone()),
        _ => {
            eprintln!("usage: floor_proxy LISTEN UPSTREAM [--memory FILE | --cache]");
            std::process::exit(2);
        }
    };
    let cache = args.get(3).map(String::as_str) == Some("--cache");
    let memory = match args.get(3).map(String::as_str).filter(|_| !cache) {
        Some("--memory") => {
            let body = std::fs::read(args.get(4).expect("--memory FILE")).expect("read FILE");
            let mut header = ResponseHeader::build(200, Some(3)).unwrap();
            header.insert_header("Content-Type", "text/plain").unwrap();
            header
                .insert_header("Content-Length", body.len().to_string())
                .unwrap();
            Some((header, Bytes::from(body)))
        }
        Some(other) => panic!("unknown argument {other}"),
        None => None,
    };

    let conf = ServerConf {
        threads: 1,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(
        &server.configuration,
        Floor {
            upstream,
            memory,
            cache,
        },
    );
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
