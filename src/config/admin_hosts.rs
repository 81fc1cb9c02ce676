//! `[admin] allowed_hosts`: which `Host` names the admin port answers.
//!
//! DNS rebinding: a page on `evil.example` whose name the attacker then points at 127.0.0.1
//! reaches the admin port *same-origin*, so the browser lets it read `/config` or `/stats`
//! and send mutations without `Origin`. What it cannot change is the `Host` it sends: its
//! own name. So the admin port answers only names the operator listed. An IP literal cannot
//! be rebound (no DNS is involved), so it always passes: kubelet probes and Prometheus
//! scrapes address the pod IP.

/// The canonical form of an `allowed_hosts` entry: lowercase, IPv6 in brackets, no port.
pub(crate) fn normalize_allowed(entry: &str) -> Result<String, &'static str> {
    let host = entry.trim().to_ascii_lowercase();
    if host == "*" {
        return Ok(host);
    }
    if host.is_empty() {
        return Err("must not be empty");
    }
    if host.starts_with('[') {
        return match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) if v6.parse::<std::net::Ipv6Addr>().is_ok() => Ok(host),
            _ => Err("an IPv6 address in brackets, like \"[::1]\""),
        };
    }
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        return Err("write an IPv6 address in brackets, like \"[::1]\"");
    }
    if host.contains(':') {
        return Err("a host name without a port (every port of it is allowed)");
    }
    let valid = host.trim_end_matches('.').split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if !valid {
        return Err("a host name (letters, digits, '-' and '.'), an IP address, or \"*\"");
    }
    Ok(host.trim_end_matches('.').to_string())
}

/// Whether a request's `Host` (or `:authority`) value may reach the admin port. A request
/// without one is allowed: browsers always send it, so no web page can omit it.
pub(crate) fn allowed(host: Option<&str>, allowed: &[String]) -> bool {
    let Some(host) = host else {
        return true;
    };
    if allowed.iter().any(|a| a == "*") {
        return true;
    }
    let host = host.trim().to_ascii_lowercase();
    let name = strip_port(&host);
    if name.parse::<std::net::Ipv4Addr>().is_ok()
        || name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .is_some_and(|n| n.parse::<std::net::Ipv6Addr>().is_ok())
    {
        return true;
    }
    let name = name.trim_end_matches('.');
    allowed.iter().any(|a| a == name)
}

/// `name:port` → `name`; `[v6]:port` → `[v6]`. A malformed port leaves the value whole, so
/// it matches nothing listed.
fn strip_port(host: &str) -> &str {
    let (name, rest) = match host.find(']') {
        Some(end) if host.starts_with('[') => host.split_at(end + 1),
        _ => match host.find(':') {
            Some(colon) => host.split_at(colon),
            None => (host, ""),
        },
    };
    match rest.strip_prefix(':') {
        _ if rest.is_empty() => name,
        Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<String> {
        ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|h| normalize_allowed(h).unwrap())
            .collect()
    }

    #[test]
    fn loopback_names_with_any_port() {
        let list = defaults();
        for host in [
            "localhost",
            "LOCALHOST:9901",
            "localhost.:1",
            "127.0.0.1:9901",
            "[::1]:9901",
            "[::1]",
        ] {
            assert!(allowed(Some(host), &list), "{host}");
        }
        assert!(allowed(None, &list));
    }

    #[test]
    fn other_names_are_refused_and_ip_literals_pass() {
        let list = defaults();
        for host in [
            "evil.example",
            "evil.example:9901",
            "localhost.evil.example",
            "localhost:99x",
            "localhost:",
            "",
            "127.0.0.1.nip.io:9901",
        ] {
            assert!(!allowed(Some(host), &list), "{host}");
        }
        for host in ["10.1.2.3:9901", "[fd00::7]:9901", "192.0.2.1"] {
            assert!(allowed(Some(host), &list), "{host}");
        }
        assert!(allowed(Some("anything"), &["*".to_string()]));
    }

    #[test]
    fn entries_are_validated() {
        assert_eq!(normalize_allowed("Admin.Local").unwrap(), "admin.local");
        assert!(normalize_allowed("").is_err());
        assert!(normalize_allowed("localhost:9901").is_err());
        assert!(normalize_allowed("::1").is_err());
        assert!(normalize_allowed("[nope]").is_err());
        assert!(normalize_allowed("a b").is_err());
        assert!(normalize_allowed("a..b").is_err());
    }
}
