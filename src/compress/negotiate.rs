//! `Accept-Encoding` negotiation (RFC 9110 §12.5.3): which content coding, if any, to apply.
//!
//! The header comes from untrusted clients, so parsing is total: a malformed member is ignored,
//! never an error and never a panic. It runs in one pass, allocates nothing, and is linear in
//! the header's length.
//!
//! Choices the RFC leaves open, and what this module does:
//! - No `Accept-Encoding` at all: no compression. RFC 9110 §12.5.3 would allow any coding,
//!   but clients that send no header are mostly tools that would not decode it.
//! - A member whose weight is malformed (`gzip;q=abc`, `br;q=1.0001`, `zstd;q=.5`) is ignored
//!   as a whole, as if it were not in the list (so `*` still applies to that coding).
//! - A coding listed twice: the first member wins (later ones are ignored). `x-gzip` is an
//!   alias of `gzip` (RFC 9110 §8.4.1.3), so the two share one entry.
//! - `identity` is never chosen nor refused: uncompressed is what the proxy sends when nothing
//!   else is acceptable, even under `identity;q=0`. Answering 406 is the origin's business.
//! - Parameters other than `q` are ignored; so is whitespace around `;` and `=`.

use crate::config::policy::{Coding, CompressionPolicy};

/// A weight in thousandths: RFC 9110 §12.4.2 allows at most three decimals, so `0..=1000`
/// represents every valid qvalue exactly and compares without floating point.
type Weight = u16;

const FULL_WEIGHT: Weight = 1000;

/// The coding to apply to a response for this client on this route, or `None` for identity.
///
/// Candidates are the route's `algorithms`; the highest client weight wins and a tie goes to
/// the coding listed first in `algorithms` (the server's preference). Weight 0 means "not
/// acceptable" (RFC 9110 §12.4.2), so a coding at 0 is never chosen.
pub fn negotiate(accept_encoding: Option<&str>, policy: &CompressionPolicy) -> Option<Coding> {
    if !policy.enabled {
        return None;
    }
    let weights = ClientWeights::parse(accept_encoding?);
    let mut best: Option<(&Coding, Weight)> = None;
    for coding in &policy.algorithms {
        let weight = weights.weight_of(coding);
        // Strictly greater: on a tie the earlier (server-preferred) coding stays.
        if weight > 0 && best.is_none_or(|(_, w)| weight > w) {
            best = Some((coding, weight));
        }
    }
    best.map(|(coding, _)| coding.clone())
}

/// What the client said about each coding Outrider can produce, and about `*`.
#[derive(Debug, Default, PartialEq, Eq)]
struct ClientWeights {
    /// Indexed by [`slot`]; `None` when the client did not list that coding.
    listed: [Option<Weight>; 3],
    star: Option<Weight>,
}

/// A member's coding, as far as negotiation cares.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    Known(Coding),
    /// `*`: "any coding not explicitly listed" (RFC 9110 §12.5.3).
    Any,
    /// `identity`, or a coding Outrider cannot produce (`deflate`, `compress`, junk).
    Other,
}

impl ClientWeights {
    fn parse(header: &str) -> Self {
        let mut weights = Self::default();
        // Field values may be combined from several header lines with commas (RFC 9110 §5.3),
        // and the list syntax allows empty members (§5.6.1), so splitting on ',' is exact:
        // neither tokens nor qvalues can contain a comma or a quote.
        for member in header.split(',') {
            if let Some((token, weight)) = parse_member(member) {
                weights.record(token, weight);
            }
        }
        weights
    }

    /// First one wins: a repeated coding (or `*`) keeps the weight it was first given.
    fn record(&mut self, token: Token, weight: Weight) {
        let entry = match token {
            Token::Known(coding) => &mut self.listed[slot(&coding)],
            Token::Any => &mut self.star,
            Token::Other => return,
        };
        entry.get_or_insert(weight);
    }

    /// An explicit listing beats `*`; neither means not acceptable.
    fn weight_of(&self, coding: &Coding) -> Weight {
        self.listed[slot(coding)].or(self.star).unwrap_or(0)
    }
}

