//! Smuggling through HTTP/1.1 framing: `Content-Length` against `Transfer-Encoding`, bare LF, chunk sizes.

use crate::hostile_clients::smuggling::{case, chunked, post, run_cases, Want, SMUGGLED};

#[tokio::test]
/// Issue 22 changed these from "forwarded once with one framing" (Either) to refused: a request
/// with both fields gets 400 and the connection closes, as the strict proxies do.
async fn content_length_with_transfer_encoding_is_refused() {
    let cl_te_body = format!("0\r\n\r\n{SMUGGLED}");
    // TE.CL: a chunk that holds a request; a CL-reading backend would see it as the next one.
    let inner = SMUGGLED.to_string();
    let te_cl_body = format!("{:x}\r\n{inner}\r\n0\r\n\r\n", inner.len());
    run_cases(vec![
        case(
            "CL.TE (Content-Length first, chunked body ends early)",
            Want::Reject,
            post(
                &format!(
                    "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
                    cl_te_body.len()
                ),
                &cl_te_body,
            ),
            &[b"", cl_te_body.as_bytes()],
        ),
        case(
            "TE.CL (Transfer-Encoding first, Content-Length short)",
            Want::Reject,
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
                &te_cl_body,
            ),
            &[inner.as_bytes()],
        ),
        case(
            "TE + Content-Length: 0",
            Want::Reject,
            post(
                "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
                &chunked("hello"),
            ),
            &[b"hello", b""],
        ),
        case(
            "TE chunked then TE xchunked lines, with Content-Length",
            Want::Reject,
            post(
                &format!(
                    "Transfer-Encoding: chunked\r\nTransfer-Encoding: xchunked\r\n\
                     Content-Length: {}\r\n",
                    cl_te_body.len()
                ),
                &cl_te_body,
            ),
            &[],
        ),
        case(
            "Transfer-Encoding on HTTP/1.0 with Content-Length",
            Want::Reject,
            format!(
                "POST /target HTTP/1.0\r\nHost: smuggle.test\r\nContent-Length: {}\r\n\
                 Transfer-Encoding: chunked\r\n\r\n{cl_te_body}",
                cl_te_body.len()
            ),
            &[],
        ),
        case(
            "Transfer-Encoding on HTTP/1.0 without Content-Length",
            Want::Reject,
            format!(
                "POST /target HTTP/1.0\r\nHost: smuggle.test\r\n\
                 Transfer-Encoding: chunked\r\n\r\n{}",
                chunked("hello")
            ),
            &[],
        ),
    ])
    .await;
}

#[tokio::test]
async fn duplicate_and_invalid_content_lengths_are_refused_or_collapsed() {
    let body = format!("hello!{SMUGGLED}");
    let cl_case = |name: &str, want: Want, fields: &str, bodies: &[&[u8]]| {
        case(name, want, post(fields, &body), bodies)
    };
    let all = body.as_bytes();
    run_cases(vec![
        cl_case(
            "Content-Length: 5, 6",
            Want::Reject,
            "Content-Length: 5, 6\r\n",
            &[],
        ),
        cl_case(
            "two Content-Length lines, 5 and 6",
            Want::Reject,
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            &[],
        ),
        cl_case(
            "two Content-Length lines, 6 and 5",
            Want::Reject,
            "Content-Length: 6\r\nContent-Length: 5\r\n",
            &[],
        ),
        case(
            "Content-Length: 5, 5 (identical list)",
            Want::Either,
            post("Content-Length: 5, 5\r\n", "hello"),
            &[b"hello"],
        ),
        case(
            "two identical Content-Length lines",
            Want::Either,
            post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
            &[b"hello"],
        ),
        cl_case(
            "Content-Length: +6",
            Want::Reject,
            "Content-Length: +6\r\n",
            &[],
        ),
        cl_case(
            "Content-Length: -1",
            Want::Reject,
            "Content-Length: -1\r\n",
            &[],
        ),
        cl_case(
            "Content-Length: 0x6",
            Want::Reject,
            "Content-Length: 0x6\r\n",
            &[],
        ),
        cl_case(
            "Content-Length: 6a",
            Want::Reject,
            "Content-Length: 6a\r\n",
            &[],
        ),
        cl_case(
            "Content-Length: 6 6",
            Want::Reject,
            "Content-Length: 6 6\r\n",
            &[],
        ),
        cl_case(
            "empty Content-Length",
            Want::Reject,
            "Content-Length: \r\n",
            &[],
        ),
        cl_case(
            "Content-Length over u64",
            Want::Reject,
            "Content-Length: 18446744073709551616\r\n",
            &[],
        ),
        cl_case(
            "Content-Length with leading zeros (valid)",
            Want::Either,
            &format!("Content-Length: 000{}\r\n", body.len()),
            &[all],
        ),
    ])
    .await;
}

