//! Which periods are metered completely: one marker point per cluster, period and writer in
//! `billing/metered`, written after the period's rows.
//!
//! `billing/metered,basis=<memory gauge>,cluster_name=<c>,period=<p>,writer=<w>
//! rows=<n>i,shards=<n>i,written=<ns>i,provisional=<bool> <start>`
//!
//! * A period is complete when its rows are: for minutes the collector writes, when every
//!   collector shard has written its marker (`shards` says how many there are); for longer
//!   periods, when the rollup job has.
//! * `provisional`: minutes metered by a collector that had not yet seen the look-back `L`
//!   of samples since it started (a sample's predecessor may have been missed). They are read
//!   like the others, and the rollup job recomputes them from raw samples, which replaces
//!   them with exact ones.
//! * `written` changes with every rewrite, so a reader can tell that a period was rewritten
//!   while it read it.

use std::collections::{BTreeMap, BTreeSet};

use crate::billing::Window;
use crate::catalogue::BILLING_METERED;
use crate::influx::line::{push_tag, write_fields, Field, LineError};
use crate::influx::ql::{Cond, Delete, Projection, Select, Source};
use crate::influx::Series;

use super::period::Period;
use super::rows::{CLUSTER, JOB_WRITER};

const BASIS: &str = "basis";
const PERIOD: &str = "period";
const WRITER: &str = "writer";
const ROWS: &str = "rows";
const SHARDS: &str = "shards";
const WRITTEN: &str = "written";
const PROVISIONAL: &str = "provisional";

/// One writer's marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub rows: i64,
    pub shards: i64,
    pub written: i64,
    pub provisional: bool,
}

/// Appends a marker for the period starting at `start`.
pub fn encode(
    buf: &mut String,
    period: Period,
    start: i64,
    cluster: &str,
    basis: &str,
    writer: &str,
    mark: Mark,
) -> Result<(), LineError> {
    let mut tags = String::new();
    push_tag(&mut tags, BASIS, basis);
    push_tag(&mut tags, CLUSTER, cluster);
    push_tag(&mut tags, PERIOD, period.name());
    push_tag(&mut tags, WRITER, writer);
    write_fields(
        buf,
        BILLING_METERED,
        &tags,
        &[
            (ROWS, Field::Int(mark.rows)),
            (SHARDS, Field::Int(mark.shards)),
            (WRITTEN, Field::Int(mark.written)),
            (PROVISIONAL, Field::Bool(mark.provisional)),
        ],
        start,
    )
}

fn time_conds(w: Window) -> [Cond; 2] {
    Cond::window(w.from, w.to)
}

/// Reads the markers of `period` in `w` made on `basis` (every cluster: the answer is grouped
/// by cluster and writer).
pub fn select(period: Period, w: Window, basis: &str) -> String {
    let mut s = Select::new(
        Projection::Fields(vec![
            ROWS.into(),
            SHARDS.into(),
            WRITTEN.into(),
            PROVISIONAL.into(),
        ]),
        Source::Measurement(BILLING_METERED.into()),
    );
    s.conditions = vec![
        Cond::TagEq(BASIS.into(), basis.into()),
        Cond::TagEq(PERIOD.into(), period.name().into()),
    ];
    s.conditions.extend(time_conds(w));
    s.group_by = crate::influx::ql::GroupBy::Tags(vec![CLUSTER.into(), WRITER.into()]);
    s.to_influxql()
}

/// The latest marker `writer` wrote for `period` of `cluster` on `basis` (its time is the
/// period's start).
pub fn select_latest(period: Period, cluster: &str, writer: &str, basis: &str) -> String {
    let mut s = Select::new(
        Projection::Last {
            field: ROWS.into(),
            alias: ROWS.into(),
        },
        Source::Measurement(BILLING_METERED.into()),
    );
    s.conditions = vec![
        Cond::TagEq(BASIS.into(), basis.into()),
        Cond::TagEq(CLUSTER.into(), cluster.into()),
        Cond::TagEq(PERIOD.into(), period.name().into()),
        Cond::TagEq(WRITER.into(), writer.into()),
    ];
    s.to_influxql()
}

/// Removes every marker of `cluster` for the period starting at `start` (before its rows are
/// rewritten, so no reader takes half-written rows for complete ones).
pub fn delete(period: Period, start: i64, cluster: &str) -> String {
    let mut conditions = vec![
        Cond::TagEq(CLUSTER.into(), cluster.into()),
        Cond::TagEq(PERIOD.into(), period.name().into()),
    ];
    conditions.extend(time_conds(period.window(start)));
    Delete {
        from: BILLING_METERED.into(),
        conditions,
    }
    .to_influxql()
}

/// The complete periods of one length, per cluster: start → marks by writer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    /// cluster → start → writer → mark.
    pub by_cluster: BTreeMap<String, BTreeMap<i64, BTreeMap<String, Mark>>>,
}

