//! `cargo +nightly fuzz run cache_store`: arbitrary bytes as a sequence of cache store
//! operations.
//!
//! Every 7 bytes are one operation (an opcode and six arguments picking a key, URL, tag set,
//! sizes and time-to-live from small vocabularies): insert, get, peek, meta update, attached
//! encoding, remove, every purge, sweep, clock advance and limits change. They run against a
//! `Store<u32>` and a naive model of it side by side (`cache::store::fuzzing`). Nothing may
//! panic, and after each operation the store must answer what the model answers (so no lookup
//! returns a purged, removed, evicted or expired object, and every eviction takes the least
//! recently used), its stats must match, its indexes and byte total must be consistent
//! (`Store::check_invariants`), and the total must be within `max_bytes`. `cargo test` runs
//! the same harness on fixed and proptest-generated inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outrider::cache::store::fuzzing::run_ops;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = run_ops(data) {
        panic!("{failure}");
    }
});
