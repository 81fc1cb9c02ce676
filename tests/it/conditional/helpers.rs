//! The [`Rig`] (origin + proxy) and the helpers every module shares.

use reqwest::Method;

use crate::support::got::Got;
use crate::support::{client, Origin, Proxy, Reply};

// ======================================================================================
// Helpers
// ======================================================================================

/// The conf body (without the server section): one upstream "app", `[defaults.etag]` lines,
/// a route "plain" (`/plain/`, no generated ETags) and a catch-all route "main".
pub(crate) fn conf(origin: &Origin, etag_defaults: &str) -> String {
    format!(
        "{}[defaults.etag]\n{etag_defaults}\n\n\
         [[routes]]\nname = \"plain\"\nupstream = \"app\"\n\
         match = {{ path_prefix = \"/plain/\" }}\netag = {{ generate = false }}\n\n\
         [[routes]]\nname = \"main\"\nupstream = \"app\"\nmatch = {{ path_prefix = \"/\" }}\n",
        origin.upstream_toml("app")
    )
}

pub(crate) struct Rig {
    pub(crate) proxy: Proxy,
    pub(crate) origin: Origin,
}

impl Rig {
    pub(crate) fn new() -> Rig {
        Rig::with("")
    }

    pub(crate) fn with(etag_defaults: &str) -> Rig {
        Rig::with_origin(Origin::start(), etag_defaults)
    }

    pub(crate) fn with_origin(origin: Origin, etag_defaults: &str) -> Rig {
        let proxy = Proxy::start(&conf(&origin, etag_defaults));
        Rig { proxy, origin }
    }

    pub(crate) async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Got {
        self.send(Method::GET, path, headers, None).await
    }

    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Got {
        Got::fetch(method, self.proxy.url(path), headers, body).await
    }

    /// The generated tag of a 200 GET of `path`.
    pub(crate) async fn tag(&self, path: &str) -> String {
        fetch_tag(&self.proxy.url(path)).await
    }
}

pub(crate) async fn fetch_tag(url: &str) -> String {
    let resp = client().get(url).send().await.expect("GET");
    assert_eq!(resp.status(), 200, "{url}");
    let tag = resp
        .headers()
        .get("etag")
        .unwrap_or_else(|| panic!("{url}: no ETag"))
        .to_str()
        .unwrap()
        .to_string();
    generated(&tag);
    tag
}

/// Asserts `tag` looks like a generated one: strong, 32 lowercase hex digits.
pub(crate) fn generated(tag: &str) {
    let inner = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or_else(|| panic!("not a strong tag: {tag}"));
    assert!(
        inner.len() == 32
            && inner
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "not 32 lowercase hex digits: {tag}"
    );
}

/// An origin whose body is the `body=` query value (or the usual script without it).
pub(crate) fn text_origin() -> Origin {
    Origin::with_handler(|req| {
        let query = req.uri.split_once('?').map(|(_, q)| q);
        match query
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix("body="))
        {
            Some(body) => Reply::ok(body.to_string()),
            None => Reply::from_query(query),
        }
    })
}

/// Percent-encodes a query value for the origin's `h=` script.
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
