//! Pipeline step 6, compression, as a Pingora downstream module.
//!
//! A module rather than `response_filter`/`response_body_filter` code because Pingora runs
//! modules on *every* response it writes downstream (proxied, cache hits, responses the
//! pipeline writes itself) and gives them the end of the body even when it arrives as a bare
//! "done" task. Pingora's own `ResponseCompression` module is replaced, not configured: its
//! negotiation ignores q-values and its encoders hold output until their buffers fill
//! (PINGORA-NOTES.md §3.1–3.2). The decisions are `compress::{negotiate, decide}`; this file
//! only applies them to headers and bytes.

use std::any::Any;
use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::Version;
use log::warn;
use pingora::http::ResponseHeader;
use pingora::modules::http::{HttpModule, HttpModuleBuilder, Module};
use pingora::prelude::*;

use super::Active;
use crate::compress::{self, Decision, Encoder, ResponseFacts};
use crate::config::policy::{Coding, CompressionPolicy};

/// Registers [`Compression`] once per server.
pub(crate) struct CompressionBuilder;

impl HttpModuleBuilder for CompressionBuilder {
    fn init(&self) -> Module {
        Box::new(Compression::default())
    }
}

/// Per-request module state. Idle until [`Compression::plan`] is called for a routed request.
#[derive(Default)]
pub(crate) struct Compression {
    plan: Option<Plan>,
    encoder: Option<Encoder>,
    /// A cache hit whose body is already encoded in the negotiated coding (`proxy::cache`).
    pre_encoded: Option<PreEncoded>,
    /// Where the encoded body of a cache hit goes once whole, so that the next hit for this
    /// coding is served without encoding (`proxy::cache`).
    memo: Option<Memo>,
}

/// What the header filter needs to describe a body that is already encoded.
pub(crate) struct PreEncoded {
    pub(crate) identity_len: u64,
    pub(crate) encoded_len: u64,
}

/// Receives the whole encoded body and its coding.
pub(crate) type MemoSink = Box<dyn FnOnce(&Coding, Bytes) + Send + Sync>;

struct Memo {
    sink: MemoSink,
    limit: usize,
    encoded: BytesMut,
    overflowed: bool,
}

struct Plan {
    policy: Arc<Active>,
    route: usize,
    /// What this client accepts best among the route's codings; `None`: identity only.
    coding: Option<Coding>,
    is_head: bool,
    /// HTTP/1.1 clients get chunked framing for the re-encoded body; HTTP/1.0 has no
    /// chunked framing and HTTP/2 frames bodies itself.
    chunked: bool,
}

impl Compression {
    /// Sets this request up for compression on `route` of `policy`: negotiates the coding from
    /// the client's `Accept-Encoding` once, before any response exists.
    pub(crate) fn plan(
        &mut self,
        policy: &Arc<Active>,
        route: usize,
        req: &pingora::http::RequestHeader,
    ) {
        let Some(r) = policy.route_by_id(route) else {
            return;
        };
        if !r.compression.compresses() {
            return;
        }
        let accept = req
            .headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok());
        // An HTTP/1.0 client cannot take a body of unknown length except by closing the
        // connection; it gets identity rather than losing keep-alive.
        let coding = match req.version {
            Version::HTTP_10 | Version::HTTP_09 => None,
            _ => compress::negotiate(accept, &r.compression),
        };
        self.plan = Some(Plan {
            policy: policy.clone(),
            route,
            coding,
            is_head: req.method == http::Method::HEAD,
            chunked: req.version == Version::HTTP_11,
        });
    }

    /// The coding this client gets if the response qualifies; `None` before `plan` or for
    /// identity-only clients.
    pub(crate) fn negotiated(&self) -> Option<&Coding> {
        self.plan.as_ref().and_then(|p| p.coding.as_ref())
    }

    /// Gives a 304 built from `full` (the 200 it stands for) the `Vary` and `ETag` form that
    /// this client would have got on the 200 (RFC 9110 §15.4.5): the module cannot tell from
    /// the 304 itself, which has no media type or length.
    pub(crate) fn align_not_modified(
        &self,
        full: &ResponseHeader,
        not_modified: &mut ResponseHeader,
    ) -> Result<()> {
        let Some(plan) = &self.plan else {
            return Ok(());
        };
        let Some(route) = plan.policy.route_by_id(plan.route) else {
            return Ok(());
        };
        let cc = cache_control(full);
        let facts = facts(full, false, cc.as_deref());
        if compress::could_compress(&facts, &route.compression) {
            add_vary_accept_encoding(not_modified)?;
        }
        if plan.coding.is_some()
            && matches!(
                compress::decide(&facts, &route.compression),
                Decision::Compress | Decision::Undecided
            )
        {
            weaken_etag(not_modified)?;
        }
        Ok(())
    }

    /// This response's body (a cache hit) is already encoded in the negotiated coding: the
    /// header says so and nothing is encoded again.
    pub(crate) fn serve_pre_encoded(&mut self, pre: PreEncoded) {
        self.pre_encoded = Some(pre);
    }

    /// If this response gets encoded, hand the whole encoded body (up to `limit` bytes) to
    /// `sink` at its end.
    pub(crate) fn memoise_into(&mut self, limit: usize, sink: MemoSink) {
        self.memo = Some(Memo {
            sink,
            limit,
            encoded: BytesMut::new(),
            overflowed: false,
        });
    }

    fn record(&self) {
        let (Some(plan), Some(encoder)) = (&self.plan, &self.encoder) else {
            return;
        };
        let (bytes_in, bytes_out) = encoder.totals();
        if let Some(route) = plan.policy.metrics.routes.get(plan.route) {
            plan.policy
                .metrics
                .compression
                .record(route, encoder.coding(), bytes_in, bytes_out);
        }
    }

    fn encode(&mut self, input: &[u8], end: bool) -> Result<Bytes> {
        let Some(encoder) = self.encoder.as_mut() else {
            return Ok(Bytes::new());
        };
        let out = encoder
            .encode(input, end)
            .or_err(ErrorType::InternalError, "compressing the response body")?;
        if let Some(memo) = self.memo.as_mut() {
            if memo.encoded.len() + out.len() > memo.limit {
                memo.overflowed = true;
                memo.encoded = BytesMut::new();
            } else if !memo.overflowed {
                memo.encoded.extend_from_slice(&out);
            }
        }
        if end {
            self.record();
            if let (Some(memo), Some(encoder)) = (self.memo.take(), self.encoder.as_ref()) {
                if !memo.overflowed {
                    (memo.sink)(encoder.coding(), memo.encoded.freeze());
                }
            }
            self.encoder = None;
        }
        Ok(out)
    }
}

