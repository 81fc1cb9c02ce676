//! The process lifecycle of the real `outrider` binary: graceful drain on SIGTERM and SIGINT,
//! the grace period as an upper bound, a second signal as an immediate stop, SIGHUP as harmless,
//! start-up failures (port taken, bad config), `OUTRIDER_CONFIG`, `outrider demo` and the
//! `--help`/`--version` flags.
//!
//! Nothing here sleeps to synchronise: every wait polls a real condition (the origin saw the
//! request, a listener refuses, the process exited, a response arrived) against a deadline.

use crate::support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use support::origin::pattern;
use support::{accepts, binary, client, free_port, wait_until, BinaryProxy, Origin};

// === helpers ===

/// A whole conf: listeners on the given ports, `grace` as the grace period, every request to
/// `origin`.
fn conf(data: u16, admin: u16, grace: &str, origin: &Origin) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{data}\"\nthreads = 2\ngrace_period = \"{grace}\"\n\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n\n[log]\nlevel = \"warn\"\n\n{}",
        origin.upstream_toml("app")
    )
}

/// The binary with a clean environment for what it reads.
fn outrider() -> Command {
    let mut cmd = Command::new(binary());
    cmd.env_remove("OUTRIDER_CONFIG").env_remove("RUST_LOG");
    cmd
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// GET through `client()`: status and the whole body, or the error as text.
async fn get(url: String) -> Result<(u16, Vec<u8>), String> {
    let resp = client().get(&url).send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| e.to_string())?;
    Ok((status, body.to_vec()))
}

/// The slow request in flight when the process stopped must end (the process is gone) and
/// must not have completed with a 200: the stop cut it.
fn assert_request_was_cut(
    rt: &tokio::runtime::Runtime,
    inflight: tokio::task::JoinHandle<Result<(u16, Vec<u8>), String>>,
) {
    let result = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), inflight).await })
        .expect("the cut request must end when the process exits")
        .expect("request task");
    assert!(
        !matches!(result, Ok((200, _))),
        "the slow request completed although the process stopped first: {result:?}"
    );
}

/// Polls the child until it exits or `deadline` passes; returns the status and when the exit
/// was seen, or None on timeout.
fn wait_exit_within(child: &mut Child, deadline: Duration) -> Option<(ExitStatus, Instant)> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some((status, Instant::now()));
        }
        if start.elapsed() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Kills the proxy (if still running) and returns its stderr, for failure messages.
fn kill_and_stderr(proxy: &mut BinaryProxy) -> String {
    let _ = proxy.child.kill();
    let _ = proxy.child.wait();
    proxy.stderr()
}

/// An HTTP/1.1 connection to the admin plane, opened and used once while the process is ready,
/// so that the kernel has handed it to Pingora: it can still ask `/readyz` after the
/// listeners close at the shutdown signal (Pingora serves one more request on it, with
/// `Connection: close`).
struct AdminConn(TcpStream);

impl AdminConn {
    fn open(admin: SocketAddr) -> AdminConn {
        let stream = TcpStream::connect(admin).expect("connect to admin");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        let mut conn = AdminConn(stream);
        let (status, body) = conn.get("/readyz").expect("first /readyz");
        assert_eq!(status, 200, "/readyz before the signal: {body}");
        conn
    }

