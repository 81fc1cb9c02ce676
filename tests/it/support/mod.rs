//! Integration-test harness shared by every `tests/*.rs` file.
//!
//! - [`Origin`]: a real HTTP/1.1 backend (hyper) on an ephemeral loopback port whose answers are
//!   scripted per request (status, headers, body size, delay, chunking), recording what it saw.
//! - [`Proxy`]: the real Outrider server, in-process, on free loopback ports, built through the
//!   real TOML loader; stopped on drop.
//! - [`BinaryProxy`]: the built `outrider` binary as a child process, for signals and the CLI.
#![allow(dead_code)] // each test file uses a different part of the harness

pub mod cache_status;
pub mod got;
pub mod origin;
pub mod raw;
pub mod redis_server;
pub mod test_ca;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};

use outrider::proxy::Shared;
use outrider::server::{self, Launch};

#[allow(unused_imports)]
pub use origin::{Origin, Recorded, Reply};

/// A free port below the kernel's ephemeral range (32768-60999 on Linux), handed out once per
/// test process. Pingora cannot bind port 0 and report it back, so tests pick ports first. A
/// port from bind(0) is an ephemeral one, and in the one-binary suite another test's backend
/// (which binds port 0) or client socket could take it before the proxy bound it: the proxy's
/// admin port then answered as a test backend. Nothing here binds below the ephemeral range
/// but this function, which never hands a port out twice.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_700;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Where this process starts, so that two suites run at once rarely meet.
    let start = std::process::id() % COUNT;
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(FIRST + (start + n) % COUNT).expect("below 32768");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below the ephemeral range");
}

/// Polls until `cond` holds or `deadline` passes; panics with `what` on timeout.
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
}

/// The value of the series `name` whose labels include `labels`, from a Prometheus text page.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find_map(|(series, value)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            if n != name {
                return None;
            }
            let have: Vec<(&str, &str)> = rest
                .trim_end_matches('}')
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k, v.trim_matches('"')))
                .collect();
            labels
                .iter()
                .all(|l| have.contains(l))
                .then(|| value.parse().ok())
                .flatten()
        })
}

/// The standard header of a test config: data and admin listeners on the given ports.
pub fn server_section(data: u16, admin: u16) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{data}\"\nthreads = 2\ngrace_period = \"1s\"\n\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n\n[log]\nlevel = \"warn\"\n\n"
    )
}

/// An in-process Outrider. Dropping it shuts the server down and joins its thread.
pub struct Proxy {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

struct TestSignal(tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>);

#[async_trait]
impl ShutdownSignalWatch for TestSignal {
    async fn recv(&self) -> ShutdownSignal {
        if let Some(rx) = self.0.lock().await.take() {
            let _ = rx.await;
        }
        ShutdownSignal::FastShutdown
    }
}

impl Proxy {
    /// Starts Outrider with `body` (a conf file without `[server]`, `[admin]` or `[log]`)
    /// after the standard server section.
    pub fn start(body: &str) -> Proxy {
        Proxy::start_with(|data, admin| format!("{}{body}", server_section(data, admin)))
    }

    /// Starts Outrider with the whole conf text made by `conf(data_port, admin_port)`.
    pub fn start_with(conf: impl Fn(u16, u16) -> String) -> Proxy {
        let (data, admin) = (free_port(), free_port());
        let text = conf(data, admin);
        let policy = outrider::config::compile(&text, "test.toml").unwrap_or_else(|errors| {
            let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            panic!("test config is invalid:\n{}\n---\n{text}", lines.join("\n"))
        });
        let addr = policy.server.listen[0];
        let admin_addr = policy.admin.listen;
        let shared = Shared::new(policy, None);
        let server = server::build(&shared, Launch::default());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(TestSignal(tokio::sync::Mutex::new(Some(rx)))),
            })
        });
        wait_until("the proxy to listen", Duration::from_secs(10), || {
            accepts(addr) && accepts(admin_addr)
        });
        Proxy {
            addr,
            admin: admin_addr,
            shared,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An HTTP/1.1 client that does not follow redirects or decompress, so tests see what the
/// proxy sent.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client")
}

/// An h2c (prior knowledge) client.
pub fn h2c_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .build()
        .expect("h2c client")
}

/// The built `outrider` binary as a child process; killed on drop.
pub struct BinaryProxy {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub config: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_outrider")
}

impl BinaryProxy {
    /// Writes the conf made by `conf(data_port, admin_port)` to a temp file and runs
    /// `outrider --config FILE`, waiting until both listeners accept.
    pub fn spawn(conf: impl Fn(u16, u16) -> String) -> BinaryProxy {
        BinaryProxy::spawn_with(conf, |_| {})
    }

    /// [`BinaryProxy::spawn`], with `setup` adjusting the command first (environment variables
    /// that must not be set in the shared test process).
    pub fn spawn_with(
        conf: impl Fn(u16, u16) -> String,
        setup: impl FnOnce(&mut Command),
    ) -> BinaryProxy {
        let (data, admin) = (free_port(), free_port());
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("outrider.toml");
        std::fs::write(&config, conf(data, admin)).expect("write conf");
        let mut command = Command::new(binary());
        command
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        setup(&mut command);
        let child = command.spawn().expect("spawn outrider");
        let addr: SocketAddr = ([127, 0, 0, 1], data).into();
        let admin: SocketAddr = ([127, 0, 0, 1], admin).into();
        let mut proxy = BinaryProxy {
            child,
            addr,
            admin,
            config,
            _dir: dir,
        };
        let start = Instant::now();
        while !(accepts(addr) && accepts(admin)) {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("outrider exited early with {status}: {}", proxy.stderr());
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "outrider did not start listening"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        proxy
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Waits for the process to exit within `deadline`; returns its exit status.
    pub fn wait_exit(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                start.elapsed() < deadline,
                "outrider did not exit within {deadline:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything the process wrote to stderr (only after it exited, or it blocks).
    pub fn stderr(&mut self) -> String {
        use std::io::Read;
        let mut out = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut out);
        }
        out
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// `POST /reload` on the admin port, without credentials.
    pub async fn post_reload(&self) -> reqwest::Response {
        client()
            .post(format!("http://{}/reload", self.admin))
            .send()
            .await
            .expect("POST /reload")
    }
}

impl Drop for BinaryProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
