use super::*;

use proptest::prelude::*;

fn secs(n: u64) -> Option<Duration> {
    Some(Duration::from_secs(n))
}

fn parse(lines: &[&str]) -> CacheControl {
    let values: Vec<HeaderValue> = lines
        .iter()
        .map(|line| HeaderValue::from_str(line).expect("test values are valid"))
        .collect();
    CacheControl::parse(&values)
}

fn names(list: &[&str]) -> Vec<HeaderName> {
    list.iter()
        .map(|n| HeaderName::from_bytes(n.as_bytes()).expect("test names are valid"))
        .collect()
}

fn headers(fields: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("valid test name"),
            HeaderValue::from_str(value).expect("valid test value"),
        );
    }
    map
}

fn target_list() -> Vec<String> {
    vec!["Outrider-Cache-Control".into(), "CDN-Cache-Control".into()]
}

/// Each row: field lines in, the `max-age` parsed out.
#[test]
fn max_age_values() {
    let rows: &[(&[&str], Option<Duration>)] = &[
        (&["max-age=60"], secs(60)),
        // §5.2: names are case-insensitive; a quoted delta-seconds is accepted.
        (&["MAX-AGE=60"], secs(60)),
        (&["max-age=\"60\""], secs(60)),
        (&["max-age = 60"], secs(60)),
        (&["max-age=007"], secs(7)),
        // §1.2.2: saturate at 2^31.
        (&["max-age=2147483648"], secs(MAX_DELTA_SECONDS)),
        (
            &["max-age=99999999999999999999999"],
            secs(MAX_DELTA_SECONDS),
        ),
        // §4.2.1: invalid freshness information → stale.
        (&["max-age=abc"], secs(0)),
        (&["max-age=-1"], secs(0)),
        (&["max-age="], secs(0)),
        (&["max-age"], secs(0)),
        (&["max-age=6 0"], secs(0)),
        (&["max-age=1.5"], secs(0)),
        (&["max-age=\"60\"x"], secs(0)),
        (&["max-age=\"60"], secs(0)),
        // §4.2.1: conflicting duplicates → stale; equal duplicates are fine.
        (&["max-age=10, max-age=20"], secs(0)),
        (&["max-age=10", "max-age=20"], secs(0)),
        (&["max-age=10, max-age=10"], secs(10)),
        (&["max-age=10, max-age=20, max-age=10"], secs(0)),
        (&["max-age=abc, max-age=10"], secs(0)),
        (&["public"], None),
        (&[""], None),
    ];
    for (lines, expected) in rows {
        assert_eq!(parse(lines).max_age, *expected, "{lines:?}");
    }
}

#[test]
fn s_maxage_follows_the_same_rules() {
    assert_eq!(parse(&["s-maxage=30"]).s_maxage, secs(30));
    assert_eq!(parse(&["s-maxage=x"]).s_maxage, secs(0));
    assert_eq!(parse(&["s-maxage=1, s-maxage=2"]).s_maxage, secs(0));
}

/// RFC 5861: invalid → ignored; conflicting → the smaller.
#[test]
fn stale_extensions() {
    let rows: &[(&str, Option<Duration>, Option<Duration>)] = &[
        (
            "stale-while-revalidate=30, stale-if-error=600",
            secs(30),
            secs(600),
        ),
        ("stale-while-revalidate=abc, stale-if-error=-5", None, None),
        ("stale-while-revalidate", None, None),
        (
            "stale-while-revalidate=30, stale-while-revalidate=10",
            secs(10),
            None,
        ),
        ("stale-if-error=\"60\"", None, secs(60)),
    ];
    for (line, swr, sie) in rows {
        let cc = parse(&[line]);
        assert_eq!(cc.stale_while_revalidate, *swr, "{line}");
        assert_eq!(cc.stale_if_error, *sie, "{line}");
    }
}

#[test]
fn boolean_directives() {
    let cc = parse(&[
        "No-Store, PUBLIC, must-revalidate, proxy-revalidate, must-understand",
        "no-transform, immutable, only-if-cached",
    ]);
    assert!(cc.no_store && cc.public && cc.must_revalidate && cc.proxy_revalidate);
    assert!(cc.must_understand && cc.no_transform && cc.immutable && cc.only_if_cached);
    assert!(!cc.no_cache && !cc.private);
    // An argument on an argument-less directive does not unset it.
    assert!(parse(&["no-store=1"]).no_store);
    assert!(parse(&["no-store=\"x, y\""]).no_store);
}