#[tokio::test]
async fn obfuscated_transfer_encodings_never_reach_the_backend_ambiguously() {
    // With a Content-Length covering the chunked body and a request behind it: a reader that
    // ignores the Transfer-Encoding sees one body, a reader that honours it sees two requests.
    let body = format!("{}{SMUGGLED}", chunked("hello"));
    let with_cl = |te_line: &str| {
        post(
            &format!("Content-Length: {}\r\n{te_line}\r\n", body.len()),
            &body,
        )
    };
    let without_cl = |te_line: &str| post(&format!("{te_line}\r\n"), &chunked("hello"));
    let readings: &[&[u8]] = &[b"hello", body.as_bytes()];
    let mut cases = Vec::new();
    for (name, te_line, want) in [
        ("xchunked", "Transfer-Encoding: xchunked", Want::Reject),
        ("chunkedx", "Transfer-Encoding: chunkedx", Want::Reject),
        (
            "chunked, identity",
            "Transfer-Encoding: chunked, identity",
            Want::Reject,
        ),
        (
            "identity, chunked",
            "Transfer-Encoding: identity, chunked",
            Want::Either,
        ),
        (
            "chunked, chunked",
            "Transfer-Encoding: chunked, chunked",
            Want::Either,
        ),
        (
            "quoted \"chunked\"",
            "Transfer-Encoding: \"chunked\"",
            Want::Reject,
        ),
        (
            "extra spaces around chunked",
            "Transfer-Encoding:   chunked  ",
            Want::Forward,
        ),
        (
            "tab before chunked",
            "Transfer-Encoding:\tchunked",
            Want::Forward,
        ),
        (
            "vertical tab before chunked",
            "Transfer-Encoding:\x0bchunked",
            Want::Reject,
        ),
        (
            "form feed before chunked",
            "Transfer-Encoding:\x0cchunked",
            Want::Reject,
        ),
        (
            "uppercase CHUNKED",
            "Transfer-Encoding: CHUNKED",
            Want::Forward,
        ),
        (
            "space before the colon",
            "Transfer-Encoding : chunked",
            Want::Reject,
        ),
        (
            "tab before the colon",
            "Transfer-Encoding\t: chunked",
            Want::Reject,
        ),
        (
            "header line folded onto the previous one",
            "X-Padding: a\r\n Transfer-Encoding: chunked",
            Want::Either,
        ),
        (
            "chunked folded onto the next line",
            "Transfer-Encoding:\r\n chunked",
            Want::Either,
        ),
        (
            "TE lines chunked then identity",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
            Want::Reject,
        ),
        (
            "TE lines identity then chunked",
            "Transfer-Encoding: identity\r\nTransfer-Encoding: chunked",
            Want::Either,
        ),
    ] {
        cases.push(case(
            &format!("{name}, with Content-Length"),
            if want == Want::Forward {
                Want::Either // CL + TE may also be refused outright
            } else {
                want
            },
            with_cl(te_line),
            readings,
        ));
        cases.push(case(
            &format!("{name}, alone"),
            want,
            without_cl(te_line),
            &[b"hello", b""],
        ));
    }
    run_cases(cases).await;
}