    /// One GET; status and body. Needs a Content-Length, which every admin reply has.
    fn get(&mut self, path: &str) -> std::io::Result<(u16, String)> {
        write!(self.0, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = self.0.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or(std::io::ErrorKind::InvalidData)?;
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .ok_or(std::io::ErrorKind::InvalidData)?;
        while buf.len() < head_end + len {
            let n = self.0.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
        Ok((status, body))
    }
}

/// Opens `n` admin connections while the process is ready.
fn admin_conns(admin: SocketAddr, n: usize) -> Vec<AdminConn> {
    (0..n).map(|_| AdminConn::open(admin)).collect()
}

/// Asks `/readyz` over the connections opened before the signal until one answers 503
/// "draining". Each connection serves at most one request once shutdown has begun, so a
/// connection that answered (200 before the drain flag was set, or was closed) is dropped and
/// the next one is used. Returns the body of the draining answer, or every answer seen.
fn readyz_draining(conns: Vec<AdminConn>, deadline: Duration) -> Result<String, Vec<String>> {
    let start = Instant::now();
    let mut seen = Vec::new();
    for mut conn in conns {
        while start.elapsed() < deadline {
            match conn.get("/readyz") {
                Ok((503, body)) if body.contains("draining") => return Ok(body),
                Ok((status, body)) => seen.push(format!("{status} {body}")),
                Err(e) => {
                    seen.push(format!("error {e}"));
                    break;
                }
            }
        }
    }
    Err(seen)
}

// === graceful drain ===

/// Starts a slow request, sends `sig`, and checks the whole drain: readiness turns 503, new
/// connections are refused while the request is still in flight, the request completes in
/// full, and the process exits with success as soon as it has (well inside the grace period).
fn graceful_drain(sig: &str) {
    let origin = Origin::start();
    let mut proxy = BinaryProxy::spawn(|data, admin| conf(data, admin, "5s", &origin));
    let conns = admin_conns(proxy.admin, 6);
    let rt = runtime();
    let url = format!("http://{}/slow?delay_ms=700&size=100000", proxy.addr);
    let inflight = rt.spawn(async move {
        let result = get(url).await;
        (result, Instant::now())
    });
    wait_until(
        "the origin to receive the slow request",
        Duration::from_secs(5),
        || origin.request_count() == 1,
    );

    proxy.signal(sig);
    let signalled = Instant::now();

    let draining = readyz_draining(conns, Duration::from_secs(2));
    let refused = {
        let start = Instant::now();
        loop {
            if !accepts(proxy.addr) {
                break true;
            }
            if start.elapsed() > Duration::from_secs(2) {
                break false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let running_when_refused = proxy.child.try_wait().ok().flatten().is_none();
    let request_pending_when_refused = !inflight.is_finished();

    let (result, completed) = rt.block_on(inflight).expect("request task");
    let exited = wait_exit_within(&mut proxy.child, Duration::from_secs(8));
    let stderr = kill_and_stderr(&mut proxy);

    let body = draining.unwrap_or_else(|seen| {
        panic!("/readyz never answered 503 draining after SIG{sig}; saw {seen:?}\n{stderr}")
    });
    assert!(body.contains("\"ready\": false"), "{body}");
    assert!(
        refused,
        "the data listener still accepted 2s after SIG{sig}\n{stderr}"
    );
    assert!(
        running_when_refused && request_pending_when_refused,
        "listener refusal must be seen during the drain (process running: \
         {running_when_refused}, request pending: {request_pending_when_refused})\n{stderr}"
    );
    let (status, body) = result.unwrap_or_else(|e| {
        panic!("the in-flight request failed during the SIG{sig} drain: {e}\n{stderr}")
    });
    assert_eq!(status, 200, "{stderr}");
    assert_eq!(body.len(), 100_000, "truncated body\n{stderr}");
    assert!(
        body == pattern(0, 100_000),
        "body corrupted during the drain"
    );
    assert_eq!(origin.request_count(), 1);

    let (status, exited_at) =
        exited.unwrap_or_else(|| panic!("outrider did not exit after SIG{sig}\n{stderr}"));
    assert!(
        status.success(),
        "exit after SIG{sig} drain: {status}\n{stderr}"
    );
    // Pingora alone would sleep the whole 5s grace period; the lifecycle service exits as soon
    // as nothing is in flight.
    let after_response = exited_at.saturating_duration_since(completed);
    assert!(
        after_response < Duration::from_secs(2),
        "exited {after_response:?} after the last response: not early (grace is 5s)\n{stderr}"
    );
    assert!(
        exited_at - signalled < Duration::from_secs(3),
        "exited {:?} after SIG{sig}, grace period is 5s\n{stderr}",
        exited_at - signalled
    );
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_early() {
    graceful_drain("TERM");
}

#[test]
fn sigint_drains_like_sigterm() {
    graceful_drain("INT");
}

#[test]
fn grace_period_bounds_the_drain() {
    let origin = Origin::start();
    let mut proxy = BinaryProxy::spawn(|data, admin| conf(data, admin, "1s", &origin));
    let rt = runtime();
    let url = format!("http://{}/slower?delay_ms=5000", proxy.addr);
    let inflight = rt.spawn(get(url));
    wait_until(
        "the origin to receive the slow request",
        Duration::from_secs(5),
        || origin.request_count() == 1,
    );

    proxy.signal("TERM");
    let signalled = Instant::now();
    let exited = wait_exit_within(&mut proxy.child, Duration::from_secs(8));
    let stderr = kill_and_stderr(&mut proxy);
    let (status, exited_at) =
        exited.unwrap_or_else(|| panic!("outrider did not exit within 8s of SIGTERM\n{stderr}"));
    let took = exited_at - signalled;
    assert!(
        took < Duration::from_secs(4),
        "with grace_period 1s, exit took {took:?} after SIGTERM\n{stderr}"
    );
    assert!(
        took >= Duration::from_millis(900),
        "exited {took:?} after SIGTERM: did not wait for the grace period\n{stderr}"
    );
    assert!(status.success(), "exit status {status}\n{stderr}");

    // The origin had not answered yet: the client cannot have seen a complete 200.
    assert_request_was_cut(&rt, inflight);
}

#[test]
fn second_sigint_stops_at_once() {
    let origin = Origin::start();
    let mut proxy = BinaryProxy::spawn(|data, admin| conf(data, admin, "10s", &origin));
    let conns = admin_conns(proxy.admin, 6);
    let rt = runtime();
    let url = format!("http://{}/slow?delay_ms=5000", proxy.addr);
    let inflight = rt.spawn(get(url));
    wait_until(
        "the origin to receive the slow request",
        Duration::from_secs(5),
        || origin.request_count() == 1,
    );

    proxy.signal("INT");
    // The drain has begun (and the lifecycle service listens for the second signal) once
    // readiness says so.
    let draining = readyz_draining(conns, Duration::from_secs(2));
    let still_running = proxy.child.try_wait().ok().flatten().is_none();
    proxy.signal("INT");
    let second = Instant::now();
    let exited = wait_exit_within(&mut proxy.child, Duration::from_secs(8));
    let stderr = kill_and_stderr(&mut proxy);

    if let Err(seen) = draining {
        panic!("/readyz never answered 503 draining after SIGINT; saw {seen:?}\n{stderr}");
    }
    assert!(
        still_running,
        "the first SIGINT must drain (a 5s request is in flight, grace 10s), not stop\n{stderr}"
    );
    let (status, exited_at) = exited.unwrap_or_else(|| {
        panic!("outrider did not exit within 8s of the second SIGINT\n{stderr}")
    });
    assert!(
        exited_at - second < Duration::from_secs(1),
        "exited {:?} after the second SIGINT\n{stderr}",
        exited_at - second
    );
    assert!(status.success(), "exit status {status}\n{stderr}");
    assert_request_was_cut(&rt, inflight);
}

// === SIGHUP ===

#[test]
fn sighup_does_not_stop_the_proxy() {
    let origin = Origin::start();
    let mut proxy = BinaryProxy::spawn(|data, admin| conf(data, admin, "1s", &origin));
    let rt = runtime();
    for i in 0..3 {
        // Sent as soon as the listeners accept, and again while serving.
        proxy.signal("HUP");
        let result = rt.block_on(get(format!("http://{}/after-hup-{i}?size=10", proxy.addr)));
        let running = proxy.child.try_wait().ok().flatten().is_none();
        if !running || !matches!(result, Ok((200, _))) {
            let stderr = kill_and_stderr(&mut proxy);
            panic!(
                "after SIGHUP #{}: running = {running}, request = {result:?}\n{stderr}",
                i + 1
            );
        }
    }
    assert_eq!(origin.request_count(), 3);
    // Had a SIGHUP killed it, the status would carry the signal; an orderly stop exits 0.
    proxy.signal("TERM");
    let exited = wait_exit_within(&mut proxy.child, Duration::from_secs(5));
    let stderr = kill_and_stderr(&mut proxy);
    let (status, _) = exited.unwrap_or_else(|| panic!("no exit after SIGTERM\n{stderr}"));
    assert_eq!(status.signal(), None, "{status}\n{stderr}");
    assert!(status.success(), "{status}\n{stderr}");
}

// === start-up failures ===

/// Runs the binary with `args`, expecting it to exit on its own within 10s.
fn run_to_exit(mut cmd: Command) -> (Output, Duration) {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn outrider");
    if wait_exit_within(&mut child, Duration::from_secs(10)).is_none() {
        let _ = child.kill();
        let out = child.wait_with_output().expect("output");
        panic!(
            "outrider did not exit within 10s; stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let took = start.elapsed();
    (child.wait_with_output().expect("output"), took)
}

fn write_conf(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("outrider.toml");
    std::fs::write(&path, text).expect("write conf");
    path
}

#[test]
fn taken_port_exits_1_with_the_address() {
    let origin = Origin::start();
    let dir = tempfile::tempdir().expect("tempdir");
    for which in ["data", "admin"] {
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let taken_port = taken.local_addr().expect("addr").port();
        let other = free_port();
        let (data, admin) = if which == "data" {
            (taken_port, other)
        } else {
            (other, taken_port)
        };
        let path = write_conf(dir.path(), &conf(data, admin, "1s", &origin));
        let mut cmd = outrider();
        cmd.arg("--config").arg(&path);
        let (out, took) = run_to_exit(cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{which} port taken: {}\n{stderr}",
            out.status
        );
        assert!(
            stderr.contains(&format!("cannot listen on 127.0.0.1:{taken_port}")),
            "{which} port taken: stderr lacks the address:\n{stderr}"
        );
        assert!(took < Duration::from_secs(5), "took {took:?}");
        drop(taken);
    }
}

#[test]
fn demo_backend_port_taken_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let backend = taken.local_addr().expect("addr");
    let path = dir.path().join("demo.toml");
    std::fs::write(&path, demo_conf(free_port(), free_port(), backend.port())).expect("write");
    let mut cmd = outrider();
    cmd.args(["demo", "--config"]).arg(&path);
    let (out, _) = run_to_exit(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {backend}")),
        "{stderr}"
    );
}

#[test]
fn run_with_a_bad_config_exits_1_with_located_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = free_port();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{data}\"\ngrace_period = \"5 parsecs\"\n\n\
         [upstreams.app]\nendpoints = [\"127.0.0.1:1\"]\n"
    );
    let path = write_conf(dir.path(), &text);
    let file = path.display().to_string();
    let mut cmd = outrider();
    cmd.arg("--config").arg(&path).current_dir(dir.path());
    let (out, took) = run_to_exit(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // `grace_period = "5 parsecs"` is line 3; its value starts at column 16.
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&format!("{file}:")))
        .unwrap_or_else(|| panic!("no FILE:LINE:COL: error line:\n{stderr}"));
    let rest = &line[file.len() + 1..];
    let mut parts = rest.splitn(3, ':');
    let (l, c) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    assert_eq!(l, "3", "line number in {line:?}");
    assert_eq!(c, "16", "column number in {line:?}");
    let msg = parts.next().unwrap_or("");
    assert!(
        msg.starts_with(" server.grace_period: "),
        "key path in {line:?}"
    );
    assert!(msg.contains("5 parsecs"), "offending value in {line:?}");
    assert!(stderr.contains("1 error found"), "{stderr}");
    assert!(!accepts(([127, 0, 0, 1], data).into()), "it must not serve");

    // A file that does not exist: still FILE:LINE:COL: and exit 1.
    let missing = dir.path().join("missing.toml");
    let mut cmd = outrider();
    cmd.arg("--config").arg(&missing);
    let (out, _) = run_to_exit(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!("{}:1:1: ", missing.display())),
        "{stderr}"
    );
}

// === OUTRIDER_CONFIG ===

#[test]
fn outrider_config_env_var_is_the_default_config() {
    let origin = Origin::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, admin) = (free_port(), free_port());
    let path = write_conf(dir.path(), &conf(data, admin, "1s", &origin));
    let addr: SocketAddr = ([127, 0, 0, 1], data).into();
    let admin_addr: SocketAddr = ([127, 0, 0, 1], admin).into();
    let stderr_path = dir.path().join("stderr");
    let mut child = outrider()
        // An empty working directory: no conf/outrider.toml to fall back on.
        .current_dir(dir.path())
        .env("OUTRIDER_CONFIG", &path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn outrider");
    let start = Instant::now();
    let up = loop {
        if accepts(addr) && accepts(admin_addr) {
            break Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("exited with {status}"));
        }
        if start.elapsed() > Duration::from_secs(10) {
            break Err("not listening after 10s".to_string());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let result = up
        .clone()
        .and_then(|()| runtime().block_on(get(format!("http://{addr}/via-env?size=123"))));
    let _ = child.kill();
    let _ = child.wait();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let (status, body) = result.unwrap_or_else(|e| panic!("OUTRIDER_CONFIG: {e}\n{stderr}"));
    assert_eq!(status, 200);
    assert_eq!(body, pattern(0, 123));
    assert_eq!(origin.requests()[0].uri, "/via-env?size=123");

    // --config wins over OUTRIDER_CONFIG.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nthreads = \"many\"\n").expect("write");
    let out = outrider()
        .args(["check", "--config"])
        .arg(&path)
        .env("OUTRIDER_CONFIG", &bad)
        .output()
        .expect("run check");
    assert!(out.status.success(), "{out:?}");
    // And without --config, `check` reads OUTRIDER_CONFIG.
    let out = outrider()
        .arg("check")
        .env("OUTRIDER_CONFIG", &bad)
        .output()
        .expect("run check");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("{}:2:", bad.display())),
        "{out:?}"
    );
}

// === demo ===

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// conf/demo.toml with its three fixed ports replaced.
fn demo_conf(data: u16, admin: u16, backend: u16) -> String {
    let text = std::fs::read_to_string(repo_root().join("conf/demo.toml")).expect("demo.toml");
    for fixed in ["127.0.0.1:8080", "127.0.0.1:9901", "127.0.0.1:3000"] {
        assert!(
            text.contains(fixed),
            "conf/demo.toml no longer uses {fixed}"
        );
    }
    text.replace("127.0.0.1:8080", &format!("127.0.0.1:{data}"))
        .replace("127.0.0.1:9901", &format!("127.0.0.1:{admin}"))
        .replace("127.0.0.1:3000", &format!("127.0.0.1:{backend}"))
}

#[test]
fn demo_serves_its_backend_through_the_proxy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, admin, backend) = (free_port(), free_port(), free_port());
    let path = dir.path().join("demo.toml");
    std::fs::write(&path, demo_conf(data, admin, backend)).expect("write");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = outrider()
        .current_dir(repo_root())
        .args(["demo", "--config"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn outrider demo");
    let addrs: Vec<SocketAddr> = [data, admin, backend]
        .iter()
        .map(|p| ([127, 0, 0, 1], *p).into())
        .collect();
    let start = Instant::now();
    let up = loop {
        if addrs.iter().all(|a| accepts(*a)) {
            break Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("demo exited with {status}"));
        }
        if start.elapsed() > Duration::from_secs(10) {
            break Err("demo not listening after 10s".to_string());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let results = up.and_then(|()| {
        let rt = runtime();
        let base = format!("http://127.0.0.1:{data}");
        ["/api/items", "/page", "/slow?ms=50", "/fail?status=503"]
            .iter()
            .map(|p| {
                rt.block_on(get(format!("{base}{p}")))
                    .map_err(|e| format!("{p}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()
    });
    // It drains and exits 0 on SIGTERM like the proxy proper.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let exited = wait_exit_within(&mut child, Duration::from_secs(5));
    let _ = child.kill();
    let _ = child.wait();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let results = results.unwrap_or_else(|e| panic!("{e}\nstdout:\n{stdout}\nstderr:\n{stderr}"));

    let (status, body) = &results[0];
    assert_eq!(*status, 200, "/api/items");
    let json: serde_json::Value = serde_json::from_slice(body).expect("/api/items is JSON");
    let items = json["items"].as_array().expect("items array");
    assert_eq!(items.len(), 20, "{json}");
    assert_eq!(items[0]["id"], 1);

    let (status, body) = &results[1];
    assert_eq!(*status, 200, "/page");
    assert!(body.len() > 100 * 1024, "/page is {} bytes", body.len());
    assert!(body.starts_with(b"<!doctype html>"));

    let (status, body) = &results[2];
    assert_eq!(*status, 200, "/slow");
    assert_eq!(String::from_utf8_lossy(body), "slept 50 ms\n");

    let (status, _) = &results[3];
    assert_eq!(*status, 503, "/fail?status=503");

    let proxy_url = format!("http://127.0.0.1:{data}");
    assert!(
        stdout.contains(&format!("curl -i {proxy_url}/api/items")),
        "stdout lacks the curl commands for {proxy_url}:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!("http://127.0.0.1:{backend}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("http://127.0.0.1:{admin}")),
        "{stdout}"
    );

    let (status, _) = exited.unwrap_or_else(|| panic!("demo did not exit on SIGTERM\n{stderr}"));
    assert!(status.success(), "demo exit: {status}\n{stderr}");
}

#[test]
fn shipped_demo_config_checks() {
    let out = outrider()
        .current_dir(repo_root())
        .args(["check", "--config", "conf/demo.toml"])
        .output()
        .expect("run check");
    assert!(
        out.status.success(),
        "conf/demo.toml: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("conf/demo.toml: ok"));
}

// === flags ===

#[test]
fn help_and_version() {
    for args in [&["--help"][..], &["check", "--help"], &["demo", "--help"]] {
        let out = outrider().args(args).output().expect("run");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert!(stdout.contains("Usage:"), "{args:?}: {stdout}");
        assert!(stdout.contains("--config"), "{args:?}: {stdout}");
    }
    let out = outrider().arg("--help").output().expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for sub in ["run", "check", "demo"] {
        assert!(stdout.contains(sub), "--help lacks `{sub}`: {stdout}");
    }

    let out = outrider().arg("--version").output().expect("run");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("outrider {}", env!("CARGO_PKG_VERSION"))
    );

    // An unknown flag is a usage error, not a start.
    let out = outrider().arg("--no-such-flag").output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
