//! The policy: TOML conf file → validated, compiled, immutable [`Policy`] snapshot.
//!
//! `schema` is the file format, `policy` the compiled snapshot, `compile` the step between;
//! `diagnostics` locates every error as `FILE:LINE:COL: key.path: message`; `startup` tells
//! which settings only a restart applies. Pure: no Pingora, no runtime (the reloader that
//! drives it is `crate::reload`).

pub(crate) mod admin_hosts;
mod compile;
mod diagnostics;
pub mod policy;
mod resilience;
mod route_cache;
pub mod schema;
mod shared_tier;
mod slo;
mod startup;
pub(crate) mod units;

use std::path::Path;

use sha2::{Digest, Sha256};

pub use compile::compile;
pub use diagnostics::ConfigError;
pub use policy::Policy;
pub(crate) use slo::percent_text;
pub use startup::Startup;

/// A policy compiled from a file, with the hash of the exact bytes it came from.
pub struct Loaded {
    pub policy: Policy,
    pub sha256: String,
}

/// The hex SHA-256 of a conf file's bytes: how `/config` and reloads tell one file from another.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Reads and compiles a conf file. An unreadable file is one error located at 1:1.
pub fn load(path: &Path) -> Result<Loaded, Vec<ConfigError>> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => compile(&text, &file).map(|policy| Loaded {
            policy,
            sha256: sha256_hex(text.as_bytes()),
        }),
        Err(e) => Err(vec![ConfigError {
            file,
            line: 1,
            column: 1,
            key: String::new(),
            message: format!("cannot read: {e}"),
        }]),
    }
}