fn slot(coding: &Coding) -> usize {
    match coding {
        Coding::Zstd => 0,
        Coding::Br => 1,
        Coding::Gzip => 2,
    }
}

/// One list member: `token *( OWS ";" OWS name "=" value )`. `None` when it is empty or its
/// weight is malformed; a member without `q` has weight 1 (RFC 9110 §12.4.2).
fn parse_member(member: &str) -> Option<(Token, Weight)> {
    let mut parts = member.split(';');
    let token = trim_ows(parts.next()?);
    if token.is_empty() {
        return None;
    }
    let mut weight = None;
    for param in parts.map(trim_ows).filter(|p| !p.is_empty()) {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if trim_ows(name).eq_ignore_ascii_case("q") && weight.is_none() {
            weight = Some(parse_qvalue(trim_ows(value))?);
        }
    }
    Some((classify(token), weight.unwrap_or(FULL_WEIGHT)))
}

/// Content-coding names are case-insensitive (RFC 9110 §8.4.1).
fn classify(token: &str) -> Token {
    let is = |name: &str| token.eq_ignore_ascii_case(name);
    if is("zstd") {
        Token::Known(Coding::Zstd)
    } else if is("br") {
        Token::Known(Coding::Br)
    } else if is("gzip") || is("x-gzip") {
        Token::Known(Coding::Gzip)
    } else if is("*") {
        Token::Any
    } else {
        Token::Other
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` (RFC 9110 §12.4.2), in
/// thousandths. Anything else (more decimals, above 1, signs, spaces inside) is `None`.
fn parse_qvalue(text: &str) -> Option<Weight> {
    let (whole, decimals) = text.split_once('.').unwrap_or((text, ""));
    if decimals.len() > 3 || !decimals.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fraction = decimals
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0, |acc: Weight, digit| {
            acc * 10 + Weight::from(digit - b'0')
        });
    match whole {
        "0" => Some(fraction),
        "1" if fraction == 0 => Some(FULL_WEIGHT),
        _ => None,
    }
}

/// Optional whitespace is spaces and tabs only (RFC 9110 §5.6.3).
fn trim_ows(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::{Br, Gzip, Zstd};

    fn policy(algorithms: &[Coding]) -> CompressionPolicy {
        CompressionPolicy {
            enabled: true,
            algorithms: algorithms.to_vec(),
            min_size: 1024,
            gzip_level: 6,
            brotli_level: 4,
            zstd_level: 3,
            content_types: vec!["text/*".into()],
            upstream_identity: true,
        }
    }

    fn all() -> CompressionPolicy {
        policy(&[Zstd, Br, Gzip])
    }

    /// Runs `(header, expected)` rows against `policy`, naming the failing row.
    fn check(policy: &CompressionPolicy, rows: &[(&str, Option<Coding>)]) {
        for (header, expected) in rows {
            assert_eq!(
                negotiate(Some(header), policy),
                *expected,
                "Accept-Encoding: {header:?} with algorithms {:?}",
                policy.algorithms
            );
        }
    }

    #[test]
    fn no_header_means_identity() {
        assert_eq!(negotiate(None, &all()), None);
    }

    #[test]
    fn empty_header_means_identity() {
        // RFC 9110 §12.5.3: an empty value says the client wants no coding.
        check(&all(), &[("", None), ("   ", None)]);
    }

    #[test]
    fn single_codings() {
        check(
            &all(),
            &[
                ("gzip", Some(Gzip)),
                ("br", Some(Br)),
                ("zstd", Some(Zstd)),
                ("deflate", None),
                ("compress", None),
            ],
        );
    }

    #[test]
    fn highest_q_wins() {
        check(
            &all(),
            &[
                ("gzip;q=1, br;q=0.5, zstd;q=0.1", Some(Gzip)),
                ("gzip;q=0.5, br;q=0.9", Some(Br)),
                ("gzip;q=0.001, br;q=0.002", Some(Br)),
                ("zstd;q=0.999, gzip", Some(Gzip)),
                ("br;q=0.8, zstd;q=0.81", Some(Zstd)),
            ],
        );
    }

    #[test]
    fn ties_go_to_the_server_order() {
        check(
            &all(),
            &[
                ("gzip, br, zstd", Some(Zstd)),
                ("gzip, br", Some(Br)),
                ("gzip;q=0.5, br;q=0.5", Some(Br)),
                ("gzip;q=1.000, zstd;q=1", Some(Zstd)),
            ],
        );
        check(
            &policy(&[Gzip, Br, Zstd]),
            &[("zstd, br, gzip", Some(Gzip)), ("zstd, br", Some(Br))],
        );
        check(&policy(&[Br, Gzip]), &[("gzip, br", Some(Br))]);
    }

    #[test]
    fn q_zero_excludes() {
        check(
            &all(),
            &[
                ("gzip;q=0", None),
                ("zstd;q=0, br;q=0, gzip;q=0", None),
                ("zstd;q=0, gzip;q=0.1", Some(Gzip)),
                ("zstd;q=0.000, br", Some(Br)),
                ("zstd;q=0., br;q=0.2", Some(Br)),
            ],
        );
    }

    #[test]
    fn star_covers_codings_not_listed() {
        check(
            &all(),
            &[
                ("*", Some(Zstd)),
                ("*;q=0.5, gzip", Some(Gzip)),
                ("*;q=0.5, gzip;q=0.4", Some(Zstd)),
                ("zstd;q=0, *", Some(Br)),
                ("zstd;q=0, br;q=0, *", Some(Gzip)),
                ("zstd;q=0, br;q=0, gzip;q=0, *", None),
                // `*;q=0` refuses everything not listed; listed codings keep their weight.
                ("*;q=0", None),
                ("gzip, *;q=0", Some(Gzip)),
                ("*;q=0, br;q=0.2", Some(Br)),
                ("identity, *;q=0", None),
            ],
        );
    }

    #[test]
    fn identity_is_never_an_answer_nor_a_refusal() {
        check(
            &all(),
            &[
                ("identity", None),
                ("identity;q=1", None),
                // Nothing acceptable: identity anyway (a 406 is not the proxy's job).
                ("identity;q=0", None),
                ("identity;q=0, *;q=0", None),
                ("identity;q=0, gzip", Some(Gzip)),
                ("identity;q=1, gzip;q=0.1", Some(Gzip)),
            ],
        );
    }

    #[test]
    fn only_the_routes_algorithms_are_candidates() {
        check(
            &policy(&[Gzip]),
            &[
                ("zstd, br", None),
                ("zstd, br, gzip;q=0.1", Some(Gzip)),
                ("*", Some(Gzip)),
            ],
        );
        check(&policy(&[]), &[("gzip, br, zstd, *", None)]);
    }

    #[test]
    fn disabled_route_never_compresses() {
        let mut p = all();
        p.enabled = false;
        check(&p, &[("gzip", None), ("*", None), ("zstd, br", None)]);
    }

    #[test]
    fn tokens_and_q_are_case_insensitive() {
        check(
            &all(),
            &[
                ("GZIP", Some(Gzip)),
                ("Br", Some(Br)),
                ("ZsTd", Some(Zstd)),
                ("X-GZIP", Some(Gzip)),
                ("zstd;Q=0.1, br;Q=0.2", Some(Br)),
            ],
        );
    }

    #[test]
    fn x_gzip_is_gzip() {
        check(
            &all(),
            &[
                ("x-gzip", Some(Gzip)),
                ("x-gzip;q=0.9, br;q=0.5", Some(Gzip)),
                // One coding, two names: the first mention wins.
                ("x-gzip;q=0, gzip", None),
                ("gzip;q=0, x-gzip", None),
            ],
        );
    }

    #[test]
    fn duplicates_first_one_wins() {
        check(
            &all(),
            &[
                ("gzip;q=0, gzip;q=1", None),
                ("gzip;q=0.1, br;q=0.5, gzip;q=1", Some(Br)),
                ("br, br;q=0", Some(Br)),
                ("*;q=0, *", None),
                ("*, *;q=0", Some(Zstd)),
            ],
        );
    }

    #[test]
    fn q_value_grammar() {
        let rows: &[(&str, Option<Weight>)] = &[
            ("0", Some(0)),
            ("0.", Some(0)),
            ("0.5", Some(500)),
            ("0.05", Some(50)),
            ("0.005", Some(5)),
            ("0.123", Some(123)),
            ("0.999", Some(999)),
            ("1", Some(1000)),
            ("1.", Some(1000)),
            ("1.0", Some(1000)),
            ("1.000", Some(1000)),
            ("1.0001", None),
            ("1.001", None),
            ("1.5", None),
            ("0.1234", None),
            ("2", None),
            ("01", None),
            (".5", None),
            ("", None),
            ("abc", None),
            ("-0", None),
            ("+0.5", None),
            ("0.5a", None),
            ("0 .5", None),
            ("\"0.5\"", None),
            ("0.٥", None),
        ];
        for (text, expected) in rows {
            assert_eq!(parse_qvalue(text), *expected, "qvalue {text:?}");
        }
    }

    #[test]
    fn malformed_members_are_ignored() {
        check(
            &all(),
            &[
                ("gzip;q=abc", None),
                ("gzip;q=abc, br", Some(Br)),
                ("br;q=1.0001", None),
                ("br;q=1.0001, gzip;q=0.1", Some(Gzip)),
                ("zstd;q=", None),
                ("zstd;q", None),
                ("zstd;q=-1", None),
                // An ignored member is not "listed", so `*` applies to it.
                ("zstd;q=abc, *;q=0.5", Some(Zstd)),
                // Only the first q counts; a broken first q sinks the member.
                ("gzip;q=0.5;q=abc", Some(Gzip)),
                ("gzip;q=abc;q=0.5", None),
                ("gzip;q=0;q=1", None),
            ],
        );
    }

    #[test]
    fn junk_and_empty_members() {
        check(
            &all(),
            &[
                (";;;", None),
                (", ,", None),
                (",,,gzip,,,", Some(Gzip)),
                (";q=1", None),
                ("=", None),
                ("gzip;;;", Some(Gzip)),
                ("gzip;level=9", Some(Gzip)),
                ("gzip;level", Some(Gzip)),
                ("gzip br", None),
                ("gzip;q=0.5 br", None),
                ("\"gzip\"", None),
                ("gzipx", None),
                ("gzi", None),
            ],
        );
    }

    #[test]
    fn whitespace_is_tolerated() {
        check(
            &all(),
            &[
                ("  gzip  ", Some(Gzip)),
                ("\tgzip\t", Some(Gzip)),
                ("gzip ; q=0.5 , br ; q = 0.6", Some(Br)),
                ("zstd;q=0 ,\tbr", Some(Br)),
                // Only OWS (space, tab) is trimmed: other whitespace makes a different token.
                ("\ngzip", None),
            ],
        );
    }

    #[test]
    fn non_ascii_is_harmless() {
        check(
            &all(),
            &[
                ("gzíp", None),
                ("ǵzip, br", Some(Br)),
                ("br;q=０.5", None),
                ("🦀;q=1, zstd;q=0.2", Some(Zstd)),
                ("\u{a0}gzip", None),
            ],
        );
    }

    #[test]
    fn very_long_headers() {
        let mut header = "deflate;q=0.5, ".repeat(50_000);
        header.push_str("br;q=0.3");
        check(&all(), &[(&header, Some(Br))]);
        let junk = ";".repeat(200_000) + &",".repeat(200_000);
        check(&all(), &[(&junk, None)]);
    }

    #[test]
    fn real_browser_headers() {
        check(
            &all(),
            &[
                ("gzip, deflate, br, zstd", Some(Zstd)),
                ("gzip, deflate, br", Some(Br)),
                ("gzip, deflate", Some(Gzip)),
                ("br;q=1.0, gzip;q=0.8, *;q=0.1", Some(Br)),
            ],
        );
    }
}
