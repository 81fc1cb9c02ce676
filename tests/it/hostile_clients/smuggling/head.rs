//! Smuggling through the request head: control bytes and folding, absolute-form targets.

use crate::hostile_clients::raw_backend::{framing_problem, Backend, Mark, Seen};
use crate::hostile_clients::raw_client::{eventually, one_shot, secs};
use crate::hostile_clients::smuggling::{case, chunked, post, run_cases, Want};
use crate::support::Proxy;

#[tokio::test]
async fn control_characters_and_folding_in_the_head_are_refused_or_cleaned() {
    let get = |fields: &str| format!("GET /target HTTP/1.1\r\nHost: smuggle.test\r\n{fields}\r\n");
    run_cases(vec![
        case(
            "NUL in a header value",
            Want::Either,
            get("X-A: a\0b\r\n"),
            &[b""],
        ),
        case(
            "bare CR in a header value",
            Want::Either,
            get("X-A: a\rb\r\n"),
            &[b""],
        ),
        case(
            "bare CR hiding a Transfer-Encoding",
            Want::Either,
            post(
                &format!(
                    "X-A: a\rTransfer-Encoding: chunked\r\nContent-Length: {}\r\n",
                    chunked("hello").len()
                ),
                &chunked("hello"),
            ),
            &[chunked("hello").as_bytes()],
        ),
        case(
            "DEL in a header value",
            Want::Either,
            get("X-A: a\x7fb\r\n"),
            &[b""],
        ),
        case(
            "obs-fold continuation line",
            Want::Either,
            get("X-A: first\r\n  second\r\n"),
            &[b""],
        ),
        case(
            "obs-fold as the first header line",
            Want::Either,
            "GET /target HTTP/1.1\r\n X-A: b\r\nHost: smuggle.test\r\n\r\n",
            &[b""],
        ),
        case(
            "NUL in a header name",
            Want::Reject,
            get("X\0A: b\r\n"),
            &[],
        ),
        case(
            "space inside a header name",
            Want::Reject,
            get("X A: b\r\n"),
            &[],
        ),
        case(
            "header line without colon",
            Want::Reject,
            get("X-A b\r\n"),
            &[],
        ),
        case(
            "NUL in the request target",
            Want::Either,
            "GET /tar\0get HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
            &[b""],
        ),
        case(
            "space in the request target",
            Want::Either,
            "GET /tar get HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
            &[b""],
        ),
        case(
            "a second request line inside the target",
            Want::Either,
            "GET /a HTTP/1.1\rGET /smuggled HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
            &[b""],
        ),
    ])
    .await;
}

