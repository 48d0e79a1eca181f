//! What the billing math reads: samples of one series, already fetched, sorted by time.
//!
//! Everything is integers: times are nanoseconds since the Unix epoch (what InfluxDB returns
//! with `epoch=ns`), values are the collector's integers (core-nanoseconds, bytes, millicores,
//! GPU counts). Integer inputs are what lets rollups re-aggregate to the last unit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Nanoseconds in one second / hour.
pub const NS_PER_SEC: i64 = 1_000_000_000;
pub const NS_PER_HOUR: i64 = 3_600 * NS_PER_SEC;

/// A half-open time window `[from, to)` in nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    pub from: i64,
    pub to: i64,
}

impl Window {
    /// A window; `None` when `to` is not after `from` (an empty or reversed window is a caller
    /// error the API must report, not a statement of zeros).
    pub fn new(from: i64, to: i64) -> Option<Window> {
        (from < to).then_some(Window { from, to })
    }

    pub fn contains(&self, t: i64) -> bool {
        self.from <= t && t < self.to
    }

    /// Length in nanoseconds (never negative).
    pub fn len_ns(&self) -> i64 {
        (self.to - self.from).max(0)
    }
}

/// Start of the UTC hour containing `t` (saturating at the ends of `i64`, so no caller's
/// arithmetic can wrap).
pub fn hour_floor(t: i64) -> i64 {
    t.saturating_sub(t.rem_euclid(NS_PER_HOUR))
}

/// Start of the first UTC hour at or after `t` (saturating).
pub fn hour_ceil(t: i64) -> i64 {
    let f = hour_floor(t);
    if f == t {
        t
    } else {
        f.saturating_add(NS_PER_HOUR)
    }
}

/// The longest gap between two samples that is still bridged, for a series whose nominal
/// interval is `nominal_ns`: 2.5 intervals. One missed scrape (a gap of 2 intervals plus
/// jitter) is bridged; two missed scrapes are a gap.
pub fn max_gap_ns(nominal_ns: i64) -> i64 {
    nominal_ns.saturating_mul(5) / 2
}

/// One read of a cumulative counter (CPU core-nanoseconds, network bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterSample {
    /// Sample time reported by the kubelet, ns.
    pub t: i64,
    /// Cumulative value since the container (or interface) started.
    pub value: u64,
    /// Container start time, ns, when known. A different start time is a new container.
    pub start: Option<i64>,
    /// Request in force at this sample (CPU: millicores; unused for network: 0).
    pub request: u64,
    /// The series' nominal interval at this sample, ns (see [`Nominal`]); `None`: unknown.
    pub nominal: Option<i64>,
}

/// One read of a gauge (memory bytes, ephemeral-storage bytes, GPU limit, node allocatable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaugeSample {
    pub t: i64,
    /// Measured value (bytes, or a GPU count for GPU allocation).
    pub value: u64,
    /// Request in force at this sample, same unit as `value` (0 when none).
    pub request: u64,
    /// The series' nominal interval at this sample, ns (see [`Nominal`]); `None`: unknown.
    pub nominal: Option<i64>,
}

/// A sample's nominal interval: how often its series was collected around it, a property of
/// the data (never of the process that reads it). kubemeter's collector records its interval
/// beside what it writes (`collector/interval`); for data it did not write, the series' own
/// spacing stands in (see [`super::nominal`]). The gap rule and a first sample's interval
/// are measured in it.
pub trait Nominal {
    /// The nominal interval in ns, if known and positive.
    fn nominal_ns(&self) -> Option<i64>;
}

impl Nominal for CounterSample {
    fn nominal_ns(&self) -> Option<i64> {
        self.nominal.filter(|n| *n > 0)
    }
}

impl Nominal for GaugeSample {
    fn nominal_ns(&self) -> Option<i64> {
        self.nominal.filter(|n| *n > 0)
    }
}

/// Who a pod is, as frozen into the tags at ingest time. The node is part of the identity: a
/// pod name that reappears on another node (a StatefulSet pod rescheduled) is a second series,
/// so grouping by node splits it by time and grouping by pod joins it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct PodIdentity {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: String,
    pub workload_kind: String,
    pub workload_name: String,
    pub node: String,
    /// The configured label tags (`KUBEMETER_LABEL_TAGS`), for `by=label:<key>`.
    pub labels: BTreeMap<String, String>,
    /// Host-network pods report the node's interfaces; their network is never billed to them.
    pub host_network: bool,
    /// GPU model of the node (e.g. `NVIDIA-A100-SXM4-40GB`), for per-model GPU prices.
    pub gpu_model: Option<String>,
}

