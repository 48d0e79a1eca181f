//! Raw samples of one chunk of time, read from InfluxDB into [`PodSamples`].
//!
//! For a chunk `[from, to)` every series the billing math needs is read twice in one request:
//! its samples inside the chunk, and its last two samples in the look-back `[from − L, from)`
//! (newest first, `LIMIT 2` per series): a counter needs the last one for its first delta, a
//! gauge for its first interval, and the one before it gives the first sample's nominal
//! interval when the collector recorded none. The collector's `collector/interval` records
//! are read for the chunk and the last one per node in the look-back.
//!
//! **Nominal intervals.** Each sample gets its series' nominal interval from the data (see
//! [`crate::billing::nominal`]): the interval recorded for its node at or before it, if at
//! most `L` older; otherwise the series' previous gap, from its two predecessors within `L`
//! (one predecessor: the gap to it; none: unknown). Both only look `L` back, so any chunking
//! gives every sample the same interval.
//!
//! **Look-back rule.** A sample whose predecessor is more than `L` older has no predecessor:
//! the list is cut there. Without that cut the answer would depend on where chunks begin (a
//! predecessor 3 h back is inside one chunk and outside another's look-back), and rollups,
//! raw chunks and raw edges must give the same integers. For counters the cut means CPU or
//! network used during an unobserved stretch longer than `L` is not billed (the stretch shows
//! as missing coverage); for gauges it only matters for series collected less often than
//! every `L` / 2.5.
//!
//! Requests follow the same rule: the request in force at a sample is the latest request sample
//! at or before it, if that is at most `L` older; otherwise there is none (0).
//!
//! CPU of a container without any `cpu/usage` sample in the chunk and its look-back comes from
//! its `cpu/usage_rate` (old Heapster exports), which is read for that case.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::billing::nominal;
use crate::billing::{
    AcceleratorSamples, ContainerSamples, CounterSample, GaugeSample, PodIdentity, PodSamples,
    Window,
};
use crate::catalogue::name as m;
use crate::catalogue::COLLECTOR_INTERVAL;
use crate::influx::ql::{show_tag_keys, Cond, GroupBy, Projection, Select, Source};
use crate::influx::{InfluxClient, InfluxError, Series};

use super::series::{
    self, CONTAINER, LABEL_PREFIX, NAMESPACE, NODE, POD, POD_UID, WORKLOAD_KIND, WORKLOAD_NAME,
};
use super::MemorySource;

/// Requests a chunk's statements are spread over.
const PARALLEL_REQUESTS: usize = 3;

/// Nanoseconds per millisecond (`uptime` is in ms).
const NS_PER_MS: i64 = 1_000_000;

/// Samples of each series read from the look-back: the predecessor of the chunk's first
/// sample, and the one before it (its nominal interval when none is recorded).
const LOOKBACK_SAMPLES: u32 = 2;

/// The tag naming one GPU in the `accelerator/*` series.
const ACCELERATOR_ID: &str = "accelerator_id";

/// One series the billing math reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Input {
    /// `cpu/usage`, core-ns counter, per container.
    Cpu,
    /// `uptime`, ms since the container started, at the CPU sample's time.
    Uptime,
    CpuRequest,
    Memory,
    MemoryRequest,
    GpuLimit,
    /// Pod level: ephemeral storage and network.
    Ephemeral,
    EphemeralRequest,
    NetRx,
    NetTx,
    /// `cpu/usage_rate`, millicores, per container (CPU where no counter exists).
    CpuRate,
    /// Per container and GPU (`accelerator_id`): GPU efficiency.
    GpuDutyCycle,
    GpuMemoryUsed,
    GpuMemoryTotal,
}

impl Input {
    const ALL: [Input; 14] = [
        Input::Cpu,
        Input::Uptime,
        Input::CpuRequest,
        Input::Memory,
        Input::MemoryRequest,
        Input::GpuLimit,
        Input::Ephemeral,
        Input::EphemeralRequest,
        Input::NetRx,
        Input::NetTx,
        Input::CpuRate,
        Input::GpuDutyCycle,
        Input::GpuMemoryUsed,
        Input::GpuMemoryTotal,
    ];