#[tokio::test]
async fn absolute_form_targets_route_and_forward_one_consistent_host() {
    // Routes by host to `a` and `b`; anything else goes to the default upstream `d`.
    let (a, b, d) = (Backend::start(), Backend::start(), Backend::start());
    let proxy = Proxy::start(&format!(
        "[upstreams.a]\nendpoints = [\"{}\"]\n\n[upstreams.b]\nendpoints = [\"{}\"]\n\n\
         [upstreams.d]\nendpoints = [\"{}\"]\n\n[defaults]\nupstream = \"d\"\n\n\
         [[routes]]\nname = \"a\"\nupstream = \"a\"\nmatch = {{ host = \"a.test\" }}\n\n\
         [[routes]]\nname = \"b\"\nupstream = \"b\"\nmatch = {{ host = \"b.test\" }}\n",
        a.addr, b.addr, d.addr
    ));
    // (case, request, the Host `a` must see if it is forwarded; None = must be refused). The
    // target's authority is a.test in every case, so if forwarded it must go to `a`
    // (RFC 9112 §3.2.2: the authority of an absolute-form target replaces Host).
    let cases: Vec<(&str, &str, Option<&str>)> = vec![
        (
            "authority a, Host b",
            "GET http://a.test/abs HTTP/1.1\r\nHost: b.test\r\n\r\n",
            Some("a.test"),
        ),
        (
            "POST authority a, Host b",
            "POST http://a.test/abs HTTP/1.1\r\nHost: b.test\r\nContent-Length: 5\r\n\r\nhello",
            Some("a.test"),
        ),
        (
            "authority a, no Host",
            "GET http://a.test/abs HTTP/1.1\r\n\r\n",
            Some("a.test"),
        ),
        (
            "POST authority a, no Host",
            "POST http://a.test/abs HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            Some("a.test"),
        ),
        (
            "authority a, Host a",
            "GET http://a.test/abs HTTP/1.1\r\nHost: a.test\r\n\r\n",
            Some("a.test"),
        ),
        (
            "authority a:8080, Host a:8080",
            "GET http://a.test:8080/abs HTTP/1.1\r\nHost: a.test:8080\r\n\r\n",
            Some("a.test:8080"),
        ),
        (
            "authority A.TEST, Host a.test",
            "GET http://A.TEST/abs HTTP/1.1\r\nHost: a.test\r\n\r\n",
            Some("a.test"),
        ),
        (
            "userinfo b.test@a.test",
            "GET http://b.test@a.test/abs HTTP/1.1\r\nHost: a.test\r\n\r\n",
            None,
        ),
        (
            "Host with userinfo",
            "GET /abs HTTP/1.1\r\nHost: b.test@a.test\r\n\r\n",
            None,
        ),
        (
            "two Host fields",
            "GET /abs HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
            None,
        ),
    ];
    let backends = [(&a, "a.test"), (&b, "b.test"), (&d, "d.test")];
    let mut problems = Vec::new();
    for (name, request, expect) in cases {
        let marks: Vec<Mark> = backends.iter().map(|(x, _)| x.mark()).collect();
        let outcome = one_shot(proxy.addr, request.as_bytes()).await;
        // A normal request to each backend, so every byte of the case has reached them.
        for (backend, host) in backends {
            let m = backend.mark();
            let fresh = format!("GET /fresh HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            match one_shot(proxy.addr, fresh.as_bytes()).await {
                Ok(r) if r.status == 200 => {
                    eventually("the fresh request upstream", secs(5), || {
                        backend.seen_path(m, "/fresh").is_some()
                    })
                    .await
                }
                other => problems.push(format!(
                    "[{name}] a normal request to {host} failed: {other:?}"
                )),
            }
        }
        let seen: Vec<Vec<Seen>> = backends
            .iter()
            .zip(&marks)
            .map(|((x, _), m)| {
                x.since(*m)
                    .into_iter()
                    .filter(|s| s.path() != "/fresh")
                    .collect()
            })
            .collect();
        let status = outcome.as_ref().map(|r| r.status).ok();
        eprintln!(
            "observed: {name} -> {status:?}; a: {:?}; b: {:?}; d: {:?}",
            seen[0].iter().map(Seen::describe).collect::<Vec<_>>(),
            seen[1].iter().map(Seen::describe).collect::<Vec<_>>(),
            seen[2].iter().map(Seen::describe).collect::<Vec<_>>()
        );
        let forwarded: usize = seen.iter().map(Vec::len).sum();
        match status {
            Some(200) => {
                let Some(want) = expect else {
                    problems.push(format!("[{name}] forwarded a request that must be refused"));
                    continue;
                };
                if forwarded != 1 {
                    problems.push(format!("[{name}] 200 but {forwarded} requests upstream"));
                }
                for (i, label) in [(1, "b"), (2, "d (the default)")] {
                    if !seen[i].is_empty() {
                        problems.push(format!(
                            "[{name}] routed to `{label}` although the target's authority is \
                             a.test: the route was chosen on something other than the \
                             authority the request names (upstream saw {:?})",
                            seen[i].iter().map(Seen::describe).collect::<Vec<_>>()
                        ));
                    }
                }
                for s in seen.iter().flatten() {
                    let hosts = s.values("host");
                    if hosts.len() != 1 || !hosts[0].eq_ignore_ascii_case(want) {
                        problems.push(format!(
                            "[{name}] the upstream saw Host {hosts:?}, not {want:?}: it would act \
                             on another host than the target names"
                        ));
                    }
                    if let Some(p) = framing_problem(s) {
                        problems.push(format!("[{name}] {p}"));
                    }
                }
            }
            Some(s) if (400..500).contains(&s) => {
                if seen.iter().flatten().any(|x| x.complete) {
                    problems.push(format!("[{name}] refused ({s}) but forwarded"));
                }
                if s == 404 {
                    problems.push(format!(
                        "[{name}] 404: no route matched, although route `a` matches the \
                         target's authority (routing ignored it)"
                    ));
                }
                if expect.is_some() && s != 400 && s != 404 {
                    problems.push(format!("[{name}] unexpected refusal {s}"));
                }
            }
            _ => problems.push(format!("[{name}] no sane answer: {outcome:?}")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
