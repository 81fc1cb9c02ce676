//! `Range` (RFC 9110 §14.1.2, §14.2): which bytes of a `len`-byte representation a request asks
//! for, read strictly.
//!
//! Pingora's range filter serves the ranges, but reads the field loosely (fuzzing found it):
//! `bytes=-0` became an empty 206 (`Content-Range: bytes 10-9/10`, and on an empty body
//! `0 - 1`, a panic where overflow is checked); a position it could not read as `usize` (a
//! non-ASCII digit, which its `\d` accepts, or more than 20 digits) counted as absent, turning
//! `bytes=99999999999999999999-5` into "the last 5 bytes". So the proxy decides here and hands
//! Pingora only a normalised `bytes=first-last,...` of satisfiable ranges.
//!
//! - A unit other than `bytes` (case-insensitive), or any syntax error (a non-ASCII-digit
//!   position, a missing `-`, `last < first`, no range at all) means the field is ignored:
//!   the whole representation (§14.2: "MAY ignore").
//! - Positions are ASCII digits of any length; one too large for `u64` saturates, which is
//!   past any end: a `first` that large is unsatisfiable, a `last` or a suffix that large
//!   reaches the end.
//! - `first-` and `first-last` are satisfiable when `first < len`; `-suffix` when
//!   `suffix > 0` and `len > 0`. Unsatisfiable ranges in a set with satisfiable ones are
//!   dropped; with none satisfiable the answer is 416 (§14.1.1).
//! - Empty list elements are skipped (§5.6.1: recipients accept them).

/// What to send for a request's `Range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangePlan {
    /// The whole representation: no usable `Range`.
    Whole,
    /// 416: no range in the set is satisfiable.
    Unsatisfiable,
    /// These inclusive `(first, last)` byte positions, in the order asked, each within the
    /// representation.
    Parts(Vec<(u64, u64)>),
}

/// Reads `field` (a `Range` value) against a representation of `len` bytes.
pub fn plan(field: &[u8], len: u64) -> RangePlan {
    let Some(set) = split_unit(field) else {
        return RangePlan::Whole;
    };
    let mut parts = Vec::new();
    let mut seen = false;
    for spec in set.split(|&b| b == b',') {
        let spec = trim_ows(spec);
        if spec.is_empty() {
            continue;
        }
        seen = true;
        let Some(range) = parse_spec(spec) else {
            return RangePlan::Whole;
        };
        if let Some(part) = satisfiable(range, len) {
            parts.push(part);
        }
    }
    match (seen, parts.is_empty()) {
        (false, _) => RangePlan::Whole,
        (true, true) => RangePlan::Unsatisfiable,
        (true, false) => RangePlan::Parts(parts),
    }
}

/// The normalised field for `parts`: `bytes=first-last,...`.
pub fn field_of(parts: &[(u64, u64)]) -> String {
    let mut field = String::from("bytes=");
    for (i, (first, last)) in parts.iter().enumerate() {
        if i > 0 {
            field.push(',');
        }
        field.push_str(&format!("{first}-{last}"));
    }
    field
}

#[derive(Debug, Clone, Copy)]
enum Spec {
    /// `first-` (`last` is `None`) or `first-last`.
    Int { first: u64, last: Option<u64> },
    /// `-suffix`.
    Suffix(u64),
}

fn split_unit(field: &[u8]) -> Option<&[u8]> {
    let field = trim_ows(field);
    let eq = field.iter().position(|&b| b == b'=')?;
    let (unit, set) = (&field[..eq], &field[eq + 1..]);
    unit.eq_ignore_ascii_case(b"bytes").then_some(set)
}

fn parse_spec(spec: &[u8]) -> Option<Spec> {
    let dash = spec.iter().position(|&b| b == b'-')?;
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    if first.is_empty() {
        return Some(Spec::Suffix(digits(last)?));
    }
    let first_value = digits(first)?;
    let last = if last.is_empty() {
        None
    } else {
        let last_value = digits(last)?;
        // Compared as written: saturated values would hide the order of two positions
        // beyond u64.
        if numerically_less(last, first) {
            return None;
        }
        Some(last_value)
    };
    Some(Spec::Int {
        first: first_value,
        last,
    })
}

fn satisfiable(spec: Spec, len: u64) -> Option<(u64, u64)> {
    let end = len.checked_sub(1)?;
    match spec {
        Spec::Int { first, last } => {
            (first < len).then(|| (first, last.map_or(end, |last| last.min(end))))
        }
        Spec::Suffix(0) => None,
        Spec::Suffix(suffix) => Some((len - suffix.min(len), end)),
    }
}

