//! Billing rollups in InfluxDB: one point per pod and UTC hour (`billing/pod_hour`), day
//! (`billing/pod_day`) or week from Monday (`billing/pod_week`), at the period's start, and a
//! marker per finished period (`billing/rolled_up`).
//!
//! Schema of a rollup point:
//! * tags: the pod's identity as the raw series carry it (`namespace_name`, `pod_name`,
//!   `pod_id`, `nodename`, `workload_kind`, `workload_name`, `label_<key>`), plus `gpu_model`
//!   and `host_network=true` when they apply;
//! * integer fields `<quantity>_hi` and `<quantity>_lo` with `q = hi × 10⁹ + lo` for each exact
//!   quantity (`cpu_usage|request|max` in millicore-ns, `memory_*` and `ephemeral_*` in
//!   byte-ns, `gpu` in GPU-ns, `net_rx`, `net_tx` in bytes; GPU efficiency: `gpu_util` in
//!   percent-ns, `gpu_memory_used|total` in byte-ns). A GiB held for an hour is
//!   3.9 × 10²¹ byte-ns, past InfluxDB's i64; split this way every part fits, and
//!   `sum("x_hi")`, `sum("x_lo")` stay exact for one pod over years. Zero parts are left out
//!   (read back as 0);
//! * string field `row`: the whole rollup in one value (identity, quantities as exact decimal
//!   integers, observed intervals as `a:b,c:d` in ns relative to the point's time, where the
//!   CPU came from when not only the counter), as JSON.
//!   It is what kubemeter reads: InfluxDB 1.x returns one field of 30 000 points several
//!   times faster than 25 fields or `GROUP BY *`, which is what keeps a month of 1 000 pods
//!   well under 200 ms. The integer fields are for InfluxQL users (`sum()` over them is
//!   exact); both are written together from the same integers.
//!
//! Nodes' allocatable over each period is kept beside them (`billing/node_*`, see
//! [`super::capacity`]) and rewritten with them.
//!
//! A marker `billing/rolled_up,basis=<memory gauge>,period=hour|day|week
//! pods=<n>i,written=<ns>i <start>` says the period's points are complete and how they were computed;
//! readers use rollups only for periods marked on their own basis, raw samples for the rest.

use std::collections::BTreeMap;

use chrono::DateTime;
use serde::{Deserialize, Serialize};

use crate::billing::{CpuSource, IntervalSet, PodIdentity, Quantities, Triple, Usage, Window};
use crate::catalogue::{
    BILLING_NODE_DAY, BILLING_NODE_HOUR, BILLING_NODE_WEEK, BILLING_POD_DAY, BILLING_POD_HOUR,
    BILLING_POD_WEEK, BILLING_ROLLED_UP,
};
use crate::influx::line::{push_tag, write_fields, Field, LineError};
use crate::influx::ql::{Cond, Delete, Projection, Select, Source};
use crate::influx::Series;

use super::series::{self, LABEL_PREFIX};

/// Nanoseconds in a UTC day.
pub const NS_PER_DAY: i64 = 24 * crate::billing::samples::NS_PER_HOUR;
const SPLIT: u128 = 1_000_000_000;
const GPU_MODEL: &str = "gpu_model";
const HOST_NETWORK: &str = "host_network";
const ROW: &str = "row";
const PERIOD: &str = "period";
const BASIS: &str = "basis";
const PODS: &str = "pods";
/// When a marker was written (ns): a rewrite gives a new one, so a reader can tell.
const WRITTEN: &str = "written";

/// The length of a rollup. Each is made exactly from the next shorter one: a day from its 24
/// hours, a week (Monday to Monday, UTC) from its 7 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    Hour,
    Day,
    Week,
}

/// 1970-01-05, the first Monday of the epoch: weeks start there.
const FIRST_MONDAY: i64 = 4 * NS_PER_DAY;

