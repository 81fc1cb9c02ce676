//! The buffered leg's upstream connections: a pooled one when the keep-alive pool has it, a
//! new one otherwise, and back to the pool when the response was read to its end.
//!
//! Why not Pingora's `connectors::http::Connector`, as its own leg uses: its pool hands every
//! idle connection to a task spawned at release (the "idle watch", which closes it when the
//! upstream does), and a checkout has to wake that task and wait for it to let go of the
//! connection, plus a `getpeername` to check the socket is still the peer's. Per request that
//! is a task spawn, two task switches and a system call, a noticeable share of a pass-through
//! request's CPU (README, "Where a request's CPU goes"). This pool keeps idle connections in a
//! stack per upstream address instead, and checks one at checkout without a system call: the
//! runtime already knows whether the socket turned readable (the upstream closed it, or sent
//! bytes nobody asked for), and such a connection is dropped. Connections closed while idle are
//! also cleared on each release (the oldest of that upstream is checked) and by a sweep every
//! few seconds, so none lingers half-closed once traffic stops. What slips through (a close
//! racing the checkout) fails as a stale pooled connection, which the retry rules send again
//! on a new one, as with Pingora's pool.
//!
//! New connections are Pingora's (`TransportConnector::new_stream`: TCP, TLS, bind and connect
//! options), awaited in a box of their own: the handshake's future is several kilobytes, and
//! inline it would sit in every request's future, which Pingora boxes (so copies) once per
//! request. The leg speaks HTTP/1.1 upstream, as Pingora's leg does for a peer without ALPN.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use parking_lot::Mutex;
use pingora::connectors::{ConnectorOptions, TransportConnector};
use pingora::prelude::*;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::v1::client::HttpSession as Http1Session;
use pingora::protocols::Stream;
use pingora::upstreams::peer::Peer;
use tokio::io::AsyncReadExt;

/// How often idle connections are checked while nothing is released.
const SWEEP: Duration = Duration::from_secs(5);

/// The buffered leg's connector and keep-alive pool (public for `benches/upstream_pool.rs`).
pub struct UpstreamConnector {
    transport: TransportConnector,
    idle: Arc<IdlePool>,
    sweeper: OnceLock<()>,
}

struct IdlePool {
    /// Idle connections by the peer's `reuse_hash`, newest last.
    by_peer: Mutex<HashMap<u64, VecDeque<Idle>>>,
    /// Idle connections kept at most, over all peers (Pingora's `upstream_keepalive_pool_size`
    /// per thread).
    capacity: usize,
}

struct Idle {
    stream: Stream,
    /// Checked at checkout: a different address under the same hash is not this peer (a
    /// Unix socket's path is left to the hash, which covers it).
    addr: Option<SocketAddr>,
    since: Instant,
    timeout: Option<Duration>,
}

impl Idle {
    /// Still worth reusing: within its idle timeout, and the upstream has neither closed it
    /// nor sent anything (an idle HTTP/1.1 connection has nothing to say).
    fn usable(&mut self, now: Instant) -> bool {
        if self
            .timeout
            .is_some_and(|t| now.saturating_duration_since(self.since) >= t)
        {
            return false;
        }
        let mut byte = [0u8; 1];
        // Ready means end of stream, an error or unexpected bytes; pending means quiet. The
        // read costs no system call when the runtime has seen no readiness on the socket.
        tokio::task::unconstrained(self.stream.read(&mut byte))
            .now_or_never()
            .is_none()
    }
}

impl UpstreamConnector {
    pub fn new(options: ConnectorOptions) -> Self {
        let capacity = options.keepalive_pool_size;
        UpstreamConnector {
            transport: TransportConnector::new(Some(options)),
            idle: Arc::new(IdlePool {
                by_peer: Mutex::new(HashMap::new()),
                capacity,
            }),
            sweeper: OnceLock::new(),
        }
    }

    /// A connection to `peer`, and whether it came from the pool.
    pub async fn connect(&self, peer: &HttpPeer) -> Result<(HttpSession, bool)> {
        if let Some(stream) = self.idle.checkout(peer) {
            return Ok((
                HttpSession::H1(Http1Session::new_with_options(stream, peer)),
                true,
            ));
        }
        let stream = Box::pin(self.transport.new_stream(peer)).await?;
        Ok((
            HttpSession::H1(Http1Session::new_with_options(stream, peer)),
            false,
        ))
    }

    /// Back to the pool, if the exchange left the connection reusable (HTTP/1.1 keep-alive,
    /// nothing left unread); otherwise closed.
    pub async fn release(&self, session: HttpSession, peer: &HttpPeer) {
        let HttpSession::H1(mut h1) = session else {
            return;
        };
        h1.respect_keepalive();
        let Some(stream) = h1.reuse().await else {
            return;
        };
        self.sweeper.get_or_init(|| {
            let idle = Arc::downgrade(&self.idle);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(SWEEP);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(idle) = idle.upgrade() else {
                        return;
                    };
                    idle.sweep();
                }
            });
        });
        self.idle.release(
            peer.reuse_hash(),
            Idle {
                stream,
                addr: peer.address().as_inet().copied(),
                since: Instant::now(),
                timeout: peer.idle_timeout(),
            },
        );
    }
}

impl IdlePool {
    fn checkout(&self, peer: &HttpPeer) -> Option<Stream> {
        let key = peer.reuse_hash();
        let now = Instant::now();
        loop {
            // Closed outside the lock: dropping a stream deregisters it from the runtime.
            let mut idle = self.by_peer.lock().get_mut(&key)?.pop_back()?;
            if idle.addr == peer.address().as_inet().copied() && idle.usable(now) {
                return Some(idle.stream);
            }
        }
    }

