//! The simulated cluster's past, as the collector would have written it. The model is a pure
//! function of time, so the kubelet summaries and API objects of any past instant can be
//! computed; the collector's own functions (`PodRecord`, owner resolution, `pod_info`,
//! `encode_summary`) turn them into points. `kubemeter demo` opens with a day of it, so that
//! charts, drill-downs and bills have content at once.

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::model::Model;
use super::objects::{objects_at, pod_objects, Kind, Objects};
use crate::collector::kube::{controller_of, namespace_ids, node_info, pod_info, PodRecord};
use crate::collector::owners::{resolve, OwnerGraph, OwnerRef, Parent};
use crate::collector::points::{encode_summary, encode_totals, Cluster, PodInfo, Totals};
use crate::collector::rates::Rates;
use crate::influx::{InfluxClient, InfluxError};

/// Rounds a counter series may miss before its last sample is forgotten (as the collector).
const KEEP_ROUNDS: u64 = 4;
/// Bytes of line protocol per `/write` request.
const BATCH_BYTES: usize = 4 << 20;

/// What the collector's tags depend on besides the cluster.
#[derive(Debug, Clone)]
pub struct Tagging {
    pub cluster_name: String,
    pub label_keys: Vec<String>,
}

fn typed<K: DeserializeOwned>(objects: &Objects, kind: Kind) -> Vec<K> {
    objects
        .iter()
        .filter(|((k, _, _), _)| *k == kind)
        .filter_map(|(_, v)| serde_json::from_value(v.clone()).ok())
        .collect()
}