/// The response facts `compress::decide` needs, borrowed from the header.
pub(super) fn facts<'a>(
    resp: &'a ResponseHeader,
    is_head: bool,
    cache_control: Option<&'a str>,
) -> ResponseFacts<'a> {
    ResponseFacts {
        status: resp.status.as_u16(),
        is_head,
        content_type: resp
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        has_content_encoding: resp
            .headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity")),
        cache_control,
        content_length: resp
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok()),
    }
}

fn cache_control(resp: &ResponseHeader) -> Option<Cow<'_, str>> {
    joined_field(&resp.headers, header::CACHE_CONTROL)
}

/// Every line of a list field as one list (RFC 9110 §5.3); borrowed in the usual one-line case.
pub(super) fn joined_field(
    headers: &http::HeaderMap,
    name: impl http::header::AsHeaderName,
) -> Option<Cow<'_, str>> {
    let mut lines = headers.get_all(name).iter().filter_map(|v| v.to_str().ok());
    let first = lines.next()?;
    match lines.next() {
        None => Some(Cow::Borrowed(first)),
        Some(second) => {
            let mut all = format!("{first}, {second}");
            for more in lines {
                all.push_str(", ");
                all.push_str(more);
            }
            Some(Cow::Owned(all))
        }
    }
}

/// Adds `Accept-Encoding` to `Vary` unless it is there already or `Vary: *` covers it, keeping
/// whatever the origin listed (one merged line).
fn add_vary_accept_encoding(resp: &mut ResponseHeader) -> Result<()> {
    let mut merged = String::new();
    for value in resp.headers.get_all(header::VARY) {
        let Ok(value) = value.to_str() else { continue };
        for member in value.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            if member == "*" || member.eq_ignore_ascii_case("accept-encoding") {
                return Ok(());
            }
            if !merged.is_empty() {
                merged.push_str(", ");
            }
            merged.push_str(member);
        }
    }
    if merged.is_empty() {
        resp.insert_header("Vary", HeaderValue::from_static("Accept-Encoding"))
    } else {
        merged.push_str(", Accept-Encoding");
        resp.insert_header("Vary", merged)
    }
}

/// A strong validator names exact bytes; the encoded body has other bytes, so it becomes weak
/// (RFC 9110 §8.8.1). Weak ones stay as they are.
fn weaken_etag(resp: &mut ResponseHeader) -> Result<()> {
    let Some(etag) = resp.headers.get(header::ETAG) else {
        return Ok(());
    };
    if etag.as_bytes().starts_with(b"W/") {
        return Ok(());
    }
    let weak = [b"W/", etag.as_bytes()].concat();
    resp.insert_header("ETag", weak)
}

fn coding_token(coding: &Coding) -> &'static str {
    match coding {
        Coding::Zstd => "zstd",
        Coding::Br => "br",
        Coding::Gzip => "gzip",
    }
}

