//! `cargo +nightly fuzz run preconditions`: arbitrary bytes through `conditional::evaluate`,
//! `if_range_matches` and `parse_http_date`.
//!
//! The first byte sets the method class (bit 0: GET/HEAD), whether the unconditional status
//! is 2xx (bit 1), and bits 2-7 each remove one of the first six fields below; the second
//! byte varies the status. The rest,
//! decoded lossily as UTF-8, is split on `\n` into If-Match, If-None-Match,
//! If-Modified-Since, If-Unmodified-Since, ETag, Last-Modified and If-Range (missing pieces
//! are absent). Nothing may panic, and the answers must respect what holds whatever the
//! input: non-2xx or no precondition → `Proceed`; 304 only for GET/HEAD; the same input gives
//! the same answer; a generated ETag is a strong tag that an `If-None-Match` of itself matches.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outrider::conditional::{
    evaluate, if_range_matches, parse_http_date, BodyHasher, Outcome, Preconditions, Validators,
};

fuzz_target!(|data: &[u8]| {
    let Some((&[selector, status_byte], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let safe_read = selector & 0x01 != 0;
    let status = if selector & 0x02 != 0 {
        200 + u16::from(status_byte % 100)
    } else {
        u16::from(status_byte) * 4
    };
    let text = String::from_utf8_lossy(rest);
    let mut pieces = text.split('\n');
    let mut fields: [Option<&str>; 7] = std::array::from_fn(|_| pieces.next());
    for (i, field) in fields.iter_mut().take(6).enumerate() {
        if selector & (0x04 << i) != 0 {
            *field = None;
        }
    }
    let [if_match, if_none_match, if_modified_since, if_unmodified_since, etag, last_modified, if_range] =
        fields;

    let pre = Preconditions {
        if_match,
        if_none_match,
        if_modified_since,
        if_unmodified_since,
    };
    let current = Validators {
        etag,
        last_modified,
    };
    let outcome = evaluate(&pre, safe_read, status, &current);
    assert_eq!(outcome, evaluate(&pre, safe_read, status, &current));
    if !(200..300).contains(&status) || pre.is_empty() {
        assert_eq!(outcome, Outcome::Proceed, "{pre:?} {current:?} {status}");
    }
    if outcome == Outcome::NotModified {
        assert!(safe_read, "304 for an unsafe method: {pre:?} {current:?}");
    }

    if let Some(if_range) = if_range {
        let _ = if_range_matches(if_range, &current);
    }
    for field in fields.iter().flatten() {
        let _ = parse_http_date(field);
    }

    // The generated tag: pieces hash like the whole, and the tag matches itself.
    let mut whole = BodyHasher::new();
    whole.update(rest);
    let mut pieces = BodyHasher::new();
    let (a, b) = rest.split_at(usize::from(status_byte).min(rest.len()));
    pieces.update(a);
    pieces.update(b);
    let tag = whole.finish();
    assert_eq!(tag, pieces.finish());
    let generated = Validators {
        etag: Some(&tag),
        last_modified: None,
    };
    let revalidate = Preconditions {
        if_none_match: Some(&tag),
        ..Preconditions::default()
    };
    assert_eq!(
        evaluate(&revalidate, true, 200, &generated),
        Outcome::NotModified
    );
    assert!(if_range_matches(&tag, &generated));
});