/// ReplicaSets and Jobs by `(kind, namespace, name)`: what the collector's watches hold.
struct Controllers(HashMap<(&'static str, String, String), ObjectMeta>);

impl Controllers {
    fn new(objects: &Objects) -> Self {
        let mut map = HashMap::new();
        let mut add = |kind, meta: ObjectMeta| {
            let key = (
                kind,
                meta.namespace.clone().unwrap_or_default(),
                meta.name.clone().unwrap_or_default(),
            );
            map.insert(key, meta);
        };
        for rs in typed::<ReplicaSet>(objects, Kind::ReplicaSet) {
            add("ReplicaSet", rs.metadata);
        }
        for job in typed::<Job>(objects, Kind::Job) {
            add("Job", job.metadata);
        }
        Controllers(map)
    }
}

impl OwnerGraph for Controllers {
    fn parent(&self, namespace: &str, owner: &OwnerRef) -> Parent {
        let kind = match owner.kind.as_str() {
            "ReplicaSet" => "ReplicaSet",
            "Job" => "Job",
            _ => return Parent::Top,
        };
        let key = (kind, namespace.to_string(), owner.name.clone());
        match self.0.get(&key) {
            None => Parent::Unknown,
            Some(meta) => controller_of(meta).map_or(Parent::Top, Parent::Controller),
        }
    }
}

/// The collector's view of the simulated cluster at `t`: what its watches would hold.
pub fn cluster_at(model: &Model, t: DateTime<Utc>, tagging: &Tagging) -> Cluster {
    let objects = objects_at(model, t);
    let labels = namespace_labels(&typed(&objects, Kind::Namespace));
    cluster_of(&objects, tagging, &labels)
}

fn namespace_labels(namespaces: &[Namespace]) -> HashMap<String, BTreeMap<String, String>> {
    namespaces
        .iter()
        .filter_map(|ns| {
            let labels = ns.metadata.labels.clone().unwrap_or_default();
            Some((ns.metadata.name.clone()?, labels))
        })
        .collect()
}

/// The collector's view of `objects`, with the functions it uses on its watches' objects.
fn cluster_of(
    objects: &Objects,
    tagging: &Tagging,
    namespace_labels: &HashMap<String, BTreeMap<String, String>>,
) -> Cluster {
    let controllers = Controllers::new(objects);
    let namespaces: Vec<Namespace> = typed(objects, Kind::Namespace);
    let pods = typed::<Pod>(objects, Kind::Pod)
        .iter()
        .map(|pod| {
            let record = PodRecord::from_pod(pod);
            let owner = resolve(&record.meta, &controllers);
            let ns_labels = namespace_labels.get(&record.meta.namespace);
            let info = pod_info(&record, owner, &tagging.label_keys, ns_labels);
            (
                (record.meta.namespace.clone(), record.meta.name.clone()),
                info,
            )
        })
        .collect();
    let nodes = typed::<Node>(objects, Kind::Node)
        .iter()
        .filter_map(|n| Some((n.metadata.name.clone()?, node_info(n))))
        .collect();
    Cluster {
        name: tagging.cluster_name.clone(),
        pods,
        nodes,
        namespace_ids: namespace_ids(namespaces.iter().map(|ns| &ns.metadata)),
    }
}

/// One scrape round at `t`, as line protocol: every node's summary, then the namespace and
/// cluster sums. Returns the number of points.
pub fn round_at(
    model: &Model,
    t: DateTime<Utc>,
    tagging: &Tagging,
    rates: &mut Rates,
    out: &mut String,
) -> usize {
    let step = Duration::from_secs(15);
    round_of(model, (t, step), &cluster_at(model, t, tagging), rates, out)
}

fn round_of(
    model: &Model,
    (t, step): (DateTime<Utc>, Duration),
    cluster: &Cluster,
    rates: &mut Rates,
    out: &mut String,
) -> usize {
    let mut totals = Totals::default();
    let mut points = 0;
    for n in 0..model.config.nodes {
        let summary = model.summary(n, t);
        points += encode_summary(&summary, cluster, rates, &mut totals, out);
        // As the collector does: each node's round records the interval it was taken at.
        points += crate::collector::encode_interval(&summary, &cluster.name, step, out);
    }
    let t_ns = t.timestamp_nanos_opt().unwrap_or_default();
    points += encode_totals(&totals, &cluster.name, t_ns, out);
    rates.next_round(KEEP_ROUNDS);
    points
}

/// A pod's state as far as its tags and spec metrics go: its UID and its restart counts.
type PodState = (String, Vec<i32>);

/// [`cluster_at`] for consecutive instants, converting each pod's API objects once per state
/// instead of the whole cluster every round (nodes and namespaces do not change).
#[derive(Default)]
struct ClusterCache {
    base: Option<Cluster>,
    namespace_labels: HashMap<String, BTreeMap<String, String>>,
    pods: HashMap<PodState, ((String, String), PodInfo)>,
}

impl ClusterCache {
    fn at(&mut self, model: &Model, t: DateTime<Utc>, tagging: &Tagging) -> Cluster {
        let base = match &self.base {
            Some(base) => base.clone(),
            None => {
                let objects = objects_at(model, t);
                self.namespace_labels = namespace_labels(&typed(&objects, Kind::Namespace));
                let base = Cluster {
                    pods: HashMap::new(),
                    ..cluster_of(&objects, tagging, &HashMap::new())
                };
                self.base.insert(base).clone()
            }
        };
        let mut pods = HashMap::new();
        let mut seen = HashMap::new();
        for p in model.pods_at(t) {
            let state = (
                p.uid.clone(),
                p.containers.iter().map(|c| c.restarts).collect(),
            );
            let entry = match self.pods.remove(&state) {
                Some(entry) => entry,
                None => {
                    let objects = pod_objects(&p);
                    let one = cluster_of(&objects, tagging, &self.namespace_labels);
                    one.pods.into_iter().next().unwrap_or_default()
                }
            };
            pods.insert(entry.0.clone(), entry.1.clone());
            seen.insert(state, entry);
        }
        // Pods gone since the last round are forgotten.
        self.pods = seen;
        Cluster { pods, ..base }
    }
}

/// Writes the rounds a collector scraping every `step` would have written in `[from, to)`;
/// `progress` hears the share done (0 to 1) after each request. Returns the points written.
/// Rounds are encoded on a blocking thread while earlier batches are being written (two at a
/// time): InfluxDB and the encoder each keep a core busy.
pub async fn write(
    model: &Model,
    influx: &InfluxClient,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    step: Duration,
    tagging: &Tagging,
    progress: impl Fn(f64),
) -> Result<usize, InfluxError> {
    use futures::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel::<(String, f64)>(2);
    let (model, tagging) = (model.clone(), tagging.clone());
    let encoder = tokio::task::spawn_blocking(move || {
        encode_rounds(&model, (from, to), step, &tagging, |batch, share| {
            tx.blocking_send((batch, share)).is_ok()
        })
    });
    let batches = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|batch| (batch, rx))
    });
    let writes = batches
        .map(|(batch, share)| async move { influx.write(batch).await.map(|_| share) })
        .buffer_unordered(2);
    let mut writes = std::pin::pin!(writes);
    while let Some(written) = writes.next().await {
        progress(written?);
    }
    Ok(encoder.await.unwrap_or_default())
}

