//! Process logging: `log` records (Pingora's and ours) to stderr, as text or JSON lines.

use std::io::Write;

use crate::config::policy::{LogFormat, LogPolicy};

/// Installs the logger. `RUST_LOG`, when set, overrides `[log] level` (then also on reload).
pub fn init(policy: &LogPolicy) {
    let mut builder = env_logger::Builder::new();
    let rust_log = std::env::var("RUST_LOG").ok();
    match &rust_log {
        Some(spec) => {
            builder.parse_filters(spec);
        }
        // The logger lets everything through and the global max level does the filtering, so
        // that a reload can change the level (`set_level`).
        // Pingora's proxy warns once per failed or stale-served request ("Fail to proxy"),
        // which repeats our own line and floods the log exactly during an outage (57,000
        // lines in a 10-minute soak); its errors still come through. `RUST_LOG` restores it.
        None => {
            builder
                .filter_level(log::LevelFilter::Trace)
                .filter_module("pingora_proxy", log::LevelFilter::Error);
        }
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
    if rust_log.is_none() {
        log::set_max_level(policy.level);
    }
}

/// Applies `[log] level` from a reloaded policy, unless `RUST_LOG` pins the filters.
pub(crate) fn set_level(level: log::LevelFilter) {
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(level);
    }
}