#[tokio::test]
async fn bare_lf_line_endings_are_normalised_or_refused() {
    let body = format!("hello{SMUGGLED}");
    let hidden = format!("{}{SMUGGLED}", chunked("hello"));
    run_cases(vec![
        case(
            "a GET with bare LF everywhere",
            Want::Either,
            "GET /target HTTP/1.1\nHost: smuggle.test\n\n",
            &[b""],
        ),
        case(
            "a POST with bare LF everywhere",
            Want::Either,
            format!(
                "POST /target HTTP/1.1\nHost: smuggle.test\nContent-Length: {}\n\n{body}",
                body.len()
            ),
            &[body.as_bytes()],
        ),
        case(
            "head ended by CRLF LF",
            Want::Either,
            format!(
                "POST /target HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: {}\r\n\n{body}",
                body.len()
            ),
            &[body.as_bytes()],
        ),
        case(
            "bare LF between header lines hiding a Transfer-Encoding",
            Want::Either,
            format!(
                "POST /target HTTP/1.1\r\nHost: smuggle.test\r\nX-A: b\nTransfer-Encoding: chunked\r\n\
                 Content-Length: {}\r\n\r\n{hidden}",
                hidden.len()
            ),
            &[b"hello", hidden.as_bytes()],
        ),
        case(
            "chunk size ended by bare LF",
            Want::Either,
            post("Transfer-Encoding: chunked\r\n", "5\nhello\r\n0\r\n\r\n"),
            &[b"hello"],
        ),
        case(
            "chunk data ended by bare LF",
            Want::Either,
            post("Transfer-Encoding: chunked\r\n", "5\r\nhello\n0\r\n\r\n"),
            &[b"hello"],
        ),
        case(
            "last chunk ended by bare LFs",
            Want::Either,
            post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\n\n"),
            &[b"hello"],
        ),
        case(
            "bare LF inside a chunk extension",
            Want::Either,
            post(
                "Transfer-Encoding: chunked\r\n",
                "5;a\nb\r\nhello\r\n0\r\n\r\n",
            ),
            &[b"hello"],
        ),
    ])
    .await;
}

#[tokio::test]
async fn invalid_chunk_sizes_are_refused_and_never_completed_upstream() {
    let with_size = |size: &str| {
        post(
            "Transfer-Encoding: chunked\r\n",
            &format!("{size}\r\nhello\r\n0\r\n\r\n"),
        )
    };
    let mut cases = Vec::new();
    for (name, size) in [
        ("non-hex size zz", "zz"),
        ("negative size", "-5"),
        ("size with 0x prefix", "0x5"),
        ("huge size overflowing u64", "ffffffffffffffffff"),
        ("17 hex digits", "00000000000000005"),
        ("size then junk", "5 junk"),
        ("size with a plus sign", "+5"),
    ] {
        cases.push(case(name, Want::Reject, with_size(size), &[]));
    }
    // httparse (under Pingora's body reader) reads an empty chunk-size line as the last
    // chunk: the request goes up with an empty body, re-chunked by the proxy, and the
    // bytes after it are the client's own next request on its own connection. Not
    // refused, but nothing is smuggled either way, which is what this case holds.
    cases.push(case(
        "empty size (chunk-size is 1*HEXDIG)",
        Want::Either,
        with_size(""),
        &[b""],
    ));
    cases.push(case(
        "chunk longer than its size",
        Want::Reject,
        post("Transfer-Encoding: chunked\r\n", "3\r\nhello\r\n0\r\n\r\n"),
        &[],
    ));
    cases.push(case(
        "chunk extension (valid)",
        Want::Forward,
        with_size("5;name=\"value\""),
        &[b"hello"],
    ));
    cases.push(case(
        "chunk extension with control bytes",
        Want::Either,
        with_size("5;\x01\x7f"),
        &[b"hello"],
    ));
    cases.push(case(
        "leading zeros in size (valid)",
        Want::Forward,
        with_size("0005"),
        &[b"hello"],
    ));
    cases.push(case(
        "uppercase hex size (valid)",
        Want::Forward,
        post(
            "Transfer-Encoding: chunked\r\n",
            "A\r\nhellohello\r\n0\r\n\r\n",
        ),
        &[b"hellohello"],
    ));
    run_cases(cases).await;
}
