//! Proxy header hygiene (RFC 9110 §7.6): forwarding headers on the way up, hop-by-hop fields
//! removed on the way down.
//!
//! Pingora already strips hop-by-hop and `Connection`-nominated fields from the *request*
//! (`HttpUpstreamRequestPolicy::default()`), so only the response direction is done here.

use std::net::IpAddr;

use http::header::{self, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};

use crate::cache::key::UrlParts;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The spellings of the fields every proxied request or response gains, passed to Pingora as
/// static text: given a `HeaderName` it copies the name's spelling into a new allocation on
/// each insert (it keeps static spellings for a dozen standard names only). Lowercase, as they
/// went on the wire before.
pub(crate) const X_FORWARDED_FOR_SPELLING: &str = "x-forwarded-for";
pub(crate) const X_FORWARDED_PROTO_SPELLING: &str = "x-forwarded-proto";
pub(crate) const VIA_SPELLING: &str = "via";
pub(crate) const ACCEPT_ENCODING_SPELLING: &str = "accept-encoding";
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// An absolute-form target (`GET http://a.test/p`, what clients send to a forward proxy)
/// becomes origin-form with `Host` from its authority (RFC 9112 §3.2.2): routing, the cache
/// key and the upstream then all see the one host the target names. Pingora keeps such a
/// target's authority only in the raw bytes, so without this the request would be routed by
/// a missing `Host`. Userinfo in the target is refused (RFC 9110 §4.2.4).
pub(crate) fn absolute_form_to_origin_form(req: &mut RequestHeader) -> pingora::Result<()> {
    let raw = req.raw_path();
    if raw.first() == Some(&b'/') || raw == b"*" {
        return Ok(());
    }
    let Ok(target) = std::str::from_utf8(raw) else {
        return Ok(());
    };
    let Some(parts) = UrlParts::parse(target) else {
        return Ok(());
    };
    if parts.authority.contains('@') {
        return Err(pingora::Error::explain(
            pingora::ErrorType::HTTPStatus(400),
            "userinfo in the request target",
        )
        .into_down());
    }
    let authority = parts.authority.to_owned();
    let mut origin = String::with_capacity(parts.path.len() + 1 + parts.query.map_or(0, str::len));
    origin.push_str(if parts.path.is_empty() {
        "/"
    } else {
        parts.path
    });
    if let Some(query) = parts.query {
        origin.push('?');
        origin.push_str(query);
    }
    req.set_raw_path(origin.as_bytes())?;
    if !authority.is_empty() {
        req.insert_header(header::HOST, authority)?;
    }
    Ok(())
}

/// A request carrying both `Content-Length` and `Transfer-Encoding` is refused (RFC 9112
/// §6.1: "ought to be handled as an error"), as the strict proxies do: whichever framing the
/// proxy chose, a party behind it might read the other, which is how requests are smuggled.
/// Pingora's HTTP/1 parser has already removed `Content-Length` from such a request (keeping
/// the chunked framing), so the head as received (`raw_head`) is what tells.
pub(crate) fn has_conflicting_framing(
    req: &RequestHeader,
    raw_head: impl FnOnce() -> Option<bytes::Bytes>,
) -> bool {
    if !req.headers.contains_key(header::TRANSFER_ENCODING) {
        return false;
    }
    if req.headers.contains_key(header::CONTENT_LENGTH) {
        return true;
    }
    raw_head().is_some_and(|raw| {
        raw.split(|b| *b == b'\n')
            .skip(1)
            .any(|line| line.len() >= 15 && line[..15].eq_ignore_ascii_case(b"content-length:"))
    })
}

/// `Upgrade` is a hop-by-hop field only honoured when `Connection` lists it (RFC 9110 §7.8);
/// one that `Connection` does not name is dropped, so that neither Pingora (which treats any
/// HTTP/1.1 `Upgrade` as an upgrade request) nor the upstream acts on it.
pub(crate) fn drop_unannounced_upgrade(req: &mut RequestHeader) {
    if !req.headers.contains_key(header::UPGRADE) {
        return;
    }
    let announced = req.headers.get_all(header::CONNECTION).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
    });
    if !announced {
        req.remove_header(&header::UPGRADE);
    }
}

/// Framing and expectations the upstream must read one way only: a list of identical
/// `Content-Length` values becomes one (RFC 9110 §8.6; Pingora refuses differing ones), and
/// `Expect` from an HTTP/1.0 client is dropped, since such a client cannot take the
/// `100 Continue` the upstream would send (RFC 9110 §10.1.1).
pub(crate) fn normalize_framing(
    req: &mut RequestHeader,
    downstream_version: http::Version,
) -> pingora::Result<()> {
    let lengths = req.headers.get_all(header::CONTENT_LENGTH);
    let mut values = lengths.iter();
    if let Some(first) = values.next() {
        let several = values.next().is_some() || first.as_bytes().contains(&b',');
        if several {
            let single = first
                .to_str()
                .ok()
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_owned());
            if let Some(single) = single {
                req.insert_header(header::CONTENT_LENGTH, single)?;
            }
        }
    }
    if downstream_version == http::Version::HTTP_10 {
        req.remove_header(&header::EXPECT);
    }
    Ok(())
}

