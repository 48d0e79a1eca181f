//! A deterministic Heapster-era data set written straight into InfluxDB (no collector): the
//! API benchmark's 500 pods × 2 days, and the 2017-12 window `kubemeter demo` loads so the old
//! README's curl example answers. Values are simple functions of the pod index and the minute,
//! so anyone can work out what a query should return.

pub mod stack;

use chrono::{DateTime, Utc};

use crate::influx::line::{write_point, Value};
use crate::influx::{InfluxClient, InfluxError};

pub const NAMESPACES: [&str; 5] = [
    "default",
    "cluster-1",
    "cluster-2",
    "cluster-3",
    "kube-system",
];
const KINDS: [&str; 5] = ["Deployment", "StatefulSet", "CronJob", "DaemonSet", "Pod"];
/// Lines per `/write` request (InfluxDB's recommended batch size).
pub const BATCH_LINES: usize = 5_000;

#[derive(Debug, Clone)]
pub struct DemoPod {
    pub namespace: &'static str,
    pub name: String,
    pub uid: String,
    pub node: String,
    pub owner_kind: &'static str,
    pub owner_name: String,
    pub workload_kind: &'static str,
    pub workload_name: String,
    pub team: &'static str,
    pub containers: Vec<&'static str>,
    /// CPU of the first container, in millicores, before the time-dependent part.
    pub base_millicores: i64,
    pub gpus: i64,
}

/// Which measurements to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// The main metrics at every level (the demo).
    Full,
    /// `cpu/usage_rate` only, at container, pod, namespace and node level (the benchmark).
    CpuRate,
}

pub struct DemoCluster {
    pub cluster_name: String,
    pub pods: Vec<DemoPod>,
    pub nodes: Vec<String>,
}

impl DemoCluster {
    /// `pods` pods spread over namespaces, workload kinds and `max(2, pods / 50)` nodes.
    pub fn new(pods: usize) -> Self {
        let node_count = (pods / 50).max(2);
        let nodes: Vec<String> = (1..=node_count).map(|i| format!("node-{i:02}")).collect();
        let pods = (0..pods)
            .map(|i| {
                let kind = KINDS[i / NAMESPACES.len() % KINDS.len()];
                let workload = format!("{}-{}", kind.to_lowercase(), i % 7);
                let (owner_kind, owner_name) = match kind {
                    "Deployment" => ("ReplicaSet", format!("{workload}-7c5f9")),
                    "CronJob" => ("Job", format!("{workload}-28000000")),
                    "Pod" => ("", String::new()),
                    other => (other, workload.clone()),
                };
                DemoPod {
                    namespace: NAMESPACES[i % NAMESPACES.len()],
                    name: format!("{workload}-{i:05}"),
                    uid: format!("00000000-0000-4000-8000-{i:012}"),
                    node: nodes[i % node_count].clone(),
                    owner_kind,
                    owner_name,
                    workload_kind: kind,
                    workload_name: if kind == "Pod" {
                        format!("{workload}-{i:05}")
                    } else {
                        workload
                    },
                    team: ["payments", "research", "platform"][i % 3],
                    containers: if i % 2 == 0 {
                        vec!["main", "sidecar"]
                    } else {
                        vec!["main"]
                    },
                    base_millicores: 50 + (i as i64 % 20) * 25,
                    gpus: i64::from(i % 11 == 3),
                }
            })
            .collect();
        DemoCluster {
            cluster_name: "default".into(),
            pods,
            nodes,
        }
    }

