//! `evaluate`, `if_range_matches` and `parse_http_date` through the public API. Entity-tag
//! parsing and the hasher are tested beside their code.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;

use super::*;
use Outcome::{NotModified, PreconditionFailed, Proceed};

/// The day before, the same instant as, and the day after [`CURRENT`]'s `Last-Modified`.
const BEFORE: &str = "Sat, 05 Nov 1994 08:49:37 GMT";
const SAME: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
const AFTER: &str = "Mon, 07 Nov 1994 08:49:37 GMT";

/// RFC 9110 §5.6.7's example instant, 784111777 s after the epoch, in the two obsolete forms.
const SAME_RFC850: &str = "Sunday, 06-Nov-94 08:49:37 GMT";
const SAME_ASCTIME: &str = "Sun Nov  6 08:49:37 1994";

const CURRENT: Validators = Validators {
    etag: Some("\"v1\""),
    last_modified: Some(SAME),
};

/// `(If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since, outcome for GET, outcome
/// for PUT)`.
type Row = (
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Option<&'static str>,
    Outcome,
    Outcome,
);

/// Short names, so that a table row fits on a line. `V1` is [`CURRENT`]'s tag.
const V1: &str = "\"v1\"";
const V2: &str = "\"v2\"";
const W1: &str = "W/\"v1\"";
const GO: Outcome = Proceed;
const R304: Outcome = NotModified;
const R412: Outcome = PreconditionFailed;

fn pre(
    if_match: Option<&'static str>,
    if_none_match: Option<&'static str>,
    if_modified_since: Option<&'static str>,
    if_unmodified_since: Option<&'static str>,
) -> Preconditions<'static> {
    Preconditions {
        if_match,
        if_none_match,
        if_modified_since,
        if_unmodified_since,
    }
}

