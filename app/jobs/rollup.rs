//! The billing rollup job: per pod, the exact usage of each UTC hour (and of each complete
//! day), computed from raw samples with the very rule statements use and written next to the
//! raw data (schema in [`crate::metering::rollups`]).
//!
//! Idempotent: rewriting a period first deletes its marker and points, then writes the points
//! and finally the marker, so a reader sees either the complete period or none (and then reads
//! raw samples). Late data is taken in by recomputing the last [`RECOMPUTE_HOURS`] hours on
//! every run; older hours are recomputed with `kubemeter rollup --backfill`.
//!
//! Nodes' allocatable is rolled up beside the pods, for capacity in statements by node.
//!
//! Each hour also gets the per-metric rollups of [`crate::jobs::aggregates`] (sums, counts,
//! minima and maxima that the seed's aggregations read).
//!
//! A day is rolled up from its 24 hourly rollups (sums of integers, unions of intervals), only
//! once all 24 are complete, and again whenever one of its hours is rewritten; a week likewise
//! from its 7 days.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::billing::samples::{hour_ceil, hour_floor, NS_PER_HOUR};
use crate::billing::{Allocatable, PodUsage, Window};
use crate::influx::line::LineError;
use crate::influx::InfluxError;
use crate::metering::capacity;
use crate::metering::plan::Piece;
use crate::metering::rollups::{self, EncodeError, Period, Rollup};
use crate::metering::{Metering, Progress, UsageByPod};
use crate::telemetry::error_chain;

/// Hours recomputed on every run: data spooled by a collector while InfluxDB was away, or
/// written by a slow node, lands within this.
pub const RECOMPUTE_HOURS: i64 = 3;

