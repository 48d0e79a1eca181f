//! The metering job: keeps every period's rows complete and exact (schema in
//! [`crate::metering::rows`], markers in [`crate::metering::markers`]).
//!
//! * **Minutes** are metered by the collector as it scrapes. Minutes it marks provisional (it
//!   had not yet seen the look-back of samples since it started) are recomputed here from raw
//!   samples, and so is any window `kubemeter rollup --backfill` names (data another program
//!   wrote: Heapster's, the old kube_monitoring app's).
//! * **Ten minutes, hours, days, weeks** are made from their parts once all parts are
//!   complete — sums of integers and unions of intervals, never means — and again whenever a
//!   part was rewritten after them. This reads a few small rows per pod, not raw samples.
//!
//! Idempotent: a rewrite deletes the period's markers and rows, writes the rows and then the
//! marker, so a reader sees the complete period or a gap (and statements re-read a period
//! whose marker changed under them). Each hour also gets the per-metric rollups of
//! [`crate::jobs::aggregates`] (what the old app's aggregations read).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::billing::slices::{node_slices, pod_slices};
use crate::billing::{PodIdentity, Usage, Window};
use crate::influx::line::LineError;
use crate::influx::ql::Cond;
use crate::influx::InfluxError;
use crate::metering::markers::{self, Mark, Marks};
use crate::metering::period::Period;
use crate::metering::plan::hours;
use crate::metering::rows::{
    self, namespace_rows, EncodeError, Kind, NodeRow, PeriodRows, Slice, UsageRow, CLUSTER,
    JOB_WRITER,
};
use crate::metering::{capacity, Metering, Progress};
use crate::telemetry::error_chain;

/// How far back each run looks for periods to complete: a collector's spooled data and late
/// samples land within this.
pub const RECENT_HOURS: i64 = 3;

/// How far back each run looks for provisional minutes (a collector marks the minutes since
/// its previous run stopped, up to a day).
pub const PROVISIONAL_HOURS: i64 = 25;

