//! The policy: TOML conf file → validated, compiled, immutable [`Policy`] snapshot.
//!
//! `schema` is the file format, `policy` the compiled snapshot, `compile` the step between;
//! `diagnostics` locates every error as `FILE:LINE:COL: key.path: message`.

mod compile;
mod diagnostics;
pub mod policy;
pub mod reload;
pub mod schema;
pub mod units;

use std::path::Path;

pub use compile::compile;
pub use diagnostics::ConfigError;
pub use policy::Policy;

/// A policy compiled from a file, with the hash of the exact bytes it came from.
pub struct Loaded {
    pub policy: Policy,
    pub sha256: String,
}

/// Reads and compiles a conf file. An unreadable file is one error located at 1:1.
pub fn load(path: &Path) -> Result<Loaded, Vec<ConfigError>> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => compile(&text, &file).map(|policy| Loaded {
            policy,
            sha256: reload::sha256_hex(text.as_bytes()),
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
