//! Metering at ingest: as the collector writes each round's points, it keeps the few recent
//! points of every series billing reads, and once a minute is over it meters it — the same
//! assembly and the same pure functions a read of raw samples goes through, so the minute rows
//! are exactly what `kubemeter rollup` would compute from InfluxDB — and writes the rows and a
//! marker through the same writer (spooled like everything else when InfluxDB is away).
//!
//! What it keeps per series: the points not yet metered plus the two before them (a sample's
//! predecessor, and the one before for the interval), dropping what is older than the look-back
//! `L`. A minute is metered once a round that started [`FLUSH_DELAY_NS`] after its end has been
//! read. Minutes metered before the meter has seen `L` of samples since it started are marked
//! provisional (a predecessor may be missing), and so is a minute a late sample arrives for;
//! the metering job recomputes those from raw samples.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::billing::slices::{node_slices, pod_slices};
use crate::billing::Usage;
use crate::catalogue::COLLECTOR_INTERVAL;
use crate::influx::line::{measurement_of, parse_point};
use crate::influx::Series;
use crate::metering::markers::{self, Mark};
use crate::metering::period::Period;
use crate::metering::rows::{self, NodeRow, PeriodRows, Slice, UsageRow};
use crate::metering::{capacity, raw, MemorySource};

/// How long after a minute ends it is metered, counted from a round's start: a round started
/// after the minute's end has read every node's samples of it (a kubelet's sample is never
/// newer than the read), so this only allows for node clocks a little ahead of ours; a sample
/// that still comes later marks its minute provisional.
pub const FLUSH_DELAY_NS: i64 = 20_000_000_000;

/// Points kept before the oldest point not yet metered.
const PREDECESSORS: usize = 2;

/// Tags that say which pod (and container) a series is of; others are dropped on reading.
fn identity_tag(key: &str) -> bool {
    matches!(
        key,
        "namespace_name"
            | "pod_name"
            | "pod_id"
            | "nodename"
            | "workload_kind"
            | "workload_name"
            | "container_name"
            | "model"
            | "accelerator_id"
    ) || key.starts_with("label_")
}

/// Where a measurement goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Input(usize),
    Node(usize),
    /// The collector's `collector/interval` records (each sample's nominal interval).
    Interval,
}

#[derive(Debug, Default)]
struct Buffer {
    tags: Arc<BTreeMap<String, String>>,
    points: VecDeque<(i64, u64)>,
}

/// A series seen before: where its points go (`None`: billing does not read it, e.g. another
/// `type` level), and when it was last seen.
struct Known {
    slot: Option<Slot>,
    id: String,
    tags: Arc<BTreeMap<String, String>>,
    seen: u64,
}

/// Flushes a series may go unseen before it is forgotten (its buffer is kept while it holds
/// points).
const FORGET_AFTER_FLUSHES: u64 = 8;

/// The minutes one collector meters for its cluster (or its shard of the nodes).
pub struct Meter {
    cluster: String,
    basis: String,
    writer: String,
    shards: i64,
    lookback_ns: i64,
    /// measurement → (slot, Heapster `type` tag wanted; none for the interval records).
    slots: HashMap<String, (Slot, Option<&'static str>)>,
    inputs: Vec<HashMap<String, Buffer>>,
    nodes: [HashMap<String, Buffer>; 2],
    intervals: HashMap<String, Buffer>,
    /// Which input is the accelerators' memory total (its tags name pods' GPU models).
    gpu_models: Option<usize>,
    /// By the line's series key (measurement and tags as written): parsed once per series.
    known: HashMap<String, Known>,
    /// Flushes so far.
    generation: u64,
    /// Everything before this instant is metered (a minute boundary), once set.
    metered_to: Option<i64>,
    /// The first sample time seen: minutes within `L` of it are provisional.
    first_seen: Option<i64>,
    /// Minutes a late sample arrived for, to be marked provisional at the next flush.
    late: HashSet<i64>,
    /// The end of what this collector's shard metered before it (re)started.
    resumed_from: Option<i64>,
}

/// The longest stretch before a restart the meter asks the job to recompute; older gaps are
/// for `kubemeter rollup --backfill`.
const RESUME_AT_MOST_NS: i64 = 24 * 3_600_000_000_000;

impl Meter {
    /// A meter for `cluster`, as shard `shard` of `shards`, billing `memory`.
    pub fn new(
        cluster: &str,
        shard: u32,
        shards: u32,
        memory: MemorySource,
        lookback_ns: i64,
    ) -> Meter {
        let inputs = raw::inputs(memory);
        let mut slots = HashMap::new();
        for (i, (name, type_tag)) in inputs.iter().enumerate() {
            slots.insert((*name).to_string(), (Slot::Input(i), Some(*type_tag)));
        }
        for (i, name) in capacity::NODE_SERIES.iter().enumerate() {
            slots.insert((*name).to_string(), (Slot::Node(i), Some("node")));
        }
        slots.insert(COLLECTOR_INTERVAL.to_string(), (Slot::Interval, None));
        Meter {
            cluster: cluster.to_string(),
            basis: memory.as_str().to_string(),
            writer: shard.to_string(),
            shards: i64::from(shards.max(1)),
            lookback_ns,
            slots,
            gpu_models: inputs.iter().position(|(n, _)| *n == raw::GPU_MODEL_SERIES),
            inputs: inputs.iter().map(|_| HashMap::new()).collect(),
            nodes: [HashMap::new(), HashMap::new()],
            intervals: HashMap::new(),
            known: HashMap::new(),
            generation: 0,
            metered_to: None,
            first_seen: None,
            late: HashSet::new(),
            resumed_from: None,
        }
    }

