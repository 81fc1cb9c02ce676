//! The content: what the origin serves, and the run's random numbers.

use std::sync::Arc;

use bytes::Bytes;

use crate::support::{Recorded, Reply};
use crate::{HEALTH_PATH, TAGS};

// === the content ===

/// What the origin serves, by path: `/static/{k}.css` (cacheable text), `/static/{k}.bin`
/// (cacheable, incompressible), `/api/items/{k}` (cacheable JSON, short TTL, POST invalidates),
/// `/live/{k}` (JSON, `no-store`), `/limited/{k}` (the same, behind the rate-limited route).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Css,
    Bin,
    Api,
    Live,
    Limited,
}

impl Kind {
    pub(crate) fn parse(path: &str) -> Option<(Kind, u64)> {
        let path = path.split('?').next().unwrap_or(path);
        if let Some(rest) = path.strip_prefix("/static/") {
            let (k, ext) = rest.split_once('.')?;
            let kind = match ext {
                "css" => Kind::Css,
                "bin" => Kind::Bin,
                _ => return None,
            };
            return Some((kind, k.parse().ok()?));
        }
        if let Some(k) = path.strip_prefix("/api/items/") {
            return Some((Kind::Api, k.parse().ok()?));
        }
        if let Some(k) = path.strip_prefix("/limited/") {
            return Some((Kind::Limited, k.parse().ok()?));
        }
        let k = path.strip_prefix("/live/")?;
        Some((Kind::Live, k.parse().ok()?))
    }

    pub(crate) fn path(self, k: u64) -> String {
        match self {
            Kind::Css => format!("/static/{k}.css"),
            Kind::Bin => format!("/static/{k}.bin"),
            Kind::Api => format!("/api/items/{k}?page=1"),
            Kind::Live => format!("/live/{k}"),
            Kind::Limited => format!("/limited/{k}"),
        }
    }

    fn size(self, k: u64) -> usize {
        let k = k as usize;
        match self {
            Kind::Css => 1024 + (k * 7919 % 24) * 1024,
            Kind::Bin => 2048 + (k * 104_729 % 8) * 1024,
            Kind::Api => 512 + (k * 31 % 16) * 512,
            Kind::Live | Kind::Limited => 256 + (k * 17 % 32) * 512,
        }
    }
}

/// The bodies: slices of one compressible text and one incompressible buffer.
pub(crate) struct Bodies {
    text: Bytes,
    noise: Bytes,
}

impl Bodies {
    const SLACK: usize = 4096;

    pub(crate) fn new() -> Bodies {
        let max = 1024 + 23 * 1024 + Bodies::SLACK;
        let mut text = String::with_capacity(max + 256);
        let mut i = 0u64;
        while text.len() < max {
            text.push_str(&format!(
                "{{\"id\": {i}, \"name\": \"item-{i}\", \"tags\": [\"alpha\", \"t{}\"], \"price\": {}.{:02}}}\n",
                i % 7,
                i * 37 % 1000,
                i % 100
            ));
            i += 1;
        }
        let mut rng = Rng(0x5eed);
        let noise: Vec<u8> = (0..max).map(|_| rng.next() as u8).collect();
        Bodies {
            text: Bytes::from(text),
            noise: Bytes::from(noise),
        }
    }

    pub(crate) fn body(&self, kind: Kind, k: u64) -> Bytes {
        let src = if kind == Kind::Bin {
            &self.noise
        } else {
            &self.text
        };
        let offset = (k as usize * 131) % Bodies::SLACK;
        src.slice(offset..offset + kind.size(k))
    }
}

pub(crate) fn origin_handler(
    bodies: Arc<Bodies>,
) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |req| {
        if req.uri == HEALTH_PATH {
            return Reply::ok("ok");
        }
        let Some((kind, k)) = Kind::parse(&req.uri) else {
            return Reply::status(404);
        };
        if req.method == "POST" {
            return Reply::ok(r#"{"ok": true}"#)
                .header("content-type", "application/json")
                .header("cache-control", "no-store");
        }
        let tag = format!("t{}", k % TAGS);
        let reply = Reply::ok(bodies.body(kind, k));
        match kind {
            Kind::Css => reply
                .header("content-type", "text/css")
                .header("surrogate-key", &format!("static {tag}")),
            Kind::Bin => reply
                .header("content-type", "application/octet-stream")
                .header("surrogate-key", &format!("static {tag}")),
            Kind::Api => reply
                .header("content-type", "application/json")
                .header("surrogate-key", &format!("api {tag}")),
            Kind::Live | Kind::Limited => reply
                .header("content-type", "application/json")
                .header("cache-control", "no-store"),
        }
    }
}

/// splitmix64: a deterministic request mix without a dependency.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