/// `Via` names the protocol version of the hop this proxy received.
pub(crate) fn via_value(version: http::Version) -> HeaderValue {
    HeaderValue::from_static(match version {
        http::Version::HTTP_10 => "1.0 outrider",
        http::Version::HTTP_2 => "2 outrider",
        _ => "1.1 outrider",
    })
}

/// Adds `X-Forwarded-For` (appended, as nginx's `$proxy_add_x_forwarded_for`),
/// `X-Forwarded-Proto` (overwritten: this hop is what we know, a client-sent value is not
/// trustworthy) and `Via` (appended).
pub(crate) fn add_forwarding_headers(
    req: &mut RequestHeader,
    client_ip: Option<IpAddr>,
    downstream_version: http::Version,
) -> pingora::Result<()> {
    if let Some(ip) = client_ip {
        // Several field lines are one comma-separated list (RFC 9110 §5.3): keep every hop.
        let mut value = String::with_capacity(16);
        for prior in req.headers.get_all(&X_FORWARDED_FOR) {
            let prior = String::from_utf8_lossy(prior.as_bytes());
            let prior = prior.trim();
            if !prior.is_empty() {
                value.push_str(prior);
                value.push_str(", ");
            }
        }
        push_ip(&mut value, ip);
        req.insert_header(X_FORWARDED_FOR_SPELLING, value)?;
    }
    req.insert_header(X_FORWARDED_PROTO_SPELLING, "http")?;
    req.append_header(VIA_SPELLING, via_value(downstream_version))?;
    Ok(())
}

/// Appends `ip` as `Display` writes it. An IPv4 address (most clients) is written octet by
/// octet: this runs on every proxied request, and the formatting machinery costs several
/// times as much.
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

/// Removes hop-by-hop fields of the upstream connection from a response before it goes
/// downstream: those nominated by `Connection`, and the standard ones. `Transfer-Encoding` is
/// left to Pingora, which reframes the body for the downstream connection itself; `Upgrade`
/// stays on a 101, which is the upgrade.
pub(crate) fn strip_response_hop_by_hop(resp: &mut ResponseHeader) {
    if resp.headers.contains_key(header::CONNECTION) {
        let nominated: Vec<HeaderName> = resp
            .headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .filter(|name| !is_protected(name))
            .collect();
        for name in nominated {
            resp.remove_header(&name);
        }
        if resp.status != http::StatusCode::SWITCHING_PROTOCOLS {
            resp.remove_header(&header::CONNECTION);
        }
    }
    // Removed only when present: a removal hashes the name in both of Pingora's maps, and
    // a response rarely carries any of these.
    let upgrade = resp.status == http::StatusCode::SWITCHING_PROTOCOLS;
    let doomed: Vec<HeaderName> = resp
        .headers
        .keys()
        .filter(|name| {
            *name == KEEP_ALIVE
                || *name == PROXY_CONNECTION
                || *name == header::TE
                || *name == header::PROXY_AUTHENTICATE
                || (!upgrade && *name == header::UPGRADE)
        })
        .cloned()
        .collect();
    for name in &doomed {
        resp.remove_header(name);
    }
}

