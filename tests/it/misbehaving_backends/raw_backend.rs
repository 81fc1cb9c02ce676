//! The raw backend: a loopback listener that writes exact bytes, scripted per path in
//! [`Step`]s.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

// ======================================================================================
// Helpers
// ======================================================================================

/// One thing the raw backend does on a connection, in order.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// These bytes, verbatim.
    Write(Vec<u8>),
    /// These bytes one at a time, `gap` apart.
    Trickle(Vec<u8>, Duration),
    Pause(Duration),
    /// FIN.
    Close,
    /// RST: `SO_LINGER` 0, then drop.
    Reset,
    /// Wait for the test's signal.
    Await(Arc<Notify>),
    /// Keep the connection and read the next request on it.
    Next,
}

type Script = Arc<dyn Fn(&str) -> Vec<Step> + Send + Sync>;

/// An HTTP/1.1 backend that writes exact bytes: reads a request head, records its path, and
/// runs the script's steps for that path. Runs in its own thread and runtime.
pub(crate) struct RawBackend {
    addr: SocketAddr,
    paths: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RawBackend {
    pub(crate) fn start(script: impl Fn(&str) -> Vec<Step> + Send + Sync + 'static) -> RawBackend {
        let script: Script = Arc::new(script);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let paths: Arc<Mutex<Vec<String>>> = Arc::default();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let p = paths.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            tokio::spawn(serve(stream, script.clone(), p.clone()));
                        }
                    }
                }
            });
        });
        RawBackend {
            addr,
            paths,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub(crate) fn count(&self, path: &str) -> usize {
        self.paths
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.as_str() == path)
            .count()
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(mut stream: tokio::net::TcpStream, script: Script, paths: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    loop {
        // One request head (GETs only: no body follows).
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let target = head.split(' ').nth(1).unwrap_or("").to_string();
        let path = target.split('?').next().unwrap_or("").to_string();
        paths.lock().unwrap().push(path.clone());
        let mut keep = false;
        for step in script(&path) {
            match step {
                Step::Write(bytes) => {
                    if stream.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Step::Trickle(bytes, gap) => {
                    for (i, b) in bytes.iter().enumerate() {
                        if i > 0 {
                            tokio::time::sleep(gap).await;
                        }
                        if stream.write_all(&[*b]).await.is_err() {
                            return;
                        }
                    }
                }
                Step::Pause(d) => tokio::time::sleep(d).await,
                Step::Await(gate) => gate.notified().await,
                Step::Close => {
                    let _ = stream.shutdown().await;
                    return;
                }
                Step::Reset => {
                    let _ = stream.set_zero_linger();
                    return;
                }
                Step::Next => {
                    keep = true;
                    break;
                }
            }
        }
        if !keep {
            return;
        }
    }
}

/// The backend as upstream "app" (breaker off, unless `upstream` says otherwise), one route
/// on `/` with the inline cache table `cache`.
pub(crate) fn conf(backend: &RawBackend, cache: &str, upstream: &str) -> String {
    format!(
        "[upstreams.app]\nendpoints = [\"{}\"]\n{upstream}\n\n[upstreams.app.breaker]\nenabled = false\n\n\
         [[routes]]\nname = \"c\"\nupstream = \"app\"\nmatch = {{ path_prefix = \"/\" }}\n\
         cache = {{ {cache} }}\n\n",
        backend.addr
    )
}
