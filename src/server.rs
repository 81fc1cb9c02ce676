//! Assembles the Pingora `Server`: data plane, admin plane and lifecycle service, and the
//! signal handling that Pingora's default does not fit.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use log::{info, warn};
use pingora::apps::http_app::HttpServer;
use pingora::apps::HttpServerOptions;
use pingora::prelude::*;
use pingora::proxy::HttpProxy;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use tokio::signal::unix::{signal, SignalKind};

use crate::admin::AdminApp;
use crate::proxy::Shared;
use crate::proxy::{ClockedProxy, Outrider};

/// How the process was started.
#[derive(Clone, Copy, Debug, Default)]
pub struct Launch {
    /// Take the listening sockets over from a running outrider (`--upgrade`, then SIGQUIT it).
    pub upgrade: bool,
    /// Exit as soon as in-flight requests have drained after a shutdown signal, instead of
    /// waiting out the whole grace period (see `Lifecycle`). Off for in-process tests, which
    /// must not exit the test binary.
    pub exit_when_drained: bool,
}

/// Builds the server for the current policy of `shared`. Listener addresses and thread
/// counts are read here, once: Pingora cannot rebind at runtime.
pub fn build(shared: &Arc<Shared>, launch: Launch) -> Server {
    install_hangup_handler();
    let policy = shared.policy();
    let grace = policy.server.grace_period;
    let conf = ServerConf {
        threads: policy.server.threads,
        // Pingora sleeps the whole grace period before stopping runtimes; `Lifecycle` exits
        // earlier once requests have drained.
        grace_period_seconds: Some(grace.as_secs() + u64::from(grace.subsec_nanos() > 0)),
        graceful_shutdown_timeout_seconds: Some(1),
        upgrade_sock: policy.server.upgrade_sock.to_string_lossy().into_owned(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: launch.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let mut server_options = HttpServerOptions::default();
    server_options.h2c = true;
    // HTTP/2 connections get `[limits] idle_timeout` too (read at startup only: Pingora
    // takes server options once).
    server_options.h2_idle_timeout = Some(policy.limits.idle_timeout);
    // Built by hand rather than with `ProxyServiceBuilder`, so that each connection's stream
    // can be wrapped for `[limits] header_timeout` (see `proxy::ClockedProxy`).
    let mut app = HttpProxy::new(
        Outrider::new(shared.clone(), &server.configuration),
        server.configuration.clone(),
    );
    app.server_options = Some(server_options);
    app.handle_init_modules();
    let mut proxy = Service::new(
        "outrider data plane".to_string(),
        ClockedProxy::new(app, shared.clone()),
    );
    for addr in &policy.server.listen {
        proxy.add_tcp(&addr.to_string());
    }
    server.add_service(proxy);

    let mut admin = Service::new(
        "outrider admin".to_string(),
        HttpServer::new_app(AdminApp::new(shared.clone())),
    );
    admin.add_tcp(&policy.admin.listen.to_string());
    // The admin plane serves a scraper and a few humans: one thread, not `threads`.
    admin.threads = Some(1);
    server.add_service(admin);

    server.add_service(background_service(
        "outrider reloader",
        Reloader(shared.clone()),
    ));
    server.add_service(background_service(
        "outrider health checks",
        crate::proxy::HealthProber(shared.clone()),
    ));
    server.add_service(background_service(
        "outrider stats sampler",
        StatsSampler(shared.clone()),
    ));
    server.add_service(background_service(
        "outrider cache sweeper",
        CacheSweeper(shared.clone()),
    ));
    if let Some(tier) = shared.cache.tier.get() {
        server.add_service(background_service(
            "outrider shared cache tier",
            crate::proxy::shared_tier::listener::SharedTierListener {
                tier: tier.clone(),
                backend: shared.cache,
                trim: Default::default(),
            },
        ));
    }
    server.add_service(background_service(
        "outrider cache warm",
        crate::proxy::shared_tier::warm::Warmer(shared.clone()),
    ));
    server.add_service(background_service(
        "outrider lifecycle",
        Lifecycle {
            shared: shared.clone(),
            exit_when_drained: launch.exit_when_drained,
        },
    ));
    server
}

/// Checks that every address can be bound before Pingora tries: Pingora's listener setup
/// panics inside its runtime on a bind error, which would leave a process that runs but does
/// not serve.
pub fn check_bindable(addrs: &[SocketAddr]) -> Result<(), String> {
    for addr in addrs {
        TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    }
    Ok(())
}

/// Runs the server until a shutdown signal; returns when it has stopped.
pub fn run(server: Server) {
    server.run(RunArgs {
        shutdown_signal: Box::new(UnixSignals),
    });
}

/// SIGHUP's default action terminates the process, and the reload service subscribes to it
/// only once its runtime runs, after the listeners answer: a SIGHUP in between (an operator
/// or a test reloading right after start) killed the sidecar. Tokio's handler is installed
/// process-wide and outlives the runtime used here (a thread of its own, since the caller
/// may be inside one); a SIGHUP before the subscription is then dropped, and the policy just
/// loaded is the file's anyway.
fn install_hangup_handler() {
    let installed = std::thread::spawn(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .is_ok_and(|rt| rt.block_on(async { signal(SignalKind::hangup()).is_ok() }))
    })
    .join()
    .unwrap_or(false);
    if !installed {
        warn!("cannot install the SIGHUP handler early; a SIGHUP during start-up would stop the process");
    }
}

/// SIGTERM and SIGINT both drain gracefully (a sidecar gets SIGTERM from the kubelet and
/// SIGINT from a terminal; neither should cut requests off), SIGQUIT hands the listeners to
/// an upgraded process. Pingora's default treats SIGINT as an immediate stop.
pub(crate) struct UnixSignals;

#[async_trait]
impl ShutdownSignalWatch for UnixSignals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            warn!("cannot install signal handlers; stopping");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM: draining"); ShutdownSignal::GracefulTerminate }
            _ = int.recv() => { info!("SIGINT: draining (send it again to stop now)"); ShutdownSignal::GracefulTerminate }
            _ = quit.recv() => { info!("SIGQUIT: handing listeners over to the new process"); ShutdownSignal::GracefulUpgrade }
        }
    }
}

