//! Samples → points: a kubelet summary and what the API server says about its pods become
//! Heapster-compatible line protocol at node, system-container, pod and container level.
//! Namespace and cluster sums are added up across the nodes of a round (`Totals`).
//!
//! This is the collector's hot path: each series' tag set is built and escaped once, then
//! every point of that series is one append.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};

use super::owners::Owner;
use super::rates::Rates;
use super::summary::{
    ContainerStats, CpuStats, FsStats, MemoryStats, NetworkStats, PodStats, Summary,
};
use crate::catalogue::name as m;
use crate::influx::line::{tagset, write_point_with_tagset, Value};

/// Requests, limits and status of one container, from the pod spec.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSpec {
    pub image: String,
    pub cpu_request_millicores: Option<i64>,
    pub cpu_limit_millicores: Option<i64>,
    pub memory_request_bytes: Option<i64>,
    pub memory_limit_bytes: Option<i64>,
    pub ephemeral_request_bytes: Option<i64>,
    pub ephemeral_limit_bytes: Option<i64>,
    pub gpu_request: Option<i64>,
    pub gpu_limit: Option<i64>,
    pub restart_count: Option<i64>,
}

/// What the API server says about a pod, trimmed to what the tags and spec metrics need.
#[derive(Debug, Clone, Default)]
pub struct PodInfo {
    pub uid: String,
    pub owner: Option<Owner>,
    /// `label_<key>` tags for the labels named in `KUBEMETER_LABEL_TAGS`.
    pub label_tags: Vec<(String, String)>,
    /// Heapster's `labels` tag: `k:v,k:v`, sorted.
    pub labels: String,
    /// Host-network pods report the node's interfaces; their network is not theirs.
    pub host_network: bool,
    pub containers: HashMap<String, ContainerSpec>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeInfo {
    /// Heapster's `hostname` tag: the node's `Hostname` address.
    pub hostname: Option<String>,
    /// Heapster's `host_id` tag: the cloud provider's ID of the node (`spec.providerID`).
    pub host_id: Option<String>,
    pub cpu_capacity_millicores: Option<f64>,
    pub cpu_allocatable_millicores: Option<f64>,
    pub memory_capacity_bytes: Option<f64>,
    pub memory_allocatable_bytes: Option<f64>,
}

/// The API server's view of the cluster at the time of a round.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub name: String,
    /// By `(namespace, pod name)`.
    pub pods: HashMap<(String, String), PodInfo>,
    pub nodes: HashMap<String, NodeInfo>,
    /// Heapster's `namespace_id` tag: each namespace's UID, by name.
    pub namespace_ids: HashMap<String, String>,
}

/// Heapster's `hostname` and `host_id` tags of a node, for every series read from it.
fn host_tags(node: Option<&NodeInfo>) -> Vec<(&'static str, &str)> {
    let Some(node) = node else { return Vec::new() };
    let tags = [("hostname", &node.hostname), ("host_id", &node.host_id)];
    tags.into_iter()
        .filter_map(|(k, v)| Some((k, v.as_deref().filter(|v| !v.is_empty())?)))
        .collect()
}

/// Sums that Heapster kept per namespace and for the cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub cpu_usage_rate: i64,
    pub memory_usage: i64,
    pub memory_working_set: i64,
    pub cpu_request: i64,
    pub cpu_limit: i64,
    pub memory_request: i64,
    pub memory_limit: i64,
}

impl Sums {
    fn add(&mut self, o: &Sums) {
        self.cpu_usage_rate += o.cpu_usage_rate;
        self.memory_usage += o.memory_usage;
        self.memory_working_set += o.memory_working_set;
        self.cpu_request += o.cpu_request;
        self.cpu_limit += o.cpu_limit;
        self.memory_request += o.memory_request;
        self.memory_limit += o.memory_limit;
    }
}

/// A round's namespace and cluster sums, filled node by node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub namespaces: BTreeMap<String, Sums>,
    pub cluster: Sums,
}

fn ns(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.and_then(|t| t.timestamp_nanos_opt())
}

/// Appends points to a buffer and counts them.
struct Out<'a> {
    buf: &'a mut String,
    points: usize,
}

