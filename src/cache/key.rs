//! The cache key's primary string, `scheme://host/path?query` (RFC 9111 §2: the primary key
//! is the target URI), normalised just enough that spellings a client controls but an origin
//! cannot tell apart share one entry, and no further.
//!
//! Pure string work; the adapter adds the method folding (HEAD looks up GET's entry) and the
//! `Vary` secondary key. Choices, and what this module does:
//! - The scheme and host are lowercased (RFC 3986 §6.2.2.1) and a default port is removed
//!   (`:80` for http, `:443` for https, an empty `:` too, §6.2.3), so `Example.COM:80` and
//!   `example.com` are one key. Other ports stay, written without leading zeros.
//! - The key must be unambiguous, or a crafted `Host` could write an entry another URL reads
//!   (cache poisoning: `Host: victim.com/admin` + `/x` against `victim.com` + `/admin/x`).
//!   So every host byte outside RFC 3986's reg-name / IP-literal / port characters (`/`, `?`,
//!   `#`, `@`, `%`, `\`, whitespace, non-ASCII…) is percent-encoded, as are the scheme's
//!   non-scheme bytes. A path always follows as `/…`: an empty path is `/` (RFC 9110
//!   §4.2.3), and one not starting with `/` gets one.
//! - The path is kept as given: no percent-decoding, no dot-segment removal, no case folding,
//!   so `/a%2Fb`, `/a/b` and `/A` are three keys. Decoding would merge paths that origins
//!   route differently; a miss costs less than serving the wrong body. Only bytes that cannot
//!   occur in a valid request path are escaped (`?`, `#`, controls, space, DEL), so that the
//!   first `?` in a key always starts the query.
//! - The query is split on `&` only (no `;`), empty members are dropped, and the members are
//!   stably sorted by name (the bytes before the first `=`, not decoded): `b=1&a=2&a=1` →
//!   `a=2&a=1&b=1`. Repeated names keep their order, which applications often rely on. The
//!   route's [`KeyQueryPolicy`] then keeps all members, none, or only the listed names
//!   (compared byte for byte, case-sensitive). Nothing left → no `?`.

//! - Request fields that applications commonly build URLs from, or take a method from, but
//!   that are not part of the URL ([`URL_OVERRIDE_FIELDS`]) are keyed when present: a
//!   response built from `X-Forwarded-Host: evil.example` is stored apart from the plain URL's,
//!   and only requests repeating the same values reach it (cache poisoning through unkeyed
//!   inputs). Keying rather than stripping keeps them working for an app behind a load balancer
//!   that sets them on every request; the values then only split the cache per real host.

use std::fmt;

use http::HeaderMap;

use crate::config::policy::KeyQueryPolicy;

/// Request fields that frameworks read to build absolute URLs, pick the path or override the
/// method. `X-Forwarded-For` and `X-Forwarded-Proto` are not here: the proxy sets them itself.
pub(crate) const URL_OVERRIDE_FIELDS: [&str; 13] = [
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-scheme",
    "x-forwarded-server",
    "x-host",
    "x-original-host",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method",
    "x-http-method-override",
    "x-method-override",
];

/// The URL-override fields the request carries, as `\0name: value` appended to `primary` (a NUL
/// cannot occur in a primary key, so the result is unambiguous). Nothing is appended when none
/// is present, so ordinary requests keep the plain URL's key.
pub(crate) fn push_url_overrides(primary: &mut String, headers: &HeaderMap) {
    for (name, value) in headers {
        if URL_OVERRIDE_FIELDS.contains(&name.as_str()) {
            primary.push('\0');
            primary.push_str(name.as_str());
            primary.push_str(": ");
            primary.push_str(&String::from_utf8_lossy(value.as_bytes()));
        }
    }
}

/// An absolute URL split into the parts the cache uses (`scheme://authority path ?query`);
/// the fragment is dropped. Borrowed from the string it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UrlParts<'a> {
    pub(crate) scheme: &'a str,
    pub(crate) authority: &'a str,
    /// Possibly empty (`http://host`); otherwise starts with `/`.
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
}

