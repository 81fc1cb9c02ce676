//! [`Got`]: a whole response as a reqwest client saw it, read at once so that assertions can
//! look at status, fields and body together. Test files add the accessors they need.

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

pub struct Got {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// From `started` (just before sending) to the response header.
    pub elapsed: Duration,
}

impl Got {
    pub async fn read(resp: reqwest::Response, started: Instant) -> Got {
        let elapsed = started.elapsed();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.expect("response body").to_vec();
        Got {
            status,
            headers,
            body,
            elapsed,
        }
    }

    /// Sends `method url` with `headers` (and `body`) on a fresh client and reads the answer.
    pub async fn fetch(
        method: reqwest::Method,
        url: String,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Got {
        let mut req = super::client().request(method, url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let started = Instant::now();
        let resp = req.send().await.expect("request through the proxy");
        Got::read(resp, started).await
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ASCII header"))
            .collect()
    }
}