/// §5.2.2.4, §5.2.2.7: the qualified forms carry field names; a list we cannot read
/// protects the whole response.
#[test]
fn field_name_lists() {
    // (line, private, private_fields, no_cache, no_cache_fields)
    type Row<'r> = (&'r str, bool, &'r [&'r str], bool, &'r [&'r str]);
    let rows: &[Row<'_>] = &[
        ("private", true, &[], false, &[]),
        ("private=\"Set-Cookie\"", false, &["set-cookie"], false, &[]),
        (
            "private=\"Set-Cookie, X-User\"",
            false,
            &["set-cookie", "x-user"],
            false,
            &[],
        ),
        ("private=Set-Cookie", false, &["set-cookie"], false, &[]),
        ("private=\" , x-a ,,\"", false, &["x-a"], false, &[]),
        ("private=\"\"", true, &[], false, &[]),
        ("private=\"bad name\"", true, &[], false, &[]),
        ("private=\"a, b c\"", true, &[], false, &[]),
        ("private=\"unterminated", true, &[], false, &[]),
        ("private, private=\"x-a\"", true, &["x-a"], false, &[]),
        (
            "private=\"x-a\", private=\"X-A, x-b\"",
            false,
            &["x-a", "x-b"],
            false,
            &[],
        ),
        ("no-cache", false, &[], true, &[]),
        (
            "no-cache=\"set-cookie\"",
            false,
            &[],
            false,
            &["set-cookie"],
        ),
        ("no-cache=\"\"", false, &[], true, &[]),
        // Quoted commas belong to the argument, not to the list of directives.
        ("no-cache=\"a, max-age=5\", public", false, &[], true, &[]),
    ];
    for &(line, private, private_fields, no_cache, no_cache_fields) in rows {
        let cc = parse(&[line]);
        assert_eq!(cc.private, private, "{line}");
        assert_eq!(cc.private_fields, names(private_fields), "{line}");
        assert_eq!(cc.no_cache, no_cache, "{line}");
        assert_eq!(cc.no_cache_fields, names(no_cache_fields), "{line}");
    }
    // The quoted `max-age=5` above is not a directive.
    assert_eq!(parse(&["no-cache=\"a, max-age=5\", public"]).max_age, None);
    assert!(parse(&["no-cache=\"a, max-age=5\", public"]).public);
}

