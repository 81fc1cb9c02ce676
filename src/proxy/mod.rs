//! The data plane: Outrider's pipeline wired into Pingora's `ProxyHttp` hooks.
//!
//! Each hook body is one step of DESIGN.md's pipeline and hands its decision to a pure module;
//! this file only knows *where* in Pingora's order each step has to sit, and why.

mod access_log;
mod active;
mod advice;
mod buffered;
mod cache;
mod cache_conditional;
mod cache_fill;
mod cache_storage;
mod cache_update;
mod client_limits;
mod compression;
mod deadline;
mod failure;
mod head_clock;
mod health_probe;
mod hygiene;
mod ranges;
mod rate_limit;
mod resilience;
mod retry;
pub(crate) mod shared_tier;
mod slow_log;
mod state;
mod stored_header;
mod upstream_conn;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::header;
use log::{debug, info, warn};
use pingora::cache::key::HashBinary;
use pingora::cache::storage::HitHandler;
use pingora::cache::{CacheKey, CacheMeta, ForcedFreshness, RespCacheable};
use pingora::connectors::ConnectorOptions;
use pingora::http::ResponseHeader;
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora::proxy::FailToProxy;
use pingora::server::configuration::ServerConf;

use crate::breaker::{Pass, Permit, Rejection};
use crate::config::policy::{Route, Upstream};
use crate::metrics::{method_index, Outcome, UpstreamMetrics};

pub use active::Active;
pub use cache_storage::{CacheBackend, StoreHints};
use compression::{Compression, CompressionBuilder};
pub(crate) use failure::Failure;
pub(crate) use head_clock::ClockedProxy;
pub(crate) use health_probe::HealthProber;
use resilience::Ended;
pub use state::{InflightGuard, Shared};
pub use upstream_conn::UpstreamConnector;

/// The `ProxyHttp` implementation. Holds only shared handles; per-request state is [`Ctx`].
pub(crate) struct Outrider {
    shared: Arc<Shared>,
    /// The buffered leg's upstream connections and their keep-alive pool (Pingora's leg has
    /// its own inside the proxy service).
    connector: upstream_conn::UpstreamConnector,
}

impl Outrider {
    pub(crate) fn new(shared: Arc<Shared>, server: &ServerConf) -> Self {
        Outrider {
            shared,
            connector: upstream_conn::UpstreamConnector::new(ConnectorOptions::from_server_conf(
                server,
            )),
        }
    }
}

/// Per-request state. The policy snapshot is loaded once, in `new_ctx`, and kept to the end.
pub(crate) struct Ctx {
    policy: Arc<Active>,
    /// Index of the matched route in `policy`, set by `early_request_filter`.
    route: Option<usize>,
    /// Index of the chosen endpoint in the route's upstream, set by `upstream_peer`.
    endpoint: Option<usize>,
    started: Instant,
    /// When the upstream endpoint was chosen, and how long until its response header came.
    upstream_started: Option<Instant>,
    upstream_elapsed: Option<Duration>,
    /// When the connection to the endpoint was ready, and whether it came from the pool (for
    /// the slow-request log's connect and first-byte times).
    connected: Option<(Instant, bool)>,
    /// Holds `outrider_inflight_requests{upstream}` up while the upstream leg is open.
    upstream_inflight: Option<UpstreamInflight>,
    /// Attempts retried (see `retry`).
    retries: u8,
    /// The wait before the next retry's attempt.
    backoff: Option<Duration>,
    /// `upstream_response_filter` turned a retryable status into a retryable error.
    retry_pending: bool,
    /// The upstream attempt in progress: its endpoint breaker's pass, until the outcome is
    /// recorded (see `resilience`).
    attempt: Option<Pass>,
    /// The upstream's concurrency slot, held to the end of the request.
    permit: Option<Permit>,
    /// The upstream refused the request (breaker open, over the limit), and why.
    rejected: Option<Rejection>,
    cache: cache::CacheCtx,
    advice: advice::Probe,
    /// Request body bytes seen so far, against `[limits] max_body`.
    body_meter: crate::limits::BodyMeter,
    _inflight: InflightGuard,
}

