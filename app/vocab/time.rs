//! Instants and durations as people and billing systems write them, parsed once for the API,
//! the dashboard, the price book and the command line, and checked against what InfluxDB can
//! store.
//!
//! InfluxDB keeps a time as nanoseconds in an `i64`: from 1677-09-21T00:12:43.145224194Z to
//! 2262-04-11T23:47:16.854775806Z. A caller may name any instant of the whole days inside that
//! span, [`EARLIEST`] to [`LATEST`]; the margin of almost a day at each end means rounding a
//! valid instant to its hour can never leave the range, and every window splitter works with
//! checked (saturating) arithmetic on top of that.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// Seconds of the first instant a caller may name: 1677-09-22T00:00:00Z.
const EARLIEST_SECS: i64 = -9_223_286_400;
/// Seconds of the last instant a caller may name: 2262-04-11T00:00:00Z.
const LATEST_SECS: i64 = 9_223_286_400;

/// The first instant a caller may name, in nanoseconds since the epoch.
pub const EARLIEST: i64 = EARLIEST_SECS * 1_000_000_000;
/// The last instant a caller may name, in nanoseconds since the epoch.
pub const LATEST: i64 = LATEST_SECS * 1_000_000_000;

/// How the accepted span reads in messages.
pub const SPAN_TEXT: &str = "from 1677-09-22 to 2262-04-11 (the times InfluxDB can store)";

/// The formats an instant may take, as messages name them.
pub const FORMATS_TEXT: &str = "YYYY-MM-DD (midnight UTC, e.g. \"2017-12-01\"), \
     YYYY-MM-DDTHH:MM in UTC, or RFC 3339 (e.g. \"2017-12-01T00:00:00Z\")";

/// Why a text is not an instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("{0:?} is not a time; use {FORMATS_TEXT}")]
    NotATime(String),
    #[error("{0:?} is outside the times kubemeter accepts; use a time {SPAN_TEXT}")]
    OutOfRange(String),
}

/// A date (midnight UTC), a date and time without offset (taken as UTC: what a browser's
/// `datetime-local` input sends), or RFC 3339 — inside [`EARLIEST`]..=[`LATEST`].
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, TimeError> {
    let s = text.trim();
    let t = parse_any(s)
        // chrono reads a leap second (`23:59:60`) as a nanosecond count past one second;
        // InfluxDB refuses such a time, and it would order before the next second's start.
        .filter(|t| t.timestamp_subsec_nanos() < 1_000_000_000)
        .ok_or_else(|| TimeError::NotATime(text.to_string()))?;
    if in_range(t) {
        Ok(t)
    } else {
        Err(TimeError::OutOfRange(text.to_string()))
    }
}

fn parse_any(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()?
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
}

/// Whether `t` is inside the accepted span.
pub fn in_range(t: DateTime<Utc>) -> bool {
    let secs = t.timestamp();
    (EARLIEST_SECS..=LATEST_SECS).contains(&secs)
        && (secs < LATEST_SECS || t.timestamp_subsec_nanos() == 0)
}

/// Nanoseconds since the epoch of an instant in the accepted span (saturating outside it, which
/// [`parse_instant`] never returns).
pub fn to_ns(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// The most seconds a duration may have: a step or interval longer than a century means
/// nothing here, and the bound keeps every product with it far inside an `i64`.
pub const MAX_DURATION_SECS: u64 = 100 * 366 * 86_400;

/// `30s`, `15m`, `1h`, `1d`: a whole number of seconds from 1 to [`MAX_DURATION_SECS`].
pub fn parse_duration_seconds(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(scale)
        .filter(|secs| (1..=MAX_DURATION_SECS).contains(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn dates_browser_times_and_rfc3339_all_parse_to_utc() {
        let eight = Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap();
        assert_eq!(parse_instant("2026-11-01T08:00"), Ok(eight));
        assert_eq!(parse_instant("2026-11-01T08:00:00"), Ok(eight));
        assert_eq!(parse_instant("2026-11-01T08:00:00Z"), Ok(eight));
        assert_eq!(parse_instant(" 2026-11-01T09:00:00+01:00 "), Ok(eight));
        assert_eq!(
            parse_instant("2026-11-01"),
            Ok(Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap())
        );
    }

    #[test]
    fn the_accepted_span_is_the_whole_days_influxdb_can_store() {
        assert_eq!(
            to_ns(parse_instant("1677-09-22").unwrap()),
            EARLIEST,
            "first accepted instant"
        );
        assert_eq!(to_ns(parse_instant("2262-04-11").unwrap()), LATEST);
        // InfluxDB's own extremes, and what lies beyond them, are refused by name.
        for outside in [
            "1677-09-21T23:59:59.999999999Z",
            "1677-09-21T00:12:43.145224194Z",
            "2262-04-11T00:00:00.000000001Z",
            "2262-04-11T23:30:00Z",
            "2262-04-11T23:47:16.854775807Z",
            "0000-01-01",
            "0001-01-01",
            "+99999-01-01",
            "9999-12-31T23:59:59Z",
        ] {
            let e = parse_instant(outside);
            assert!(
                matches!(
                    e,
                    Err(TimeError::OutOfRange(_)) | Err(TimeError::NotATime(_))
                ),
                "{outside}: {e:?}"
            );
        }
        assert!(matches!(
            parse_instant("2262-04-11T23:30:00Z"),
            Err(TimeError::OutOfRange(_))
        ));
        assert!(parse_instant("0001-01-01")
            .unwrap_err()
            .to_string()
            .contains("1677-09-22 to 2262-04-11"));
    }

    #[test]
    fn words_and_impossible_dates_are_not_times() {
        for bad in [
            "yesterday",
            "2017-13-01",
            "2017-02-30",
            "",
            "1e9",
            "2017-12-01 00:00",
            // Leap seconds: InfluxDB refuses them.
            "2017-12-01T23:59:60Z",
            "2016-12-31T23:59:60.5Z",
            "2017-12-01T23:59:60",
        ] {
            assert!(
                matches!(parse_instant(bad), Err(TimeError::NotATime(_))),
                "{bad}"
            );
        }
        assert!(parse_instant("yesterday")
            .unwrap_err()
            .to_string()
            .contains("RFC 3339"));
    }

    #[test]
    fn durations_are_whole_units_up_to_a_century() {
        assert_eq!(parse_duration_seconds("15m"), Some(900));
        assert_eq!(parse_duration_seconds("1d"), Some(86_400));
        assert_eq!(parse_duration_seconds("36600d"), Some(MAX_DURATION_SECS));
        for bad in [
            "0s",
            "36601d",
            "9223372036854775807s",
            "18446744073709551615s",
            "99999999999999999999999s",
            "-1h",
            "1.5h",
            "1w",
            "h",
        ] {
            assert_eq!(parse_duration_seconds(bad), None, "{bad}");
        }
    }
}
