//! Elasticsearch time values: `500ms`, `90s`, `20m`, `1h`, `2d`, and `-1` where allowed.
//!
//! Same grammar as Elasticsearch's `TimeValue.parseTimeValue`: an integer followed by one of
//! `nanos`, `micros`, `ms`, `s`, `m`, `h`, `d` (case-insensitive, surrounding spaces
//! ignored). A bare `0` is zero and a bare `-1` means "none/unbounded" for the settings that
//! allow it. Fractional values (`1.5h`) and other negative values are refused, as in
//! Elasticsearch 7+.

use std::fmt;
use std::time::Duration;

/// Why a time value did not parse. `Display` gives the reason only; the caller adds the key
/// and the value (Elasticsearch: `failed to parse setting [k] with value [v] as a time value: <reason>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeError {
    /// No unit, or a unit that is not one of `nanos micros ms s m h d`.
    MissingUnit,
    /// `1.5h`.
    Fractional,
    /// `-5s` (only `-1` exists, and only where allowed).
    Negative,
    /// `-1` given where the setting does not allow it.
    MinusOneNotAllowed,
    /// Does not fit in a `Duration`.
    Overflow,
}

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeError::MissingUnit => {
                "unit is missing or unrecognized (use nanos, micros, ms, s, m, h or d, e.g. 90s)"
            }
            TimeError::Fractional => "fractional time values are not supported",
            TimeError::Negative => "negative durations are not supported",
            TimeError::MinusOneNotAllowed => "-1 is not allowed for this setting",
            TimeError::Overflow => "the value is too large",
        })
    }
}

impl std::error::Error for TimeError {}

/// Parse a time value where `-1` means "none": returns `Ok(None)` for `-1`.
pub fn parse_time_or_minus_one(s: &str) -> Result<Option<Duration>, TimeError> {
    let t = s.trim();
    if t == "-1" {
        return Ok(None);
    }
    parse_inner(t).map(Some)
}

/// Parse a time value; `-1` is refused.
pub fn parse_time(s: &str) -> Result<Duration, TimeError> {
    let t = s.trim();
    if t == "-1" {
        return Err(TimeError::MinusOneNotAllowed);
    }
    parse_inner(t)
}

fn parse_inner(t: &str) -> Result<Duration, TimeError> {
    let lower = t.to_ascii_lowercase();
    if lower == "0" {
        return Ok(Duration::ZERO);
    }
    // Longest suffixes first: `ms` before `s`, `nanos`/`micros` before `s`.
    const UNITS: [(&str, u64); 7] = [
        ("nanos", 1),
        ("micros", 1_000),
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
        ("m", 60_000_000_000),
        ("h", 3_600_000_000_000),
        ("d", 86_400_000_000_000),
    ];
    let Some((number, nanos_per_unit)) = UNITS
        .iter()
        .find_map(|(unit, n)| lower.strip_suffix(unit).map(|rest| (rest.trim(), *n)))
    else {
        return Err(TimeError::MissingUnit);
    };
    if number.starts_with('-') {
        return Err(TimeError::Negative);
    }
    if number.contains('.') {
        return Err(TimeError::Fractional);
    }
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TimeError::MissingUnit);
    }
    let n: u64 = number.parse().map_err(|_| TimeError::Overflow)?;
    let nanos = n.checked_mul(nanos_per_unit).ok_or(TimeError::Overflow)?;
    Ok(Duration::from_nanos(nanos))
}

/// Render a duration the way Elasticsearch prints time values (`1h`, `20m`, `90s`, `500ms`):
/// the largest unit that divides it exactly.
pub fn format_time(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    const UNITS: [(&str, u128); 7] = [
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("micros", 1_000),
        ("nanos", 1),
    ];
    for (unit, n) in UNITS {
        if nanos.is_multiple_of(n) {
            return format!("{}{unit}", nanos / n);
        }
    }
    // Not reached: the last unit (1 ns) divides everything.
    format!("{nanos}nanos")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_time("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_time("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_time("20m"), Ok(Duration::from_secs(1200)));
        assert_eq!(parse_time("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_time("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_time("7nanos"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_time("3micros"), Ok(Duration::from_micros(3)));
        assert_eq!(parse_time(" 5S "), Ok(Duration::from_secs(5)));
        assert_eq!(parse_time("0"), Ok(Duration::ZERO));
        assert_eq!(parse_time("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn minus_one_only_where_allowed() {
        assert_eq!(parse_time_or_minus_one("-1"), Ok(None));
        assert_eq!(
            parse_time_or_minus_one("3m"),
            Ok(Some(Duration::from_secs(180)))
        );
        assert_eq!(parse_time("-1"), Err(TimeError::MinusOneNotAllowed));
    }

    #[test]
    fn refuses_bad_values() {
        assert_eq!(parse_time("60"), Err(TimeError::MissingUnit));
        assert_eq!(parse_time("5 minutes"), Err(TimeError::MissingUnit));
        assert_eq!(parse_time("s"), Err(TimeError::MissingUnit));
        assert_eq!(parse_time(""), Err(TimeError::MissingUnit));
        assert_eq!(parse_time("1.5h"), Err(TimeError::Fractional));
        assert_eq!(parse_time("-5s"), Err(TimeError::Negative));
        assert_eq!(parse_time_or_minus_one("-2"), Err(TimeError::MissingUnit));
        assert_eq!(
            parse_time("99999999999999999999d"),
            Err(TimeError::Overflow)
        );
        assert_eq!(parse_time("999999999999d"), Err(TimeError::Overflow));
    }

    #[test]
    fn formats_with_the_largest_exact_unit() {
        assert_eq!(format_time(Duration::from_secs(3600)), "1h");
        assert_eq!(format_time(Duration::from_secs(1200)), "20m");
        assert_eq!(format_time(Duration::from_secs(90)), "90s");
        assert_eq!(format_time(Duration::from_millis(500)), "500ms");
        assert_eq!(format_time(Duration::ZERO), "0s");
    }
}
