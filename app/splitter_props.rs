//! Every window splitter (hours, days, weeks, months, `step` buckets, statement pieces) run
//! over instants drawn from the whole representable range and its edges: each terminates,
//! tiles its window exactly, and returns a bounded number of pieces. A window arithmetic that
//! wraps past the largest 64-bit time once made a statement loop until the server died; these
//! properties fail on any such regression.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proptest::prelude::*;

use crate::api::billing::{window, StatementParams};
use crate::api::request::{MetricQuery, MAX_BUCKETS};
use crate::billing::samples::NS_PER_HOUR;
use crate::billing::Window;
use crate::jobs::rollup::whole_hours;
use crate::metering::period::{Period, NS_PER_DAY};
use crate::metering::plan::{hours, pieces, Complete, Piece};
use crate::vocab::time::{parse_instant, EARLIEST, LATEST};
use crate::web::range::TimeRange;

/// The longest window a splitter is asked to cut here: more than any operation allows.
const MAX_LEN: i64 = 400 * NS_PER_DAY;

/// Instants anywhere in `i64`, with the edges (and InfluxDB's own limits) drawn often.
fn instant() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => any::<i64>(),
        2 => EARLIEST..=LATEST,
        1 => i64::MAX - 2 * MAX_LEN..=i64::MAX,
        1 => i64::MIN..=i64::MIN + 2 * MAX_LEN,
        1 => LATEST - MAX_LEN..=i64::MAX,
        1 => i64::MIN..=EARLIEST + MAX_LEN,
    ]
}

/// A window of at most [`MAX_LEN`] starting at any instant.
fn any_window() -> impl Strategy<Value = Window> {
    (instant(), 1..=MAX_LEN).prop_map(|(from, len)| {
        let from = from.min(i64::MAX - 1);
        Window {
            from,
            to: from.saturating_add(len),
        }
    })
}

/// Instants a caller may name, as chrono times.
fn valid_time() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        2 => EARLIEST..=LATEST,
        1 => LATEST - MAX_LEN..=LATEST,
        1 => EARLIEST..=EARLIEST + MAX_LEN,
    ]
    .prop_map(DateTime::from_timestamp_nanos)
}

/// Asserts `parts` cover `w` exactly, in order, without overlap.
fn assert_tiles(w: Window, parts: &[Window]) {
    assert_eq!(parts.first().map(|p| p.from), Some(w.from));
    assert_eq!(parts.last().map(|p| p.to), Some(w.to));
    for pair in parts.windows(2) {
        assert_eq!(pair[0].to, pair[1].from, "{parts:?}");
    }
    assert!(parts.iter().all(|p| p.from < p.to), "{parts:?}");
}

fn hours_in(w: Window) -> usize {
    ((w.to as i128 - w.from as i128) / i128::from(NS_PER_HOUR)) as usize + 2
}

