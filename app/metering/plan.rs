//! How a window is cut into pieces that are read separately: whole metered periods, longest
//! first, then at an edge that falls inside a minute, part of that minute; what is not metered
//! is a gap (never read from raw samples here: a gap is reported, not guessed).

use std::collections::{BTreeMap, BTreeSet};

use crate::billing::samples::{hour_floor, NS_PER_HOUR};
use crate::billing::Window;

use super::period::Period;

/// One piece of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// A run of whole metered periods of one length.
    Whole(Period, Window),
    /// Part of one metered minute: the slices of its rows taken inside the window.
    PartOfMinute(Window),
    /// Not metered: nothing to read.
    Missing(Window),
}

impl Piece {
    pub fn window(&self) -> Window {
        match *self {
            Piece::Whole(_, w) | Piece::PartOfMinute(w) | Piece::Missing(w) => w,
        }
    }
}

/// `w` cut at every UTC hour: whole hours, plus partial hours at the edges (raw reads).
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

/// The starts of the complete periods of each length (of one cluster).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Complete(pub BTreeMap<Period, BTreeSet<i64>>);

impl Complete {
    pub fn has(&self, period: Period, start: i64) -> bool {
        self.0.get(&period).is_some_and(|s| s.contains(&start))
    }

    pub fn insert(&mut self, period: Period, start: i64) {
        self.0.entry(period).or_default().insert(start);
    }

    /// The earliest start of a complete period after `t`.
    fn next_start_after(&self, t: i64) -> Option<i64> {
        self.0
            .values()
            .filter_map(|starts| starts.range(t.saturating_add(1)..).next().copied())
            .min()
    }
}

/// `w` cut into pieces: at each instant the longest complete period that starts there and fits,
/// else the rest of the minute (part of a metered minute, or a gap).
pub fn pieces(w: Window, complete: &Complete) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::new();
    let mut t = w.from;
    'next: while t < w.to {
        for period in Period::LONGEST_FIRST {
            let whole = period.window(period.floor(t));
            if whole.from == t && whole.to <= w.to && complete.has(period, t) {
                push(&mut out, Piece::Whole(period, whole));
                t = whole.to;
                continue 'next;
            }
        }
        let minute = Period::Minute.floor(t);
        if complete.has(Period::Minute, minute) {
            let part = Window {
                from: t,
                to: Period::Minute.window(minute).to.min(w.to),
            };
            push(&mut out, Piece::PartOfMinute(part));
            t = part.to;
        } else {
            // Nothing metered here: a gap up to where the next complete period starts, in
            // one step (a year without data is one piece, not half a million minutes).
            let to = complete.next_start_after(t).unwrap_or(w.to).min(w.to);
            push(&mut out, Piece::Missing(Window { from: t, to }));
            t = to;
        }
    }
    out
}

/// Appends a piece, joining it to the previous one when both are runs of the same kind that
/// touch.
fn push(out: &mut Vec<Piece>, piece: Piece) {
    match (out.last_mut(), piece) {
        (Some(Piece::Whole(p, run)), Piece::Whole(q, w)) if *p == q && run.to == w.from => {
            run.to = w.to;
        }
        (Some(Piece::Missing(run)), Piece::Missing(w)) if run.to == w.from => run.to = w.to,
        _ => out.push(piece),
    }
}

/// The parts of `w` not covered by complete periods of the given lengths: where finer
/// markers must be looked up.
pub fn uncovered(w: Window, complete: &Complete, periods: &[Period]) -> Vec<Window> {
    let coarse = Complete(
        complete
            .0
            .iter()
            .filter(|(p, _)| periods.contains(p))
            .map(|(p, s)| (*p, s.clone()))
            .collect(),
    );
    pieces(w, &coarse)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Whole(..) => None,
            other => Some(other.window()),
        })
        .fold(Vec::new(), |mut acc: Vec<Window>, w| {
            match acc.last_mut() {
                Some(last) if last.to == w.from => last.to = w.to,
                _ => acc.push(w),
            }
            acc
        })
}

