//! Valid files, and the reference config documenting every key of the schema at its default.

use outrider::config::{compile, schema, Policy};

use crate::config_check::helpers::{
    assert_errors, assert_ok, check_path, check_text, outrider, repo_file, write_temp, UPSTREAM,
};

// === valid files ===

#[test]
fn one_upstream_table_is_a_whole_config() {
    let run = check_text("[upstreams.x]\nendpoints = [\"127.0.0.1:3000\"]\n");
    assert_ok(&run);
    let stdout = run.stdout();
    assert!(
        stdout.contains("listen 0.0.0.0:8080 (2 threads), admin 127.0.0.1:9901"),
        "{stdout}"
    );
    assert!(stdout.contains("upstreams (1):"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("x ") && l.contains("127.0.0.1:3000")),
        "{stdout}"
    );
    // No routes: everything goes to the one upstream.
    assert!(stdout.contains("routes (1, in match order):"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("default") && l.contains("-> x")),
        "{stdout}"
    );
}

#[test]
fn reference_config_is_valid() {
    let run = check_path(&repo_file("conf/outrider.toml"));
    assert_ok(&run);
    let stdout = run.stdout();
    assert!(stdout.contains("127.0.0.1:3000"), "{stdout}");
    let routes: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("routes ("))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(routes, ["api", "static", "default"], "{stdout}");
}

#[test]
fn demo_config_is_valid() {
    assert_ok(&check_path(&repo_file("conf/demo.toml")));
}

#[test]
fn missing_file_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let run = check_path(&path);
    assert_errors(&run, &[(1, 1, "", "cannot read: ")]);
}

#[test]
fn outrider_config_env_is_the_fallback_for_check() {
    let good = write_temp(UPSTREAM);
    let good_path = good.path().display().to_string();
    let out = outrider()
        .arg("check")
        .env("OUTRIDER_CONFIG", good.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().next(),
        Some(format!("{good_path}: ok").as_str())
    );

    // The env var names the file the errors are reported against.
    let bad = write_temp("[upstreams.app]\nendpoints = []\n");
    let bad_path = bad.path().display().to_string();
    let out = outrider()
        .arg("check")
        .env("OUTRIDER_CONFIG", bad.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!("{bad_path}:2:13: upstreams.app.endpoints: ")),
        "{stderr}"
    );

    // --config wins over the env var.
    let out = outrider()
        .args(["check", "--config", &good_path])
        .env("OUTRIDER_CONFIG", bad.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// === the reference config documents every key, at its default ===

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap()
}

/// Keys of a serialized schema section (`None`s included, as JSON nulls).
fn json_keys<T: serde::Serialize>(v: &T) -> Vec<String> {
    let mut keys: Vec<String> = json(v)
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn toml_keys(t: &toml::Table, path: &[&str]) -> Vec<String> {
    let mut v = t;
    for p in path {
        v = v[*p]
            .as_table()
            .unwrap_or_else(|| panic!("[{}] is a table", path.join(".")));
    }
    let mut keys: Vec<String> = v.keys().cloned().collect();
    keys.sort();
    keys
}

#[test]
fn reference_config_lists_every_key_of_the_schema() {
    let text = std::fs::read_to_string(repo_file("conf/outrider.toml")).unwrap();
    let file: toml::Table = text.parse().unwrap();
    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (vec![], json_keys(&schema::File::default())),
        (vec!["server"], json_keys(&schema::Server::default())),
        (vec!["admin"], json_keys(&schema::Admin::default())),
        (vec!["log"], json_keys(&schema::Log::default())),
        (
            vec!["upstreams", "app"],
            json_keys(&schema::Upstream::default()),
        ),
        (
            vec!["upstreams", "app", "breaker"],
            json_keys(&schema::Breaker::default()),
        ),
        (
            vec!["upstreams", "app", "retry"],
            json_keys(&schema::Retry::default()),
        ),
        (vec!["cache"], json_keys(&schema::CacheStore::default())),
        (vec!["cache", "warm"], json_keys(&schema::Warm::default())),
        (vec!["defaults"], json_keys(&schema::Defaults::default())),
        (
            vec!["defaults", "compression"],
            json_keys(&schema::Compression::default()),
        ),
        (
            vec!["defaults", "etag"],
            json_keys(&schema::Etag::default()),
        ),
        (
            vec!["defaults", "cache"],
            json_keys(&schema::RouteCache::default()),
        ),
        (vec!["defaults", "slo"], json_keys(&schema::Slo::default())),
    ];
    for (path, expected) in cases {
        assert_eq!(
            toml_keys(&file, &path),
            expected,
            "keys of [{}]",
            path.join(".")
        );
    }
    // Across the example routes, every route key and every match key is shown.
    let routes = file["routes"].as_array().unwrap();
    let mut route_keys: Vec<String> = routes
        .iter()
        .flat_map(|r| r.as_table().unwrap().keys().cloned())
        .collect();
    route_keys.sort();
    route_keys.dedup();
    assert_eq!(route_keys, json_keys(&schema::Route::default()));
    let mut match_keys: Vec<String> = routes
        .iter()
        .flat_map(|r| r["match"].as_table().unwrap().keys().cloned())
        .collect();
    match_keys.sort();
    match_keys.dedup();
    assert_eq!(match_keys, json_keys(&schema::Match::default()));
}

/// The reference is the documentation: every key outside the example routes says what it
/// does on its own line, so a key added to the schema without a word fails here (and the test
/// above fails when it is missing altogether).
#[test]
fn reference_config_documents_every_key() {
    let text = std::fs::read_to_string(repo_file("conf/outrider.toml")).unwrap();
    let mut table = String::new();
    let mut undocumented = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let mut entry = line.trim().to_string();
        if entry.starts_with('[') {
            table = entry;
            continue;
        }
        // A list written over several lines carries its comment on the last one.
        while entry.matches('[').count() > entry.matches(']').count() {
            match lines.next() {
                Some((_, more)) => entry.push_str(more),
                None => break,
            }
        }
        let is_key = entry
            .split_once('=')
            .is_some_and(|(k, _)| !k.trim().is_empty() && !k.contains('#') && !k.contains('"'));
        if is_key && table != "[[routes]]" && !entry.contains(" # ") {
            undocumented.push(format!("{}: {entry}", n + 1));
        }
    }
    assert!(
        undocumented.is_empty(),
        "keys without a comment in conf/outrider.toml:\n{}",
        undocumented.join("\n")
    );
}

#[test]
fn reference_config_values_are_the_defaults() {
    let reference = compile(
        &std::fs::read_to_string(repo_file("conf/outrider.toml")).unwrap(),
        "conf/outrider.toml",
    )
    .unwrap();
    // The same file with every key left out.
    let minimal = compile(&format!("{UPSTREAM}[defaults]\nupstream = \"app\"\n"), "m").unwrap();
    assert_eq!(json(&reference.server), json(&minimal.server));
    assert_eq!(json(&reference.admin), json(&minimal.admin));
    assert_eq!(reference.admin.token, minimal.admin.token);
    assert_eq!(json(&reference.log), json(&minimal.log));
    assert_eq!(json(&reference.cache_store), json(&minimal.cache_store));
    assert_eq!(json(&reference.upstreams), json(&minimal.upstreams));
    // The fallback route is built from [defaults] alone.
    let fallback = |p: &Policy| json(p.all_routes().last().unwrap());
    assert_eq!(fallback(&reference), fallback(&minimal));
}
