//! Turning TOML parse and serde errors into `FILE:LINE:COL: key.path: message`, and reporting
//! every error in the file rather than the first.
//!
//! serde stops at the first error of a document. Every key of the schema has a default, so
//! removing the offending entry from the parsed tree always leaves a document that may
//! deserialize; `deserialize_all` does that in a loop, with the schema types as the single
//! source of truth for what is valid. Spans survive because the tree is toml's spanned `DeTable`.

use std::fmt;
use std::ops::Range;

use serde::de::DeserializeOwned;
use serde::Serialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One problem in a conf file, located.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The key path, e.g. `routes[2].cache.default_ttl`; empty for syntax errors.
    pub key: String,
    pub(crate) message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A segment of a key path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Renders `[Key(routes), Index(2), Key(cache)]` as `routes[2].cache`.
pub(crate) fn path_string(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

/// The conf text with its file name: locates spans and key paths.
pub(crate) struct Source<'a> {
    pub(crate) file: &'a str,
    pub(crate) text: &'a str,
}

impl<'a> Source<'a> {
    pub(crate) fn new(file: &'a str, text: &'a str) -> Self {
        Source { file, text }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    pub(crate) fn error(
        &self,
        span: Range<usize>,
        key: String,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = self.line_col(span.start);
        ConfigError {
            file: self.file.to_string(),
            line,
            column,
            key,
            message: message.into(),
        }
    }
}

/// What deserializing a whole file found.
pub(crate) struct Deserialized<T> {
    /// The document; with schema errors, the document with the offending entries removed, so
    /// that checks across sections can still run. `None` after a syntax error.
    pub(crate) value: Option<T>,
    pub(crate) errors: Vec<ConfigError>,
}

/// Parses and deserializes `text`, collecting every syntax and schema error.
///
/// The common case, a valid file, is one plain parse. Only a file with errors pays for the
/// spanned tree and the remove-and-retry loop that finds every error.
pub(crate) fn deserialize_all<T: DeserializeOwned>(src: &Source<'_>) -> Deserialized<T> {
    let first_error = match toml::from_str::<T>(src.text) {
        Ok(value) => {
            return Deserialized {
                value: Some(value),
                errors: Vec::new(),
            }
        }
        Err(e) => e,
    };
    let (root, syntax) = DeTable::parse_recoverable(src.text);
    if !syntax.is_empty() {
        // A recovered tree after a syntax error yields confusing follow-on schema errors.
        let mut errors: Vec<ConfigError> = syntax
            .iter()
            .map(|e| {
                let span = e.span().unwrap_or(0..0);
                src.error(span, String::new(), e.message().trim_end())
            })
            .collect();
        // The parser reports some errors after later ones (e.g. a key's `=` before the key).
        errors.sort_by_key(|e| (e.line, e.column));
        return Deserialized {
            value: None,
            errors,
        };
    }

    let mut errors = Vec::new();
    let mut value = None;
    let mut work = root;
    // Each round removes one entry, so the loop ends; the cap only bounds pathological files.
    for _ in 0..256 {
        match T::deserialize(toml::de::Deserializer::from(work.clone())) {
            Ok(v) => {
                value = Some(v);
                break;
            }
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let path = deepest_entry(work.get_ref(), &span);
                errors.push(src.error(span, path_string(&path), e.message().trim_end()));
                if path.is_empty() || !remove_entry(work.get_mut(), &path) {
                    break;
                }
            }
        }
    }
    if errors.is_empty() {
        // The plain parse failed where the spanned one did not: report what it said.
        let span = first_error.span().unwrap_or(0..0);
        errors.push(src.error(span, String::new(), first_error.message().trim_end()));
        value = None;
    }
    errors.sort_by_key(|e| (e.line, e.column));
    errors.dedup();
    Deserialized { value, errors }
}

/// Locates errors found after deserialization (a route naming a missing upstream, say) by
/// their key paths. Parses the text again: this runs only when there are such errors.
pub(crate) fn locate(src: &Source<'_>, problems: Vec<(Vec<Seg>, String)>) -> Vec<ConfigError> {
    let (root, _) = DeTable::parse_recoverable(src.text);
    let mut errors: Vec<ConfigError> = problems
        .into_iter()
        .map(|(path, msg)| src.error(span_of(&root, &path), path_string(&path), msg))
        .collect();
    errors.sort_by_key(|e| (e.line, e.column));
    errors
}

/// The key path of the innermost entry whose key or value span holds `span`.
///
/// Parent spans are not trusted to contain their children (a `[a.b]` header table is spread
/// over the file), so every entry is visited and the deepest hit wins.
pub(crate) fn deepest_entry(table: &DeTable<'_>, span: &Range<usize>) -> Vec<Seg> {
    let mut best = Vec::new();
    visit_table(table, span, &mut Vec::new(), &mut best);
    best
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end.max(outer.start + 1)
}

