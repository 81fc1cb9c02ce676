//! HTTP/1.1 pipelining (RFC 9112 §9.3.2): requests sent back to back on one connection are
//! all answered, in order, on both legs (GETs take the buffered leg with ETag generation on,
//! Pingora's with it off).

use crate::support;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::{Origin, Proxy};

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_requests_are_all_answered_in_order() {
    for etag in [true, false] {
        let origin = Origin::start();
        let proxy = Proxy::start(&format!(
            "{}[defaults.etag]\ngenerate = {etag}\n",
            origin.upstream_toml("app")
        ));
        let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        let mut requests = String::new();
        for n in 1..=4 {
            let close = if n == 4 { "Connection: close\r\n" } else { "" };
            // The second one carries a body, so the next head follows body bytes.
            let (method, body) = if n == 2 {
                ("POST", "Content-Length: 5\r\n\r\nhello")
            } else {
                ("GET", "\r\n")
            };
            requests.push_str(&format!(
                "{method} /p{n}?h=x-n:{n} HTTP/1.1\r\nHost: h\r\n{close}{body}"
            ));
        }
        stream.write_all(requests.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
            .await
            .expect("the proxy closes after the last request")
            .unwrap();
        let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
        let order: Vec<&str> = text
            .split("\r\n")
            .filter_map(|line| line.strip_prefix("x-n: "))
            .collect();
        assert_eq!(order, ["1", "2", "3", "4"], "etag={etag}:\n{text}");
        assert_eq!(text.matches("http/1.1 200").count(), 4, "etag={etag}");
    }
}
