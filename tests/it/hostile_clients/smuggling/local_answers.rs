//! Answers the proxy gives itself must not turn an unread body into a request.

use crate::hostile_clients::smuggling::{case, chunked, run_cases_with, Want, SMUGGLED};

/// The proxy answers some requests itself (no route, a cache hit) without needing their body:
/// the unread body must not become the next request on the connection.
#[tokio::test]
async fn answers_given_by_the_proxy_do_not_turn_an_unread_body_into_a_request() {
    let conf = "[[routes]]\nname = \"cached\"\nupstream = \"app\"\n\
                match = { path_prefix = \"/cached\" }\n\
                cache = { enabled = true, default_ttl = \"60s\" }\n\n\
                [[routes]]\nname = \"app\"\nupstream = \"app\"\n\
                match = { path_regex = '^/(target|probe|fresh|smuggled)' }\n";
    let smuggled_chunk = chunked(SMUGGLED);
    let mut cases = vec![
        case(
            "404 (no route) for a POST with a sized body",
            Want::Either,
            format!(
                "POST /nowhere HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: {}\r\n\r\n{SMUGGLED}",
                SMUGGLED.len()
            ),
            &[],
        ),
        case(
            "404 (no route) for a POST with a chunked body",
            Want::Either,
            format!(
                "POST /nowhere HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n\r\n\
                 {smuggled_chunk}"
            ),
            &[],
        ),
        case(
            "404 (no route) for a GET with a sized body",
            Want::Either,
            format!(
                "GET /nowhere HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: {}\r\n\r\n{SMUGGLED}",
                SMUGGLED.len()
            ),
            &[],
        ),
    ];
    // The cache is filled first; a GET with a body then bypasses it (the key does not cover
    // the body) and goes upstream as one request, its body framed as a body.
    cases.push(case(
        "cache fill",
        Want::Forward,
        "GET /cached HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
        &[b""],
    ));
    cases.push(case(
        "a GET with a sized body to a cached route",
        Want::Forward,
        format!(
            "GET /cached HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: {}\r\n\r\n{SMUGGLED}",
            SMUGGLED.len()
        ),
        &[SMUGGLED.as_bytes()],
    ));
    cases.push(case(
        "a GET with a chunked body to a cached route",
        Want::Forward,
        format!(
            "GET /cached HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n\r\n\
             {smuggled_chunk}"
        ),
        &[SMUGGLED.as_bytes()],
    ));
    run_cases_with(conf, cases).await;
}