/// A backend must not be able to make us drop the fields that frame the message.
fn is_protected(name: &HeaderName) -> bool {
    name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING || name == header::UPGRADE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_addresses_are_written_as_display_writes_them() {
        let octets = [0u8, 7, 9, 10, 42, 99, 100, 101, 199, 200, 255];
        for a in octets {
            for b in octets {
                let ip = IpAddr::from([a, b, 255 - a, b / 2]);
                let mut out = String::from("x, ");
                push_ip(&mut out, ip);
                assert_eq!(out, format!("x, {ip}"));
            }
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let mut out = String::new();
        push_ip(&mut out, v6);
        assert_eq!(out, "2001:db8::1");
    }

    #[test]
    fn content_length_with_transfer_encoding_conflicts_even_once_removed() {
        let mut req = RequestHeader::build("POST", b"/", None).unwrap();
        assert!(!has_conflicting_framing(&req, || None));
        req.insert_header("transfer-encoding", "chunked").unwrap();
        let raw = |text: &'static str| move || Some(bytes::Bytes::from_static(text.as_bytes()));
        assert!(!has_conflicting_framing(
            &req,
            raw("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        ));
        assert!(has_conflicting_framing(
            &req,
            raw("POST / HTTP/1.1\r\ncOntent-length: 4\r\nTransfer-Encoding: chunked\r\n\r\n")
        ));
        req.insert_header("content-length", "4").unwrap();
        assert!(has_conflicting_framing(&req, || None));
    }

    #[test]
    fn an_upgrade_not_named_by_connection_is_dropped() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("upgrade", "websocket").unwrap();
        drop_unannounced_upgrade(&mut req);
        assert!(!req.headers.contains_key("upgrade"));
        req.insert_header("upgrade", "websocket").unwrap();
        req.insert_header("connection", "keep-alive, Upgrade")
            .unwrap();
        drop_unannounced_upgrade(&mut req);
        assert!(req.headers.contains_key("upgrade"));
    }

    #[test]
    fn forwarding_headers_append_and_overwrite() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("x-forwarded-for", "10.0.0.1").unwrap();
        req.insert_header("x-forwarded-proto", "https").unwrap();
        add_forwarding_headers(
            &mut req,
            Some("127.0.0.9".parse().unwrap()),
            http::Version::HTTP_11,
        )
        .unwrap();
        assert_eq!(req.headers["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert_eq!(req.headers["x-forwarded-proto"], "http");
        assert_eq!(req.headers["via"], "1.1 outrider");
    }

    #[test]
    fn response_hop_by_hop_fields_are_removed() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("connection", "close, x-secret, content-length")
            .unwrap();
        resp.insert_header("x-secret", "1").unwrap();
        resp.insert_header("keep-alive", "timeout=5").unwrap();
        resp.insert_header("content-length", "3").unwrap();
        resp.insert_header("x-kept", "1").unwrap();
        strip_response_hop_by_hop(&mut resp);
        assert!(resp.headers.get("connection").is_none());
        assert!(resp.headers.get("x-secret").is_none());
        assert!(resp.headers.get("keep-alive").is_none());
        assert_eq!(resp.headers["content-length"], "3");
        assert_eq!(resp.headers["x-kept"], "1");

        for status in [200, 101] {
            let mut resp = ResponseHeader::build(status, None).unwrap();
            for name in [
                "proxy-connection",
                "te",
                "proxy-authenticate",
                "upgrade",
                "x-kept",
            ] {
                resp.append_header(name, "1").unwrap();
            }
            strip_response_hop_by_hop(&mut resp);
            let mut left: Vec<&str> = resp.headers.keys().map(|k| k.as_str()).collect();
            left.sort_unstable();
            let want: &[&str] = if status == 101 {
                &["upgrade", "x-kept"]
            } else {
                &["x-kept"]
            };
            assert_eq!(left, want, "{status}");
        }
    }

    #[test]
    fn absolute_form_becomes_origin_form_with_its_host() {
        let mut req =
            RequestHeader::build("GET", b"http://A.test:8080/p/q?x=1#frag", None).unwrap();
        absolute_form_to_origin_form(&mut req).unwrap();
        assert_eq!(req.raw_path(), b"/p/q?x=1");
        assert_eq!(req.headers["host"], "A.test:8080");
        let mut bare = RequestHeader::build("GET", b"http://a.test", None).unwrap();
        absolute_form_to_origin_form(&mut bare).unwrap();
        assert_eq!(bare.raw_path(), b"/");
        assert_eq!(bare.headers["host"], "a.test");
        let mut origin = RequestHeader::build("GET", b"/already", None).unwrap();
        origin.insert_header("host", "b.test").unwrap();
        absolute_form_to_origin_form(&mut origin).unwrap();
        assert_eq!(origin.raw_path(), b"/already");
        assert_eq!(origin.headers["host"], "b.test");
        let mut userinfo = RequestHeader::build("GET", b"http://u:p@a.test/", None).unwrap();
        let refused = absolute_form_to_origin_form(&mut userinfo).unwrap_err();
        assert_eq!(refused.etype(), &pingora::ErrorType::HTTPStatus(400));
    }

    #[test]
    fn identical_content_lengths_collapse_and_http10_expect_is_dropped() {
        let mut req = RequestHeader::build("POST", b"/", None).unwrap();
        req.append_header("content-length", "5").unwrap();
        req.append_header("content-length", "5").unwrap();
        req.insert_header("expect", "100-continue").unwrap();
        normalize_framing(&mut req, http::Version::HTTP_11).unwrap();
        assert_eq!(req.headers.get_all("content-length").iter().count(), 1);
        assert_eq!(req.headers["content-length"], "5");
        assert_eq!(req.headers["expect"], "100-continue");

        let mut listed = RequestHeader::build("POST", b"/", None).unwrap();
        listed.insert_header("content-length", "7, 7").unwrap();
        listed.insert_header("expect", "100-continue").unwrap();
        normalize_framing(&mut listed, http::Version::HTTP_10).unwrap();
        assert_eq!(listed.headers["content-length"], "7");
        assert!(listed.headers.get("expect").is_none());
    }
}
