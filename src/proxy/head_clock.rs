//! `[limits] header_timeout`: the total time a client may take to send a request head, from
//! its first byte, on the first request of a connection and on every later one. Pingora reads
//! heads with a per-read timeout only (60 s on a new connection), so a client that sends a
//! byte now and then (slowloris) would hold the connection for ever.
//!
//! The data plane's connections are wrapped ([`ClockedProxy`]) in a [`HeadClock`] stream that
//! notes when the first byte of a head arrives and fails the read once the limit from then
//! runs out, after writing `408 Request Timeout` (RFC 9110 §15.5.9) when part of a head was
//! received. The timer itself is armed only when the head takes a second read: most heads
//! arrive whole in one read, and a timer per request would cost a timer-wheel entry (and an
//! allocation) on every request for nothing. The
//! hooks tell it where heads end through a task-local [`Clock`] (Pingora runs an HTTP/1
//! connection's requests in the task that accepted it): `early_request_filter` says the head is
//! in, `logging` that the next one may start. HTTP/2 connections (seen by their preface) are
//! left alone: their streams are parsed by the h2 codec, with `h2_idle_timeout`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType,
};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::{Outrider, Shared};

const REQUEST_TIMEOUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

tokio::task_local! {
    static CLOCK: Arc<Clock>;
}

/// Where the connection's current request is: waiting for (or reading) a head, or past it.
#[derive(Debug)]
pub(crate) struct Clock {
    awaiting_head: AtomicBool,
    /// Bumped each time a new head is expected, so a timer of an earlier head is dropped.
    generation: AtomicU64,
}

/// The data plane's app: Pingora's proxy, with each connection's stream on a [`HeadClock`].
pub(crate) struct ClockedProxy {
    inner: Arc<HttpProxy<Outrider>>,
    shared: Arc<Shared>,
    cuts: Arc<CutReport>,
}

/// Counts header-timeout cuts and logs them at most once a minute: during a slowloris attack a
/// line per connection would flood the log (Pingora's own per-connection line is filtered out
/// by `logging`), and the counter is what to alert on.
struct CutReport {
    counter: prometheus::IntCounter,
    /// Cuts since the last line, and when that line was written.
    unreported: AtomicU64,
    last_line: std::sync::Mutex<Option<std::time::Instant>>,
}

/// A downstream stream whose reads fail once a request head takes longer than the limit.
pub(crate) struct HeadClock {
    inner: Stream,
    clock: Arc<Clock>,
    limit: Duration,
    cuts: Arc<CutReport>,
    /// Off for HTTP/2 (the preface was seen) and once a timeout was reported.
    enabled: bool,
    first_read: bool,
    /// When the first byte of the head of this generation arrived.
    head_started: Option<(u64, Instant)>,
    timer: Option<(u64, Pin<Box<Sleep>>)>,
}

// === impl Clock ===

/// `early_request_filter`: the head is in; its timer stops.
pub(super) fn head_received() {
    let _ = CLOCK.try_with(|c| c.awaiting_head.store(false, Ordering::Release));
}

/// `logging`: the request is over; the next head's timer starts at its first byte.
pub(super) fn expect_next_head() {
    let _ = CLOCK.try_with(|c| {
        c.generation.fetch_add(1, Ordering::AcqRel);
        c.awaiting_head.store(true, Ordering::Release);
    });
}

// === impl ClockedProxy ===

impl ClockedProxy {
    pub(crate) fn new(inner: HttpProxy<Outrider>, shared: Arc<Shared>) -> ClockedProxy {
        let cuts = Arc::new(CutReport {
            counter: shared.metrics.clients.header_timeouts.clone(),
            unreported: AtomicU64::new(0),
            last_line: std::sync::Mutex::new(None),
        });
        ClockedProxy {
            inner: Arc::new(inner),
            shared,
            cuts,
        }
    }
}

#[async_trait]
impl ServerApp for ClockedProxy {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let clock = Arc::new(Clock {
            awaiting_head: AtomicBool::new(true),
            generation: AtomicU64::new(0),
        });
        let limit = self.shared.policy().limits.header_timeout;
        let stream: Stream = Box::new(HeadClock {
            inner: stream,
            clock: clock.clone(),
            limit,
            cuts: self.cuts.clone(),
            enabled: true,
            first_read: true,
            head_started: None,
            timer: None,
        });
        CLOCK
            .scope(clock, self.inner.process_new(stream, shutdown))
            .await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

// === impl CutReport ===

impl CutReport {
    const LINE_EVERY: Duration = Duration::from_secs(60);

    fn record(&self, limit: Duration) {
        self.counter.inc();
        self.unreported.fetch_add(1, Ordering::Relaxed);
        let now = std::time::Instant::now();
        let Ok(mut last) = self.last_line.try_lock() else {
            return; // another connection is writing the line; this cut is in its count or the next
        };
        if last.is_some_and(|t| now.duration_since(t) < Self::LINE_EVERY) {
            return;
        }
        *last = Some(now);
        let cuts = self.unreported.swap(0, Ordering::Relaxed);
        log::warn!(
            "header_timeout: cut off {cuts} connection(s) whose request head took over {} \
             (outrider_header_timeouts_total counts them; this line repeats at most once a minute)",
            humantime::format_duration(limit)
        );
    }
}

// === impl HeadClock ===

impl AsyncRead for HeadClock {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let awaiting = this.enabled && this.clock.awaiting_head.load(Ordering::Acquire);
        let generation = this.clock.generation.load(Ordering::Acquire);
        if !awaiting || this.timer.as_ref().is_some_and(|(g, _)| *g != generation) {
            this.timer = None;
        }
        if !awaiting || this.head_started.is_some_and(|(g, _)| g != generation) {
            this.head_started = None;
        }
        // A second read for the same head: it did not come whole, so the deadline (counted
        // from its first byte) now needs a timer that wakes a read still pending then.
        if let (Some((_, started)), None) = (this.head_started, this.timer.as_ref()) {
            let timer = Box::pin(tokio::time::sleep_until(started + this.limit));
            this.timer = Some((generation, timer));
        }
        if let Some((_, timer)) = this.timer.as_mut() {
            if timer.as_mut().poll(cx).is_ready() {
                this.enabled = false;
                // Best effort: the client is reading slowly too, or not at all.
                let _ = Pin::new(&mut this.inner).poll_write(cx, REQUEST_TIMEOUT);
                this.cuts.record(this.limit);
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    crate::logging::HEADER_TIMEOUT_CAUSE,
                )));
            }
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read = &buf.filled()[before..];
        if this.first_read && !read.is_empty() {
            this.first_read = false;
            // HTTP/2 prior knowledge (h2c): the preface is not a request head.
            if read.starts_with(b"PRI ") {
                this.enabled = false;
            }
        }
        if awaiting && this.enabled && this.head_started.is_none() && !read.is_empty() {
            this.head_started = Some((generation, Instant::now()));
        }
        polled
    }
}

impl AsyncWrite for HeadClock {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for HeadClock {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for HeadClock {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeadClock {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<pingora::protocols::ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeadClock {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeadClock {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for HeadClock {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

#[async_trait]
impl Peek for HeadClock {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

impl fmt::Debug for HeadClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeadClock")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .finish()
    }
}
