//! The access log: one line per request on stdout (process logs go to stderr), as JSON or as
//! logfmt following `[log] format`. Off unless `[log] access_log = true`.

use std::io::Write;

use serde::Serialize;

use crate::config::policy::LogFormat;

#[derive(Serialize)]
pub(crate) struct Entry<'a> {
    pub(crate) ts: String,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) route: &'a str,
    pub(crate) upstream: &'a str,
    pub(crate) endpoint: &'a str,
    pub(crate) status: u16,
    pub(crate) duration_ms: f64,
    pub(crate) upstream_ms: Option<f64>,
    pub(crate) bytes_sent: usize,
    pub(crate) error: &'a str,
}

pub(crate) fn write(format: LogFormat, e: &Entry<'_>) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not fail the request.
    let _ = match format {
        LogFormat::Json => serde_json::to_writer(&mut out, e)
            .map_err(std::io::Error::other)
            .and_then(|_| out.write_all(b"\n")),
        LogFormat::Text => writeln!(
            out,
            "ts={} method={} path={:?} route={} upstream={} endpoint={} status={} duration_ms={:.3} upstream_ms={} bytes_sent={} error={}",
            e.ts,
            e.method,
            e.path,
            e.route,
            e.upstream,
            e.endpoint,
            e.status,
            e.duration_ms,
            e.upstream_ms.map_or("-".to_string(), |ms| format!("{ms:.3}")),
            e.bytes_sent,
            e.error
        ),
    };
}
