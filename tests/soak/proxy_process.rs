//! The proxy process: the built binary as a child, its RSS and open fds.

use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;
use crate::support::{accepts, free_port};

// === the proxy process ===

/// The built binary with its stderr (process log) and stdout (access log) going to files, so
/// that a long run never blocks on a full pipe; killed on drop.
pub(crate) struct ProxyProcess {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) admin: SocketAddr,
    pub(crate) config: PathBuf,
    log: PathBuf,
    pub(crate) access_log: PathBuf,
    _dir: tempfile::TempDir,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Probe {
    pub(crate) rss_kib: u64,
    pub(crate) hwm_kib: u64,
    pub(crate) fds: usize,
}

impl ProxyProcess {
    pub(crate) fn spawn(conf: impl Fn(u16, u16) -> String) -> ProxyProcess {
        let (data, admin) = (free_port(), free_port());
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("outrider.toml");
        std::fs::write(&config, conf(data, admin)).expect("write conf");
        let log = dir.path().join("stderr.log");
        let access_log = dir.path().join("access.log");
        let child = Command::new(support::binary())
            .arg("--config")
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(File::create(&access_log).expect("access log file"))
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn outrider");
        let mut proxy = ProxyProcess {
            child,
            addr: ([127, 0, 0, 1], data).into(),
            admin: ([127, 0, 0, 1], admin).into(),
            config,
            log,
            access_log,
            _dir: dir,
        };
        let start = Instant::now();
        while !(accepts(proxy.addr) && accepts(proxy.admin)) {
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("outrider exited early with {status}:\n{}", proxy.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "outrider did not start listening"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        proxy
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub(crate) fn probe(&self) -> Option<Probe> {
        probe(self.pid())
    }

    pub(crate) fn log_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // OUTRIDER_SOAK_KEEP=1 keeps the conf, the process log and the access log.
        if std::env::var_os("OUTRIDER_SOAK_KEEP").is_some() {
            let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().expect("tempdir"));
            println!("kept the proxy's files in {}", dir.keep().display());
        }
    }
}

/// RSS, peak RSS and open fds of `pid`, from /proc.
pub(crate) fn probe(pid: u32) -> Option<Probe> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some(Probe {
        rss_kib: kib("VmRSS:")?,
        hwm_kib: kib("VmHWM:")?,
        fds,
    })
}
