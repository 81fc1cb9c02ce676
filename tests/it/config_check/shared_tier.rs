//! `[cache.shared]` and `[cache.warm]` through `outrider check`: every bad value at its
//! `FILE:LINE:COL: key`.

use crate::config_check::helpers::{assert_errors, assert_ok, check_text, UPSTREAM};

#[test]
fn a_complete_shared_tier_and_warm_list_are_accepted() {
    let text = format!(
        "{UPSTREAM}\n[cache.shared]\nurl = \"rediss://:secret@redis.internal:6380/2\"\n\
         key_prefix = \"shop:\"\ntimeout = \"10ms\"\nmax_object_size = \"512KiB\"\nfill_lock = \"0s\"\n\n\
         [cache.warm]\nurls = [\"http://shop.example/\", \"http://shop.example:8080/api?x=1\"]\nconcurrency = 2\n"
    );
    assert_ok(&check_text(&text));
}

#[test]
fn bad_urls_schemes_and_a_zero_timeout_are_located() {
    let text = format!(
        "{UPSTREAM}\n[cache.shared]\nurl = \"http://redis:6379\"\ntimeout = \"0s\"\nkey_prefix = \"\"\n\n\
         [cache.warm]\nurls = [\"/relative\", \"https://shop.example/\"]\nconcurrency = 0\n"
    );
    let run = check_text(&text);
    assert_errors(
        &run,
        &[
            (5, 7, "cache.shared.url", "unknown scheme \"http\""),
            (6, 11, "cache.shared.timeout", "must be more than 0"),
            (7, 14, "cache.shared.key_prefix", "must be non-empty"),
            (10, 9, "cache.warm.urls[0]", "an absolute URL is needed"),
            (10, 22, "cache.warm.urls[1]", "unknown scheme \"https\""),
            (11, 15, "cache.warm.concurrency", "must be at least 1"),
        ],
    );
}

#[test]
fn a_malformed_redis_url_or_a_missing_one_is_an_error() {
    let text = format!("{UPSTREAM}\n[cache.shared]\nurl = \"redis://host:notaport/0\"\n");
    let run = check_text(&text);
    assert_errors(&run, &[(5, 7, "cache.shared.url", "invalid Redis URL")]);

    let text = format!("{UPSTREAM}\n[cache.shared]\ntimeout = \"5ms\"\n");
    let run = check_text(&text);
    assert_errors(&run, &[(4, 1, "cache.shared", "url is required")]);
}

#[test]
fn unknown_keys_in_the_new_tables_are_schema_errors() {
    let text = format!("{UPSTREAM}\n[cache.shared]\nurl = \"redis://h/0\"\nttl = \"1s\"\n");
    let run = check_text(&text);
    assert_errors(&run, &[(6, 1, "cache.shared.ttl", "unknown field `ttl`")]);
}
