//! The dashboard (`GET /` on the admin port): what it serves and promises (self-contained,
//! CSP `'self'`, read-only), and what a real browser shows: headless Chromium loads the page
//! against the built binary under traffic, and the test reads the rendered DOM for the route
//! names, a non-zero rate, a purge in the recent-purges list, and a breaker shown open after
//! the backend dies. A screenshot is kept in the test's temp dir (its path is printed).
//!
//! No sleeps as synchronisation: each wait polls the rendered page with a deadline. The
//! traffic task paces its requests (10 ms apart); that is load, not a wait.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::raw::raw_exchange;
use crate::support::{client, server_section, BinaryProxy, Origin, Proxy};

fn conf(data: u16, admin: u16, origin: &Origin) -> String {
    format!(
        "{}{}[upstreams.app.breaker]\nenabled = true\nconsecutive_failures = 2\nopen_for = \"60s\"\n\n\
         [[routes]]\nname = \"catalogue\"\nupstream = \"app\"\nmatch = {{ path_prefix = \"/catalogue/\" }}\n\n\
         [[routes]]\nname = \"orders\"\nupstream = \"app\"\nmatch = {{ path_prefix = \"/\" }}\n",
        server_section(data, admin),
        origin.upstream_toml("app")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_is_self_contained_with_a_strict_csp() {
    let origin = Origin::start();
    let proxy = Proxy::start_with(|d, a| conf(d, a, &origin));
    let resp = client().get(proxy.admin_url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let html = resp.text().await.unwrap();
    // Nothing from the network: every reference is a path on this port.
    for text in [
        html.as_str(),
        &fetch(&proxy, "/ui/dash.js").await,
        &fetch(&proxy, "/ui/dash.css").await,
    ] {
        for scheme in ["http://", "https://", "//cdn"] {
            let outside: Vec<&str> = text
                .match_indices(scheme)
                .map(|(i, _)| &text[i..(i + 40).min(text.len())])
                .filter(|s| !s.starts_with("http://www.w3.org/2000/svg"))
                .collect();
            assert!(outside.is_empty(), "{outside:?}");
        }
    }
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "inline code"
    );
    // The page only reads: its script sends no POST, and the mutating endpoints still refuse
    // what a page's fetch carries (Origin, Sec-Fetch-Site: same-origin), even same-origin.
    let script = fetch(&proxy, "/ui/dash.js").await;
    assert!(
        !script.contains("POST") && !script.contains("method:"),
        "the script must only GET"
    );
    for path in ["/reload", "/cache/purge"] {
        let port = proxy.admin.port();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\n\
             Sec-Fetch-Site: same-origin\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\
             Connection: close\r\n\r\n{{\"all\":true}}"
        );
        let (status, _, _) = raw_exchange(proxy.admin, &request).await;
        assert_eq!(status, 403, "POST {path} from the dashboard's origin");
    }
}

async fn fetch(proxy: &Proxy, path: &str) -> String {
    let resp = client().get(proxy.admin_url(path)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    assert!(resp.headers().contains_key("content-security-policy"));
    resp.text().await.unwrap()
}

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Runs headless Chromium on `url` with `extra` flags; returns stdout (the DOM with --dump-dom).
/// The page runs for 5 s of virtual time (two or three refreshes) unless `extra` says more.
fn run_chromium(bin: &Path, profile: &Path, url: &str, extra: &[&str]) -> String {
    let budget = if extra.iter().any(|a| a.starts_with("--virtual-time-budget")) {
        None
    } else {
        Some("--virtual-time-budget=5000")
    };
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(budget)
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Dumps the rendered DOM until `ready` holds; fails after 90 s with the last DOM.
fn dom_until(
    bin: &Path,
    profile: &Path,
    url: &str,
    what: &str,
    ready: impl Fn(&str) -> bool,
) -> String {
    let start = Instant::now();
    loop {
        let dom = run_chromium(bin, profile, url, &["--dump-dom"]);
        if ready(&dom) {
            return dom;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{what}; last DOM:\n{dom}"
        );
    }
}

/// The rate cell of `route` in the rendered table, as a number.
fn rate_of(dom: &str, route: &str) -> Option<f64> {
    let row = dom.split(&format!("data-route=\"{route}\"")).nth(1)?;
    let cell = row.split("class=\"rate\">").nth(1)?;
    cell.split('<').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_browser_shows_live_routes_and_an_open_breaker() {
    let Some(bin) = chromium() else {
        panic!("chromium is not installed: run scripts/deps.sh");
    };
    let origin = Origin::start();
    let proxy = BinaryProxy::spawn(|d, a| conf(d, a, &origin));
    let tmp = tempfile::tempdir().unwrap();
    let profile = tmp.path().join("profile");
    let url = format!("http://127.0.0.1:{}/", proxy.admin.port());

    let running = Arc::new(AtomicBool::new(true));
    let traffic = {
        let running = running.clone();
        let base = format!("http://{}", proxy.addr);
        tokio::spawn(async move {
            let c = client();
            let mut i = 0u64;
            while running.load(Ordering::Relaxed) {
                let path = if i % 2 == 0 {
                    "/catalogue/item?size=2000&ct=application/json"
                } else {
                    "/orders/1?size=300"
                };
                let _ = c.get(format!("{base}{path}")).send().await;
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let purge = client()
        .post(format!("http://{}/cache/purge", proxy.admin))
        .body(r#"{"tag": "dash-check"}"#)
        .send()
        .await
        .expect("purge");
    assert_eq!(purge.status(), 200);

    let (bin2, profile2, url2) = (bin.clone(), profile.clone(), url.clone());
    let dom = tokio::task::spawn_blocking(move || {
        dom_until(
            &bin2,
            &profile2,
            &url2,
            "live rates for both routes, the advice and the purge",
            |dom| {
                rate_of(dom, "catalogue").is_some_and(|r| r > 0.0)
                    && rate_of(dom, "orders").is_some_and(|r| r > 0.0)
                    // The advisor's finding: catalogue repeats identical bodies.
                    && dom.contains("data-kind=\"cacheability\"")
                    && dom.contains("tag dash-check: 0 purged")
            },
        )
    })
    .await
    .unwrap();
    assert!(dom.contains("data-upstream=\"app\""), "the upstream card");
    assert!(
        dom.contains("state-closed"),
        "a closed breaker before the backend dies"
    );
    let live = screenshot(&bin, &profile, &url, &tmp.path().join("dash-live.png")).await;

    // The backend dies; the traffic trips the endpoint's breaker (2 failures in a row).
    drop(origin);
    let (bin2, profile2, url2) = (bin.clone(), profile.clone(), url.clone());
    let dom = tokio::task::spawn_blocking(move || {
        dom_until(&bin2, &profile2, &url2, "the breaker shown open", |dom| {
            dom.contains("data-endpoint=") && dom.contains("class=\"badge state-open\">open<")
        })
    })
    .await
    .unwrap();
    assert!(dom.contains("catalogue") && dom.contains("orders"));

    let shot = screenshot(&bin, &profile, &url, &tmp.path().join("dash.png")).await;
    running.store(false, Ordering::Relaxed);
    traffic.await.unwrap();
    // Kept with the temp dir for a look; DASHBOARD_SCREENSHOT=docs/dashboard.png copies the
    // live one for the README.
    let _kept = tmp.keep();
    println!(
        "dashboard screenshots: {} (live), {} (breaker open)",
        live.display(),
        shot.display()
    );
    if let Ok(dest) = std::env::var("DASHBOARD_SCREENSHOT") {
        std::fs::copy(&live, dest).unwrap();
    }
}

/// A 1280×900 screenshot after 20 s of virtual time (ten refreshes, so the charts have lines).
async fn screenshot(bin: &Path, profile: &Path, url: &str, to: &Path) -> PathBuf {
    let arg = format!("--screenshot={}", to.display());
    let (bin, profile, url, to) = (
        bin.to_path_buf(),
        profile.to_path_buf(),
        url.to_string(),
        to.to_path_buf(),
    );
    tokio::task::spawn_blocking(move || {
        let flags = [
            arg.as_str(),
            "--window-size=1280,900",
            "--hide-scrollbars",
            "--virtual-time-budget=20000",
        ];
        run_chromium(&bin, &profile, &url, &flags);
        let size = std::fs::metadata(&to).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "screenshot {} is {size} bytes", to.display());
        to
    })
    .await
    .unwrap()
}