    fn measurement(self, memory: MemorySource) -> &'static str {
        match self {
            Input::Cpu => m::CPU_USAGE,
            Input::Uptime => m::UPTIME,
            Input::CpuRequest => m::CPU_REQUEST,
            Input::Memory => match memory {
                MemorySource::WorkingSet => m::MEMORY_WORKING_SET,
                MemorySource::Usage => m::MEMORY_USAGE,
            },
            Input::MemoryRequest => m::MEMORY_REQUEST,
            Input::GpuLimit => m::NVIDIA_COM_GPU_LIMIT,
            Input::Ephemeral => m::EPHEMERAL_STORAGE_USAGE,
            Input::EphemeralRequest => m::EPHEMERAL_STORAGE_REQUEST,
            Input::NetRx => m::NETWORK_RX,
            Input::NetTx => m::NETWORK_TX,
            Input::CpuRate => m::CPU_USAGE_RATE,
            Input::GpuDutyCycle => m::ACCELERATOR_DUTY_CYCLE,
            Input::GpuMemoryUsed => m::ACCELERATOR_MEMORY_USED,
            Input::GpuMemoryTotal => m::ACCELERATOR_MEMORY_TOTAL,
        }
    }

    fn pod_level(self) -> bool {
        matches!(
            self,
            Input::Ephemeral | Input::EphemeralRequest | Input::NetRx | Input::NetTx
        )
    }

    /// Per GPU of a container.
    fn per_gpu(self) -> bool {
        matches!(
            self,
            Input::GpuDutyCycle | Input::GpuMemoryUsed | Input::GpuMemoryTotal
        )
    }

    /// Heapster's `type` tag of the series read (pod sums are not read for containers' metrics,
    /// which would count twice).
    fn type_tag(self) -> &'static str {
        if self.pod_level() {
            "pod"
        } else {
            "pod_container"
        }
    }
}

/// What to read: the scope's conditions, the memory gauge, the look-back `L` and the label
/// tag keys in the data.
#[derive(Debug, Clone)]
pub struct RawQuery<'a> {
    pub scope: &'a [Cond],
    pub memory: MemorySource,
    pub lookback_ns: i64,
    pub label_keys: &'a [String],
}

impl RawQuery<'_> {
    /// The tags a series is grouped by: the identity, the container and the labels (and the
    /// GPU for per-GPU inputs). Named rather than `GROUP BY *`, which InfluxDB 1.x answers
    /// about three times slower.
    fn group_by(&self, input: Input) -> GroupBy {
        let mut tags: Vec<String> = [NAMESPACE, POD, POD_UID, NODE, WORKLOAD_KIND, WORKLOAD_NAME]
            .iter()
            .map(|t| t.to_string())
            .collect();
        tags.push(CONTAINER.into());
        tags.extend(self.label_keys.iter().cloned());
        if input.per_gpu() {
            tags.push(ACCELERATOR_ID.into());
        }
        GroupBy::Tags(tags)
    }
}

/// The statements asking which tag keys the series billing reads carry.
pub fn tag_key_statements(memory: MemorySource) -> Vec<String> {
    Input::ALL
        .iter()
        .map(|i| show_tag_keys(i.measurement(memory)))
        .collect()
}

/// The `label_<key>` tag keys among the answers to [`tag_key_statements`], sorted.
pub fn label_keys(answers: &[Vec<Series>]) -> Vec<String> {
    let keys: BTreeSet<String> = answers
        .iter()
        .flatten()
        .flat_map(|s| s.values.iter())
        .filter_map(|row| row.first()?.as_str())
        .filter(|k| k.starts_with(LABEL_PREFIX))
        .map(str::to_string)
        .collect();
    keys.into_iter().collect()
}

fn at(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

fn select(measurement: &str, type_tag: &str, conds: &[Cond], group_by: GroupBy) -> Select {
    let mut s = Select::new(
        Projection::Fields(vec!["value".into()]),
        Source::Measurement(measurement.to_string()),
    );
    s.conditions = vec![Cond::TagEq("type".into(), type_tag.into())];
    s.conditions.extend(conds.iter().cloned());
    s.group_by = group_by;
    s
}

/// Narrows `s` to the look-back of chunk `w`: its last `n` samples per series before `w`.
fn last_before(mut s: Select, w: Window, lookback_ns: i64, n: u32) -> Select {
    s.conditions.extend([
        Cond::TimeGe(at(w.from.saturating_sub(lookback_ns))),
        Cond::TimeLt(at(w.from)),
    ]);
    s.newest_first = true;
    s.limit = Some(n);
    s
}

fn inside(mut s: Select, w: Window) -> Select {
    s.conditions
        .extend([Cond::TimeGe(at(w.from)), Cond::TimeLt(at(w.to))]);
    s
}

/// The `collector/interval` records of chunk `w` and the last one per node before it (not
/// scoped: they are the collector's, per node, and say nothing about anyone's pods).
pub fn interval_statements(w: Window, lookback_ns: i64) -> [String; 2] {
    let record = || {
        let mut s = Select::new(
            Projection::Fields(vec!["value".into()]),
            Source::Measurement(COLLECTOR_INTERVAL.into()),
        );
        s.group_by = GroupBy::Tags(vec![NODE.into()]);
        s
    };
    [
        inside(record(), w).to_influxql(),
        last_before(record(), w, lookback_ns, 1).to_influxql(),
    ]
}

/// Interval records by node, sorted by time: `(time, interval ns)`.
pub type Recorded = BTreeMap<String, Vec<(i64, i64)>>;

/// The records in the answers to [`interval_statements`].
pub fn recorded_intervals<'a>(answers: impl IntoIterator<Item = &'a Series>) -> Recorded {
    let mut out = Recorded::new();
    for s in answers {
        let node = s.tags.get(NODE).cloned().unwrap_or_default();
        let points = series::points(s).filter_map(|(t, v)| Some((t, i64::try_from(v).ok()?)));
        out.entry(node).or_default().extend(points);
    }
    for points in out.values_mut() {
        points.sort_unstable();
        points.dedup_by_key(|(t, _)| *t);
    }
    out
}