/// The primary key for a request: `scheme://host/path?query`, normalised as described in the
/// [module documentation](self). `host` is the authority (`host[:port]`) from the request's
/// `Host` or URI.
pub(crate) fn primary_key(
    scheme: &str,
    host: &str,
    path: &str,
    query: Option<&str>,
    rule: &KeyQueryPolicy,
) -> String {
    let scheme = lowercase(scheme);
    let mut key = String::with_capacity(scheme.len() + host.len() + path.len() + 8);
    push_escaped(&mut key, &scheme, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
    });
    key.push_str("://");
    push_authority(&mut key, &scheme, host);
    if !path.starts_with('/') {
        key.push('/');
    }
    push_escaped(&mut key, path, |b| {
        (b.is_ascii_graphic() && b != b'?' && b != b'#') || !b.is_ascii()
    });
    if let Some(query) = query.and_then(|query| normalized_query(query, rule)) {
        key.push('?');
        key.push_str(&query);
    }
    key
}

/// The path-and-query of a URL: `http://h/p?q#f` → `/p?q`; an origin-form target (`/p?q`) is
/// returned as is, without its fragment; a URL without a path gives `/` (or `?q` for
/// `http://h?q`). A string that is neither is returned without its fragment.
pub(crate) fn path_of(url: &str) -> &str {
    let without_fragment = url.split_once('#').map_or(url, |(before, _)| before);
    if without_fragment.starts_with('/') {
        return without_fragment;
    }
    match UrlParts::parse(without_fragment) {
        Some(parts) => {
            let start =
                without_fragment.len() - parts.path.len() - parts.query.map_or(0, |q| q.len() + 1);
            match &without_fragment[start..] {
                "" => "/",
                rest => rest,
            }
        }
        None => without_fragment,
    }
}

/// The query after the route's rule: members sorted by name, empty ones dropped; `None` when
/// nothing is left.
fn normalized_query(query: &str, rule: &KeyQueryPolicy) -> Option<String> {
    let name_of = |member: &str| -> usize { member.find('=').unwrap_or(member.len()) };
    let mut members: Vec<&str> = query.split('&').filter(|m| !m.is_empty()).collect();
    match rule {
        KeyQueryPolicy::None => return None,
        KeyQueryPolicy::All => {}
        KeyQueryPolicy::Allow(names) => {
            members.retain(|m| names.iter().any(|name| *name == m[..name_of(m)]));
        }
    }
    // Stable: members with the same name keep their order.
    members.sort_by(|a, b| a[..name_of(a)].cmp(&b[..name_of(b)]));
    (!members.is_empty()).then(|| members.join("&"))
}

/// `host[:port]` lowercased, without the scheme's default port, escaped.
fn push_authority(key: &mut String, scheme: &str, authority: &str) {
    let authority = lowercase(authority);
    let (host, port) = split_port(&authority);
    let host_byte = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]".contains(&b);
    push_escaped(key, host, host_byte);
    let Some(port) = port else {
        return;
    };
    let default = match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    let number = port.parse::<u16>().ok();
    if port.is_empty() || (number.is_some() && number == default) {
        return;
    }
    key.push(':');
    match number {
        Some(number) => key.push_str(&number.to_string()),
        None => push_escaped(key, port, host_byte),
    }
}

/// Splits `host:port` where the port is all digits (maybe none); an IPv6 literal keeps its
/// colons, and an unbracketed name with several colons has no port.
fn split_port(authority: &str) -> (&str, Option<&str>) {
    match authority.rsplit_once(':') {
        Some((host, port))
            if port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']'))) =>
        {
            (host, Some(port))
        }
        _ => (authority, None),
    }
}

