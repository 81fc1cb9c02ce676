//! `cargo +nightly fuzz run accept_encoding`: arbitrary bytes through `compress::negotiate`.
//!
//! The first byte picks the route's policy (enabled, which algorithms, in which order); the
//! rest, decoded lossily as UTF-8, is the `Accept-Encoding` value. It must never panic, and the
//! answer must equal a naive reference model: a coding of `policy.algorithms` with the highest
//! client weight (> 0), ties to the earlier one, or `None`. The model is a copy of the one in
//! `tests/compress_negotiate.rs`, which runs the same check on stable.
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
    assert_eq!(got, reference(&header, &policy), "header {header:?}");
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
    }
}

fn name_of(coding: &Coding) -> &'static str {
    match coding {
        Coding::Zstd => "zstd",
        Coding::Br => "br",
        Coding::Gzip => "gzip",
    }
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// RFC 9110 §12.4.2 qvalue in thousandths, by walking the grammar character by character.
fn reference_qvalue(text: &str) -> Option<u32> {
    let chars: Vec<char> = text.chars().collect();
    let (first, rest) = chars.split_first()?;
    if *first != '0' && *first != '1' {
        return None;
    }
    let decimals: &[char] = match rest {
        [] => &[],
        ['.', decimals @ ..] => decimals,
        _ => return None,
    };
    if decimals.len() > 3 || decimals.iter().any(|c| !c.is_ascii_digit()) {
        return None;
    }
    let mut padded: String = decimals.iter().collect();
    while padded.len() < 3 {
        padded.push('0');
    }
    let value = if *first == '1' { 1000 } else { 0 } + padded.parse::<u32>().ok()?;
    (value <= 1000).then_some(value)
}

/// The weight the client gave each name (lowercase, `x-gzip` folded into `gzip`), first
/// mention winning, malformed members dropped.
fn reference_weights(header: &str) -> Vec<(String, u32)> {
    let mut seen: Vec<(String, u32)> = Vec::new();
    for member in header.split(',') {
        let pieces: Vec<&str> = member.split(';').map(|p| p.trim_matches(is_ows)).collect();
        let mut name = pieces[0].to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        if name == "x-gzip" {
            name = "gzip".to_string();
        }
        let q_values: Vec<&str> = pieces[1..]
            .iter()
            .filter(|p| !p.is_empty())
            .filter_map(|p| {
                let (n, v) = p.split_once('=').unwrap_or((p, ""));
                n.trim_matches(is_ows)
                    .eq_ignore_ascii_case("q")
                    .then(|| v.trim_matches(is_ows))
            })
            .collect();
        let weight = match q_values.first() {
            None => 1000,
            Some(v) => match reference_qvalue(v) {
                Some(w) => w,
                None => continue,
            },
        };
        if !seen.iter().any(|(n, _)| *n == name) {
            seen.push((name, weight));
        }
    }
    seen
}

fn reference(header: &str, policy: &CompressionPolicy) -> Option<Coding> {
    if !policy.enabled {
        return None;
    }
    let weights = reference_weights(header);
    let lookup = |name: &str| weights.iter().find(|(n, _)| n == name).map(|(_, w)| *w);
    let mut best: Option<(Coding, u32)> = None;
    for coding in &policy.algorithms {
        let w = lookup(name_of(coding)).or_else(|| lookup("*")).unwrap_or(0);
        if w > best.as_ref().map_or(0, |(_, b)| *b) {
            best = Some((coding.clone(), w));
        }
    }
    best.map(|(c, _)| c)
}
