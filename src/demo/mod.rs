//! The embedded demo backend behind `outrider demo`: a small "legacy app" with the shapes of
//! traffic Outrider is for (a JSON API, a large page, a slow endpoint, one that fails on
//! demand). It runs as one more Pingora service in the same process.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use http::{header, Response, StatusCode};
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::protocols::http::ServerSession;
use pingora::services::listening::Service;

/// The demo policy, embedded so that `outrider demo` works from any directory.
pub const DEMO_TOML: &str = include_str!("../../conf/demo.toml");

pub struct DemoApp;

/// A listening service serving the demo app on `addr`.
pub fn service(addr: SocketAddr) -> Service<HttpServer<DemoApp>> {
    let mut svc = Service::new("demo backend".to_string(), HttpServer::new_app(DemoApp));
    svc.add_tcp(&addr.to_string());
    svc.threads = Some(1);
    svc
}

fn response(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    let len = resp.body().len();
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, len.into());
    resp
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// About 256 KiB of repetitive text: the page that compresses well.
fn large_page() -> Vec<u8> {
    let mut page =
        String::from("<!doctype html><html><head><title>Outrider demo page</title></head><body>\n");
    for i in 0..2000 {
        page.push_str(&format!(
            "<p>Paragraph {i}: a legacy application renders the same markup again and again, \
             and nobody dares to touch it. Outrider sits beside it.</p>\n"
        ));
    }
    page.push_str("</body></html>\n");
    page.into_bytes()
}

fn items_json() -> Vec<u8> {
    let items: Vec<serde_json::Value> = (1..=20)
        .map(|i| serde_json::json!({"id": i, "name": format!("item {i}"), "price_cents": 100 * i}))
        .collect();
    serde_json::to_vec_pretty(&serde_json::json!({ "items": items })).unwrap_or_default()
}

#[async_trait]
impl ServeHttp for DemoApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let path = req.uri.path().to_string();
        let query = req.uri.query().map(str::to_string);
        let query = query.as_deref();
        match path.as_str() {
            "/" => response(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                b"Outrider demo backend: /api/items, /page, /slow?ms=500, /fail?status=503\n"
                    .to_vec(),
            ),
            "/api/items" => {
                let mut resp = response(StatusCode::OK, "application/json", items_json());
                resp.headers_mut().insert(
                    header::CACHE_CONTROL,
                    header::HeaderValue::from_static("public, max-age=10"),
                );
                resp
            }
            "/page" => response(StatusCode::OK, "text/html; charset=utf-8", large_page()),
            "/slow" => {
                let ms = query_param(query, "ms")
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(500);
                tokio::time::sleep(Duration::from_millis(ms.min(30_000))).await;
                response(
                    StatusCode::OK,
                    "text/plain; charset=utf-8",
                    format!("slept {ms} ms\n").into_bytes(),
                )
            }
            "/fail" => {
                let status = query_param(query, "status")
                    .and_then(|v| v.parse::<u16>().ok())
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                response(
                    status,
                    "text/plain; charset=utf-8",
                    format!("failing on demand with {}\n", status.as_u16()).into_bytes(),
                )
            }
            _ => response(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                b"not found\n".to_vec(),
            ),
        }
    }
}