/// The statements for chunk `w`: per input its samples in `w`, then its last samples in the
/// look-back; then the GPU model of each pod from the accelerator series; then the collector's
/// interval records ([`interval_statements`]).
pub fn statements(w: Window, q: &RawQuery) -> Vec<String> {
    let mut out = Vec::with_capacity(2 * Input::ALL.len() + 3);
    for input in Input::ALL {
        let s = select(
            input.measurement(q.memory),
            input.type_tag(),
            q.scope,
            q.group_by(input),
        );
        out.push(inside(s.clone(), w).to_influxql());
        out.push(last_before(s, w, q.lookback_ns, LOOKBACK_SAMPLES).to_influxql());
    }
    let mut s = Select::new(
        Projection::Last {
            field: "value".into(),
            alias: "value".into(),
        },
        Source::Measurement(m::ACCELERATOR_MEMORY_TOTAL.into()),
    );
    s.conditions = vec![Cond::TagEq("type".into(), "pod_container".into())];
    s.conditions.extend(q.scope.iter().cloned());
    s.conditions.extend([
        Cond::TimeGe(at(w.from - q.lookback_ns)),
        Cond::TimeLt(at(w.to)),
    ]);
    s.group_by = GroupBy::Tags(vec![POD_UID.into(), "model".into()]);
    out.push(s.to_influxql());
    out.extend(interval_statements(w, q.lookback_ns));
    out
}

/// The series billing reads, in the order [`assemble_series`] takes them: measurement and
/// Heapster `type` tag.
pub fn inputs(memory: MemorySource) -> Vec<(&'static str, &'static str)> {
    Input::ALL
        .iter()
        .map(|i| (i.measurement(memory), i.type_tag()))
        .collect()
}

/// The measurement whose `model` tag names a pod's GPU model (tags `pod_id`, `model`).
pub const GPU_MODEL_SERIES: &str = m::ACCELERATOR_MEMORY_TOTAL;

/// Per-pod samples from series already in hand (the collector's own points, as it meters):
/// `by_input` in the order of [`inputs`], the accelerator series naming GPU models (tags
/// `pod_id`, `model`), and the collector's interval records (tag `nodename`). The same
/// assembly a read from InfluxDB goes through, so the same points give the same samples.
pub fn assemble_series(
    by_input: Vec<Vec<Series>>,
    accelerators: Vec<Series>,
    intervals: Vec<Series>,
    lookback_ns: i64,
) -> Vec<PodSamples> {
    let mut results = Vec::with_capacity(2 * by_input.len() + 3);
    for series in by_input {
        results.push(series);
        results.push(Vec::new());
    }
    results.push(accelerators);
    results.push(intervals);
    results.push(Vec::new());
    assemble(&results, lookback_ns)
}

/// Reads chunk `w` (with its look-back) into per-pod samples.
pub async fn read(
    influx: &InfluxClient,
    w: Window,
    q: &RawQuery<'_>,
) -> Result<Vec<PodSamples>, InfluxError> {
    // InfluxDB runs the statements of one request one after the other; a few requests at
    // once use its other cores (about twice as fast for a thousand pods on two cores).
    let all = statements(w, q);
    let per_request = all.len().div_ceil(PARALLEL_REQUESTS);
    let answers =
        futures::future::try_join_all(all.chunks(per_request).map(|c| influx.query_each_ns(c)))
            .await?;
    let results: Vec<Vec<Series>> = answers.into_iter().flatten().collect();
    Ok(assemble(&results, q.lookback_ns))
}

type Points = Vec<(i64, u64)>;

/// Everything read for one pod, by input: per container, per GPU of a container (by
/// container and `accelerator_id`), and for the pod.
#[derive(Default)]
struct PodSeries {
    containers: BTreeMap<String, BTreeMap<Input, Points>>,
    gpus: BTreeMap<(String, String), BTreeMap<Input, Points>>,
    pod: BTreeMap<Input, Points>,
}

impl PodSeries {
    fn points(&mut self, input: Input, tags: &BTreeMap<String, String>) -> &mut Points {
        let by_input = if input.pod_level() {
            &mut self.pod
        } else if input.per_gpu() {
            let id = tags.get(ACCELERATOR_ID).cloned().unwrap_or_default();
            self.gpus.entry((series::container(tags), id)).or_default()
        } else {
            self.containers.entry(series::container(tags)).or_default()
        };
        by_input.entry(input).or_default()
    }

