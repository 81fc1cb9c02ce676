//! The buffered leg's upstream connections: a pooled one when the keep-alive pool has it, a
//! new one otherwise, and back to the pool when the response was read to its end.
//!
//! Pingora's `connectors::http::Connector` does the same in one `get_http_session` future, and
//! that future holds the TCP and TLS handshakes inline: several kilobytes, which then sit in
//! every request's future (the leg runs inside `proxy_upstream_filter`, whose future Pingora
//! boxes, so its whole size is copied once per request). Here the pooled path is a small
//! future and only a new connection pays for the handshake's, in a box of its own. Pooling
//! itself is Pingora's `TransportConnector` (its pool, its idle watch, its reuse checks); the
//! leg speaks HTTP/1.1 upstream, as Pingora's leg does for a peer without ALPN.

use pingora::connectors::{ConnectorOptions, TransportConnector};
use pingora::prelude::*;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::v1::client::HttpSession as Http1Session;
use pingora::upstreams::peer::Peer;

pub(crate) struct UpstreamConnector {
    transport: TransportConnector,
}

impl UpstreamConnector {
    pub(crate) fn new(options: ConnectorOptions) -> Self {
        UpstreamConnector {
            transport: TransportConnector::new(Some(options)),
        }
    }

    /// A connection to `peer`, and whether it came from the pool.
    pub(crate) async fn connect(&self, peer: &HttpPeer) -> Result<(HttpSession, bool)> {
        if let Some(stream) = self.transport.reused_stream(peer).await {
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
    pub(crate) async fn release(&self, session: HttpSession, peer: &HttpPeer) {
        let HttpSession::H1(mut h1) = session else {
            return;
        };
        h1.respect_keepalive();
        if let Some(stream) = h1.reuse().await {
            self.transport
                .release_stream(stream, peer.reuse_hash(), peer.idle_timeout());
        }
    }
}