async fn wait_for_shutdown(shutdown: &mut ShutdownWatch) {
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// Hot reload (file watch, SIGHUP) for the life of the server. It also owns SIGHUP, whose
/// default action would kill the process, from the moment the services start.
struct Reloader(Arc<Shared>);

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        crate::reload::watch(self.0.clone(), async move {
            wait_for_shutdown(&mut shutdown).await
        })
        .await;
    }
}

/// Feeds `/stats`: snapshots the counters every few seconds for its one-minute window.
struct StatsSampler(Arc<Shared>);

#[async_trait]
impl BackgroundService for StatsSampler {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(crate::metrics::stats::SAMPLE_EVERY);
        loop {
            tokio::select! {
                _ = wait_for_shutdown(&mut shutdown) => return,
                _ = tick.tick() => {
                    let active = self.0.policy();
                    let sample = crate::metrics::stats::sample(&active.policy, &active.metrics, std::time::Instant::now());
                    self.0.stats.push(sample);
                }
            }
        }
    }
}

/// Drops cached objects whose freshness, stale windows and revalidation keep have all passed
/// and that nobody read since (reads drop them lazily): memory held by dead objects comes back
/// without waiting for LRU pressure.
struct CacheSweeper(Arc<Shared>);

const CACHE_SWEEP_EVERY: Duration = Duration::from_secs(10);

#[async_trait]
impl BackgroundService for CacheSweeper {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(CACHE_SWEEP_EVERY);
        loop {
            tokio::select! {
                _ = wait_for_shutdown(&mut shutdown) => return,
                _ = tick.tick() => {
                    let dropped = self.0.cache.store.sweep_expired(std::time::SystemTime::now());
                    if dropped > 0 {
                        log::debug!("cache sweep: {dropped} expired objects dropped");
                    }
                }
            }
        }
    }
}

/// Marks the process as draining when shutdown starts (readiness turns 503) and, in the real
/// binary, exits once no request is in flight: Pingora itself would sleep the full
/// `grace_period` even when nothing is left to drain. A second SIGINT or SIGTERM exits at once.
struct Lifecycle {
    shared: Arc<Shared>,
    exit_when_drained: bool,
}

#[async_trait]
impl BackgroundService for Lifecycle {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        wait_for_shutdown(&mut shutdown).await;
        self.shared.start_draining();
        let grace = self.shared.policy().server.grace_period;
        info!(
            "draining: {} request(s) in flight, grace period {:?}",
            self.shared.inflight(),
            grace
        );
        if !self.exit_when_drained {
            return;
        }
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tokio::select! {
                _ = term.recv() => { info!("second signal: stopping now"); std::process::exit(0); }
                _ = int.recv() => { info!("second signal: stopping now"); std::process::exit(0); }
                _ = tick.tick() => {
                    if self.shared.inflight() == 0 {
                        info!("drained; exiting");
                        std::process::exit(0);
                    }
                }
            }
        }
    }
}
