//! Reading Outrider's member of a `Cache-Status` field (RFC 9211), for every suite that checks
//! what the cache did.

use super::got::Got;

/// The parameters of the `outrider` member of a `Cache-Status` value, values unquoted.
pub fn params(value: &str) -> Vec<(String, Option<String>)> {
    let member = value
        .split(',')
        .map(str::trim)
        .find(|m| m.starts_with("outrider"))
        .unwrap_or("");
    member
        .split(';')
        .skip(1)
        .map(|p| match p.trim().split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.trim_matches('"').to_string())),
            None => (p.trim().to_string(), None),
        })
        .collect()
}

/// Whether a `Cache-Status` value's `outrider` member says `hit`.
pub fn is_hit(cache_status: &str) -> bool {
    params(cache_status).iter().any(|(k, _)| k == "hit")
}

/// What the cache adds to a response.
impl Got {
    pub fn cache_status(&self) -> &str {
        self.header("cache-status").unwrap_or("")
    }

    pub fn hit(&self) -> bool {
        is_hit(self.cache_status())
    }

    /// A bare parameter of our `Cache-Status` member is present (`stored`, `collapsed`).
    pub fn has(&self, name: &str) -> bool {
        params(self.cache_status()).iter().any(|(k, _)| k == name)
    }

    /// A parameter's value, unquoted (`fwd`, `fwd-status`, `ttl`, `detail`).
    pub fn param(&self, name: &str) -> Option<String> {
        params(self.cache_status())
            .into_iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v)
    }
}
