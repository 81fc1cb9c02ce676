//! Entity tags (RFC 9110 §8.8.3): one tag (`ETag`, `If-Range`), lists of them (`If-Match`,
//! `If-None-Match`), the strong and weak comparisons, and [`weaken`].
//!
//! The values come from clients and origins alike, so parsing is total: it works on bytes,
//! never slices a `str`, allocates nothing and is linear in the value's length.
//!
//! ```text
//! entity-tag = [ weak ] opaque-tag        weak = %s"W/"   (case-sensitive: `w/` is malformed)
//! opaque-tag = DQUOTE *etagc DQUOTE       etagc = %x21 / %x23-7E / obs-text
//! ```
//! A comma is an `etagc`, so a list cannot be split on commas before parsing: `"a,b"` is one
//! tag. The list parser reads tag by tag instead.

use std::borrow::Cow;

/// A parsed entity-tag. `opaque` is what sits between the quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct EntityTag<'a> {
    pub(super) weak: bool,
    pub(super) opaque: &'a [u8],
}

/// A well-formed member of an `If-Match` or `If-None-Match` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Member<'a> {
    /// `*`: any current representation.
    Any,
    Tag(EntityTag<'a>),
}

/// The well-formed members of a list field, in order; malformed members are skipped.
pub(super) struct Members<'a> {
    rest: &'a [u8],
}

/// The two ways of comparing entity-tags (RFC 9110 §8.8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Comparison {
    /// [`EntityTag::strong_eq`]: `If-Match`, `If-Range`.
    Strong,
    /// [`EntityTag::weak_eq`]: `If-None-Match`.
    Weak,
}

/// What a list field says once compared with the current entity-tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ListMatch {
    /// No well-formed member and no `*`: the field is treated as absent.
    Ignored,
    /// `*` is listed, or a listed tag matches.
    Matched,
    /// Only well-formed tags, none of which matches (or there is no current tag).
    NotMatched,
}

/// `"x"` → `W/"x"`; a tag that is already weak is returned as is (OWS around it trimmed).
///
/// For a representation the proxy transformed (compressed, say): it is no longer the bytes the
/// strong tag promised, but it is semantically equivalent (RFC 9110 §8.8.1), which is what a
/// weak tag says. The input is not validated: a malformed tag gets the prefix too, so that the
/// result can never equal the original under any comparison, byte-wise ones included.
pub fn weaken(etag: &str) -> Cow<'_, str> {
    let etag = etag.trim_matches([' ', '\t']);
    if etag.starts_with("W/") {
        Cow::Borrowed(etag)
    } else {
        Cow::Owned(format!("W/{etag}"))
    }
}

/// The members of `value`, an `If-Match` or `If-None-Match` field value.
pub(super) fn members(value: &str) -> Members<'_> {
    Members {
        rest: value.as_bytes(),
    }
}

/// Compares the list `value` with the current tag.
///
/// `*` anywhere in the list matches: a list is a disjunction and `*` means "any current
/// representation", so `"a", *` says no more than `*` (it is what a client sending `*` and
/// `"a"` on two lines produces once the lines are joined). The caller only evaluates
/// preconditions when a current representation exists, so `*` never needs to fail here.
pub(super) fn match_list(
    value: &str,
    current: Option<EntityTag<'_>>,
    comparison: Comparison,
) -> ListMatch {
    let mut any_valid = false;
    for member in members(value) {
        match member {
            Member::Any => return ListMatch::Matched,
            Member::Tag(tag) => {
                any_valid = true;
                if current.is_some_and(|current| comparison.matches(tag, current)) {
                    return ListMatch::Matched;
                }
            }
        }
    }
    if any_valid {
        ListMatch::NotMatched
    } else {
        ListMatch::Ignored
    }
}

// === impl EntityTag ===

impl<'a> EntityTag<'a> {
    /// A field value that is exactly one entity-tag, OWS around it allowed (`ETag`,
    /// `If-Range`). Anything else, a list of two included, is `None`.
    pub(super) fn parse(value: &'a str) -> Option<Self> {
        let bytes = trim_ows(value.as_bytes());
        match parse_prefix(bytes) {
            Ok((tag, len)) if len == bytes.len() => Some(tag),
            _ => None,
        }
    }

