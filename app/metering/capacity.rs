//! Node allocatable from raw samples, for statements by node ([`crate::billing::capacity`]):
//! per hour the node series (`type=node`) of `cpu/node_allocatable` and
//! `memory/node_allocatable`, plus each one's last sample in the look-back, integrated with
//! the gauge rule. Metering keeps it in node rows beside the pods' ([`super::rows`]); this is
//! what they are computed from and checked against.

use std::collections::BTreeMap;

use chrono::DateTime;
use futures::{StreamExt, TryStreamExt};

use crate::billing::{allocatable, Allocatable, GaugeSample, NodeSamples, Window};
use crate::catalogue::name as m;
use crate::influx::ql::{Cond, GroupBy, Projection, Select, Source};
use crate::influx::{InfluxError, Series};

use super::plan::hours;
use super::series::{points, NODE};
use super::Metering;

/// Hours read at once.
const PARALLEL: usize = 4;

const MEASUREMENTS: [&str; 2] = [m::CPU_NODE_ALLOCATABLE, m::MEMORY_NODE_ALLOCATABLE];

/// The statements for hour `w`: per measurement, its samples in `w` and its last sample in
/// the look-back.
fn statements(w: Window, lookback_ns: i64, conds: &[Cond]) -> Vec<String> {
    let at = DateTime::from_timestamp_nanos;
    let mut out = Vec::new();
    for name in MEASUREMENTS {
        for (projection, from, to) in [
            (Projection::Fields(vec!["value".into()]), w.from, w.to),
            (
                Projection::Last {
                    field: "value".into(),
                    alias: "value".into(),
                },
                w.from - lookback_ns,
                w.from,
            ),
        ] {
            let mut s = Select::new(projection, Source::Measurement(name.into()));
            s.conditions = vec![Cond::TagEq("type".into(), "node".into())];
            s.conditions.extend(conds.iter().cloned());
            s.conditions
                .extend([Cond::TimeGe(at(from)), Cond::TimeLt(at(to))]);
            s.group_by = GroupBy::Tags(vec![NODE.into()]);
            out.push(s.to_influxql());
        }
    }
    out
}

/// The node series capacity reads: `cpu/node_allocatable`, `memory/node_allocatable`.
pub const NODE_SERIES: [&str; 2] = MEASUREMENTS;

/// Per-node samples from series already in hand (the collector's points): those of
/// [`NODE_SERIES`], in that order.
pub fn assemble_series(cpu: Vec<Series>, memory: Vec<Series>) -> Vec<NodeSamples> {
    assemble(&[cpu, Vec::new(), memory, Vec::new()])
}

/// Per-node samples from the answers to [`statements`] (same order).
fn assemble(answers: &[Vec<Series>]) -> Vec<NodeSamples> {
    let mut nodes: BTreeMap<String, NodeSamples> = BTreeMap::new();
    for (i, answer) in answers.iter().enumerate() {
        for series in answer {
            let node = series.tags.get(NODE).cloned().unwrap_or_default();
            let n = nodes.entry(node.clone()).or_insert_with(|| NodeSamples {
                node,
                cpu_allocatable: Vec::new(),
                memory_allocatable: Vec::new(),
            });
            let samples = if i < 2 {
                &mut n.cpu_allocatable
            } else {
                &mut n.memory_allocatable
            };
            samples.extend(points(series).map(|(t, value)| GaugeSample {
                t,
                value,
                request: 0,
            }));
        }
    }
    let mut out: Vec<NodeSamples> = nodes.into_values().collect();
    for n in &mut out {
        n.cpu_allocatable.sort_by_key(|s| s.t);
        n.memory_allocatable.sort_by_key(|s| s.t);
    }
    out
}

/// Nodes' samples of hour `w` and its look-back, from raw samples restricted by `conds`.
pub async fn node_samples(
    m: &Metering,
    w: Window,
    conds: &[Cond],
) -> Result<Vec<NodeSamples>, InfluxError> {
    let answers = m
        .influx
        .query_each_ns(&statements(w, m.lookback_ns(), conds))
        .await?;
    Ok(assemble(&answers))
}

/// Allocatable per node integrated over `w` from raw samples: the sum of its hours'.
pub async fn node_allocatable(m: &Metering, w: Window) -> Result<Allocatable, InfluxError> {
    futures::stream::iter(hours(w))
        .map(|h| async move {
            let nodes = node_samples(m, h, &[]).await?;
            Ok::<_, InfluxError>(allocatable(&nodes, h, m.scrape))
        })
        .buffered(PARALLEL)
        .try_fold(Allocatable::new(), |mut total, hour| async move {
            for (node, (cpu, memory)) in hour {
                let e = total.entry(node).or_default();
                e.0 += cpu;
                e.1 += memory;
            }
            Ok(total)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_reads_both_allocatables_of_node_series_with_their_look_back() {
        let h = 3_600_000_000_000;
        let s = statements(Window { from: h, to: 2 * h }, h, &[]);
        assert_eq!(s.len(), 4);
        assert_eq!(
            s[1],
            "SELECT last(\"value\") AS \"value\" FROM \"cpu/node_allocatable\" \
             WHERE \"type\" = 'node' AND time >= '1970-01-01T00:00:00Z' \
             AND time < '1970-01-01T01:00:00Z' GROUP BY \"nodename\""
        );
        assert!(s[2].contains("FROM \"memory/node_allocatable\""));
    }
}
