//! Hot reload, end to end: the real binary, a real conf file on disk, real backends.
//!
//! Each trigger (in-place edit, write-then-rename, Kubernetes `..data` symlink swap, SIGHUP,
//! POST /reload) must change what requests see; a bad file must change nothing and be
//! reported; listener changes are reported, not applied.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{client, BinaryProxy, Origin, Reply};

/// Two origins that say who they are.
fn origins() -> (Origin, Origin) {
    (
        Origin::with_handler(|_| Reply::ok("A")),
        Origin::with_handler(|_| Reply::ok("B")),
    )
}

/// A conf sending everything to `origin` (route named `route`).
fn conf(data: u16, admin: u16, origin: &Origin, route: &str) -> String {
    format!(
        "{}[upstreams.app]\nendpoints = [\"{}\"]\n\n[[routes]]\nname = \"{route}\"\nmatch = {{ path_prefix = \"/\" }}\n",
        support::server_section(data, admin),
        origin.addr
    )
}

fn root(proxy: &BinaryProxy) -> String {
    format!("http://{}/", proxy.addr)
}

fn ports(proxy: &BinaryProxy) -> (u16, u16) {
    (proxy.addr.port(), proxy.admin.port())
}

/// Replaces the file atomically, as editors and `kubectl cp`-style tools do.
fn write_renamed(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn body(url: &str) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn config_of(proxy: &BinaryProxy) -> Value {
    let url = format!("http://{}/config", proxy.admin);
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls until the proxy's answer to `/` is `want`, or fails after 5 s.
async fn wait_for_body(proxy: &BinaryProxy, want: &str) {
    let url = root(proxy);
    let start = Instant::now();
    loop {
        if body(&url).await == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the proxy never answered {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_generation(proxy: &BinaryProxy, at_least: u64) -> Value {
    let start = Instant::now();
    loop {
        let c = config_of(proxy).await;
        if c["generation"].as_u64().unwrap_or(0) >= at_least {
            return c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "generation never reached {at_least}: {c}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn in_place_edit_is_applied() {
    let (a, b) = origins();
    let proxy = BinaryProxy::spawn(|d, m| conf(d, m, &a, "r"));
    wait_for_body(&proxy, "A").await;
    let (d, m) = ports(&proxy);
    // Truncate-and-write in place, as `echo > file` does.
    std::fs::write(proxy.config_path(), conf(d, m, &b, "r")).unwrap();
    wait_for_body(&proxy, "B").await;
    let c = config_of(&proxy).await;
    assert_eq!(c["generation"], 2, "{c}");
    assert!(c["last_error"].is_null(), "{c}");
}

#[tokio::test(flavor = "multi_thread")]
async fn write_then_rename_is_applied() {
    let (a, b) = origins();
    let proxy = BinaryProxy::spawn(|d, m| conf(d, m, &a, "r"));
    let (d, m) = ports(&proxy);
    write_renamed(proxy.config_path(), &conf(d, m, &b, "r"));
    wait_for_body(&proxy, "B").await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn kubernetes_configmap_symlink_swap_is_applied() {
    use std::os::unix::fs::symlink;
    let (a, b) = origins();
    let proxy = BinaryProxy::spawn(|d, m| conf(d, m, &a, "r"));
    let (d, m) = ports(&proxy);
    let dir = proxy.config_path().parent().unwrap().to_path_buf();
    // Lay the mount out as the kubelet does: outrider.toml -> ..data/outrider.toml,
    // ..data -> ..<timestamp>; this first step keeps the content, so nothing reloads.
    std::fs::create_dir(dir.join("..v1")).unwrap();
    std::fs::write(dir.join("..v1/outrider.toml"), conf(d, m, &a, "r")).unwrap();
    symlink("..v1", dir.join("..data")).unwrap();
    symlink("..data/outrider.toml", dir.join("link.tmp")).unwrap();
    std::fs::rename(dir.join("link.tmp"), proxy.config_path()).unwrap();
    // The update: a new timestamped directory, then an atomic swap of the `..data` link.
    std::fs::create_dir(dir.join("..v2")).unwrap();
    std::fs::write(dir.join("..v2/outrider.toml"), conf(d, m, &b, "r")).unwrap();
    symlink("..v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    wait_for_body(&proxy, "B").await;
    assert_eq!(
        config_of(&proxy).await["generation"],
        2,
        "the no-op relink must not reload"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads() {
    let (a, b) = origins();
    let proxy = BinaryProxy::spawn(|d, m| conf(d, m, &a, "r"));
    let (d, m) = ports(&proxy);
    // Change the file and signal at once; whichever trigger applies it first, the policy
    // must change, and the signal must produce a generation of its own.
    std::fs::write(proxy.config_path(), conf(d, m, &b, "r")).unwrap();
    proxy.signal("HUP");
    wait_for_body(&proxy, "B").await;
    wait_for_generation(&proxy, 2).await;
    let before = config_of(&proxy).await["generation"].as_u64().unwrap();
    proxy.signal("HUP");
    wait_for_generation(&proxy, before + 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn post_reload_answers_with_the_new_generation_or_the_errors() {
    let (a, b) = origins();
    let proxy = BinaryProxy::spawn(|d, m| conf(d, m, &a, "r"));
    let (d, m) = ports(&proxy);

    std::fs::write(proxy.config_path(), conf(d, m, &b, "r")).unwrap();
    let resp = proxy.post_reload().await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["result"], "applied");
    assert!(v["generation"].as_u64().unwrap() >= 2);
    assert_eq!(body(&root(&proxy)).await, "B");

    // A route naming a missing upstream: 422, every error with its location, nothing applied.
    let bad = conf(d, m, &a, "r").replace(
        "[[routes]]\nname = \"r\"",
        "[[routes]]\nname = \"r\"\nupstream = \"nope\"",
    );
    std::fs::write(proxy.config_path(), &bad).unwrap();
    let resp = proxy.post_reload().await;
    assert_eq!(resp.status(), 422);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["result"], "rejected");
    let errors = v["errors"].as_array().unwrap();
    let line = bad
        .lines()
        .position(|l| l.starts_with("upstream = \"nope\""))
        .unwrap()
        + 1;
    assert!(
        errors[0].as_str().unwrap().contains(&format!(
            "outrider.toml:{line}:12: routes[0].upstream: no upstream named \"nope\""
        )),
        "{v}"
    );
    assert_eq!(
        body(&root(&proxy)).await,
        "B",
        "a rejected file must change nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_needs_the_admin_token_when_one_is_set() {
    let (a, _b) = origins();
    let proxy = BinaryProxy::spawn(|d, m| {
        conf(d, m, &a, "r").replace("[admin]\n", "[admin]\ntoken = \"s3cret\"\n")
    });
    let url = format!("http://{}/reload", proxy.admin);
    let resp = client().post(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client()
        .post(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client()
        .post(&url)
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The token never shows in /config.
    let c = config_of(&proxy).await;
    assert_eq!(c["policy"]["admin"]["token"], "<redacted>");
    assert!(!c.to_string().contains("s3cret"));
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_files_are_rejected_and_reported_in_config() {
    let (a, b) = origins();
    let proxy = BinaryProxy::spawn(|d, m| conf(d, m, &a, "r"));
    let (d, m) = ports(&proxy);
    let good_b = conf(d, m, &b, "r");
    let cases = [
        // (broken text, expected location prefix in the error)
        (good_b.replace("path_prefix = \"/\"", "path_prefix = "), ":"),
        (
            format!("{good_b}bogus = 1\n"),
            "routes[0].bogus: unknown field",
        ),
        (
            good_b.replace("endpoints = [", "endpoints = [\"not an address\", "),
            "upstreams.app.endpoints[0]",
        ),
    ];
    for (i, (text, expect)) in cases.iter().enumerate() {
        write_renamed(proxy.config_path(), text);
        let start = Instant::now();
        let c = loop {
            let c = config_of(&proxy).await;
            let errs = c["last_error"]["errors"].to_string();
            if errs.contains(expect) && errs.contains("outrider.toml:") {
                break c;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "case {i}: error not reported: {c}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(c["generation"], 1, "case {i}: nothing may be applied");
        assert_eq!(
            body(&root(&proxy)).await,
            "A",
            "case {i}: the old policy keeps serving"
        );
    }
    let metrics = client()
        .get(format!("http://{}/metrics", proxy.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("outrider_config_last_reload_successful 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("outrider_config_reloads_total{result=\"failure\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("outrider_config_generation 1"),
        "{metrics}"
    );
    // Fixing the file recovers on its own.
    write_renamed(proxy.config_path(), &good_b);
    wait_for_body(&proxy, "B").await;
    let c = config_of(&proxy).await;
    assert!(c["last_error"].is_null(), "{c}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vanished_file_keeps_the_policy_and_recovers_when_it_returns() {
    let (a, b) = origins();
    let proxy = BinaryProxy::spawn(|d, m| conf(d, m, &a, "r"));
    let (d, m) = ports(&proxy);
    std::fs::remove_file(proxy.config_path()).unwrap();
    let start = Instant::now();
    loop {
        let c = config_of(&proxy).await;
        if c["last_error"]["errors"]
            .to_string()
            .contains("cannot read")
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "missing file not reported: {c}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(body(&root(&proxy)).await, "A");
    std::fs::write(proxy.config_path(), conf(d, m, &b, "r")).unwrap();
    wait_for_body(&proxy, "B").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listener_changes_are_reported_not_applied() {
    let (a, b) = origins();
    let proxy = BinaryProxy::spawn(|d, m| conf(d, m, &a, "r"));
    let (d, m) = ports(&proxy);
    let other = support::free_port();
    assert_ne!(other, d);
    let moved = conf(other, m, &b, "r").replace("threads = 2", "threads = 3");
    std::fs::write(proxy.config_path(), moved).unwrap();
    let resp = proxy.post_reload().await;
    let v: Value = resp.json().await.unwrap();
    let pending = v["pending_restart"].to_string();
    assert!(pending.contains("server.listen"), "{v}");
    assert!(pending.contains("server.threads: 2 → 3"), "{v}");
    // Everything else applied; the old listener still serves, the new port is not bound.
    assert_eq!(body(&root(&proxy)).await, "B");
    assert!(!support::accepts(([127, 0, 0, 1], other).into()));
    let c = config_of(&proxy).await;
    assert!(
        c["pending_restart"].to_string().contains("server.listen"),
        "{c}"
    );
    assert_eq!(
        c["policy"]["server"]["threads"], 2,
        "the snapshot shows what is in effect"
    );
}

/// A client at full speed while the policy is reloaded hundreds of times, alternating valid
/// and invalid files: no request may fail, and each response must come from a policy that was
/// in force at some moment while that request was in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reloading_under_load_loses_no_request() {
    const RELOADS: usize = 240;
    const CLIENTS: usize = 4;
    let (a, b) = origins();
    let proxy = BinaryProxy::spawn(|d, m| conf(d, m, &a, "r"));
    let (d, m) = ports(&proxy);
    let files = [conf(d, m, &a, "r"), conf(d, m, &b, "r")];
    let invalid = format!("{}bogus = true\n", files[1]);
    let epoch = Instant::now();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    let mut load = Vec::new();
    for _ in 0..CLIENTS {
        let (url, stop) = (format!("http://{}/", proxy.addr), stop.clone());
        load.push(tokio::spawn(async move {
            let http = client();
            let mut seen = Vec::new(); // (sent, received, body)
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = epoch.elapsed();
                let resp = http
                    .get(&url)
                    .send()
                    .await
                    .expect("request failed during reload");
                assert_eq!(resp.status(), 200);
                let text = resp.text().await.expect("body cut during reload");
                seen.push((sent, epoch.elapsed(), text));
            }
            seen
        }));
    }

    // Valid reloads alternate A and B; each is timed from before the file is written (the
    // watcher may apply it from then on) to after POST /reload answers.
    let mut applied: Vec<(Duration, Duration, &str)> = vec![(Duration::ZERO, Duration::ZERO, "A")];
    let admin = client();
    let url = format!("http://{}/reload", proxy.admin);
    for i in 0..RELOADS {
        let before = epoch.elapsed();
        let (text, origin) = if i % 2 == 1 {
            (&invalid, None)
        } else if (i / 2) % 2 == 0 {
            (&files[1], Some("B"))
        } else {
            (&files[0], Some("A"))
        };
        write_renamed(proxy.config_path(), text);
        let status = admin.post(&url).send().await.unwrap().status();
        assert_eq!(
            status,
            if origin.is_some() { 200 } else { 422 },
            "reload {i}"
        );
        if let Some(o) = origin {
            applied.push((before, epoch.elapsed(), o));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let mut total = 0;
    for task in load {
        for (sent, received, body) in task.await.unwrap() {
            total += 1;
            // The policy in force at some instant in [sent, received]: any applied reload that
            // could have happened by `received` and was not surely superseded before `sent`.
            let possible: Vec<&str> = applied
                .iter()
                .enumerate()
                .filter(|(i, (before, _, _))| {
                    *before <= received
                        && !applied[i + 1..].iter().any(|(_, after, _)| *after <= sent)
                })
                .map(|(_, (_, _, o))| *o)
                .collect();
            assert!(
                possible.contains(&body.as_str()),
                "response {body:?} at {sent:?}..{received:?} matches no policy in force"
            );
        }
    }
    println!(
        "{total} requests across {RELOADS} reloads ({} applied), none failed",
        applied.len() - 1
    );
    assert!(
        total > RELOADS,
        "the load was too light to mean anything: {total} requests"
    );
    let c = config_of(&proxy).await;
    assert!(
        c["generation"].as_u64().unwrap() > RELOADS as u64 / 2,
        "{c}"
    );
}

/// Upstream connection pools belong to the server, not to a policy generation: a kept-alive
/// upstream connection keeps serving after a reload that leaves the upstream as it was.
#[tokio::test(flavor = "multi_thread")]
async fn upstream_connections_survive_a_reload() {
    let origin = Origin::start();
    let proxy = BinaryProxy::spawn(|d, m| conf(d, m, &origin, "before"));
    let (d, m) = ports(&proxy);
    let http = client();
    for _ in 0..3 {
        let resp = http.get(root(&proxy)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    std::fs::write(proxy.config_path(), conf(d, m, &origin, "after")).unwrap();
    let resp = proxy.post_reload().await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        config_of(&proxy).await["policy"]["routes"]["routes"][0]["name"],
        "after"
    );
    let resp = http.get(root(&proxy)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();

    let seen = origin.requests();
    assert_eq!(seen.len(), 4);
    let last = seen[3].peer;
    assert!(
        seen[..3].iter().any(|r| r.peer == last),
        "the request after the reload opened a new upstream connection: {:?}",
        seen.iter().map(|r| r.peer).collect::<Vec<_>>()
    );
}
