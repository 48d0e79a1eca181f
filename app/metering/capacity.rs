//! Node allocatable read from InfluxDB for statements by node ([`crate::billing::capacity`]).
//!
//! A statement reads it piece by piece, like pods' usage: whole periods from the node rollups
//! the rollup job writes beside the pod rollups, everything else from raw samples an hour at a
//! time — per hour the node series (`type=node`) of `cpu/node_allocatable` and
//! `memory/node_allocatable`, plus each one's last two samples in the look-back and the
//! collector's interval records, integrated with the gauge rule in each sample's own nominal
//! interval (as pods' samples are, see [`super::raw`]).
//!
//! A node rollup is `billing/node_hour|day|week,nodename=<node> cpu="<millicore-ns>",
//! memory="<byte-ns>" <start>`: exact integers as decimal strings (a node's memory over a
//! week is past i64).

use std::collections::BTreeMap;

use chrono::DateTime;
use futures::{StreamExt, TryStreamExt};

use crate::billing::{allocatable, nominal, Allocatable, GaugeSample, NodeSamples, Window};
use crate::catalogue::name as m;
use crate::influx::line::{push_tag, write_fields, Field, LineError};
use crate::influx::ql::{Cond, GroupBy, Projection, Select, Source};
use crate::influx::{InfluxError, Series};

use super::plan::{hours, Piece};
use super::raw::{interval_statements, recorded_intervals, tail_pieces, Recorded};
use super::rollups::{time_conds, Period};
use super::series::{points, NODE};
use super::Metering;

/// Hours read at once.
const PARALLEL: usize = 4;

const MEASUREMENTS: [&str; 2] = [m::CPU_NODE_ALLOCATABLE, m::MEMORY_NODE_ALLOCATABLE];

/// The statements for hour `w`: per measurement, its samples in `w` and its last two samples
/// in the look-back; then the collector's interval records.
fn statements(w: Window, lookback_ns: i64) -> Vec<String> {
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
            s.conditions = vec![
                Cond::TagEq("type".into(), "node".into()),
                Cond::TimeGe(at(from)),
                Cond::TimeLt(at(to)),
            ];
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

/// Allocatable per node integrated over `w`: the sum of its hours'.
pub async fn node_allocatable(m: &Metering, w: Window) -> Result<Allocatable, InfluxError> {
    let lookback = m.lookback_ns();
    futures::stream::iter(hours(w))
        .map(|h| async move {
            let answers = m.influx.query_each_ns(&statements(h, lookback)).await?;
            Ok::<_, InfluxError>(allocatable(&assemble(&answers, lookback), h))
        })
        .buffered(PARALLEL)
        .try_fold(Allocatable::new(), |mut total, hour| async move {
            add(&mut total, hour);
            Ok(total)
        })
        .await
}

/// Allocatable per node over the pieces of a window: rollups where the pieces are whole
/// periods, raw samples elsewhere.
pub async fn allocatable_of(m: &Metering, pieces: &[Piece]) -> Result<Allocatable, InfluxError> {
    let mut total = Allocatable::new();
    for piece in pieces {
        let part = match *piece {
            Piece::Raw(w) => node_allocatable(m, w).await?,
            Piece::Rollups(period, w) => {
                let answers = m.influx.query_each_ns(&[select(period, w)]).await?;
                decode(answers.iter().flatten())
            }
        };
        add(&mut total, part);
    }
    Ok(total)
}

fn add(total: &mut Allocatable, part: Allocatable) {
    for (node, amounts) in part {
        add_one(total, node, amounts);
    }
}

fn add_one(total: &mut Allocatable, node: String, (cpu, memory): (u128, u128)) {
    let e = total.entry(node).or_default();
    e.0 += cpu;
    e.1 += memory;
}

/// Appends one node rollup point per node.
pub fn encode(
    buf: &mut String,
    period: Period,
    start: i64,
    nodes: &Allocatable,
) -> Result<(), LineError> {
    for (node, (cpu, memory)) in nodes {
        let mut tags = String::new();
        push_tag(&mut tags, NODE, node);
        let (cpu, memory) = (cpu.to_string(), memory.to_string());
        write_fields(
            buf,
            period.node_measurement(),
            &tags,
            &[("cpu", Field::Str(&cpu)), ("memory", Field::Str(&memory))],
            start,
        )?;
    }
    Ok(())
}

/// Reads the node rollups of `period` starting in `w`.
pub fn select(period: Period, w: Window) -> String {
    let mut s = Select::new(
        Projection::Fields(vec!["cpu".into(), "memory".into()]),
        Source::Measurement(period.node_measurement().into()),
    );
    s.conditions = time_conds(w).to_vec();
    s.group_by = GroupBy::Tags(vec![NODE.into()]);
    s.to_influxql()
}

/// Node rollups (answers to [`select`]) summed per node; rows this code did not write are
/// skipped.
pub fn decode<'a>(series: impl Iterator<Item = &'a Series>) -> Allocatable {
    let mut total = Allocatable::new();
    for s in series {
        let node = s.tags.get(NODE).cloned().unwrap_or_default();
        let field = |name: &str| s.columns.iter().position(|c| c == name);
        let (Some(cpu), Some(memory)) = (field("cpu"), field("memory")) else {
            continue;
        };
        let int = |row: &[serde_json::Value], i: usize| row.get(i)?.as_str()?.parse::<u128>().ok();
        for row in &s.values {
            if let (Some(c), Some(mem)) = (int(row, cpu), int(row, memory)) {
                add_one(&mut total, node.clone(), (c, mem));
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_reads_both_allocatables_of_node_series_with_their_look_back() {
        let h = 3_600_000_000_000;
        let s = statements(Window { from: h, to: 2 * h }, h);
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

    #[test]
    fn a_node_rollup_keeps_integers_past_i64_and_reads_back_summed() {
        // 1 TiB for a week in byte-ns: 6.6 × 10²⁶, far past i64.
        let week = (1u128 << 40) * 7 * 86_400 * 1_000_000_000;
        let nodes = Allocatable::from([("n1".to_string(), (4_000 * 3_600, week))]);
        let mut buf = String::new();
        encode(&mut buf, Period::Week, 0, &nodes).unwrap();
        assert_eq!(
            buf,
            format!("billing/node_week,nodename=n1 cpu=\"14400000\",memory=\"{week}\" 0\n")
        );
        let series = Series {
            name: "billing/node_week".into(),
            tags: [("nodename".to_string(), "n1".to_string())].into(),
            columns: vec!["time".into(), "cpu".into(), "memory".into()],
            values: vec![
                vec![0.into(), "14400000".into(), week.to_string().into()],
                vec![1.into(), "1".into(), "2".into()],
                vec![2.into(), serde_json::Value::Null, "2".into()],
            ],
        };
        assert_eq!(
            decode([series].iter()),
            Allocatable::from([("n1".to_string(), (14_400_001, week + 2))])
        );
    }
}