    /// All points of one timestamp, as line protocol.
    pub fn lines_at(&self, t: DateTime<Utc>, detail: Detail, buf: &mut String) {
        let ts = t.timestamp_nanos_opt().unwrap_or_default();
        // The minute of the hour drives the saw tooth, so values are easy to work out by hand.
        let step = t.timestamp().div_euclid(60).rem_euclid(60);
        let mut ns_cpu = vec![0i64; NAMESPACES.len()];
        let mut ns_mem = vec![0i64; NAMESPACES.len()];
        let mut node_cpu = vec![0i64; self.nodes.len()];
        let mut node_mem = vec![0i64; self.nodes.len()];
        for (i, pod) in self.pods.iter().enumerate() {
            let tags = pod_tags(&self.cluster_name, pod);
            let mut pod_cpu = 0;
            let mut pod_mem = 0;
            for (c, container) in pod.containers.iter().enumerate() {
                let cpu = container_millicores(pod, c, step);
                let mem = container_memory(pod, c, step);
                pod_cpu += cpu;
                pod_mem += mem;
                let mut ctags = tags.clone();
                ctags.push(("type", "pod_container".into()));
                ctags.push(("container_name", container.to_string()));
                ctags.push((
                    "container_base_image",
                    format!("registry.example/{container}:1.0"),
                ));
                emit(buf, "cpu/usage_rate", &ctags, Value::Int(cpu), ts);
                if detail == Detail::Full {
                    emit(buf, "memory/usage", &ctags, Value::Int(mem), ts);
                    emit(
                        buf,
                        "memory/working_set",
                        &ctags,
                        Value::Int(mem * 9 / 10),
                        ts,
                    );
                    let uptime_ms = (t.timestamp() % 86_400) * 1000 + i as i64;
                    emit(buf, "uptime", &ctags, Value::Int(uptime_ms), ts);
                    emit(
                        buf,
                        "cpu/request",
                        &ctags,
                        Value::Int(pod.base_millicores),
                        ts,
                    );
                }
            }
            let mut ptags = tags;
            ptags.push(("type", "pod".into()));
            emit(buf, "cpu/usage_rate", &ptags, Value::Int(pod_cpu), ts);
            if detail == Detail::Full {
                emit(buf, "memory/usage", &ptags, Value::Int(pod_mem), ts);
                emit(
                    buf,
                    "memory/working_set",
                    &ptags,
                    Value::Int(pod_mem * 9 / 10),
                    ts,
                );
                let rate = 1000.0 + (i as f64) * 10.0;
                emit(buf, "network/rx_rate", &ptags, Value::Float(rate), ts);
                emit(buf, "network/tx_rate", &ptags, Value::Float(rate / 2.0), ts);
                if pod.gpus > 0 {
                    emit(
                        buf,
                        "gpu/usage",
                        &ptags,
                        Value::Int(4096 + (step % 4) * 512),
                        ts,
                    );
                    emit(
                        buf,
                        "nvidia.com/gpu/limit",
                        &ptags,
                        Value::Int(pod.gpus),
                        ts,
                    );
                }
            }
            let n = NAMESPACES
                .iter()
                .position(|ns| *ns == pod.namespace)
                .unwrap_or(0);
            ns_cpu[n] += pod_cpu;
            ns_mem[n] += pod_mem;
            let node = self.nodes.iter().position(|x| *x == pod.node).unwrap_or(0);
            node_cpu[node] += pod_cpu;
            node_mem[node] += pod_mem;
        }
        for (n, ns) in NAMESPACES.iter().enumerate() {
            let tags = vec![
                ("cluster_name", self.cluster_name.clone()),
                ("namespace_name", ns.to_string()),
                ("type", "ns".to_string()),
            ];
            emit(buf, "cpu/usage_rate", &tags, Value::Int(ns_cpu[n]), ts);
            if detail == Detail::Full {
                emit(buf, "memory/usage", &tags, Value::Int(ns_mem[n]), ts);
            }
        }
        for (n, node) in self.nodes.iter().enumerate() {
            let tags = vec![
                ("cluster_name", self.cluster_name.clone()),
                ("nodename", node.clone()),
                ("type", "node".to_string()),
            ];
            emit(buf, "cpu/usage_rate", &tags, Value::Int(node_cpu[n]), ts);
            if detail == Detail::Full {
                emit(buf, "memory/usage", &tags, Value::Int(node_mem[n]), ts);
                emit(buf, "cpu/node_capacity", &tags, Value::Float(16_000.0), ts);
                emit(
                    buf,
                    "memory/node_capacity",
                    &tags,
                    Value::Float(64.0 * (1u64 << 30) as f64),
                    ts,
                );
                let util = node_cpu[n] as f64 / 16_000.0;
                emit(buf, "cpu/node_utilization", &tags, Value::Float(util), ts);
            }
        }
    }