impl Period {
    pub fn measurement(self) -> &'static str {
        match self {
            Period::Hour => BILLING_POD_HOUR,
            Period::Day => BILLING_POD_DAY,
            Period::Week => BILLING_POD_WEEK,
        }
    }

    /// Where nodes' allocatable over the period is kept ([`super::capacity`]).
    pub fn node_measurement(self) -> &'static str {
        match self {
            Period::Hour => BILLING_NODE_HOUR,
            Period::Day => BILLING_NODE_DAY,
            Period::Week => BILLING_NODE_WEEK,
        }
    }

    pub fn len_ns(self) -> i64 {
        match self {
            Period::Hour => crate::billing::samples::NS_PER_HOUR,
            Period::Day => NS_PER_DAY,
            Period::Week => 7 * NS_PER_DAY,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Week => "week",
        }
    }

    /// The shorter period this one is made of, and how many of them.
    pub fn parts(self) -> Option<(Period, usize)> {
        match self {
            Period::Hour => None,
            Period::Day => Some((Period::Hour, 24)),
            Period::Week => Some((Period::Day, 7)),
        }
    }

    /// Start of the period containing `t` (saturating at the ends of `i64`).
    pub fn floor(self, t: i64) -> i64 {
        let origin = if self == Period::Week {
            FIRST_MONDAY
        } else {
            0
        };
        // In i128 so that `t - origin` cannot wrap near i64::MIN.
        let offset = (i128::from(t) - i128::from(origin)).rem_euclid(i128::from(self.len_ns()));
        t.saturating_sub(offset as i64)
    }

    /// The period starting at `start` (ending at i64::MAX at the latest).
    pub fn window(self, start: i64) -> Window {
        Window {
            from: start,
            to: start.saturating_add(self.len_ns()),
        }
    }
}

/// One pod's usage over one period, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollup {
    pub identity: PodIdentity,
    pub start: i64,
    pub usage: Usage,
}

/// Field names of the quantities, in storage order.
const QUANTITIES: [&str; 15] = [
    "cpu_usage",
    "cpu_request",
    "cpu_max",
    "memory_usage",
    "memory_request",
    "memory_max",
    "ephemeral_usage",
    "ephemeral_request",
    "ephemeral_max",
    "gpu",
    "net_rx",
    "net_tx",
    "gpu_util",
    "gpu_memory_used",
    "gpu_memory_total",
];

fn to_array(q: &Quantities) -> [u128; 15] {
    let t = |t: &Triple| [t.usage, t.request, t.max];
    let [a, b, c] = t(&q.cpu);
    let [d, e, f] = t(&q.memory);
    let [g, h, i] = t(&q.ephemeral);
    [
        a,
        b,
        c,
        d,
        e,
        f,
        g,
        h,
        i,
        q.gpu,
        q.net_rx,
        q.net_tx,
        q.gpu_util,
        q.gpu_memory_used,
        q.gpu_memory_total,
    ]
}

