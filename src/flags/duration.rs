//! Durations (`30s`, `15m`, `24h`, `7d`, `2 weeks`, `3 months`, `permanent`) and dates
//! (`YYYY-MM-DD` at 00:00 UTC, or RFC 3339) as the flag file writes them.

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// A written duration: a span of time, or `permanent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Finite(Duration),
    Permanent,
}

const UNITS: &[(&[&str], i64)] = &[
    (&["ms", "millisecond", "milliseconds"], 0),
    (&["s", "sec", "secs", "second", "seconds"], 1),
    (&["m", "min", "mins", "minute", "minutes"], 60),
    (&["h", "hr", "hrs", "hour", "hours"], 3_600),
    (&["d", "day", "days"], 86_400),
    (&["w", "week", "weeks"], 7 * 86_400),
    (&["mo", "month", "months"], 30 * 86_400),
];

/// Parses a duration. A month is 30 days.
pub fn parse_span(text: &str) -> Result<Span, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("permanent") {
        return Ok(Span::Permanent);
    }
    parse_duration(t).map(Span::Finite)
}

/// The longest duration a file, flag or query may write: 100 years (36,500 days). Longer
/// spans would push date arithmetic past the calendar's range; nothing real needs them.
pub const MAX_DURATION: Duration = Duration::days(36_500);

/// Parses a finite duration (no `permanent`), at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit = unit.trim();
    let err = || {
        format!(
            "invalid duration {text:?}: expected a whole number and a unit, like 30s, 15m, 24h, 7d, \"2 weeks\", \"3 months\" or permanent"
        )
    };
    let n: i64 = digits.parse().map_err(|_| err())?;
    let (_, seconds) =
        UNITS.iter().find(|(names, _)| names.iter().any(|u| u.eq_ignore_ascii_case(unit))).ok_or_else(err)?;
    let d = if *seconds == 0 {
        Duration::try_milliseconds(n)
    } else {
        n.checked_mul(*seconds).and_then(Duration::try_seconds)
    };
    d.filter(|d| *d <= MAX_DURATION)
        .ok_or_else(|| format!("duration {text:?} is too long: at most 100 years (36500d) is allowed"))
}

/// Parses `YYYY-MM-DD` (00:00 UTC) or an RFC 3339 timestamp.
pub fn parse_date(text: &str) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        let midnight = d.and_hms_opt(0, 0, 0).expect("00:00:00 is a valid time");
        return Ok(midnight.and_utc());
    }
    let looks_like_date = t.len() == 10
        && t.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    if looks_like_date {
        return Err(format!("invalid date {text:?}: expected YYYY-MM-DD (00:00 UTC) or RFC 3339"));
    }
    parse_timestamp(t)
}

/// Parses an RFC 3339 timestamp.
pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("invalid timestamp {text:?}: {e} (expected RFC 3339, like 2025-01-31T09:00:00Z)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_the_file_writes_them() {
        let cases = [
            ("30s", 30),
            ("15m", 900),
            ("24h", 86_400),
            ("72h", 259_200),
            ("7d", 604_800),
            ("2 weeks", 1_209_600),
            ("3 months", 7_776_000),
            ("1 month", 2_592_000),
            ("90 Minutes", 5_400),
        ];
        for (text, secs) in cases {
            assert_eq!(parse_span(text), Ok(Span::Finite(Duration::seconds(secs))), "{text}");
        }
        assert_eq!(parse_span("permanent"), Ok(Span::Permanent));
        assert_eq!(parse_duration("250ms"), Ok(Duration::milliseconds(250)));
    }

    #[test]
    fn bad_durations_are_explained() {
        for bad in ["", "h", "24", "24 hourz", "-5m", "1.5h", "99999999999999999999d"] {
            assert!(parse_span(bad).is_err(), "{bad:?} should fail");
        }
        assert!(parse_duration("permanent").is_err());
        assert!(parse_duration("9223372036854775807w").unwrap_err().contains("too long"));
        assert!(parse_duration("100000000d").unwrap_err().contains("at most 100 years"));
        assert_eq!(parse_duration("36500d"), Ok(MAX_DURATION));
        assert!(parse_duration("36501d").is_err());
    }

    #[test]
    fn dates_are_midnight_utc_or_rfc3339() {
        assert_eq!(parse_date("2024-06-01").map(|d| d.timestamp()), Ok(1_717_200_000));
        assert_eq!(parse_date("2024-06-01T02:00:00+02:00").map(|d| d.timestamp()), Ok(1_717_200_000));
        assert!(parse_date("2024-13-01").is_err());
        assert!(parse_date("June 1st").is_err());
    }
}
