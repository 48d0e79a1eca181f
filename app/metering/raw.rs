//! Raw samples of one chunk of time, read from InfluxDB into [`PodSamples`].
//!
//! For a chunk `[from, to)` every series the billing math needs is read twice in one request:
//! its samples inside the chunk, and its last sample in the look-back `[from − L, from)` (a
//! `last()` selector keeps the sample's own time), which a counter needs for its first delta
//! and a gauge for its first interval.
//!
//! **Look-back rule.** A sample whose predecessor is more than `L` older has no predecessor:
//! the list is cut there. Without that cut the answer would depend on where chunks begin (a
//! predecessor 3 h back is inside one chunk and outside another's look-back), and rollups,
//! raw chunks and raw edges must give the same integers. The cut only matters for counters
//! (gauges already ignore predecessors older than 2.5 scrape intervals, and `L` is longer):
//! CPU or network used during an unobserved stretch longer than `L` is not billed, and the
//! stretch shows as missing coverage.
//!
//! Requests follow the same rule: the request in force at a sample is the latest request sample
//! at or before it, if that is at most `L` older; otherwise there is none (0).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::billing::{
    ContainerSamples, CounterSample, GaugeSample, PodIdentity, PodSamples, Window,
};
use crate::catalogue::name as m;
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
    /// Pod level from here on.
    Ephemeral,
    EphemeralRequest,
    NetRx,
    NetTx,
}

