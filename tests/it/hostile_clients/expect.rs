//! `Expect: 100-continue` misuse.

use crate::hostile_clients::raw_backend::{framing_problem, lossy, Backend, Seen};
use crate::hostile_clients::raw_client::{
    fresh_request_is_served, in_, one_shot, parse_all, parse_response, secs, Client, Parsed,
};
use crate::hostile_clients::smuggling::PROBE;
use crate::support::Proxy;

// ======================================================================================
// Expect: 100-continue
// ======================================================================================

#[tokio::test]
async fn expect_100_continue_misuse_gets_one_final_response_per_request() {
    let backend = Backend::start();
    let proxy = Proxy::start(&backend.upstream_toml());
    let mut problems = Vec::new();

    // 1. Expect on a request without a body: one final response, and the connection goes on.
    let mark = backend.mark();
    let mut c = Client::connect(proxy.addr).await;
    c.send(b"GET /no-body HTTP/1.1\r\nHost: e.test\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    match c.response(secs(5)).await {
        Ok(r) if r.status == 200 && r.body == b"ok" => {}
        other => problems.push(format!("Expect without body: {other:?}")),
    }
    c.send(PROBE).await.unwrap();
    match c.until_closed(secs(5)).await {
        Ok(bytes) => {
            let (rs, rest) = parse_all(&bytes);
            if rs.len() != 1 || rs[0].status != 200 || !rs[0].interim.is_empty() || !rest.is_empty()
            {
                problems.push(format!(
                    "Expect without body: the next request on the connection got {rs:?} {:?} \
                     (a late 100 Continue or a second response?)",
                    lossy(&rest)
                ));
            }
        }
        Err(b) => problems.push(format!("Expect without body: probe hung: {:?}", lossy(&b))),
    }
    let seen = backend.since(mark);
    if seen.len() != 2 {
        problems.push(format!(
            "Expect without body: the backend saw {:?}",
            seen.iter().map(Seen::describe).collect::<Vec<_>>()
        ));
    }

    // 2. Expect, and the body sent at once without waiting for 100 Continue.
    let mark = backend.mark();
    let mut c = Client::connect(proxy.addr).await;
    c.send(
        b"POST /eager HTTP/1.1\r\nHost: e.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await
    .unwrap();
    match c.response(secs(5)).await {
        Ok(r) if r.status == 200 && r.body == b"ok" && r.interim.iter().all(|s| *s == 100) => {}
        other => problems.push(format!("Expect with an eager body: {other:?}")),
    }
    c.send(PROBE).await.unwrap();
    match c.until_closed(secs(5)).await {
        Ok(bytes) => {
            let (rs, rest) = parse_all(&bytes);
            if rs.len() > 1 || rs.iter().any(|r| r.status != 200 || !r.interim.is_empty()) {
                problems.push(format!(
                    "Expect with an eager body: after the response came {rs:?} {:?}",
                    lossy(&rest)
                ));
            }
        }
        Err(b) => problems.push(format!(
            "Expect with an eager body: probe hung: {:?}",
            lossy(&b)
        )),
    }
    match backend.seen_path(mark, "/eager") {
        Some(s) if s.complete && s.body == b"hello" && framing_problem(&s).is_none() => {}
        other => problems.push(format!(
            "Expect with an eager body: the backend saw {other:?}"
        )),
    }
    if backend.since(mark).len() > 2 {
        problems.push("Expect with an eager body: extra requests upstream".into());
    }

    // 3. Expect honoured: the client waits for 100 Continue before sending the body.
    let mark = backend.mark();
    let mut c = Client::connect(proxy.addr).await;
    c.send(b"POST /patient HTTP/1.1\r\nHost: e.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let deadline = in_(secs(5));
    let mut got_continue = false;
    while !got_continue {
        match parse_response(&c.buf, false) {
            Parsed::Done(r, used) if r.status == 100 => {
                c.buf.drain(..used);
                got_continue = true;
            }
            Parsed::Done(r, _) => {
                problems.push(format!(
                    "Expect honoured: a final {} came before the body was sent",
                    r.status
                ));
                break;
            }
            _ => {
                if let Err(end) = c.fill(deadline).await {
                    problems.push(format!(
                        "Expect honoured: no 100 Continue reached the client within 5 s \
                         ({end:?}): a client that waits for it stalls"
                    ));
                    break;
                }
            }
        }
    }
    if got_continue {
        c.send(b"hello").await.unwrap();
        match c.response(secs(5)).await {
            Ok(r) if r.status == 200 => {}
            other => problems.push(format!("Expect honoured: final response {other:?}")),
        }
        match backend.seen_path(mark, "/patient") {
            Some(s) if s.complete && s.body == b"hello" => {}
            other => problems.push(format!("Expect honoured: the backend saw {other:?}")),
        }
    }

    // 4. An unknown expectation: 417, or forwarded once (and never a 100 for it).
    for value in ["200-ok", "100-continue-please"] {
        let mark = backend.mark();
        let req = format!(
            "POST /unknown HTTP/1.1\r\nHost: e.test\r\nExpect: {value}\r\nContent-Length: 5\r\n\
             Connection: close\r\n\r\nhello"
        );
        match one_shot(proxy.addr, req.as_bytes()).await {
            Ok(r) if r.status == 417 => {
                if backend.seen_path(mark, "/unknown").is_some() {
                    problems.push(format!("Expect: {value}: 417 but forwarded"));
                }
            }
            Ok(r) if r.status == 200 => {
                if !r.interim.is_empty() {
                    problems.push(format!("Expect: {value}: interim {:?} sent", r.interim));
                }
                let seen: Vec<Seen> = backend.since(mark);
                if seen.len() != 1 || seen[0].body != b"hello" || !seen[0].complete {
                    problems.push(format!(
                        "Expect: {value}: the backend saw {:?}",
                        seen.iter().map(Seen::describe).collect::<Vec<_>>()
                    ));
                }
            }
            other => problems.push(format!("Expect: {value}: {other:?}")),
        }
    }

    // 5. HTTP/1.0 with Expect: a 1.0 client must not get a 1xx (RFC 9110 §15.2).
    let mark = backend.mark();
    match one_shot(
        proxy.addr,
        b"POST /old HTTP/1.0\r\nHost: e.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await
    {
        Ok(r) if r.status == 200 && r.interim.is_empty() => {}
        Ok(r) if (400..500).contains(&r.status) && backend.seen_path(mark, "/old").is_none() => {}
        other => problems.push(format!(
            "HTTP/1.0 with Expect: {other:?} (a 1xx must not be sent to an HTTP/1.0 client)"
        )),
    }

    if let Err(e) = fresh_request_is_served(proxy.addr, &backend).await {
        problems.push(e);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
