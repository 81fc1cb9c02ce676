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
    let logger = builder.build();
    let filter = logger.filter();
    // A second init (tests, demo) keeps the first logger; that is fine.
    if log::set_boxed_logger(Box::new(WithoutHeaderTimeoutNoise(logger))).is_ok() {
        log::set_max_level(match rust_log {
            Some(_) => filter,
            None => policy.level,
        });
    }
}

/// The cause `proxy::head_clock` gives a read it fails once a request head took longer than
/// `[limits] header_timeout`.
pub(crate) const HEADER_TIMEOUT_CAUSE: &str = "request head not received within header_timeout";

/// Drops the error line Pingora writes for every connection whose head read failed ("Fail to
/// proxy: ... cause: <HEADER_TIMEOUT_CAUSE>") when the failure is Outrider's own header
/// timeout: a slowloris attack would otherwise write one error line per attacking connection.
/// The head clock counts those cuts (`outrider_header_timeouts_total`) and logs them at most
/// once a minute instead. env_logger filters by level and module only, hence the wrapper.
struct WithoutHeaderTimeoutNoise(env_logger::Logger);

impl log::Log for WithoutHeaderTimeoutNoise {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.target().starts_with("pingora_proxy") && is_header_timeout_noise(record.args()) {
            return;
        }
        self.0.log(record);
    }

    fn flush(&self) {
        self.0.flush();
    }
}

fn is_header_timeout_noise(args: &std::fmt::Arguments<'_>) -> bool {
    let text = args.to_string();
    text.starts_with("Fail to proxy") && text.contains(HEADER_TIMEOUT_CAUSE)
}

/// Applies `[log] level` from a reloaded policy, unless `RUST_LOG` pins the filters.
pub(crate) fn set_level(level: log::LevelFilter) {
    if std::env::var_os("RUST_LOG").is_none() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pingoras_line_for_a_header_timeout_cut_is_noise() {
        let cut = format!(
            "Fail to proxy: Downstream ReadError context: while reading request headers cause: \
             {HEADER_TIMEOUT_CAUSE}, downstream session type: h1"
        );
        assert!(is_header_timeout_noise(&format_args!("{cut}")));
        assert!(!is_header_timeout_noise(&format_args!(
            "Fail to proxy: Downstream ReadError context: while reading request headers cause: \
             Connection reset by peer (os error 104)"
        )));
        assert!(!is_header_timeout_noise(&format_args!(
            "{HEADER_TIMEOUT_CAUSE}"
        )));
    }
}
