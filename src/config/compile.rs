//! schema → policy: validation and compilation, every problem collected with its key path.
//!
//! Schema-level errors (syntax, unknown keys, wrong types, bad durations) come from
//! `diagnostics::deserialize_all`; this file adds what needs the whole file to judge: references
//! between sections, uniqueness, regexes, addresses and value ranges.

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use regex::Regex;

use super::diagnostics::{deserialize_all, locate, ConfigError, Seg, Source};
use super::policy::*;
use super::resilience::rate_limit;
use super::route_cache::route_cache;
use super::schema;
use super::slo::{check_defaults, route_slo, slow_request};

/// Collects semantic errors by key path; they are located in the source at the end.
#[derive(Default)]
pub(super) struct Problems(Vec<(Vec<Seg>, String)>);

impl Problems {
    pub(super) fn add(&mut self, path: Vec<Seg>, msg: impl Into<String>) {
        self.0.push((path, msg.into()));
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

pub(super) fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

pub(super) fn at(base: &[Seg], rest: &[&str]) -> Vec<Seg> {
    let mut p = base.to_vec();
    p.extend(rest.iter().map(|k| key(k)));
    p
}

/// Compiles conf text into a policy. `file` names the source in error messages.
pub fn compile(text: &str, file: &str) -> Result<Policy, Vec<ConfigError>> {
    let src = Source::new(file, text);
    let found = deserialize_all::<schema::File>(&src);
    let Some(doc) = found.value else {
        return Err(found.errors);
    };
    let mut problems = Problems::default();
    let policy = build(doc, &mut problems);
    if found.errors.is_empty() && problems.0.is_empty() {
        if let Some(policy) = policy {
            return Ok(policy);
        }
    }
    // With schema errors, the checks above ran on the document minus the bad entries; a
    // problem about a key that already has a schema error is a consequence of it, not news.
    let schema_keys: Vec<&str> = found.errors.iter().map(|e| e.key.as_str()).collect();
    let overlaps = |key: &str| {
        schema_keys.iter().any(|k| {
            let (short, long) = if k.len() <= key.len() {
                (*k, key)
            } else {
                (key, *k)
            };
            long.starts_with(short)
                && matches!(long.as_bytes().get(short.len()), None | Some(b'.' | b'['))
        })
    };
    let mut errors = found.errors.clone();
    errors.extend(
        locate(&src, problems.0)
            .into_iter()
            .filter(|e| !overlaps(&e.key)),
    );
    errors.sort_by_key(|e| (e.line, e.column));
    Err(errors)
}

fn build(doc: schema::File, p: &mut Problems) -> Option<Policy> {
    let server = server(&doc.server, p);
    let admin = admin(&doc.admin, p);
    let log = log_policy(&doc.log, p);
    let (shared, warm) = super::shared_tier::compile(&doc.cache, p);
    let cache_store = CacheStorePolicy {
        max_size: doc.cache.max_size.0,
        max_object_size: doc.cache.max_object_size.0,
        shared,
        warm,
    };
    if cache_store.max_object_size > cache_store.max_size {
        p.add(
            vec![key("cache"), key("max_object_size")],
            "must not exceed cache.max_size",
        );
    }

    let limits = limits(&doc.limits, p);

    if doc.upstreams.is_empty() {
        p.add(
            vec![key("upstreams")],
            "at least one [upstreams.NAME] table is required",
        );
    }
    let upstreams: Vec<Arc<Upstream>> = doc
        .upstreams
        .iter()
        .filter_map(|(name, u)| upstream(name, u, p).map(Arc::new))
        .collect();
    let upstream_names: Vec<&str> = doc.upstreams.keys().map(String::as_str).collect();
    for (i, name) in doc.admin.readiness_upstreams.iter().enumerate() {
        if !upstream_names.contains(&name.as_str()) {
            p.add(
                vec![key("admin"), key("readiness_upstreams"), Seg::Index(i)],
                format!(
                    "no upstream named {name:?} (have: {})",
                    upstream_names.join(", ")
                ),
            );
        }
    }
    let upstream_index = |name: &str| upstream_names.iter().position(|n| *n == name);

    let defaults_path = vec![key("defaults")];
    // Without an explicit `[defaults] upstream`, a single upstream is the obvious default.
    let default_upstream = match &doc.defaults.upstream {
        Some(name) => {
            if upstream_index(name).is_none() {
                p.add(
                    at(&defaults_path, &["upstream"]),
                    format!(
                        "no upstream named {name:?} (have: {})",
                        upstream_names.join(", ")
                    ),
                );
            }
            Some(name.clone())
        }
        None if upstream_names.len() == 1 => Some(upstream_names[0].to_string()),
        None => None,
    };

    check_defaults(&doc.defaults.slo, &defaults_path, p);

    let mut seen_names = HashSet::new();
    let mut routes = Vec::new();
    for (i, r) in doc.routes.iter().enumerate() {
        let base = vec![key("routes"), Seg::Index(i)];
        let name = match &r.name {
            Some(n) if n.trim().is_empty() => {
                p.add(at(&base, &["name"]), "must not be empty");
                continue;
            }
            Some(n) => n.clone(),
            None => {
                p.add(
                    base.clone(),
                    "every route needs a `name` (it labels metrics and logs)",
                );
                continue;
            }
        };
        if !seen_names.insert(name.clone()) {
            p.add(
                at(&base, &["name"]),
                format!("duplicate route name {name:?}"),
            );
        }
        let upstream_name = match (&r.upstream, &default_upstream) {
            (Some(u), _) => Some((u.clone(), at(&base, &["upstream"]))),
            (None, Some(u)) => Some((u.clone(), base.clone())),
            (None, None) => {
                p.add(
                    base.clone(),
                    "no `upstream` for this route and no `[defaults] upstream` to fall back on",
                );
                None
            }
        };
        let matcher = matcher(&r.matcher, &at(&base, &["match"]), p);
        let Some((upstream_name, up_path)) = upstream_name else {
            continue;
        };
        let Some(upstream) = upstream_index(&upstream_name) else {
            p.add(
                up_path,
                format!(
                    "no upstream named {upstream_name:?} (have: {})",
                    upstream_names.join(", ")
                ),
            );
            continue;
        };
        routes.push(Route {
            name: name.into(),
            matcher,
            upstream,
            server_timing: r
                .server_timing
                .or(doc.defaults.server_timing)
                .unwrap_or(false),
            compression: compression(&doc.defaults.compression, &r.compression, &base, p),
            etag: etag(&doc.defaults.etag, &r.etag),
            cache: route_cache(&doc.defaults.cache, &r.cache, &base, p),
            slo: SloPolicy::default(),
            slow_request: slow_request(&doc.log, Some(r)),
            rate_limit: rate_limit(&doc.defaults.rate_limit, &r.rate_limit, &base, p),
            deadline: r
                .deadline
                .or(doc.defaults.deadline)
                .filter(|d| !d.0.is_zero())
                .map(|d| d.0),
        });
        if let Some(route) = routes.last_mut() {
            route.slo = route_slo(&doc.defaults.slo, &r.slo, &base, route.cache.enabled, p);
        }
    }

    // The defaults route catches what no route matched: always when there are no routes (a
    // file with just an upstream proxies everything), and when `[defaults] upstream` is set
    // explicitly. Otherwise an unmatched request is a 404, as with nginx without a default
    // `location /`.
    let fallback_upstream = if doc.routes.is_empty() {
        default_upstream.as_deref()
    } else {
        doc.defaults.upstream.as_deref()
    };
    if doc.routes.is_empty() && default_upstream.is_none() && upstream_names.len() > 1 {
        p.add(
            vec![key("upstreams")],
            "with several upstreams and no routes, set `[defaults] upstream` to say where requests go",
        );
    }
    let fallback = fallback_upstream
        .and_then(upstream_index)
        .map(|upstream| Route {
            name: "default".into(),
            matcher: Matcher::default(),
            upstream,
            server_timing: doc.defaults.server_timing.unwrap_or(false),
            compression: compression(
                &doc.defaults.compression,
                &Default::default(),
                &defaults_path,
                p,
            ),
            etag: etag(&doc.defaults.etag, &Default::default()),
            cache: route_cache(&doc.defaults.cache, &Default::default(), &defaults_path, p),
            slo: SloPolicy::default(),
            slow_request: slow_request(&doc.log, None),
            rate_limit: rate_limit(
                &doc.defaults.rate_limit,
                &Default::default(),
                &defaults_path,
                p,
            ),
            deadline: doc
                .defaults
                .deadline
                .filter(|d| !d.0.is_zero())
                .map(|d| d.0),
        })
        .map(|mut route| {
            route.slo = route_slo(
                &doc.defaults.slo,
                &Default::default(),
                &defaults_path,
                route.cache.enabled,
                p,
            );
            route
        });
    if fallback.is_some() && seen_names.contains("default") {
        p.add(
            vec![key("routes")],
            "the route name \"default\" is reserved for the [defaults] route",
        );
    }

    if !p.0.is_empty() || upstreams.len() != doc.upstreams.len() {
        return None;
    }
    Some(Policy {
        server: server?,
        admin: admin?,
        log: log?,
        cache_store,
        limits,
        upstreams,
        routes: RouteTable {
            has_fallback: fallback.is_some(),
            routes: routes.into_iter().chain(fallback).collect(),
        },
    })
}

fn parse_listen(addr: &str, path: Vec<Seg>, p: &mut Problems) -> Option<SocketAddr> {
    match addr.trim().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            p.add(
                path,
                format!("invalid listen address {addr:?}; use \"IP:PORT\", e.g. \"0.0.0.0:8080\""),
            );
            None
        }
    }
}

