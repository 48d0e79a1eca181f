//! The simulated cluster: a pure, deterministic function of (seed, time). Every node runs
//! `pods_per_node` pod slots; each slot is a kind of workload with usage that follows simple
//! known functions, so tests can say exactly what the collector must have written:
//!
//! - CPU: each container burns a constant `millicores`; its cumulative counter is
//!   `millicores × (t − container start) / 1000` CPU-nanoseconds, so any rate is exact.
//! - Memory: constant `working_set`; usage = working set + 16 MiB of cache.
//! - Network: each pod receives a constant `rx_rate` bytes/s since it started; sends half.
//! - Churn: CronJob pods run 3 minutes of every 5; restarting pods restart every 4 minutes
//!   (their counters reset); GPU job pods hold one `nvidia.com/gpu`.

use chrono::{DateTime, Duration, DurationRound, Utc};

use crate::collector::summary::{
    AcceleratorStats, ContainerStats, CpuStats, FsStats, MemoryStats, NetworkStats, NodeStats,
    PodReference, PodStats, Summary,
};

pub const NAMESPACES: [&str; 4] = ["default", "team-a", "team-b", "team-c"];
pub const SYSTEM_NAMESPACE: &str = "kube-system";
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// CronJob pods: a new one every 5 minutes, each running 3.
pub const CRON_PERIOD_S: i64 = 300;
pub const CRON_RUN_S: i64 = 180;
/// Restarting pods: their container restarts every 4 minutes.
pub const RESTART_PERIOD_S: i64 = 240;
/// What the simulated DCGM exporter reports for each GPU pod's device.
pub const DCGM_UTIL_PERCENT: u64 = 65;
pub const DCGM_FB_USED_MIB: u64 = 6144;
pub const DCGM_FB_FREE_MIB: u64 = 9216;
/// Node capacity.
pub const NODE_CPU_CORES: u64 = 16;
pub const NODE_MEMORY_GIB: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// DaemonSet `kube-proxy` in kube-system, host network (slot 0 of every node).
    HostNetDaemon,
    /// A static pod (mirror) in kube-system (slot 1 of every node).
    Static,
    Deployment,
    StatefulSet,
    CronJob,
    /// A Job holding one GPU.
    GpuJob,
    Bare,
    /// A Deployment pod whose container restarts every 4 minutes.
    Restarting,
}

