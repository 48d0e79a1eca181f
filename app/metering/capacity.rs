//! Node allocatable read from InfluxDB for statements by node ([`crate::billing::capacity`]).
//!
//! A statement reads it piece by piece, like pods' usage: whole periods from the node rollups
//! the rollup job writes beside the pod rollups, everything else from raw samples an hour at a
//! time — per hour the node series (`type=node`) of `cpu/node_allocatable` and
//! `memory/node_allocatable`, plus each one's last sample in the look-back, integrated with the
//! gauge rule.
//!
//! A node rollup is `billing/node_hour|day|week,nodename=<node> cpu="<millicore-ns>",
//! memory="<byte-ns>" <start>`: exact integers as decimal strings (a node's memory over a
//! week is past i64).

use std::collections::BTreeMap;

use chrono::DateTime;
use futures::{StreamExt, TryStreamExt};

use crate::billing::{allocatable, Allocatable, GaugeSample, NodeSamples, Window};
use crate::catalogue::name as m;
use crate::influx::line::{push_tag, write_fields, Field, LineError};
use crate::influx::ql::{Cond, GroupBy, Projection, Select, Source};
use crate::influx::{InfluxError, Series};

use super::plan::{hours, Piece};
use super::rollups::{time_conds, Period};
use super::series::{points, NODE};
use super::Metering;

/// Hours read at once.
const PARALLEL: usize = 4;

const MEASUREMENTS: [&str; 2] = [m::CPU_NODE_ALLOCATABLE, m::MEMORY_NODE_ALLOCATABLE];

/// The statements for hour `w`: per measurement, its samples in `w` and its last sample in
/// the look-back.
fn statements(w: Window, lookback_ns: i64) -> Vec<String> {
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
            s.conditions = vec![
                Cond::TagEq("type".into(), "node".into()),
                Cond::TimeGe(at(from)),
                Cond::TimeLt(at(to)),
            ];
            s.group_by = GroupBy::Tags(vec![NODE.into()]);
            out.push(s.to_influxql());
        }
    }
    out
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

/// Allocatable per node integrated over `w`: the sum of its hours'.
pub async fn node_allocatable(m: &Metering, w: Window) -> Result<Allocatable, InfluxError> {
    let lookback = m.lookback_ns();
    futures::stream::iter(hours(w))
        .map(|h| async move {
            let answers = m.influx.query_each_ns(&statements(h, lookback)).await?;
            Ok::<_, InfluxError>(allocatable(&assemble(&answers), h, m.scrape))
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
        assert_eq!(s.len(), 4);
        assert_eq!(
            s[1],
            "SELECT last(\"value\") AS \"value\" FROM \"cpu/node_allocatable\" \
             WHERE \"type\" = 'node' AND time >= '1970-01-01T00:00:00Z' \
             AND time < '1970-01-01T01:00:00Z' GROUP BY \"nodename\""
        );
        assert!(s[2].contains("FROM \"memory/node_allocatable\""));
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