/// Decrements the upstream's in-flight gauge when the request ends, however it ends.
struct UpstreamInflight(prometheus::IntGauge);

impl Drop for UpstreamInflight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Ctx {
    fn route(&self) -> Option<&Route> {
        self.route.and_then(|id| self.policy.route_by_id(id))
    }

    fn upstream(&self) -> Option<&Arc<Upstream>> {
        self.route().map(|r| self.policy.upstream_of(r))
    }

    fn upstream_metrics(&self) -> Option<&UpstreamMetrics> {
        let route = self.route()?;
        self.policy.metrics.upstreams.get(route.upstream)
    }

    fn endpoint_label(&self) -> &str {
        match (self.upstream(), self.endpoint) {
            (Some(u), Some(i)) => u.endpoints.get(i).map_or("-", |e| e.label.as_str()),
            _ => "-",
        }
    }
}

/// The request's host without port, from the URI authority (HTTP/2, absolute-form) or `Host`.
fn request_host(session: &Session) -> &str {
    let req = session.req_header();
    let raw = req
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("");
    strip_port(raw)
}

fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        // IPv6 literal: keep the brackets, drop ":port" after them.
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

fn is_idempotent(method: &http::Method) -> bool {
    use http::Method;
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

fn client_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// Writes a complete short text response from the proxy itself (404, 502, ...).
async fn respond_text(session: &mut Session, status: u16, body: Bytes) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header(header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
    resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    write_local(session, Box::new(resp), body).await
}

/// Writes a response the proxy made itself. A HEAD gets an empty body (its `Content-Length`
/// still describes the body a GET would get): Pingora's HTTP/2 writer would send the body,
/// and the client would reset the stream. The stream ends with an empty DATA frame rather
/// than on the header: ended on the header, Pingora's HTTP/2 stream is reset (CANCEL) when
/// the session is dropped, which clients report as an error.
async fn write_local(session: &mut Session, resp: Box<ResponseHeader>, body: Bytes) -> Result<()> {
    let body = if session.req_header().method == http::Method::HEAD {
        Bytes::new()
    } else {
        body
    };
    session.write_response_header(resp, false).await?;
    session.write_response_body(Some(body), true).await
}

#[async_trait]
impl ProxyHttp for Outrider {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            policy: self.shared.policy(),
            route: None,
            endpoint: None,
            started: Instant::now(),
            upstream_started: None,
            upstream_elapsed: None,
            connected: None,
            upstream_inflight: None,
            retries: 0,
            backoff: None,
            retry_pending: false,
            attempt: None,
            permit: None,
            rejected: None,
            cache: cache::CacheCtx::default(),
            advice: advice::Probe::default(),
            body_meter: crate::limits::BodyMeter::default(),
            _inflight: self.shared.track_request(),
        }
    }

    /// Ours replaces Pingora's compression module (see `compression`).
    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        modules.add_module(Box::new(CompressionBuilder));
    }

    /// Pipeline step 1: route. Here rather than in `request_filter` because later steps
    /// (compression) must be configured before Pingora's modules read the request headers,
    /// which happens between the two hooks.
    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        head_clock::head_received();
        hygiene::absolute_form_to_origin_form(session.req_header_mut())?;
        hygiene::drop_unannounced_upgrade(session.req_header_mut());
        // RFC 9112 §9.3.2: requests pipelined behind this one are answered in order (Pingora
        // otherwise closes the connection after the first, dropping the rest).
        if let pingora::protocols::http::ServerSession::H1(h1) = session.as_downstream_mut() {
            h1.set_pipelining_enabled(true);
        }
        let req = session.req_header();
        ctx.route = ctx
            .policy
            .route(request_host(session), req.uri.path(), &req.method);
        if let Some(route) = ctx.route {
            if let Some(module) = session.downstream_modules_ctx.get_mut::<Compression>() {
                module.plan(&ctx.policy, route, session.downstream_session.req_header());
            }
        }
        Ok(())
    }

    /// Pipeline step 2: refuses what breaks `[limits]` (414, 431, 413) and the route's
    /// `rate_limit` (429) before anything goes
    /// upstream, and answers unrouted requests itself: there is nowhere to send them.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        if client_limits::admit(session, ctx).await? {
            return Ok(true);
        }
        if ctx.route.is_some() {
            return rate_limit::admit(session, ctx).await;
        }
        respond_text(
            session,
            404,
            Bytes::from_static(b"404 Not Found: no route matches this request\n"),
        )
        .await?;
        Ok(true)
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        client_limits::meter_body(session, body, ctx)
    }

    /// Ranges on whole bodies (cache hits) are decided strictly (see `ranges`), then served
    /// by Pingora's filter.
    fn range_header_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        _ctx: &mut Ctx,
    ) -> pingora::proxy::RangeType {
        ranges::filter(session.req_header(), resp)
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        let max_object =
            usize::try_from(ctx.policy.cache_store.max_object_size).unwrap_or(usize::MAX);
        cache::request_cache_filter(self.shared.cache, max_object, session, ctx);
        Ok(())
    }

    fn cache_key_callback(&self, session: &Session, ctx: &mut Ctx) -> Result<CacheKey> {
        cache::cache_key(session, ctx)
    }

    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<RespCacheable> {
        Ok(cache::response_cacheable(session, resp, ctx))
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        ctx: &mut Ctx,
        req: &pingora::http::RequestHeader,
    ) -> Option<HashBinary> {
        let variance = cache::variance(meta, ctx.route(), req);
        // Before the upstream leg this is the lookup: a stored response for the URL whose
        // variance differs from this request's is a vary-miss (RFC 9211 §2.2).
        if ctx.upstream_started.is_none() && variance != meta.variance() {
            ctx.cache.vary_miss = true;
        }
        variance
    }

    async fn cache_hit_filter(
        &self,
        session: &mut Session,
        meta: &CacheMeta,
        hit_handler: &mut HitHandler,
        is_fresh: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<ForcedFreshness>> {
        if !is_fresh && session.req_header().version == http::Version::HTTP_2 {
            // A stale hit may start a background refresh. Pingora builds that subrequest by
            // writing the client's request as HTTP/1 text and parsing it back, and an
            // "HTTP/2" version fails the parse: the refresh never runs and its cache lock is
            // left for readers to time out on. The version only labels the request here; the
            // authority goes into `Host`, since HTTP/1 text carries only the path, and the
            // refresh must compute the same cache key.
            let req = session.req_header_mut();
            req.set_version(http::Version::HTTP_11);
            if !req.headers.contains_key(header::HOST) {
                if let Some(authority) = req.uri.authority().map(|a| a.as_str().to_owned()) {
                    req.insert_header(header::HOST, authority)?;
                }
            }
        }
        Ok(cache::hit_filter(session, meta, hit_handler, is_fresh, ctx))
    }

    fn cache_not_modified_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<bool> {
        Ok(cache::not_modified(session, resp, ctx))
    }

    /// Stale content may be served while revalidating (within the stored response's
    /// `stale-while-revalidate` window, which Pingora checks first), when the origin fails
    /// (within `stale-if-error`) and when the upstream refuses requests (within
    /// `stale_on_open`).
    fn should_serve_stale(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        error: Option<&Error>,
    ) -> bool {
        match error {
            None => true,
            Some(e) if e.esource() == &ErrorSource::Upstream => {
                let serve = cache::stale_on_error(session, ctx);
                if serve {
                    // Pingora ends a request whose upstream attempt failed without reusing
                    // the client connection, even when stale content answers it: say so.
                    session.set_keepalive(None);
                }
                serve
            }
            Some(_) => false,
        }
    }

    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<Duration>> {
        // A HEAD miss is fetched as a GET to fill the cache (which took the body before this
        // filter); the client gets none of it. Pingora's HTTP/1 writer drops it for HEAD, its
        // HTTP/2 writer sends it, and the client resets the stream (PROTOCOL_ERROR).
        if session.req_header().method == http::Method::HEAD {
            *body = None;
            return Ok(None);
        }
        cache::body_filter(body, ctx);
        advice::body(body, ctx);
        Ok(None)
    }

    /// Requests whose response header depends on the start of the body take the buffered
    /// leg (see `buffered`); the rest stream through Pingora's.
    async fn proxy_upstream_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // RFC 9111 §5.2.1.7: nothing stored that satisfies the request, and it forbids asking.
        if ctx.cache.only_if_cached {
            respond_text(
                session,
                504,
                Bytes::from_static(b"504 Gateway Timeout: not in the cache (only-if-cached)\n"),
            )
            .await?;
            return Ok(false);
        }
        // The cache fills in Pingora's leg (see `cache`), except for the misses whose response
        // gets a generated ETag: their header waits for the body (see `cache_fill`).
        let wanted = if session.cache.enabled() {
            cache_fill::wanted(session, ctx)
        } else {
            buffered::wanted(session, ctx)
        };
        if !wanted {
            return Ok(true);
        }
        buffered::serve(self, session, ctx).await?;
        Ok(false)
    }

    /// Pipeline steps 3 and 4: breaker admission (see `resilience`), then the endpoint
    /// (round robin over those whose breaker admits) and its timeouts.
    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        if ctx.endpoint.is_none() {
            retry::first_attempt(ctx);
        }
        retry::wait(ctx).await;
        let remaining = deadline::remaining(ctx)?;
        let Some(upstream) = ctx.upstream() else {
            return Error::e_explain(ErrorType::InternalError, "upstream_peer without a route");
        };
        // A retry goes to the endpoint after the one that refused, not wherever the shared
        // round-robin cursor happens to point.
        let start = if ctx.retries == 0 {
            upstream.next_endpoint_index()
        } else {
            0
        };
        let index = resilience::admit(ctx, start)?;
        let Some(upstream) = ctx.upstream() else {
            return Error::e_explain(ErrorType::InternalError, "upstream_peer without a route");
        };
        let Some(endpoint) = upstream.endpoints.get(index) else {
            return Error::e_explain(ErrorType::InternalError, "endpoint index out of range");
        };
        let mut peer = HttpPeer::new(endpoint.addr, upstream.tls, upstream.sni.clone());
        peer.options.connection_timeout = Some(upstream.connect_timeout);
        peer.options.read_timeout = Some(upstream.read_timeout);
        peer.options.write_timeout = Some(upstream.read_timeout);
        deadline::bound(&mut peer, remaining);
        ctx.endpoint = Some(index);
        ctx.upstream_started = Some(Instant::now());
        if ctx.upstream_inflight.is_none() {
            if let Some(m) = ctx.upstream_metrics() {
                m.inflight.inc();
                ctx.upstream_inflight = Some(UpstreamInflight(m.inflight.clone()));
            }
        }
        Ok(Box::new(peer))
    }

    /// Timing only: the connection (new or pooled) is ready, which splits the upstream's time
    /// into connecting and waiting for its first byte in the slow-request log.
    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.connected = Some((Instant::now(), reused));
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut pingora::http::RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // The proxy picks the coding per client, so it asks for the body uncompressed: an
        // origin that compressed would pin every client to the origin's choice.
        if ctx
            .route()
            .is_some_and(|r| r.compression.compresses() && r.compression.upstream_identity)
        {
            upstream_request.insert_header(hygiene::ACCEPT_ENCODING_SPELLING, "identity")?;
        }
        let version = session.req_header().version;
        hygiene::normalize_framing(upstream_request, version)?;
        hygiene::add_forwarding_headers(upstream_request, client_ip(session), version)
    }

    /// Pipeline step 5: the upstream leg's latency ends with its response header.
    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(ended) = resilience::failure_status(ctx, upstream_response.status.as_u16()) {
            resilience::end_attempt(ctx, ended);
        }
        if let Some(e) = retry::on_status(ctx, session, upstream_response.status.as_u16()) {
            return Err(e);
        }
        if let Some(started) = ctx.upstream_started {
            let elapsed = started.elapsed();
            ctx.upstream_elapsed = Some(elapsed);
            if let Some(m) = ctx.upstream_metrics() {
                m.duration.observe(elapsed.as_secs_f64());
            }
        }
        hygiene::strip_response_hop_by_hop(upstream_response);
        upstream_response.append_header(
            hygiene::VIA_SPELLING,
            hygiene::via_value(session.req_header().version),
        )?;
        cache_update::note_not_modified(session, upstream_response, ctx);
        Ok(())
    }

    /// A refused connect counts against the endpoint's breaker, and is retried per the
    /// upstream's `retry` policy (see `retry`), on another endpoint whose breaker admits it
    /// when there is one.
    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        resilience::end_attempt(ctx, resilience::ended_by_error(&e));
        if retry::decide(ctx, session, crate::resilience::RetryReason::ConnectFailure) {
            warn!(
                "connect failed: route={} upstream={} endpoint={} error={}; retrying on the next endpoint",
                ctx.route().map_or("-", |r| &r.name),
                ctx.upstream().map_or("-", |u| &u.name),
                ctx.endpoint_label(),
                e
            );
            e.set_retry(true);
        }
        e
    }

    /// Pingora's retry rules (a non-idempotent request, or one whose body no longer fits the
    /// retry buffer, is never retried; others only after a reused connection failed), plus
    /// the attempt's outcome: a failure unless the client went away or it is retried on a
    /// fresh connection.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if std::mem::take(&mut ctx.retry_pending) {
            // A retryable status (`retry::on_status`): already decided and counted.
            e.set_retry(true);
            return e;
        }
        if session.response_written().is_some()
            || !session.req_header().method.is_idempotent()
            || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        if e.retry() {
            // A pooled connection the upstream had closed: says nothing about its health.
            ctx.attempt = None;
        } else {
            resilience::end_attempt(ctx, resilience::ended_by_error(&e));
            if retry::reason_of(&e).is_some_and(|reason| retry::decide(ctx, session, reason)) {
                e.set_retry(true);
            }
        }
        e
    }

    /// Runs after the upstream leg and on every response that leaves, so headers that
    /// describe the whole exchange go here.
    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // RFC 9112 §6.1: no Transfer-Encoding towards an HTTP/1.0 client; without it (and
        // without Content-Length) Pingora delimits the body by closing the connection.
        if session.req_header().version == http::Version::HTTP_10
            && upstream_response
                .headers
                .contains_key(header::TRANSFER_ENCODING)
        {
            upstream_response.remove_header(&header::TRANSFER_ENCODING);
            session.set_keepalive(None);
        }
        if ctx.route().is_some_and(|r| r.server_timing) {
            let total = ctx.started.elapsed();
            let upstream = ctx.upstream_elapsed.unwrap_or_default();
            let value = format!(
                "upstream;dur={:.3}, proxy;dur={:.3}",
                upstream.as_secs_f64() * 1000.0,
                total.saturating_sub(upstream).as_secs_f64() * 1000.0
            );
            upstream_response.append_header("server-timing", value)?;
        }
        advice::start(session, upstream_response, ctx);
        cache::response_filter(self.shared.cache, session, upstream_response, ctx)
    }

    /// One classifier decides the status and body; the log line names route, upstream and
    /// endpoint so that an operator can tell a dead backend from a slow one.
    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        // Pingora does not reuse the connection after a failure (`can_reuse_downstream` below):
        // the answer must say so, or the client's next request on it meets a reset.
        session.set_keepalive(None);
        if let (Some(rejection), Some(upstream)) = (ctx.rejected, ctx.upstream()) {
            // Counted in `outrider_upstream_requests_total{outcome="rejected"}`; a line per
            // refused request would flood the log exactly when the operator reads it.
            if session.response_written().is_none() {
                let written = match resilience::refusal_response(
                    &upstream.name,
                    upstream.max_concurrent,
                    rejection,
                ) {
                    Ok((resp, body)) => write_local(session, resp, body).await,
                    Err(e) => Err(e),
                };
                if let Err(write_err) = written {
                    info!("could not send the refusal: {write_err}");
                }
            }
            return FailToProxy {
                error_code: 503,
                can_reuse_downstream: false,
            };
        }
        let failure = Failure::classify(e);
        let status = failure.status();
        let upstream = ctx.upstream().map(|u| u.name.clone());
        if failure.is_client_side() {
            // A hostile or broken client must not be able to flood the log.
            debug!(
                "request refused: route={} status={} reason={} error={}",
                ctx.route().map_or("-", |r| &r.name),
                status,
                failure.label(),
                e
            );
        } else {
            warn!(
                "request failed: route={} upstream={} endpoint={} status={} reason={} error={}",
                ctx.route().map_or("-", |r| &r.name),
                upstream.as_deref().unwrap_or("-"),
                ctx.endpoint_label(),
                status,
                failure.label(),
                e
            );
        }
        // A response already on the wire cannot be replaced; the connection is just closed.
        if status > 0 && session.response_written().is_none() {
            let body = failure.body(upstream.as_deref());
            if let Err(write_err) = respond_text(session, status, body).await {
                info!("could not send the error response: {write_err}");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// Pipeline step 7: once per request, whatever happened (errors and local answers too).
    /// Only atomic adds on handles resolved when the policy was applied.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        head_clock::expect_next_head();
        let req = session.req_header();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let elapsed = ctx.started.elapsed();
        // A stale-while-revalidate refresh runs this pipeline as a background subrequest: its
        // upstream attempt counts, but it is not a client request.
        let background = session.as_downstream().is_subrequest();
        if e.is_none() {
            cache::invalidate_after_unsafe(self.shared.cache, session, status, ctx);
        }
        if let Some(result) = cache::lookup_result(session, ctx).filter(|_| !background) {
            self.shared.cache.record(result);
            if let Some(m) = ctx.route.and_then(|id| ctx.policy.metrics.routes.get(id)) {
                m.cache_lookups[result as usize].inc();
            }
        }
        // Before the request is counted, so that a count seen on /metrics implies its line.
        if !background {
            slow_log::log_if_slow(&self.shared.slow_log, session, e, ctx, status, elapsed);
        }
        if let Some(m) = ctx.route.and_then(|id| ctx.policy.metrics.routes.get(id)) {
            if !background {
                m.counts.record(method_index(&req.method), status);
                m.duration.observe(elapsed.as_secs_f64());
            }
        }
        if ctx.attempt.is_some() {
            let ended = e.map_or(Ended::Counted(Outcome::Ok), resilience::ended_by_error);
            resilience::end_attempt(ctx, ended);
        }
        advice::observe(&self.shared, session, e, ctx, status, elapsed);
        if ctx.policy.log.access_log {
            access_log::write(
                ctx.policy.log.format,
                &access_log::Entry {
                    ts: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
                    method: req.method.as_str(),
                    path: req.uri.path(),
                    route: ctx.route().map_or("-", |r| &r.name),
                    upstream: ctx.upstream().map_or("-", |u| &u.name),
                    endpoint: ctx.endpoint_label(),
                    status,
                    duration_ms: elapsed.as_secs_f64() * 1000.0,
                    upstream_ms: ctx.upstream_elapsed.map(|d| d.as_secs_f64() * 1000.0),
                    bytes_sent: session.body_bytes_sent(),
                    error: match (ctx.rejected, e) {
                        (Some(r), _) => resilience::cause_label(r.cause),
                        (None, Some(e)) => Failure::classify(e).label(),
                        (None, None) => "-",
                    },
                },
            );
        }
    }

    /// Our own `fail_to_proxy` line already names route, upstream and endpoint.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, _error: &Error) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::strip_port;

    #[test]
    fn host_port_is_stripped() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