const CYCLE: [SlotKind; 8] = [
    SlotKind::Deployment,
    SlotKind::Deployment,
    SlotKind::StatefulSet,
    SlotKind::CronJob,
    SlotKind::Deployment,
    SlotKind::Bare,
    SlotKind::Restarting,
    SlotKind::GpuJob,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimConfig {
    pub nodes: usize,
    pub pods_per_node: usize,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimContainer {
    pub name: String,
    pub image: String,
    pub millicores: u64,
    pub working_set: u64,
    pub start: DateTime<Utc>,
    pub restarts: i32,
    pub gpus: u32,
    pub cpu_request_millicores: u64,
    pub memory_request: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimPod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: String,
    pub start: DateTime<Utc>,
    pub kind: SlotKind,
    /// Immediate controller `(kind, name)`.
    pub owner: Option<(String, String)>,
    /// Top-level owner `(kind, name)`, as the collector should resolve it.
    pub workload: (String, String),
    /// The Deployment's ReplicaSet hash, for `pod-template-hash`.
    pub template_hash: Option<String>,
    pub host_network: bool,
    pub mirror: bool,
    pub team: &'static str,
    pub rx_rate: u64,
    pub containers: Vec<SimContainer>,
}

/// splitmix64: a good, tiny, deterministic hash.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn h(seed: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(mix(seed), |acc, p| mix(acc ^ p))
}

fn suffix(x: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..len)
        .map(|i| ALPHABET[((x >> (i * 5)) % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

fn uid(x: u64) -> String {
    let y = mix(x);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        x >> 32,
        (x >> 16) & 0xffff,
        x & 0xfff,
        y & 0xfff,
        y >> 16
    )
}

#[derive(Debug, Clone)]
pub struct Model {
    pub config: SimConfig,
    /// When the simulation began; long-running pods started up to 2 hours before.
    pub epoch: DateTime<Utc>,
}

impl Model {
    pub fn new(config: SimConfig, epoch: DateTime<Utc>) -> Self {
        let epoch = epoch.duration_trunc(Duration::minutes(1)).unwrap_or(epoch);
        Model { config, epoch }
    }

    pub fn node_name(i: usize) -> String {
        format!("node-{i:03}")
    }

    pub fn node_names(&self) -> Vec<String> {
        (0..self.config.nodes).map(Self::node_name).collect()
    }

    pub fn node_start(&self) -> DateTime<Utc> {
        self.epoch - Duration::hours(3)
    }

    fn slot_kind(&self, slot: usize) -> SlotKind {
        match slot {
            0 => SlotKind::HostNetDaemon,
            1 => SlotKind::Static,
            s => CYCLE[(s - 2) % CYCLE.len()],
        }
    }

    /// Every pod running at `t`, node by node.
    pub fn pods_at(&self, t: DateTime<Utc>) -> Vec<SimPod> {
        (0..self.config.nodes)
            .flat_map(|n| self.node_pods(n, t))
            .collect()
    }

    /// The pods running on node `n` at `t`.
    pub fn node_pods(&self, n: usize, t: DateTime<Utc>) -> Vec<SimPod> {
        (0..self.config.pods_per_node)
            .filter_map(|slot| self.pod(n, slot, t))
            .collect()
    }

    fn pod(&self, n: usize, slot: usize, t: DateTime<Utc>) -> Option<SimPod> {
        let seed = self.config.seed;
        let g = (n * self.config.pods_per_node + slot) as u64;
        let r = h(seed, &[g]);
        let node = Self::node_name(n);
        let kind = self.slot_kind(slot);
        let long_start = self.epoch - Duration::seconds(3600 + (r % 3600) as i64);
        let ns_of = |i: u64| NAMESPACES[(i % NAMESPACES.len() as u64) as usize].to_string();
        let mut pod = SimPod {
            namespace: ns_of(g),
            name: String::new(),
            uid: uid(h(seed, &[g, 1])),
            node: node.clone(),
            start: long_start,
            kind,
            owner: None,
            workload: (String::new(), String::new()),
            template_hash: None,
            host_network: false,
            mirror: false,
            team: ["payments", "research", "platform"][(r % 3) as usize],
            rx_rate: 1_000 + r % 9_000,
            containers: Vec::new(),
        };
        let mut containers = vec!["main"];
        match kind {
            SlotKind::HostNetDaemon => {
                pod.namespace = SYSTEM_NAMESPACE.into();
                pod.name = format!("kube-proxy-{}", suffix(h(seed, &[n as u64, 7]), 5));
                pod.owner = Some(("DaemonSet".into(), "kube-proxy".into()));
                pod.workload = ("DaemonSet".into(), "kube-proxy".into());
                pod.host_network = true;
                pod.start = self.node_start();
            }
            SlotKind::Static => {
                pod.namespace = SYSTEM_NAMESPACE.into();
                pod.name = format!("node-agent-{node}");
                pod.owner = Some(("Node".into(), node.clone()));
                pod.workload = ("Node".into(), node.clone());
                pod.mirror = true;
                pod.start = self.node_start();
            }
            SlotKind::Deployment | SlotKind::Restarting => {
                let (base, d) = if kind == SlotKind::Deployment {
                    ("api", g % 6)
                } else {
                    ("flaky", g)
                };
                let deployment = format!("{base}-{d}");
                let hash = suffix(h(seed, &[d, 3, kind as u64]), 9);
                if kind == SlotKind::Deployment {
                    pod.namespace = ns_of(d);
                }
                pod.name = format!("{deployment}-{hash}-{}", suffix(r, 5));
                pod.owner = Some(("ReplicaSet".into(), format!("{deployment}-{hash}")));
                pod.template_hash = Some(hash);
                pod.workload = ("Deployment".into(), deployment);
                if kind == SlotKind::Deployment {
                    containers.push("sidecar");
                }
            }
            SlotKind::StatefulSet => {
                let sts = format!("db-{}", g % 3);
                pod.namespace = ns_of(g % 3);
                pod.name = format!("{sts}-{g}");
                pod.owner = Some(("StatefulSet".into(), sts.clone()));
                pod.workload = ("StatefulSet".into(), sts);
            }
            SlotKind::CronJob => {
                let offset = (r % CRON_PERIOD_S as u64) as i64;
                let since = t.timestamp() - offset;
                let sched = since.div_euclid(CRON_PERIOD_S) * CRON_PERIOD_S + offset;
                if t.timestamp() - sched >= CRON_RUN_S {
                    return None;
                }
                let cronjob = format!("report-{g}");
                let job = format!("{cronjob}-{}", sched / 60);
                pod.name = format!("{job}-{}", suffix(h(seed, &[g, sched as u64]), 5));
                pod.uid = uid(h(seed, &[g, sched as u64, 1]));
                pod.start = DateTime::from_timestamp(sched, 0).unwrap_or(t);
                pod.owner = Some(("Job".into(), job));
                pod.workload = ("CronJob".into(), cronjob);
            }
            SlotKind::GpuJob => {
                let job = format!("train-{g}");
                pod.name = format!("{job}-{}", suffix(r, 5));
                pod.owner = Some(("Job".into(), job.clone()));
                pod.workload = ("Job".into(), job);
            }
            SlotKind::Bare => {
                pod.name = format!("debug-{g}");
                pod.workload = ("Pod".into(), pod.name.clone());
            }
        }
        pod.containers = containers
            .iter()
            .enumerate()
            .map(|(c, name)| self.container(&pod, g, c, name, t))
            .collect();
        Some(pod)
    }

    fn container(
        &self,
        pod: &SimPod,
        g: u64,
        c: usize,
        name: &str,
        t: DateTime<Utc>,
    ) -> SimContainer {
        let r = h(self.config.seed, &[g, 100 + c as u64]);
        let (start, restarts) = if pod.kind == SlotKind::Restarting {
            let k = (t - pod.start).num_seconds().max(0) / RESTART_PERIOD_S;
            (
                pod.start + Duration::seconds(k * RESTART_PERIOD_S),
                k as i32,
            )
        } else {
            (pod.start, 0)
        };
        let millicores = if name == "sidecar" {
            10 + r % 40
        } else {
            20 + r % 480
        };
        SimContainer {
            name: name.to_string(),
            image: format!("registry.example/{}/{name}:1.{}", pod.namespace, r % 10),
            millicores,
            working_set: (if name == "sidecar" { 16 } else { 64 + r % 448 }) * MIB,
            start,
            restarts,
            gpus: u32::from(pod.kind == SlotKind::GpuJob),
            cpu_request_millicores: millicores.div_ceil(100) * 100,
            memory_request: 512 * MIB,
        }
    }

    /// Node `n`'s kubelet summary at `t` (whole seconds, like a kubelet's sample times).
    pub fn summary(&self, n: usize, t: DateTime<Utc>) -> Summary {
        let t = t.duration_trunc(Duration::seconds(1)).unwrap_or(t);
        let pods = self.node_pods(n, t);
        let node_start = self.node_start();
        let node_up = elapsed_s(node_start, t);
        let node_millicores: u64 = 250
            + pods
                .iter()
                .flat_map(|p| &p.containers)
                .map(|c| c.millicores)
                .sum::<u64>();
        let node_rx_rate = 50_000u64;
        let node_network = NetworkStats {
            time: Some(t),
            name: Some("eth0".into()),
            rx_bytes: Some(node_rx_rate * node_up),
            rx_errors: Some(0),
            tx_bytes: Some(node_rx_rate / 2 * node_up),
            tx_errors: Some(0),
        };
        let pod_stats = pods
            .iter()
            .map(|p| {
                let containers: Vec<ContainerStats> =
                    p.containers.iter().map(|c| container_stats(c, t)).collect();
                let up = elapsed_s(p.start, t);
                let network = if p.host_network {
                    node_network.clone()
                } else {
                    NetworkStats {
                        time: Some(t),
                        name: Some("eth0".into()),
                        rx_bytes: Some(p.rx_rate * up),
                        rx_errors: Some(0),
                        tx_bytes: Some(p.rx_rate / 2 * up),
                        tx_errors: Some(0),
                    }
                };
                let used: u64 = containers
                    .iter()
                    .filter_map(|c| c.rootfs.as_ref().and_then(|f| f.used_bytes))
                    .sum();
                PodStats {
                    pod_ref: PodReference {
                        name: p.name.clone(),
                        namespace: p.namespace.clone(),
                        uid: p.uid.clone(),
                    },
                    start_time: Some(p.start),
                    containers,
                    cpu: None,
                    memory: None,
                    network: Some(network),
                    ephemeral_storage: Some(fs(t, used + MIB)),
                }
            })
            .collect();
        Summary {
            node: NodeStats {
                node_name: Self::node_name(n),
                system_containers: vec![ContainerStats {
                    name: "kubelet".into(),
                    start_time: Some(node_start),
                    cpu: Some(cpu(60, node_start, t)),
                    memory: Some(memory(80 * MIB, node_start, t)),
                    ..ContainerStats::default()
                }],
                start_time: Some(node_start),
                cpu: Some(cpu(node_millicores, node_start, t)),
                memory: Some(memory(8 * GIB, node_start, t)),
                network: Some(node_network),
                fs: Some(FsStats {
                    time: Some(t),
                    available_bytes: Some(60 * GIB),
                    capacity_bytes: Some(100 * GIB),
                    used_bytes: Some(40 * GIB),
                    inodes_free: Some(6_000_000),
                    inodes: Some(6_553_600),
                    inodes_used: Some(553_600),
                }),
            },
            pods: pod_stats,
        }
    }
}

impl Model {
    /// Node `n`'s DCGM exporter page at `t` (Prometheus text), one device per GPU container.
    pub fn dcgm_metrics(&self, n: usize, t: DateTime<Utc>) -> String {
        let mut out = String::from("# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).\n# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n");
        let node = Self::node_name(n);
        let gpus = self.node_pods(n, t).into_iter().flat_map(|p| {
            p.containers
                .iter()
                .filter(|c| c.gpus > 0)
                .map(|c| (p.namespace.clone(), p.name.clone(), c.name.clone()))
                .collect::<Vec<_>>()
        });
        for (i, (namespace, pod, container)) in gpus.enumerate() {
            let labels = format!(
                "gpu=\"{i}\",UUID=\"GPU-{node}-{i}\",device=\"nvidia{i}\",modelName=\"Tesla T4\",Hostname=\"{node}\",container=\"{container}\",namespace=\"{namespace}\",pod=\"{pod}\""
            );
            out.push_str(&format!(
                "DCGM_FI_DEV_GPU_UTIL{{{labels}}} {DCGM_UTIL_PERCENT}\n"
            ));
            out.push_str(&format!(
                "DCGM_FI_DEV_FB_USED{{{labels}}} {DCGM_FB_USED_MIB}\n"
            ));
            out.push_str(&format!(
                "DCGM_FI_DEV_FB_FREE{{{labels}}} {DCGM_FB_FREE_MIB}\n"
            ));
        }
        out
    }
}

fn elapsed_s(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    (to - from).num_seconds().max(0) as u64
}

fn elapsed_ns(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    (to - from).num_nanoseconds().unwrap_or(0).max(0) as u64
}

/// The counter of a constant `millicores` since `start`: CPU-nanoseconds.
pub fn cpu_counter(millicores: u64, start: DateTime<Utc>, t: DateTime<Utc>) -> u64 {
    millicores * elapsed_ns(start, t) / 1000
}

fn cpu(millicores: u64, start: DateTime<Utc>, t: DateTime<Utc>) -> CpuStats {
    CpuStats {
        time: Some(t),
        usage_nano_cores: Some(millicores * 1_000_000),
        usage_core_nano_seconds: Some(cpu_counter(millicores, start, t)),
    }
}

fn memory(working_set: u64, start: DateTime<Utc>, t: DateTime<Utc>) -> MemoryStats {
    let up = elapsed_s(start, t);
    MemoryStats {
        time: Some(t),
        available_bytes: None,
        usage_bytes: Some(working_set + 16 * MIB),
        working_set_bytes: Some(working_set),
        rss_bytes: Some(working_set - working_set / 8),
        page_faults: Some(100 * up),
        major_page_faults: Some(up / 60),
    }
}

fn fs(t: DateTime<Utc>, used: u64) -> FsStats {
    FsStats {
        time: Some(t),
        available_bytes: Some(60 * GIB),
        capacity_bytes: Some(100 * GIB),
        used_bytes: Some(used),
        inodes_free: Some(6_000_000),
        inodes: Some(6_553_600),
        inodes_used: Some(12),
    }
}

fn container_stats(c: &SimContainer, t: DateTime<Utc>) -> ContainerStats {
    ContainerStats {
        name: c.name.clone(),
        start_time: Some(c.start),
        cpu: Some(cpu(c.millicores, c.start, t)),
        memory: Some(memory(c.working_set, c.start, t)),
        rootfs: Some(fs(t, 10 * MIB + c.working_set / 16)),
        logs: Some(fs(t, MIB)),
        accelerators: (c.gpus > 0).then(|| {
            vec![AcceleratorStats {
                make: "nvidia".into(),
                model: "Tesla T4".into(),
                id: format!("GPU-{}", &c.image.len()),
                memory_total: 16 * GIB,
                memory_used: 4 * GIB,
                duty_cycle: 80,
            }]
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn model() -> Model {
        let epoch = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        Model::new(
            SimConfig {
                nodes: 3,
                pods_per_node: 12,
                seed: 7,
            },
            epoch,
        )
    }

    #[test]
    fn the_same_seed_and_time_give_the_same_cluster() {
        let t = model().epoch + Duration::seconds(95);
        assert_eq!(model().pods_at(t), model().pods_at(t));
        assert_eq!(model().summary(1, t), model().summary(1, t));
    }

    #[test]
    fn a_container_counter_grows_by_exactly_its_millicores() {
        let m = model();
        let t0 = m.epoch;
        let t1 = t0 + Duration::seconds(15);
        let s0 = m.summary(0, t0);
        let s1 = m.summary(0, t1);
        let c = &m.node_pods(0, t0)[2].containers[0];
        let counter = |s: &Summary| {
            s.pods[2].containers[0]
                .cpu
                .as_ref()
                .unwrap()
                .usage_core_nano_seconds
                .unwrap()
        };
        // millicores/1000 cores × 15 s = millicores × 15e6 CPU-nanoseconds.
        assert_eq!(counter(&s1) - counter(&s0), c.millicores * 15_000_000);
    }

    #[test]
    fn cronjob_pods_come_and_go() {
        let m = model();
        let cron_slots = |t| {
            m.pods_at(t)
                .into_iter()
                .filter(|p| p.kind == SlotKind::CronJob)
                .count()
        };
        let counts: Vec<usize> = (0..10)
            .map(|i| cron_slots(m.epoch + Duration::seconds(i * 60)))
            .collect();
        assert!(counts.iter().min() < counts.iter().max(), "{counts:?}");
    }

    #[test]
    fn restarting_containers_restart_and_their_counters_reset() {
        let m = model();
        let find = |t| {
            m.pods_at(t)
                .into_iter()
                .find(|p| p.kind == SlotKind::Restarting)
                .unwrap()
        };
        let a = find(m.epoch);
        let b = find(m.epoch + Duration::seconds(RESTART_PERIOD_S));
        assert_eq!(b.containers[0].restarts, a.containers[0].restarts + 1);
        assert!(b.containers[0].start > a.containers[0].start);
    }

    #[test]
    fn every_node_has_a_host_network_daemon_and_a_static_pod() {
        let pods = model().node_pods(2, model().epoch);
        assert!(pods
            .iter()
            .any(|p| p.host_network && p.workload.0 == "DaemonSet"));
        assert!(pods
            .iter()
            .any(|p| p.mirror && p.workload == ("Node".to_string(), "node-002".to_string())));
    }
}
