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
//!
//! HTTP-dates (`parse_http_date`): a field that parses is a whole second from 1970 on, trims,
//! and survives parse∘format (`httpdate::fmt_http_date`); without `If-Match` and
//! `If-None-Match`, `evaluate` follows the date rules of RFC 9110 §13.2.2 on the parsed dates.
//! The input's last 12 bytes also name two instants (see `dates`): each, written in each of
//! the three formats, parses to itself, and `If-Modified-Since`, `If-Unmodified-Since` and
//! `If-Range` against `Last-Modified` compare them as instants whatever the formats.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use httpdate::fmt_http_date;
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
    // HTTP-dates in any field: a date that parses is a whole second from 1970 on, parses the
    // same with more whitespace around it, and formats to an IMF-fixdate that parses back to
    // it (and formats to itself again).
    for field in fields.iter().flatten() {
        if let Some(time) = parse_http_date(field) {
            let since_epoch = time.duration_since(UNIX_EPOCH).expect("a date before 1970");
            assert_eq!(since_epoch.subsec_nanos(), 0, "{field:?}");
            assert_eq!(
                parse_http_date(&format!(" {field}\t")),
                Some(time),
                "{field:?}"
            );
            let imf = fmt_http_date(time);
            assert_eq!(
                parse_http_date(&imf),
                Some(time),
                "{field:?} formats to {imf:?}"
            );
            assert_eq!(fmt_http_date(parse_http_date(&imf).unwrap()), imf);
        }
    }
    // The date rules of `evaluate` on these fields, when no entity-tag list takes precedence.
    if if_match.is_none() && if_none_match.is_none() && (200..300).contains(&status) {
        let modified = last_modified.and_then(parse_http_date);
        let unmodified_since = if_unmodified_since.and_then(parse_http_date);
        let modified_since = if_modified_since.and_then(parse_http_date);
        let want = match (modified, unmodified_since, modified_since) {
            (Some(m), Some(u), _) if m > u => Outcome::PreconditionFailed,
            (Some(m), _, Some(s)) if safe_read && m <= s => Outcome::NotModified,
            _ => Outcome::Proceed,
        };
        assert_eq!(outcome, want, "{pre:?} {current:?}");
    }
    dates(data);

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

/// Two instants from the input's last 12 bytes, each 5 bytes of seconds (up to 9999-12-31)
/// and a byte choosing its format (bits 0-1: IMF-fixdate, RFC 850, asctime; bit 2 of the
/// second: the same instant as the first). Every format of an instant parses to it, and
/// `If-Modified-Since`, `If-Unmodified-Since` and `If-Range` compare the instants.
fn dates(data: &[u8]) {
    let Some((_, &[a0, a1, a2, a3, a4, format_a, b0, b1, b2, b3, b4, format_b])) =
        data.split_last_chunk::<12>()
    else {
        return;
    };
    let instant = |bytes: [u8; 5]| {
        let mut wide = [0; 8];
        wide[..5].copy_from_slice(&bytes);
        UNIX_EPOCH + Duration::from_secs(u64::from_le_bytes(wide) % 253_402_300_800)
    };
    let a = instant([a0, a1, a2, a3, a4]);
    let b = if format_b & 0x04 != 0 {
        a
    } else {
        instant([b0, b1, b2, b3, b4])
    };
    for time in [a, b] {
        for format in 0..3 {
            let text = render(time, format);
            assert_eq!(parse_http_date(&text), Some(time), "{text:?}");
        }
    }
    let (asked, modified) = (render(a, format_a), render(b, format_b));
    let current = Validators {
        etag: None,
        last_modified: Some(&modified),
    };
    let since = |if_modified_since, if_unmodified_since, safe_read| {
        let pre = Preconditions {
            if_modified_since,
            if_unmodified_since,
            ..Preconditions::default()
        };
        evaluate(&pre, safe_read, 200, &current)
    };
    let not_modified = if b <= a {
        Outcome::NotModified
    } else {
        Outcome::Proceed
    };
    assert_eq!(
        since(Some(&asked), None, true),
        not_modified,
        "IMS {asked} LM {modified}"
    );
    assert_eq!(since(Some(&asked), None, false), Outcome::Proceed);
    let failed = if b > a {
        Outcome::PreconditionFailed
    } else {
        Outcome::Proceed
    };
    for safe_read in [true, false] {
        assert_eq!(
            since(None, Some(&asked), safe_read),
            failed,
            "IUS {asked} LM {modified}"
        );
    }
    assert_eq!(
        if_range_matches(&asked, &current),
        a == b,
        "If-Range {asked} LM {modified}"
    );
}

/// `time` as an IMF-fixdate (format 0 or 3), an RFC 850 date (1, when its two-digit year reads
/// back as the same year: 1970-2069) or an asctime date (2).
fn render(time: SystemTime, format: u8) -> String {
    // `Sun, 06 Nov 1994 08:49:37 GMT`
    let imf = fmt_http_date(time);
    let (day_name, day, month, year, clock) = (
        &imf[..3],
        &imf[5..7],
        &imf[8..11],
        &imf[12..16],
        &imf[17..25],
    );
    match format & 3 {
        1 if ("1970".."2070").contains(&year) => {
            let full = match day_name {
                "Mon" => "Monday",
                "Tue" => "Tuesday",
                "Wed" => "Wednesday",
                "Thu" => "Thursday",
                "Fri" => "Friday",
                "Sat" => "Saturday",
                _ => "Sunday",
            };
            format!("{full}, {day}-{month}-{} {clock} GMT", &year[2..])
        }
        2 => format!(
            "{day_name} {month} {:>2} {clock} {year}",
            day.trim_start_matches('0')
        ),
        _ => imf,
    }
}
