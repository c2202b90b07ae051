//! Go-style duration strings (`500ms`, `5s`, `1m30s`, `1.5h`), as upstream configs use.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A non-negative duration read from a Go duration string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn from_secs(s: u64) -> Self {
        Duration(std::time::Duration::from_secs(s))
    }

    pub const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

/// Parses `[0-9.]+unit` runs, units `ns us µs ms s m h`; a bare `0` is zero.
pub fn parse(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {s:?} (expected e.g. \"500ms\", \"5s\", \"1m30s\")");
    let s = s.trim();
    if s == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err(bad());
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += value * nanos_per;
        rest = &rest[unit_len..];
    }
    if total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_nanos(total.round() as u64))
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"5s\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
                parse(s).map(Duration).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
                // A bare number: seconds would be a guess; only 0 is unambiguous.
                if n == 0 {
                    Ok(Duration::default())
                } else {
                    Err(E::custom(format!(
                        "invalid duration {n}: add a unit, e.g. \"{n}s\""
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::parse;
    use std::time::Duration as D;

    #[test]
    fn go_durations() {
        assert_eq!(parse("500ms").unwrap(), D::from_millis(500));
        assert_eq!(parse("1m30s").unwrap(), D::from_secs(90));
        assert_eq!(parse("1.5h").unwrap(), D::from_secs(5400));
        assert_eq!(parse("250us").unwrap(), D::from_micros(250));
        assert_eq!(parse("0").unwrap(), D::ZERO);
        assert!(parse("5").is_err());
        assert!(parse("5x").is_err());
        assert!(parse("-1s").is_err());
        assert!(parse("").is_err());
    }
}