impl Out<'_> {
    fn put(&mut self, measurement: &str, tags: &str, value: Value, time: Option<i64>) {
        if let Some(t) = time {
            if write_point_with_tagset(self.buf, measurement, tags, value, t).is_ok() {
                self.points += 1;
            }
        }
    }

    fn int(&mut self, measurement: &str, tags: &str, value: Option<u64>, time: Option<i64>) {
        if let Some(v) = value {
            self.put(
                measurement,
                tags,
                Value::Int(v.min(i64::MAX as u64) as i64),
                time,
            );
        }
    }

    fn signed(&mut self, measurement: &str, tags: &str, value: Option<i64>, time: Option<i64>) {
        if let Some(v) = value {
            self.put(measurement, tags, Value::Int(v), time);
        }
    }

    fn float(&mut self, measurement: &str, tags: &str, value: Option<f64>, time: Option<i64>) {
        if let Some(v) = value {
            self.put(measurement, tags, Value::Float(v), time);
        }
    }
}

/// The values of one container or pod that add up into pods, namespaces and the cluster.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    cpu_rate: Option<i64>,
    cpu_counter_seen: bool,
    memory_usage: Option<u64>,
    working_set: Option<u64>,
}

/// Encodes one node's summary; returns the number of points appended to `out`.
pub fn encode_summary(
    summary: &Summary,
    cluster: &Cluster,
    rates: &mut Rates,
    totals: &mut Totals,
    out: &mut String,
) -> usize {
    let mut out = Out {
        buf: out,
        points: 0,
    };
    let node = &summary.node;
    // The node's requests and limits are its pods' (encode_node replaces the usage fields).
    let mut pods_total = Sums::default();
    let host = host_tags(cluster.nodes.get(&node.node_name));
    for pod in &summary.pods {
        let info = cluster
            .pods
            .get(&(pod.pod_ref.namespace.clone(), pod.pod_ref.name.clone()));
        let mut heapster = host.clone();
        if let Some(id) = cluster.namespace_ids.get(&pod.pod_ref.namespace) {
            heapster.push(("namespace_id", id));
        }
        let ids = (&cluster.name[..], &node.node_name[..], &heapster[..]);
        let sums = encode_pod(&mut out, ids, pod, info, rates);
        pods_total.add(&sums);
        totals
            .namespaces
            .entry(pod.pod_ref.namespace.clone())
            .or_default()
            .add(&sums);
    }
    let node_sums = encode_node(&mut out, cluster, summary, pods_total, rates);
    totals.cluster.add(&node_sums);
    out.points
}

