//! The report: formatting, and the scan of the proxy's log.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::KNOWN_DANGLING_LOCK;

// === the report ===

pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

pub(crate) fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i]) / 1e3
}

/// A log line with its timestamp and every digit run removed, so that lines group by message.
fn log_shape(line: &str) -> String {
    let line = line.split_once(']').map_or(line, |(_, rest)| rest).trim();
    let mut out = String::with_capacity(line.len());
    let mut in_digits = false;
    for c in line.chars().take(160) {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    out
}

pub(crate) struct LogScan {
    pub(crate) lines: u64,
    pub(crate) errors: u64,
    pub(crate) warnings: u64,
    /// Panics by site and message (`thread '…' panicked at FILE:LINE:COL:` and the next line),
    /// except the known one (`KNOWN_DANGLING_LOCK`), counted apart.
    pub(crate) panics: BTreeMap<String, u64>,
    pub(crate) known_panics: u64,
    /// The first panic with what follows it (the backtrace, when `RUST_BACKTRACE` is set).
    pub(crate) first_panic: Vec<String>,
    pub(crate) top: Vec<(u64, String)>,
}

pub(crate) fn scan_log(text: &str) -> LogScan {
    let mut shapes: BTreeMap<String, u64> = BTreeMap::new();
    let mut scan = LogScan {
        lines: 0,
        errors: 0,
        warnings: 0,
        panics: BTreeMap::new(),
        known_panics: 0,
        first_panic: Vec::new(),
        top: Vec::new(),
    };
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        scan.lines += 1;
        if line.to_ascii_lowercase().contains("panicked") {
            let site = line.split_once(" panicked at ").map_or(*line, |(_, at)| at);
            let message = lines.get(i + 1).copied().unwrap_or("");
            if site.contains("/pingora-cache-") && message == KNOWN_DANGLING_LOCK {
                scan.known_panics += 1;
                continue;
            }
            *scan.panics.entry(format!("{site} {message}")).or_default() += 1;
            if scan.first_panic.is_empty() {
                scan.first_panic = lines[i..].iter().take(60).map(|l| l.to_string()).collect();
            }
        }
        // Backtrace frames and other continuation lines are not messages of their own.
        if line.starts_with(' ') {
            continue;
        }
        let head = line.get(..40).unwrap_or(line);
        if head.contains(" ERROR ") {
            scan.errors += 1;
        } else if head.contains(" WARN ") {
            scan.warnings += 1;
        }
        *shapes.entry(log_shape(line)).or_default() += 1;
    }
    let mut top: Vec<(u64, String)> = shapes.into_iter().map(|(s, n)| (n, s)).collect();
    top.sort_by_key(|t| std::cmp::Reverse(t.0));
    top.truncate(8);
    scan.top = top;
    scan
}

pub(crate) fn count_lines(path: &Path) -> u64 {
    File::open(path).map_or(0, |f| BufReader::new(f).lines().count() as u64)
}

/// The sum of every series of `name` that carries all of `labels` (`support::metric` reads
/// the first one only).
pub(crate) fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(series, value)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            let have: Vec<(&str, &str)> = rest
                .trim_end_matches('}')
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k, v.trim_matches('"')))
                .collect();
            (n == name && labels.iter().all(|l| have.contains(l)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}
