//! Node allocatable from raw samples, for statements by node ([`crate::billing::capacity`]):
//! per hour the node series (`type=node`) of `cpu/node_allocatable` and
//! `memory/node_allocatable`, plus each one's last two samples in the look-back and the
//! collector's interval records, integrated with the gauge rule in each sample's own nominal
//! interval (as pods' samples are, see [`super::raw`]). Metering keeps it in node rows beside
//! the pods' ([`super::rows`]); this is what they are computed from and checked against.

use std::collections::BTreeMap;

use chrono::DateTime;
use futures::{StreamExt, TryStreamExt};

use crate::billing::{allocatable, nominal, Allocatable, GaugeSample, NodeSamples, Window};
use crate::catalogue::name as m;
use crate::influx::ql::{Cond, GroupBy, Projection, Select, Source};
use crate::influx::{InfluxError, Series};

use super::plan::hours;
use super::raw::{interval_statements, recorded_intervals, tail_pieces, Recorded};
use super::series::{points, NODE};
use super::Metering;

/// Hours read at once.
const PARALLEL: usize = 4;

const MEASUREMENTS: [&str; 2] = [m::CPU_NODE_ALLOCATABLE, m::MEMORY_NODE_ALLOCATABLE];

/// The statements for hour `w`: per measurement, its samples in `w` and its last two samples
/// in the look-back (restricted by `conds`); then the collector's interval records.
fn statements(w: Window, lookback_ns: i64, conds: &[Cond]) -> Vec<String> {
    let at = DateTime::from_timestamp_nanos;
    let mut out = Vec::new();
    for name in MEASUREMENTS {
        for (from, to, last) in [
            (w.from, w.to, None),
            (w.from.saturating_sub(lookback_ns), w.from, Some(2)),
        ] {
            let mut s = Select::new(
                Projection::Fields(vec!["value".into()]),
                Source::Measurement(name.into()),
            );
            s.conditions = vec![Cond::TagEq("type".into(), "node".into())];
            s.conditions.extend(conds.iter().cloned());
            s.conditions
                .extend([Cond::TimeGe(at(from)), Cond::TimeLt(at(to))]);
            s.group_by = GroupBy::Tags(vec![NODE.into()]);
            s.newest_first = last.is_some();
            s.limit = last;
            out.push(s.to_influxql());
        }
    }
    out.extend(interval_statements(w, lookback_ns));
    out
}

/// Per-node samples from the answers to [`statements`] (same order), each with its nominal
/// interval, cut where samples are more than the look-back apart (the later pieces are nodes
/// of their own with the same name, which [`allocatable`] adds back together).
fn assemble(answers: &[Vec<Series>], lookback_ns: i64) -> Vec<NodeSamples> {
    let recorded: Recorded = recorded_intervals(answers.iter().skip(4).flatten());
    let mut nodes: BTreeMap<String, [Vec<(i64, u64)>; 2]> = BTreeMap::new();
    for (i, answer) in answers.iter().take(4).enumerate() {
        for series in answer {
            let node = series.tags.get(NODE).cloned().unwrap_or_default();
            nodes.entry(node).or_default()[i / 2].extend(points(series));
        }
    }
    let mut out = Vec::new();
    for (node, mut lists) in nodes {
        let rec = recorded.get(&node).map_or(&[][..], Vec::as_slice);
        let [cpu, memory] = lists.each_mut().map(|points| {
            points.sort_unstable();
            points.dedup_by_key(|(t, _)| *t);
            let times: Vec<i64> = points.iter().map(|(t, _)| *t).collect();
            let mut samples: Vec<GaugeSample> = points
                .iter()
                .zip(nominal::assign(&times, rec, lookback_ns))
                .map(|(&(t, value), nominal)| GaugeSample {
                    t,
                    value,
                    request: 0,
                    nominal,
                })
                .collect();
            let rest = tail_pieces(&mut samples, |s| s.t, lookback_ns);
            (samples, rest)
        });
        let piece = |cpu_allocatable, memory_allocatable| NodeSamples {
            node: node.clone(),
            cpu_allocatable,
            memory_allocatable,
        };
        out.push(piece(cpu.0, memory.0));
        out.extend(cpu.1.into_iter().map(|c| piece(c, Vec::new())));
        out.extend(memory.1.into_iter().map(|m| piece(Vec::new(), m)));
    }
    out
}