/// The billed quantities `v` (the row's `q`) and the GPU efficiency ones `e` (its `e`).
fn from_array(v: [u128; 12], e: [u128; 3]) -> Quantities {
    let t = |i: usize| Triple {
        usage: v[i],
        request: v[i + 1],
        max: v[i + 2],
    };
    Quantities {
        cpu: t(0),
        memory: t(3),
        ephemeral: t(6),
        gpu: v[9],
        net_rx: v[10],
        net_tx: v[11],
        gpu_util: e[0],
        gpu_memory_used: e[1],
        gpu_memory_total: e[2],
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

/// The identity's tags, sorted and escaped, as line protocol wants them.
fn tagset(id: &PodIdentity) -> String {
    let mut tags: Vec<(String, &str)> = vec![
        (series::NAMESPACE.into(), &id.namespace),
        (series::POD.into(), &id.pod),
        (series::POD_UID.into(), &id.pod_uid),
        (series::NODE.into(), &id.node),
        (series::WORKLOAD_KIND.into(), &id.workload_kind),
        (series::WORKLOAD_NAME.into(), &id.workload_name),
    ];
    tags.extend(
        id.labels
            .iter()
            .map(|(k, v)| (format!("{LABEL_PREFIX}{k}"), v.as_str())),
    );
    if let Some(model) = &id.gpu_model {
        tags.push((GPU_MODEL.into(), model));
    }
    if id.host_network {
        tags.push((HOST_NETWORK.into(), "true"));
    }
    tags.sort();
    let mut out = String::new();
    for (k, v) in &tags {
        push_tag(&mut out, k, v);
    }
    out
}

/// The `row` field: a rollup in one JSON value (short keys: it is read 30 000 times a month).
#[derive(Debug, Serialize, Deserialize)]
struct Row {
    ns: String,
    pod: String,
    uid: String,
    node: String,
    wk: String,
    wn: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gpu: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    host: bool,
    q: [u128; 12],
    /// GPU efficiency (`gpu_util`, `gpu_memory_used`, `gpu_memory_total`), when any.
    #[serde(default, skip_serializing_if = "is_zero")]
    e: [u128; 3],
    seen: String,
    /// Where the CPU came from, left out for the usual `counter` ([`CpuSource::as_str`];
    /// `none` when no CPU sample counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cpu: Option<String>,
}

fn is_zero(e: &[u128; 3]) -> bool {
    e.iter().all(|x| *x == 0)
}

const NO_CPU: &str = "none";

fn encode_source(source: CpuSource) -> Option<String> {
    match source.as_str() {
        "counter" => None,
        "" => Some(NO_CPU.into()),
        other => Some(other.into()),
    }
}

fn decode_source(text: Option<&str>) -> Option<CpuSource> {
    match text {
        None => CpuSource::parse("counter"),
        Some(NO_CPU) => Some(CpuSource::default()),
        Some(other) => CpuSource::parse(other).filter(|s| *s != CpuSource::default()),
    }
}

impl Row {
    fn new(r: &Rollup) -> Row {
        let id = &r.identity;
        let q = to_array(&r.usage.quantities);
        Row {
            ns: id.namespace.clone(),
            pod: id.pod.clone(),
            uid: id.pod_uid.clone(),
            node: id.node.clone(),
            wk: id.workload_kind.clone(),
            wn: id.workload_name.clone(),
            labels: id.labels.clone(),
            gpu: id.gpu_model.clone(),
            host: id.host_network,
            q: q[..12].try_into().unwrap_or_default(),
            e: q[12..].try_into().unwrap_or_default(),
            seen: encode_spans(&r.usage.observed, r.start),
            cpu: encode_source(r.usage.cpu_source),
        }
    }

    fn into_rollup(self, start: i64) -> Option<Rollup> {
        Some(Rollup {
            identity: PodIdentity {
                namespace: self.ns,
                pod: self.pod,
                pod_uid: self.uid,
                workload_kind: self.wk,
                workload_name: self.wn,
                node: self.node,
                labels: self.labels,
                host_network: self.host,
                gpu_model: self.gpu,
            },
            start,
            usage: Usage {
                quantities: from_array(self.q, self.e),
                observed: decode_spans(&self.seen, start)?,
                cpu_source: decode_source(self.cpu.as_deref())?,
            },
        })
    }
}

/// Why a rollup could not become a point.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error(transparent)]
    Line(#[from] LineError),
    #[error("the rollup's row could not be written as JSON")]
    Row(#[from] serde_json::Error),
}

/// Appends the point of `r` to `buf`.
pub fn encode(buf: &mut String, period: Period, r: &Rollup) -> Result<(), EncodeError> {
    let names: Vec<(String, String)> = QUANTITIES
        .iter()
        .map(|q| (format!("{q}_hi"), format!("{q}_lo")))
        .collect();
    let row = serde_json::to_string(&Row::new(r))?;
    let mut fields: Vec<(&str, Field)> = Vec::with_capacity(25);
    for ((hi, lo), q) in names.iter().zip(to_array(&r.usage.quantities)) {
        // q / 10⁹ < 2¹²⁸ / 10⁹ overflows i64 only past 9.2 × 10²⁷ (a 2.5 PiB-hour): saturate
        // rather than wrap, though no pod gets near it.
        let high = i64::try_from(q / SPLIT).unwrap_or(i64::MAX);
        let low = (q % SPLIT) as i64;
        if high != 0 {
            fields.push((hi, Field::Int(high)));
        }
        if low != 0 {
            fields.push((lo, Field::Int(low)));
        }
    }
    fields.push((ROW, Field::Str(&row)));
    write_fields(
        buf,
        period.measurement(),
        &tagset(&r.identity),
        &fields,
        r.start,
    )?;
    Ok(())
}

/// Appends the marker saying `period` starting at `start` is complete with `pods` points,
/// computed on `basis` (see [`crate::metering::Metering::basis`]).
pub fn encode_marker(
    buf: &mut String,
    period: Period,
    start: i64,
    pods: usize,
    basis: &str,
    written: i64,
) -> Result<(), LineError> {
    let mut tags = String::new();
    push_tag(&mut tags, BASIS, basis);
    push_tag(&mut tags, PERIOD, period.tag());
    let pods = i64::try_from(pods).unwrap_or(i64::MAX);
    write_fields(
        buf,
        BILLING_ROLLED_UP,
        &tags,
        &[(PODS, Field::Int(pods)), (WRITTEN, Field::Int(written))],
        start,
    )
}

fn at(ns: i64) -> chrono::DateTime<chrono::Utc> {
    DateTime::from_timestamp_nanos(ns)
}

pub(crate) fn time_conds(w: Window) -> [Cond; 2] {
    [Cond::TimeGe(at(w.from)), Cond::TimeLt(at(w.to))]
}

/// Reads the rollups of `period` starting in `w`, restricted by the scope's `conds`.
pub fn select(period: Period, w: Window, conds: &[Cond]) -> String {
    let mut s = Select::new(
        Projection::Fields(vec![ROW.into()]),
        Source::Measurement(period.measurement().into()),
    );
    s.conditions = conds.to_vec();
    s.conditions.extend(time_conds(w));
    s.to_influxql()
}

/// Reads the markers of `period` in `w` made on `basis`: rollups computed with another memory
/// gauge (or under an older rule) are not the numbers this reader would compute, so they are
/// not used (raw samples are).
pub fn select_markers(period: Period, w: Window, basis: &str) -> String {
    let mut s = Select::new(
        Projection::Fields(vec![PODS.into(), WRITTEN.into()]),
        Source::Measurement(BILLING_ROLLED_UP.into()),
    );
    s.conditions = vec![
        Cond::TagEq(BASIS.into(), basis.into()),
        Cond::TagEq(PERIOD.into(), period.tag().into()),
    ];
    s.conditions.extend(time_conds(w));
    s.to_influxql()
}

/// Removes the rollups and the marker of the period starting at `start`, before rewriting it
/// (a pod whose identity changed must not keep its old point).
pub fn delete(period: Period, start: i64) -> [String; 3] {
    let w = period.window(start);
    let points = Delete {
        from: period.measurement().into(),
        conditions: time_conds(w).to_vec(),
    };
    let mut marker_conds = vec![Cond::TagEq(PERIOD.into(), period.tag().into())];
    marker_conds.extend(time_conds(w));
    let marker = Delete {
        from: BILLING_ROLLED_UP.into(),
        conditions: marker_conds,
    };
    let nodes = Delete {
        from: period.node_measurement().into(),
        conditions: time_conds(w).to_vec(),
    };
    [
        marker.to_influxql(),
        points.to_influxql(),
        nodes.to_influxql(),
    ]
}

/// The marked periods in an answer to [`select_markers`]: start → when the marker was
/// written (0 for a marker without that field).
pub fn decode_markers(series: &[Series]) -> BTreeMap<i64, i64> {
    series
        .iter()
        .flat_map(|s| {
            let written = s.columns.iter().position(|c| c == WRITTEN);
            s.values.iter().filter_map(move |row| {
                let at = written.and_then(|i| row.get(i)?.as_i64()).unwrap_or(0);
                Some((row.first()?.as_i64()?, at))
            })
        })
        .collect()
}

/// The rollups in an answer to [`select`] (`epoch=ns`). Rows this code did not write are
/// skipped rather than guessed.
pub fn decode(answer: &[Series]) -> Vec<Rollup> {
    answer
        .iter()
        .flat_map(|s| s.values.iter())
        .filter_map(|row| {
            let start = row.first()?.as_i64()?;
            let parsed: Row = serde_json::from_str(row.get(1)?.as_str()?).ok()?;
            parsed.into_rollup(start)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const H: i64 = crate::billing::samples::NS_PER_HOUR;

    fn rollup() -> Rollup {
        let mut observed = IntervalSet::new();
        observed.insert(10 * H - 15_000_000_000, 10 * H + 1_200_000_000_000);
        observed.insert(10 * H + 1_785_000_000_000, 11 * H - 15_000_000_000);
        let quantities = Quantities {
            // 1 GiB for an hour: past i64.
            memory: Triple {
                usage: 3_865_470_566_400_000_000_000,
                request: 0,
                max: 3_865_470_566_400_000_000_000,
            },
            cpu: Triple {
                usage: 718_000_000_000_000,
                request: 1,
                max: 999_999_999,
            },
            gpu: 7_200_000_000_000,
            ..Default::default()
        };
        Rollup {
            identity: PodIdentity {
                namespace: "shop".into(),
                pod: "web 0".into(),
                pod_uid: "u-1".into(),
                workload_kind: "Deployment".into(),
                workload_name: "web".into(),
                node: "n1".into(),
                labels: BTreeMap::from([("team".into(), "a".into())]),
                host_network: false,
                gpu_model: Some("nvidia-tesla-v100".into()),
            },
            start: 10 * H,
            usage: Usage {
                quantities,
                observed,
                cpu_source: CpuSource {
                    counter: true,
                    rate: false,
                },
            },
        }
    }

    #[test]
    fn a_rollup_point_splits_each_quantity_into_i64_safe_parts_exactly() {
        let mut buf = String::new();
        encode(&mut buf, Period::Hour, &rollup()).unwrap();
        let (head, row) = buf.split_once(",row=").unwrap();
        assert_eq!(
            head,
            "billing/pod_hour,gpu_model=nvidia-tesla-v100,label_team=a,namespace_name=shop,\
             nodename=n1,pod_id=u-1,pod_name=web\\ 0,workload_kind=Deployment,workload_name=web \
             cpu_usage_hi=718000i,cpu_request_lo=1i,cpu_max_lo=999999999i,\
             memory_usage_hi=3865470566400i,memory_max_hi=3865470566400i,gpu_hi=7200i"
        );
        assert!(row.ends_with("\" 36000000000000\n"), "{row}");
        assert!(
            row.contains(r#"\"seen\":\"-15000000000:1200000000000,1785000000000:3585000000000\""#),
            "{row}"
        );
        assert!(row.contains("3865470566400000000000"), "{row}");
    }

    #[test]
    fn a_rollup_read_back_is_the_rollup_written() {
        let r = rollup();
        let json = serde_json::to_string(&Row::new(&r)).unwrap();
        // What InfluxDB answers to `SELECT "row" …` with `epoch=ns`.
        let s = Series {
            name: BILLING_POD_HOUR.into(),
            tags: BTreeMap::new(),
            columns: vec!["time".into(), "row".into()],
            values: vec![
                vec![serde_json::json!(r.start), serde_json::json!(json)],
                vec![serde_json::json!(r.start), serde_json::json!("not ours")],
            ],
        };
        assert_eq!(decode(&[s]), vec![r]);
    }

    #[test]
    fn reads_and_rewrites_of_a_period_render_exactly() {
        let w = Window::new(10 * H, 11 * H).unwrap();
        assert_eq!(
            select(Period::Day, w, &[]),
            "SELECT \"row\" FROM \"billing/pod_day\" WHERE time >= '1970-01-01T10:00:00Z' \
             AND time < '1970-01-01T11:00:00Z'"
        );
        assert_eq!(
            select_markers(Period::Hour, w, "working_set/15s"),
            "SELECT \"pods\", \"written\" FROM \"billing/rolled_up\" WHERE \"basis\" = 'working_set/15s' \
             AND \"period\" = 'hour' AND time >= '1970-01-01T10:00:00Z' \
             AND time < '1970-01-01T11:00:00Z'"
        );
        assert_eq!(
            delete(Period::Hour, 10 * H),
            [
                "DELETE FROM \"billing/rolled_up\" WHERE \"period\" = 'hour' AND \
                 time >= '1970-01-01T10:00:00Z' AND time < '1970-01-01T11:00:00Z'"
                    .to_string(),
                "DELETE FROM \"billing/pod_hour\" WHERE time >= '1970-01-01T10:00:00Z' \
                 AND time < '1970-01-01T11:00:00Z'"
                    .to_string(),
                "DELETE FROM \"billing/node_hour\" WHERE time >= '1970-01-01T10:00:00Z' \
                 AND time < '1970-01-01T11:00:00Z'"
                    .to_string()
            ]
        );
        let mut buf = String::new();
        encode_marker(&mut buf, Period::Day, 0, 12, "usage/60s", 5).unwrap();
        assert_eq!(
            buf,
            "billing/rolled_up,basis=usage/60s,period=day pods=12i,written=5i 0\n"
        );
    }

    #[test]
    fn weeks_start_on_monday_and_days_at_midnight_utc() {
        // 2026-10-01T13:00Z is a Thursday; its week began on Monday 2026-09-28.
        let t = 1_790_859_600 * 1_000_000_000;
        assert_eq!(Period::Week.floor(t), 1_790_553_600 * 1_000_000_000);
        assert_eq!(Period::Day.floor(t), 1_790_812_800 * 1_000_000_000);
        assert_eq!(Period::Hour.floor(t), t);
        assert_eq!(Period::Week.parts(), Some((Period::Day, 7)));
    }

    #[test]
    fn spans_that_were_not_written_by_us_are_refused() {
        assert_eq!(decode_spans("", 5), Some(IntervalSet::new()));
        assert!(decode_spans("1-2", 0).is_none());
        assert!(decode_spans("a:b", 0).is_none());
    }
}