    /// Strong comparison (RFC 9110 §8.8.3.2): both strong and the opaque-tags identical.
    pub(super) fn strong_eq(self, other: EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison (RFC 9110 §8.8.3.2): the opaque-tags identical, `W/` or not.
    pub(super) fn weak_eq(self, other: EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

// === impl Comparison ===

impl Comparison {
    pub(super) fn matches(self, a: EntityTag<'_>, b: EntityTag<'_>) -> bool {
        match self {
            Comparison::Strong => a.strong_eq(b),
            Comparison::Weak => a.weak_eq(b),
        }
    }
}

// === impl Members ===

impl<'a> Iterator for Members<'a> {
    type Item = Member<'a>;

    fn next(&mut self) -> Option<Member<'a>> {
        loop {
            // Empty members, and the OWS around commas, are allowed (RFC 9110 §5.6.1).
            let start = self
                .rest
                .iter()
                .position(|&b| !matches!(b, b' ' | b'\t' | b','))?;
            let rest = self.rest.get(start..).unwrap_or_default();
            match parse_member(rest) {
                Ok((member, len)) => {
                    self.rest = rest.get(len..).unwrap_or_default();
                    return Some(member);
                }
                // Where a malformed member ends is a guess (a comma may sit inside a tag): it
                // ends at the first comma from the point where parsing failed. Skipping it
                // only ever removes candidates, so a broken member can make a match fail but
                // never make one succeed.
                Err(at) => {
                    let tail = rest.get(at..).unwrap_or_default();
                    self.rest = match tail.iter().position(|&b| b == b',') {
                        Some(comma) => tail.get(comma + 1..).unwrap_or_default(),
                        None => &[],
                    };
                }
            }
        }
    }
}

/// One member at the start of `input` (which does not start with OWS or a comma): `*` or an
/// entity-tag, then OWS, then a comma or the end. `Ok` gives the member and the bytes it took
/// (the comma excluded); `Err` the offset where it stopped being well-formed.
fn parse_member(input: &[u8]) -> Result<(Member<'_>, usize), usize> {
    let (member, len) = if input.first() == Some(&b'*') {
        (Member::Any, 1)
    } else {
        let (tag, len) = parse_prefix(input)?;
        (Member::Tag(tag), len)
    };
    let after = input.get(len..).unwrap_or_default();
    let ows = after.iter().take_while(|&&b| is_ows(b)).count();
    match after.get(ows) {
        None | Some(b',') => Ok((member, len + ows)),
        Some(_) => Err(len + ows),
    }
}

/// An entity-tag at the start of `input`: `Ok((tag, bytes it took))`, or `Err(offset of the
/// first byte that does not fit)`.
fn parse_prefix(input: &[u8]) -> Result<(EntityTag<'_>, usize), usize> {
    let (weak, quote) = match input.strip_prefix(b"W/") {
        Some(_) => (true, 2),
        None => (false, 0),
    };
    if input.get(quote) != Some(&b'"') {
        return Err(quote);
    }
    let body = input.get(quote + 1..).unwrap_or_default();
    let len = body.iter().take_while(|&&b| is_etagc(b)).count();
    let (opaque, after) = body.split_at(len);
    match after.first() {
        Some(b'"') => Ok((EntityTag { weak, opaque }, quote + 1 + len + 1)),
        _ => Err(quote + 1 + len),
    }
}

/// `etagc = %x21 / %x23-7E / obs-text` (RFC 9110 §8.8.3). A `&str` carries obs-text as UTF-8,
/// whose bytes are all ≥ 0x80, so the byte-wise test admits any non-ASCII character.
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7E).contains(&b) || b >= 0x80
}

