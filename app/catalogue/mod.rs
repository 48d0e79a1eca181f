//! The metric catalogue: every measurement kubemeter writes and serves, named as Heapster
//! named it. This is the only place measurement names are spelled; the API, the dashboard,
//! the collector and the docs all read this table.

pub mod tags;

/// A counter only grows (until a reset); a gauge is a level at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// InfluxDB field type, as Heapster chose it: integers for counters, bytes and millicores;
/// floats for ratios and most rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Int,
    Float,
}

/// The finest level at which one series carries a whole pod's value, which is the level that
/// per-pod and per-namespace aggregations read (reading more than one level counts twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodLevel {
    /// Heapster's `type=pod` series (pod sums of the containers, or pod-only metrics).
    Pod,
    /// Only per-container series exist (`type=pod_container`).
    Container,
    /// A node metric: no pod series at all.
    NodeOnly,
}

impl PodLevel {
    /// The value of Heapster's `type` tag for that level.
    pub fn type_tag(self) -> &'static str {
        match self {
            PodLevel::Pod => "pod",
            PodLevel::Container => "pod_container",
            PodLevel::NodeOnly => "node",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: &'static str,
    pub kind: Kind,
    pub value_type: ValueType,
    pub pod_level: PodLevel,
    /// Shown in the dashboard's sidebar (the seed's "main metrics").
    pub main: bool,
    pub help: &'static str,
}

use Kind::{Counter, Gauge};
use PodLevel::{Container, NodeOnly, Pod};
use ValueType::{Float, Int};

const fn m(
    name: &'static str,
    unit: &'static str,
    kind: Kind,
    value_type: ValueType,
    pod_level: PodLevel,
    help: &'static str,
) -> Metric {
    Metric {
        name,
        unit,
        kind,
        value_type,
        pod_level,
        main: false,
        help,
    }
}

const fn main(metric: Metric) -> Metric {
    Metric {
        main: true,
        ..metric
    }
}

/// Measurement names, spelled once; everything else refers to these.
pub mod name {
    pub const CPU_LIMIT: &str = "cpu/limit";
    pub const CPU_NODE_CAPACITY: &str = "cpu/node_capacity";
    pub const CPU_NODE_ALLOCATABLE: &str = "cpu/node_allocatable";
    pub const CPU_NODE_RESERVATION: &str = "cpu/node_reservation";
    pub const CPU_NODE_UTILIZATION: &str = "cpu/node_utilization";
    pub const CPU_REQUEST: &str = "cpu/request";
    pub const CPU_USAGE: &str = "cpu/usage";
    pub const CPU_USAGE_RATE: &str = "cpu/usage_rate";
    pub const FILESYSTEM_USAGE: &str = "filesystem/usage";
    pub const FILESYSTEM_LIMIT: &str = "filesystem/limit";
    pub const FILESYSTEM_AVAILABLE: &str = "filesystem/available";
    pub const FILESYSTEM_INODES: &str = "filesystem/inodes";
    pub const FILESYSTEM_INODES_FREE: &str = "filesystem/inodes_free";
    pub const GPU_USAGE: &str = "gpu/usage";
    pub const MEMORY_LIMIT: &str = "memory/limit";
    pub const MEMORY_MAJOR_PAGE_FAULTS: &str = "memory/major_page_faults";
    pub const MEMORY_MAJOR_PAGE_FAULTS_RATE: &str = "memory/major_page_faults_rate";
    pub const MEMORY_NODE_CAPACITY: &str = "memory/node_capacity";
    pub const MEMORY_NODE_ALLOCATABLE: &str = "memory/node_allocatable";
    pub const MEMORY_NODE_RESERVATION: &str = "memory/node_reservation";
    pub const MEMORY_NODE_UTILIZATION: &str = "memory/node_utilization";
    pub const MEMORY_PAGE_FAULTS: &str = "memory/page_faults";
    pub const MEMORY_PAGE_FAULTS_RATE: &str = "memory/page_faults_rate";
    pub const MEMORY_REQUEST: &str = "memory/request";
    pub const MEMORY_USAGE: &str = "memory/usage";
    pub const MEMORY_CACHE: &str = "memory/cache";
    pub const MEMORY_WORKING_SET: &str = "memory/working_set";
    pub const NETWORK_RX: &str = "network/rx";
    pub const NETWORK_RX_ERRORS: &str = "network/rx_errors";
    pub const NETWORK_RX_ERRORS_RATE: &str = "network/rx_errors_rate";
    pub const NETWORK_RX_RATE: &str = "network/rx_rate";
    pub const NETWORK_TX: &str = "network/tx";
    pub const NETWORK_TX_ERRORS: &str = "network/tx_errors";
    pub const NETWORK_TX_ERRORS_RATE: &str = "network/tx_errors_rate";
    pub const NETWORK_TX_RATE: &str = "network/tx_rate";
    pub const UPTIME: &str = "uptime";
    pub const EPHEMERAL_STORAGE_USAGE: &str = "ephemeral_storage/usage";
    pub const EPHEMERAL_STORAGE_REQUEST: &str = "ephemeral_storage/request";
    pub const EPHEMERAL_STORAGE_LIMIT: &str = "ephemeral_storage/limit";
    pub const RESTART_COUNT: &str = "restart_count";
    pub const NVIDIA_COM_GPU_REQUEST: &str = "nvidia.com/gpu/request";
    pub const NVIDIA_COM_GPU_LIMIT: &str = "nvidia.com/gpu/limit";
    pub const ACCELERATOR_MEMORY_TOTAL: &str = "accelerator/memory_total";
    pub const ACCELERATOR_MEMORY_USED: &str = "accelerator/memory_used";
    pub const ACCELERATOR_DUTY_CYCLE: &str = "accelerator/duty_cycle";
    pub const MEMORY_RSS: &str = "memory/rss";
}

pub static METRICS: &[Metric] = &[
    m(
        name::CPU_LIMIT,
        "millicores",
        Gauge,
        Int,
        Pod,
        "CPU hard limit in millicores.",
    ),
    m(
        name::CPU_NODE_CAPACITY,
        "millicores",
        Gauge,
        Float,
        NodeOnly,
        "CPU capacity of a node.",
    ),
    m(
        name::CPU_NODE_ALLOCATABLE,
        "millicores",
        Gauge,
        Float,
        NodeOnly,
        "CPU allocatable of a node.",
    ),
    m(
        name::CPU_NODE_RESERVATION,
        "ratio",
        Gauge,
        Float,
        NodeOnly,
        "Share of CPU that is reserved on the node allocatable.",
    ),
    m(
        name::CPU_NODE_UTILIZATION,
        "ratio",
        Gauge,
        Float,
        NodeOnly,
        "CPU utilization as a share of node allocatable.",
    ),
    m(
        name::CPU_REQUEST,
        "millicores",
        Gauge,
        Int,
        Pod,
        "CPU request (the guaranteed amount of resources) in millicores.",
    ),
    m(
        name::CPU_USAGE,
        "nanoseconds",
        Counter,
        Int,
        Pod,
        "Cumulative CPU usage on all cores.",
    ),
    main(m(
        name::CPU_USAGE_RATE,
        "millicores",
        Gauge,
        Int,
        Pod,
        "CPU usage on all cores in millicores.",
    )),
    m(
        name::FILESYSTEM_USAGE,
        "bytes",
        Gauge,
        Int,
        Container,
        "Total number of bytes consumed on a filesystem.",
    ),
    m(
        name::FILESYSTEM_LIMIT,
        "bytes",
        Gauge,
        Int,
        Container,
        "The total size of filesystem in bytes.",
    ),
    m(
        name::FILESYSTEM_AVAILABLE,
        "bytes",
        Gauge,
        Int,
        Container,
        "The number of available bytes remaining in the filesystem.",
    ),
    m(
        name::FILESYSTEM_INODES,
        "count",
        Gauge,
        Int,
        Container,
        "The number of available inodes in the filesystem.",
    ),
    m(
        name::FILESYSTEM_INODES_FREE,
        "count",
        Gauge,
        Int,
        Container,
        "The number of free inodes remaining in the filesystem.",
    ),
    main(m(
        name::GPU_USAGE,
        "megabytes",
        Gauge,
        Int,
        Pod,
        "The GPU memory used by all GPUs of the pod, in megabytes.",
    )),
    m(
        name::MEMORY_LIMIT,
        "bytes",
        Gauge,
        Int,
        Pod,
        "Memory hard limit in bytes.",
    ),
    m(
        name::MEMORY_MAJOR_PAGE_FAULTS,
        "count",
        Counter,
        Int,
        Pod,
        "Number of major page faults.",
    ),
    m(
        name::MEMORY_MAJOR_PAGE_FAULTS_RATE,
        "per second",
        Gauge,
        Float,
        Pod,
        "Number of major page faults per second.",
    ),
    m(
        name::MEMORY_NODE_CAPACITY,
        "bytes",
        Gauge,
        Float,
        NodeOnly,
        "Memory capacity of a node.",
    ),
    m(
        name::MEMORY_NODE_ALLOCATABLE,
        "bytes",
        Gauge,
        Float,
        NodeOnly,
        "Memory allocatable of a node.",
    ),
    m(
        name::MEMORY_NODE_RESERVATION,
        "ratio",
        Gauge,
        Float,
        NodeOnly,
        "Share of memory that is reserved on the node allocatable.",
    ),
    m(
        name::MEMORY_NODE_UTILIZATION,
        "ratio",
        Gauge,
        Float,
        NodeOnly,
        "Memory utilization as a share of memory allocatable.",
    ),
    m(
        name::MEMORY_PAGE_FAULTS,
        "count",
        Counter,
        Int,
        Pod,
        "Number of page faults.",
    ),
    m(
        name::MEMORY_PAGE_FAULTS_RATE,
        "per second",
        Gauge,
        Float,
        Pod,
        "Number of page faults per second.",
    ),
    m(
        name::MEMORY_REQUEST,
        "bytes",
        Gauge,
        Int,
        Pod,
        "Memory request (the guaranteed amount of resources) in bytes.",
    ),
    main(m(
        name::MEMORY_USAGE,
        "bytes",
        Gauge,
        Int,
        Pod,
        "Total memory usage.",
    )),
    m(
        name::MEMORY_CACHE,
        "bytes",
        Gauge,
        Int,
        Pod,
        "Cache memory usage.",
    ),
    m(
        name::MEMORY_RSS,
        "bytes",
        Gauge,
        Int,
        Pod,
        "RSS memory usage.",
    ),
    m(
        name::MEMORY_WORKING_SET,
        "bytes",
        Gauge,
        Int,
        Pod,
        "Total working set usage: memory in use that the kernel cannot easily drop.",
    ),
    m(
        name::NETWORK_RX,
        "bytes",
        Counter,
        Int,
        Pod,
        "Cumulative number of bytes received over the network.",
    ),
    m(
        name::NETWORK_RX_ERRORS,
        "count",
        Counter,
        Int,
        Pod,
        "Cumulative number of errors while receiving over the network.",
    ),
    m(
        name::NETWORK_RX_ERRORS_RATE,
        "per second",
        Gauge,
        Float,
        Pod,
        "Number of errors while receiving over the network per second.",
    ),
    m(
        name::NETWORK_RX_RATE,
        "bytes per second",
        Gauge,
        Float,
        Pod,
        "Number of bytes received over the network per second.",
    ),
    m(
        name::NETWORK_TX,
        "bytes",
        Counter,
        Int,
        Pod,
        "Cumulative number of bytes sent over the network.",
    ),
    m(
        name::NETWORK_TX_ERRORS,
        "count",
        Counter,
        Int,
        Pod,
        "Cumulative number of errors while sending over the network.",
    ),
    m(
        name::NETWORK_TX_ERRORS_RATE,
        "per second",
        Gauge,
        Float,
        Pod,
        "Number of errors while sending over the network per second.",
    ),
    m(
        name::NETWORK_TX_RATE,
        "bytes per second",
        Gauge,
        Float,
        Pod,
        "Number of bytes sent over the network per second.",
    ),
    main(m(
        name::UPTIME,
        "milliseconds",
        Gauge,
        Int,
        Container,
        "Number of milliseconds since the container was started.",
    )),
    m(
        name::EPHEMERAL_STORAGE_USAGE,
        "bytes",
        Gauge,
        Int,
        Pod,
        "Ephemeral storage (logs, writable layers, emptyDir) used by the pod.",
    ),
    m(
        name::EPHEMERAL_STORAGE_REQUEST,
        "bytes",
        Gauge,
        Int,
        Pod,
        "Ephemeral storage request in bytes.",
    ),
    m(
        name::EPHEMERAL_STORAGE_LIMIT,
        "bytes",
        Gauge,
        Int,
        Pod,
        "Ephemeral storage limit in bytes.",
    ),
    m(
        name::RESTART_COUNT,
        "count",
        Gauge,
        Int,
        Container,
        "How many times the container has restarted.",
    ),
    m(
        name::NVIDIA_COM_GPU_REQUEST,
        "GPUs",
        Gauge,
        Int,
        Pod,
        "GPUs requested (nvidia.com/gpu).",
    ),
    m(
        name::NVIDIA_COM_GPU_LIMIT,
        "GPUs",
        Gauge,
        Int,
        Pod,
        "GPUs allocated (nvidia.com/gpu limit); GPU billing uses this.",
    ),
    m(
        name::ACCELERATOR_MEMORY_TOTAL,
        "bytes",
        Gauge,
        Int,
        Container,
        "Memory of the container's accelerators.",
    ),
    m(
        name::ACCELERATOR_MEMORY_USED,
        "bytes",
        Gauge,
        Int,
        Container,
        "Accelerator memory in use.",
    ),
    m(
        name::ACCELERATOR_DUTY_CYCLE,
        "percent",
        Gauge,
        Int,
        Container,
        "Share of time the accelerator was busy.",
    ),
];

/// The metric named `name`, if it is in the catalogue.
pub fn find(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

/// Where the hourly rollups of a pod-level metric live: `cpu/usage_rate/hourly`, one point per
/// series and hour with the fields `sum`, `count`, `min` and `max` of its samples.
pub fn hourly(metric: &Metric) -> String {
    format!("{}/hourly", metric.name)
}

/// kubemeter's own, not Heapster's: one point per node and scrape round of kubemeter's
/// collector (tags `cluster_name`, `nodename`; integer field `value`: the collector's interval
/// in ns), at the earliest sample time of that node in that round. Billing measures the gap
/// rule of those samples in it (see [`crate::billing::nominal`]); data without it (Heapster's)
/// is measured in its own spacing.
pub const COLLECTOR_INTERVAL: &str = "collector/interval";

/// One point per hour whose hourly rollups are complete (`value`: how many metrics).
pub const ROLLED_UP_HOURS: &str = "rollup/hours";

/// Metered usage (`billing/minute`, `billing/10m`, `billing/hour`, `billing/day`,
/// `billing/week`): per pod, namespace and node and period, packed rows (see
/// `metering::rows`).
pub const BILLING_PREFIX: &str = "billing/";
/// One point per period whose metered rows are complete (tags `cluster_name`, `period`).
pub const BILLING_METERED: &str = "billing/metered";

/// The sidebar's metrics, in catalogue order.
pub fn main_metrics() -> impl Iterator<Item = &'static Metric> {
    METRICS.iter().filter(|m| m.main)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_metric_of_the_seed_readme_is_in_the_catalogue() {
        let seed = "cpu/limit cpu/node_capacity cpu/node_allocatable cpu/node_reservation \
            cpu/node_utilization cpu/request cpu/usage cpu/usage_rate filesystem/usage \
            filesystem/limit filesystem/available filesystem/inodes filesystem/inodes_free \
            gpu/usage memory/limit memory/major_page_faults memory/major_page_faults_rate \
            memory/node_capacity memory/node_allocatable memory/node_reservation \
            memory/node_utilization memory/page_faults memory/page_faults_rate memory/request \
            memory/usage memory/cache memory/rss memory/working_set network/rx network/rx_errors \
            network/rx_errors_rate network/rx_rate network/tx network/tx_errors \
            network/tx_errors_rate network/tx_rate uptime";
        for name in seed.split_whitespace() {
            assert!(find(name).is_some(), "{name} is missing");
        }
    }

    #[test]
    fn names_are_unique() {
        let names: HashSet<_> = METRICS.iter().map(|m| m.name).collect();
        assert_eq!(names.len(), METRICS.len());
    }

    #[test]
    fn the_sidebar_shows_the_seeds_main_metrics() {
        let main: Vec<_> = main_metrics().map(|m| m.name).collect();
        assert_eq!(
            main,
            ["cpu/usage_rate", "gpu/usage", "memory/usage", "uptime"]
        );
    }

    #[test]
    fn counters_are_integers() {
        for m in METRICS.iter().filter(|m| m.kind == Kind::Counter) {
            assert_eq!(m.value_type, ValueType::Int, "{}", m.name);
        }
    }
}
