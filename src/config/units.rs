//! Value types of the conf file that TOML has no native form for: durations (`"250ms"`), byte
//! sizes (`"64KiB"`) and their "empty string means unset" variants.
//!
//! The parsers are humantime's and bytesize's; these wrappers exist so that a bad value reads as
//! `invalid duration "5 parsecs"` with the key and line around it, rather than a serde type dump.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration written as a humantime string, e.g. `"250ms"`, `"30s"`, `"5m"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Dur(pub Duration);

/// A byte size written as a string (`"64KiB"`, `"256MiB"`, `"1MB"`) or a plain integer of bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Size(pub u64);

/// A duration where `""` means "not set" (the conf file has no null).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct OptDur(pub Option<Duration>);

// === impl Dur ===

impl Dur {
    pub(crate) const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }

    pub(crate) const fn millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
}

impl FromStr for Dur {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s.trim()).map(Dur).map_err(|e| {
            format!("invalid duration {s:?} ({e}); use e.g. \"250ms\", \"30s\", \"5m\"")
        })
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(FromStrVisitor::<Dur>::new(
            "a duration string such as \"30s\"",
        ))
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(self.0))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

// === impl OptDur ===

impl FromStr for OptDur {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Ok(OptDur(None));
        }
        Dur::from_str(s).map(|d| OptDur(Some(d.0)))
    }
}

impl<'de> Deserialize<'de> for OptDur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(FromStrVisitor::<OptDur>::new(
            "a duration string such as \"30s\", or \"\" for unset",
        ))
    }
}

impl Serialize for OptDur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(d) => s.collect_str(&humantime::format_duration(d)),
            None => s.serialize_str(""),
        }
    }
}

// === impl Size ===

impl Size {
    #[cfg(any(test, fuzzing))]
    pub(crate) const fn kib(n: u64) -> Self {
        Size(n * 1024)
    }

    pub(crate) const fn mib(n: u64) -> Self {
        Size(n * 1024 * 1024)
    }
}

impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        bytesize::ByteSize::from_str(s.trim())
            .map(|b| Size(b.as_u64()))
            .map_err(|_| format!("invalid size {s:?}; use e.g. \"64KiB\", \"256MiB\""))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FromStrVisitor::<Size>::new(
            "a size string such as \"64KiB\" or a number of bytes",
        ))
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&bytesize::ByteSize(self.0).display().iec())
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        bytesize::ByteSize(self.0).display().iec().fmt(f)
    }
}

/// Accepts a string parsed with `FromStr`; for `Size`, also a non-negative integer of bytes.
struct FromStrVisitor<T> {
    expecting: &'static str,
    _t: std::marker::PhantomData<T>,
}

impl<T> FromStrVisitor<T> {
    fn new(expecting: &'static str) -> Self {
        Self {
            expecting,
            _t: std::marker::PhantomData,
        }
    }
}

impl<T: FromStr<Err = String> + FromBytes> Visitor<'_> for FromStrVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::from_str(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        match (T::from_bytes(v.max(0) as u64), v >= 0) {
            (Some(t), true) => Ok(t),
            _ => Err(E::invalid_type(de::Unexpected::Signed(v), &self)),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::from_bytes(v).ok_or_else(|| E::invalid_type(de::Unexpected::Unsigned(v), &self))
    }
}

/// Only sizes may be written as a bare integer; a bare integer duration is ambiguous (seconds?
/// milliseconds?), so it is refused.
trait FromBytes: Sized {
    fn from_bytes(_: u64) -> Option<Self> {
        None
    }
}

impl FromBytes for Dur {}
impl FromBytes for OptDur {}
impl FromBytes for Size {
    fn from_bytes(n: u64) -> Option<Self> {
        Some(Size(n))
    }
}

/// A percentage such as `"10%"` or `"2.5%"`, 0 to 100 with at most two decimals, in basis
/// points (`"10%"` is 1000); `None` for anything else.
pub(crate) fn percent_basis_points(text: &str) -> Option<u32> {
    let number = text.trim().strip_suffix('%')?.trim_end();
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 3
        || fraction.len() > 2
        || !digits(whole)
        || !digits(fraction)
    {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let fraction: u32 = format!("{fraction:0<2}").parse().ok()?;
    let bp = whole * 100 + fraction;
    (bp <= 10_000).then_some(bp)
}

/// A percentage such as `"99.9%"`, 0 to 100 with at most four decimals, in parts per million
/// (`"99.9%"` is 999_000): objectives such as "99.99%" need more than basis points.
pub(crate) fn percent_ppm(text: &str) -> Option<u32> {
    let number = text.trim().strip_suffix('%')?.trim_end();
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 3
        || fraction.len() > 4
        || !digits(whole)
        || !digits(fraction)
    {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let fraction: u32 = format!("{fraction:0<4}").parse().ok()?;
    let ppm = whole * 10_000 + fraction;
    (ppm <= 1_000_000).then_some(ppm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_in_basis_points() {
        assert_eq!(percent_basis_points("0%"), Some(0));
        assert_eq!(percent_basis_points("10%"), Some(1000));
        assert_eq!(percent_basis_points(" 2.5% "), Some(250));
        assert_eq!(percent_basis_points("12.34%"), Some(1234));
        assert_eq!(percent_basis_points("100%"), Some(10_000));
        for bad in [
            "", "%", "10", "101%", "-1%", "1.234%", "ten%", ".5%", "1e2%", "+5%",
        ] {
            assert_eq!(percent_basis_points(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn percentages_in_parts_per_million() {
        assert_eq!(percent_ppm("95%"), Some(950_000));
        assert_eq!(percent_ppm("99.9%"), Some(999_000));
        assert_eq!(percent_ppm("99.999%"), Some(999_990));
        assert_eq!(percent_ppm("99.9999%"), Some(999_999));
        assert_eq!(percent_ppm("100%"), Some(1_000_000));
        for bad in ["", "95", "101%", "-1%", "9.12345%", "x%"] {
            assert_eq!(percent_ppm(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn durations_parse_humantime_and_reject_nonsense() {
        assert_eq!("250ms".parse::<Dur>().unwrap(), Dur::millis(250));
        assert_eq!("5m".parse::<Dur>().unwrap(), Dur::secs(300));
        let err = "5 parsecs".parse::<Dur>().unwrap_err();
        assert!(err.starts_with("invalid duration \"5 parsecs\""), "{err}");
        assert_eq!("".parse::<OptDur>().unwrap(), OptDur(None));
        assert_eq!(
            "1s".parse::<OptDur>().unwrap(),
            OptDur(Some(Duration::from_secs(1)))
        );
    }

    #[test]
    fn sizes_parse_iec_and_si_units() {
        assert_eq!("64KiB".parse::<Size>().unwrap(), Size::kib(64));
        assert_eq!("256MiB".parse::<Size>().unwrap(), Size::mib(256));
        assert_eq!("1KB".parse::<Size>().unwrap(), Size(1000));
        assert!("12 parsecs".parse::<Size>().is_err());
        assert_eq!(Size::mib(8).to_string(), "8.0 MiB");
    }
}
