//! Process logging: `log` records (Pingora's and ours) to stderr, as text or JSON lines.

use std::io::Write;

use crate::config::policy::{LogFormat, LogPolicy};

/// Installs the logger. `RUST_LOG`, when set, overrides `[log] level`.
pub fn init(policy: &LogPolicy) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(policy.level);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    if policy.format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = serde_json::json!({
                "ts": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
                "level": record.level().as_str(),
                "target": record.target(),
                "msg": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    // A second init (tests, demo) keeps the first logger; that is fine.
    let _ = builder.try_init();
}