impl Marks {
    /// The markers in an answer to [`select`].
    pub fn decode(answer: &[Series]) -> Marks {
        let mut marks = Marks::default();
        for s in answer {
            let cluster = s.tags.get(CLUSTER).cloned().unwrap_or_default();
            let writer = s.tags.get(WRITER).cloned().unwrap_or_default();
            let col = |name: &str| s.columns.iter().position(|c| c == name);
            let (rows, shards, written, provisional) =
                (col(ROWS), col(SHARDS), col(WRITTEN), col(PROVISIONAL));
            for v in &s.values {
                let int = |i: Option<usize>| i.and_then(|i| v.get(i)?.as_i64());
                let Some(start) = v.first().and_then(|t| t.as_i64()) else {
                    continue;
                };
                let mark = Mark {
                    rows: int(rows).unwrap_or(0),
                    shards: int(shards).unwrap_or(1).max(1),
                    written: int(written).unwrap_or(0),
                    provisional: provisional
                        .and_then(|i| v.get(i)?.as_bool())
                        .unwrap_or(false),
                };
                marks
                    .by_cluster
                    .entry(cluster.clone())
                    .or_default()
                    .entry(start)
                    .or_default()
                    .insert(writer.clone(), mark);
            }
        }
        marks
    }

    /// The clusters with any marker.
    pub fn clusters(&self) -> impl Iterator<Item = &String> {
        self.by_cluster.keys()
    }

    /// Starts complete for `cluster`: written by the job, or by every collector shard.
    pub fn complete(&self, cluster: &str) -> BTreeSet<i64> {
        let Some(starts) = self.by_cluster.get(cluster) else {
            return BTreeSet::new();
        };
        starts
            .iter()
            .filter(|(_, writers)| is_complete(writers))
            .map(|(start, _)| *start)
            .collect()
    }

    /// Starts of `cluster` the job marked (its rows are the ones to read).
    pub fn by_job(&self, cluster: &str) -> BTreeSet<i64> {
        self.by_cluster
            .get(cluster)
            .map_or_else(BTreeSet::new, |starts| {
                starts
                    .iter()
                    .filter(|(_, w)| w.contains_key(JOB_WRITER))
                    .map(|(s, _)| *s)
                    .collect()
            })
    }

    /// Starts of `cluster` whose markers are provisional (to be recomputed from raw samples).
    pub fn provisional(&self, cluster: &str) -> BTreeSet<i64> {
        let Some(starts) = self.by_cluster.get(cluster) else {
            return BTreeSet::new();
        };
        starts
            .iter()
            .filter(|(_, w)| is_complete(w) && !w.contains_key(JOB_WRITER))
            .filter(|(_, w)| w.values().any(|m| m.provisional))
            .map(|(start, _)| *start)
            .collect()
    }
}

fn is_complete(writers: &BTreeMap<String, Mark>) -> bool {
    if writers.contains_key(JOB_WRITER) {
        return true;
    }
    let shards = writers.values().map(|m| m.shards).max().unwrap_or(1);
    writers.len() as i64 >= shards
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(cluster: &str, writer: &str, rows: Vec<Vec<serde_json::Value>>) -> Series {
        Series {
            name: BILLING_METERED.into(),
            tags: [
                (CLUSTER.to_string(), cluster.to_string()),
                (WRITER.to_string(), writer.to_string()),
            ]
            .into(),
            columns: vec![
                "time".into(),
                ROWS.into(),
                SHARDS.into(),
                WRITTEN.into(),
                PROVISIONAL.into(),
            ],
            values: rows,
        }
    }

    #[test]
    fn a_minute_is_complete_when_every_shard_has_marked_it_or_the_job_has() {
        use serde_json::json;
        let answer = vec![
            // Minute 0: both shards of two. Minute 60: only shard 0. Minute 120: the job.
            series(
                "c",
                "0",
                vec![
                    vec![json!(0), json!(5), json!(2), json!(1), json!(false)],
                    vec![json!(60), json!(5), json!(2), json!(1), json!(true)],
                ],
            ),
            series(
                "c",
                "1",
                vec![vec![json!(0), json!(4), json!(2), json!(1), json!(true)]],
            ),
            series(
                "c",
                JOB_WRITER,
                vec![vec![json!(120), json!(9), json!(1), json!(2), json!(false)]],
            ),
        ];
        let marks = Marks::decode(&answer);
        assert_eq!(marks.complete("c"), BTreeSet::from([0, 120]));
        assert_eq!(marks.provisional("c"), BTreeSet::from([0]));
        assert!(marks.complete("other").is_empty());
    }

    #[test]
    fn markers_render_exactly() {
        let mut buf = String::new();
        let mark = Mark {
            rows: 12,
            shards: 1,
            written: 5,
            provisional: false,
        };
        encode(
            &mut buf,
            Period::Day,
            0,
            "prod",
            "working_set",
            JOB_WRITER,
            mark,
        )
        .unwrap();
        assert_eq!(
            buf,
            "billing/metered,basis=working_set,cluster_name=prod,period=day,writer=job \
             rows=12i,shards=1i,written=5i,provisional=false 0\n"
        );
        let w = Window::new(0, 60_000_000_000).unwrap();
        assert_eq!(
            select(Period::Minute, w, "usage"),
            "SELECT \"rows\", \"shards\", \"written\", \"provisional\" FROM \"billing/metered\" \
             WHERE \"basis\" = 'usage' AND \"period\" = 'minute' AND \
             time >= '1970-01-01T00:00:00Z' AND time < '1970-01-01T00:01:00Z' \
             GROUP BY \"cluster_name\", \"writer\""
        );
    }
}