    /// Says that this shard had metered up to the minute starting at `last` before it
    /// started: the minutes between then and its first sample are marked provisional at the
    /// first flush, so the metering job computes them from the raw samples written meanwhile.
    pub fn resume_after(&mut self, last: i64) {
        self.resumed_from = Some(last.saturating_add(Period::Minute.len_ns()));
    }

    /// Takes in the points of `lines` (line protocol the collector is about to write) that
    /// billing reads. A series' tags are parsed the first time it is seen; after that a point
    /// costs a map lookup.
    pub fn feed(&mut self, lines: &str) {
        for line in lines.lines() {
            let Some((key, time, value)) = split_line(line) else {
                continue;
            };
            if !self.known.contains_key(key) {
                let k = self.learn(line);
                self.known.insert(key.to_string(), k);
            }
            let Some(known) = self.known.get_mut(key) else {
                continue;
            };
            known.seen = self.generation;
            let Some(slot) = known.slot else {
                continue;
            };
            let (id, tags) = (known.id.clone(), known.tags.clone());
            self.first_seen = Some(self.first_seen.map_or(time, |f| f.min(time)));
            if self.metered_to.is_some_and(|m| time < m) {
                self.late.insert(Period::Minute.floor(time));
            }
            let buffers = match slot {
                Slot::Input(i) => &mut self.inputs[i],
                Slot::Node(i) => &mut self.nodes[i],
                Slot::Interval => &mut self.intervals,
            };
            push(buffers, id, tags, time, value);
        }
    }

    /// What a series first seen in `line` is: its slot and identity tags, or not billed.
    fn learn(&self, line: &str) -> Known {
        let ignored = Known {
            slot: None,
            id: String::new(),
            tags: Arc::default(),
            seen: self.generation,
        };
        let Some((slot, type_tag)) = self.slots.get(&measurement_of(line)).copied() else {
            return ignored;
        };
        let Some(p) = parse_point(line) else {
            return ignored;
        };
        if let Some(t) = type_tag {
            if !p.tags.iter().any(|(k, v)| k == "type" && v == t) {
                return ignored;
            }
        }
        let tags: BTreeMap<String, String> = p
            .tags
            .into_iter()
            .filter(|(k, _)| identity_tag(k))
            .collect();
        let id = tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("\n");
        Known {
            slot: Some(slot),
            id,
            tags: Arc::new(tags),
            seen: self.generation,
        }
    }

    /// Meters every minute that ended at least [`FLUSH_DELAY_NS`] before `now` (or every
    /// minute with samples, when `all`, as the collector stops) and returns the lines to write:
    /// rows, then markers.
    pub fn flush(&mut self, now: i64, all: bool) -> String {
        self.forget_unseen();
        let Some(first) = self.first_seen else {
            return String::new();
        };
        let mut out = String::new();
        if self.metered_to.is_none() {
            self.mark_gap_since_restart(&mut out, Period::Minute.floor(first));
        }
        let from = *self.metered_to.get_or_insert(Period::Minute.floor(first));
        let newest = self.newest().unwrap_or(from);
        let to = if all {
            Period::Minute.floor(newest) + Period::Minute.len_ns()
        } else {
            Period::Minute.floor(now - FLUSH_DELAY_NS)
        };
        let late: Vec<i64> = self.late.drain().collect();
        for minute in late {
            self.mark(&mut out, minute, 0, true);
        }
        if to <= from {
            return out;
        }
        let pods = self.pod_samples(to);
        let nodes = capacity::assemble_series(
            self.series(&self.nodes[0], to),
            self.series(&self.nodes[1], to),
            self.series(&self.intervals, to),
            self.lookback_ns,
        );
        for minute in Period::Minute.starts_within(crate::billing::Window { from, to }) {
            let w = Period::Minute.window(minute);
            let rows = PeriodRows {
                pods: pod_slices(&pods, w)
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
                    .collect(),
                namespaces: Vec::new(),
                nodes: node_slices(&nodes, w)
                    .into_iter()
                    .map(|(node, slices)| NodeRow {
                        cpu: slices.iter().map(|s| s.1).sum(),
                        memory: slices.iter().map(|s| s.2).sum(),
                        node,
                        slices,
                    })
                    .collect(),
            };
            let provisional = all || minute < first.saturating_add(self.lookback_ns);
            if rows::encode(
                &mut out,
                Period::Minute,
                minute,
                &self.cluster,
                &self.writer,
                &rows,
            )
            .is_ok()
            {
                self.mark(&mut out, minute, rows.pods.len() as i64, provisional);
            }
        }
        self.metered_to = Some(to);
        self.trim(to);
        out
    }

