//! YAML access, Kubernetes quantities, and Pingora's shutdown timing.

use std::time::Duration;

use serde_yaml_ng::{Mapping, Value};

// ---------------------------------------------------------------------------------------------
// YAML access.

pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(key))
}

pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

pub(crate) fn seq_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path)
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(crate) fn named<'a>(items: &'a [Value], name: &str) -> Option<&'a Value> {
    items.iter().find(|i| str_at(i, &["name"]) == Some(name))
}

/// Kubernetes' integer-or-string port: a number, or the name of one of the container's ports.
pub(crate) fn resolve_port(container: &Value, port: &Value) -> Option<u16> {
    match port {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(name) => {
            let p = named(seq_at(container, &["ports"]), name)?;
            at(p, &["containerPort"])?
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
        }
        _ => None,
    }
}

/// Whether every label of `selector` is on the pod.
pub(crate) fn selects(selector: Option<&Value>, pod_labels: &Mapping) -> bool {
    match selector.and_then(Value::as_mapping) {
        Some(sel) if !sel.is_empty() => sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        _ => false,
    }
}

/// A Kubernetes memory quantity ("128Mi", "1G", "1048576") in bytes.
pub(crate) fn quantity_bytes(q: &str) -> Option<u64> {
    let units: [(&str, u64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<u64>().ok().map(|n| n * factor);
        }
    }
    q.parse().ok()
}

/// A duration as Pingora applies it: rounded up to whole seconds.
pub(crate) fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Pingora's final stop after the grace period (`graceful_shutdown_timeout_seconds` in
/// src/server.rs).
pub(crate) const FINAL_STOP_SECONDS: u64 = 1;