/// The samples of one container of a pod, each list sorted by time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSamples {
    pub name: String,
    /// `cpu/usage` (core-ns counter) with the container start and `cpu/request` (millicores).
    pub cpu: Vec<CounterSample>,
    /// `memory/working_set` (or `memory/usage`) with `memory/request`, bytes.
    pub memory: Vec<GaugeSample>,
    /// `nvidia.com/gpu/limit` as `value` (GPUs allocated), one sample per scrape while running.
    pub gpu: Vec<GaugeSample>,
    /// `cpu/usage_rate` (millicores) with `cpu/request`: billed as a gauge only for a container
    /// without any `cpu/usage` sample (old Heapster exports), see [`super::quantities`].
    pub cpu_rate: Vec<GaugeSample>,
    /// The GPUs the container used, as DCGM or the kubelet reported them (efficiency, not
    /// billed).
    pub accelerators: Vec<AcceleratorSamples>,
}

/// One GPU of a container: `accelerator/duty_cycle` (percent busy), `accelerator/memory_used`
/// and `accelerator/memory_total` (bytes), each a gauge sorted by time (`request` unused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcceleratorSamples {
    /// The `accelerator_id` tag (the GPU's UUID).
    pub id: String,
    pub duty_cycle: Vec<GaugeSample>,
    pub memory_used: Vec<GaugeSample>,
    pub memory_total: Vec<GaugeSample>,
}

/// Everything billed for one pod (on one node), each list sorted by time.
///
/// A list must hold every sample of its series inside the window plus the last sample before
/// it: counters need it for the first delta, gauges for the first interval. Extra samples
/// outside the window are harmless.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodSamples {
    pub identity: PodIdentity,
    pub containers: Vec<ContainerSamples>,
    /// `ephemeral_storage/usage` with the pod's ephemeral-storage request, bytes.
    pub ephemeral: Vec<GaugeSample>,
    /// `network/rx` and `network/tx` byte counters of the pod.
    pub net_rx: Vec<CounterSample>,
    pub net_tx: Vec<CounterSample>,
}

impl PodSamples {
    /// Sorts every list by time, so callers that merged query results need not care.
    pub fn sort(&mut self) {
        for c in &mut self.containers {
            c.cpu.sort_by_key(|s| s.t);
            c.memory.sort_by_key(|s| s.t);
            c.gpu.sort_by_key(|s| s.t);
            c.cpu_rate.sort_by_key(|s| s.t);
            for a in &mut c.accelerators {
                a.duty_cycle.sort_by_key(|s| s.t);
                a.memory_used.sort_by_key(|s| s.t);
                a.memory_total.sort_by_key(|s| s.t);
            }
        }
        self.ephemeral.sort_by_key(|s| s.t);
        self.net_rx.sort_by_key(|s| s.t);
        self.net_tx.sort_by_key(|s| s.t);
    }
}

/// A node's allocatable resources over time (`value`: millicores / bytes; `request` unused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSamples {
    pub node: String,
    pub cpu_allocatable: Vec<GaugeSample>,
    pub memory_allocatable: Vec<GaugeSample>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_round_in_utc_including_before_the_epoch() {
        assert_eq!(hour_floor(NS_PER_HOUR + 5), NS_PER_HOUR);
        assert_eq!(hour_ceil(NS_PER_HOUR + 5), 2 * NS_PER_HOUR);
        assert_eq!(hour_ceil(NS_PER_HOUR), NS_PER_HOUR);
        assert_eq!(hour_floor(-1), -NS_PER_HOUR);
        assert_eq!(hour_ceil(-1), 0);
    }

    #[test]
    fn windows_are_half_open_and_never_empty() {
        let w = Window::new(10, 20).unwrap();
        assert!(w.contains(10) && !w.contains(20));
        assert!(Window::new(20, 20).is_none());
        // 15 s scrapes: 37.5 s is still one interval's jitter away from two missed scrapes.
        assert_eq!(max_gap_ns(15 * NS_PER_SEC), 37_500_000_000);
    }
}
