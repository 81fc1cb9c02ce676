//! `cargo +nightly fuzz run config`: arbitrary UTF-8 through `config::compile`.
//!
//! It must never panic, and every error it reports must be located at a real line and column
//! (1-based; a column may be one past the end of its line) of the text it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Err(errors) = outrider::config::compile(text, "fuzz.toml") else {
        return;
    };
    assert!(!errors.is_empty());
    let lines: Vec<&str> = text.split('\n').collect();
    for e in &errors {
        assert!(e.line >= 1 && e.column >= 1, "{e}");
        assert!(e.line <= lines.len(), "{e}");
        assert!(e.column <= lines[e.line - 1].chars().count() + 1, "{e}");
    }
});