/// Optional whitespace is spaces and tabs only (RFC 9110 §5.6.3).
fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().take_while(|&&b| is_ows(b)).count();
    let bytes = bytes.get(start..).unwrap_or_default();
    let end = bytes.len() - bytes.iter().rev().take_while(|&&b| is_ows(b)).count();
    bytes.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tag(weak: bool, opaque: &str) -> EntityTag<'_> {
        EntityTag {
            weak,
            opaque: opaque.as_bytes(),
        }
    }

    fn strong(opaque: &str) -> Member<'_> {
        Member::Tag(tag(false, opaque))
    }

    fn weak(opaque: &str) -> Member<'_> {
        Member::Tag(tag(true, opaque))
    }

    #[test]
    fn single_tags() {
        let rows: &[(&str, Option<EntityTag>)] = &[
            ("\"xyzzy\"", Some(tag(false, "xyzzy"))),
            ("W/\"xyzzy\"", Some(tag(true, "xyzzy"))),
            ("\"\"", Some(tag(false, ""))),
            ("W/\"\"", Some(tag(true, ""))),
            (" \t\"x\"\t ", Some(tag(false, "x"))),
            // A comma, a backslash and `W/` are etagc: no escaping, no nesting.
            ("\"a,b\"", Some(tag(false, "a,b"))),
            ("\"a\\\"", Some(tag(false, "a\\"))),
            ("\"W/x\"", Some(tag(false, "W/x"))),
            ("\"!#~\"", Some(tag(false, "!#~"))),
            // obs-text.
            ("\"é🦀\"", Some(tag(false, "é🦀"))),
            ("", None),
            ("   ", None),
            ("xyzzy", None),
            ("\"x", None),
            ("x\"", None),
            ("\"", None),
            ("w/\"x\"", None),
            ("W/x", None),
            ("W/", None),
            ("W /\"x\"", None),
            ("W/ \"x\"", None),
            ("\"x\"y", None),
            ("\"x\" \"y\"", None),
            ("\"x\", \"y\"", None),
            ("\"a b\"", None),
            ("\"a\tb\"", None),
            ("\"a\u{7f}\"", None),
            ("\"a\u{0}\"", None),
            ("'x'", None),
            ("*", None),
            ("\n\"x\"", None),
        ];
        for (value, expected) in rows {
            assert_eq!(EntityTag::parse(value), *expected, "ETag: {value:?}");
        }
    }

    /// RFC 9110 §8.8.3.2's example table.
    #[test]
    fn strong_and_weak_comparison() {
        let rows = [
            // (a, b, strong, weak)
            (tag(true, "1"), tag(true, "1"), false, true),
            (tag(true, "1"), tag(true, "2"), false, false),
            (tag(true, "1"), tag(false, "1"), false, true),
            (tag(false, "1"), tag(false, "1"), true, true),
            // And the rows the RFC leaves implicit.
            (tag(false, "1"), tag(true, "1"), false, true),
            (tag(false, "1"), tag(false, "2"), false, false),
            (tag(false, ""), tag(false, ""), true, true),
            (tag(false, "a"), tag(false, "A"), false, false),
        ];
        for (a, b, strong, weak) in rows {
            assert_eq!(a.strong_eq(b), strong, "strong {a:?} {b:?}");
            assert_eq!(a.weak_eq(b), weak, "weak {a:?} {b:?}");
        }
    }

    fn list(value: &str) -> Vec<Member<'_>> {
        members(value).collect()
    }

    #[test]
    fn lists_with_whitespace_and_empty_members() {
        let rows: &[(&str, &[Member])] = &[
            ("\"a\"", &[strong("a")]),
            ("\"a\",\"b\"", &[strong("a"), strong("b")]),
            ("\"a\" , W/\"b\"", &[strong("a"), weak("b")]),
            (" \t\"a\"\t,\t \"b\" ", &[strong("a"), strong("b")]),
            (",,\"a\",, ,\"b\",,", &[strong("a"), strong("b")]),
            ("\"a,b\", \"c\"", &[strong("a,b"), strong("c")]),
            ("\"a\", \"a\"", &[strong("a"), strong("a")]),
            ("*", &[Member::Any]),
            (" * ", &[Member::Any]),
            ("\"a\", *", &[strong("a"), Member::Any]),
            ("", &[]),
            (" , ,\t", &[]),
        ];
        for (value, expected) in rows {
            assert_eq!(list(value), *expected, "list {value:?}");
        }
    }

    #[test]
    fn malformed_members_are_skipped() {
        let rows: &[(&str, &[Member])] = &[
            ("abc", &[]),
            ("abc, \"a\"", &[strong("a")]),
            ("\"a\", abc", &[strong("a")]),
            ("\"a\" junk, \"b\"", &[strong("b")]),
            ("\"a\"\"b\", \"c\"", &[strong("c")]),
            ("\"a b\", \"c\"", &[strong("c")]),
            ("\"a,b c\", \"d\"", &[strong("d")]),
            ("w/\"a\", W/\"b\"", &[weak("b")]),
            ("W/, \"a\"", &[strong("a")]),
            ("**, \"a\"", &[strong("a")]),
            ("*\"a\", \"b\"", &[strong("b")]),
            // Unterminated: the rest of the value is inside its quotes.
            ("\"a, \"b\"", &[]),
            ("\"a", &[]),
            ("\"a\", \"b", &[strong("a")]),
            ("\"a\";q=1, \"b\"", &[strong("b")]),
            ("\"é\", \u{1F980}, \"b\"", &[strong("é"), strong("b")]),
        ];
        for (value, expected) in rows {
            assert_eq!(list(value), *expected, "list {value:?}");
        }
    }

    #[test]
    fn match_list_outcomes() {
        let current = Some(tag(false, "v1"));
        let weak_current = Some(tag(true, "v1"));
        let strong = Comparison::Strong;
        let weak = Comparison::Weak;
        let rows = [
            ("\"v1\"", current, strong, ListMatch::Matched),
            ("\"v0\", \"v1\"", current, strong, ListMatch::Matched),
            ("\"v0\"", current, strong, ListMatch::NotMatched),
            ("W/\"v1\"", current, strong, ListMatch::NotMatched),
            ("W/\"v1\"", current, weak, ListMatch::Matched),
            ("\"v1\"", weak_current, strong, ListMatch::NotMatched),
            ("\"v1\"", weak_current, weak, ListMatch::Matched),
            ("\"v1\"", None, weak, ListMatch::NotMatched),
            ("*", None, strong, ListMatch::Matched),
            ("\"v0\", *", current, strong, ListMatch::Matched),
            ("junk", current, strong, ListMatch::Ignored),
            ("", current, weak, ListMatch::Ignored),
            ("junk, \"v0\"", current, weak, ListMatch::NotMatched),
        ];
        for (value, current, comparison, expected) in rows {
            assert_eq!(
                match_list(value, current, comparison),
                expected,
                "{value:?} against {current:?}"
            );
        }
    }

    #[test]
    fn weaken_prefixes_strong_tags_only() {
        assert_eq!(weaken("\"x\""), "W/\"x\"");
        assert_eq!(weaken(" \"x\"\t"), "W/\"x\"");
        assert_eq!(weaken("\"\""), "W/\"\"");
        assert!(matches!(weaken("W/\"x\""), Cow::Borrowed("W/\"x\"")));
        assert!(matches!(weaken(" W/\"x\" "), Cow::Borrowed("W/\"x\"")));
        // Not validated: still never equal to the input.
        assert_eq!(weaken("abc"), "W/abc");
        assert_eq!(weaken(""), "W/");
        let weakened = weaken("\"a,b\"");
        assert_eq!(
            EntityTag::parse(&weakened),
            Some(EntityTag {
                weak: true,
                opaque: b"a,b"
            })
        );
    }

    /// A well-formed entity-tag as a header would carry it.
    fn well_formed() -> impl Strategy<Value = String> {
        (any::<bool>(), "[!#-~\u{80}-\u{10FFFF}]{0,8}")
            .prop_map(|(weak, opaque)| format!("{}\"{opaque}\"", if weak { "W/" } else { "" }))
    }

    /// Tags that collide often, so that the equal cases get exercised too.
    fn colliding() -> impl Strategy<Value = String> {
        (any::<bool>(), "[ab,]{0,2}")
            .prop_map(|(weak, opaque)| format!("{}\"{opaque}\"", if weak { "W/" } else { "" }))
    }

    proptest! {
        #[test]
        fn well_formed_tags_parse(value in well_formed()) {
            let tag = EntityTag::parse(&value);
            prop_assert!(tag.is_some());
            prop_assert_eq!(list(&value), vec![Member::Tag(tag.unwrap())]);
        }

        #[test]
        fn weak_comparison_is_reflexive_and_symmetric(
            a in prop_oneof![well_formed(), colliding()],
            b in prop_oneof![well_formed(), colliding()],
        ) {
            let (a, b) = (EntityTag::parse(&a).unwrap(), EntityTag::parse(&b).unwrap());
            prop_assert!(a.weak_eq(a));
            prop_assert_eq!(a.weak_eq(b), b.weak_eq(a));
            prop_assert_eq!(a.strong_eq(b), b.strong_eq(a));
            // Strong implies weak; strong is reflexive exactly on strong tags.
            prop_assert!(!a.strong_eq(b) || a.weak_eq(b));
            prop_assert_eq!(a.strong_eq(a), !a.weak);
        }

        #[test]
        fn joined_lists_parse_back(
            tags in prop::collection::vec(well_formed(), 0..6),
            separator in "[ \t]{0,2},[ \t]{0,2}(,[ \t]{0,2}){0,2}",
        ) {
            let value = tags.join(&separator);
            let expected: Vec<_> = tags.iter().map(|t| Member::Tag(EntityTag::parse(t).unwrap())).collect();
            prop_assert_eq!(list(&value), expected);
        }

        #[test]
        fn arbitrary_lists_never_panic(value in any::<String>()) {
            let n = members(&value).count();
            prop_assert!(n <= value.len());
            let _ = EntityTag::parse(&value);
            let _ = weaken(&value);
        }

        #[test]
        fn near_miss_lists_never_panic(value in "[\"W/*, \t\u{7f}é]{0,24}") {
            for member in members(&value) {
                if let Member::Tag(tag) = member {
                    prop_assert!(tag.opaque.iter().all(|&b| is_etagc(b)));
                }
            }
        }
    }
}