fn server(s: &schema::Server, p: &mut Problems) -> Option<ServerPolicy> {
    let base = [key("server"), key("listen")];
    let listen: Vec<Option<SocketAddr>> = match &s.listen {
        schema::Listen::One(a) => vec![parse_listen(a, base.to_vec(), p)],
        schema::Listen::Many(list) => {
            if list.is_empty() {
                p.add(base.to_vec(), "needs at least one address");
            }
            list.iter()
                .enumerate()
                .map(|(i, a)| {
                    let mut path = base.to_vec();
                    path.push(Seg::Index(i));
                    parse_listen(a, path, p)
                })
                .collect()
        }
    };
    if s.threads == 0 {
        p.add(vec![key("server"), key("threads")], "must be at least 1");
    }
    if !s.upgrade_sock.starts_with('/') {
        p.add(
            vec![key("server"), key("upgrade_sock")],
            format!("{:?} must be an absolute path", s.upgrade_sock),
        );
    }
    Some(ServerPolicy {
        listen: listen.into_iter().collect::<Option<Vec<_>>>()?,
        threads: s.threads,
        grace_period: s.grace_period.0,
        upgrade_sock: s.upgrade_sock.clone().into(),
    })
}

fn limits(l: &schema::Limits, p: &mut Problems) -> LimitsPolicy {
    use super::policy::{PARSER_MAX_HEADERS, PARSER_MAX_HEAD_BYTES};
    let at = |name: &str| at(&[key("limits")], &[name]);
    if l.max_header_bytes.0 > PARSER_MAX_HEAD_BYTES {
        p.add(
            at("max_header_bytes"),
            format!(
                "{} is above the HTTP parser's own ceiling of {PARSER_MAX_HEAD_BYTES} bytes",
                l.max_header_bytes
            ),
        );
    }
    if l.max_request_line.0 < 16 {
        p.add(at("max_request_line"), "must be at least 16 bytes");
    } else if l.max_request_line.0 > l.max_header_bytes.0 {
        p.add(
            at("max_request_line"),
            "must not exceed limits.max_header_bytes (the request line is part of the head)",
        );
    }
    if !(1..=PARSER_MAX_HEADERS).contains(&l.max_headers) {
        p.add(
            at("max_headers"),
            format!("must be between 1 and {PARSER_MAX_HEADERS} (the HTTP parser's ceiling)"),
        );
    }
    if l.body_timeout.0.is_zero() {
        p.add(at("body_timeout"), "must be greater than zero");
    }
    // Pingora keeps keep-alive timeouts in whole seconds.
    if l.idle_timeout.0 < Duration::from_secs(1) {
        p.add(at("idle_timeout"), "must be at least 1s");
    }
    if l.header_timeout.0.is_zero() {
        p.add(at("header_timeout"), "must be greater than zero");
    }
    LimitsPolicy {
        header_timeout: l.header_timeout.0,
        max_request_line: l.max_request_line.0,
        max_header_bytes: l.max_header_bytes.0,
        max_headers: l.max_headers,
        max_body: (l.max_body.0 > 0).then_some(l.max_body.0),
        body_timeout: l.body_timeout.0,
        idle_timeout: l.idle_timeout.0,
    }
}

