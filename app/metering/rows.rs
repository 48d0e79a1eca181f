//! Metered usage in InfluxDB: one row per pod (and per namespace, and per node) and period,
//! in `billing/minute`, `billing/10m`, `billing/hour`, `billing/day` and `billing/week`.
//!
//! **Packed layout.** InfluxDB 1.x spends about a millisecond per series a query touches,
//! whatever the points, so rows are not one series per pod: every row of a cluster, kind and
//! writer goes into ONE series (tags `cluster_name`, `kind` = `pod|namespace|node`, `writer`),
//! and rows of one period are told apart by their time: the period's start plus the row's
//! index (in nanoseconds, far less than any period's length). Reading a minute of 1 000 pods
//! costs ~15 ms this way instead of ~1.4 s. Identities travel inside the row, so scoping is
//! done on decoded rows ([`super::visible`]).
//!
//! **Row.** A string field `row` holding JSON: the identity, the quantities as exact decimal
//! integers in a fixed order (`q`, see [`Quantities::to_vec`]), and the observed intervals
//! (`seen`, `a:b,c:d` in ns relative to the period's start). A minute row instead holds its
//! slices (`sl`): the usage of the samples taken at each instant of the minute, so that a
//! window edge inside the minute is cut exactly where the raw samples would cut it.
//!
//! Namespace rows (10 minutes and longer) are their pods' rows added up, kept per GPU model
//! (GPU prices are per model): a statement by namespace reads a row per namespace instead of
//! one per pod.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::billing::quantities::CpuSource;
use crate::billing::{IntervalSet, PodIdentity, PodUsage, Quantities, Usage, Window};
use crate::catalogue::BILLING_PREFIX;
use crate::influx::line::{push_tag, write_fields, Field, LineError};
use crate::influx::ql::{Cond, Delete, Projection, Select, Source};
use crate::influx::Series;

use super::period::Period;
use super::series::NODE;

pub const CLUSTER: &str = "cluster_name";
const KIND: &str = "kind";
const WRITER: &str = "writer";
const ROW: &str = "row";

/// Who wrote rows: the rollup job, or shard `i` of the collector (minutes only).
pub const JOB_WRITER: &str = "job";

/// The measurement of `period`'s rows.
pub fn measurement(period: Period) -> String {
    format!("{BILLING_PREFIX}{}", period.name())
}

/// What a row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Pod,
    Namespace,
    Node,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Pod => "pod",
            Kind::Namespace => "namespace",
            Kind::Node => "node",
        }
    }
}

/// The usage of the samples taken at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    pub at: i64,
    pub usage: Usage,
}

/// One pod's (or, with only `namespace` and `gpu_model` set, one namespace's) usage in a
/// period; at minute level with its slices (and `usage` their sum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub identity: PodIdentity,
    pub usage: Usage,
    pub slices: Vec<Slice>,
}

impl UsageRow {
    /// The row's usage in `w`: all of it, or at minute level the slices taken in `w`.
    pub fn usage_in(&self, w: Window) -> Usage {
        if self.slices.is_empty() {
            return self.usage.clone();
        }
        let mut u = Usage::default();
        for s in self.slices.iter().filter(|s| w.contains(s.at)) {
            u.merge(&s.usage);
        }
        u
    }
}

/// A node's allocatable over a period: millicore-ns and byte-ns, with slices at minute level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeRow {
    pub node: String,
    pub cpu: u128,
    pub memory: u128,
    /// `(at, cpu, memory)` of the samples taken at each instant (minute rows).
    pub slices: Vec<(i64, u128, u128)>,
}

impl NodeRow {
    /// The allocatable in `w` (all of it, or the slices taken in `w`).
    pub fn in_window(&self, w: Window) -> (u128, u128) {
        if self.slices.is_empty() {
            return (self.cpu, self.memory);
        }
        self.slices
            .iter()
            .filter(|(at, _, _)| w.contains(*at))
            .fold((0, 0), |(c, m), (_, sc, sm)| (c + sc, m + sm))
    }
}

/// Everything metered for one period of one cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeriodRows {
    pub pods: Vec<UsageRow>,
    pub namespaces: Vec<UsageRow>,
    pub nodes: Vec<NodeRow>,
}

impl PeriodRows {
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty() && self.namespaces.is_empty() && self.nodes.is_empty()
    }
}

