//! The access log (the real binary's stdout).

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use serde_json::Value;

use crate::metrics::exposition::{inflight_settled, scrape_when};
use crate::metrics::requests::{expect_status, route};
use crate::support::{free_port, BinaryProxy, Origin};

// ---------------------------------------------------------------------------------------------
// The access log (the real binary's stdout).
// ---------------------------------------------------------------------------------------------

fn access_log_conf(origin: &Origin, dead: u16, format: &str, data: u16, admin: u16) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{data}\"\nthreads = 2\ngrace_period = \"1s\"\n\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
         [log]\nlevel = \"warn\"\nformat = \"{format}\"\naccess_log = true\n\n\
         {}[upstreams.dead]\nendpoints = [\"127.0.0.1:{dead}\"]\n\n{}{}",
        origin.upstream_toml("app"),
        route("api", "app", "/api/"),
        route("gone", "dead", "/gone/")
    )
}

/// The requests of the access-log tests: (method, path, status, route, upstream).
const LOGGED: [(&str, &str, u16, &str, &str); 5] = [
    ("GET", "/api/a?size=100", 200, "api", "app"),
    ("GET", "/api/b?status=404", 404, "api", "app"),
    ("POST", "/api/c", 200, "api", "app"),
    ("GET", "/unrouted", 404, "-", "-"),
    ("GET", "/gone/x", 502, "gone", "dead"),
];

/// Runs the binary with the access log on, sends [`LOGGED`], stops it with SIGTERM and returns
/// everything it wrote to stdout.
async fn access_log_of(format: &str) -> String {
    let origin = Origin::start();
    let dead = free_port();
    let mut proxy = BinaryProxy::spawn(|d, a| access_log_conf(&origin, dead, format, d, a));
    let mut stdout = proxy.child.stdout.take().expect("piped stdout");
    // Drain stdout concurrently so a full pipe can never stall the proxy.
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    for (method, path, status, _, _) in LOGGED {
        expect_status(method, format!("http://{}{path}", proxy.addr), status).await;
    }
    // The routed requests are counted once their logging hook ran.
    scrape_when(proxy.admin, "4 routed requests counted", |e| {
        e.total("outrider_requests_total") == 4.0 && inflight_settled(e)
    })
    .await;
    proxy.signal("TERM");
    proxy.wait_exit(Duration::from_secs(10));
    reader.join().expect("stdout reader")
}

#[tokio::test(flavor = "multi_thread")]
async fn json_access_log_has_one_line_per_request() {
    let out = access_log_of("json").await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), LOGGED.len(), "{out}");
    // Each request's line, found by its path: a line is written when its request ends, and
    // under load the next request on the connection can end first.
    let parsed: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for (method, path, status, route, upstream) in LOGGED {
        let bare = path.split('?').next().unwrap();
        let (line, v) = lines
            .iter()
            .zip(&parsed)
            .find(|(_, v)| v["path"] == bare)
            .unwrap_or_else(|| panic!("no line for {path}: {out}"));
        assert_eq!(v["method"], method, "{line}");
        assert_eq!(v["path"], path.split('?').next().unwrap(), "{line}");
        assert_eq!(v["route"], route, "{line}");
        assert_eq!(v["upstream"], upstream, "{line}");
        assert_eq!(v["status"], status, "{line}");
        let duration = v["duration_ms"].as_f64().expect("duration_ms is a number");
        assert!((0.0..10_000.0).contains(&duration), "{line}");
        assert!(v["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");
        assert!(v["bytes_sent"].as_u64().is_some(), "{line}");
        match (route, status) {
            ("-", _) => {
                assert_eq!(v["endpoint"], "-", "{line}");
                assert!(v["upstream_ms"].is_null(), "{line}");
                assert_eq!(v["error"], "-", "{line}");
            }
            (_, 502) => {
                assert_eq!(v["error"], "connect_error", "{line}");
                assert!(
                    v["upstream_ms"].is_null(),
                    "no response header came: {line}"
                );
            }
            _ => {
                assert_eq!(v["error"], "-", "{line}");
                let up = v["upstream_ms"].as_f64().expect("upstream_ms");
                assert!(up >= 0.0 && up <= duration, "{line}");
            }
        }
    }
    let first = parsed
        .iter()
        .find(|v| v["path"] == "/api/a")
        .expect("the first request's line");
    assert!(first["bytes_sent"].as_u64().unwrap() >= 100, "{first}");
}

/// Splits a logfmt line into key → value (values may be double-quoted with escapes).
fn logfmt(line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .unwrap_or_else(|| panic!("no '=' in {rest:?}"));
        let key = &rest[..eq];
        assert!(
            !key.is_empty() && !key.contains(' '),
            "bad key {key:?} in {line}"
        );
        rest = &rest[eq + 1..];
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => v.push(chars.next().expect("escape").1),
                    Some((_, c)) => v.push(c),
                    None => panic!("unterminated quote in {line}"),
                }
            };
            value = v;
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            value = rest[..end].to_string();
            rest = &rest[end..];
        }
        assert!(
            out.insert(key.to_string(), value).is_none(),
            "{key} twice in {line}"
        );
        rest = rest.trim_start();
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn text_access_log_is_logfmt() {
    let out = access_log_of("text").await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), LOGGED.len(), "{out}");
    for (method, path, status, route, upstream) in LOGGED {
        // Found by path, as in the JSON test: lines come in the order requests end.
        let bare = path.split('?').next().unwrap();
        let (line, kv) = lines
            .iter()
            .map(|line| (line, logfmt(line)))
            .find(|(_, kv)| kv["path"] == bare)
            .unwrap_or_else(|| panic!("no line for {path}: {out}"));
        assert_eq!(kv["method"], method, "{line}");
        assert_eq!(kv["path"], path.split('?').next().unwrap(), "{line}");
        assert_eq!(kv["route"], route, "{line}");
        assert_eq!(kv["upstream"], upstream, "{line}");
        assert_eq!(kv["status"], status.to_string(), "{line}");
        let duration: f64 = kv["duration_ms"].parse().expect("duration_ms");
        assert!((0.0..10_000.0).contains(&duration), "{line}");
        for key in ["ts", "endpoint", "upstream_ms", "bytes_sent", "error"] {
            assert!(kv.contains_key(key), "{key} missing: {line}");
        }
    }
}
