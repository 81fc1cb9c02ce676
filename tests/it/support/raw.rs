//! Raw HTTP/1 over a TCP socket, for what a client library would not send or would hide:
//! malformed requests, HTTP/1.0, exact framing of the reply.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response head: status and headers (names lowercased, values trimmed).
pub type Head = (u16, Vec<(String, String)>);

/// Writes `request` verbatim (it must ask for `Connection: close`) and reads the whole reply:
/// status, headers and every byte after the header block.
pub async fn raw_exchange(
    addr: SocketAddr,
    request: &str,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf))
        .await
        .expect("the proxy did not close the connection")
        .unwrap();
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no complete response head");
    let (status, headers) = parse_head(&buf[..end]);
    (status, headers, buf[end + 4..].to_vec())
}

/// Reads one response head byte by byte, so nothing of the body is consumed.
pub async fn read_head(stream: &mut tokio::net::TcpStream) -> Head {
    let mut buf = Vec::new();
    while !buf.ends_with(b"\r\n\r\n") {
        let b = tokio::time::timeout(Duration::from_secs(10), stream.read_u8())
            .await
            .expect("no response head")
            .expect("connection closed");
        buf.push(b);
    }
    parse_head(&buf)
}

/// Parses a status line and header lines (a trailing blank line is ignored).
pub fn parse_head(head: &[u8]) -> Head {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

pub fn raw_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}