/// `a:b,c:d`, each end in ns relative to `origin`.
pub fn encode_spans(set: &IntervalSet, origin: i64) -> String {
    let parts: Vec<String> = set
        .spans()
        .iter()
        .map(|(a, b)| format!("{}:{}", a - origin, b - origin))
        .collect();
    parts.join(",")
}

/// The inverse of [`encode_spans`]; `None` for text it did not write.
pub fn decode_spans(text: &str, origin: i64) -> Option<IntervalSet> {
    let mut set = IntervalSet::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once(':')?;
        let a = origin.checked_add(a.parse().ok()?)?;
        let b = origin.checked_add(b.parse().ok()?)?;
        set.insert(a, b);
    }
    Some(set)
}

/// Quantities as decimal strings (JSON numbers past 2⁶⁴ are not portable).
fn encode_q(q: &Quantities) -> Vec<String> {
    q.to_vec().iter().map(u128::to_string).collect()
}

fn decode_q(v: &[String]) -> Option<Quantities> {
    let nums: Option<Vec<u128>> = v.iter().map(|s| s.parse().ok()).collect();
    Some(Quantities::from_slice(&nums?))
}

#[derive(Debug, Serialize, Deserialize)]
struct SliceJson {
    at: i64,
    q: Vec<String>,
    seen: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    cpu: String,
}

/// Where CPU came from, as stored (`counter`, `rate`, `counter+rate`; unknown text: neither).
fn cpu_source(text: &str) -> CpuSource {
    CpuSource::parse(text).unwrap_or_default()
}

/// The `row` of a pod or namespace row (short keys: a month of rows is read at once).
#[derive(Debug, Default, Serialize, Deserialize)]
struct UsageJson {
    ns: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pod: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    uid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    node: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    wk: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    wn: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gpu: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    host: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    q: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    seen: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    cpu: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sl: Vec<SliceJson>,
}

impl UsageJson {
    fn new(r: &UsageRow, start: i64) -> UsageJson {
        let id = &r.identity;
        let mut j = UsageJson {
            ns: id.namespace.clone(),
            pod: id.pod.clone(),
            uid: id.pod_uid.clone(),
            node: id.node.clone(),
            wk: id.workload_kind.clone(),
            wn: id.workload_name.clone(),
            labels: id.labels.clone(),
            gpu: id.gpu_model.clone(),
            host: id.host_network,
            ..UsageJson::default()
        };
        if r.slices.is_empty() {
            j.q = encode_q(&r.usage.quantities);
            j.seen = encode_spans(&r.usage.observed, start);
            j.cpu = r.usage.cpu_source.as_str().to_string();
        } else {
            j.sl = r
                .slices
                .iter()
                .map(|s| SliceJson {
                    at: s.at - start,
                    q: encode_q(&s.usage.quantities),
                    seen: encode_spans(&s.usage.observed, start),
                    cpu: s.usage.cpu_source.as_str().to_string(),
                })
                .collect();
        }
        j
    }