fn admin(a: &schema::Admin, p: &mut Problems) -> Option<AdminPolicy> {
    let listen = parse_listen(&a.listen, vec![key("admin"), key("listen")], p)?;
    // A client sends the token as `Authorization: Bearer <token>`, and a header value cannot
    // carry what this refuses (or loses it to trimming), so such a token could never match:
    // the operator would be locked out of every mutating endpoint.
    if let Some((at, c)) = a.token.char_indices().find(|(_, c)| !c.is_ascii_graphic()) {
        p.add(
            vec![key("admin"), key("token")],
            format!(
                "{c:?} at position {at}: a token must be printable ASCII without spaces \
                 (it is sent as `Authorization: Bearer <token>`)"
            ),
        );
        return None;
    }
    let mut allowed_hosts = Vec::with_capacity(a.allowed_hosts.len());
    for (i, host) in a.allowed_hosts.iter().enumerate() {
        match super::admin_hosts::normalize_allowed(host) {
            Ok(host) => allowed_hosts.push(host),
            Err(why) => p.add(
                vec![key("admin"), key("allowed_hosts"), Seg::Index(i)],
                format!("{host:?}: {why}"),
            ),
        }
    }
    Some(AdminPolicy {
        readiness_upstreams: a.readiness_upstreams.clone(),
        listen,
        token: (!a.token.is_empty()).then(|| a.token.clone()),
        allowed_hosts,
        advisor: a.advisor,
    })
}