    fn sort(&mut self) {
        let lists = self.containers.values_mut().chain(self.gpus.values_mut());
        for by_input in lists.chain([&mut self.pod]) {
            by_input.values_mut().for_each(sort_points);
        }
    }
}

/// How samples get their nominal interval: the node's records and the look-back `L`.
struct Nominals<'a> {
    recorded: &'a [(i64, i64)],
    lookback_ns: i64,
}

impl Nominals<'_> {
    fn of(&self, points: &Points) -> Vec<Option<i64>> {
        let times: Vec<i64> = points.iter().map(|(t, _)| *t).collect();
        nominal::assign(&times, self.recorded, self.lookback_ns)
    }

    /// Gauge samples of `values` with the request in force at each.
    fn gauges(&self, values: &Points, requests: &Points) -> Vec<GaugeSample> {
        values
            .iter()
            .zip(self.of(values))
            .map(|(&(t, value), nominal)| GaugeSample {
                t,
                value,
                request: in_force(requests, t, self.lookback_ns),
                nominal,
            })
            .collect()
    }
}

/// Builds per-pod samples from the answers to [`statements`] (same order). Series of one pod
/// are joined whatever other tags they differ in (e.g. a changed `labels` tag).
fn assemble(results: &[Vec<Series>], lookback_ns: i64) -> Vec<PodSamples> {
    let mut pods: BTreeMap<PodIdentity, PodSeries> = BTreeMap::new();
    for (i, input) in Input::ALL.into_iter().enumerate() {
        for part in results.iter().skip(2 * i).take(2) {
            for s in part {
                let pod = pods.entry(series::identity(&s.tags)).or_default();
                pod.points(input, &s.tags).extend(series::points(s));
            }
        }
    }
    let n = 2 * Input::ALL.len();
    let models = gpu_models(results.get(n).map_or(&[], Vec::as_slice));
    let recorded = recorded_intervals(results.iter().skip(n + 1).take(2).flatten());
    pods.into_iter()
        .flat_map(|(identity, mut series)| {
            series.sort();
            let nominals = Nominals {
                recorded: recorded.get(&identity.node).map_or(&[], Vec::as_slice),
                lookback_ns,
            };
            let mut pod = pod_samples(identity, &series, &nominals);
            if pod.containers.iter().any(|c| !c.gpu.is_empty()) {
                pod.identity.gpu_model = models.get(&pod.identity.pod_uid).cloned();
            }
            split_at_gaps(pod, lookback_ns)
        })
        .collect()
}

fn sort_points(p: &mut Points) {
    p.sort_unstable();
    p.dedup_by_key(|(t, _)| *t);
}

/// GPU model by pod UID (the first model a pod's accelerators report, in name order).
fn gpu_models(series: &[Series]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for s in series {
        let (Some(uid), Some(model)) = (s.tags.get(POD_UID), s.tags.get("model")) else {
            continue;
        };
        if !uid.is_empty() && !model.is_empty() {
            out.entry(uid.clone())
                .and_modify(|m: &mut String| {
                    if model < m {
                        *m = model.clone()
                    }
                })
                .or_insert_with(|| model.clone());
        }
    }
    out
}

fn pod_samples(identity: PodIdentity, s: &PodSeries, nominals: &Nominals) -> PodSamples {
    let empty = Points::new();
    let get = |input| s.pod.get(&input).unwrap_or(&empty);
    let network = |input| {
        let points = get(input);
        points
            .iter()
            .zip(nominals.of(points))
            .map(|(&(t, value), nominal)| CounterSample {
                t,
                value,
                start: None,
                request: 0,
                nominal,
            })
            .collect()
    };
    let containers = s
        .containers
        .iter()
        .map(|(name, by_input)| {
            let mut c = container_samples(name, by_input, nominals);
            c.accelerators = accelerators(name, &s.gpus, nominals);
            c
        })
        .collect();
    PodSamples {
        identity,
        containers,
        ephemeral: nominals.gauges(get(Input::Ephemeral), get(Input::EphemeralRequest)),
        net_rx: network(Input::NetRx),
        net_tx: network(Input::NetTx),
    }
}

fn container_samples(
    name: &str,
    by_input: &BTreeMap<Input, Points>,
    nominals: &Nominals,
) -> ContainerSamples {
    let empty = Points::new();
    let get = |input| by_input.get(&input).unwrap_or(&empty);
    let uptime = get(Input::Uptime);
    let requests = get(Input::CpuRequest);
    let counter = get(Input::Cpu);
    let cpu = counter
        .iter()
        .zip(nominals.of(counter))
        .map(|(&(t, value), nominal)| CounterSample {
            t,
            value,
            start: uptime_at(uptime, t).and_then(|up| start_from_uptime(t, up)),
            request: in_force(requests, t, nominals.lookback_ns),
            nominal,
        })
        .collect();
    // The rate stands in for the counter only where there is no counter at all.
    let cpu_rate = if counter.is_empty() {
        nominals.gauges(get(Input::CpuRate), requests)
    } else {
        Vec::new()
    };
    ContainerSamples {
        name: name.to_string(),
        cpu,
        memory: nominals.gauges(get(Input::Memory), get(Input::MemoryRequest)),
        gpu: nominals.gauges(get(Input::GpuLimit), &empty),
        cpu_rate,
        accelerators: Vec::new(),
    }
}