    /// Writes every point in `[from, to)` at `interval_secs`, in batches.
    pub async fn write(
        &self,
        influx: &InfluxClient,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        interval_secs: i64,
        detail: Detail,
    ) -> Result<usize, InfluxError> {
        let mut buf = String::new();
        let mut lines = 0;
        let mut t = from;
        while t < to {
            self.lines_at(t, detail, &mut buf);
            t += chrono::Duration::seconds(interval_secs);
            if buf.len() > BATCH_LINES * 200 || t >= to {
                lines += buf.matches('\n').count();
                influx.write(std::mem::take(&mut buf)).await?;
            }
        }
        Ok(lines)
    }
}

/// CPU of container `c` of `pod` at minute `step` of the hour: a base plus a 7-minute saw tooth.
pub fn container_millicores(pod: &DemoPod, c: usize, step: i64) -> i64 {
    let base = if c == 0 { pod.base_millicores } else { 10 };
    base + (step % 7) * 10
}

fn container_memory(pod: &DemoPod, c: usize, step: i64) -> i64 {
    let mib = 1 << 20;
    if c == 0 {
        (128 + pod.base_millicores) * mib + (step % 5) * mib
    } else {
        32 * mib
    }
}

fn pod_tags(cluster: &str, pod: &DemoPod) -> Vec<(&'static str, String)> {
    vec![
        ("cluster_name", cluster.to_string()),
        ("namespace_name", pod.namespace.to_string()),
        ("nodename", pod.node.clone()),
        ("pod_name", pod.name.clone()),
        ("pod_id", pod.uid.clone()),
        ("owner_kind", pod.owner_kind.to_string()),
        ("owner_name", pod.owner_name.clone()),
        ("workload_kind", pod.workload_kind.to_string()),
        ("workload_name", pod.workload_name.clone()),
        ("label_team", pod.team.to_string()),
        ("labels", format!("team:{}", pod.team)),
    ]
}

fn emit(buf: &mut String, measurement: &str, tags: &[(&str, String)], value: Value, ts: i64) {
    let mut tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // InfluxDB indexes sorted tags fastest.
    tags.sort_unstable_by_key(|(k, _)| *k);
    // Demo values are finite integers and floats, so encoding cannot fail.
    let _ = write_point(buf, measurement, &tags, value, ts);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn pod_series_are_the_sum_of_their_containers() {
        let cluster = DemoCluster::new(10);
        let t = Utc.with_ymd_and_hms(2017, 12, 1, 0, 3, 0).unwrap();
        let mut buf = String::new();
        cluster.lines_at(t, Detail::CpuRate, &mut buf);
        let pod = &cluster.pods[0];
        let value_of = |needles: &[&str]| -> i64 {
            let line = buf
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .expect("line present");
            let v = line
                .split(" value=")
                .nth(1)
                .unwrap()
                .split('i')
                .next()
                .unwrap();
            v.parse().unwrap()
        };
        let pod_tag = format!("pod_name={},", pod.name);
        let main = value_of(&[&pod_tag, "type=pod_container", "container_name=main"]);
        let side = value_of(&[&pod_tag, "type=pod_container", "container_name=sidecar"]);
        let whole = value_of(&[&pod_tag, "type=pod,"]);
        // Minute 3 of the saw tooth adds 30 millicores to each container.
        assert_eq!(main, pod.base_millicores + 30);
        assert_eq!(side, 10 + 30);
        assert_eq!(whole, main + side);
    }
}