/// `ids`: the cluster's name, the node's name and Heapster's host and namespace tags.
fn encode_pod(
    out: &mut Out,
    (cluster_name, node_name, heapster): (&str, &str, &[(&str, &str)]),
    pod: &PodStats,
    info: Option<&PodInfo>,
    rates: &mut Rates,
) -> Sums {
    let uid = if pod.pod_ref.uid.is_empty() {
        info.map_or("", |i| i.uid.as_str())
    } else {
        pod.pod_ref.uid.as_str()
    };
    let owner = info.and_then(|i| i.owner.as_ref());
    let mut base: Vec<(&str, &str)> = vec![
        ("cluster_name", cluster_name),
        ("namespace_name", &pod.pod_ref.namespace),
        ("pod_name", &pod.pod_ref.name),
        ("pod_id", uid),
        ("nodename", node_name),
    ];
    base.extend_from_slice(heapster);
    if let Some(o) = owner {
        if let Some(immediate) = &o.owner {
            base.push(("owner_kind", &immediate.kind));
            base.push(("owner_name", &immediate.name));
        }
        base.push(("workload_kind", &o.workload.kind));
        base.push(("workload_name", &o.workload.name));
    }
    if let Some(i) = info {
        base.push(("labels", &i.labels));
        base.extend(i.label_tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }

    let mut pod_usage = Usage::default();
    let mut all_rates = true;
    let mut sums = Sums::default();
    let mut gpu_bytes: Option<u64> = None;
    let mut pod_time = None;
    let mut spec_total = ContainerSpec::default();
    for c in &pod.containers {
        let spec = info.and_then(|i| i.containers.get(&c.name));
        let mut tags = base.clone();
        tags.push(("type", "pod_container"));
        tags.push(("container_name", &c.name));
        if let Some(s) = spec {
            tags.push(("container_base_image", &s.image));
        }
        let tags = tagset(&mut tags);
        let usage = encode_container(out, &tags, uid, c, spec, rates);
        if usage.cpu_counter_seen && usage.cpu_rate.is_none() {
            all_rates = false;
        }
        pod_usage.cpu_rate = sum_opt(pod_usage.cpu_rate, usage.cpu_rate);
        pod_usage.memory_usage = sum_opt(pod_usage.memory_usage, usage.memory_usage);
        pod_usage.working_set = sum_opt(pod_usage.working_set, usage.working_set);
        if let Some(acc) = &c.accelerators {
            let used: u64 = acc.iter().map(|a| a.memory_used).sum();
            gpu_bytes = Some(gpu_bytes.unwrap_or(0) + used);
        }
        pod_time = pod_time.or(sample_time(c));
        if let Some(s) = spec {
            add_spec(&mut spec_total, s);
        }
    }

    let mut tags = base;
    tags.push(("type", "pod"));
    let tags = tagset(&mut tags);
    let cpu_time = ns(pod
        .containers
        .iter()
        .find_map(|c| c.cpu.as_ref().and_then(|x| x.time)));
    let mem_time = ns(pod
        .containers
        .iter()
        .find_map(|c| c.memory.as_ref().and_then(|x| x.time)));
    let cpu_counter: Option<u64> = pod
        .containers
        .iter()
        .filter_map(|c| c.cpu.as_ref().and_then(|x| x.usage_core_nano_seconds))
        .reduce(|a, b| a + b);
    out.int(m::CPU_USAGE, &tags, cpu_counter, cpu_time);
    if all_rates {
        out.signed(m::CPU_USAGE_RATE, &tags, pod_usage.cpu_rate, cpu_time);
    }
    out.int(m::MEMORY_USAGE, &tags, pod_usage.memory_usage, mem_time);
    out.int(
        m::MEMORY_WORKING_SET,
        &tags,
        pod_usage.working_set,
        mem_time,
    );
    let host_network = info.is_some_and(|i| i.host_network);
    if let (Some(net), false) = (&pod.network, host_network) {
        encode_network(
            out,
            &tags,
            &format!("p/{uid}"),
            net,
            ns(pod.start_time),
            rates,
        );
    }
    if let Some(eph) = &pod.ephemeral_storage {
        out.int(
            m::EPHEMERAL_STORAGE_USAGE,
            &tags,
            eph.used_bytes,
            ns(eph.time),
        );
    }
    out.int(
        m::GPU_USAGE,
        &tags,
        gpu_bytes.map(|b| b / (1 << 20)),
        pod_time,
    );
    if info.is_some() {
        encode_spec(out, &tags, &spec_total, pod_time);
    }

    if all_rates {
        sums.cpu_usage_rate = pod_usage.cpu_rate.unwrap_or(0);
    }
    sums.memory_usage = pod_usage.memory_usage.unwrap_or(0) as i64;
    sums.memory_working_set = pod_usage.working_set.unwrap_or(0) as i64;
    sums.cpu_request = spec_total.cpu_request_millicores.unwrap_or(0);
    sums.cpu_limit = spec_total.cpu_limit_millicores.unwrap_or(0);
    sums.memory_request = spec_total.memory_request_bytes.unwrap_or(0);
    sums.memory_limit = spec_total.memory_limit_bytes.unwrap_or(0);
    sums
}

fn sample_time(c: &ContainerStats) -> Option<i64> {
    ns(c.cpu
        .as_ref()
        .and_then(|x| x.time)
        .or(c.memory.as_ref().and_then(|x| x.time)))
}

fn sum_opt<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

fn add_spec(total: &mut ContainerSpec, s: &ContainerSpec) {
    total.cpu_request_millicores = sum_opt(total.cpu_request_millicores, s.cpu_request_millicores);
    total.cpu_limit_millicores = sum_opt(total.cpu_limit_millicores, s.cpu_limit_millicores);
    total.memory_request_bytes = sum_opt(total.memory_request_bytes, s.memory_request_bytes);
    total.memory_limit_bytes = sum_opt(total.memory_limit_bytes, s.memory_limit_bytes);
    total.ephemeral_request_bytes =
        sum_opt(total.ephemeral_request_bytes, s.ephemeral_request_bytes);
    total.ephemeral_limit_bytes = sum_opt(total.ephemeral_limit_bytes, s.ephemeral_limit_bytes);
    total.gpu_request = sum_opt(total.gpu_request, s.gpu_request);
    total.gpu_limit = sum_opt(total.gpu_limit, s.gpu_limit);
}

fn encode_spec(out: &mut Out, tags: &str, s: &ContainerSpec, time: Option<i64>) {
    out.signed(m::CPU_REQUEST, tags, s.cpu_request_millicores, time);
    out.signed(m::CPU_LIMIT, tags, s.cpu_limit_millicores, time);
    out.signed(m::MEMORY_REQUEST, tags, s.memory_request_bytes, time);
    out.signed(m::MEMORY_LIMIT, tags, s.memory_limit_bytes, time);
    out.signed(
        m::EPHEMERAL_STORAGE_REQUEST,
        tags,
        s.ephemeral_request_bytes,
        time,
    );
    out.signed(
        m::EPHEMERAL_STORAGE_LIMIT,
        tags,
        s.ephemeral_limit_bytes,
        time,
    );
    out.signed(m::NVIDIA_COM_GPU_REQUEST, tags, s.gpu_request, time);
    out.signed(m::NVIDIA_COM_GPU_LIMIT, tags, s.gpu_limit, time);
}

fn encode_container(
    out: &mut Out,
    tags: &str,
    pod_uid: &str,
    c: &ContainerStats,
    spec: Option<&ContainerSpec>,
    rates: &mut Rates,
) -> Usage {
    let start = ns(c.start_time).unwrap_or(0);
    let key = format!("c/{pod_uid}/{}", c.name);
    let mut usage = encode_cpu(out, tags, &key, c.cpu.as_ref(), start, rates);
    let mem = encode_memory(out, tags, &key, c.memory.as_ref(), start, rates);
    usage.memory_usage = mem.memory_usage;
    usage.working_set = mem.working_set;
    if let Some(fs) = &c.rootfs {
        encode_fs(out, &format!("{tags},resource_id=/"), fs);
    }
    let time = sample_time(c);
    if let (Some(t), Some(s)) = (time, c.start_time) {
        let up_ms = t / 1_000_000 - s.timestamp_millis();
        out.signed(m::UPTIME, tags, Some(up_ms.max(0)), time);
    }
    for a in c.accelerators.iter().flatten() {
        let atags = format!(
            "{tags}{}",
            tagset(&mut [
                ("make", &a.make),
                ("model", &a.model),
                ("accelerator_id", &a.id)
            ])
        );
        out.int(
            m::ACCELERATOR_MEMORY_TOTAL,
            &atags,
            Some(a.memory_total),
            time,
        );
        out.int(
            m::ACCELERATOR_MEMORY_USED,
            &atags,
            Some(a.memory_used),
            time,
        );
        out.int(m::ACCELERATOR_DUTY_CYCLE, &atags, Some(a.duty_cycle), time);
    }
    if let Some(s) = spec {
        encode_spec(out, tags, s, time);
        out.signed(m::RESTART_COUNT, tags, s.restart_count, time);
    }
    usage
}

fn encode_cpu(
    out: &mut Out,
    tags: &str,
    key: &str,
    cpu: Option<&CpuStats>,
    start: i64,
    rates: &mut Rates,
) -> Usage {
    let mut usage = Usage::default();
    let Some(cpu) = cpu else { return usage };
    let time = ns(cpu.time);
    if let (Some(counter), Some(t)) = (cpu.usage_core_nano_seconds, time) {
        usage.cpu_counter_seen = true;
        out.int(m::CPU_USAGE, tags, Some(counter), time);
        // ns of CPU per s = nanocores; / 1e6 = millicores.
        let rate = rates.per_second(&format!("{key}/cpu"), t, counter, start);
        usage.cpu_rate = rate.map(|r| (r / 1e6).round() as i64);
        out.signed(m::CPU_USAGE_RATE, tags, usage.cpu_rate, time);
    }
    usage
}

fn encode_memory(
    out: &mut Out,
    tags: &str,
    key: &str,
    mem: Option<&MemoryStats>,
    start: i64,
    rates: &mut Rates,
) -> Usage {
    let mut usage = Usage::default();
    let Some(mem) = mem else { return usage };
    let time = ns(mem.time);
    out.int(m::MEMORY_USAGE, tags, mem.usage_bytes, time);
    out.int(m::MEMORY_WORKING_SET, tags, mem.working_set_bytes, time);
    out.int(m::MEMORY_RSS, tags, mem.rss_bytes, time);
    out.int(m::MEMORY_PAGE_FAULTS, tags, mem.page_faults, time);
    out.int(
        m::MEMORY_MAJOR_PAGE_FAULTS,
        tags,
        mem.major_page_faults,
        time,
    );
    if let Some(t) = time {
        let pf = mem
            .page_faults
            .and_then(|v| rates.per_second(&format!("{key}/pf"), t, v, start));
        out.float(m::MEMORY_PAGE_FAULTS_RATE, tags, pf, time);
        let mpf = mem
            .major_page_faults
            .and_then(|v| rates.per_second(&format!("{key}/mpf"), t, v, start));
        out.float(m::MEMORY_MAJOR_PAGE_FAULTS_RATE, tags, mpf, time);
    }
    usage.memory_usage = mem.usage_bytes;
    usage.working_set = mem.working_set_bytes;
    usage
}

fn encode_network(
    out: &mut Out,
    tags: &str,
    key: &str,
    net: &NetworkStats,
    start: Option<i64>,
    rates: &mut Rates,
) {
    let time = ns(net.time);
    let start = start.unwrap_or(0);
    let counters = [
        (m::NETWORK_RX, m::NETWORK_RX_RATE, net.rx_bytes),
        (
            m::NETWORK_RX_ERRORS,
            m::NETWORK_RX_ERRORS_RATE,
            net.rx_errors,
        ),
        (m::NETWORK_TX, m::NETWORK_TX_RATE, net.tx_bytes),
        (
            m::NETWORK_TX_ERRORS,
            m::NETWORK_TX_ERRORS_RATE,
            net.tx_errors,
        ),
    ];
    for (counter, rate, value) in counters {
        out.int(counter, tags, value, time);
        if let (Some(v), Some(t)) = (value, time) {
            let r = rates.per_second(&format!("{key}/{counter}"), t, v, start);
            out.float(rate, tags, r, time);
        }
    }
}

fn encode_fs(out: &mut Out, tags: &str, fs: &FsStats) {
    let time = ns(fs.time);
    out.int(m::FILESYSTEM_USAGE, tags, fs.used_bytes, time);
    out.int(m::FILESYSTEM_LIMIT, tags, fs.capacity_bytes, time);
    out.int(m::FILESYSTEM_AVAILABLE, tags, fs.available_bytes, time);
    out.int(m::FILESYSTEM_INODES, tags, fs.inodes, time);
    out.int(m::FILESYSTEM_INODES_FREE, tags, fs.inodes_free, time);
}

fn encode_node(
    out: &mut Out,
    cluster: &Cluster,
    summary: &Summary,
    requests: Sums,
    rates: &mut Rates,
) -> Sums {
    let node = &summary.node;
    let info = cluster
        .nodes
        .get(&node.node_name)
        .cloned()
        .unwrap_or_default();
    let host = host_tags(Some(&info));
    let mut tags = vec![
        ("cluster_name", &cluster.name[..]),
        ("nodename", &node.node_name),
        ("type", "node"),
    ];
    tags.extend_from_slice(&host);
    let tags = tagset(&mut tags);
    let start = ns(node.start_time).unwrap_or(0);
    let key = format!("n/{}", node.node_name);
    let cpu = encode_cpu(out, &tags, &key, node.cpu.as_ref(), start, rates);
    let mem = encode_memory(out, &tags, &key, node.memory.as_ref(), start, rates);
    if let Some(net) = &node.network {
        encode_network(out, &tags, &key, net, Some(start), rates);
    }
    if let Some(fs) = &node.fs {
        encode_fs(out, &format!("{tags},resource_id=/"), fs);
    }
    let time = ns(node
        .cpu
        .as_ref()
        .and_then(|c| c.time)
        .or(node.memory.as_ref().and_then(|c| c.time)));
    if let (Some(t), Some(s)) = (time, node.start_time) {
        out.signed(
            m::UPTIME,
            &tags,
            Some((t / 1_000_000 - s.timestamp_millis()).max(0)),
            time,
        );
    }
    out.float(
        m::CPU_NODE_CAPACITY,
        &tags,
        info.cpu_capacity_millicores,
        time,
    );
    out.float(
        m::CPU_NODE_ALLOCATABLE,
        &tags,
        info.cpu_allocatable_millicores,
        time,
    );
    out.float(
        m::MEMORY_NODE_CAPACITY,
        &tags,
        info.memory_capacity_bytes,
        time,
    );
    out.float(
        m::MEMORY_NODE_ALLOCATABLE,
        &tags,
        info.memory_allocatable_bytes,
        time,
    );
    let share = |part: Option<f64>, whole: Option<f64>| match (part, whole) {
        (Some(p), Some(w)) if w > 0.0 => Some(p / w),
        _ => None,
    };
    let cpu_alloc = info.cpu_allocatable_millicores;
    let mem_alloc = info.memory_allocatable_bytes;
    out.float(
        m::CPU_NODE_RESERVATION,
        &tags,
        share(Some(requests.cpu_request as f64), cpu_alloc),
        time,
    );
    out.float(
        m::CPU_NODE_UTILIZATION,
        &tags,
        share(cpu.cpu_rate.map(|r| r as f64), cpu_alloc),
        time,
    );
    out.float(
        m::MEMORY_NODE_RESERVATION,
        &tags,
        share(Some(requests.memory_request as f64), mem_alloc),
        time,
    );
    out.float(
        m::MEMORY_NODE_UTILIZATION,
        &tags,
        share(mem.memory_usage.map(|v| v as f64), mem_alloc),
        time,
    );
    out.signed(m::CPU_REQUEST, &tags, Some(requests.cpu_request), time);
    out.signed(m::CPU_LIMIT, &tags, Some(requests.cpu_limit), time);
    out.signed(
        m::MEMORY_REQUEST,
        &tags,
        Some(requests.memory_request),
        time,
    );
    out.signed(m::MEMORY_LIMIT, &tags, Some(requests.memory_limit), time);

    for sys in &node.system_containers {
        let mut stags = vec![
            ("cluster_name", &cluster.name[..]),
            ("nodename", &node.node_name),
            ("type", "sys_container"),
            ("container_name", &sys.name),
        ];
        stags.extend_from_slice(&host);
        let stags = tagset(&mut stags);
        let skey = format!("s/{}/{}", node.node_name, sys.name);
        let sstart = ns(sys.start_time).unwrap_or(0);
        encode_cpu(out, &stags, &skey, sys.cpu.as_ref(), sstart, rates);
        encode_memory(out, &stags, &skey, sys.memory.as_ref(), sstart, rates);
    }
    Sums {
        cpu_usage_rate: cpu.cpu_rate.unwrap_or(0),
        memory_usage: mem.memory_usage.unwrap_or(0) as i64,
        memory_working_set: mem.working_set.unwrap_or(0) as i64,
        ..requests
    }
}

/// The round's namespace (`type=ns`) and cluster (`type=cluster`) sums, stamped with the round's
/// time (they add up samples of several nodes, which have no single sample time).
pub fn encode_totals(totals: &Totals, cluster_name: &str, time_ns: i64, out: &mut String) -> usize {
    let mut out = Out {
        buf: out,
        points: 0,
    };
    let t = Some(time_ns);
    let put = |out: &mut Out, tags: &str, s: &Sums| {
        out.signed(m::CPU_USAGE_RATE, tags, Some(s.cpu_usage_rate), t);
        out.signed(m::MEMORY_USAGE, tags, Some(s.memory_usage), t);
        out.signed(m::MEMORY_WORKING_SET, tags, Some(s.memory_working_set), t);
        out.signed(m::CPU_REQUEST, tags, Some(s.cpu_request), t);
        out.signed(m::CPU_LIMIT, tags, Some(s.cpu_limit), t);
        out.signed(m::MEMORY_REQUEST, tags, Some(s.memory_request), t);
        out.signed(m::MEMORY_LIMIT, tags, Some(s.memory_limit), t);
    };
    for (namespace, sums) in &totals.namespaces {
        let tags = tagset(&mut [
            ("cluster_name", cluster_name),
            ("namespace_name", namespace),
            ("type", "ns"),
        ]);
        put(&mut out, &tags, sums);
    }
    let tags = tagset(&mut [("cluster_name", cluster_name), ("type", "cluster")]);
    put(&mut out, &tags, &totals.cluster);
    out.points
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::owners::OwnerRef;

    const V1_18: &str = include_str!("testdata/summary-v1.18-accelerators.json");
    const V1_30: &str = include_str!("testdata/summary-v1.30.json");
    const PARTIAL: &str = include_str!("testdata/summary-partial.json");

    fn summary(json: &str) -> Summary {
        serde_json::from_str(json).expect("a kubelet summary")
    }

    fn encode(s: &Summary, cluster: &Cluster, rates: &mut Rates) -> String {
        let mut out = String::new();
        let n = encode_summary(s, cluster, rates, &mut Totals::default(), &mut out);
        assert_eq!(n, out.lines().count(), "the count matches the lines");
        out
    }

    /// Lines of `measurement` whose tags contain every one of `tags`.
    fn lines<'a>(out: &'a str, measurement: &str, tags: &[&str]) -> Vec<&'a str> {
        out.lines()
            .filter(|l| l.starts_with(&format!("{measurement},")))
            .filter(|l| {
                tags.iter()
                    .all(|t| l.contains(&format!(",{t},")) || l.contains(&format!(",{t} ")))
            })
            .collect()
    }

    fn value(line: &str) -> &str {
        line.split(" value=")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
    }

    fn checkout_cluster(host_network: bool) -> Cluster {
        let mut containers = HashMap::new();
        containers.insert(
            "app".to_string(),
            ContainerSpec {
                image: "registry.example/shop/app:2.1".into(),
                cpu_request_millicores: Some(250),
                memory_request_bytes: Some(268_435_456),
                ..ContainerSpec::default()
            },
        );
        let info = PodInfo {
            uid: "0c5e4a2b-8d1f-4e3a-9b6c-7d2e1f0a9b8c".into(),
            owner: Some(Owner {
                owner: Some(OwnerRef::new("ReplicaSet", "checkout-6b7c9d5f4")),
                workload: OwnerRef::new("Deployment", "checkout"),
            }),
            label_tags: vec![("label_team".into(), "payments".into())],
            labels: "app:checkout".into(),
            host_network,
            containers,
        };
        let mut pods = HashMap::new();
        pods.insert(
            ("shop".to_string(), "checkout-6b7c9d5f4-x2x9k".to_string()),
            info,
        );
        Cluster {
            name: "c1".into(),
            pods,
            ..Cluster::default()
        }
    }

    #[test]
    fn a_container_point_carries_every_tag_sorted_and_the_kubelets_sample_time() {
        let out = encode(
            &summary(V1_30),
            &checkout_cluster(false),
            &mut Rates::default(),
        );
        let line = lines(&out, "cpu/usage", &["container_name=app"]);
        assert_eq!(
            line,
            ["cpu/usage,cluster_name=c1,container_base_image=registry.example/shop/app:2.1,container_name=app,\
              label_team=payments,labels=app:checkout,namespace_name=shop,nodename=ip-10-0-1-17.ec2.internal,\
              owner_kind=ReplicaSet,owner_name=checkout-6b7c9d5f4,pod_id=0c5e4a2b-8d1f-4e3a-9b6c-7d2e1f0a9b8c,\
              pod_name=checkout-6b7c9d5f4-x2x9k,type=pod_container,workload_kind=Deployment,workload_name=checkout \
              value=900000000000i 1714737608000000000"]
        );
        let request = lines(&out, "cpu/request", &["container_name=app"]);
        assert_eq!(value(request[0]), "250i");
    }

    #[test]
    fn heapster_host_and_namespace_tags_go_on_every_level_that_heapster_put_them() {
        let mut cluster = checkout_cluster(false);
        let node = "ip-10-0-1-17.ec2.internal";
        cluster.nodes.insert(
            node.into(),
            NodeInfo {
                hostname: Some("ip-10-0-1-17".into()),
                host_id: Some("aws:///eu-west-1a/i-0a1b2c3d4e5f".into()),
                ..NodeInfo::default()
            },
        );
        cluster
            .namespace_ids
            .insert("shop".into(), "5d1c0b8e-3f2a-4c7d-9e6b-1a2b3c4d5e6f".into());
        let out = encode(&summary(V1_30), &cluster, &mut Rates::default());
        let host = [
            "hostname=ip-10-0-1-17",
            "host_id=aws:///eu-west-1a/i-0a1b2c3d4e5f",
        ];
        for level in [
            "type=node",
            "type=sys_container",
            "type=pod",
            "type=pod_container",
        ] {
            let with = lines(&out, "memory/usage", &[&[level][..], &host[..]].concat());
            assert!(!with.is_empty(), "{level} carries hostname and host_id");
        }
        let ns_id = "namespace_id=5d1c0b8e-3f2a-4c7d-9e6b-1a2b3c4d5e6f";
        assert!(!lines(&out, "memory/usage", &["type=pod", ns_id]).is_empty());
        assert!(!lines(&out, "memory/usage", &["type=pod_container", ns_id]).is_empty());
        assert!(lines(&out, "memory/usage", &["type=node", ns_id]).is_empty());
        // Unknown to the API server: no tag rather than an empty one.
        let bare = encode(
            &summary(V1_30),
            &checkout_cluster(false),
            &mut Rates::default(),
        );
        assert!(!bare.contains("hostname=") && !bare.contains("host_id="));
        assert!(!bare.contains("namespace_id="));
    }

    #[test]
    fn the_cpu_rate_is_the_counter_change_over_the_sample_interval_in_millicores() {
        let mut rates = Rates::default();
        let cluster = checkout_cluster(false);
        let first = summary(V1_30);
        let out = encode(&first, &cluster, &mut rates);
        assert!(
            lines(&out, "cpu/usage_rate", &["container_name=app"]).is_empty(),
            "no rate on the first sample"
        );
        // 10 s later the app container used 2.5 more CPU-seconds: 250 millicores.
        let mut second = first.clone();
        for c in &mut second.pods[0].containers {
            let cpu = c.cpu.as_mut().unwrap();
            cpu.time = Some(cpu.time.unwrap() + chrono::Duration::seconds(10));
            let extra = if c.name == "app" {
                2_500_000_000
            } else {
                200_000_000
            };
            cpu.usage_core_nano_seconds = Some(cpu.usage_core_nano_seconds.unwrap() + extra);
        }
        let out = encode(&second, &cluster, &mut rates);
        let app = lines(
            &out,
            "cpu/usage_rate",
            &["container_name=app", "type=pod_container"],
        );
        assert_eq!(value(app[0]), "250i");
        assert!(app[0].ends_with(" 1714737618000000000"));
        // The pod's rate adds its containers: 250 + 20.
        let pod = lines(&out, "cpu/usage_rate", &["type=pod"]);
        assert_eq!(value(pod[0]), "270i");
    }

    #[test]
    fn host_network_pods_write_no_network_points() {
        let out = encode(
            &summary(V1_30),
            &checkout_cluster(true),
            &mut Rates::default(),
        );
        assert!(lines(&out, "network/rx", &["type=pod"]).is_empty());
        let out = encode(
            &summary(V1_30),
            &checkout_cluster(false),
            &mut Rates::default(),
        );
        assert_eq!(
            value(lines(&out, "network/rx", &["type=pod"])[0]),
            "36000000i"
        );
    }

    #[test]
    fn older_kubelets_accelerators_become_gpu_points() {
        let out = encode(&summary(V1_18), &Cluster::default(), &mut Rates::default());
        let used = lines(&out, "accelerator/memory_used", &["container_name=trainer"]);
        assert_eq!(used.len(), 2, "one per GPU");
        assert!(used
            .iter()
            .any(|l| l.contains("accelerator_id=GPU-8a1f5e6c-0f4b-1c2d-9e8f-7a6b5c4d3e2f")));
        // (8472756224 + 4236378112) bytes / 1 MiB = 12120.375 MiB.
        let gpu = lines(&out, "gpu/usage", &["type=pod"]);
        assert_eq!(
            gpu,
            ["gpu/usage,namespace_name=research,nodename=gpu-node-1,pod_id=6f2d9c1e-1b7a-4c52-9d7e-2a1f0b3c4d5e,\
              pod_name=train-resnet-7d9f8,type=pod value=12120i 1591092005000000000"]
        );
        // 09:00:03 → 10:00:05 is 3602 s.
        assert_eq!(
            value(lines(&out, "uptime", &["container_name=trainer"])[0]),
            "3602000i"
        );
        assert_eq!(
            value(lines(&out, "network/tx_errors", &["type=pod"])[0]),
            "3i"
        );
        assert_eq!(
            lines(
                &out,
                "cpu/usage",
                &["type=sys_container", "container_name=runtime"]
            )
            .len(),
            1
        );
    }

    #[test]
    fn missing_fields_are_unknown_not_zero() {
        let out = encode(
            &summary(PARTIAL),
            &Cluster::default(),
            &mut Rates::default(),
        );
        // A container with only memory: memory points, no CPU points.
        assert_eq!(
            value(lines(&out, "memory/working_set", &["container_name=init-done"])[0]),
            "1048576i"
        );
        assert!(lines(&out, "cpu/usage", &["container_name=init-done"]).is_empty());
        assert!(lines(&out, "memory/usage", &["container_name=init-done"]).is_empty());
        // A container with no stats at all writes nothing.
        assert!(!out.contains("container_name=no-stats-yet"));
        // A pod without network writes no network; a node without CPU or fs writes neither.
        assert!(lines(&out, "network/rx", &["pod_name=starting-1"]).is_empty());
        assert!(lines(&out, "cpu/usage", &["type=node"]).is_empty());
        assert!(lines(&out, "filesystem/usage", &["type=node"]).is_empty());
        assert_eq!(
            value(lines(&out, "memory/usage", &["type=node"])[0]),
            "1000000000i"
        );
        assert_eq!(
            value(lines(&out, "cpu/usage", &["pod_name=batch-9", "type=pod"])[0]),
            "3599000000000i"
        );
    }

    #[test]
    fn namespace_and_cluster_sums_add_up_pods_and_nodes() {
        let mut totals = Totals::default();
        let mut rates = Rates::default();
        let cluster = checkout_cluster(false);
        let mut out = String::new();
        encode_summary(&summary(V1_30), &cluster, &mut rates, &mut totals, &mut out);
        // The app container's request (250 m) is all the shop namespace requested.
        assert_eq!(totals.namespaces["shop"].cpu_request, 250);
        // 200000000 + 50000000 bytes of working set.
        assert_eq!(totals.namespaces["shop"].memory_working_set, 250_000_000);
        assert_eq!(totals.cluster.memory_working_set, 5_000_000_000);
        let mut sums = String::new();
        let n = encode_totals(&totals, "c1", 7, &mut sums);
        assert_eq!(n, 14);
        assert!(
            sums.contains("cpu/request,cluster_name=c1,namespace_name=shop,type=ns value=250i 7\n"),
            "{sums}"
        );
    }
}