impl Input {
    const ALL: [Input; 10] = [
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
        }
    }

    fn pod_level(self) -> bool {
        self >= Input::Ephemeral
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
    /// The tags a series is grouped by: the identity, the container and the labels. Named
    /// rather than `GROUP BY *`, which InfluxDB 1.x answers about three times slower.
    fn group_by(&self) -> GroupBy {
        let mut tags: Vec<String> = [NAMESPACE, POD, POD_UID, NODE, WORKLOAD_KIND, WORKLOAD_NAME]
            .iter()
            .map(|t| t.to_string())
            .collect();
        tags.push(CONTAINER.into());
        tags.extend(self.label_keys.iter().cloned());
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

fn select(projection: Projection, measurement: &str, type_tag: &str, q: &RawQuery) -> Select {
    let mut s = Select::new(projection, Source::Measurement(measurement.to_string()));
    s.conditions = vec![Cond::TagEq("type".into(), type_tag.into())];
    s.conditions.extend(q.scope.iter().cloned());
    s.group_by = q.group_by();
    s
}

/// The statements for chunk `w`: per input its samples in `w`, then its last sample in the
/// look-back; finally the GPU model of each pod from the accelerator series.
pub fn statements(w: Window, q: &RawQuery) -> Vec<String> {
    let body = [Cond::TimeGe(at(w.from)), Cond::TimeLt(at(w.to))];
    let back = [
        Cond::TimeGe(at(w.from - q.lookback_ns)),
        Cond::TimeLt(at(w.from)),
    ];
    let mut out = Vec::with_capacity(2 * Input::ALL.len() + 1);
    for input in Input::ALL {
        let name = input.measurement(q.memory);
        let mut s = select(
            Projection::Fields(vec!["value".into()]),
            name,
            input.type_tag(),
            q,
        );
        s.conditions.extend(body.iter().cloned());
        out.push(s.to_influxql());
        let mut s = select(
            Projection::Last {
                field: "value".into(),
                alias: "value".into(),
            },
            name,
            input.type_tag(),
            q,
        );
        s.conditions.extend(back.iter().cloned());
        out.push(s.to_influxql());
    }
    let mut s = select(
        Projection::Last {
            field: "value".into(),
            alias: "value".into(),
        },
        m::ACCELERATOR_MEMORY_TOTAL,
        "pod_container",
        q,
    );
    s.conditions.extend([
        Cond::TimeGe(at(w.from - q.lookback_ns)),
        Cond::TimeLt(at(w.to)),
    ]);
    s.group_by = GroupBy::Tags(vec![POD_UID.into(), "model".into()]);
    out.push(s.to_influxql());
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
/// `by_input` in the order of [`inputs`], then the accelerator series. The same assembly a
/// read from InfluxDB goes through, so the same points give the same samples.
pub fn assemble_series(
    by_input: Vec<Vec<Series>>,
    accelerators: Vec<Series>,
    lookback_ns: i64,
) -> Vec<PodSamples> {
    let mut results = Vec::with_capacity(2 * by_input.len() + 1);
    for series in by_input {
        results.push(series);
        results.push(Vec::new());
    }
    results.push(accelerators);
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

/// Everything read for one pod, by input, per container and for the pod.
#[derive(Default)]
struct PodSeries {
    containers: BTreeMap<String, BTreeMap<Input, Points>>,
    pod: BTreeMap<Input, Points>,
}

/// Builds per-pod samples from the answers to [`statements`] (same order). Series of one pod
/// are joined whatever other tags they differ in (e.g. a changed `labels` tag).
fn assemble(results: &[Vec<Series>], lookback_ns: i64) -> Vec<PodSamples> {
    let mut pods: BTreeMap<PodIdentity, PodSeries> = BTreeMap::new();
    for (i, input) in Input::ALL.into_iter().enumerate() {
        for part in results.iter().skip(2 * i).take(2) {
            for s in part {
                let pod = pods.entry(series::identity(&s.tags)).or_default();
                let points = if input.pod_level() {
                    pod.pod.entry(input).or_default()
                } else {
                    let c = pod.containers.entry(series::container(&s.tags));
                    c.or_default().entry(input).or_default()
                };
                points.extend(series::points(s));
            }
        }
    }
    let models = gpu_models(results.get(2 * Input::ALL.len()).map_or(&[], Vec::as_slice));
    pods.into_iter()
        .flat_map(|(identity, mut series)| {
            for by_input in series.containers.values_mut() {
                by_input.values_mut().for_each(sort_points);
            }
            series.pod.values_mut().for_each(sort_points);
            let mut pod = pod_samples(identity, &series, lookback_ns);
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

fn pod_samples(identity: PodIdentity, s: &PodSeries, lookback_ns: i64) -> PodSamples {
    let empty = Points::new();
    let get = |input| s.pod.get(&input).unwrap_or(&empty);
    let network = |input| {
        get(input)
            .iter()
            .map(|&(t, value)| CounterSample {
                t,
                value,
                start: None,
                request: 0,
            })
            .collect()
    };
    PodSamples {
        identity,
        containers: s
            .containers
            .iter()
            .map(|(name, by_input)| container_samples(name, by_input, lookback_ns))
            .collect(),
        ephemeral: gauges(
            get(Input::Ephemeral),
            get(Input::EphemeralRequest),
            lookback_ns,
        ),
        net_rx: network(Input::NetRx),
        net_tx: network(Input::NetTx),
    }
}

fn container_samples(
    name: &str,
    by_input: &BTreeMap<Input, Points>,
    lookback_ns: i64,
) -> ContainerSamples {
    let empty = Points::new();
    let get = |input| by_input.get(&input).unwrap_or(&empty);
    let uptime = get(Input::Uptime);
    let requests = get(Input::CpuRequest);
    let cpu = get(Input::Cpu)
        .iter()
        .map(|&(t, value)| CounterSample {
            t,
            value,
            start: uptime_at(uptime, t).and_then(|up| start_from_uptime(t, up)),
            request: in_force(requests, t, lookback_ns),
        })
        .collect();
    ContainerSamples {
        name: name.to_string(),
        cpu,
        memory: gauges(get(Input::Memory), get(Input::MemoryRequest), lookback_ns),
        gpu: gauges(get(Input::GpuLimit), &empty, lookback_ns),
    }
}

fn gauges(values: &Points, requests: &Points, lookback_ns: i64) -> Vec<GaugeSample> {
    values
        .iter()
        .map(|&(t, value)| GaugeSample {
            t,
            value,
            request: in_force(requests, t, lookback_ns),
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

/// Cuts counter lists where two samples are more than `max_gap_ns` apart (the look-back rule
/// above); the later pieces become pods of their own with the same identity, which the
/// billing math adds back together.
fn split_at_gaps(mut pod: PodSamples, max_gap_ns: i64) -> Vec<PodSamples> {
    let mut extra = Vec::new();
    let blank = |p: &PodSamples| PodSamples {
        identity: p.identity.clone(),
        ..Default::default()
    };
    let mut container_pieces = Vec::new();
    for c in &mut pod.containers {
        for cpu in tail_pieces(&mut c.cpu, max_gap_ns) {
            container_pieces.push(ContainerSamples {
                name: c.name.clone(),
                cpu,
                ..Default::default()
            });
        }
    }
    for c in container_pieces {
        extra.push(PodSamples {
            containers: vec![c],
            ..blank(&pod)
        });
    }
    for net_rx in tail_pieces(&mut pod.net_rx, max_gap_ns) {
        extra.push(PodSamples {
            net_rx,
            ..blank(&pod)
        });
    }
    for net_tx in tail_pieces(&mut pod.net_tx, max_gap_ns) {
        extra.push(PodSamples {
            net_tx,
            ..blank(&pod)
        });
    }
    let mut out = vec![pod];
    out.extend(extra);
    out
}

/// Keeps the first run of `v` without a gap over `max_gap_ns`; returns the following runs.
fn tail_pieces(v: &mut Vec<CounterSample>, max_gap_ns: i64) -> Vec<Vec<CounterSample>> {
    let cuts: Vec<usize> = (1..v.len())
        .filter(|&i| v[i].t - v[i - 1].t > max_gap_ns)
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
        let mut out = vec![Vec::new(); 2 * Input::ALL.len() + 1];
        for (input, lookback, s) in by_input {
            let i = Input::ALL.iter().position(|x| x == input).unwrap();
            out[2 * i + usize::from(*lookback)].push(s.clone());
        }
        out
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
        assert_eq!(st.len(), 21);
        assert_eq!(
            st[0],
            "SELECT \"value\" FROM \"cpu/usage\" WHERE \"type\" = 'pod_container' \
             AND \"namespace_name\" =~ /^(?:shop)$/ AND time >= '2026-10-01T00:00:00Z' \
             AND time < '2026-10-01T01:00:00Z' GROUP BY \"namespace_name\", \"pod_name\", \
             \"pod_id\", \"nodename\", \"workload_kind\", \"workload_name\", \"container_name\", \
             \"label_team\""
        );
        assert!(st[1].starts_with(
            "SELECT last(\"value\") AS \"value\" FROM \"cpu/usage\" WHERE \"type\" = \
             'pod_container' AND \"namespace_name\" =~ /^(?:shop)$/ AND time >= \
             '2026-09-30T23:00:00Z' AND time < '2026-10-01T00:00:00Z' GROUP BY \"namespace_name\""
        ));
        assert!(st[6].contains("FROM \"memory/working_set\""));
        assert!(st[16].contains("FROM \"network/rx\" WHERE \"type\" = 'pod'"));
        assert!(st[20].ends_with("GROUP BY \"pod_id\", \"model\""));
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
                CounterSample {
                    t: 10 * S,
                    value: 9,
                    start: Some(5 * S),
                    request: 250
                },
                CounterSample {
                    t: 25 * S,
                    value: 4,
                    start: Some(20 * S),
                    request: 500
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
        };
        let pod = PodSamples {
            containers: vec![ContainerSamples {
                name: "app".into(),
                cpu: vec![c(0), c(10), c(100), c(105), c(300)],
                ..Default::default()
            }],
            net_rx: vec![c(0), c(50)],
            ..Default::default()
        };
        let parts = split_at_gaps(pod, 60);
        let cpu: Vec<Vec<i64>> = parts
            .iter()
            .flat_map(|p| {
                p.containers
                    .iter()
                    .map(|c| c.cpu.iter().map(|s| s.t).collect())
            })
            .collect();
        assert_eq!(cpu, vec![vec![0, 10], vec![100, 105], vec![300]]);
        assert_eq!(parts[0].net_rx.len(), 2);
    }
}