    fn into_row(self, start: i64) -> Option<UsageRow> {
        let identity = PodIdentity {
            namespace: self.ns,
            pod: self.pod,
            pod_uid: self.uid,
            workload_kind: self.wk,
            workload_name: self.wn,
            node: self.node,
            labels: self.labels,
            host_network: self.host,
            gpu_model: self.gpu,
        };
        let mut slices = Vec::with_capacity(self.sl.len());
        for s in self.sl {
            slices.push(Slice {
                at: start.checked_add(s.at)?,
                usage: Usage {
                    quantities: decode_q(&s.q)?,
                    observed: decode_spans(&s.seen, start)?,
                    cpu_source: cpu_source(&s.cpu),
                },
            });
        }
        let usage = if slices.is_empty() {
            Usage {
                quantities: decode_q(&self.q)?,
                observed: decode_spans(&self.seen, start)?,
                cpu_source: cpu_source(&self.cpu),
            }
        } else {
            let mut u = Usage::default();
            for s in &slices {
                u.merge(&s.usage);
            }
            u
        };
        Some(UsageRow {
            identity,
            usage,
            slices,
        })
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct NodeJson {
    node: String,
    #[serde(default)]
    cpu: String,
    #[serde(default)]
    mem: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sl: Vec<(i64, String, String)>,
}

impl NodeJson {
    fn new(n: &NodeRow, start: i64) -> NodeJson {
        NodeJson {
            node: n.node.clone(),
            cpu: n.cpu.to_string(),
            mem: n.memory.to_string(),
            sl: n
                .slices
                .iter()
                .map(|(at, c, m)| (at - start, c.to_string(), m.to_string()))
                .collect(),
        }
    }

    fn into_row(self, start: i64) -> Option<NodeRow> {
        let mut slices = Vec::with_capacity(self.sl.len());
        for (at, c, m) in self.sl {
            slices.push((start.checked_add(at)?, c.parse().ok()?, m.parse().ok()?));
        }
        Some(NodeRow {
            node: self.node,
            cpu: self.cpu.parse().ok()?,
            memory: self.mem.parse().ok()?,
            slices,
        })
    }
}

/// Why rows could not be written.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error(transparent)]
    Line(#[from] LineError),
    #[error("a metered row could not be written as JSON")]
    Json(#[from] serde_json::Error),
}

fn tags(cluster: &str, kind: Kind, writer: &str) -> String {
    let mut t = String::new();
    push_tag(&mut t, CLUSTER, cluster);
    push_tag(&mut t, KIND, kind.tag());
    push_tag(&mut t, WRITER, writer);
    t
}

/// Appends the rows of the period starting at `start`, written by `writer`, to `buf`: each
/// kind's rows sorted (so a rewrite numbers them the same way) and packed at `start + index`.
pub fn encode(
    buf: &mut String,
    period: Period,
    start: i64,
    cluster: &str,
    writer: &str,
    rows: &PeriodRows,
) -> Result<(), EncodeError> {
    let m = measurement(period);
    let mut put = |kind: Kind, jsons: Vec<String>| -> Result<(), EncodeError> {
        let t = tags(cluster, kind, writer);
        for (i, json) in jsons.iter().enumerate() {
            write_fields(buf, &m, &t, &[(ROW, Field::Str(json))], start + i as i64)?;
        }
        Ok(())
    };
    let mut pods: Vec<&UsageRow> = rows.pods.iter().collect();
    pods.sort_by(|a, b| a.identity.cmp(&b.identity));
    put(
        Kind::Pod,
        pods.iter()
            .map(|r| serde_json::to_string(&UsageJson::new(r, start)))
            .collect::<Result<_, _>>()?,
    )?;
    let mut namespaces: Vec<&UsageRow> = rows.namespaces.iter().collect();
    namespaces.sort_by(|a, b| a.identity.cmp(&b.identity));
    put(
        Kind::Namespace,
        namespaces
            .iter()
            .map(|r| serde_json::to_string(&UsageJson::new(r, start)))
            .collect::<Result<_, _>>()?,
    )?;
    let mut nodes: Vec<&NodeRow> = rows.nodes.iter().collect();
    nodes.sort_by(|a, b| a.node.cmp(&b.node));
    put(
        Kind::Node,
        nodes
            .iter()
            .map(|n| serde_json::to_string(&NodeJson::new(n, start)))
            .collect::<Result<_, _>>()?,
    )
}

fn time_conds(w: Window) -> [Cond; 2] {
    Cond::window(w.from, w.to)
}

/// Whose rows a read takes: a minute the job recomputed is read from the job's rows only (a
/// collector's spooled rows for it may arrive later), other minutes from the collector's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writers {
    Any,
    Job,
    Collector,
}

/// Reads the `kind` rows of `period` starting in `w` of `cluster`.
pub fn select(period: Period, w: Window, cluster: &str, kind: Kind) -> String {
    select_from(period, w, cluster, kind, Writers::Any)
}

/// [`select`], taking only the rows of `writers`.
pub fn select_from(
    period: Period,
    w: Window,
    cluster: &str,
    kind: Kind,
    writers: Writers,
) -> String {
    let mut s = Select::new(
        Projection::Fields(vec![ROW.into()]),
        Source::Measurement(measurement(period)),
    );
    s.conditions = vec![
        Cond::TagEq(CLUSTER.into(), cluster.into()),
        Cond::TagEq(KIND.into(), kind.tag().into()),
    ];
    match writers {
        Writers::Any => {}
        Writers::Job => s
            .conditions
            .push(Cond::TagEq(WRITER.into(), JOB_WRITER.into())),
        Writers::Collector => s
            .conditions
            .push(Cond::TagNe(WRITER.into(), JOB_WRITER.into())),
    }
    s.conditions.extend(time_conds(w));
    s.to_influxql()
}

/// Removes every row of `cluster` in the period starting at `start`, whoever wrote it.
pub fn delete(period: Period, start: i64, cluster: &str) -> String {
    let mut conditions = vec![Cond::TagEq(CLUSTER.into(), cluster.into())];
    conditions.extend(time_conds(period.window(start)));
    Delete {
        from: measurement(period),
        conditions,
    }
    .to_influxql()
}

/// `(period start, JSON)` of each row in an answer to [`select`]; rows not of `period`'s
/// layout are skipped.
fn rows_of(period: Period, answer: &[Series]) -> impl Iterator<Item = (i64, &str)> {
    answer
        .iter()
        .flat_map(|s| s.values.iter())
        .filter_map(move |row| {
            let t = row.first()?.as_i64()?;
            Some((period.floor(t), row.get(1)?.as_str()?))
        })
}

/// The pod or namespace rows in an answer to [`select`], with their period's start. Rows this
/// code did not write are skipped rather than guessed.
pub fn decode_usage(period: Period, answer: &[Series]) -> Vec<(i64, UsageRow)> {
    rows_of(period, answer)
        .filter_map(|(start, json)| {
            let parsed: UsageJson = serde_json::from_str(json).ok()?;
            Some((start, parsed.into_row(start)?))
        })
        .collect()
}

/// The node rows in an answer to [`select`].
pub fn decode_nodes(period: Period, answer: &[Series]) -> Vec<(i64, NodeRow)> {
    rows_of(period, answer)
        .filter_map(|(start, json)| {
            let parsed: NodeJson = serde_json::from_str(json).ok()?;
            Some((start, parsed.into_row(start)?))
        })
        .collect()
}

/// Namespace rows from pod rows: per namespace and GPU model, quantities added and
/// observation united.
pub fn namespace_rows(pods: &[UsageRow]) -> Vec<UsageRow> {
    let mut acc: BTreeMap<(String, Option<String>), Usage> = BTreeMap::new();
    for p in pods {
        let key = (p.identity.namespace.clone(), p.identity.gpu_model.clone());
        acc.entry(key).or_default().merge(&p.usage);
    }
    acc.into_iter()
        .map(|((namespace, gpu_model), usage)| UsageRow {
            identity: PodIdentity {
                namespace,
                gpu_model,
                ..PodIdentity::default()
            },
            usage,
            slices: Vec::new(),
        })
        .collect()
}

/// A row as the statement engine takes it.
pub fn pod_usage(row: UsageRow, w: Window) -> PodUsage {
    let usage = row.usage_in(w);
    PodUsage {
        identity: row.identity,
        usage,
    }
}

/// The tag key of nodes in raw series, for callers that build node rows from them.
pub const NODE_TAG: &str = NODE;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::Triple;

    const M: i64 = super::super::period::NS_PER_MINUTE;

    fn usage(cpu: u128, from: i64, to: i64) -> Usage {
        let mut observed = IntervalSet::new();
        observed.insert(from, to);
        Usage {
            cpu_source: CpuSource {
                counter: true,
                rate: false,
            },
            quantities: Quantities {
                cpu: Triple {
                    usage: cpu,
                    request: 0,
                    max: cpu,
                },
                // 1 GiB for an hour, in byte-ns: past 2⁶⁴.
                memory: Triple {
                    usage: 3_865_470_566_400_000_000_000,
                    request: 1,
                    max: 3_865_470_566_400_000_000_000,
                },
                ..Default::default()
            },
            observed,
        }
    }

    fn pod(name: &str) -> PodIdentity {
        PodIdentity {
            namespace: "shop".into(),
            pod: name.into(),
            pod_uid: format!("uid-{name}"),
            workload_kind: "Deployment".into(),
            workload_name: "web".into(),
            node: "n1".into(),
            labels: BTreeMap::from([("team".into(), "a b".into())]),
            host_network: false,
            gpu_model: Some("A100".into()),
        }
    }

    fn answer(period: Period, buf: &str, kind: &str) -> Vec<Series> {
        // What InfluxDB answers to `SELECT "row"` with epoch=ns, parsed from the line protocol.
        let values = buf
            .lines()
            .filter(|l| l.contains(&format!("kind={kind},")))
            .map(|l| {
                let (head, time) = l.rsplit_once(' ').unwrap();
                let json = head.split_once(" row=").unwrap().1;
                let json = json[1..json.len() - 1]
                    .replace("\\\"", "\"")
                    .replace("\\\\", "\\");
                vec![
                    serde_json::json!(time.parse::<i64>().unwrap()),
                    serde_json::json!(json),
                ]
            })
            .collect();
        vec![Series {
            name: measurement(period),
            tags: BTreeMap::new(),
            columns: vec!["time".into(), "row".into()],
            values,
        }]
    }

    #[test]
    fn rows_of_a_period_are_packed_into_one_series_at_start_plus_index() {
        let start = 180 * M;
        let rows = PeriodRows {
            pods: vec![
                UsageRow {
                    identity: pod("web-2"),
                    usage: usage(5, start, start + M),
                    slices: vec![],
                },
                UsageRow {
                    identity: pod("web-1"),
                    usage: usage(7, start - 15, start + M),
                    slices: vec![],
                },
            ],
            ..Default::default()
        };
        let mut buf = String::new();
        encode(&mut buf, Period::Hour, start, "prod", JOB_WRITER, &rows).unwrap();
        let lines: Vec<&str> = buf.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("billing/hour,cluster_name=prod,kind=pod,writer=job row=\""));
        // Sorted by identity (web-1 first), at start + 0 and start + 1.
        assert!(lines[0].contains("web-1") && lines[0].ends_with(&format!(" {start}")));
        assert!(lines[1].contains("web-2") && lines[1].ends_with(&format!(" {}", start + 1)));
        let back = decode_usage(Period::Hour, &answer(Period::Hour, &buf, "pod"));
        let mut want = rows.pods.clone();
        want.reverse();
        assert_eq!(
            back,
            want.into_iter().map(|r| (start, r)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_minute_row_is_cut_at_its_slices() {
        let start = 3 * M;
        let row = UsageRow {
            identity: pod("job"),
            usage: Usage::default(),
            slices: vec![
                Slice {
                    at: start + 5_000_000_000,
                    usage: usage(1, start - 10_000_000_000, start + 5_000_000_000),
                },
                Slice {
                    at: start + 20_000_000_000,
                    usage: usage(10, start + 5_000_000_000, start + 20_000_000_000),
                },
            ],
        };
        let mut buf = String::new();
        let rows = PeriodRows {
            pods: vec![row],
            ..Default::default()
        };
        encode(&mut buf, Period::Minute, start, "c", "0", &rows).unwrap();
        let back = decode_usage(Period::Minute, &answer(Period::Minute, &buf, "pod"));
        let (_, r) = &back[0];
        assert_eq!(r.usage.quantities.cpu.usage, 11);
        let after = Window::new(start + 6_000_000_000, start + M).unwrap();
        assert_eq!(r.usage_in(after).quantities.cpu.usage, 10);
        let before = Window::new(start, start + 5_000_000_001).unwrap();
        assert_eq!(r.usage_in(before).quantities.cpu.usage, 1);
    }

    #[test]
    fn reads_and_rewrites_of_a_period_render_exactly() {
        let w = Window::new(0, M).unwrap();
        assert_eq!(
            select(Period::Minute, w, "prod", Kind::Namespace),
            "SELECT \"row\" FROM \"billing/minute\" WHERE \"cluster_name\" = 'prod' AND \
             \"kind\" = 'namespace' AND time >= '1970-01-01T00:00:00Z' AND \
             time < '1970-01-01T00:01:00Z'"
        );
        assert_eq!(
            delete(Period::TenMinutes, 0, "prod"),
            "DELETE FROM \"billing/10m\" WHERE \"cluster_name\" = 'prod' AND \
             time >= '1970-01-01T00:00:00Z' AND time < '1970-01-01T00:10:00Z'"
        );
    }

    #[test]
    fn namespace_rows_add_up_their_pods_per_gpu_model() {
        let mut cpu_pod = pod("a");
        cpu_pod.gpu_model = None;
        let rows = [
            UsageRow {
                identity: pod("x"),
                usage: usage(2, 0, 10),
                slices: vec![],
            },
            UsageRow {
                identity: pod("y"),
                usage: usage(3, 5, 20),
                slices: vec![],
            },
            UsageRow {
                identity: cpu_pod,
                usage: usage(4, 0, 1),
                slices: vec![],
            },
        ];
        let ns = namespace_rows(&rows);
        assert_eq!(ns.len(), 2);
        let gpu = ns.iter().find(|r| r.identity.gpu_model.is_some()).unwrap();
        assert_eq!(gpu.usage.quantities.cpu.usage, 5);
        assert_eq!(gpu.usage.observed.spans(), &[(0, 20)]);
        assert_eq!(gpu.identity.pod, "");
    }

    #[test]
    fn spans_that_were_not_written_by_us_are_refused() {
        assert_eq!(decode_spans("", 5), Some(IntervalSet::new()));
        assert!(decode_spans("1-2", 0).is_none());
        assert!(decode_spans("a:b", 0).is_none());
    }
}
