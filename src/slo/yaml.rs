//! YAML for the rule files, written here rather than with a YAML library: the rule files are
//! JSON-shaped (maps, lists, strings, numbers), and a YAML library (libyaml translated to
//! Rust) added about 0.3 MB to a binary whose size the dist check bounds at 12 MB.
//!
//! Block style throughout. Every single-line string is written double-quoted with JSON's
//! escapes, which are a subset of YAML's double-quoted escapes, so no string can change meaning
//! whatever it contains (`:`, `#`, `{{ $value }}`, leading spaces, `yes`...). A multi-line
//! string (a PromQL expression) is a literal block (`|-`) when that keeps it exact, so that the
//! shipped rule files read like the queries they are. Map keys are written bare when
//! they are plain identifiers (`alert`, `app.kubernetes.io/name`), quoted otherwise. Maps come
//! out in the order of `serde_json::Map`, sorted by key; Prometheus does not care.

use std::fmt::Write;

use serde_json::Value;

/// `value` as a YAML document. A scalar at the top is written on its own line.
pub(crate) fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_list(&mut out, items, 0),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (key, value) in map {
        pad(out, indent);
        out.push_str(&key_text(key));
        out.push(':');
        write_after_colon(out, value, indent);
    }
}

fn write_list(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        pad(out, indent);
        out.push('-');
        match item {
            Value::Object(map) if !map.is_empty() => {
                // The first entry shares the dash's line; the rest align under it.
                let mut first = true;
                for (key, value) in map {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        pad(out, indent + 2);
                    }
                    out.push_str(&key_text(key));
                    out.push(':');
                    write_after_colon(out, value, indent + 2);
                }
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                write_list(out, inner, indent + 2);
            }
            Value::String(s) if block_safe(s) => write_block(out, s, indent + 2),
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

/// What follows `key:` for a value of a map at `indent`.
fn write_after_colon(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_list(out, items, indent + 2);
        }
        Value::String(s) if block_safe(s) => write_block(out, s, indent + 2),
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

/// Whether `s` reads back exactly from a `|-` literal block: several lines, no final newline
/// (`-` strips it), a first line that does not start with a space (it would be taken for the
/// indentation), and only printable characters and tabs.
fn block_safe(s: &str) -> bool {
    s.contains('\n')
        && !s.ends_with('\n')
        && !s.starts_with(' ')
        && !s.starts_with('\n')
        && s.chars().all(|c| c == '\n' || c == '\t' || !c.is_control())
}

/// ` |-` and the lines of `s`, each at `indent` (empty lines stay empty).
fn write_block(out: &mut String, s: &str, indent: usize) {
    out.push_str(" |-\n");
    for line in s.split('\n') {
        if !line.is_empty() {
            pad(out, indent);
            out.push_str(line);
        }
        out.push('\n');
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quoted(s),
        Value::Array(_) => "[]".to_string(),
        Value::Object(_) => "{}".to_string(),
    }
}

fn quoted(s: &str) -> String {
    // A JSON string literal is a valid YAML double-quoted scalar with the same value.
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

fn key_text(key: &str) -> String {
    let plain = !key.is_empty()
        && key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'));
    if plain {
        key.to_string()
    } else {
        quoted(key)
    }
}

fn pad(out: &mut String, indent: usize) {
    let _ = write!(out, "{:indent$}", "");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::to_yaml;

    /// What the writer emits reads back, through a YAML parser, as the value it was given.
    fn round_trips(value: serde_json::Value) {
        let text = to_yaml(&value);
        let back: serde_json::Value =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("not YAML ({e}):\n{text}"));
        assert_eq!(back, value, "\n{text}");
    }

    #[test]
    fn rule_shaped_documents_read_back_unchanged() {
        round_trips(json!({
            "groups": [{
                "name": "outrider-slo-api",
                "interval": "30s",
                "rules": [
                    {"record": "outrider:route_error_ratio:rate5m", "expr": "sum by (route) (rate(x{status=~\"5..\"}[5m]))\n/ ignoring() y"},
                    {"alert": "OutriderFastBurn", "expr": "a > (14.4 * 0.001)", "for": "2m",
                     "labels": {"severity": "critical", "route": "api"},
                     "annotations": {"summary": "Route api: {{ $value | humanizePercentage }} errors", "runbook": "https://x/README.md#outriderfastburn"}}
                ]
            }],
            "empty_list": [], "empty_map": {}, "n": 1.5, "i": 3, "t": true, "z": null,
            "nested": [[1, "a"], []],
        }));
    }

    #[test]
    fn strings_that_would_change_meaning_bare_stay_strings() {
        for s in [
            "",
            " lead",
            "trail ",
            "a: b",
            "# not a comment",
            "yes",
            "no",
            "null",
            "1e3",
            "0x10",
            "- x",
            "{x}",
            "[x]",
            "!tag",
            "&a",
            "*a",
            "|",
            ">",
            "'q'",
            "\"dq\"",
            "back\\slash",
            "tab\there",
            "new\nline",
            "uni ✓",
            "%x",
            "@x",
            "`x`",
            "~",
            "a\n  b\n\nc",
            "line\n",
            " lead\nx",
            "\nx",
            "x\n ",
            "x\n\n",
            "a: b\n# c\n- d",
            "x\r\ny",
            "sum(\n  rate(x[5m])\n)",
        ] {
            round_trips(json!({ "k": s, "list": [s], s: 1 }));
        }
    }

    #[test]
    fn keys_are_bare_when_plain() {
        let text = to_yaml(&json!({"apiVersion": 1, "app.kubernetes.io/name": 2, "a b": 3}));
        assert!(text.contains("apiVersion: 1\n"), "{text}");
        assert!(text.contains("app.kubernetes.io/name: 2\n"), "{text}");
        assert!(text.contains("\"a b\": 3\n"), "{text}");
    }
}