/// The node series capacity reads: `cpu/node_allocatable`, `memory/node_allocatable`.
pub const NODE_SERIES: [&str; 2] = MEASUREMENTS;

/// Per-node samples from series already in hand (the collector's points): those of
/// [`NODE_SERIES`] in that order, and the collector's interval records.
pub fn assemble_series(
    cpu: Vec<Series>,
    memory: Vec<Series>,
    intervals: Vec<Series>,
    lookback_ns: i64,
) -> Vec<NodeSamples> {
    assemble(
        &[cpu, Vec::new(), memory, Vec::new(), intervals],
        lookback_ns,
    )
}

/// Nodes' samples of hour `w` and its look-back, from raw samples restricted by `conds`.
pub async fn node_samples(
    m: &Metering,
    w: Window,
    conds: &[Cond],
) -> Result<Vec<NodeSamples>, InfluxError> {
    let lookback = m.lookback_ns();
    let answers = m
        .influx
        .query_each_ns(&statements(w, lookback, conds))
        .await?;
    Ok(assemble(&answers, lookback))
}

/// Allocatable per node integrated over `w` from raw samples: the sum of its hours'.
pub async fn node_allocatable(m: &Metering, w: Window) -> Result<Allocatable, InfluxError> {
    futures::stream::iter(hours(w))
        .map(|h| async move {
            let nodes = node_samples(m, h, &[]).await?;
            Ok::<_, InfluxError>(allocatable(&nodes, h))
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
        assert_eq!(s.len(), 6);
        assert_eq!(
            s[1],
            "SELECT \"value\" FROM \"cpu/node_allocatable\" \
             WHERE \"type\" = 'node' AND time >= '1970-01-01T00:00:00Z' \
             AND time < '1970-01-01T01:00:00Z' GROUP BY \"nodename\" ORDER BY time DESC LIMIT 2"
        );
        assert!(s[2].contains("FROM \"memory/node_allocatable\""));
        assert!(s[4].contains("FROM \"collector/interval\""));
    }

    /// A node series of `measurement` as InfluxDB answers it.
    fn series(name: &str, node: &str, rows: &[(i64, u64)]) -> Series {
        Series {
            name: name.into(),
            tags: [("nodename".to_string(), node.to_string())].into(),
            columns: vec!["time".into(), "value".into()],
            values: rows
                .iter()
                .map(|(t, v)| vec![(*t).into(), (*v).into()])
                .collect(),
        }
    }

    #[test]
    fn node_allocatable_is_integrated_in_the_interval_recorded_for_the_node() {
        // n1: 4 000 m at 60 s and 120 s (the first from the look-back), the collector
        // recording 60 s from 0 s: (60 s, 120 s] holds 4 000 m; n2, without records, at 60 s
        // and 120 s: the second is bridged to the first (one predecessor: its own gap).
        // Hour [90 s, 1 h + 90 s): 60 s × 4 000 m on each node.
        let s = 1_000_000_000;
        let answers = vec![
            vec![
                series("cpu/node_allocatable", "n1", &[(120 * s, 4_000)]),
                series("cpu/node_allocatable", "n2", &[(120 * s, 4_000)]),
            ],
            vec![
                series("cpu/node_allocatable", "n1", &[(60 * s, 4_000)]),
                series("cpu/node_allocatable", "n2", &[(60 * s, 4_000)]),
            ],
            vec![],
            vec![],
            vec![],
            vec![series("collector/interval", "n1", &[(0, 60 * s as u64)])],
        ];
        let h = 3_600 * s;
        let nodes = assemble(&answers, h);
        assert_eq!(nodes[0].cpu_allocatable[0].nominal, Some(60 * s));
        assert_eq!(nodes[1].cpu_allocatable[0].nominal, None);
        assert_eq!(nodes[1].cpu_allocatable[1].nominal, Some(60 * s));
        let w = Window::new(90 * s, h + 90 * s).unwrap();
        let total = allocatable(&nodes, w);
        assert_eq!(total["n1"].0, 4_000 * 60 * s as u128);
        assert_eq!(total["n2"].0, 4_000 * 60 * s as u128);
    }
}