/// Complete periods drawn among those of `w`.
fn marks(w: Window, picks: &[(u8, u32)]) -> Complete {
    let mut m = Complete::default();
    for (kind, offset) in picks {
        let period = Period::LONGEST_FIRST[usize::from(*kind % 5)];
        let t = w
            .from
            .saturating_add(i64::from(*offset).saturating_mul(period.len_ns() / 7));
        m.insert(period, period.floor(t));
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hours_tile_any_window_hour_by_hour(w in any_window()) {
        let cut = hours(w);
        prop_assert!(cut.len() <= hours_in(w));
        assert_tiles(w, &cut);
        for h in &cut {
            prop_assert!(h.to - h.from <= NS_PER_HOUR);
        }
    }

    #[test]
    fn statement_pieces_tile_any_window_with_any_marks(
        w in any_window(),
        picks in prop::collection::vec((any::<u8>(), 0u32..10_000), 0..40),
    ) {
        let done = marks(w, &picks);
        let parts = pieces(w, &done);
        // Each marked period yields at most one run, plus at most a gap or a part of a minute
        // on either side of it.
        let marked: usize = done.0.values().map(|s| s.len()).sum();
        prop_assert!(parts.len() <= 3 * marked + 1, "{} pieces", parts.len());
        let windows: Vec<Window> = parts.iter().map(Piece::window).collect();
        assert_tiles(w, &windows);
        for p in &parts {
            match p {
                Piece::Whole(period, r) => {
                    prop_assert_eq!(period.floor(r.from), r.from);
                    prop_assert!(done.has(*period, r.from));
                }
                Piece::PartOfMinute(r) => {
                    prop_assert_eq!(Period::Minute.floor(r.from), Period::Minute.floor(r.to - 1));
                }
                Piece::Missing(_) => {}
            }
        }
    }

    #[test]
    fn periods_contain_their_instant(t in instant()) {
        for period in [Period::Hour, Period::Day, Period::Week] {
            let start = period.floor(t);
            let w = period.window(start);
            prop_assert!(start <= t);
            // Away from the very ends of i64 (where it saturates), the period holds `t`.
            if t > i64::MIN + period.len_ns() && t < i64::MAX - period.len_ns() {
                prop_assert!(w.contains(t));
                prop_assert_eq!(w.to - w.from, period.len_ns());
            }
        }
    }

    #[test]
    fn whole_hours_are_aligned_inside_and_bounded(w in any_window()) {
        let h = whole_hours(w);
        prop_assert!(h.len() <= hours_in(w));
        prop_assert!(h.iter().all(|s| Period::Hour.floor(*s) == *s && *s >= w.from));
        prop_assert!(h.iter().all(|s| s.saturating_add(NS_PER_HOUR) <= w.to));
    }

    #[test]
    fn step_buckets_stay_bounded_or_the_step_is_refused(
        from in valid_time(),
        len_s in 1i64..(600 * 366 * 86_400),
        step in prop_oneof![
            (1u64..100_000).prop_map(|n| format!("{n}s")),
            (1u64..100_000).prop_map(|n| format!("{n}d")),
            any::<u64>().prop_map(|n| format!("{n}s")),
            "[0-9]{1,30}[smhdw]?",
        ],
    ) {
        let to = from + chrono::Duration::seconds(len_s);
        let body = serde_json::json!({
            "agg": "all-pod",
            "step": step,
            "timeBeginInterval": from.to_rfc3339(),
            "timeEndInterval": to.to_rfc3339(),
        });
        if let Ok(q) = MetricQuery::parse(body.to_string().as_bytes(), Utc::now()) {
            let secs = q.step.unwrap() as i64;
            let span = (q.window.end - q.window.begin).num_seconds();
            prop_assert!(span / secs < MAX_BUCKETS, "{} buckets", span / secs + 1);
        }
    }

    #[test]
    fn chart_buckets_stay_near_120_for_any_custom_range(from in valid_time(), to in valid_time()) {
        let f = |t: DateTime<Utc>| t.to_rfc3339();
        if let Ok(r) = TimeRange::parse(None, Some(&f(from)), Some(&f(to)), Utc::now()) {
            let span = (r.to - r.from).num_seconds();
            prop_assert!(span / r.step_seconds() as i64 <= 121);
        }
    }

    #[test]
    fn statement_windows_are_forward_and_at_most_366_days(from in valid_time(), to in valid_time()) {
        if let Ok(w) = window(from, to) {
            prop_assert!(w.from < w.to);
            prop_assert!(w.to - w.from <= 366 * NS_PER_DAY);
        }
    }

    #[test]
    fn the_default_statement_is_this_month_so_far_whatever_the_clock(now in valid_time()) {
        let p = StatementParams::parse(&BTreeMap::new(), now).unwrap();
        prop_assert!(p.window.from < p.window.to || now.timestamp_nanos_opt() == Some(EARLIEST));
        prop_assert!(p.window.to - p.window.from <= 32 * NS_PER_DAY);
    }

    #[test]
    fn export_months_anywhere_are_a_month_or_a_clear_error(
        year in prop_oneof![-300_000i32..300_000, 1600i32..2300],
        month in 0u32..14,
    ) {
        let text = format!("{year:04}-{month:02}");
        if let Ok((from, to)) = crate::cli::month_bounds(&text, Utc::now()) {
            if let (Ok(a), Ok(b)) = (parse_instant(&from), parse_instant(&to)) {
                let days = (b - a).num_days();
                prop_assert!((28..=31).contains(&days));
            }
        }
    }

    #[test]
    fn any_text_is_an_instant_in_range_or_an_error(s in "\\PC{0,40}") {
        if let Ok(t) = parse_instant(&s) {
            let ns = t.timestamp_nanos_opt().unwrap();
            prop_assert!((EARLIEST..=LATEST).contains(&ns));
        }
    }
}

#[test]
fn the_runaway_statement_of_2262_is_refused_not_split() {
    // The request that once took the server down: a `to` past 2262-04-11T23:00:00Z.
    let fields: BTreeMap<String, String> = [
        ("from".to_string(), "2262-01-01".to_string()),
        ("to".to_string(), "2262-04-11T23:30:00Z".to_string()),
    ]
    .into();
    let err = StatementParams::parse(&fields, Utc::now()).unwrap_err();
    assert!(err.to_string().starts_with("to: "), "{err}");
    assert!(err.to_string().contains("2262-04-11"), "{err}");
    // And the last window that is accepted is cut into a bounded number of pieces.
    let w = Window::new(LATEST - 100 * NS_PER_DAY, LATEST).unwrap();
    assert_eq!(hours(w).len(), 2400);
    assert_eq!(pieces(w, &Complete::default()), vec![Piece::Missing(w)]);
}
