//! 200 MiB through the proxy in both directions, byte-exact, with flat memory.
//!
//! In a binary of their own: the memory check samples this process's RSS, which any other
//! test running in parallel in the same process would disturb.

use crate::support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::origin::{pattern, Period};
use support::{client, Origin, Proxy};

// ======================================================================================
// Large transfers with flat memory
// ======================================================================================

const LARGE: u64 = 200 * 1024 * 1024;
const RSS_BUDGET: u64 = 64 * 1024 * 1024;

// Each takes 3-6 s in a debug build on 2 cores (download ~3.5 s, upload ~5.5 s): the proxy,
// the origin and the client all run in this process, and both ends check every byte.

/// The large tests measure this process's RSS, so they must not overlap each other.
static LARGE_TRANSFER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_download_streams_byte_exact_in_flat_memory() {
    let _one_at_a_time = LARGE_TRANSFER.lock().await;
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let http = client();
    // Warm up pools, buffers and allocator arenas before the baseline.
    let warm = http.get(proxy.url("/w?size=4194304")).send().await.unwrap();
    assert_eq!(warm.bytes().await.unwrap().len(), 4 << 20);

    let rss = RssSampler::start();
    let started = Instant::now();
    let mut resp = http
        .get(proxy.url(&format!("/big?size={LARGE}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-length"].to_str().unwrap(),
        LARGE.to_string()
    );
    let mut check = Period::new().checker();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        assert!(
            check.feed(&chunk),
            "download differs near offset {}",
            check.offset
        );
    }
    assert_eq!(check.offset, LARGE);
    let growth = rss.stop();
    eprintln!(
        "200 MiB download: {:?}, RSS growth {} KiB",
        started.elapsed(),
        growth >> 10
    );
    assert!(growth < RSS_BUDGET, "RSS grew by {} MiB", growth >> 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_upload_streams_byte_exact_in_flat_memory() {
    let _one_at_a_time = LARGE_TRANSFER.lock().await;
    let origin = Origin::start();
    // Above the default `max_body` (64 MiB), which is what this upload is not about.
    let proxy = Proxy::start(&format!(
        "{}[limits]\nmax_body = \"0\"\n",
        origin.upstream_toml("app")
    ));
    let http = client();
    let period = Period::new();
    let warm = http
        .post(proxy.url("/w"))
        .body(reqwest::Body::wrap_stream(
            period.stream(4 << 20, 64 * 1024),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);

    let rss = RssSampler::start();
    let started = Instant::now();
    let resp = http
        .post(proxy.url("/big"))
        .header("content-length", LARGE.to_string())
        .body(reqwest::Body::wrap_stream(period.stream(LARGE, 64 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let growth = rss.stop();
    eprintln!(
        "200 MiB upload: {:?}, RSS growth {} KiB",
        started.elapsed(),
        growth >> 10
    );
    let seen = &origin.requests()[1];
    assert_eq!(seen.headers["content-length"], LARGE.to_string());
    assert_eq!(seen.body_len, LARGE);
    assert!(seen.body_is_pattern, "upload differs");
    assert!(growth < RSS_BUDGET, "RSS grew by {} MiB", growth >> 20);
}

/// This process's resident set size.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS")
}

/// Samples RSS in the background; `stop` answers the peak growth over the starting value.
struct RssSampler {
    baseline: u64,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    fn start() -> RssSampler {
        let baseline = rss_bytes();
        let peak = Arc::new(AtomicU64::new(baseline));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        RssSampler {
            baseline,
            peak,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.peak
            .load(Ordering::Relaxed)
            .max(rss_bytes())
            .saturating_sub(self.baseline)
    }
}

#[test]
fn pattern_checker_detects_a_flipped_byte() {
    let period = Period::new();
    let mut data = pattern(0, 600_000);
    let mut ok = period.checker();
    assert!(ok.feed(&data[..1000]) && ok.feed(&data[1000..]));
    data[400_123] ^= 1;
    let mut bad = period.checker();
    assert!(!bad.feed(&data));
}