fn log_policy(l: &schema::Log, p: &mut Problems) -> Option<LogPolicy> {
    let level = match l.level.parse::<log::LevelFilter>() {
        Ok(level) => Some(level),
        Err(_) => {
            p.add(
                vec![key("log"), key("level")],
                format!(
                    "invalid level {:?}; one of off, error, warn, info, debug, trace",
                    l.level
                ),
            );
            None
        }
    };
    let format = match l.format.as_str() {
        "text" => Some(LogFormat::Text),
        "json" => Some(LogFormat::Json),
        other => {
            p.add(
                vec![key("log"), key("format")],
                format!("invalid format {other:?}; one of \"text\", \"json\""),
            );
            None
        }
    };
    Some(LogPolicy {
        level: level?,
        format: format?,
        access_log: l.access_log,
        slow_request: (!l.slow_request.0.is_zero()).then_some(l.slow_request.0),
    })
}

fn upstream(name: &str, u: &schema::Upstream, p: &mut Problems) -> Option<Upstream> {
    let base = vec![key("upstreams"), key(name)];
    let mut ok = true;
    if u.endpoints.is_empty() {
        p.add(
            at(&base, &["endpoints"]),
            "needs at least one \"host:port\" endpoint",
        );
        ok = false;
    }
    let mut endpoints = Vec::with_capacity(u.endpoints.len());
    for (i, ep) in u.endpoints.iter().enumerate() {
        let mut path = at(&base, &["endpoints"]);
        path.push(Seg::Index(i));
        match resolve_endpoint(ep) {
            Ok(addr) => endpoints.push(Endpoint {
                label: ep.clone(),
                addr,
            }),
            Err(msg) => {
                p.add(path, msg);
                ok = false;
            }
        }
    }
    if u.tls && !cfg!(feature = "tls") {
        p.add(
            at(&base, &["tls"]),
            "this build of outrider has no TLS support (rebuild with the `tls` feature)",
        );
        ok = false;
    }
    // SNI defaults to the host part of the first endpoint, which is what a client of that
    // address would send.
    let sni = if !u.tls {
        String::new()
    } else if !u.sni.is_empty() {
        u.sni.clone()
    } else {
        u.endpoints
            .first()
            .and_then(|e| e.rsplit_once(':'))
            .map(|(host, _)| host.trim_matches(['[', ']']).to_string())
            .unwrap_or_default()
    };
    for (k, d) in [
        ("connect_timeout", u.connect_timeout),
        ("read_timeout", u.read_timeout),
    ] {
        if d.0.is_zero() {
            p.add(at(&base, &[k]), "must be greater than 0");
            ok = false;
        }
    }
    if u.max_concurrent == 0 {
        p.add(at(&base, &["max_concurrent"]), "must be at least 1");
        ok = false;
    }
    let breaker = breaker(&u.breaker, &at(&base, &["breaker"]), p);
    let retry = super::resilience::retry(&u.retry, &at(&base, &["retry"]), p);
    if !ok {
        return None;
    }
    let mut compiled = Upstream::new(
        name.into(),
        endpoints,
        u.tls,
        sni,
        u.connect_timeout.0,
        u.read_timeout.0,
        u.max_concurrent,
        breaker?,
    );
    compiled.retry = retry?;
    if let Some(h) = &u.health_check {
        compiled.health_check = Some(super::resilience::health_check(
            h,
            &at(&base, &["health_check"]),
            p,
        )?);
    }
    Some(compiled)
}