    fn release(&self, key: u64, idle: Idle) {
        let now = idle.since;
        let mut closed = Vec::new();
        {
            let mut by_peer = self.by_peer.lock();
            let mut total: usize = by_peer.values().map(VecDeque::len).sum();
            let stack = by_peer.entry(key).or_default();
            // The oldest connection of this peer is the one most likely to have been closed
            // by the upstream's own keep-alive timeout; checking one per release keeps the
            // stack clean at no extra cost per request.
            if stack.front_mut().is_some_and(|oldest| !oldest.usable(now)) {
                closed.extend(stack.pop_front());
                total = total.saturating_sub(1);
            }
            if total < self.capacity {
                stack.push_back(idle);
            } else if let Some(oldest) = stack.pop_front() {
                closed.push(oldest);
                stack.push_back(idle);
            } else {
                // Full with other peers' connections: this one is not kept.
                closed.push(idle);
            }
        }
        drop(closed);
    }

    /// Drops every idle connection the upstream closed or that outlived its idle timeout.
    fn sweep(&self) {
        let now = Instant::now();
        let mut closed = Vec::new();
        {
            let mut by_peer = self.by_peer.lock();
            for stack in by_peer.values_mut() {
                for mut idle in std::mem::take(stack) {
                    if idle.usable(now) {
                        stack.push_back(idle);
                    } else {
                        closed.push(idle);
                    }
                }
            }
            by_peer.retain(|_, stack| !stack.is_empty());
        }
        drop(closed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::protocols::l4::stream::Stream as TcpStreamL4;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A listener standing in for the upstream, its peer, and an empty pool.
    async fn rig(capacity: usize) -> (TcpListener, HttpPeer, IdlePool) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = HttpPeer::new(listener.local_addr().unwrap(), false, String::new());
        let pool = IdlePool {
            by_peer: Mutex::new(HashMap::new()),
            capacity,
        };
        (listener, peer, pool)
    }

    /// Idle connections the pool holds, over all peers.
    fn held(pool: &IdlePool) -> usize {
        pool.by_peer.lock().values().map(VecDeque::len).sum()
    }

    /// The ids of the connections the pool hands out for `peer`, in order, until it has none.
    fn drain(pool: &IdlePool, peer: &HttpPeer) -> Vec<i32> {
        std::iter::from_fn(|| pool.checkout(peer).map(|s| id(&s))).collect()
    }

    /// A connected pair: the pooled client end, and the upstream's end.
    async fn pair(listener: &TcpListener) -> (Stream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Box::new(TcpStreamL4::from(client)), server)
    }

    fn idle(stream: Stream, peer: &HttpPeer) -> Idle {
        Idle {
            stream,
            addr: peer.address().as_inet().copied(),
            since: Instant::now(),
            timeout: None,
        }
    }

    fn id(stream: &Stream) -> i32 {
        stream.id()
    }

    #[tokio::test]
    async fn the_newest_quiet_connection_is_handed_out_first() {
        let (listener, peer, pool) = rig(8).await;
        let (a, _a_server) = pair(&listener).await;
        let (b, _b_server) = pair(&listener).await;
        let (a_id, b_id) = (id(&a), id(&b));
        pool.release(peer.reuse_hash(), idle(a, &peer));
        pool.release(peer.reuse_hash(), idle(b, &peer));
        assert_eq!(drain(&pool, &peer), [b_id, a_id]);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_or_wrote_on_is_not_handed_out() {
        let (listener, peer, pool) = rig(8).await;
        for upstream_does in ["close", "write"] {
            let deadline = Instant::now() + Duration::from_secs(10);
            let (stream, mut server) = pair(&listener).await;
            if upstream_does == "close" {
                drop(server);
            } else {
                server.write_all(b"HTTP/1.1 408 x\r\n\r\n").await.unwrap();
            }
            let mut stream = Some(stream);
            // Until the runtime has seen the socket turn readable, the connection looks idle.
            loop {
                pool.release(peer.reuse_hash(), idle(stream.take().unwrap(), &peer));
                match pool.checkout(&peer) {
                    None => break,
                    Some(s) => stream = Some(s),
                }
                assert!(
                    Instant::now() < deadline,
                    "{upstream_does}: still handed out"
                );
                tokio::task::yield_now().await;
            }
        }
    }

    #[tokio::test]
    async fn the_pool_keeps_at_most_its_capacity_dropping_the_oldest() {
        let (listener, peer, pool) = rig(2).await;
        let mut servers = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let (stream, server) = pair(&listener).await;
            servers.push(server);
            ids.push(id(&stream));
            pool.release(peer.reuse_hash(), idle(stream, &peer));
        }
        assert_eq!(drain(&pool, &peer), [ids[2], ids[1]]);
    }

    #[tokio::test]
    async fn expired_and_closed_connections_are_swept_and_another_address_never_matches() {
        let (listener, peer, pool) = rig(8).await;
        let (kept, _s2) = pair(&listener).await;
        let kept_id = id(&kept);
        pool.release(peer.reuse_hash(), idle(kept, &peer));
        let (expired, _s1) = pair(&listener).await;
        let mut old = idle(expired, &peer);
        old.timeout = Some(Duration::from_millis(1));
        old.since = Instant::now() - Duration::from_secs(1);
        pool.release(peer.reuse_hash(), old);
        assert_eq!(held(&pool), 2);
        pool.sweep();
        assert_eq!(held(&pool), 1);

        let other = HttpPeer::new("127.0.0.2:9", false, String::new());
        let (foreign, _s3) = pair(&listener).await;
        // Filed under this peer's hash but with another address: a hash collision.
        pool.release(peer.reuse_hash(), idle(foreign, &other));
        assert_eq!(drain(&pool, &peer), [kept_id]);
    }
}