/// How often `collect` runs the job.
const EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    #[error("could not read or write the metered rows")]
    Influx(#[from] InfluxError),
    #[error("a metered row could not be encoded")]
    Encode(#[from] EncodeError),
    #[error("a marker could not be encoded")]
    Marker(#[from] LineError),
    #[error("nothing to meter: {0}")]
    Window(String),
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupReport {
    /// Minutes computed from raw samples.
    pub minutes: usize,
    /// Periods made from their parts, by length.
    pub made: BTreeMap<Period, usize>,
    /// Pod rows written.
    pub pod_rows: usize,
}

impl RollupReport {
    pub fn made(&self, period: Period) -> usize {
        self.made.get(&period).copied().unwrap_or(0)
    }
}

/// The whole hours of `w` (a partial hour at either end is left out: it is not over).
pub fn whole_hours(w: Window) -> Vec<i64> {
    Period::Hour.starts_within(w).collect()
}

/// The cluster data without a `cluster_name` tag is metered as (Heapster's default name).
pub const DEFAULT_CLUSTER: &str = "default";

/// The clusters whose raw samples `kubemeter rollup` meters: every `cluster_name` in the
/// database, and [`DEFAULT_CLUSTER`] for data written without one.
pub async fn clusters(m: &Metering) -> Result<Vec<String>, InfluxError> {
    let q = format!(
        "SHOW TAG VALUES WITH KEY = {}",
        crate::influx::ql::ident(CLUSTER)
    );
    let answer = m.influx.query(&q).await?;
    let mut out: Vec<String> = answer
        .iter()
        .flat_map(|s| s.values.iter())
        .filter_map(|row| row.get(1)?.as_str().map(str::to_string))
        .collect();
    out.push(DEFAULT_CLUSTER.to_string());
    out.sort();
    out.dedup();
    Ok(out)
}

/// Meters every whole minute of `w` for `cluster` from raw samples, then makes every longer
/// period those minutes complete (backfill).
pub async fn roll_up(
    m: &Metering,
    cluster: &str,
    w: Window,
    progress: &dyn Progress,
) -> Result<RollupReport, RollupError> {
    let minutes: BTreeSet<i64> = Period::Minute.starts_within(w).collect();
    if minutes.is_empty() {
        return Err(RollupError::Window(
            "the period holds no whole minute".into(),
        ));
    }
    let mut report = RollupReport {
        minutes: recompute(m, cluster, &minutes, progress).await?,
        ..RollupReport::default()
    };
    cascade(m, cluster, w, &mut report).await?;
    Ok(report)
}

/// Recomputes `minutes` of `cluster` from raw samples, an hour of samples at a time; returns
/// how many.
pub async fn recompute(
    m: &Metering,
    cluster: &str,
    minutes: &BTreeSet<i64>,
    progress: &dyn Progress,
) -> Result<usize, RollupError> {
    let (Some(first), Some(last)) = (minutes.first(), minutes.last()) else {
        return Ok(0);
    };
    let span = Window {
        from: *first,
        to: last + Period::Minute.len_ns(),
    };
    let chunks: Vec<Window> = hours(span)
        .into_iter()
        .filter(|h| minutes.range(h.from..h.to).next().is_some())
        .collect();
    let total = chunks.len() as u64;
    progress.step(0, total);
    let conds = [cluster_condition(cluster)];
    let mut done = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        let these: Vec<i64> = minutes.range(chunk.from..chunk.to).copied().collect();
        let pods = m.raw_samples(*chunk, &conds).await?;
        let nodes = capacity::node_samples(m, *chunk, &conds).await?;
        let mut periods = Vec::with_capacity(these.len());
        for start in &these {
            let w = Period::Minute.window(*start);
            let pods = pod_slices(&pods, w)
                .into_iter()
                .map(|p| UsageRow {
                    identity: p.identity,
                    usage: Usage::default(),
                    slices: p
                        .slices
                        .into_iter()
                        .map(|(at, usage)| Slice { at, usage })
                        .collect(),
                })
                .collect();
            let nodes = node_slices(&nodes, w)
                .into_iter()
                .map(|(node, slices)| NodeRow {
                    cpu: slices.iter().map(|s| s.1).sum(),
                    memory: slices.iter().map(|s| s.2).sum(),
                    node,
                    slices,
                })
                .collect();
            periods.push((
                *start,
                PeriodRows {
                    pods,
                    namespaces: Vec::new(),
                    nodes,
                },
            ));
        }
        rewrite(m, cluster, Period::Minute, &periods).await?;
        done += these.len();
        progress.step(i as u64 + 1, total);
    }
    Ok(done)
}

/// The raw series of `cluster`; for [`DEFAULT_CLUSTER`] also those without a `cluster_name`.
fn cluster_condition(cluster: &str) -> Cond {
    if cluster == DEFAULT_CLUSTER {
        Cond::TagIn(CLUSTER.into(), vec![cluster.to_string(), String::new()])
    } else {
        Cond::TagEq(CLUSTER.into(), cluster.into())
    }
}

/// Deletes the markers and rows of `periods` (all of one length), writes their rows, then
/// their markers; each step one request for all of them.
async fn rewrite(
    m: &Metering,
    cluster: &str,
    period: Period,
    periods: &[(i64, PeriodRows)],
) -> Result<(), RollupError> {
    if periods.is_empty() {
        return Ok(());
    }
    let mut deletes: Vec<String> = periods
        .iter()
        .map(|(start, _)| markers::delete(period, *start, cluster))
        .collect();
    deletes.extend(
        periods
            .iter()
            .map(|(start, _)| rows::delete(period, *start, cluster)),
    );
    m.influx.query_each_ns(&deletes).await?;
    let mut points = String::new();
    for (start, r) in periods {
        rows::encode(&mut points, period, *start, cluster, JOB_WRITER, r)?;
    }
    if !points.is_empty() {
        m.influx.write(points).await?;
    }
    let mut marks = String::new();
    let written = now_ns();
    for (start, r) in periods {
        let mark = Mark {
            rows: r.pods.len() as i64,
            shards: 1,
            written,
            provisional: false,
        };
        markers::encode(
            &mut marks,
            period,
            *start,
            cluster,
            &m.basis(),
            JOB_WRITER,
            mark,
        )?;
    }
    m.influx.write(marks).await?;
    Ok(())
}

/// Makes every ten minutes, hour, day and week touching `w` whose parts are all complete
/// and that is not complete itself, or whose parts were rewritten after it.
pub async fn cascade(
    m: &Metering,
    cluster: &str,
    w: Window,
    report: &mut RollupReport,
) -> Result<(), RollupError> {
    for period in [Period::TenMinutes, Period::Hour, Period::Day, Period::Week] {
        let Some((part, count)) = period.parts() else {
            continue;
        };
        let span = Window {
            from: period.floor(w.from),
            to: period
                .floor(w.to.saturating_sub(1))
                .saturating_add(period.len_ns()),
        };
        let basis = m.basis();
        let answers = m
            .influx
            .query_each_ns(&[
                markers::select(period, span, &basis),
                markers::select(part, span, &basis),
            ])
            .await?;
        let (wholes, parts) = (Marks::decode(&answers[0]), Marks::decode(&answers[1]));
        let due: Vec<i64> = Period::starts_within(period, span)
            .filter(|start| is_due(&wholes, &parts, cluster, period, *start, count))
            .collect();
        let mut made = Vec::with_capacity(due.len());
        for start in due {
            made.push((start, from_parts(m, cluster, period, start, part).await?));
        }
        report.pod_rows += made.iter().map(|(_, r)| r.pods.len()).sum::<usize>();
        *report.made.entry(period).or_default() += made.len();
        rewrite(m, cluster, period, &made).await?;
        if period == Period::Hour {
            for (start, _) in &made {
                // The old app's aggregations read per-metric hourly rollups of the same hours.
                let hour = chrono::DateTime::from_timestamp_nanos(*start);
                crate::jobs::aggregates::roll_up_hour(&m.influx, hour).await?;
            }
        }
    }
    Ok(())
}

/// Whether the period at `start` must be made: all its parts complete, and it is not, or a
/// part was written after it.
fn is_due(
    wholes: &Marks,
    parts: &Marks,
    cluster: &str,
    period: Period,
    start: i64,
    count: usize,
) -> bool {
    let w = period.window(start);
    let complete_parts = parts.complete(cluster);
    if complete_parts.range(w.from..w.to).count() < count {
        return false;
    }
    let written = |marks: &Marks, s: i64| -> i64 {
        marks
            .by_cluster
            .get(cluster)
            .and_then(|m| m.get(&s))
            .map_or(0, |writers| {
                writers.values().map(|m| m.written).max().unwrap_or(0)
            })
    };
    if !wholes.complete(cluster).contains(&start) {
        return true;
    }
    let made_at = written(wholes, start);
    complete_parts
        .range(w.from..w.to)
        .any(|s| written(parts, *s) > made_at)
}

/// The rows of the period at `start`, from its parts' rows: pods' and nodes' added up (slices
/// dropped), namespaces' from the pods'.
async fn from_parts(
    m: &Metering,
    cluster: &str,
    period: Period,
    start: i64,
    part: Period,
) -> Result<PeriodRows, InfluxError> {
    let w = period.window(start);
    let answers = m
        .influx
        .query_each_ns(&[
            rows::select(part, w, cluster, Kind::Pod),
            rows::select(part, w, cluster, Kind::Node),
        ])
        .await?;
    let mut pods: BTreeMap<PodIdentity, Usage> = BTreeMap::new();
    for (_, row) in rows::decode_usage(part, &answers[0]) {
        pods.entry(row.identity).or_default().merge(&row.usage);
    }
    let mut nodes: BTreeMap<String, (u128, u128)> = BTreeMap::new();
    for (_, row) in rows::decode_nodes(part, &answers[1]) {
        let e = nodes.entry(row.node).or_default();
        e.0 += row.cpu;
        e.1 += row.memory;
    }
    let pods: Vec<UsageRow> = pods
        .into_iter()
        .filter(|(_, u)| !u.is_empty())
        .map(|(identity, usage)| UsageRow {
            identity,
            usage,
            slices: Vec::new(),
        })
        .collect();
    Ok(PeriodRows {
        namespaces: namespace_rows(&pods),
        pods,
        nodes: nodes
            .into_iter()
            .map(|(node, (cpu, memory))| NodeRow {
                node,
                cpu,
                memory,
                slices: Vec::new(),
            })
            .collect(),
    })
}

/// One run of `collect`'s job for `cluster`: recompute the provisional minutes of the last
/// [`PROVISIONAL_HOURS`] from raw samples, then complete the periods of the last
/// [`RECENT_HOURS`] and those the recomputed minutes belong to.
pub async fn run_recent(
    m: &Metering,
    cluster: &str,
    now: i64,
    progress: &dyn Progress,
) -> Result<RollupReport, RollupError> {
    let hour = Period::Hour.len_ns();
    let end = Period::Minute.floor(now);
    let look = Window {
        from: Period::Hour.floor(now) - PROVISIONAL_HOURS * hour,
        to: end,
    };
    let answer = m
        .influx
        .query_each_ns(&[markers::select(Period::Minute, look, &m.basis())])
        .await?;
    let provisional = Marks::decode(&answer[0]).provisional(cluster);
    let mut report = RollupReport {
        minutes: recompute(m, cluster, &provisional, progress).await?,
        ..RollupReport::default()
    };
    let recent = Period::Hour.floor(now) - RECENT_HOURS * hour;
    let from = provisional.first().map_or(recent, |p| (*p).min(recent));
    cascade(m, cluster, Window { from, to: end }, &mut report).await?;
    Ok(report)
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// `kubemeter collect`'s metering loop for its cluster: every minute, until the task is
/// dropped. A failed run is logged and retried at the next.
pub async fn run_every_minute(m: Metering, cluster: String) {
    loop {
        match run_recent(&m, &cluster, now_ns(), &crate::metering::Quiet).await {
            Ok(r) if r.minutes > 0 || !r.made.is_empty() => tracing::info!(
                minutes = r.minutes,
                ten_minutes = r.made(Period::TenMinutes),
                hours = r.made(Period::Hour),
                days = r.made(Period::Day),
                weeks = r.made(Period::Week),
                "metered periods completed"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "metering job failed; retrying in a minute")
            }
        }
        tokio::time::sleep(EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::samples::NS_PER_HOUR;

    const H: i64 = NS_PER_HOUR;

    #[test]
    fn only_whole_hours_are_listed() {
        let w = Window::new(H / 2, 3 * H + 1).unwrap();
        assert_eq!(whole_hours(w), vec![H, 2 * H]);
        assert!(whole_hours(Window::new(H + 1, 2 * H - 1).unwrap()).is_empty());
    }
}
