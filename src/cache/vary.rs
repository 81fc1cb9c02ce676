//! The request-field values a `Vary` secondary key is built from (RFC 9111 §4.1).
//!
//! §4.1 lets a cache normalise the values it compares "by removing whitespace, combining
//! multiple lines and normalising both values in a way that is known to have identical
//! semantics". With the route's `normalize_vary`, the list-valued negotiation fields
//! ([`NORMALIZED`]) are compared as sets of lowercase members without whitespace, so
//! `Accept-Language: en-US, fr` and `fr,en-us` share one entry instead of splitting the cache
//! per browser spelling. The risk is small but real: for members of equal weight, order can
//! be a preference some origins read (RFC 9110 leaves it open), and such an origin would then
//! be served the variant first stored for either order. Off by default. Other fields
//! (`Cookie`, `Authorization`, application fields) are always compared exactly, lines joined
//! with `", "`.

/// Fields whose value is a comma-separated list of case-insensitive members (RFC 9110 §12.5).
pub(crate) const NORMALIZED: [&str; 4] = [
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
];

/// The bytes the secondary key hashes for field `name` (lowercase) with these request lines.
pub(crate) fn key_value<'a>(
    name: &str,
    lines: impl IntoIterator<Item = &'a [u8]>,
    normalize: bool,
) -> Vec<u8> {
    if normalize && NORMALIZED.contains(&name) {
        return normalized(lines);
    }
    let mut joined = Vec::new();
    for (i, line) in lines.into_iter().enumerate() {
        if i > 0 {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(line);
    }
    joined
}

/// Members lowercased, stripped of whitespace, sorted and deduplicated, joined with `,`.
fn normalized<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut members: Vec<Vec<u8>> = lines
        .into_iter()
        .flat_map(|line| line.split(|&b| b == b','))
        .map(|member| {
            member
                .iter()
                .filter(|b| !b.is_ascii_whitespace())
                .map(u8::to_ascii_lowercase)
                .collect::<Vec<u8>>()
        })
        .filter(|member| !member.is_empty())
        .collect();
    members.sort();
    members.dedup();
    members.join(&b","[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, lines: &[&str], normalize: bool) -> Vec<u8> {
        key_value(name, lines.iter().map(|l| l.as_bytes()), normalize)
    }

    #[test]
    fn list_fields_normalise_case_whitespace_and_order_when_asked() {
        let a = key("accept-language", &["en-US, fr;q=0.8"], true);
        for same in [
            &["fr;q=0.8,en-us"][..],
            &["FR; q=0.8 ", " en-US"],
            &["en-us", "fr;q=0.8"],
            &["en-us, en-us, fr;q=0.8"],
        ] {
            assert_eq!(key("accept-language", same, true), a, "{same:?}");
        }
        assert_ne!(key("accept-language", &["en-US, de"], true), a);
        for name in ["accept", "accept-charset", "accept-encoding"] {
            assert_eq!(
                key(name, &["A, b"], true),
                key(name, &["B,a"], true),
                "{name}"
            );
        }
    }

    #[test]
    fn without_the_option_or_for_other_fields_values_are_compared_exactly() {
        assert_ne!(
            key("accept-language", &["en, fr"], false),
            key("accept-language", &["fr, en"], false)
        );
        assert_eq!(key("accept-language", &["en", "fr"], false), b"en, fr");
        assert_ne!(
            key("cookie", &["a=1, b=2"], true),
            key("cookie", &["b=2, a=1"], true)
        );
        assert_eq!(key("x-custom", &["A"], true), b"A");
    }
}