/// `IP:PORT` is taken as is; `name:PORT` is resolved once, here, so that a typo fails the
/// check instead of every request. A sidecar's upstream is almost always loopback or a
/// stable service name.
fn resolve_endpoint(ep: &str) -> Result<SocketAddr, String> {
    let ep = ep.trim();
    let bad_port =
        || format!("invalid endpoint {ep:?}: expected \"host:port\" with a port 1-65535");
    if let Ok(addr) = ep.parse::<SocketAddr>() {
        // Port 0 is refused for IP endpoints as it is for named ones: nothing can connect to it.
        return if addr.port() == 0 {
            Err(bad_port())
        } else {
            Ok(addr)
        };
    }
    let Some((host, port)) = ep.rsplit_once(':') else {
        return Err(format!("invalid endpoint {ep:?}: expected \"host:port\""));
    };
    let port = match port.parse::<u16>() {
        Ok(port) if !host.is_empty() && port != 0 => port,
        _ => return Err(bad_port()),
    };
    match (host, port).to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("endpoint {ep:?}: host {host:?} resolves to no address")),
        Err(e) => Err(format!(
            "endpoint {ep:?}: cannot resolve host {host:?}: {e}"
        )),
    }
}

/// `max_open_for` when the file does not set it and `open_for` is shorter.
const DEFAULT_MAX_OPEN_FOR: Duration = Duration::from_secs(300);

fn breaker(b: &schema::Breaker, base: &[Seg], p: &mut Problems) -> Option<BreakerPolicy> {
    let before = p.0.len();
    if b.consecutive_failures == 0 {
        p.add(at(base, &["consecutive_failures"]), "must be at least 1");
    }
    if !(b.failure_rate > 0.0 && b.failure_rate <= 1.0) {
        p.add(at(base, &["failure_rate"]), "must be in (0, 1]");
    }
    if b.window.0.is_zero() {
        p.add(at(base, &["window"]), "must be greater than 0");
    }
    if b.open_for.0.is_zero() {
        p.add(at(base, &["open_for"]), "must be greater than 0");
    }
    // Only a cap the user wrote can contradict `open_for`; the default cap makes room for it.
    let max_open_for = match b.max_open_for {
        Some(max) if max < b.open_for => {
            p.add(at(base, &["max_open_for"]), "must be at least open_for");
            max.0
        }
        Some(max) => max.0,
        None => b.open_for.0.max(DEFAULT_MAX_OPEN_FOR),
    };
    if b.half_open_probes == 0 {
        p.add(at(base, &["half_open_probes"]), "must be at least 1");
    }
    for (i, s) in b.failure_statuses.iter().enumerate() {
        if !(100..=599).contains(s) {
            let mut path = at(base, &["failure_statuses"]);
            path.push(Seg::Index(i));
            p.add(path, format!("{s} is not an HTTP status code"));
        }
    }
    (p.0.len() == before).then(|| BreakerPolicy {
        enabled: b.enabled,
        consecutive_failures: b.consecutive_failures,
        failure_rate: b.failure_rate,
        min_requests: b.min_requests,
        window: b.window.0,
        open_for: b.open_for.0,
        max_open_for,
        half_open_probes: b.half_open_probes,
        failure_statuses: b.failure_statuses.clone(),
    })
}

