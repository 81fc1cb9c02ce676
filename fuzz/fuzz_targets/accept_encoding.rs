//! `cargo +nightly fuzz run accept_encoding`: arbitrary bytes through `compress::negotiate`.
//!
//! The first byte picks the route's policy (enabled, which algorithms, in which order); the
//! rest, decoded lossily as UTF-8, is the `Accept-Encoding` value. It must never panic, and the
//! answer must equal a naive reference model: a coding of `policy.algorithms` with the highest
//! client weight (> 0), ties to the earlier one, or `None`. The model is shared with
//! `tests/it/compress_negotiate.rs` (by path), which runs the same check on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outrider::compress::negotiate;
use outrider::config::policy::{Coding, CompressionPolicy};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let policy = policy_from(selector);
    let header = String::from_utf8_lossy(rest);
    let got = negotiate(Some(&header), &policy);
    assert_eq!(
        got,
        model::reference(Some(&header), &policy),
        "header {header:?}"
    );
    if let Some(coding) = &got {
        assert!(policy.enabled && policy.algorithms.contains(coding));
    }
});

/// Bit 7: disabled. Bits 0-2: one of the six orders of the three codings. Bits 3-5: which of
/// them to keep.
fn policy_from(selector: u8) -> CompressionPolicy {
    const ORDERS: [[Coding; 3]; 6] = [
        [Coding::Zstd, Coding::Br, Coding::Gzip],
        [Coding::Zstd, Coding::Gzip, Coding::Br],
        [Coding::Br, Coding::Zstd, Coding::Gzip],
        [Coding::Br, Coding::Gzip, Coding::Zstd],
        [Coding::Gzip, Coding::Zstd, Coding::Br],
        [Coding::Gzip, Coding::Br, Coding::Zstd],
    ];
    let order = &ORDERS[usize::from(selector & 0x07) % ORDERS.len()];
    let keep = (selector >> 3) & 0x07;
    let algorithms = order
        .iter()
        .enumerate()
        .filter(|(i, _)| keep & (1 << i) == 0)
        .map(|(_, c)| c.clone())
        .collect();
    CompressionPolicy {
        enabled: selector & 0x80 == 0,
        algorithms,
        min_size: 1024,
        gzip_level: 6,
        brotli_level: 4,
        zstd_level: 3,
        content_types: vec!["text/*".to_string()],
        upstream_identity: true,
    }
}

#[path = "../../tests/it/support/negotiate_model.rs"]
mod model;
