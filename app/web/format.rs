//! Numbers as people read them: values with their catalogue unit, and times.

use chrono::{DateTime, Utc};

/// `value` in `unit` (the catalogue's), made readable: `1.5 GiB`, `250 millicores`,
/// `1.25 cores`, `3 h 12 min`.
pub fn human(value: f64, unit: &str) -> String {
    match unit {
        "bytes" => binary(value, ""),
        "bytes per second" => binary(value, "/s"),
        "millicores" if value.abs() >= 1000.0 => format!("{} cores", decimal(value / 1000.0)),
        "millicores" => format!("{} millicores", decimal(value)),
        "megabytes" => binary(value * 1024.0 * 1024.0, ""),
        "milliseconds" => duration(value / 1000.0),
        "nanoseconds" => format!("{} CPU", duration(value / 1e9)),
        "percent" => format!("{} %", decimal(value)),
        "count" => decimal(value),
        other => format!("{} {other}", decimal(value)),
    }
}

/// Up to two decimals, without trailing zeros.
pub fn decimal(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

fn binary(bytes: f64, suffix: &str) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes;
    let mut i = 0;
    while v.abs() >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{} {}{suffix}", decimal(v), UNITS[i])
}

fn duration(seconds: f64) -> String {
    if seconds.abs() < 1.0 {
        return format!("{} ms", decimal(seconds * 1000.0));
    }
    let s = seconds.round() as i64;
    let (d, h, m, sec) = (s / 86400, s % 86400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec} s"),
        (0, 0, _) => format!("{m} min {sec} s"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// A time in UTC to the second, as the tables show it.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_use_binary_prefixes() {
        assert_eq!(human(512.0, "bytes"), "512 B");
        assert_eq!(human(1536.0, "bytes"), "1.5 KiB");
        assert_eq!(human(3.0 * 1024.0 * 1024.0 * 1024.0, "bytes"), "3 GiB");
        assert_eq!(human(2048.0, "bytes per second"), "2 KiB/s");
        assert_eq!(human(300.0, "megabytes"), "300 MiB");
    }

    #[test]
    fn millicores_become_cores_from_one_core() {
        assert_eq!(human(250.0, "millicores"), "250 millicores");
        assert_eq!(human(1250.0, "millicores"), "1.25 cores");
    }

    #[test]
    fn durations_read_as_days_hours_minutes() {
        assert_eq!(human(850.0, "milliseconds"), "850 ms");
        assert_eq!(human(45_000.0, "milliseconds"), "45 s");
        assert_eq!(human(125_000.0, "milliseconds"), "2 min 5 s");
        assert_eq!(human(11_520_000.0, "milliseconds"), "3 h 12 min");
        assert_eq!(
            human(2.0 * 86_400_000.0 + 3_600_000.0, "milliseconds"),
            "2 d 1 h"
        );
        assert_eq!(human(90e9, "nanoseconds"), "1 min 30 s CPU");
    }

    #[test]
    fn other_units_keep_their_name() {
        assert_eq!(human(0.126, "ratio"), "0.13 ratio");
        assert_eq!(human(3.0, "count"), "3");
        assert_eq!(human(-0.001, "count"), "0");
    }
}
