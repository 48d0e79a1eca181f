//! How a window is cut into pieces that are read separately: rollups where a period is
//! complete (marked), raw samples hour by hour everywhere else.

use std::collections::{BTreeMap, BTreeSet};

use crate::billing::samples::{hour_floor, NS_PER_HOUR};
use crate::billing::Window;

use super::rollups::Period;

/// Most days read from daily or weekly rollups in one query (a month, with room).
const MAX_DAYS_PER_READ: i64 = 32;

/// One piece of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// The rollups of `period` starting in the window (a run of complete periods).
    Rollups(Period, Window),
    /// Raw samples of at most one hour.
    Raw(Window),
}

/// `w` cut at every UTC hour: whole hours, plus partial hours at the edges.
pub fn hours(w: Window) -> Vec<Window> {
    let mut out = Vec::new();
    let mut from = w.from;
    while from < w.to {
        // Saturating: the last hour before i64::MAX still ends (at w.to), and always after
        // `from`, so the loop advances.
        let to = hour_floor(from).saturating_add(NS_PER_HOUR).min(w.to);
        out.push(Window { from, to });
        from = to;
    }
    out
}

/// Starts of the periods whose rollups are complete (their markers).
/// Two reads of the markers are equal only if no period was rewritten in between (a rewrite
/// gives its marker a new `written` time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marked {
    pub hours: BTreeSet<i64>,
    pub days: BTreeSet<i64>,
    pub weeks: BTreeSet<i64>,
    /// When each marker was written, by period and start.
    pub written: BTreeMap<(Period, i64), i64>,
}

impl Marked {
    pub fn of(&self, period: Period) -> &BTreeSet<i64> {
        match period {
            Period::Hour => &self.hours,
            Period::Day => &self.days,
            Period::Week => &self.weeks,
        }
    }

    fn of_mut(&mut self, period: Period) -> &mut BTreeSet<i64> {
        match period {
            Period::Hour => &mut self.hours,
            Period::Day => &mut self.days,
            Period::Week => &mut self.weeks,
        }
    }

    pub fn insert(&mut self, period: Period, start: i64) {
        self.of_mut(period).insert(start);
    }

    /// Marks a period, remembering when its marker was written.
    pub fn insert_written(&mut self, period: Period, start: i64, written: i64) {
        self.insert(period, start);
        self.written.insert((period, start), written);
    }
}

/// `w` cut into pieces, longest first: whole weeks and days inside `w` with complete rollups,
/// whole hours with complete hourly rollups (runs of them, never across a day), and raw
/// samples for the rest: the partial hours at the edges and every hour not rolled up yet
/// (late, or the job has not run).
pub fn pieces(w: Window, marked: &Marked) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut t = w.from;
    'next: while t < w.to {
        for period in [Period::Week, Period::Day, Period::Hour] {
            let whole = period.window(period.floor(t));
            if whole.from == t && whole.to <= w.to && marked.of(period).contains(&t) {
                push_rollup(&mut out, period, whole);
                t = whole.to;
                continue 'next;
            }
        }
        let chunk = Window {
            from: t,
            to: hour_floor(t).saturating_add(NS_PER_HOUR).min(w.to),
        };
        out.push(Piece::Raw(chunk));
        t = chunk.to;
    }
    out
}

/// Appends a period, joining it to the previous run when that is adjacent and stays small.
fn push_rollup(out: &mut Vec<Piece>, period: Period, w: Window) {
    if let Some(Piece::Rollups(p, run)) = out.last_mut() {
        let fits = match period {
            Period::Hour => Period::Day.floor(run.from) == Period::Day.floor(w.from),
            Period::Day | Period::Week => {
                run.to - run.from < MAX_DAYS_PER_READ * Period::Day.len_ns()
            }
        };
        if *p == period && run.to == w.from && fits {
            run.to = w.to;
            return;
        }
    }
    out.push(Piece::Rollups(period, w));
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = NS_PER_HOUR;
    const D: i64 = 24 * H;

    #[test]
    fn a_window_is_cut_at_every_hour_with_partial_edges() {
        let w = Window::new(H / 2, 3 * H + 5).unwrap();
        let cut: Vec<(i64, i64)> = hours(w).iter().map(|w| (w.from, w.to)).collect();
        assert_eq!(
            cut,
            vec![(H / 2, H), (H, 2 * H), (2 * H, 3 * H), (3 * H, 3 * H + 5)]
        );
        assert_eq!(hours(Window::new(H, 2 * H).unwrap()).len(), 1);
    }

    fn marked(hours: &[i64], days: &[i64], weeks: &[i64]) -> Marked {
        Marked {
            hours: hours.iter().copied().collect(),
            days: days.iter().copied().collect(),
            weeks: weeks.iter().copied().collect(),
            written: BTreeMap::new(),
        }
    }

    #[test]
    fn whole_days_and_hours_come_from_rollups_and_the_rest_from_raw_samples() {
        // From 22:30 on day 0 to 02:15 on day 2. Day 1 is rolled up as a day; of day 0 only
        // 23:00, of day 2 only 00:00 and 01:00 are rolled up as hours.
        let w = Window::new(22 * H + H / 2, 2 * D + 2 * H + H / 4).unwrap();
        let done = marked(&[23 * H, 2 * D, 2 * D + H], &[D], &[]);
        assert_eq!(
            pieces(w, &done),
            vec![
                Piece::Raw(Window::new(22 * H + H / 2, 23 * H).unwrap()),
                Piece::Rollups(Period::Hour, Window::new(23 * H, D).unwrap()),
                Piece::Rollups(Period::Day, Window::new(D, 2 * D).unwrap()),
                Piece::Rollups(Period::Hour, Window::new(2 * D, 2 * D + 2 * H).unwrap()),
                Piece::Raw(Window::new(2 * D + 2 * H, 2 * D + 2 * H + H / 4).unwrap()),
            ]
        );
    }

    #[test]
    fn a_month_reads_whole_weeks_then_days() {
        // Thursday 1 January 1970 (day 0) to Saturday the 31st: Thursday to Sunday as days,
        // the weeks from Monday the 5th to Monday the 26th, the rest as days.
        let w = Window::new(0, 30 * D).unwrap();
        let days: Vec<i64> = (0..30).map(|d| d * D).collect();
        let weeks: Vec<i64> = (0..4).map(|k| (4 + 7 * k) * D).collect();
        assert_eq!(
            pieces(w, &marked(&[], &days, &weeks)),
            vec![
                Piece::Rollups(Period::Day, Window::new(0, 4 * D).unwrap()),
                Piece::Rollups(Period::Week, Window::new(4 * D, 25 * D).unwrap()),
                Piece::Rollups(Period::Day, Window::new(25 * D, 30 * D).unwrap()),
            ]
        );
    }

    #[test]
    fn an_hour_without_its_marker_is_read_raw_even_between_rolled_up_hours() {
        let w = Window::new(0, 3 * H).unwrap();
        assert_eq!(
            pieces(w, &marked(&[0, 2 * H], &[], &[])),
            vec![
                Piece::Rollups(Period::Hour, Window::new(0, H).unwrap()),
                Piece::Raw(Window::new(H, 2 * H).unwrap()),
                Piece::Rollups(Period::Hour, Window::new(2 * H, 3 * H).unwrap()),
            ]
        );
        // A day marked complete but only partly inside the window is read by the hour.
        let w = Window::new(H, D).unwrap();
        let all: Vec<i64> = (0..24).map(|h| h * H).collect();
        assert_eq!(
            pieces(w, &marked(&all, &[0], &[])),
            vec![Piece::Rollups(Period::Hour, w)]
        );
    }
}