#[async_trait]
impl HttpModule for Compression {
    async fn response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        end_of_stream: bool,
    ) -> Result<()> {
        let Some(plan) = &self.plan else {
            return Ok(());
        };
        let Some(route) = plan.policy.route_by_id(plan.route) else {
            return Ok(());
        };
        let policy: &CompressionPolicy = &route.compression;
        if let (Some(pre), Some(coding)) = (self.pre_encoded.take(), plan.coding.as_ref()) {
            if resp.status == http::StatusCode::OK {
                add_vary_accept_encoding(resp)?;
                resp.remove_header(&header::ACCEPT_RANGES);
                resp.insert_header("Content-Encoding", coding_token(coding))?;
                resp.insert_header(header::CONTENT_LENGTH, pre.encoded_len.to_string())?;
                weaken_etag(resp)?;
                if let Some(route_metrics) = plan.policy.metrics.routes.get(plan.route) {
                    plan.policy.metrics.compression.record(
                        route_metrics,
                        coding,
                        pre.identity_len,
                        pre.encoded_len,
                    );
                }
                return Ok(());
            }
        }
        let cc = cache_control(resp);
        let facts = facts(resp, plan.is_head, cc.as_deref());
        let vary = compress::could_compress(&facts, policy);
        // A body of unknown length (chunked, no Content-Length) is compressed: its header is
        // on its way before any of the body is known. The buffered leg (`proxy::buffered`)
        // gives short bodies a Content-Length first, so they are decided by size.
        let compress = plan.coding.is_some()
            && !end_of_stream
            && matches!(
                compress::decide(&facts, policy),
                Decision::Compress | Decision::Undecided
            );
        let encoder = match (&plan.coding, compress) {
            (Some(coding), true) => match Encoder::new(coding.clone(), policy) {
                Ok(e) => Some(e),
                Err(e) => {
                    warn!("compression skipped: cannot start {coding:?} encoder: {e}");
                    None
                }
            },
            _ => None,
        };
        let chunked = plan.chunked;
        drop(cc);
        if vary {
            add_vary_accept_encoding(resp)?;
        }
        if let Some(encoder) = encoder {
            resp.remove_header(&header::CONTENT_LENGTH);
            resp.remove_header(&header::ACCEPT_RANGES);
            resp.insert_header("Content-Encoding", coding_token(encoder.coding()))?;
            weaken_etag(resp)?;
            if chunked {
                resp.insert_header("Transfer-Encoding", "chunked")?;
            }
            self.encoder = Some(encoder);
        }
        Ok(())
    }

    fn response_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        if self.encoder.is_none() {
            return Ok(());
        }
        let input = body.take().unwrap_or_default();
        let out = self.encode(&input, end_of_stream)?;
        if !out.is_empty() || end_of_stream {
            *body = Some(out);
        }
        Ok(())
    }

    /// Trailers end the body: the encoder's last bytes must go out before them. Pingora writes
    /// the returned bytes as the final body chunk (and drops the trailers, which HTTP/1.1
    /// clients rarely ask for).
    fn response_trailer_filter(
        &mut self,
        _trailers: &mut Option<Box<http::HeaderMap>>,
    ) -> Result<Option<Bytes>> {
        self.response_done_filter()
    }

    fn response_done_filter(&mut self) -> Result<Option<Bytes>> {
        if self.encoder.is_none() {
            return Ok(None);
        }
        self.encode(&[], true).map(Some)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(headers: &[(&str, &str)]) -> ResponseHeader {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for (name, value) in headers {
            resp.append_header(name.to_string(), *value).unwrap();
        }
        resp
    }

    fn vary(resp: &ResponseHeader) -> Vec<&str> {
        resp.headers
            .get_all(header::VARY)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn vary_is_added_merged_or_left_alone() {
        let mut plain = response(&[]);
        add_vary_accept_encoding(&mut plain).unwrap();
        assert_eq!(vary(&plain), ["Accept-Encoding"]);

        let mut other = response(&[("vary", "Origin"), ("vary", "Accept-Language, Cookie")]);
        add_vary_accept_encoding(&mut other).unwrap();
        assert_eq!(
            vary(&other),
            ["Origin, Accept-Language, Cookie, Accept-Encoding"]
        );

        let mut has = response(&[("vary", "origin, ACCEPT-ENCODING")]);
        add_vary_accept_encoding(&mut has).unwrap();
        assert_eq!(vary(&has), ["origin, ACCEPT-ENCODING"]);

        let mut star = response(&[("vary", "*")]);
        add_vary_accept_encoding(&mut star).unwrap();
        assert_eq!(vary(&star), ["*"]);
    }

    #[test]
    fn strong_etags_become_weak_and_weak_ones_stay() {
        let mut strong = response(&[("etag", "\"abc\"")]);
        weaken_etag(&mut strong).unwrap();
        assert_eq!(strong.headers["etag"], "W/\"abc\"");
        let mut weak = response(&[("etag", "W/\"abc\"")]);
        weaken_etag(&mut weak).unwrap();
        assert_eq!(weak.headers["etag"], "W/\"abc\"");
    }

    #[test]
    fn several_cache_control_lines_are_read_as_one_list() {
        let resp = response(&[
            ("cache-control", "max-age=60"),
            ("cache-control", "no-transform"),
        ]);
        assert_eq!(
            cache_control(&resp).as_deref(),
            Some("max-age=60, no-transform")
        );
        assert_eq!(cache_control(&response(&[])), None);
    }
}
