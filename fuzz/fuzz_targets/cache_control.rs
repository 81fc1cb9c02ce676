//! `cargo +nightly fuzz run cache_control`: arbitrary bytes through the cache's HTTP
//! semantics: `CacheControl::parse`, `targeted`, `ResponseFacts::from_headers`,
//! `storability`, `hit_acceptable`, `invalidation_targets`, `primary_key` under each
//! `KeyQueryPolicy`, and the `Cache-Status` value.
//!
//! The body is `outrider::cache::freshness::fuzz_check`, which `cargo test` also runs on random
//! input; its documentation gives the input layout. Nothing may panic, the same input gives
//! the same answers, and a stored response never breaks a rule that forbids storing it
//! (`no-store` without `must-understand`, `private`, request `no-store`, an unmarked
//! `Set-Cookie`, `Vary: *`, a method other than GET/HEAD); origin lifetimes stay within 2^31 s.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    outrider::cache::freshness::fuzz_check(data);
});
