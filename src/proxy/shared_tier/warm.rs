//! Warm starts: `[cache.warm] urls` fetched through this proxy's own listener at start and
//! after each reload, so that they take the normal pipeline (route, policy, cache key, the
//! shared tier) and a new replica serves hits from its first client request.
//!
//! The requests go over loopback with Pingora's own HTTP client: they are real client
//! requests in every respect, which an in-process shortcut into the cache would not be.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::upstreams::peer::HttpPeer;

use crate::proxy::Shared;

/// How long a warm fetch may take, headers and body.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the reload generation is compared (a reload warms the URLs again).
const RELOAD_POLL: Duration = Duration::from_secs(1);
/// How long to wait for the data listener at start.
const LISTEN_WAIT: Duration = Duration::from_secs(30);

pub(crate) struct Warmer(pub(crate) Arc<Shared>);

#[async_trait]
impl BackgroundService for Warmer {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut generation = None;
        let mut tick = tokio::time::interval(RELOAD_POLL);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
            }
            let now = self.0.reload_status().generation;
            if generation == Some(now) {
                continue;
            }
            generation = Some(now);
            warm(&self.0).await;
        }
    }
}

/// Where this process's data plane answers, as a loopback address when it listens on all
/// interfaces.
fn own_address(shared: &Shared) -> Option<SocketAddr> {
    let listen = *shared.policy().server.listen.first()?;
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Some(SocketAddr::new(ip, listen.port()))
}

async fn listening(addr: SocketAddr) -> bool {
    let deadline = tokio::time::Instant::now() + LISTEN_WAIT;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Fetches every warm URL of the current policy, `concurrency` at a time.
pub(crate) async fn warm(shared: &Arc<Shared>) {
    let warm = shared.policy().policy.cache_store.warm.clone();
    if warm.urls.is_empty() {
        return;
    }
    let Some(addr) = own_address(shared) else {
        return;
    };
    if !listening(addr).await {
        log::warn!("cache warm: the data plane does not accept on {addr}; not warmed");
        return;
    }
    let connector = Arc::new(Connector::new(None));
    let permits = Arc::new(tokio::sync::Semaphore::new(warm.concurrency.max(1)));
    let mut fetches = tokio::task::JoinSet::new();
    for url in warm.urls {
        let (connector, permits) = (connector.clone(), permits.clone());
        fetches.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let result = tokio::time::timeout(FETCH_TIMEOUT, fetch(&connector, addr, &url)).await;
            let result = result.unwrap_or_else(|_| Err("timed out".to_string()));
            (url, result)
        });
    }
    let metrics = &shared.metrics.shared_tier;
    let (mut ok, mut failed) = (0, 0);
    while let Some(done) = fetches.join_next().await {
        match done {
            Ok((_, Ok(()))) => {
                ok += 1;
                metrics.warm_ok.inc();
            }
            Ok((url, Err(e))) => {
                failed += 1;
                metrics.warm_error.inc();
                log::warn!("cache warm: {url}: {e}");
            }
            Err(_) => {
                failed += 1;
                metrics.warm_error.inc();
            }
        }
    }
    log::info!("cache warm: {ok} URL(s) fetched, {failed} failed");
}

/// One GET through the proxy, body read to the end so that the cache fill completes.
async fn fetch(connector: &Connector, addr: SocketAddr, url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{e}"))?;
    let authority = uri.authority().ok_or("no host")?.as_str().to_string();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request =
        RequestHeader::build("GET", path.as_bytes(), None).map_err(|e| e.to_string())?;
    request
        .insert_header(http::header::HOST, authority)
        .map_err(|e| e.to_string())?;
    request
        .insert_header(http::header::USER_AGENT, "outrider-cache-warm")
        .map_err(|e| e.to_string())?;
    let peer = HttpPeer::new(addr, false, String::new());
    let (mut session, _) = connector
        .get_http_session(&peer)
        .await
        .map_err(|e| e.to_string())?;
    session
        .write_request_header(Box::new(request))
        .await
        .map_err(|e| e.to_string())?;
    session
        .finish_request_body()
        .await
        .map_err(|e| e.to_string())?;
    session
        .read_response_header()
        .await
        .map_err(|e| e.to_string())?;
    let status = session.response_header().map_or(0, |h| h.status.as_u16());
    while session
        .read_response_body()
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {}
    if status >= 500 || status == 0 {
        return Err(format!("status {status}"));
    }
    Ok(())
}
