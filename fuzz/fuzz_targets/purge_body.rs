//! `cargo +nightly fuzz run purge_body`: arbitrary bytes as a `POST /cache/purge` body.
//!
//! Nothing may panic; an accepted body is a JSON object naming exactly one non-empty selector,
//! and the same bytes always give the same answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outrider::admin::cache::{parse_purge, Selector};

fuzz_target!(|data: &[u8]| {
    let first = parse_purge(data);
    assert_eq!(first, parse_purge(data));
    if let Ok(selector) = first {
        // Only a JSON object is a purge body (serde's derive would also read an array as the
        // fields in order).
        let start = data.iter().find(|b| !b.is_ascii_whitespace());
        assert_eq!(start, Some(&b'{'), "accepted a body that is not an object");
        match selector {
            Selector::Key(s) | Selector::Prefix(s) => assert!(!s.is_empty()),
            Selector::Tag(t) => assert!(!t.is_empty() && !t.chars().any(char::is_whitespace)),
            Selector::All => {}
        }
    }
});
