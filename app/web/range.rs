//! The dashboard's time range: a preset (`range=6h`) or a custom `from`/`to`, and the width
//! of the chart's buckets for it.

use chrono::{DateTime, Duration, Utc};

use super::given;

/// The presets of the range picker: (query value, label, seconds).
pub const PRESETS: [(&str, &str, i64); 6] = [
    ("15m", "last 15 minutes", 15 * 60),
    ("1h", "last hour", 3600),
    ("6h", "last 6 hours", 6 * 3600),
    ("24h", "last 24 hours", 24 * 3600),
    ("7d", "last 7 days", 7 * 86400),
    ("30d", "last 30 days", 30 * 86400),
];

pub const DEFAULT_PRESET: &str = "1h";

/// About this many buckets make a chart: enough detail, few enough rows to read.
const TARGET_BUCKETS: i64 = 120;

/// Bucket widths a person reads easily, smallest first.
const STEPS: [i64; 14] = [
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86400,
];

/// The longest custom range: a year of data is the most a page should scan.
const MAX_SECONDS: i64 = 366 * 86400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeRange {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The preset chosen, if any (custom ranges have none).
    pub preset: Option<&'static str>,
}

impl TimeRange {
    /// From the query string's `range`, `from` and `to`; a custom range wins when both
    /// `from` and `to` are given.
    pub fn parse(
        range: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<TimeRange, String> {
        if let (Some(f), Some(t)) = (given(from), given(to)) {
            let from = parse_time("from", f)?;
            let to = parse_time("to", t)?;
            if from >= to {
                return Err(format!(
                    "the range must start before it ends ({f} is not before {t})"
                ));
            }
            if (to - from).num_seconds() > MAX_SECONDS {
                return Err("the range may span at most 366 days".into());
            }
            return Ok(TimeRange {
                from,
                to,
                preset: None,
            });
        }
        let key = given(range).unwrap_or(DEFAULT_PRESET);
        let (name, _, seconds) = PRESETS.iter().find(|(k, _, _)| *k == key).ok_or_else(|| {
            let names: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
            format!("unknown range {key:?}; choose one of {}", names.join(", "))
        })?;
        Ok(TimeRange {
            from: now - Duration::seconds(*seconds),
            to: now,
            preset: Some(name),
        })
    }

    /// The chart's bucket width: the smallest readable step giving at most about 120 buckets.
    pub fn step_seconds(&self) -> u64 {
        let span = (self.to - self.from).num_seconds().max(1);
        let step = STEPS
            .iter()
            .copied()
            .find(|s| span / s <= TARGET_BUCKETS)
            .unwrap_or_else(|| (span / TARGET_BUCKETS).max(86400));
        step as u64
    }

    /// The query-string pairs that keep this range on the next page.
    pub fn query_pairs(&self) -> Vec<(&'static str, String)> {
        match self.preset {
            Some(p) => vec![("range", p.to_string())],
            None => vec![
                ("from", self.from.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                ("to", self.to.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            ],
        }
    }
}

/// An instant ([`crate::vocab::time::parse_instant`]) for the field named `field`.
fn parse_time(field: &str, value: &str) -> Result<DateTime<Utc>, String> {
    crate::vocab::time::parse_instant(value).map_err(|e| format!("{field} {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
    }

    #[test]
    fn without_parameters_the_range_is_the_last_hour() {
        let r = TimeRange::parse(None, None, None, now()).unwrap();
        assert_eq!(r.to, now());
        assert_eq!(
            r.from,
            Utc.with_ymd_and_hms(2026, 11, 22, 11, 0, 0).unwrap()
        );
        assert_eq!(r.preset, Some("1h"));
    }

    #[test]
    fn a_custom_range_takes_dates_browser_times_and_rfc3339() {
        let r = TimeRange::parse(
            Some("6h"),
            Some("2026-11-01"),
            Some("2026-11-01T08:30"),
            now(),
        )
        .unwrap();
        assert_eq!(r.from, Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap());
        assert_eq!(r.to, Utc.with_ymd_and_hms(2026, 11, 1, 8, 30, 0).unwrap());
        assert_eq!(r.preset, None);
        let r = TimeRange::parse(
            None,
            Some("2026-11-01T00:00:00+01:00"),
            Some("2026-11-02"),
            now(),
        )
        .unwrap();
        assert_eq!(
            r.from,
            Utc.with_ymd_and_hms(2026, 10, 31, 23, 0, 0).unwrap()
        );
    }

    #[test]
    fn bad_ranges_say_what_is_wrong() {
        let e = TimeRange::parse(Some("2w"), None, None, now()).unwrap_err();
        assert!(
            e.contains("unknown range \"2w\"") && e.contains("30d"),
            "{e}"
        );
        let e = TimeRange::parse(None, Some("yesterday"), Some("2026-11-02"), now()).unwrap_err();
        assert!(e.starts_with("from \"yesterday\" is not a time"), "{e}");
        let e = TimeRange::parse(None, Some("2026-11-02"), Some("2026-11-01"), now()).unwrap_err();
        assert!(e.contains("must start before it ends"), "{e}");
        let e = TimeRange::parse(None, Some("2020-01-01"), Some("2026-01-01"), now()).unwrap_err();
        assert!(e.contains("366 days"), "{e}");
    }

    #[test]
    fn steps_keep_charts_near_120_buckets() {
        let r = |s: &str| {
            TimeRange::parse(Some(s), None, None, now())
                .unwrap()
                .step_seconds()
        };
        assert_eq!(r("15m"), 15); // 60 buckets
        assert_eq!(r("1h"), 30); // 120
        assert_eq!(r("6h"), 300); // 72
        assert_eq!(r("24h"), 900); // 96
        assert_eq!(r("7d"), 7200); // 84
        assert_eq!(r("30d"), 6 * 3600); // 120
    }
}
