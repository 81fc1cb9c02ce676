//! Hop-by-hop hygiene (issue 22): an `Upgrade` that `Connection` does not name is not
//! forwarded; `Content-Length` with `Transfer-Encoding` is refused with 400 and the connection
//! closed (the cases with a smuggled body are in `hostile_clients::smuggling::framing`).

use crate::support;

use support::raw::raw_exchange;
use support::{Origin, Proxy};

#[tokio::test]
async fn an_upgrade_not_named_by_connection_is_not_forwarded() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let (status, _, _) = raw_exchange(
        proxy.addr,
        "GET /plain HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    let seen = origin.requests();
    assert_eq!(seen.len(), 1);
    assert!(
        !seen[0].headers.contains_key("upgrade"),
        "forwarded: {:?}",
        seen[0].headers
    );
}

#[tokio::test]
async fn content_length_with_transfer_encoding_gets_400_and_a_close() {
    let origin = Origin::start();
    let proxy = Proxy::start(&origin.upstream_toml("app"));
    let (status, headers, _) = raw_exchange(
        proxy.addr,
        "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close")),
        "{headers:?}"
    );
    assert_eq!(origin.request_count(), 0, "nothing went upstream");
}
