//! Zero-downtime binary upgrade with the real binary: a second `outrider --upgrade` takes the
//! listening sockets over from the running one (Pingora's fd hand-over on `server.upgrade_sock`)
//! when the old process gets SIGQUIT, while clients keep sending requests.
//!
//! The load opens a new connection per request, so that every request tests the listening
//! socket itself: a refused or reset connect during the hand-over would show as a failure.
//! (Keep-alive connections to the old process finish their request and are closed as it
//! drains; a client that reuses an idle one at that instant sees what any HTTP/1.1 server's
//! restart gives it, and retries.)

use crate::support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{binary, wait_until, BinaryProxy, Origin};

/// One request on a fresh connection; true when a whole 200 came back.
fn request(addr: SocketAddr) -> Result<(), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /?size=64 HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    let head = String::from_utf8_lossy(&answer[..answer.len().min(12)]).into_owned();
    if head == "HTTP/1.1 200" {
        Ok(())
    } else {
        Err(format!("answer began {head:?}"))
    }
}

#[test]
fn an_upgrade_under_load_fails_no_request() {
    let origin = Origin::start();
    let sock_dir = tempfile::tempdir().expect("tempdir");
    let sock = sock_dir.path().join("upgrade.sock");
    let sock_text = sock.display().to_string();
    let mut old = BinaryProxy::spawn(|data, admin| {
        format!(
            "[server]\nlisten = \"127.0.0.1:{data}\"\nthreads = 2\ngrace_period = \"2s\"\n\
             upgrade_sock = \"{sock_text}\"\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
             [log]\nlevel = \"warn\"\n\n{}",
            origin.upstream_toml("app")
        )
    });
    let addr = old.addr;

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, served, failures) = (stop.clone(), served.clone(), failures.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match request(addr) {
                        Ok(()) => {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if let Ok(mut f) = failures.lock() {
                                f.push(e);
                            }
                        }
                    }
                }
            })
        })
        .collect();
    wait_until("load flowing", Duration::from_secs(5), || {
        served.load(Ordering::Relaxed) > 50
    });

    // The new process waits on the socket for the old one's listeners.
    let mut new = Command::new(binary())
        .arg("--config")
        .arg(old.config_path())
        .arg("--upgrade")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the new outrider");
    wait_until(
        "the new process to listen for the hand-over",
        Duration::from_secs(5),
        || sock.exists(),
    );
    let before_handover = served.load(Ordering::Relaxed);
    old.signal("QUIT");
    let status = old.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "the old process exited with {status}");

    // Only the new process is left to answer now.
    let after_exit = served.load(Ordering::Relaxed);
    wait_until("the new process to serve", Duration::from_secs(5), || {
        served.load(Ordering::Relaxed) > after_exit + 50
    });
    stop.store(true, Ordering::Relaxed);
    for t in load {
        let _ = t.join();
    }
    assert!(
        matches!(new.try_wait(), Ok(None)),
        "the new process is still running"
    );
    let failures = failures.lock().map(|f| f.clone()).unwrap_or_default();
    let total = served.load(Ordering::Relaxed);
    println!(
        "upgrade: {total} requests served ({before_handover} before the hand-over), {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    // The admin plane moved too.
    assert!(support::accepts(old.admin));

    let _ = new.kill();
    let _ = new.wait();
}
