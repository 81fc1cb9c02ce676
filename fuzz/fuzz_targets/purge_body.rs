//! `cargo +nightly fuzz run purge_body`: arbitrary bytes as a `POST /cache/purge` body.
//!
//! Nothing may panic; an accepted body names exactly one non-empty selector, and the same
//! bytes always give the same answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outrider::admin::cache::{parse_purge, Selector};

fuzz_target!(|data: &[u8]| {
    let first = parse_purge(data);
    assert_eq!(first, parse_purge(data));
    if let Ok(selector) = first {
        match selector {
            Selector::Key(s) | Selector::Prefix(s) => assert!(!s.is_empty()),
            Selector::Tag(t) => assert!(!t.is_empty() && !t.chars().any(char::is_whitespace)),
            Selector::All => {}
        }
    }
});