/// The GPUs of container `name`, by `accelerator_id`.
fn accelerators(
    name: &str,
    gpus: &BTreeMap<(String, String), BTreeMap<Input, Points>>,
    nominals: &Nominals,
) -> Vec<AcceleratorSamples> {
    let empty = Points::new();
    gpus.iter()
        .filter(|((container, _), _)| container == name)
        .map(|((_, id), by_input)| {
            let gauge = |input| nominals.gauges(by_input.get(&input).unwrap_or(&empty), &empty);
            AcceleratorSamples {
                id: id.clone(),
                duty_cycle: gauge(Input::GpuDutyCycle),
                memory_used: gauge(Input::GpuMemoryUsed),
                memory_total: gauge(Input::GpuMemoryTotal),
            }
        })
        .collect()
}

/// The latest request at or before `t`, if at most `lookback_ns` older; else 0.
fn in_force(requests: &Points, t: i64, lookback_ns: i64) -> u64 {
    let i = requests.partition_point(|(rt, _)| *rt <= t);
    match i.checked_sub(1).map(|j| requests[j]) {
        Some((rt, v)) if t - rt <= lookback_ns => v,
        _ => 0,
    }
}

/// The uptime written with the sample at exactly `t` (the collector stamps both with the
/// kubelet's CPU sample time).
fn uptime_at(uptime: &Points, t: i64) -> Option<u64> {
    uptime
        .binary_search_by_key(&t, |(ut, _)| *ut)
        .ok()
        .map(|i| uptime[i].1)
}

/// The container's start, from `uptime = ⌊t⌋ms − start_ms` as the collector computes it. Whole
/// milliseconds on purpose: the same container gives the same start at every sample, so only
/// a real restart looks like one.
fn start_from_uptime(t: i64, uptime_ms: u64) -> Option<i64> {
    let up = i64::try_from(uptime_ms).ok()?;
    t.div_euclid(NS_PER_MS)
        .checked_sub(up)?
        .checked_mul(NS_PER_MS)
}

/// A pod of `id` holding only the container `name` as `fill` leaves it.
fn container_piece(
    id: &PodIdentity,
    name: &str,
    fill: impl FnOnce(&mut ContainerSamples),
) -> PodSamples {
    let mut c = ContainerSamples {
        name: name.to_string(),
        ..Default::default()
    };
    fill(&mut c);
    PodSamples {
        identity: id.clone(),
        containers: vec![c],
        ..Default::default()
    }
}

/// A pod of `id` holding only what `fill` puts in.
fn pod_piece(id: &PodIdentity, fill: impl FnOnce(&mut PodSamples)) -> PodSamples {
    let mut p = PodSamples {
        identity: id.clone(),
        ..Default::default()
    };
    fill(&mut p);
    p
}

/// Cuts every list where two samples are more than `max_gap_ns` apart (the look-back rule
/// above); the later pieces become pods of their own with the same identity, which the
/// billing math adds back together.
fn split_at_gaps(mut pod: PodSamples, max_gap_ns: i64) -> Vec<PodSamples> {
    let id = pod.identity.clone();
    let mut extra = Vec::new();
    for c in &mut pod.containers {
        let name = c.name.clone();
        for cpu in tail_pieces(&mut c.cpu, |s| s.t, max_gap_ns) {
            extra.push(container_piece(&id, &name, |x| x.cpu = cpu));
        }
        for memory in tail_pieces(&mut c.memory, |s| s.t, max_gap_ns) {
            extra.push(container_piece(&id, &name, |x| x.memory = memory));
        }
        for gpu in tail_pieces(&mut c.gpu, |s| s.t, max_gap_ns) {
            extra.push(container_piece(&id, &name, |x| x.gpu = gpu));
        }
        for cpu_rate in tail_pieces(&mut c.cpu_rate, |s| s.t, max_gap_ns) {
            extra.push(container_piece(&id, &name, |x| x.cpu_rate = cpu_rate));
        }
        for a in &mut c.accelerators {
            let gpu_id = a.id.clone();
            let gpu = |fill: &mut dyn FnMut(&mut AcceleratorSamples)| {
                let mut g = AcceleratorSamples {
                    id: gpu_id.clone(),
                    ..Default::default()
                };
                fill(&mut g);
                container_piece(&id, &name, |x| x.accelerators = vec![g])
            };
            let mut pieces = Vec::new();
            for v in tail_pieces(&mut a.duty_cycle, |s| s.t, max_gap_ns) {
                pieces.push(gpu(&mut |g| g.duty_cycle = v.clone()));
            }
            for v in tail_pieces(&mut a.memory_used, |s| s.t, max_gap_ns) {
                pieces.push(gpu(&mut |g| g.memory_used = v.clone()));
            }
            for v in tail_pieces(&mut a.memory_total, |s| s.t, max_gap_ns) {
                pieces.push(gpu(&mut |g| g.memory_total = v.clone()));
            }
            extra.extend(pieces);
        }
    }
    for ephemeral in tail_pieces(&mut pod.ephemeral, |s| s.t, max_gap_ns) {
        extra.push(pod_piece(&id, |p| p.ephemeral = ephemeral));
    }
    for net_rx in tail_pieces(&mut pod.net_rx, |s| s.t, max_gap_ns) {
        extra.push(pod_piece(&id, |p| p.net_rx = net_rx));
    }
    for net_tx in tail_pieces(&mut pod.net_tx, |s| s.t, max_gap_ns) {
        extra.push(pod_piece(&id, |p| p.net_tx = net_tx));
    }
    let mut out = vec![pod];
    out.extend(extra);
    out
}

