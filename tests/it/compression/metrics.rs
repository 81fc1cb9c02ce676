//! Compression metrics.

use crate::compression::helpers::{Metrics, Rig, BODY};

// ======================================================================================
// Metrics
// ======================================================================================

#[tokio::test]
async fn compressed_responses_and_bytes_are_counted() {
    let rig = Rig::new();
    let path = format!("/m?size={BODY}&ct=application/json");
    // Identity responses are not counted.
    let identity = rig.get(&path, None).await;
    assert_eq!(identity.coding(), None);
    let got = rig.get(&path, Some("gzip")).await;
    assert_eq!(got.coding(), Some("gzip"));
    assert!(got.decoded() == identity.body);

    let responses = |m: &Metrics| {
        m.value(
            "outrider_compression_responses_total",
            &[("route", "main"), ("algorithm", "gzip")],
        )
    };
    let m = Metrics::poll(&rig.proxy, "one compressed response", |m| {
        responses(m) == Some(1.0)
    })
    .await;
    for coding in ["br", "zstd"] {
        assert_eq!(
            m.value(
                "outrider_compression_responses_total",
                &[("route", "main"), ("algorithm", coding)]
            )
            .unwrap_or(0.0),
            0.0,
            "{coding}"
        );
    }
    assert_eq!(
        m.value(
            "outrider_compression_bytes_in_total",
            &[("algorithm", "gzip")]
        ),
        Some(BODY as f64)
    );
    assert_eq!(
        m.value(
            "outrider_compression_bytes_out_total",
            &[("algorithm", "gzip")]
        ),
        Some(got.body.len() as f64)
    );
}