#[cfg(test)]
mod tests {
    use super::super::period::NS_PER_MINUTE as M;
    use super::*;

    const H: i64 = NS_PER_HOUR;
    const D: i64 = 24 * H;

    fn complete(periods: &[(Period, &[i64])]) -> Complete {
        let mut c = Complete::default();
        for (p, starts) in periods {
            for s in *starts {
                c.insert(*p, *s);
            }
        }
        c
    }

    #[test]
    fn a_window_is_cut_at_every_hour_with_partial_edges() {
        let w = Window::new(H / 2, 3 * H + 5).unwrap();
        let cut: Vec<(i64, i64)> = hours(w).iter().map(|w| (w.from, w.to)).collect();
        assert_eq!(
            cut,
            vec![(H / 2, H), (H, 2 * H), (2 * H, 3 * H), (3 * H, 3 * H + 5)]
        );
    }

    #[test]
    fn whole_periods_come_longest_first_and_edges_from_part_of_a_minute() {
        // From 22:58:30 on day 0 to 01:10:20 on day 2. Day 1 is complete; of day 0 the minute
        // 22:58, the minute 22:59 and the hour 23:00; of day 2 the hour 00:00, ten minutes
        // from 01:00 and the minute 01:10.
        let from = 22 * H + 58 * M + 30_000_000_000;
        let to = 2 * D + H + 10 * M + 20_000_000_000;
        let done = complete(&[
            (
                Period::Minute,
                &[22 * H + 58 * M, 22 * H + 59 * M, 2 * D + H + 10 * M],
            ),
            (Period::Hour, &[23 * H, 2 * D]),
            (Period::TenMinutes, &[2 * D + H]),
            (Period::Day, &[D]),
        ]);
        assert_eq!(
            pieces(Window::new(from, to).unwrap(), &done),
            vec![
                Piece::PartOfMinute(Window::new(from, 22 * H + 59 * M).unwrap()),
                Piece::Whole(
                    Period::Minute,
                    Window::new(22 * H + 59 * M, 23 * H).unwrap()
                ),
                Piece::Whole(Period::Hour, Window::new(23 * H, D).unwrap()),
                Piece::Whole(Period::Day, Window::new(D, 2 * D).unwrap()),
                Piece::Whole(Period::Hour, Window::new(2 * D, 2 * D + H).unwrap()),
                Piece::Whole(
                    Period::TenMinutes,
                    Window::new(2 * D + H, 2 * D + H + 10 * M).unwrap()
                ),
                Piece::PartOfMinute(Window::new(2 * D + H + 10 * M, to).unwrap()),
            ]
        );
    }

    #[test]
    fn what_is_not_metered_is_one_gap_not_read_from_raw_samples() {
        let w = Window::new(0, 30 * D).unwrap();
        assert_eq!(pieces(w, &Complete::default()), vec![Piece::Missing(w)]);
        // A metered hour in the middle of an unmetered month.
        let done = complete(&[(Period::Hour, &[5 * D])]);
        assert_eq!(
            pieces(w, &done),
            vec![
                Piece::Missing(Window::new(0, 5 * D).unwrap()),
                Piece::Whole(Period::Hour, Window::new(5 * D, 5 * D + H).unwrap()),
                Piece::Missing(Window::new(5 * D + H, 30 * D).unwrap()),
            ]
        );
    }

    #[test]
    fn finer_markers_are_looked_up_only_where_coarse_ones_leave_gaps() {
        let w = Window::new(0, 3 * H + 30 * M).unwrap();
        let done = complete(&[(Period::Hour, &[0, H, 2 * H])]);
        let coarse = [Period::Week, Period::Day, Period::Hour];
        assert_eq!(
            uncovered(w, &done, &coarse),
            vec![Window::new(3 * H, 3 * H + 30 * M).unwrap()]
        );
    }
}
