//! A deliberately naive reference model of `compress::negotiate` (strings, vectors and an
//! explicit grammar walk instead of the real parser's fixed slots and folds). Shared by the
//! stable property test (`tests/it/compress_negotiate.rs`) and the cargo-fuzz target
//! (`fuzz/fuzz_targets/accept_encoding.rs`), which include this file by path.
#![allow(dead_code)]

use outrider::config::policy::{Coding, CompressionPolicy};

pub fn name_of(coding: &Coding) -> &'static str {
    match coding {
        Coding::Zstd => "zstd",
        Coding::Br => "br",
        Coding::Gzip => "gzip",
    }
}

pub fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// RFC 9110 §12.4.2 qvalue in thousandths, by walking the grammar character by character.
pub fn reference_qvalue(text: &str) -> Option<u32> {
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
pub fn reference_weights(header: &str) -> Vec<(String, u32)> {
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

pub fn reference_weight_of(weights: &[(String, u32)], coding: &Coding) -> u32 {
    let lookup = |name: &str| weights.iter().find(|(n, _)| n == name).map(|(_, w)| *w);
    lookup(name_of(coding)).or_else(|| lookup("*")).unwrap_or(0)
}

pub fn reference(header: Option<&str>, policy: &CompressionPolicy) -> Option<Coding> {
    if !policy.enabled {
        return None;
    }
    let weights = reference_weights(header?);
    let mut best: Option<(Coding, u32)> = None;
    for coding in &policy.algorithms {
        let w = reference_weight_of(&weights, coding);
        let better = match &best {
            None => w > 0,
            Some((_, best_w)) => w > *best_w,
        };
        if better {
            best = Some((coding.clone(), w));
        }
    }
    best.map(|(c, _)| c)
}
