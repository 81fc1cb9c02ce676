//! The ETag Outrider generates for a response the origin sent without one.
//!
//! xxh3-128 because it is non-cryptographic but fast enough (several GB/s) to hash every body
//! that passes the ETag buffer, and because its output is specified bit for bit: the same
//! bytes give the same tag on every machine, architecture and crate version, so replicas and
//! restarts agree and clients' cached tags stay valid. 128 bits make an accidental collision
//! between two versions of one resource negligible; a tag is not a defence against an origin
//! that wants to collide, and does not need to be.

use std::fmt;

use xxhash_rust::xxh3::Xxh3Default;

/// Streams a body into a strong entity-tag: `"` + 32 lowercase hex digits of the xxh3-128
/// digest (seed 0, default secret; the canonical big-endian form `xxhsum -H2` prints) + `"`.
///
/// Feeding the body in any number of pieces gives the same tag as feeding it whole.
#[derive(Clone, Default)]
pub struct BodyHasher {
    // ~400 bytes of state and stripe buffer; callers that keep one per request may box it.
    state: Xxh3Default,
}

// === impl BodyHasher ===

impl BodyHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.state.update(bytes);
    }

    /// The quoted tag, e.g. `"99aa06d3014798d86001c324468d497f"` for an empty body.
    pub fn finish(self) -> String {
        format!("\"{:032x}\"", self.state.digest128())
    }
}

impl fmt::Debug for BodyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyHasher").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conditional::entity_tag::EntityTag;
    use proptest::prelude::*;

    fn tag_of(bytes: &[u8]) -> String {
        let mut hasher = BodyHasher::new();
        hasher.update(bytes);
        hasher.finish()
    }

    /// 0, 1, 2, … 250, 0, 1, …: not periodic in any power of two, so stripe and block
    /// boundaries see different bytes.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// Pinned digests: a change of algorithm, seed, byte order or formatting changes every tag
    /// Outrider ever served, so it must fail here first. The empty-input value is the xxHash
    /// reference's XXH3_128bits(""); the others cover the short (≤ 16, ≤ 128, ≤ 240 bytes) and
    /// long (streamed stripes and blocks) code paths and were checked against the Python
    /// `xxhash` binding of the C library.
    #[test]
    fn known_digests() {
        let rows: &[(&[u8], &str)] = &[
            (b"", "\"99aa06d3014798d86001c324468d497f\""),
            (b"a", "\"a96faf705af16834e6c632b61e964e1f\""),
            (b"hello world", "\"df8d09e93f874900a99b8775cc15b6c7\""),
            (&pattern(100), PATTERN_100),
            (&pattern(200), PATTERN_200),
            (&pattern(1 << 20), PATTERN_1MIB),
        ];
        for (input, expected) in rows {
            assert_eq!(tag_of(input), *expected, "{} bytes", input.len());
        }
    }

    const PATTERN_100: &str = "\"da95ef16fd9566f329b20ba5f03ec01e\"";
    const PATTERN_200: &str = "\"cb0395310643ba0edd97e9af3609d9f5\"";
    const PATTERN_1MIB: &str = "\"53738d98098cabba6e0d7ac36b8c10ff\"";

    #[test]
    fn the_tag_is_a_strong_entity_tag() {
        let tag = tag_of(b"body");
        assert_eq!(tag.len(), 34);
        let parsed = EntityTag::parse(&tag).expect("well-formed");
        assert!(!parsed.weak);
        assert!(parsed
            .opaque
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)));
    }

    #[test]
    fn pieces_equal_whole_across_buffer_boundaries() {
        let body = pattern(5000);
        for len in [
            0, 1, 15, 16, 17, 128, 129, 240, 241, 255, 256, 257, 1024, 1025, 5000,
        ] {
            let whole = tag_of(&body[..len]);
            for piece in [1, 7, 64, 255, 256, 1000] {
                let mut hasher = BodyHasher::new();
                body[..len].chunks(piece).for_each(|c| hasher.update(c));
                assert_eq!(hasher.finish(), whole, "{len} bytes in pieces of {piece}");
            }
        }
    }

    #[test]
    fn empty_updates_change_nothing() {
        let mut hasher = BodyHasher::new();
        hasher.update(b"");
        hasher.update(b"hello ");
        hasher.update(b"");
        hasher.update(b"world");
        assert_eq!(hasher.finish(), tag_of(b"hello world"));
    }

    proptest! {
        #[test]
        fn pieces_equal_whole(
            body in prop::collection::vec(any::<u8>(), 0..3000),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
            cuts.sort_unstable();
            let mut hasher = BodyHasher::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([body.len()]) {
                hasher.update(&body[from..cut]);
                from = cut;
            }
            prop_assert_eq!(hasher.finish(), tag_of(&body));
        }
    }
}