/// Runs the rows against `current`, with status 200.
fn check(current: &Validators, rows: &[Row]) {
    for &(im, inm, ims, ius, get, put) in rows {
        let pre = pre(im, inm, ims, ius);
        assert_eq!(
            evaluate(&pre, true, 200, current),
            get,
            "GET {pre:?} vs {current:?}"
        );
        assert_eq!(
            evaluate(&pre, false, 200, current),
            put,
            "PUT {pre:?} vs {current:?}"
        );
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn no_preconditions_proceed() {
    check(&CURRENT, &[(None, None, None, None, GO, GO)]);
    check(&Validators::default(), &[(None, None, None, None, GO, GO)]);
}

#[test]
fn if_match_alone() {
    check(
        &CURRENT,
        &[
            (Some(V1), None, None, None, GO, GO),
            (Some(V2), None, None, None, R412, R412),
            (Some("\"v2\", \"v1\""), None, None, None, GO, GO),
            (Some("\"v2\", \"v3\""), None, None, None, R412, R412),
            // Strong comparison: a weak tag never matches.
            (Some(W1), None, None, None, R412, R412),
            (Some("*"), None, None, None, GO, GO),
            (Some("\"v2\", *"), None, None, None, GO, GO),
        ],
    );
}

#[test]
fn if_unmodified_since_alone() {
    check(
        &CURRENT,
        &[
            (None, None, None, Some(SAME), GO, GO),
            (None, None, None, Some(AFTER), GO, GO),
            (None, None, None, Some(BEFORE), R412, R412),
        ],
    );
}

#[test]
fn if_none_match_alone() {
    check(
        &CURRENT,
        &[
            (None, Some(V1), None, None, R304, R412),
            // Weak comparison: `W/` does not matter.
            (None, Some(W1), None, None, R304, R412),
            (None, Some("\"v0\", W/\"v1\""), None, None, R304, R412),
            (None, Some(V2), None, None, GO, GO),
            (None, Some("\"V1\""), None, None, GO, GO),
            (None, Some("*"), None, None, R304, R412),
        ],
    );
}

#[test]
fn if_modified_since_alone_and_only_for_get_and_head() {
    check(
        &CURRENT,
        &[
            (None, None, Some(SAME), None, R304, GO),
            (None, None, Some(AFTER), None, R304, GO),
            (None, None, Some(BEFORE), None, GO, GO),
        ],
    );
}

/// RFC 9110 §13.2.2's order, one pair of fields at a time.
#[test]
fn precedence() {
    check(
        &CURRENT,
        &[
            // If-Match present: If-Unmodified-Since is not consulted, pass or fail.
            (Some(V1), None, None, Some(BEFORE), GO, GO),
            (Some("*"), None, None, Some(BEFORE), GO, GO),
            (Some(V2), None, None, Some(AFTER), R412, R412),
            // A failing If-Match beats If-None-Match, whichever way that would go.
            (Some(V2), Some(V1), None, None, R412, R412),
            (Some(V2), Some(V2), None, None, R412, R412),
            (Some(V2), None, Some(BEFORE), None, R412, R412),
            // A passing If-Match hands over to If-None-Match.
            (Some(V1), Some(V1), None, None, R304, R412),
            (Some("*"), Some("*"), None, None, R304, R412),
            (Some(V1), Some(V2), None, None, GO, GO),
            // A failing If-Unmodified-Since beats If-None-Match and If-Modified-Since.
            (None, Some(V1), None, Some(BEFORE), R412, R412),
            (None, None, Some(AFTER), Some(BEFORE), R412, R412),
            (None, Some(V1), None, Some(AFTER), R304, R412),
            (None, None, Some(SAME), Some(SAME), R304, GO),
            // If-None-Match present: If-Modified-Since is ignored, pass or fail.
            (None, Some(V2), Some(AFTER), None, GO, GO),
            (None, Some(V1), Some(BEFORE), None, R304, R412),
            // All four.
            (Some(V1), Some(V2), Some(AFTER), Some(BEFORE), GO, GO),
            (Some(V1), Some(V1), Some(BEFORE), Some(BEFORE), R304, R412),
            (
                Some("\"v0\""),
                Some(V2),
                Some(AFTER),
                Some(AFTER),
                R412,
                R412,
            ),
        ],
    );
}

#[test]
fn preconditions_apply_only_to_2xx() {
    let failing = pre(Some(V2), Some(V1), Some(AFTER), Some(BEFORE));
    for status in [
        0, 100, 101, 199, 300, 301, 304, 400, 404, 412, 416, 500, 503, 999,
    ] {
        for safe_read in [true, false] {
            assert_eq!(
                evaluate(&failing, safe_read, status, &CURRENT),
                Proceed,
                "{status}"
            );
        }
    }
    for status in [200, 201, 204, 206, 299] {
        assert_eq!(
            evaluate(&failing, true, status, &CURRENT),
            PreconditionFailed,
            "{status}"
        );
    }
}

#[test]
fn lists_with_whitespace_and_empty_members() {
    check(
        &CURRENT,
        &[
            (Some(" \t\"v0\" ,\t\"v1\"\t"), None, None, None, GO, GO),
            (Some(",,\"v0\",,, \"v1\",,"), None, None, None, GO, GO),
            (None, Some(", , W/\"v1\" ,"), None, None, R304, R412),
            (None, Some("\t*\t"), None, None, R304, R412),
        ],
    );
}

#[test]
fn malformed_members_are_skipped() {
    check(
        &CURRENT,
        &[
            (Some("v1, \"v1\""), None, None, None, GO, GO),
            (Some("v1, \"v2\""), None, None, None, R412, R412),
            (Some("w/\"v1\", \"v0\""), None, None, None, R412, R412),
            (None, Some("\"v1\"junk, \"v2\""), None, None, GO, GO),
            (None, Some("junk, W/\"v1\""), None, None, R304, R412),
            // Unterminated: no member at all, so the field is ignored.
            (None, Some("\"v1"), None, None, GO, GO),
        ],
    );
}

#[test]
fn lists_without_a_valid_member_are_ignored() {
    check(
        &CURRENT,
        &[
            (Some("v1"), None, None, None, GO, GO),
            (Some(""), None, None, None, GO, GO),
            (Some(" , "), None, None, None, GO, GO),
            // An ignored If-Match lets If-Unmodified-Since speak.
            (Some("v1"), None, None, Some(BEFORE), R412, R412),
            (Some("junk"), None, None, Some(AFTER), GO, GO),
            // An ignored If-None-Match lets If-Modified-Since speak.
            (None, Some("v1"), Some(AFTER), None, R304, GO),
            (None, Some(""), Some(SAME), None, R304, GO),
            (None, Some("W/v1"), Some(BEFORE), None, GO, GO),
        ],
    );
}

#[test]
fn malformed_dates_are_ignored() {
    check(
        &CURRENT,
        &[
            (None, None, None, Some("yesterday"), GO, GO),
            (None, None, None, Some(""), GO, GO),
            // A list of dates is not a date (§13.1.4).
            (
                None,
                None,
                None,
                Some("Sat, 05 Nov 1994 08:49:37 GMT, Sat, 05 Nov 1994 08:49:37 GMT"),
                GO,
                GO,
            ),
            (None, None, Some("Sun, 06 Nov 1994 08:49:37"), None, GO, GO),
            (None, None, Some("784111777"), None, GO, GO),
            (None, None, Some("1994-11-06T08:49:37Z"), None, GO, GO),
            // The field is ignored, not the request: If-Match still applies.
            (Some(V2), None, None, Some("junk"), R412, R412),
        ],
    );
}

#[test]
fn without_an_entity_tag() {
    let rows: &[Row] = &[
        (Some(V1), None, None, None, R412, R412),
        // `*` needs a representation, not a tag.
        (Some("*"), None, None, None, GO, GO),
        (None, Some(V1), None, None, GO, GO),
        (None, Some("*"), None, None, R304, R412),
        // Present and not matching: If-Modified-Since stays ignored.
        (None, Some(V1), Some(AFTER), None, GO, GO),
        (None, None, Some(AFTER), None, R304, GO),
    ];
    // Missing, unquoted, a list, junk: all mean "no entity-tag validator".
    for etag in [
        None,
        Some("v1"),
        Some("\"v1\", \"v2\""),
        Some("W/v1"),
        Some(""),
    ] {
        check(
            &Validators {
                etag,
                last_modified: Some(SAME),
            },
            rows,
        );
    }
}

#[test]
fn against_a_weak_entity_tag() {
    let current = Validators {
        etag: Some(W1),
        last_modified: Some(SAME),
    };
    check(
        &current,
        &[
            (Some(V1), None, None, None, R412, R412),
            (Some(W1), None, None, None, R412, R412),
            (Some("*"), None, None, None, GO, GO),
            (None, Some(V1), None, None, R304, R412),
            (None, Some(W1), None, None, R304, R412),
        ],
    );
}

#[test]
fn without_a_modification_date() {
    let rows: &[Row] = &[
        (None, None, None, Some(BEFORE), GO, GO),
        (None, None, Some(AFTER), None, GO, GO),
        (None, Some(V1), None, Some(BEFORE), R304, R412),
    ];
    for last_modified in [None, Some("junk"), Some("Sun, 06 Nov 1994"), Some("")] {
        check(
            &Validators {
                etag: Some(V1),
                last_modified,
            },
            rows,
        );
    }
}

#[test]
fn all_three_date_formats() {
    let expected = Some(at(784_111_777));
    for value in [
        SAME,
        SAME_RFC850,
        SAME_ASCTIME,
        " Sun, 06 Nov 1994 08:49:37 GMT\t",
    ] {
        assert_eq!(parse_http_date(value), expected, "{value:?}");
    }
    assert_eq!(
        parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
        Some(UNIX_EPOCH)
    );
    assert_eq!(
        parse_http_date("Thursday, 01-Jan-70 00:00:00 GMT"),
        Some(UNIX_EPOCH)
    );
    assert_eq!(
        parse_http_date("Thu Jan  1 00:00:00 1970"),
        Some(UNIX_EPOCH)
    );
    assert_eq!(
        parse_http_date("Sat Jan 01 00:00:00 2000"),
        Some(at(946_684_800))
    );
    assert_eq!(
        parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"),
        Some(at(951_782_400))
    );
    // RFC 850's two-digit year: 00-69 are 20xx.
    assert_eq!(
        parse_http_date("Tuesday, 01-Jan-69 00:00:00 GMT"),
        parse_http_date("Tue, 01 Jan 2069 00:00:00 GMT")
    );
    assert!(parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT").is_some());

    // Each format works in every date field, against a Last-Modified in any format.
    for value in [SAME, SAME_RFC850, SAME_ASCTIME] {
        for last_modified in [SAME, SAME_RFC850, SAME_ASCTIME] {
            let current = Validators {
                etag: None,
                last_modified: Some(last_modified),
            };
            check(
                &current,
                &[
                    (None, None, Some(value), None, R304, GO),
                    (None, None, None, Some(value), GO, GO),
                ],
            );
            assert!(
                if_range_matches(value, &current),
                "{value} vs {last_modified}"
            );
        }
    }
}

#[test]
fn invalid_dates() {
    for value in [
        "",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "sun, 06 nov 1994 08:49:37 gmt",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994",
        // The day name must match the date.
        "Mon, 06 Nov 1994 08:49:37 GMT",
        "Thu, 29 Feb 2001 00:00:00 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        // Grammatical but refused by httpdate (see the module documentation).
        "Sat, 31 Dec 2016 23:59:60 GMT",
        "Wed, 01 Jan 1969 00:00:00 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT junk",
        "Sun, 06 Nov 1994 08:49:37 GMТ",
        "Sun, ０6 Nov 1994 08:49:37 GMT",
        "\"Sun, 06 Nov 1994 08:49:37 GMT\"",
    ] {
        assert_eq!(parse_http_date(value), None, "{value:?}");
    }
}

#[test]
fn if_range_with_an_entity_tag() {
    let rows: &[(&str, Option<&str>, bool)] = &[
        ("\"v1\"", Some(V1), true),
        (" \"v1\"\t", Some(V1), true),
        ("\"v1\"", Some(" \"v1\" "), true),
        ("\"v2\"", Some(V1), false),
        // Strong comparison only.
        ("W/\"v1\"", Some(V1), false),
        ("\"v1\"", Some(W1), false),
        ("W/\"v1\"", Some(W1), false),
        ("\"v1\"", None, false),
        ("\"v1\"", Some("v1"), false),
        // Malformed If-Range: serve the whole representation.
        ("v1", Some(V1), false),
        ("\"v1", Some(V1), false),
        ("\"v1\", \"v1\"", Some(V1), false),
        ("*", Some(V1), false),
        ("", Some(V1), false),
        ("w/\"v1\"", Some(V1), false),
    ];
    for &(if_range, etag, expected) in rows {
        let current = Validators {
            etag,
            last_modified: Some(SAME),
        };
        assert_eq!(
            if_range_matches(if_range, &current),
            expected,
            "If-Range: {if_range:?} vs ETag {etag:?}"
        );
    }
}

#[test]
fn if_range_with_a_date() {
    let rows: &[(&str, Option<&str>, bool)] = &[
        (SAME, Some(SAME), true),
        (SAME_RFC850, Some(SAME), true),
        (SAME, Some(SAME_ASCTIME), true),
        // Exact: neither earlier nor later will do.
        (BEFORE, Some(SAME), false),
        (AFTER, Some(SAME), false),
        (SAME, None, false),
        (SAME, Some("junk"), false),
        ("Sun, 06 Nov 1994", Some(SAME), false),
        ("junk", Some(SAME), false),
        ("", Some(SAME), false),
    ];
    for &(if_range, last_modified, expected) in rows {
        let current = Validators {
            etag: Some(V1),
            last_modified,
        };
        assert_eq!(
            if_range_matches(if_range, &current),
            expected,
            "If-Range: {if_range:?} vs Last-Modified {last_modified:?}"
        );
    }
    // A date If-Range never matches an ETag, nor a tag a Last-Modified.
    let etag_is_a_date = Validators {
        etag: Some(SAME),
        last_modified: None,
    };
    assert!(!if_range_matches(SAME, &etag_is_a_date));
}

#[test]
fn is_empty() {
    assert!(Preconditions::default().is_empty());
    assert!(!pre(Some(""), None, None, None).is_empty());
    assert!(!pre(None, Some("*"), None, None).is_empty());
    assert!(!pre(None, None, Some(SAME), None).is_empty());
    assert!(!pre(None, None, None, Some(SAME)).is_empty());
}

#[test]
fn outcome_status() {
    assert_eq!(Proceed.status(), None);
    assert_eq!(NotModified.status(), Some(304));
    assert_eq!(PreconditionFailed.status(), Some(412));
}

/// Header-ish text: tags, `*`, dates and debris, so that the interesting paths run often.
fn header_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("\"v1\"".to_string()),
        Just("W/\"v1\"".to_string()),
        Just("*".to_string()),
        Just(SAME.to_string()),
        Just(BEFORE.to_string()),
        Just(SAME_ASCTIME.to_string()),
        "[\"W/*, \t,a-z0-9\u{7f}é]{0,6}",
    ];
    prop::collection::vec(piece, 0..4).prop_map(|pieces| pieces.concat())
}

fn field() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![header_like(), any::<String>()])
}

