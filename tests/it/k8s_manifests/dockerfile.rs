//! The Dockerfile checks.

use outrider::config::compile;
use regex::Regex;

use crate::k8s_manifests::sources::{admin_endpoints, repo_root, Sources};

// ---------------------------------------------------------------------------------------------
// The Dockerfile.

/// Instructions with their continuation lines joined, comments dropped.
fn dockerfile_instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

pub(crate) fn dockerfile_problems(src: &Sources) -> Vec<String> {
    let mut problems = Vec::new();
    let instructions = dockerfile_instructions(&src.dockerfile);
    let args = |keyword: &str| -> Vec<Vec<String>> {
        instructions
            .iter()
            .filter_map(|i| {
                let (head, rest) = i.split_once(char::is_whitespace)?;
                head.eq_ignore_ascii_case(keyword)
                    .then(|| rest.split_whitespace().map(str::to_string).collect())
            })
            .collect()
    };

    // What the build context must hold; a COPY --from reads another stage instead.
    for copy in args("COPY") {
        if copy.iter().any(|a| a.starts_with("--from")) {
            continue;
        }
        let operands: Vec<&String> = copy.iter().filter(|a| !a.starts_with("--")).collect();
        for source in operands.iter().take(operands.len().saturating_sub(1)) {
            if !repo_root().join(source).exists() {
                problems.push(format!("Dockerfile copies {source}, which does not exist"));
            }
        }
    }

    let conf = match compile(&src.reference_conf, "conf/outrider.toml") {
        Ok(policy) => policy,
        Err(errors) => {
            let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            problems.push(format!(
                "conf/outrider.toml does not compile:\n{}",
                lines.join("\n")
            ));
            return problems;
        }
    };
    let admin_port = conf.admin.listen.port();
    let mut expected: Vec<u16> = conf.server.listen.iter().map(|a| a.port()).collect();
    expected.push(admin_port);
    expected.sort_unstable();
    let mut exposed: Vec<u16> = args("EXPOSE")
        .into_iter()
        .flatten()
        .filter_map(|p| p.split('/').next().and_then(|n| n.parse().ok()))
        .collect();
    exposed.sort_unstable();
    if exposed != expected {
        problems.push(format!(
            "Dockerfile exposes {exposed:?}; conf/outrider.toml listens on {expected:?}"
        ));
    }

    let endpoints = admin_endpoints(&src.endpoints_rs);
    let url = args("HEALTHCHECK")
        .into_iter()
        .flatten()
        .find_map(|a| a.strip_prefix("http://").map(str::to_string));
    match url {
        None => problems.push("Dockerfile has no HEALTHCHECK with an http:// URL".into()),
        Some(url) => {
            let (authority, path) = url.split_at(url.find('/').unwrap_or(url.len()));
            let port = authority
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok());
            if path != "/healthz" || !endpoints.iter().any(|(p, m)| p == path && m == "GET") {
                problems.push(format!("HEALTHCHECK asks {path:?}, expected /healthz"));
            }
            if port != Some(admin_port) {
                problems.push(format!(
                    "HEALTHCHECK goes to port {port:?}, conf/outrider.toml's admin port is {admin_port}"
                ));
            }
        }
    }

    let profile_re = Regex::new(r"cargo build\b[^&;|]*--profile[= ](\S+)").expect("regex");
    match profile_re.captures(&src.dockerfile) {
        None => problems.push("Dockerfile does not run `cargo build --profile NAME`".into()),
        Some(c) => {
            let profile = &c[1];
            let manifest: toml::Table = match toml::from_str(&src.cargo_toml) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("Cargo.toml: {e}"));
                    return problems;
                }
            };
            let defined = manifest
                .get("profile")
                .and_then(|p| p.get(profile))
                .is_some();
            if !defined {
                problems.push(format!(
                    "Dockerfile builds --profile {profile}, which Cargo.toml does not define"
                ));
            }
            // Cargo puts a profile's output in target/<profile>/.
            if !src
                .dockerfile
                .contains(&format!("target/{profile}/outrider"))
            {
                problems.push(format!(
                    "Dockerfile does not take the binary from target/{profile}/"
                ));
            }
        }
    }
    problems
}
