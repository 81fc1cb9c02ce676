//! A real `redis-server` (or `valkey-server`, when it is installed) on a loopback port of
//! the harness's own ([`super::free_port`]), with no persistence; killed on drop.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{accepts, free_port, wait_until};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    program: &'static str,
}

/// `valkey-server` if it is on PATH (the same protocol), else `redis-server`.
fn program() -> &'static str {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
    };
    if on_path("valkey-server") {
        "valkey-server"
    } else {
        "redis-server"
    }
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            program: program(),
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let child = Command::new(self.program)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--enable-debug-command",
                "local",
            ])
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
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        wait_until("redis to listen", Duration::from_secs(10), || {
            accepts(addr) && self.try_connection().is_some()
        });
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn try_connection(&self) -> Option<redis::Connection> {
        let client = redis::Client::open(self.url()).ok()?;
        let connection = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        // A server still loading answers PING with an error.
        let mut connection = connection;
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

    /// Kills the server (SIGKILL): connections drop at once.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