/// How long after the hour the hourly run starts, so the last scrapes of the hour are in.
const SETTLE: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    #[error("could not read or write the billing rollups")]
    Influx(#[from] InfluxError),
    #[error("a billing rollup could not be encoded")]
    Encode(#[from] EncodeError),
    #[error("a billing rollup marker could not be encoded")]
    Marker(#[from] LineError),
    #[error("nothing to roll up: {0}")]
    Window(String),
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollupReport {
    pub hours: usize,
    pub days: usize,
    pub weeks: usize,
    /// Pod-hour points written.
    pub pod_hours: usize,
}

/// The whole hours of `w` (a partial hour at either end is left out: it is not over).
pub fn whole_hours(w: Window) -> Vec<i64> {
    let (first, end) = (hour_ceil(w.from), hour_floor(w.to));
    (first..end).step_by(NS_PER_HOUR as usize).collect()
}

/// Rolls up every whole hour of `w`, then every day and week they belong to that is
/// complete.
#[tracing::instrument(skip_all, fields(from = w.from, to = w.to))]
pub async fn roll_up(
    m: &Metering,
    w: Window,
    progress: &dyn Progress,
) -> Result<RollupReport, RollupError> {
    let hours = whole_hours(w);
    if hours.is_empty() {
        return Err(RollupError::Window(
            "the period holds no whole UTC hour".into(),
        ));
    }
    let days: BTreeSet<i64> = hours.iter().map(|h| Period::Day.floor(*h)).collect();
    let weeks: BTreeSet<i64> = days.iter().map(|d| Period::Week.floor(*d)).collect();
    let total = (hours.len() + days.len() + weeks.len()) as u64;
    let mut done = 0;
    let mut report = RollupReport::default();
    progress.step(0, total);
    for hour in &hours {
        report.pod_hours += roll_up_hour(m, *hour).await?;
        // The seed's aggregations read per-metric hourly rollups of the same hours.
        crate::jobs::aggregates::roll_up_hour(
            &m.influx,
            chrono::DateTime::from_timestamp_nanos(*hour),
        )
        .await?;
        report.hours += 1;
        done += 1;
        progress.step(done, total);
    }
    for (period, starts) in [(Period::Day, &days), (Period::Week, &weeks)] {
        for start in starts {
            if roll_up_from_parts(m, period, *start).await? {
                match period {
                    Period::Week => report.weeks += 1,
                    _ => report.days += 1,
                }
            }
            done += 1;
            progress.step(done, total);
        }
    }
    Ok(report)
}

/// Rolls up the last [`RECOMPUTE_HOURS`] whole hours before `now_ns`.
pub async fn roll_up_recent(
    m: &Metering,
    now_ns: i64,
    progress: &dyn Progress,
) -> Result<RollupReport, RollupError> {
    let end = hour_floor(now_ns);
    let w = Window {
        from: end - RECOMPUTE_HOURS * NS_PER_HOUR,
        to: end,
    };
    roll_up(m, w, progress).await
}

/// Rewrites the rollups of the hour starting at `hour` from raw samples; returns how many
/// pods it holds.
pub async fn roll_up_hour(m: &Metering, hour: i64) -> Result<usize, RollupError> {
    let w = Period::Hour.window(hour);
    let usage = m.raw_chunk(w, &[]).await?;
    let nodes = capacity::node_allocatable(m, w).await?;
    rewrite(m, Period::Hour, hour, &usage, &nodes).await?;
    Ok(usage.len())
}

/// Rewrites the day (or week) starting at `start` from its hours (days) if all of them are
/// complete; `false`, and nothing written, otherwise.
pub async fn roll_up_from_parts(
    m: &Metering,
    period: Period,
    start: i64,
) -> Result<bool, RollupError> {
    let Some((part, count)) = period.parts() else {
        return Ok(false);
    };
    let w = period.window(start);
    if m.marked(w).await?.of(part).len() < count {
        return Ok(false);
    }
    let mut acc = UsageByPod::default();
    acc.add(m.rollups(part, w, &[]).await?);
    let nodes = capacity::allocatable_of(m, &[Piece::Rollups(part, w)]).await?;
    rewrite(m, period, start, &acc.finish(), &nodes).await?;
    Ok(true)
}

/// Deletes the period's marker and points, writes the new points, then the marker.
async fn rewrite(
    m: &Metering,
    period: Period,
    start: i64,
    usage: &[PodUsage],
    nodes: &Allocatable,
) -> Result<(), RollupError> {
    let mut points = String::new();
    capacity::encode(&mut points, period, start, nodes)?;
    for p in usage {
        let r = Rollup {
            identity: p.identity.clone(),
            start,
            usage: p.usage.clone(),
        };
        rollups::encode(&mut points, period, &r)?;
    }
    let mut marker = String::new();
    rollups::encode_marker(
        &mut marker,
        period,
        start,
        usage.len(),
        &m.basis(),
        now_ns(),
    )?;
    m.influx
        .query_each_ns(&rollups::delete(period, start))
        .await?;
    if !points.is_empty() {
        m.influx.write(points).await?;
    }
    m.influx.write(marker).await?;
    Ok(())
}

/// Time until `SETTLE` past the next UTC hour.
fn until_next_run(now_ns: i64) -> Duration {
    let next = hour_floor(now_ns) + NS_PER_HOUR;
    let wait = u64::try_from(next - now_ns).unwrap_or(0);
    Duration::from_nanos(wait) + SETTLE
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// `kubemeter collect`'s rollup loop: once at start, then a little after every UTC hour,
/// until the task is dropped. A failed run is logged and retried at the next hour (its
/// hours are recomputed then).
pub async fn run_every_hour(m: Metering) {
    loop {
        match roll_up_recent(&m, now_ns(), &crate::metering::Quiet).await {
            Ok(r) => tracing::info!(
                hours = r.hours,
                days = r.days,
                weeks = r.weeks,
                pod_hours = r.pod_hours,
                "billing rollups written"
            ),
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "billing rollups failed; retrying next hour")
            }
        }
        tokio::time::sleep(until_next_run(now_ns())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = NS_PER_HOUR;

    #[test]
    fn only_whole_hours_are_rolled_up() {
        let w = Window::new(H / 2, 3 * H + 1).unwrap();
        assert_eq!(whole_hours(w), vec![H, 2 * H]);
        assert!(whole_hours(Window::new(H + 1, 2 * H - 1).unwrap()).is_empty());
    }

    #[test]
    fn the_hourly_run_waits_for_the_next_hour_and_a_little_more() {
        assert_eq!(
            until_next_run(5 * H + H / 4),
            Duration::from_secs(45 * 60) + SETTLE
        );
        assert_eq!(until_next_run(5 * H), Duration::from_secs(3_600) + SETTLE);
    }
}