/// `text` in ASCII lowercase, copied only when it has an uppercase letter (keys are built on
/// every cached request, and hosts and schemes are nearly always lowercase already).
fn lowercase(text: &str) -> std::borrow::Cow<'_, str> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(text.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Appends `text`, percent-encoding every character whose first UTF-8 byte `keep` refuses
/// (all of that character's bytes).
fn push_escaped(out: &mut String, text: &str, keep: impl Fn(u8) -> bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    // The usual key has nothing to escape: one copy, not a push per character. Byte by byte
    // this keeps what the loop below keeps: a character's bytes are all non-ASCII or it is one
    // ASCII byte.
    if text.bytes().all(&keep) {
        out.push_str(text);
        return;
    }
    let mut utf8 = [0u8; 4];
    for c in text.chars() {
        let bytes = c.encode_utf8(&mut utf8).as_bytes();
        if keep(bytes[0]) {
            out.push(c);
            continue;
        }
        for &b in bytes {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

// === impl UrlParts ===

impl<'a> UrlParts<'a> {
    /// An absolute URL (`scheme "://" authority [path] ["?" query] ["#" fragment]`), or `None`.
    pub(crate) fn parse(url: &'a str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        let mut scheme_bytes = scheme.bytes();
        let valid_scheme = scheme_bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
            && scheme_bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !valid_scheme {
            return None;
        }
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(authority_end);
        let (path, query) = split_query(path_and_query);
        Some(UrlParts {
            scheme,
            authority,
            path,
            query,
        })
    }

    /// Resolves `reference` against `self`: an absolute URL, or an absolute path (`/x?y`)
    /// that takes `self`'s scheme and authority. Any other form is `None`.
    pub(crate) fn resolve(&self, reference: &'a str) -> Option<UrlParts<'a>> {
        if reference.starts_with('/') && !reference.starts_with("//") {
            let reference = reference
                .split_once('#')
                .map_or(reference, |(before, _)| before);
            let (path, query) = split_query(reference);
            return Some(UrlParts {
                path,
                query,
                ..*self
            });
        }
        UrlParts::parse(reference)
    }

    /// Same scheme, host and port (RFC 6454 origin), with case and default ports normalised;
    /// userinfo is not part of the origin.
    pub(crate) fn same_origin(&self, other: &UrlParts<'_>) -> bool {
        let origin = |parts: &UrlParts<'_>| {
            let host = parts
                .authority
                .rsplit_once('@')
                .map_or(parts.authority, |(_, host)| host);
            primary_key(parts.scheme, host, "/", None, &KeyQueryPolicy::None)
        };
        origin(self) == origin(other)
    }

    /// This URL's primary key under `rule`.
    #[cfg(test)]
    pub(crate) fn primary_key(&self, rule: &KeyQueryPolicy) -> String {
        primary_key(self.scheme, self.authority, self.path, self.query, rule)
    }
}

fn split_query(path_and_query: &str) -> (&str, Option<&str>) {
    match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    }
}

/// `scheme://authority/path?query`, with `/` for an empty path and no fragment.
impl fmt::Display for UrlParts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() { "/" } else { self.path };
        write!(f, "{}://{}{}", self.scheme, self.authority, path)?;
        if let Some(query) = self.query {
            write!(f, "?{query}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    fn allow(names: &[&str]) -> KeyQueryPolicy {
        KeyQueryPolicy::Allow(names.iter().map(|n| n.to_string()).collect())
    }

    #[test]
    fn scheme_host_and_port() {
        // (scheme, host, key prefix)
        let rows: &[(&str, &str, &str)] = &[
            ("http", "example.com", "http://example.com/"),
            ("HTTP", "Example.COM", "http://example.com/"),
            // RFC 3986 §6.2.3: default ports, and an empty port, are dropped.
            ("http", "example.com:80", "http://example.com/"),
            ("http", "example.com:", "http://example.com/"),
            ("https", "example.com:443", "https://example.com/"),
            ("http", "example.com:0080", "http://example.com/"),
            ("https", "example.com:80", "https://example.com:80/"),
            ("http", "example.com:443", "http://example.com:443/"),
            ("http", "example.com:08080", "http://example.com:8080/"),
            ("http", "example.com:99999", "http://example.com:99999/"),
            ("http", "[::1]:80", "http://[::1]/"),
            ("http", "[::1]", "http://[::1]/"),
            ("http", "[::1]:8080", "http://[::1]:8080/"),
            ("http", "::1", "http://::1/"),
            ("http", "", "http:///"),
            // Poisoning attempts are escaped, never structural.
            ("http", "victim.com/admin", "http://victim.com%2Fadmin/"),
            ("http", "victim.com?x", "http://victim.com%3Fx/"),
            ("http", "victim.com#x", "http://victim.com%23x/"),
            ("http", "user@victim.com", "http://user%40victim.com/"),
            ("http", "a%2fb", "http://a%252fb/"),
            ("http", "a b", "http://a%20b/"),
            ("http", "é", "http://%C3%A9/"),
            ("http://evil.com/x", "h", "http%3A%2F%2Fevil.com%2Fx://h/"),
        ];
        for (scheme, host, expected) in rows {
            let key = primary_key(scheme, host, "/", None, &KeyQueryPolicy::All);
            assert_eq!(key, *expected, "{scheme} {host}");
        }
    }

    #[test]
    fn paths_are_kept_as_given() {
        let rows: &[(&str, &str)] = &[
            ("/a/b", "http://h/a/b"),
            ("/a%2Fb", "http://h/a%2Fb"),
            ("/A/./b/../c", "http://h/A/./b/../c"),
            ("", "http://h/"),
            ("x", "http://h/x"),
            ("*", "http://h/*"),
            // Bytes that cannot be in a path are escaped, so `?` always starts the query.
            ("/a?b", "http://h/a%3Fb"),
            ("/a#b", "http://h/a%23b"),
            ("/a b", "http://h/a%20b"),
            ("/é", "http://h/é"),
        ];
        for (path, expected) in rows {
            assert_eq!(
                primary_key("http", "h", path, None, &KeyQueryPolicy::All),
                *expected
            );
        }
    }

    #[test]
    fn query_rules() {
        // (query, rule, key)
        let rows: &[(Option<&str>, KeyQueryPolicy, &str)] = &[
            (None, KeyQueryPolicy::All, "http://h/p"),
            (Some(""), KeyQueryPolicy::All, "http://h/p"),
            (Some("&&"), KeyQueryPolicy::All, "http://h/p"),
            (Some("a=1"), KeyQueryPolicy::All, "http://h/p?a=1"),
            // Stable sort by name: repeated names keep their order.
            (
                Some("b=1&a=2&a=1"),
                KeyQueryPolicy::All,
                "http://h/p?a=2&a=1&b=1",
            ),
            (
                Some("b&a=&&c=3"),
                KeyQueryPolicy::All,
                "http://h/p?a=&b&c=3",
            ),
            // Names are compared undecoded and case-sensitively.
            (
                Some("b=1&B=2&%61=3"),
                KeyQueryPolicy::All,
                "http://h/p?%61=3&B=2&b=1",
            ),
            (Some("a=1;b=2"), KeyQueryPolicy::All, "http://h/p?a=1;b=2"),
            (Some("a=1&b=2"), KeyQueryPolicy::None, "http://h/p"),
            (
                Some("utm=1&id=2&page=3"),
                allow(&["page", "id"]),
                "http://h/p?id=2&page=3",
            ),
            (Some("utm=1"), allow(&["id"]), "http://h/p"),
            (Some("ID=1&id=2"), allow(&["id"]), "http://h/p?id=2"),
            (Some("a=x=y&a"), allow(&["a"]), "http://h/p?a=x=y&a"),
            (Some("a=1&b=2"), allow(&[]), "http://h/p"),
        ];
        for (query, rule, expected) in rows {
            assert_eq!(
                primary_key("http", "h", "/p", *query, rule),
                *expected,
                "{query:?} {rule:?}"
            );
        }
    }

    #[test]
    fn path_of_urls() {
        let rows: &[(&str, &str)] = &[
            ("http://h/p?q#f", "/p?q"),
            ("http://h/p", "/p"),
            ("http://h", "/"),
            ("http://h?q", "?q"),
            ("/p?q#f", "/p?q"),
            ("/", "/"),
            ("not a url#x", "not a url"),
        ];
        for (url, expected) in rows {
            assert_eq!(path_of(url), *expected, "{url}");
        }
    }

    #[test]
    fn url_parts() {
        let parts = UrlParts::parse("https://User@Example.com:443/a/b?x=1#frag").expect("valid");
        assert_eq!(parts.scheme, "https");
        assert_eq!(parts.authority, "User@Example.com:443");
        assert_eq!(parts.path, "/a/b");
        assert_eq!(parts.query, Some("x=1"));
        assert_eq!(parts.to_string(), "https://User@Example.com:443/a/b?x=1");
        for bad in [
            "",
            "/path",
            "example.com/x",
            "://h/x",
            "1http://h/",
            "ht tp://h/",
        ] {
            assert_eq!(UrlParts::parse(bad), None, "{bad}");
        }
        let base = UrlParts::parse("http://h:80/a?b").expect("valid");
        assert!(base.same_origin(&UrlParts::parse("HTTP://H/x").expect("valid")));
        assert!(!base.same_origin(&UrlParts::parse("https://h/x").expect("valid")));
        assert!(!base.same_origin(&UrlParts::parse("http://h:81/x").expect("valid")));
        assert_eq!(
            base.resolve("/c?d#e").map(|p| p.to_string()),
            Some("http://h:80/c?d".to_string())
        );
        assert_eq!(base.resolve("c"), None);
        assert_eq!(base.resolve("//h/c"), None);
        assert_eq!(
            base.primary_key(&KeyQueryPolicy::All),
            primary_key("http", "h", "/a", Some("b"), &KeyQueryPolicy::All)
        );
    }

    proptest! {
        /// Any input gives a key, the same one every time; the host never leaks structure.
        #[test]
        fn keys_are_total_and_unambiguous(
            scheme in "[a-zA-Z]{1,6}|.{0,6}",
            host in ".{0,24}",
            path in ".{0,24}",
            query in proptest::option::of(".{0,24}"),
        ) {
            for rule in [KeyQueryPolicy::All, KeyQueryPolicy::None, allow(&["a"])] {
                let key = primary_key(&scheme, &host, &path, query.as_deref(), &rule);
                prop_assert_eq!(&key, &primary_key(&scheme, &host, &path, query.as_deref(), &rule));
                let (_, after_scheme) = key.split_once("://").expect("always there");
                let authority_end = after_scheme.find('/').expect("a path always follows");
                prop_assert!(!after_scheme[..authority_end].contains(['?', '#', '@']));
            }
        }

        /// The whole-string shortcuts (nothing to escape, nothing to lowercase) give what
        /// escaping character by character gives.
        #[test]
        fn shortcuts_match_the_character_rule(text in ".{0,24}|[a-zA-Z0-9/.%-]{0,24}") {
            let keep = |b: u8| (b.is_ascii_graphic() && b != b'?') || !b.is_ascii();
            let mut expected = String::new();
            for c in text.chars() {
                let mut utf8 = [0u8; 4];
                let bytes = c.encode_utf8(&mut utf8).as_bytes();
                if keep(bytes[0]) {
                    expected.push(c);
                } else {
                    bytes.iter().for_each(|b| expected.push_str(&format!("%{b:02X}")));
                }
            }
            let mut escaped = String::new();
            push_escaped(&mut escaped, &text, keep);
            prop_assert_eq!(escaped, expected);
            let lowered = lowercase(&text);
            prop_assert_eq!(lowered.as_ref(), text.to_ascii_lowercase());
        }

        /// Reordering distinct names never changes the key.
        #[test]
        fn query_order_does_not_matter(
            members in proptest::collection::btree_map("[a-z]{1,4}", "[a-z0-9]{0,3}", 0..6),
        ) {
            let forward: Vec<String> = members.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let backward: Vec<String> = forward.iter().rev().cloned().collect();
            let a = primary_key("http", "h", "/", Some(&forward.join("&")), &KeyQueryPolicy::All);
            let b = primary_key("http", "h", "/", Some(&backward.join("&")), &KeyQueryPolicy::All);
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn url_override_fields_are_keyed_only_when_present() {
        use http::{HeaderMap, HeaderValue};
        let plain = "http://a.test/p".to_string();
        let mut key = plain.clone();
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static("*/*"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        push_url_overrides(&mut key, &headers);
        assert_eq!(key, plain, "ordinary fields leave the key alone");

        headers.insert("x-forwarded-host", HeaderValue::from_static("evil.test"));
        headers.append("x-original-url", HeaderValue::from_static("/admin"));
        let mut evil = plain.clone();
        push_url_overrides(&mut evil, &headers);
        assert_eq!(
            evil,
            "http://a.test/p\0x-forwarded-host: evil.test\0x-original-url: /admin"
        );
        // Every listed field counts, and the list is lowercase like `HeaderName`s.
        for name in URL_OVERRIDE_FIELDS {
            assert_eq!(name, name.to_ascii_lowercase());
            let mut one = HeaderMap::new();
            one.insert(
                http::HeaderName::from_static(name),
                HeaderValue::from_static("v"),
            );
            let mut keyed = plain.clone();
            push_url_overrides(&mut keyed, &one);
            assert_ne!(keyed, plain, "{name}");
        }
    }
}
