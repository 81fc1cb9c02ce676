//! The policy: TOML conf file → validated, compiled, immutable [`Policy`] snapshot.
//!
//! `schema` is the file format, `policy` the compiled snapshot, `compile` the step between;
//! `diagnostics` locates every error as `FILE:LINE:COL: key.path: message`.

mod compile;
mod diagnostics;
pub mod policy;
pub mod schema;
pub mod units;

use std::path::Path;

pub use compile::compile;
pub use diagnostics::ConfigError;
pub use policy::Policy;

/// Reads and compiles a conf file. An unreadable file is one error located at 1:1.
pub fn load(path: &Path) -> Result<Policy, Vec<ConfigError>> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => compile(&text, &file),
        Err(e) => Err(vec![ConfigError {
            file,
            line: 1,
            column: 1,
            key: String::new(),
            message: format!("cannot read: {e}"),
        }]),
    }
}