    /// Provisional markers for the minutes from where the previous run stopped to `first`.
    fn mark_gap_since_restart(&mut self, out: &mut String, first: i64) {
        let Some(from) = self.resumed_from.take() else {
            return;
        };
        let from = from.max(first.saturating_sub(RESUME_AT_MOST_NS));
        let gap = crate::billing::Window { from, to: first };
        for minute in Period::Minute.starts_within(gap) {
            self.mark(out, minute, 0, true);
        }
    }

    /// Forgets series not seen for a while (pods come and go), so the map does not grow.
    fn forget_unseen(&mut self) {
        self.generation += 1;
        let oldest = self.generation.saturating_sub(FORGET_AFTER_FLUSHES);
        self.known.retain(|_, k| k.seen >= oldest);
    }

    fn mark(&self, out: &mut String, minute: i64, pods: i64, provisional: bool) {
        let mark = Mark {
            rows: pods,
            shards: self.shards,
            written: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
            provisional,
        };
        let _ = markers::encode(
            out,
            Period::Minute,
            minute,
            &self.cluster,
            &self.basis,
            &self.writer,
            mark,
        );
    }

    fn newest(&self) -> Option<i64> {
        self.inputs
            .iter()
            .chain(self.nodes.iter())
            .chain([&self.intervals])
            .flat_map(|m| m.values())
            .filter_map(|b| b.points.back().map(|p| p.0))
            .max()
    }

    /// Per-pod samples of every buffered series before `to`.
    fn pod_samples(&self, to: i64) -> Vec<crate::billing::PodSamples> {
        let by_input = self.inputs.iter().map(|m| self.series(m, to)).collect();
        // The GPUs' memory-total series carry the pod UID and the GPU model in their tags.
        let accelerators = self
            .gpu_models
            .map(|i| self.series(&self.inputs[i], to))
            .unwrap_or_default();
        let intervals = self.series(&self.intervals, to);
        raw::assemble_series(by_input, accelerators, intervals, self.lookback_ns)
    }

    /// The buffers as InfluxDB series (points before `to`).
    fn series(&self, buffers: &HashMap<String, Buffer>, to: i64) -> Vec<Series> {
        buffers
            .values()
            .map(|b| Series {
                name: String::new(),
                tags: (*b.tags).clone(),
                columns: vec!["time".into(), "value".into()],
                values: b
                    .points
                    .iter()
                    .filter(|(t, _)| *t < to)
                    .map(|(t, v)| vec![serde_json::json!(t), serde_json::json!(v)])
                    .collect(),
            })
            .collect()
    }

    /// Drops what metering past `to` will not need: per series all but the last
    /// [`PREDECESSORS`] points before `to`, anything older than the look-back, and series left
    /// empty.
    fn trim(&mut self, to: i64) {
        let oldest = to.saturating_sub(self.lookback_ns);
        let all = self.inputs.iter_mut().chain(self.nodes.iter_mut());
        for buffers in all.chain([&mut self.intervals]) {
            buffers.retain(|_, b| {
                let before = b.points.iter().filter(|(t, _)| *t < to).count();
                for _ in PREDECESSORS..before.max(PREDECESSORS) {
                    b.points.pop_front();
                }
                while b.points.front().is_some_and(|(t, _)| *t < oldest) {
                    b.points.pop_front();
                }
                !b.points.is_empty()
            });
        }
    }
}

/// The series key (measurement and tags as written), time and integer value of a line with
/// one field `value`.
fn split_line(line: &str) -> Option<(&str, i64, u64)> {
    let (head, time) = line.rsplit_once(' ')?;
    let (key, field) = head.rsplit_once(' ')?;
    let v = field.strip_prefix("value=")?;
    let value = match v.strip_suffix('i') {
        Some(int) => u64::try_from(int.parse::<i64>().ok()?).ok()?,
        None => {
            let f: f64 = v.parse().ok()?;
            (f.is_finite() && f >= 0.0).then(|| f.round() as u64)?
        }
    };
    Some((key, time.parse().ok()?, value))
}

fn push(
    buffers: &mut HashMap<String, Buffer>,
    id: String,
    tags: Arc<BTreeMap<String, String>>,
    t: i64,
    v: u64,
) {
    let b = buffers.entry(id).or_insert_with(|| Buffer {
        tags,
        points: VecDeque::new(),
    });
    // Rounds arrive in order; a repeated read of the same sample is kept once.
    match b.points.back() {
        Some((last, _)) if *last == t => {}
        Some((last, _)) if *last > t => {
            let at = b.points.partition_point(|(pt, _)| *pt < t);
            if b.points.get(at).is_none_or(|(pt, _)| *pt != t) {
                b.points.insert(at, (t, v));
            }
        }
        _ => b.points.push_back((t, v)),
    }
}
