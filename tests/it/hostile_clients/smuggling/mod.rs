//! Request smuggling and malformed framing: the case harness; the cases are in the submodules.

use std::net::SocketAddr;

use crate::hostile_clients::raw_backend::{find, framing_problem, lossy, Backend, Seen};
use crate::hostile_clients::raw_client::{
    fresh_request_is_served, parse_all, secs, Client, End, Resp,
};
use crate::support::Proxy;

mod framing;
mod h2c;
mod head;
mod local_answers;

// ======================================================================================
// Request smuggling and malformed framing
// ======================================================================================

/// What a case must end in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Want {
    /// A 4xx (or a close) and nothing complete upstream: the RFC leaves no other choice.
    Reject,
    /// Forwarded (200 from the backend): the request is valid.
    Forward,
    /// Either, as long as the invariant holds.
    Either,
    /// Answered by the proxy itself (a cache hit, no route): nothing complete upstream.
    Local,
}

pub(crate) struct Case {
    name: String,
    request: Vec<u8>,
    want: Want,
    /// The bodies the backend may receive if it is forwarded (one per reading of the framing).
    bodies: Vec<Vec<u8>>,
}

pub(crate) fn case(name: &str, want: Want, request: impl AsRef<[u8]>, bodies: &[&[u8]]) -> Case {
    Case {
        name: name.to_string(),
        request: request.as_ref().to_vec(),
        want,
        bodies: bodies.iter().map(|b| b.to_vec()).collect(),
    }
}

/// A request the smuggling cases hide in bodies; the backend must never see its path.
pub(crate) const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: smuggle.test\r\n\r\n";
/// Sent on the same connection after the case's response.
pub(crate) const PROBE: &[u8] =
    b"GET /probe HTTP/1.1\r\nHost: smuggle.test\r\nConnection: close\r\n\r\n";

/// `POST /target` with `fields` (each line ending in CRLF) and `body`.
pub(crate) fn post(fields: &str, body: &str) -> String {
    format!("POST /target HTTP/1.1\r\nHost: smuggle.test\r\n{fields}\r\n{body}")
}

/// The host every case's request names, replaced per case by [`case_host`].
const CASE_HOST: &[u8] = b"smuggle.test";

/// The host that marks case `index`'s requests: as long as [`CASE_HOST`], so replacing it
/// changes no length the case declares.
pub(crate) fn case_host(index: usize) -> String {
    let host = format!("case{:03}.test", index % 1000);
    debug_assert_eq!(host.len(), CASE_HOST.len());
    host
}

/// A host that marks another case's request. The backend's single-threaded runtime may read
/// a head the proxy sent for an earlier case (an aborted upload) only after this case has
/// begun, when the machine is loaded: that request belongs to its own case, not this one.
pub(crate) fn is_other_case(seen: &Seen, own: &str) -> bool {
    seen.values("host").iter().any(|h| {
        h != own
            && h.len() == CASE_HOST.len()
            && h.starts_with("case")
            && h.ends_with(".test")
            && h[4..7].bytes().all(|b| b.is_ascii_digit())
    })
}

