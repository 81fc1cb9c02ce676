//! `cargo +nightly fuzz run breaker`: arbitrary bytes as a sequence of breaker operations.
//!
//! Every 2 bytes are one operation (an opcode and an argument): admit, record a held pass as a
//! success or a failure, drop a held pass, advance the fake clock, reload one of a few policies
//! (one that config validation would refuse included), or record another breaker's pass
//! (`breaker::fuzzing`). Nothing may panic, and after each operation the transitions returned
//! so far must chain and end at the state the breaker reports, the half-open round's slots
//! must match the probe passes still held (no leak, no double free), and the backoff and open
//! period must stay within `max_open_for`. `cargo test` runs the same harness on fixed and
//! proptest-generated inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outrider::breaker::fuzzing::run_ops;

fuzz_target!(|data: &[u8]| {
    if let Err(failure) = run_ops(data) {
        panic!("{failure}");
    }
});
