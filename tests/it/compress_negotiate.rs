//! Property tests of `compress::negotiate` against a deliberately naive reference model (strings,
//! vectors and an explicit grammar walk instead of the real parser's fixed slots and folds),
//! and of `compress::decide` on arbitrary header text. The cargo-fuzz target
//! `fuzz/fuzz_targets/accept_encoding.rs` checks the same model on nightly.

use outrider::compress::{could_compress, decide, negotiate, Decision, ResponseFacts};
use outrider::config::policy::{Coding, CompressionPolicy};
use proptest::prelude::*;
use proptest::sample::subsequence;

fn policy(enabled: bool, algorithms: Vec<Coding>) -> CompressionPolicy {
    CompressionPolicy {
        enabled,
        algorithms,
        min_size: 1024,
        gzip_level: 6,
        brotli_level: 4,
        zstd_level: 3,
        content_types: ["text/*", "application/json", "application/*+json"]
            .map(String::from)
            .to_vec(),
        upstream_identity: true,
    }
}

#[path = "support/negotiate_model.rs"]
mod model;
use model::*;

fn any_policy() -> impl Strategy<Value = CompressionPolicy> {
    let codings = vec![Coding::Zstd, Coding::Br, Coding::Gzip];
    (
        prop::bool::weighted(0.9),
        subsequence(codings, 0..=3).prop_shuffle(),
    )
        .prop_map(|(enabled, algorithms)| policy(enabled, algorithms))
}

/// Headers made of the pieces that matter, so that the interesting cases are common.
fn structured_header() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "gzip", "GZIP", "x-gzip", "X-Gzip", "br", "BR", "zstd", "Zstd", "*", "identity", "deflate",
        "compress", "", " br ", "\tgzip", "gzi", "brotli", "🦀",
    ]);
    let param = prop::sample::select(vec![
        "",
        ";q=0",
        ";q=1",
        ";q=0.5",
        ";Q=0.500",
        ";q=0.001",
        ";q=1.000",
        ";q=1.0001",
        ";q=1.5",
        ";q=abc",
        ";q=",
        ";q",
        ";",
        ";;",
        ";level=1",
        " ; q = 0.3",
        ";q=0.5;q=0",
        ";q=.5",
        ";q=0.2 ",
    ]);
    let separator = prop::sample::select(vec![",", ", ", " ,", ",,", ",\t"]);
    prop::collection::vec((token, param, separator), 0..8).prop_map(|members| {
        members
            .into_iter()
            .map(|(t, p, s)| format!("{t}{p}{s}"))
            .collect()
    })
}

/// Checks `negotiate` against the model and its invariants; shared by both header strategies.
fn check(header: &str, policy: &CompressionPolicy) -> Result<(), TestCaseError> {
    let got = negotiate(Some(header), policy);
    prop_assert_eq!(
        &got,
        &reference(Some(header), policy),
        "header {:?}",
        header
    );
    if let Some(coding) = &got {
        prop_assert!(policy.enabled);
        prop_assert!(policy.algorithms.contains(coding));
        let weights = reference_weights(header);
        let chosen = reference_weight_of(&weights, coding);
        prop_assert!(chosen > 0);
        for other in &policy.algorithms {
            prop_assert!(reference_weight_of(&weights, other) <= chosen);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_matches_the_model(header in "\\PC*", policy in any_policy()) {
        check(&header, &policy)?;
    }

    #[test]
    fn arbitrary_bytes_as_text_match_the_model(
        bytes in prop::collection::vec(any::<u8>(), 0..64),
        policy in any_policy(),
    ) {
        check(&String::from_utf8_lossy(&bytes), &policy)?;
    }

    #[test]
    fn structured_headers_match_the_model(header in structured_header(), policy in any_policy()) {
        check(&header, &policy)?;
    }

    /// Members after a coding's first mention, and codings Outrider cannot produce, change
    /// nothing.
    #[test]
    fn later_duplicates_and_unknown_codings_are_inert(
        header in structured_header(),
        policy in any_policy(),
    ) {
        let before = negotiate(Some(&header), &policy);
        let after = format!("{header},deflate;q=1, compress");
        prop_assert_eq!(&negotiate(Some(&after), &policy), &before);
        if let Some(coding) = &before {
            let repeated = format!("{header}, {};q=0", name_of(coding));
            let explicitly_listed = reference_weights(&header)
                .iter()
                .any(|(n, _)| n == name_of(coding));
            if explicitly_listed {
                prop_assert_eq!(&negotiate(Some(&repeated), &policy), &before);
            }
        }
    }

    #[test]
    fn decide_never_panics_and_compress_implies_vary(
        status in 0u16..1000,
        is_head in any::<bool>(),
        content_type in prop::option::of("\\PC{0,40}"),
        has_content_encoding in any::<bool>(),
        cache_control in prop::option::of("\\PC{0,40}"),
        content_length in prop::option::of(0u64..4096),
        policy in any_policy(),
    ) {
        let facts = ResponseFacts {
            status,
            is_head,
            content_type: content_type.as_deref(),
            has_content_encoding,
            cache_control: cache_control.as_deref(),
            content_length,
        };
        let decision = decide(&facts, &policy);
        if matches!(decision, Decision::Compress | Decision::Undecided) {
            prop_assert!(could_compress(&facts, &policy), "{:?} -> {:?}", facts, decision);
        }
        prop_assert_eq!(decision == Decision::Undecided, content_length.is_none()
            && matches!(decide(&ResponseFacts { content_length: Some(u64::MAX), ..facts }, &policy),
                Decision::Compress));
    }
}

#[test]
fn reference_model_agrees_on_known_answers() {
    // Guards the model itself: if it drifted into agreeing with a broken parser, these fail.
    let all = policy(true, vec![Coding::Zstd, Coding::Br, Coding::Gzip]);
    let rows: &[(&str, Option<Coding>)] = &[
        ("gzip, br", Some(Coding::Br)),
        ("gzip;q=1, br;q=0.5", Some(Coding::Gzip)),
        ("*;q=0, gzip;q=0.1", Some(Coding::Gzip)),
        ("zstd;q=0, *", Some(Coding::Br)),
        ("gzip;q=abc", None),
        ("br;q=1.0001", None),
        ("x-gzip", Some(Coding::Gzip)),
        ("identity;q=0", None),
    ];
    for (header, expected) in rows {
        assert_eq!(reference(Some(header), &all), *expected, "model {header:?}");
        assert_eq!(
            negotiate(Some(header), &all),
            *expected,
            "negotiate {header:?}"
        );
    }
    assert_eq!(reference(None, &all), None);
    assert_eq!(negotiate(None, &all), None);
}