fn matcher(m: &schema::Match, base: &[Seg], p: &mut Problems) -> Matcher {
    let host = m.host.as_deref().and_then(|h| {
        let valid = !h.trim().is_empty()
            && h.trim_start_matches("*.")
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
            && !h.trim_start_matches('*').contains('*');
        if valid {
            Some(HostMatch::parse(h))
        } else {
            p.add(
                at(base, &["host"]),
                format!("invalid host pattern {h:?}; use \"example.com\" or \"*.example.com\""),
            );
            None
        }
    });
    if let Some(prefix) = &m.path_prefix {
        if !prefix.starts_with('/') {
            p.add(
                at(base, &["path_prefix"]),
                format!("{prefix:?} must start with '/'"),
            );
        }
    }
    let path_regex = m.path_regex.as_deref().and_then(|re| match Regex::new(re) {
        Ok(re) => Some(re),
        Err(e) => {
            // regex's message spans several lines with a caret diagram; keep its last line.
            let msg = e.to_string();
            let reason = msg
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or(&msg)
                .trim();
            p.add(
                at(base, &["path_regex"]),
                format!("invalid regex {re:?}: {reason}"),
            );
            None
        }
    });
    let mut methods = Vec::new();
    for (i, name) in m.methods.iter().enumerate() {
        match Method::from_bytes(name.to_ascii_uppercase().as_bytes()) {
            Ok(method) if !name.is_empty() => methods.push(method),
            _ => {
                let mut path = at(base, &["methods"]);
                path.push(Seg::Index(i));
                p.add(path, format!("invalid method {name:?}"));
            }
        }
    }
    Matcher {
        host,
        path_prefix: m.path_prefix.clone(),
        path_regex,
        methods,
    }
}

fn compression(
    d: &schema::Compression,
    r: &schema::Compression,
    base: &[Seg],
    p: &mut Problems,
) -> CompressionPolicy {
    let base = at(base, &["compression"]);
    let names = r.algorithms.as_ref().or(d.algorithms.as_ref());
    let mut algorithms = Vec::new();
    match names {
        None => algorithms = vec![Coding::Zstd, Coding::Br, Coding::Gzip],
        Some(names) => {
            for (i, n) in names.iter().enumerate() {
                let coding = match n.to_ascii_lowercase().as_str() {
                    "zstd" => Coding::Zstd,
                    "br" | "brotli" => Coding::Br,
                    "gzip" => Coding::Gzip,
                    _ => {
                        let mut path = at(&base, &["algorithms"]);
                        path.push(Seg::Index(i));
                        p.add(
                            path,
                            format!("unknown algorithm {n:?}; one of \"zstd\", \"br\", \"gzip\""),
                        );
                        continue;
                    }
                };
                if !algorithms.contains(&coding) {
                    algorithms.push(coding);
                }
            }
        }
    }
    let gzip_level = r.gzip_level.or(d.gzip_level).unwrap_or(6);
    let brotli_level = r.brotli_level.or(d.brotli_level).unwrap_or(4);
    let zstd_level = r.zstd_level.or(d.zstd_level).unwrap_or(3);
    if !(1..=9).contains(&gzip_level) {
        p.add(at(&base, &["gzip_level"]), "must be 1-9");
    }
    if brotli_level > 11 {
        p.add(at(&base, &["brotli_level"]), "must be 0-11");
    }
    if !(1..=22).contains(&zstd_level) {
        p.add(at(&base, &["zstd_level"]), "must be 1-22");
    }
    let content_types = r
        .content_types
        .clone()
        .or_else(|| d.content_types.clone())
        .unwrap_or_else(|| DEFAULT_COMPRESSIBLE_TYPES.map(String::from).to_vec());
    for (i, ct) in content_types.iter().enumerate() {
        let valid = ct
            .split_once('/')
            .is_some_and(|(t, s)| !t.is_empty() && !s.is_empty() && !s.contains('/'));
        if !valid {
            let mut path = at(&base, &["content_types"]);
            path.push(Seg::Index(i));
            p.add(
                path,
                format!("invalid media type pattern {ct:?}; use e.g. \"text/*\""),
            );
        }
    }
    CompressionPolicy {
        enabled: r.enabled.or(d.enabled).unwrap_or(true),
        algorithms,
        min_size: r.min_size.or(d.min_size).map_or(1024, |s| s.0),
        gzip_level,
        brotli_level,
        zstd_level,
        content_types: content_types
            .iter()
            .map(|c| c.to_ascii_lowercase())
            .collect(),
        upstream_identity: r.upstream_identity.or(d.upstream_identity).unwrap_or(true),
    }
}

fn etag(d: &schema::Etag, r: &schema::Etag) -> EtagPolicy {
    EtagPolicy {
        generate: r.generate.or(d.generate).unwrap_or(true),
        max_body: r.max_body.or(d.max_body).map_or(1024 * 1024, |s| s.0),
    }
}