/// Keeps the first run of `v` without a gap over `max_gap_ns`; returns the following runs.
pub(crate) fn tail_pieces<T>(
    v: &mut Vec<T>,
    time: impl Fn(&T) -> i64,
    max_gap_ns: i64,
) -> Vec<Vec<T>> {
    let cuts: Vec<usize> = (1..v.len())
        .filter(|&i| time(&v[i]) - time(&v[i - 1]) > max_gap_ns)
        .collect();
    let mut pieces = Vec::with_capacity(cuts.len());
    for &cut in cuts.iter().rev() {
        pieces.push(v.split_off(cut));
    }
    pieces.reverse();
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const S: i64 = 1_000_000_000;

    fn series(container: &str, rows: &[(i64, u64)]) -> Series {
        let mut tags: BTreeMap<String, String> = [
            ("namespace_name", "shop"),
            ("pod_name", "web-1"),
            ("pod_id", "u-1"),
            ("nodename", "n1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if !container.is_empty() {
            tags.insert("container_name".into(), container.into());
        }
        Series {
            name: "x".into(),
            tags,
            columns: vec!["time".into(), "value".into()],
            values: rows.iter().map(|(t, v)| vec![json!(t), json!(v)]).collect(),
        }
    }

    fn results(by_input: &[(Input, bool, Series)]) -> Vec<Vec<Series>> {
        let mut out = vec![Vec::new(); 2 * Input::ALL.len() + 3];
        for (input, lookback, s) in by_input {
            let i = Input::ALL.iter().position(|x| x == input).unwrap();
            out[2 * i + usize::from(*lookback)].push(s.clone());
        }
        out
    }

    /// `collector/interval` records of node `node` as InfluxDB answers them.
    fn records(node: &str, rows: &[(i64, u64)]) -> Series {
        Series {
            name: COLLECTOR_INTERVAL.into(),
            tags: [("nodename".to_string(), node.to_string())].into(),
            columns: vec!["time".into(), "value".into()],
            values: rows.iter().map(|(t, v)| vec![json!(t), json!(v)]).collect(),
        }
    }

    #[test]
    fn a_chunk_reads_each_input_and_its_look_back_in_one_request() {
        let labels = ["label_team".to_string()];
        let q = RawQuery {
            scope: &[Cond::TagIn("namespace_name".into(), vec!["shop".into()])],
            memory: MemorySource::WorkingSet,
            lookback_ns: 3_600 * S,
            label_keys: &labels,
        };
        // 2026-10-01T00:00:00Z to 01:00.
        let w = Window::new(1_790_812_800 * S, 1_790_816_400 * S).unwrap();
        let st = statements(w, &q);
        assert_eq!(st.len(), 31);
        assert_eq!(
            st[0],
            "SELECT \"value\" FROM \"cpu/usage\" WHERE \"type\" = 'pod_container' \
             AND \"namespace_name\" =~ /^(?:shop)$/ AND time >= '2026-10-01T00:00:00Z' \
             AND time < '2026-10-01T01:00:00Z' GROUP BY \"namespace_name\", \"pod_name\", \
             \"pod_id\", \"nodename\", \"workload_kind\", \"workload_name\", \"container_name\", \
             \"label_team\""
        );
        // The look-back: the last two samples of each series, newest first.
        assert_eq!(
            st[1],
            "SELECT \"value\" FROM \"cpu/usage\" WHERE \"type\" = 'pod_container' \
             AND \"namespace_name\" =~ /^(?:shop)$/ AND time >= '2026-09-30T23:00:00Z' \
             AND time < '2026-10-01T00:00:00Z' GROUP BY \"namespace_name\", \"pod_name\", \
             \"pod_id\", \"nodename\", \"workload_kind\", \"workload_name\", \"container_name\", \
             \"label_team\" ORDER BY time DESC LIMIT 2"
        );
        assert!(st[6].contains("FROM \"memory/working_set\""));
        assert!(st[16].contains("FROM \"network/rx\" WHERE \"type\" = 'pod'"));
        assert!(st[20].contains("FROM \"cpu/usage_rate\" WHERE \"type\" = 'pod_container'"));
        assert!(st[22].contains("FROM \"accelerator/duty_cycle\""));
        assert!(st[22].ends_with("\"label_team\", \"accelerator_id\""));
        assert!(st[28].ends_with("GROUP BY \"pod_id\", \"model\""));
        // The collector's interval records of the chunk, and the last one of each node before.
        assert_eq!(
            &st[29..],
            [
                "SELECT \"value\" FROM \"collector/interval\" WHERE time >= \
                 '2026-10-01T00:00:00Z' AND time < '2026-10-01T01:00:00Z' GROUP BY \"nodename\"",
                "SELECT \"value\" FROM \"collector/interval\" WHERE time >= \
                 '2026-09-30T23:00:00Z' AND time < '2026-10-01T00:00:00Z' GROUP BY \"nodename\" \
                 ORDER BY time DESC LIMIT 1"
            ]
        );
    }

    #[test]
    fn samples_carry_the_start_from_uptime_and_the_request_in_force() {
        // CPU at 10 s and 25 s (the first from the look-back), uptime 5 000 ms at both (a
        // restart between them: start 5 s, then 20 s); request 250 m from 0 s, 500 m from 20 s.
        let r = results(&[
            (Input::Cpu, true, series("app", &[(10 * S, 9)])),
            (Input::Cpu, false, series("app", &[(25 * S, 4)])),
            (Input::Uptime, true, series("app", &[(10 * S, 5_000)])),
            (Input::Uptime, false, series("app", &[(25 * S, 5_000)])),
            (
                Input::CpuRequest,
                false,
                series("app", &[(0, 250), (20 * S, 500)]),
            ),
            (Input::NetRx, false, series("", &[(25 * S, 77)])),
        ]);
        let pods = assemble(&r, 3_600 * S);
        assert_eq!(pods.len(), 1);
        let cpu = &pods[0].containers[0].cpu;
        assert_eq!(
            cpu,
            &vec![
                // No interval recorded: the first has no predecessor (unknown), the second one
                // 15 s back (its gap).
                CounterSample {
                    t: 10 * S,
                    value: 9,
                    start: Some(5 * S),
                    request: 250,
                    nominal: None,
                },
                CounterSample {
                    t: 25 * S,
                    value: 4,
                    start: Some(20 * S),
                    request: 500,
                    nominal: Some(15 * S),
                },
            ]
        );
        assert_eq!(pods[0].net_rx[0].value, 77);
        assert_eq!(pods[0].identity.pod, "web-1");
    }

    #[test]
    fn only_label_tags_are_taken_from_the_tag_keys() {
        let keys = |ks: &[&str]| Series {
            name: "cpu/usage".into(),
            tags: BTreeMap::new(),
            columns: vec!["tagKey".into()],
            values: ks.iter().map(|k| vec![json!(k)]).collect(),
        };
        let answers = vec![
            vec![keys(&["label_team", "labels", "pod_name"])],
            vec![keys(&["label_cost-center", "label_team"])],
        ];
        assert_eq!(
            label_keys(&answers),
            vec!["label_cost-center", "label_team"]
        );
        assert_eq!(
            tag_key_statements(MemorySource::Usage)[3],
            "SHOW TAG KEYS FROM \"memory/usage\""
        );
    }

    #[test]
    fn a_request_older_than_the_look_back_is_not_in_force() {
        let reqs = vec![(0, 250)];
        assert_eq!(in_force(&reqs, 3_600 * S, 3_600 * S), 250);
        assert_eq!(in_force(&reqs, 3_600 * S + 1, 3_600 * S), 0);
        assert_eq!(in_force(&reqs, -1, 3_600 * S), 0);
    }

    #[test]
    fn uptime_in_whole_milliseconds_gives_one_start_per_container() {
        // Kubelet times with different sub-millisecond parts, same container started at 1 s.
        let t1 = 16 * S + 123_456;
        let t2 = 31 * S + 987_654;
        assert_eq!(start_from_uptime(t1, 15_000), Some(S));
        assert_eq!(start_from_uptime(t2, 30_000), Some(S));
    }

    #[test]
    fn counters_are_cut_where_samples_are_further_apart_than_the_look_back() {
        let c = |t| CounterSample {
            t,
            value: 1,
            start: None,
            request: 0,
            nominal: None,
        };
        let g = |t| GaugeSample {
            t,
            value: 1,
            request: 0,
            nominal: None,
        };
        let pod = PodSamples {
            containers: vec![ContainerSamples {
                name: "app".into(),
                cpu: vec![c(0), c(10), c(100), c(105), c(300)],
                memory: vec![g(0), g(70)],
                ..Default::default()
            }],
            net_rx: vec![c(0), c(50)],
            ..Default::default()
        };
        let parts = split_at_gaps(pod, 60);
        // The times of each non-empty piece of one list, in order.
        let pieces = |list: fn(&ContainerSamples) -> Vec<i64>| -> Vec<Vec<i64>> {
            parts
                .iter()
                .flat_map(|p| p.containers.iter().map(list))
                .filter(|v| !v.is_empty())
                .collect()
        };
        let cpu = pieces(|c| c.cpu.iter().map(|s| s.t).collect());
        assert_eq!(cpu, vec![vec![0, 10], vec![100, 105], vec![300]]);
        assert_eq!(parts[0].net_rx.len(), 2);
        // Gauges too: a series collected less often than the look-back is no bridge.
        let memory = pieces(|c| c.memory.iter().map(|s| s.t).collect());
        assert_eq!(memory, vec![vec![0], vec![70]]);
    }

    #[test]
    fn samples_take_the_interval_recorded_for_their_node_else_their_own_spacing() {
        // n1's collector recorded 15 s from 0 s and 60 s from 30 s; memory there at 15 s,
        // 30 s (the 60 s record is at 30 s: its round), 90 s. The same pod's series on n2 (no
        // records, a Heapster-style 300 s spacing, the first sample from the look-back).
        let mut on_n2 = series("app", &[(600 * S, 5), (900 * S, 5)]);
        on_n2.tags.insert("nodename".into(), "n2".into());
        let mut r = results(&[
            (Input::Memory, true, series("app", &[(15 * S, 7)])),
            (
                Input::Memory,
                false,
                series("app", &[(30 * S, 7), (90 * S, 7)]),
            ),
            (Input::Memory, false, on_n2),
        ]);
        let n = 2 * Input::ALL.len();
        r[n + 1].push(records("n1", &[(30 * S, 60 * S as u64)]));
        r[n + 2].push(records("n1", &[(0, 15 * S as u64)]));
        let pods = assemble(&r, 3_600 * S);
        let nominal = |node: &str| -> Vec<Option<i64>> {
            pods.iter()
                .filter(|p| p.identity.node == node)
                .flat_map(|p| p.containers[0].memory.iter().map(|s| s.nominal))
                .collect()
        };
        assert_eq!(
            nominal("n1"),
            vec![Some(15 * S), Some(60 * S), Some(60 * S)]
        );
        assert_eq!(nominal("n2"), vec![None, Some(300 * S)]);
    }

    #[test]
    fn cpu_comes_from_the_rate_only_for_a_container_without_a_counter() {
        // `old` has only `cpu/usage_rate` (a Heapster export); `new` has both (the collector
        // writes a rate beside each counter): its rate is not read into samples.
        let r = results(&[
            (
                Input::CpuRate,
                false,
                series("old", &[(0, 250), (300 * S, 250)]),
            ),
            (Input::CpuRate, false, series("new", &[(15 * S, 100)])),
            (Input::Cpu, false, series("new", &[(15 * S, 1_000)])),
            (Input::CpuRequest, false, series("old", &[(0, 500)])),
        ]);
        let pods = assemble(&r, 3_600 * S);
        let c = &pods[0].containers;
        assert_eq!((c[0].name.as_str(), c[0].cpu_rate.len()), ("new", 0));
        assert_eq!(c[1].name, "old");
        assert!(c[1].cpu.is_empty());
        assert_eq!(
            c[1].cpu_rate[1],
            GaugeSample {
                t: 300 * S,
                value: 250,
                request: 500,
                nominal: Some(300 * S)
            }
        );
    }

    #[test]
    fn each_gpu_of_a_container_is_its_own_series() {
        let gpu = |id: &str, v: u64| {
            let mut s = series("train", &[(15 * S, v)]);
            s.tags.insert(ACCELERATOR_ID.into(), id.into());
            s
        };
        let r = results(&[
            (Input::GpuLimit, false, series("train", &[(15 * S, 2)])),
            (Input::GpuDutyCycle, false, gpu("GPU-a", 65)),
            (Input::GpuDutyCycle, false, gpu("GPU-b", 15)),
            (Input::GpuMemoryTotal, false, gpu("GPU-a", 16 << 30)),
        ]);
        let pods = assemble(&r, 3_600 * S);
        let acc = &pods[0].containers[0].accelerators;
        let ids: Vec<&str> = acc.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["GPU-a", "GPU-b"]);
        assert_eq!(acc[1].duty_cycle[0].value, 15);
        assert_eq!(acc[0].memory_total[0].value, 16 << 30);
        assert!(acc[1].memory_total.is_empty());
    }
}