/// `request` with every [`CASE_HOST`] (heads, and requests hidden in bodies) made `host`.
fn tagged(request: &[u8], host: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(request.len());
    let mut rest = request;
    while let Some(at) = find(rest, CASE_HOST) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(host.as_bytes());
        rest = &rest[at + CASE_HOST.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Runs one case and returns what was observed (for the log) and every broken invariant.
async fn run_case(
    proxy: SocketAddr,
    backend: &Backend,
    case: &Case,
    index: usize,
) -> (String, Vec<String>) {
    let mark = backend.mark();
    let host = case_host(index);
    let mut problems = Vec::new();
    let mut c = Client::connect(proxy).await;
    // The proxy may answer and close before reading everything: a failed write is fine.
    let _ = c.send(&tagged(&case.request, &host)).await;
    let first = c.response(secs(5)).await;
    let mut after: Vec<Resp> = Vec::new();
    let status = match &first {
        Ok(r) => {
            // The probe: the connection must serve it as exactly one response, or be closed.
            let _ = c.send(PROBE).await;
            match c.until_closed(secs(5)).await {
                Ok(bytes) => {
                    let (responses, rest) = parse_all(&bytes);
                    after = responses;
                    if !rest.is_empty() {
                        problems.push(format!(
                            "after the response, unparseable bytes followed: {:?}",
                            lossy(&rest)
                        ));
                    }
                }
                Err(bytes) => problems.push(format!(
                    "the connection neither closed nor finished the `Connection: close` probe \
                     within 5 s (hang); got {:?}",
                    lossy(&bytes)
                )),
            }
            Some(r.status)
        }
        Err((End::Eof | End::Broken(_), bytes)) if bytes.is_empty() => None,
        Err((end, bytes)) => {
            problems.push(format!(
                "no complete response and no clean close ({end:?}); got {:?}",
                lossy(bytes)
            ));
            None
        }
    };
    if let Err(e) = fresh_request_is_served(proxy, backend).await {
        problems.push(e);
    }
    let seen: Vec<Seen> = backend
        .since(mark)
        .into_iter()
        .filter(|s| s.path() != "/fresh")
        .collect();
    let (probes, reqs): (Vec<Seen>, Vec<Seen>) = seen
        .iter()
        .filter(|s| !is_other_case(s, &host))
        .cloned()
        .partition(|s| s.path() == "/probe");
    let complete: Vec<&Seen> = reqs.iter().filter(|s| s.complete).collect();
    for s in &seen {
        if s.request_line().contains("smuggled") {
            problems.push(format!(
                "SMUGGLED: the backend received a request cut out of the body: {}",
                s.describe()
            ));
        }
    }
    if reqs.len() > 1 {
        let all: Vec<String> = reqs.iter().map(Seen::describe).collect();
        problems.push(format!(
            "the backend saw {} requests for one client request: {}",
            reqs.len(),
            all.join(" | ")
        ));
    }
    match status {
        Some(s) if (200..300).contains(&s) => {
            if case.want == Want::Reject {
                problems.push(format!(
                    "forwarded ({s}) although the framing is invalid and must be refused"
                ));
            }
            match complete.as_slice() {
                [] if case.want == Want::Local => {}
                [one] if case.want == Want::Local => problems.push(format!(
                    "answered by the proxy, yet the backend got {}",
                    one.describe()
                )),
                [one] => {
                    if let Some(p) = framing_problem(one) {
                        problems.push(format!("forwarded ambiguously: {p}: {}", one.describe()));
                    }
                    let readings: Vec<Vec<u8>> =
                        case.bodies.iter().map(|b| tagged(b, &host)).collect();
                    if case.want != Want::Reject && !readings.contains(&one.body) {
                        problems.push(format!(
                            "forwarded body {:?} is none of the readings {:?}",
                            lossy(&one.body),
                            readings.iter().map(|b| lossy(b)).collect::<Vec<_>>()
                        ));
                    }
                }
                _ => problems.push(format!(
                    "answered {s} but the backend saw {} complete requests",
                    complete.len()
                )),
            }
        }
        Some(s) if (400..500).contains(&s) || s == 501 => {
            if case.want == Want::Forward {
                problems.push(format!("refused ({s}) a valid request"));
            }
            if let Some(one) = complete.first() {
                problems.push(format!(
                    "answered {s} but the backend got a complete request: {}",
                    one.describe()
                ));
            }
            // A message whose framing could not be trusted leaves the connection unusable
            // (RFC 9112 §6.3): it must close. Other refusals may keep it if the body was read.
            if !after.is_empty() && (s == 400 || s == 501) {
                problems.push(format!(
                    "after refusing with {s}, the connection served {} more response(s) \
                     instead of closing",
                    after.len()
                ));
            }
        }
        Some(s) => problems.push(format!("unexpected status {s}")),
        None => {
            if case.want == Want::Forward {
                problems.push("closed without an answer on a valid request".into());
            }
            if let Some(one) = complete.first() {
                problems.push(format!(
                    "closed without an answer but the backend got a complete request: {}",
                    one.describe()
                ));
            }
        }
    }
    if after.len() > 1 {
        problems.push(format!(
            "{} responses followed the first on one connection (a smuggled response)",
            after.len()
        ));
    }
    if let Some(r) = after.first() {
        if r.status != 200 || r.body != b"ok" || probes.len() != 1 {
            problems.push(format!(
                "the probe on the same connection got {} {:?} while the backend saw {} probe(s)",
                r.status,
                lossy(&r.body),
                probes.len()
            ));
        }
    } else if !probes.is_empty() {
        problems.push("the probe reached the backend but its response never came".into());
    }
    let pending = backend.pending();
    if pending > 0 {
        problems.push(format!(
            "the backend holds {pending} bytes that are no complete request (a smuggled prefix?)"
        ));
    }
    for issue in backend.issues_since(mark) {
        problems.push(format!("the backend's strict parser: {issue}"));
    }
    let upstream = if reqs.is_empty() {
        "nothing".to_string()
    } else {
        reqs.iter()
            .map(Seen::describe)
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let observed = format!(
        "{} -> {}; upstream: {upstream}; then {}",
        case.name,
        status.map_or("closed without answer".to_string(), |s| s.to_string()),
        if after.is_empty() {
            "closed"
        } else {
            "kept alive"
        }
    );
    let problems = problems
        .into_iter()
        .map(|p| format!("[{}] {p}", case.name))
        .collect();
    (observed, problems)
}

/// Runs every case against one proxy and one backend; fails listing every broken invariant.
pub(crate) async fn run_cases(cases: Vec<Case>) {
    run_cases_with("", cases).await
}

/// [`run_cases`] with `extra` config after the backend's upstream table.
pub(crate) async fn run_cases_with(extra: &str, cases: Vec<Case>) {
    let backend = Backend::start();
    let proxy = Proxy::start(&format!("{}{extra}", backend.upstream_toml()));
    let mut problems = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let (observed, mut found) = run_case(proxy.addr, &backend, case, index).await;
        eprintln!("observed: {observed}");
        problems.append(&mut found);
    }
    assert!(
        problems.is_empty(),
        "{} broken invariant(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// A chunked encoding of `data` in one chunk, then the last chunk.
pub(crate) fn chunked(data: &str) -> String {
    format!("{:x}\r\n{data}\r\n0\r\n\r\n", data.len())
}