/// Encodes the rounds of `[from, to)` into batches of about [`BATCH_BYTES`], handing each to
/// `send` with the share of the window done; stops early when `send` says no one listens.
fn encode_rounds(
    model: &Model,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    step: Duration,
    tagging: &Tagging,
    mut send: impl FnMut(String, f64) -> bool,
) -> usize {
    let interval = step;
    let step = chrono::Duration::from_std(step)
        .unwrap_or(chrono::Duration::minutes(1))
        .max(chrono::Duration::seconds(1));
    let whole = (to - from).num_seconds().max(1) as f64;
    let (mut rates, mut buf, mut points) = (Rates::default(), String::new(), 0);
    let mut clusters = ClusterCache::default();
    // Metered as the collector meters what it scrapes, so statements have the history too.
    let mut meter = crate::collector::meter::Meter::new(
        &tagging.cluster_name,
        0,
        1,
        crate::metering::MemorySource::default(),
        crate::metering::LOOKBACK_NS,
    );
    let mut t = from;
    while t < to {
        let cluster = clusters.at(model, t, tagging);
        let mut round = String::new();
        points += round_of(model, (t, interval), &cluster, &mut rates, &mut round);
        meter.feed(&round);
        buf.push_str(&round);
        buf.push_str(&meter.flush(t.timestamp_nanos_opt().unwrap_or_default(), false));
        t += step;
        if t >= to {
            buf.push_str(&meter.flush(t.timestamp_nanos_opt().unwrap_or_default(), true));
        }
        if buf.len() >= BATCH_BYTES || t >= to {
            let share = ((t - from).num_seconds() as f64 / whole).min(1.0);
            if !send(std::mem::take(&mut buf), share) {
                break;
            }
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::model::SimConfig;
    use chrono::TimeZone;

    fn model() -> Model {
        let epoch = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let config = SimConfig {
            nodes: 2,
            pods_per_node: 12,
            seed: 5,
        };
        Model::new(config, epoch)
    }

    fn tagging() -> Tagging {
        Tagging {
            cluster_name: "demo".into(),
            label_keys: vec!["team".into(), "cost-center".into()],
        }
    }

    #[test]
    fn every_pod_of_the_past_gets_the_owner_the_model_says() {
        let m = model();
        let t = m.epoch + chrono::Duration::hours(5) + chrono::Duration::seconds(17);
        let cluster = cluster_at(&m, t, &tagging());
        let pods = m.pods_at(t);
        assert_eq!(cluster.pods.len(), pods.len());
        for p in pods {
            let info = &cluster.pods[&(p.namespace.clone(), p.name.clone())];
            let owner = info.owner.as_ref().unwrap();
            assert_eq!(
                (owner.workload.kind.clone(), owner.workload.name.clone()),
                p.workload,
                "{}",
                p.name
            );
            assert!(info
                .label_tags
                .iter()
                .any(|(k, _)| k == "label_cost-center"));
        }
        assert_eq!(cluster.nodes.len(), 2);
        assert!(cluster.nodes.values().all(|n| n.host_id.is_some()));
        assert_eq!(cluster.namespace_ids.len(), 5);
    }

    #[test]
    fn the_cached_view_of_consecutive_rounds_is_the_view_computed_afresh() {
        let m = model();
        let mut cache = ClusterCache::default();
        // PodInfo's containers are a HashMap: compare them sorted.
        let pods = |c: &Cluster| -> BTreeMap<(String, String), String> {
            c.pods
                .iter()
                .map(|(k, p)| {
                    let containers: BTreeMap<_, _> = p.containers.iter().collect();
                    let p = PodInfo {
                        containers: HashMap::new(),
                        ..p.clone()
                    };
                    (k.clone(), format!("{p:?} {containers:?}"))
                })
                .collect()
        };
        for minute in 0..30 {
            let t = m.epoch + chrono::Duration::seconds(minute * 60 + 7);
            let (cached, fresh) = (cache.at(&m, t, &tagging()), cluster_at(&m, t, &tagging()));
            assert!(pods(&cached) == pods(&fresh), "pods at minute {minute}");
            assert!(cached.nodes == fresh.nodes && cached.namespace_ids == fresh.namespace_ids);
            assert_eq!(cached.name, fresh.name);
        }
    }

    #[test]
    fn a_round_of_the_past_has_every_level_and_the_rounds_time() {
        let m = model();
        let t = m.epoch + chrono::Duration::hours(2);
        let (mut rates, mut out) = (Rates::default(), String::new());
        let first = round_at(&m, t, &tagging(), &mut rates, &mut out);
        assert_eq!(first, out.lines().count());
        let t_ns = t.timestamp_nanos_opt().unwrap().to_string();
        for level in [
            "node",
            "sys_container",
            "pod",
            "pod_container",
            "ns",
            "cluster",
        ] {
            let tag = format!("type={level}");
            assert!(
                out.lines().any(|l| l.contains(&tag) && l.ends_with(&t_ns)),
                "{level}"
            );
        }
        let container_rates = |out: &str| {
            out.lines()
                .filter(|l| l.starts_with("cpu/usage_rate,") && l.contains("type=pod_container"))
                .count()
        };
        assert_eq!(container_rates(&out), 0, "no rate on a first sample");
        out.clear();
        let next = t + chrono::Duration::minutes(1);
        round_at(&m, next, &tagging(), &mut rates, &mut out);
        assert!(container_rates(&out) > 10, "rates from the second round on");
    }

    /// The tag keys of a line of line protocol (commas, spaces and `=` in values are escaped).
    fn tag_keys(line: &str) -> Vec<String> {
        let (mut keys, mut part, mut escaped) = (Vec::new(), String::new(), false);
        for c in line.chars() {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, ',' | ' ') => {
                    keys.push(std::mem::take(&mut part));
                    if c == ' ' {
                        break;
                    }
                }
                _ => {
                    escaped = false;
                    part.push(c);
                }
            }
        }
        // The first part is the measurement; a key ends at its (unescaped) `=`.
        keys.into_iter()
            .skip(1)
            .map(|kv| kv.split('=').next().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn every_tag_written_is_in_the_catalogue() {
        let m = model();
        let (mut rates, mut out) = (Rates::default(), String::new());
        for minute in 0..2 {
            let t = m.epoch + chrono::Duration::minutes(minute);
            round_at(&m, t, &tagging(), &mut rates, &mut out);
        }
        let mut seen = std::collections::BTreeSet::new();
        for line in out.lines() {
            for key in tag_keys(line) {
                assert!(crate::catalogue::tags::is_tag(&key), "{key} in {line}");
                seen.insert(key);
            }
        }
        for heapster in ["hostname", "host_id", "namespace_id", "nodename", "pod_id"] {
            assert!(seen.contains(heapster), "{heapster} is written");
        }
    }
}