fn well_formed_tag() -> impl Strategy<Value = String> {
    (any::<bool>(), "[!#-~\u{80}-\u{10FFFF}]{0,6}|[ab]{0,1}")
        .prop_map(|(weak, opaque)| format!("{}\"{opaque}\"", if weak { "W/" } else { "" }))
}

proptest! {
    #[test]
    fn evaluate_never_panics(
        fields in [field(), field(), field(), field(), field(), field(), field()],
        safe_read in any::<bool>(),
        status in prop_oneof![Just(200u16), any::<u16>()],
    ) {
        let [im, inm, ims, ius, etag, last_modified, if_range] = &fields;
        let pre = Preconditions {
            if_match: im.as_deref(),
            if_none_match: inm.as_deref(),
            if_modified_since: ims.as_deref(),
            if_unmodified_since: ius.as_deref(),
        };
        let current = Validators { etag: etag.as_deref(), last_modified: last_modified.as_deref() };
        let outcome = evaluate(&pre, safe_read, status, &current);
        if !(200..300).contains(&status) || pre.is_empty() {
            prop_assert_eq!(outcome, Proceed);
        }
        if outcome == NotModified {
            prop_assert!(safe_read);
        }
        if let Some(if_range) = if_range {
            let _ = if_range_matches(if_range, &current);
        }
        for value in fields.iter().flatten() {
            let _ = parse_http_date(value);
        }
    }

    #[test]
    fn weak_comparison_is_reflexive_and_symmetric(a in well_formed_tag(), b in well_formed_tag()) {
        let inm = |list: &str, etag: &str| {
            let pre = Preconditions { if_none_match: Some(list), ..Preconditions::default() };
            evaluate(&pre, true, 200, &Validators { etag: Some(etag), last_modified: None })
        };
        prop_assert_eq!(inm(&a, &a), NotModified);
        prop_assert_eq!(inm(&a, &b), inm(&b, &a));
        // A matching tag anywhere in a list matches.
        prop_assert_eq!(inm(&format!("\"zz\", {b},"), &a), inm(&b, &a));
    }

    #[test]
    fn strong_if_range_is_symmetric(a in well_formed_tag(), b in well_formed_tag()) {
        let matches = |if_range: &str, etag: &str| {
            if_range_matches(if_range, &Validators { etag: Some(etag), last_modified: None })
        };
        prop_assert_eq!(matches(&a, &b), matches(&b, &a));
        prop_assert_eq!(matches(&a, &a), !a.starts_with("W/"));
    }

    #[test]
    fn imf_fixdate_round_trips(secs in 0u64..253_402_300_800) {
        let time = at(secs);
        prop_assert_eq!(parse_http_date(&httpdate::fmt_http_date(time)), Some(time));
    }
}
