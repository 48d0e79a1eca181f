//! Charts drawn on the server as SVG: a time-series chart and horizontal bars. No script, no
//! CDN; the page works offline and prints. Only numbers go into SVG attributes; labels are
//! escaped by the template.

use std::fmt::Write;

use super::format::human;
use chrono::{DateTime, Utc};

/// Plot size in SVG units; the SVG scales to the page width.
const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// The first is the total; the others, the largest parts.
pub const COLORS: [&str; 7] = [
    "#1f2937", "#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2",
];

#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    pub color: &'static str,
    /// SVG path data.
    pub d: String,
}

#[derive(Debug, Clone)]
pub struct Tick {
    /// Position in SVG units along the axis.
    pub at: f64,
    pub label: String,
    /// `start`, `middle` or `end`: the first and last labels stay inside the chart.
    pub anchor: &'static str,
}

#[derive(Debug, Clone)]
pub struct LineChart {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub bottom: f64,
    pub lines: Vec<Line>,
    pub y_ticks: Vec<Tick>,
    pub x_ticks: Vec<Tick>,
}

/// One series: its label and its points (seconds since the epoch, value), by time.
pub type Points = Vec<(i64, f64)>;

/// A chart of `series` over `[from, to)`. A gap breaks the line (a gap is shown as a gap,
/// never as zero): longer than one and a half buckets and than 2.5 times the series' usual
/// spacing (samples may be sparser than the buckets).
pub fn line_chart(
    series: &[(String, Points)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: u64,
    unit: &str,
) -> LineChart {
    let (t0, t1) = (from.timestamp() as f64, to.timestamp() as f64);
    let max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, v)| *v))
        .fold(0.0_f64, f64::max);
    let top = nice_ceiling(max);
    let x = |t: i64| LEFT + (t as f64 - t0) / (t1 - t0).max(1.0) * (WIDTH - LEFT - RIGHT);
    let y = |v: f64| TOP + (1.0 - v / top) * (HEIGHT - TOP - BOTTOM);
    let lines = series
        .iter()
        .zip(COLORS.iter().cycle())
        .map(|((label, points), color)| Line {
            label: label.clone(),
            color,
            d: path(points, step, &x, &y),
        })
        .collect();
    let y_ticks = (0..=4)
        .map(|i| {
            let v = top * i as f64 / 4.0;
            Tick {
                at: y(v),
                label: human(v, unit),
                anchor: "end",
            }
        })
        .collect();
    // Seconds matter in a short range, the date in a long one.
    let format = match t1 - t0 {
        s if s <= 3600.0 => "%H:%M:%S",
        s if s <= 86400.0 => "%H:%M",
        _ => "%m-%d %H:%M",
    };
    let x_ticks = (0..=4)
        .map(|i| {
            let t = t0 + (t1 - t0) * i as f64 / 4.0;
            let at = DateTime::from_timestamp(t as i64, 0).unwrap_or(from);
            Tick {
                at: x(t as i64),
                label: at.format(format).to_string(),
                anchor: match i {
                    0 => "start",
                    4 => "end",
                    _ => "middle",
                },
            }
        })
        .collect();
    LineChart {
        width: WIDTH,
        height: HEIGHT,
        left: LEFT,
        bottom: HEIGHT - BOTTOM,
        lines,
        y_ticks,
        x_ticks,
    }
}

fn path(
    points: &[(i64, f64)],
    step: u64,
    x: &dyn Fn(i64) -> f64,
    y: &dyn Fn(f64) -> f64,
) -> String {
    let mut spacings: Vec<i64> = points.windows(2).map(|w| w[1].0 - w[0].0).collect();
    spacings.sort_unstable();
    let usual = spacings.get(spacings.len() / 2).copied().unwrap_or(0) as f64;
    let longest = (1.5 * step as f64).max(2.5 * usual);
    let mut d = String::new();
    for (i, &(t, v)) in points.iter().enumerate() {
        let joined = i > 0 && (t - points[i - 1].0) as f64 <= longest;
        let cmd = if joined { 'L' } else { 'M' };
        let _ = write!(d, "{cmd}{:.1},{:.1} ", x(t), y(v));
        // A lone point would be invisible: draw it as a short dash.
        let next_joined = points
            .get(i + 1)
            .is_some_and(|n| (n.0 - t) as f64 <= longest);
        if !joined && !next_joined {
            let _ = write!(d, "h2 ");
        }
    }
    d.trim_end().to_string()
}

/// The smallest of 1, 2, 2.5, 5 × 10^k that is at least `v` (1 for nothing to show).
pub fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub href: String,
    pub value: String,
    /// Length relative to the largest bar, 0–100.
    pub percent: f64,
}

/// Horizontal bars, largest first as given.
pub fn bars(items: Vec<(String, String, f64)>, unit: &str) -> Vec<Bar> {
    let max = items.iter().map(|i| i.2).fold(0.0_f64, f64::max);
    items
        .into_iter()
        .map(|(label, href, v)| Bar {
            label,
            href,
            value: human(v, unit),
            percent: if max > 0.0 {
                (v / max * 100.0).max(0.5)
            } else {
                0.0
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_axis_ends_at_a_round_number_above_the_largest_value() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(180.0), 200.0);
        assert_eq!(nice_ceiling(2100.0), 2500.0);
        assert_eq!(nice_ceiling(2500.0), 2500.0);
    }

    #[test]
    fn points_map_onto_the_plot_and_gaps_break_the_line() {
        let from = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let to = from + chrono::Duration::seconds(500);
        let t = from.timestamp();
        // Buckets of 20 s, samples every 100 s: 0, 100, 200, then a gap, then 460.
        let points = vec![(t, 0.0), (t + 100, 50.0), (t + 200, 50.0), (t + 460, 100.0)];
        let chart = line_chart(&[("total".into(), points)], from, to, 20, "count");
        // Plot x from 90 to 790 over 500 s; y from 216 (0) to 10 (100). 260 s > 2.5 × 100 s.
        assert_eq!(
            chart.lines[0].d,
            "M90.0,216.0 L230.0,113.0 L370.0,113.0 M734.0,10.0 h2"
        );
        assert_eq!(chart.y_ticks[4].label, "100");
        assert_eq!(chart.x_ticks[0].label, "00:00:00");
        assert_eq!(chart.x_ticks[4].label, "00:08:20");
    }

    #[test]
    fn bars_are_relative_to_the_largest() {
        let b = bars(
            vec![
                ("a".into(), "/a".into(), 2000.0),
                ("b".into(), "/b".into(), 500.0),
            ],
            "millicores",
        );
        assert_eq!(b[0].percent, 100.0);
        assert_eq!(b[1].percent, 25.0);
        assert_eq!(b[1].value, "500 millicores");
    }
}