/// One or more ASCII digits, saturating at `u64::MAX`.
fn digits(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// `a < b` for two runs of ASCII digits of any length.
fn numerically_less(a: &[u8], b: &[u8]) -> bool {
    let significant = |d: &[u8]| -> usize { d.iter().position(|&c| c != b'0').unwrap_or(d.len()) };
    let (a, b) = (&a[significant(a)..], &b[significant(b)..]);
    (a.len(), a) < (b.len(), b)
}

fn trim_ows(mut text: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = text {
        text = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = text {
        text = rest;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parts(list: &[(u64, u64)]) -> RangePlan {
        RangePlan::Parts(list.to_vec())
    }

    #[test]
    fn satisfiable_ranges_are_clamped_to_the_representation() {
        let rows: &[(&str, RangePlan)] = &[
            ("bytes=0-4", parts(&[(0, 4)])),
            ("bytes=2-", parts(&[(2, 9)])),
            ("bytes=5-100", parts(&[(5, 9)])),
            ("bytes=-3", parts(&[(7, 9)])),
            ("bytes=-30", parts(&[(0, 9)])),
            ("BYTES = 1-1 , 3-4", RangePlan::Whole), // no OWS around "="
            ("Bytes=1-1 , 3-4", parts(&[(1, 1), (3, 4)])),
            ("bytes=1-1,,\t3-4, ", parts(&[(1, 1), (3, 4)])),
            ("bytes=-99999999999999999999,4-5", parts(&[(0, 9), (4, 5)])),
            ("bytes=0-99999999999999999999", parts(&[(0, 9)])),
        ];
        for (field, expected) in rows {
            assert_eq!(plan(field.as_bytes(), 10), *expected, "{field}");
        }
    }

    #[test]
    fn unsatisfiable_sets_are_416_and_mixed_sets_keep_the_good_ranges() {
        let rows: &[(&str, u64, RangePlan)] = &[
            ("bytes=-0", 10, RangePlan::Unsatisfiable),
            ("bytes=10-", 10, RangePlan::Unsatisfiable),
            (
                "bytes=99999999999999999999999-",
                10,
                RangePlan::Unsatisfiable,
            ),
            ("bytes=-5", 0, RangePlan::Unsatisfiable),
            ("bytes=0-", 0, RangePlan::Unsatisfiable),
            ("bytes=-0,2-3", 10, parts(&[(2, 3)])),
            ("bytes=20-30,-2", 10, parts(&[(8, 9)])),
        ];
        for (field, len, expected) in rows {
            assert_eq!(plan(field.as_bytes(), *len), *expected, "{field} on {len}");
        }
    }

    #[test]
    fn invalid_fields_are_ignored() {
        for field in [
            "bytes=\u{663}-5",
            "bytes=99999999999999999999-5",
            "bytes=5-4",
            "bytes=33333333333333339900-33333333333333333339",
            "bytes=010-9",
            "bytes=",
            "bytes=,",
            "bytes=abc",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes=0x1-2",
            "bytes 1-2",
            "items=0-1",
            "bytes=1 -2",
            "",
        ] {
            assert_eq!(plan(field.as_bytes(), 10), RangePlan::Whole, "{field:?}");
        }
    }

    #[test]
    fn the_normalised_field_lists_the_parts() {
        assert_eq!(field_of(&[(0, 4), (7, 9)]), "bytes=0-4,7-9");
    }

    proptest! {
        /// Every part lies within the representation and the normalised field reads back the
        /// same; no input panics.
        #[test]
        fn parts_stay_within_the_representation(field in proptest::collection::vec(any::<u8>(), 0..64), len in 0u64..64) {
            if let RangePlan::Parts(list) = plan(&field, len) {
                prop_assert!(!list.is_empty());
                for &(first, last) in &list {
                    prop_assert!(first <= last && last < len);
                }
                prop_assert_eq!(plan(field_of(&list).as_bytes(), len), RangePlan::Parts(list));
            }
        }

        #[test]
        fn well_formed_sets_are_never_ignored(specs in proptest::collection::vec((0u64..40, 0u64..40, any::<bool>()), 1..5), len in 0u64..30) {
            let field = format!(
                "bytes={}",
                specs
                    .iter()
                    .map(|&(a, b, suffix)| if suffix { format!("-{a}") } else { format!("{}-{}", a.min(b), a.max(b)) })
                    .collect::<Vec<_>>()
                    .join(",")
            );
            prop_assert_ne!(plan(field.as_bytes(), len), RangePlan::Whole, "{}", field);
        }
    }
}
