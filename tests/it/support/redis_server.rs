//! A real `redis-server` (or `valkey-server`: the same protocol) on a loopback port of the
//! harness's own ([`super::free_port`]), with no persistence; killed on drop.
//!
//! The program is `$OUTRIDER_TEST_REDIS_SERVER` (so that the whole suite can run against
//! Valkey: `OUTRIDER_TEST_REDIS_SERVER=valkey-server`), else `redis-server`;
//! [`RedisServer::start_program`] names one. [`RedisServer::start_tls`] starts one that speaks
//! TLS only (`rediss://`).
//!
//! The port is known to be this server's only once the server says it listens: it writes
//! "Ready to accept connections" to its log after binding, and exits when the port is taken
//! (by a process outside this suite: ours never share one), in which case it is started again
//! on another port.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;
#[cfg(feature = "tls")]
use super::test_ca::Certs;

/// The server program the suites use unless a test names one.
pub fn default_program() -> String {
    std::env::var("OUTRIDER_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_string())
}

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    program: String,
    /// For a TLS-only server: the CA that signed its certificate, and the certificate.
    #[cfg(feature = "tls")]
    tls: Option<Certs>,
    /// Holds the server's log.
    dir: tempfile::TempDir,
}

/// How a start ended.
enum Started {
    Ready,
    PortTaken,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_program(&default_program())
    }

    /// A server run by `program` (`redis-server`, `valkey-server`).
    pub fn start_program(program: &str) -> RedisServer {
        let mut server = RedisServer::new(program);
        server.launch(true);
        server
    }

    /// A server of [`default_program`] that accepts TLS connections only, with the server
    /// certificate `certs` (clients are not asked for one).
    #[cfg(feature = "tls")]
    pub fn start_tls(certs: Certs) -> RedisServer {
        let mut server = RedisServer::new(&default_program());
        server.tls = Some(certs);
        server.launch(true);
        server
    }

    fn new(program: &str) -> RedisServer {
        RedisServer {
            child: None,
            port: free_port(),
            program: program.to_string(),
            #[cfg(feature = "tls")]
            tls: None,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn program(&self) -> &str {
        &self.program
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The listening arguments: a plain port, or (TLS) no plain port and a TLS one.
    fn listen_args(&self) -> Vec<String> {
        #[cfg(feature = "tls")]
        if let Some(certs) = &self.tls {
            let path = |p: &PathBuf| p.to_string_lossy().into_owned();
            return vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                self.port.to_string(),
                "--tls-cert-file".into(),
                path(&certs.cert),
                "--tls-key-file".into(),
                path(&certs.key),
                "--tls-ca-cert-file".into(),
                path(&certs.ca),
                "--tls-auth-clients".into(),
                "no".into(),
            ];
        }
        vec!["--port".into(), self.port.to_string()]
    }

    /// Starts the server; `may_move`: on another port if its own is taken.
    fn launch(&mut self, may_move: bool) {
        for _ in 0..5 {
            match self.launch_once() {
                Started::Ready => return,
                Started::PortTaken if may_move => self.port = free_port(),
                Started::PortTaken => break,
            }
        }
        panic!(
            "{} could not listen on port {}: {}",
            self.program,
            self.port,
            self.log()
        );
    }

    fn launch_once(&mut self) -> Started {
        let log = self.log_path();
        let _ = std::fs::remove_file(&log);
        let child = Command::new(&self.program)
            .args(self.listen_args())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--enable-debug-command", "local", "--logfile"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} (scripts/deps.sh installs it): {e}",
                    self.program
                )
            });
        self.child = Some(child);
        let start = Instant::now();
        loop {
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                let log = self.log();
                if log.contains("Address already in use") {
                    return Started::PortTaken;
                }
                panic!("{} exited with {status}: {log}", self.program);
            }
            // Logged once it listens; a PING then tells it has loaded (nothing to load here).
            if self.log().contains("Ready to accept connections") && self.try_connection().is_some()
            {
                return Started::Ready;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{} did not start listening on {}: {}",
                self.program,
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn url(&self) -> String {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return format!("rediss://127.0.0.1:{}/0", self.port);
        }
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn client(&self) -> Option<redis::Client> {
        #[cfg(feature = "tls")]
        if let Some(certs) = &self.tls {
            // This process's own trust: the CA is given to the client, not to the environment
            // (which every test in this process shares).
            let tls = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(&certs.ca).ok()?),
            };
            return redis::Client::build_with_tls(self.url(), tls).ok();
        }
        redis::Client::open(self.url()).ok()
    }

    fn try_connection(&self) -> Option<redis::Connection> {
        let mut connection = self
            .client()?
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        // A server still loading answers PING with an error.
        redis::cmd("PING").query::<String>(&mut connection).ok()?;
        Some(connection)
    }

    pub fn connection(&self) -> redis::Connection {
        self.try_connection()
            .expect("a connection to the test redis")
    }

    /// Runs one command and reads its answer as `T`.
    pub fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut self.connection())
            .unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    /// Keys under `prefix` (SCAN: tests may look at the whole keyspace).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut connection = self.connection();
        let iter: redis::Iter<String> = redis::cmd("SCAN")
            .cursor_arg(0)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .clone()
            .iter(&mut connection)
            .unwrap();
        let mut keys: Vec<String> = iter.map(|k| k.unwrap()).collect();
        keys.sort();
        keys
    }

    /// The stored objects (`{prefix}o:…`).
    pub fn objects(&self, prefix: &str) -> Vec<String> {
        self.keys(&format!("{prefix}o:"))
    }

    /// What the server answers to `INFO server` about itself (`redis_version`, and with
    /// Valkey also `server_name:valkey`).
    pub fn info_server(&self) -> String {
        self.query::<String>(&["INFO", "server"])
    }

    /// Kills the server (SIGKILL): connections drop at once.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (the replicas know that one), empty.
    pub fn restart(&mut self) {
        self.kill();
        self.launch(false);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