#[test]
fn quoted_strings_unescape() {
    let cc = parse(&[r#"private="x-\a, x-b", public"#]);
    assert_eq!(cc.private_fields, names(&["x-a", "x-b"]));
    assert!(cc.public);
    // An escaped quote does not end the string.
    let cc = parse(&[r#"no-cache="x\"y", public"#]);
    assert!(cc.no_cache, "x\"y is not a field name");
    assert!(cc.public);
}

/// §5.2.1: request directives; duplicates keep the stricter value.
#[test]
fn request_directives() {
    let rows: &[(&str, Option<MaxStale>, Option<Duration>)] = &[
        ("max-stale", Some(MaxStale::Any), None),
        (
            "max-stale=30",
            Some(MaxStale::AtMost(Duration::from_secs(30))),
            None,
        ),
        ("max-stale=abc", None, None),
        (
            "max-stale, max-stale=5",
            Some(MaxStale::AtMost(Duration::from_secs(5))),
            None,
        ),
        (
            "max-stale=5, max-stale",
            Some(MaxStale::AtMost(Duration::from_secs(5))),
            None,
        ),
        (
            "max-stale=9, max-stale=5",
            Some(MaxStale::AtMost(Duration::from_secs(5))),
            None,
        ),
        ("min-fresh=10", None, secs(10)),
        ("min-fresh=10, min-fresh=20", None, secs(20)),
        ("min-fresh=x", None, None),
    ];
    for (line, max_stale, min_fresh) in rows {
        let cc = parse(&[line]);
        assert_eq!(cc.max_stale, *max_stale, "{line}");
        assert_eq!(cc.min_fresh, *min_fresh, "{line}");
    }
}

#[test]
fn tolerated_noise() {
    let cc = parse(&[
        " , ,public ,, max-age=5 ,",
        "",
        ",",
        "x-unknown=\"a,b\", =5, foo",
    ]);
    assert!(cc.public);
    assert_eq!(cc.max_age, secs(5));
    assert_eq!(
        cc,
        CacheControl {
            public: true,
            max_age: secs(5),
            ..CacheControl::default()
        }
    );
}

#[test]
fn obs_text_is_bytes() {
    let value = HeaderValue::from_bytes(b"max-age=\xff1, private=\"\xe9\", public")
        .expect("obs-text is a valid header value");
    let cc = CacheControl::parse([&value]);
    assert_eq!(cc.max_age, secs(0));
    assert!(cc.private);
    assert!(cc.public);
}

/// RFC 9213 §2.1: the first listed field that is present, valid and non-empty wins.
#[test]
fn targeted_field_selection() {
    // (fields, winning index, max-age)
    type Row<'r> = (&'r [(&'r str, &'r str)], Option<(usize, Option<Duration>)>);
    let rows: &[Row<'_>] = &[
        (&[("cache-control", "max-age=5")], None),
        (&[("cdn-cache-control", "max-age=60")], Some((1, secs(60)))),
        (
            &[
                ("cdn-cache-control", "max-age=60"),
                ("outrider-cache-control", "max-age=10"),
            ],
            Some((0, secs(10))),
        ),
        // Invalid as a Dictionary (uppercase key, trailing comma, bad string): ignored.
        (
            &[
                ("outrider-cache-control", "Max-Age=10"),
                ("cdn-cache-control", "max-age=60"),
            ],
            Some((1, secs(60))),
        ),
        (
            &[
                ("outrider-cache-control", "max-age=10,"),
                ("cdn-cache-control", "max-age=60"),
            ],
            Some((1, secs(60))),
        ),
        (&[("cdn-cache-control", "private=\"a")], None),
        // A Token where an Integer belongs: invalid argument, so stale.
        (&[("cdn-cache-control", "max-age=abc")], Some((1, secs(0)))),
        // Empty: ignored.
        (&[("cdn-cache-control", "")], None),
        (&[("cdn-cache-control", "   ")], None),
        // `none` is a valid, non-empty Dictionary with no known directive.
        (&[("cdn-cache-control", "none")], Some((1, None))),
        // Lines joined with ", ".
        (
            &[
                ("cdn-cache-control", "public"),
                ("cdn-cache-control", "max-age=60"),
            ],
            Some((1, secs(60))),
        ),
        // A trailing comma on one line leaves an empty member in the joined value.
        (
            &[
                ("cdn-cache-control", "public,"),
                ("cdn-cache-control", "max-age=60"),
            ],
            None,
        ),
    ];
    for (fields, expected) in rows {
        let found = targeted(&headers(fields), &target_list());
        let found = found.map(|(i, cc)| (i, cc.max_age));
        assert_eq!(found, *expected, "{fields:?}");
    }
}

/// RFC 9213 §2.1: values map by Structured Fields type.
#[test]
fn targeted_value_types() {
    let parse_targeted = |value: &str| {
        targeted(&headers(&[("cdn-cache-control", value)]), &target_list())
            .map(|(_, cc)| cc)
            .expect("valid dictionary")
    };
    let cc = parse_targeted("max-age=60, s-maxage=30;x=1, no-store=?0, public=?1, private");
    assert_eq!(cc.max_age, secs(60));
    assert_eq!(cc.s_maxage, secs(30), "parameters are ignored");
    assert!(!cc.no_store, "?0 means absent");
    assert!(cc.public && cc.private);

    let rows: &[(&str, Option<Duration>)] = &[
        ("max-age=-1", secs(0)),
        ("max-age=1.5", secs(0)),
        ("max-age=\"60\"", secs(0)),
        ("max-age=abc", secs(0)),
        ("max-age=:AAA=:", secs(0)),
        ("max-age=(1 2)", secs(0)),
        ("max-age=?1", secs(0)),
        ("max-age=999999999999999", secs(MAX_DELTA_SECONDS)),
        // A Dictionary keeps the last value of a repeated key: no conflict rule.
        ("max-age=10, max-age=20", secs(20)),
        ("max-age=10, max-age=?0", None),
    ];
    for (value, max_age) in rows {
        assert_eq!(parse_targeted(value).max_age, *max_age, "{value}");
    }

    let cc = parse_targeted("private=\"Set-Cookie\", no-cache=\"x-a, x-b\"");
    assert!(!cc.private && !cc.no_cache);
    assert_eq!(cc.private_fields, names(&["set-cookie"]));
    assert_eq!(cc.no_cache_fields, names(&["x-a", "x-b"]));
    // A Token is not a String: unqualified.
    assert!(parse_targeted("private=set-cookie").private);
    // No second opinion from Cache-Control once a targeted field wins.
    let map = headers(&[
        ("cache-control", "no-store"),
        ("cdn-cache-control", "max-age=600"),
    ]);
    let (_, cc) = targeted(&map, &target_list()).expect("valid");
    assert!(!cc.no_store);
}

#[test]
fn structured_fields_validation() {
    let valid = [
        "a",
        "a, b",
        "a=1, b=-2, c=1.5, d=\"x\\\"y\", e=tok/en:1, f=:aGk=:, g=?0, h=(1 \"a\" b);p",
        "*a=1",
        "  a=1  ",
        "a=1\t,\tb",
        "a;p=1;q, b=2;r=?1",
        "a=()",
        "a=123456789012345",
        "a=123456789012.123",
    ];
    let invalid = [
        "A=1",
        "1a",
        "a=1,",
        "a=1 b",
        "a=\"unterminated",
        "a=\"bad\\escape\"",
        "a=:not base64!:",
        "a=?2",
        "a=1234567890123456",
        "a=1234567890123.1",
        "a=1.1234",
        "a=1.",
        "a=-",
        "a=(1",
        "a=(1,2)",
        "\ta",
        "a=é",
    ];
    let check = |value: &str| {
        let value = HeaderValue::from_bytes(value.as_bytes()).expect("valid header value");
        let mut map = HeaderMap::new();
        map.insert("cdn-cache-control", value);
        targeted(&map, &["cdn-cache-control".into()]).is_some()
    };
    for value in valid {
        assert!(check(value), "should be valid: {value}");
    }
    for value in invalid {
        assert!(!check(value), "should be invalid: {value}");
    }
}

#[test]
fn invalid_target_names_are_skipped() {
    let map = headers(&[("cdn-cache-control", "max-age=1")]);
    let names = vec!["bad name".to_string(), "CDN-Cache-Control".to_string()];
    assert_eq!(targeted(&map, &names).map(|(i, _)| i), Some(1));
    assert_eq!(targeted(&map, &[]), None);
}

/// Well-formed directives, rendered and parsed back.
fn render(cc: &CacheControl) -> String {
    let mut parts: Vec<String> = Vec::new();
    let flags = [
        (cc.no_store, "no-store"),
        (cc.no_cache, "no-cache"),
        (cc.private, "private"),
        (cc.public, "public"),
        (cc.must_revalidate, "must-revalidate"),
        (cc.proxy_revalidate, "proxy-revalidate"),
        (cc.must_understand, "must-understand"),
        (cc.no_transform, "no-transform"),
        (cc.immutable, "immutable"),
        (cc.only_if_cached, "only-if-cached"),
    ];
    parts.extend(flags.iter().filter(|f| f.0).map(|f| f.1.to_string()));
    let durations = [
        (cc.max_age, "max-age"),
        (cc.s_maxage, "s-maxage"),
        (cc.stale_while_revalidate, "stale-while-revalidate"),
        (cc.stale_if_error, "stale-if-error"),
        (cc.min_fresh, "min-fresh"),
    ];
    for (value, name) in durations {
        if let Some(d) = value {
            parts.push(format!("{name}={}", d.as_secs()));
        }
    }
    match cc.max_stale {
        Some(MaxStale::Any) => parts.push("max-stale".into()),
        Some(MaxStale::AtMost(d)) => parts.push(format!("max-stale={}", d.as_secs())),
        None => {}
    }
    for (fields, name) in [
        (&cc.no_cache_fields, "no-cache"),
        (&cc.private_fields, "private"),
    ] {
        if !fields.is_empty() {
            let list: Vec<&str> = fields.iter().map(HeaderName::as_str).collect();
            parts.push(format!("{name}=\"{}\"", list.join(", ")));
        }
    }
    parts.join(", ")
}

fn field_names_strategy() -> impl Strategy<Value = Vec<HeaderName>> {
    proptest::collection::btree_set("[a-z][a-z0-9-]{0,8}", 0..3).prop_map(|set| {
        set.iter()
            .map(|n| HeaderName::from_bytes(n.as_bytes()).expect("valid"))
            .collect()
    })
}

fn seconds() -> impl Strategy<Value = Option<Duration>> {
    proptest::option::of((0..=MAX_DELTA_SECONDS).prop_map(Duration::from_secs))
}

prop_compose! {
    fn well_formed()(
        flags in proptest::array::uniform10(any::<bool>()),
        durations in [seconds(), seconds(), seconds(), seconds(), seconds()],
        max_stale in proptest::option::of(prop_oneof![
            Just(MaxStale::Any),
            (0..=MAX_DELTA_SECONDS).prop_map(|s| MaxStale::AtMost(Duration::from_secs(s))),
        ]),
        no_cache_fields in field_names_strategy(),
        private_fields in field_names_strategy(),
    ) -> CacheControl {
        let [no_store, no_cache, private, public, must_revalidate, proxy_revalidate,
            must_understand, no_transform, immutable, only_if_cached] = flags;
        let [max_age, s_maxage, stale_while_revalidate, stale_if_error, min_fresh] = durations;
        CacheControl {
            no_store, no_cache, private, public, must_revalidate, proxy_revalidate,
            must_understand, no_transform, immutable, only_if_cached,
            max_age, s_maxage, stale_while_revalidate, stale_if_error, min_fresh, max_stale,
            no_cache_fields,
            private_fields,
        }
    }
}

proptest! {
    #[test]
    fn parse_is_total(lines in proptest::collection::vec(any::<Vec<u8>>(), 0..4)) {
        let values: Vec<HeaderValue> =
            lines.iter().filter_map(|l| HeaderValue::from_bytes(l).ok()).collect();
        let cc = CacheControl::parse(&values);
        prop_assert_eq!(&cc, &CacheControl::parse(&values));
        for d in [cc.max_age, cc.s_maxage, cc.stale_while_revalidate, cc.stale_if_error] {
            prop_assert!(d.is_none_or(|d| d.as_secs() <= MAX_DELTA_SECONDS));
        }
        let mut map = HeaderMap::new();
        for value in values {
            map.append("cdn-cache-control", value);
        }
        let _ = targeted(&map, &target_list());
    }

    #[test]
    fn parse_is_total_on_directive_soup(
        line in "([a-zA-Z-]{1,16}(=([0-9a-z-]{0,5}|\"[ -~]{0,8}\"?))?[ ,;\t]{0,2}){0,8}"
    ) {
        let value = HeaderValue::from_str(&line).expect("printable");
        let _ = CacheControl::parse([&value]);
        let mut map = HeaderMap::new();
        map.insert("cdn-cache-control", value);
        let _ = targeted(&map, &target_list());
    }

    #[test]
    fn well_formed_round_trips(cc in well_formed()) {
        let rendered = render(&cc);
        let value = HeaderValue::from_str(&rendered).expect("rendered ASCII");
        prop_assert_eq!(&CacheControl::parse([&value]), &cc, "{}", rendered);
        // The same directives are a valid targeted field (when there is at least one).
        if !rendered.is_empty() {
            let mut map = HeaderMap::new();
            map.insert("cdn-cache-control", value);
            let (_, from_sf) = targeted(&map, &target_list()).expect("valid dictionary");
            // A Dictionary keeps the last of `no-cache, no-cache="a"`: the qualified one.
            let mut expected = cc.clone();
            expected.no_cache &= expected.no_cache_fields.is_empty();
            expected.private &= expected.private_fields.is_empty();
            prop_assert_eq!(&from_sf, &expected, "{}", rendered);
        }
    }
}

/// RFC 9213: our own target is consumed here; `CDN-Cache-Control` addresses every CDN on the
/// path and travels on.
#[test]
fn only_targets_of_this_cache_are_consumed() {
    assert!(targeted_field_consumed("Outrider-Cache-Control"));
    assert!(targeted_field_consumed("outrider-cache-control"));
    assert!(targeted_field_consumed("Acme-Cache-Control"));
    assert!(!targeted_field_consumed("CDN-Cache-Control"));
    assert!(!targeted_field_consumed("cdn-cache-control"));
}
