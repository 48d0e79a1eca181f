//! The periods usage is metered over: minutes (written as the collector meters them), then
//! ten minutes, hours, days and weeks, each made exactly from the next shorter one. Any window
//! is a few whole periods of each length plus, at an edge that falls inside a minute, part of
//! that minute.

use crate::billing::samples::NS_PER_HOUR;
use crate::billing::Window;

pub const NS_PER_MINUTE: i64 = 60_000_000_000;
pub const NS_PER_DAY: i64 = 24 * NS_PER_HOUR;

/// 1970-01-05, the first Monday of the epoch: weeks start there.
const FIRST_MONDAY: i64 = 4 * NS_PER_DAY;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    Minute,
    TenMinutes,
    Hour,
    Day,
    /// Monday to Monday, UTC.
    Week,
}

impl Period {
    /// Longest first: the order a window is cut in.
    pub const LONGEST_FIRST: [Period; 5] = [
        Period::Week,
        Period::Day,
        Period::Hour,
        Period::TenMinutes,
        Period::Minute,
    ];

    pub fn len_ns(self) -> i64 {
        match self {
            Period::Minute => NS_PER_MINUTE,
            Period::TenMinutes => 10 * NS_PER_MINUTE,
            Period::Hour => NS_PER_HOUR,
            Period::Day => NS_PER_DAY,
            Period::Week => 7 * NS_PER_DAY,
        }
    }

    /// The name in measurement names, tags and messages.
    pub fn name(self) -> &'static str {
        match self {
            Period::Minute => "minute",
            Period::TenMinutes => "10m",
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Week => "week",
        }
    }

    pub fn parse(s: &str) -> Option<Period> {
        Period::LONGEST_FIRST.into_iter().find(|p| p.name() == s)
    }

    /// The shorter period this one is made of, and how many of them.
    pub fn parts(self) -> Option<(Period, usize)> {
        match self {
            Period::Minute => None,
            Period::TenMinutes => Some((Period::Minute, 10)),
            Period::Hour => Some((Period::TenMinutes, 6)),
            Period::Day => Some((Period::Hour, 24)),
            Period::Week => Some((Period::Day, 7)),
        }
    }

    /// The longer period this one is a part of.
    pub fn whole(self) -> Option<Period> {
        match self {
            Period::Minute => Some(Period::TenMinutes),
            Period::TenMinutes => Some(Period::Hour),
            Period::Hour => Some(Period::Day),
            Period::Day => Some(Period::Week),
            Period::Week => None,
        }
    }

    /// Start of the period containing `t` (saturating at the ends of `i64`).
    pub fn floor(self, t: i64) -> i64 {
        let origin = if self == Period::Week {
            FIRST_MONDAY
        } else {
            0
        };
        // In i128 so that `t - origin` cannot wrap near i64::MIN.
        let offset = (i128::from(t) - i128::from(origin)).rem_euclid(i128::from(self.len_ns()));
        t.saturating_sub(offset as i64)
    }

    /// The period starting at `start` (ending at i64::MAX at the latest).
    pub fn window(self, start: i64) -> Window {
        Window {
            from: start,
            to: start.saturating_add(self.len_ns()),
        }
    }

    /// Starts of the periods that lie wholly inside `w`.
    pub fn starts_within(self, w: Window) -> impl Iterator<Item = i64> {
        let first = {
            let f = self.floor(w.from);
            if f == w.from {
                f
            } else {
                f.saturating_add(self.len_ns())
            }
        };
        let len = self.len_ns();
        (first..w.to)
            .step_by(len as usize)
            .take_while(move |s| s.saturating_add(len) <= w.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday_and_days_at_midnight_utc() {
        // 2026-10-01T13:00Z is a Thursday; its week began on Monday 2026-09-28.
        let t = 1_790_859_600 * 1_000_000_000;
        assert_eq!(Period::Week.floor(t), 1_790_553_600 * 1_000_000_000);
        assert_eq!(Period::Day.floor(t), 1_790_812_800 * 1_000_000_000);
        assert_eq!(Period::Hour.floor(t), t);
        assert_eq!(
            Period::TenMinutes.floor(t + 601_000_000_000),
            t + 600_000_000_000
        );
        assert_eq!(Period::Minute.floor(t + 61_500_000_000), t + 60_000_000_000);
    }

    #[test]
    fn each_period_is_made_of_the_next_shorter_one() {
        for p in Period::LONGEST_FIRST {
            if let Some((part, n)) = p.parts() {
                assert_eq!(part.len_ns() * n as i64, p.len_ns(), "{p:?}");
                assert_eq!(part.whole(), Some(p));
            }
            assert_eq!(Period::parse(p.name()), Some(p));
        }
    }

    #[test]
    fn only_whole_periods_inside_a_window_are_listed() {
        let m = NS_PER_MINUTE;
        let w = Window::new(m / 2, 3 * m + 1).unwrap();
        assert_eq!(
            Period::Minute.starts_within(w).collect::<Vec<_>>(),
            vec![m, 2 * m]
        );
        assert_eq!(Period::Hour.starts_within(w).count(), 0);
    }
}