fn visit_table(table: &DeTable<'_>, span: &Range<usize>, path: &mut Vec<Seg>, best: &mut Vec<Seg>) {
    for (key, value) in table.iter() {
        path.push(Seg::Key(key.get_ref().to_string()));
        if (contains(&key.span(), span) || contains(&value.span(), span)) && path.len() > best.len()
        {
            *best = path.clone();
        }
        visit_value(value.get_ref(), span, path, best);
        path.pop();
    }
}

fn visit_value(value: &DeValue<'_>, span: &Range<usize>, path: &mut Vec<Seg>, best: &mut Vec<Seg>) {
    match value {
        DeValue::Table(t) => visit_table(t, span, path, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                // Array items are not removable one by one, so a hit on a scalar item reports
                // the item but removal (see `remove_entry`) drops the whole key.
                if contains(&item.span(), span) && path.len() > best.len() {
                    *best = path.clone();
                }
                visit_value(item.get_ref(), span, path, best);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Removes the table entry that `path` names (or the array holding the named item).
fn remove_entry(table: &mut DeTable<'_>, path: &[Seg]) -> bool {
    // The last key segment is what gets removed; trailing indexes point into its array.
    let Some(last_key) = path.iter().rposition(|s| matches!(s, Seg::Key(_))) else {
        return false;
    };
    let Some(parent) = navigate_mut(table, &path[..last_key]) else {
        return false;
    };
    let Seg::Key(name) = &path[last_key] else {
        return false;
    };
    parent.remove(name.as_str()).is_some()
}

fn navigate_mut<'t, 'a>(
    mut table: &'t mut DeTable<'a>,
    path: &[Seg],
) -> Option<&'t mut DeTable<'a>> {
    let mut i = 0;
    while i < path.len() {
        let Seg::Key(name) = &path[i] else {
            return None;
        };
        let value = table
            .iter_mut()
            .find(|(k, _)| k.get_ref() == name)?
            .1
            .get_mut();
        i += 1;
        table = match value {
            DeValue::Table(t) => t,
            DeValue::Array(items) => {
                let Some(Seg::Index(idx)) = path.get(i) else {
                    return None;
                };
                i += 1;
                match items.get_mut(*idx)?.get_mut() {
                    DeValue::Table(t) => t,
                    _ => return None,
                }
            }
            _ => return None,
        };
    }
    Some(table)
}

/// The span of the value at `path` (falling back to the nearest existing ancestor), for errors
/// found after deserialization, such as a route naming a missing upstream.
pub(crate) fn span_of(root: &Spanned<DeTable<'_>>, path: &[Seg]) -> Range<usize> {
    let mut span = 0..0;
    let mut current: Option<&DeValue<'_>> = None;
    let mut table = Some(root.get_ref());
    for seg in path {
        let next = match (seg, table, current) {
            (Seg::Key(name), Some(t), _) => {
                t.iter().find(|(k, _)| k.get_ref() == name).map(|(_, v)| v)
            }
            (Seg::Index(i), _, Some(DeValue::Array(items))) => items.get(*i),
            _ => None,
        };
        let Some(next) = next else { break };
        span = next.span();
        current = Some(next.get_ref());
        table = next.get_ref().as_table();
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    #[derive(Default)]
    struct Doc {
        a: Inner,
        list: Vec<Inner>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Inner {
        n: u32,
        s: String,
    }

    fn errs(text: &str) -> Vec<String> {
        let src = Source::new("f.toml", text);
        let found = deserialize_all::<Doc>(&src);
        found.errors.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn every_schema_error_is_reported_with_its_location() {
        let text = "[a]\nn = \"x\"\nbogus = 1\n\n[[list]]\ns = 3\n";
        let e = errs(text);
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("f.toml:2:5: a.n: "), "{e:?}");
        assert!(
            e[1].starts_with("f.toml:3:1: a.bogus: unknown field `bogus`"),
            "{e:?}"
        );
        assert!(e[2].starts_with("f.toml:6:5: list[0].s: "), "{e:?}");
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let e = errs("[a]\nn = = 1\n");
        assert!(!e.is_empty());
        assert!(e[0].starts_with("f.toml:2:"), "{e:?}");
    }

    #[test]
    fn span_of_finds_nested_values() {
        let text = "[[list]]\nn = 1\n[[list]]\ns = \"here\"\n";
        let (root, _) = DeTable::parse_recoverable(text);
        let span = span_of(
            &root,
            &[Seg::Key("list".into()), Seg::Index(1), Seg::Key("s".into())],
        );
        assert_eq!(&text[span], "\"here\"");
    }

    #[test]
    fn line_col_counts_characters() {
        let src = Source::new("f", "ab\néé x");
        assert_eq!(src.line_col(0), (1, 1));
        assert_eq!(src.line_col(3), (2, 1));
        assert_eq!(src.line_col("ab\néé ".len()), (2, 4));
    }
}
