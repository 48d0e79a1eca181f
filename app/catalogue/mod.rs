//! The metric catalogue: every measurement kubemeter writes and serves, named as Heapster
//! named it. This is the only place measurement names are spelled; the API, the dashboard,
//! the collector and the docs all read this table.

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

pub static METRICS: &[Metric] = &[
    m(
        "cpu/limit",
        "millicores",
        Gauge,
        Int,
        Pod,
        "CPU hard limit in millicores.",
    ),
    m(
        "cpu/node_capacity",
        "millicores",
        Gauge,
        Float,
        NodeOnly,
        "CPU capacity of a node.",
    ),
    m(
        "cpu/node_allocatable",
        "millicores",
        Gauge,
        Float,
        NodeOnly,
        "CPU allocatable of a node.",
    ),
    m(
        "cpu/node_reservation",
        "ratio",
        Gauge,
        Float,
        NodeOnly,
        "Share of CPU that is reserved on the node allocatable.",
    ),
    m(
        "cpu/node_utilization",
        "ratio",
        Gauge,
        Float,
        NodeOnly,
        "CPU utilization as a share of node allocatable.",
    ),
    m(
        "cpu/request",
        "millicores",
        Gauge,
        Int,
        Pod,
        "CPU request (the guaranteed amount of resources) in millicores.",
    ),
    m(
        "cpu/usage",
        "nanoseconds",
        Counter,
        Int,
        Pod,
        "Cumulative CPU usage on all cores.",
    ),
    main(m(
        "cpu/usage_rate",
        "millicores",
        Gauge,
        Int,
        Pod,
        "CPU usage on all cores in millicores.",
    )),
    m(
        "filesystem/usage",
        "bytes",
        Gauge,
        Int,
        Container,
        "Total number of bytes consumed on a filesystem.",
    ),
    m(
        "filesystem/limit",
        "bytes",
        Gauge,
        Int,
        Container,
        "The total size of filesystem in bytes.",
    ),
    m(
        "filesystem/available",
        "bytes",
        Gauge,
        Int,
        Container,
        "The number of available bytes remaining in the filesystem.",
    ),
    m(
        "filesystem/inodes",
        "count",
        Gauge,
        Int,
        Container,
        "The number of available inodes in the filesystem.",
    ),
    m(
        "filesystem/inodes_free",
        "count",
        Gauge,
        Int,
        Container,
        "The number of free inodes remaining in the filesystem.",
    ),
    main(m(
        "gpu/usage",
        "megabytes",
        Gauge,
        Int,
        Pod,
        "The GPU memory used by all GPUs of the pod, in megabytes.",
    )),
    m(
        "memory/limit",
        "bytes",
        Gauge,
        Int,
        Pod,
        "Memory hard limit in bytes.",
    ),
    m(
        "memory/major_page_faults",
        "count",
        Counter,
        Int,
        Pod,
        "Number of major page faults.",
    ),
    m(
        "memory/major_page_faults_rate",
        "per second",
        Gauge,
        Float,
        Pod,
        "Number of major page faults per second.",
    ),
    m(
        "memory/node_capacity",
        "bytes",
        Gauge,
        Float,
        NodeOnly,
        "Memory capacity of a node.",
    ),
    m(
        "memory/node_allocatable",
        "bytes",
        Gauge,
        Float,
        NodeOnly,
        "Memory allocatable of a node.",
    ),
    m(
        "memory/node_reservation",
        "ratio",
        Gauge,
        Float,
        NodeOnly,
        "Share of memory that is reserved on the node allocatable.",
    ),
    m(
        "memory/node_utilization",
        "ratio",
        Gauge,
        Float,
        NodeOnly,
        "Memory utilization as a share of memory allocatable.",
    ),
    m(
        "memory/page_faults",
        "count",
        Counter,
        Int,
        Pod,
        "Number of page faults.",
    ),
    m(
        "memory/page_faults_rate",
        "per second",
        Gauge,
        Float,
        Pod,
        "Number of page faults per second.",
    ),
    m(
        "memory/request",
        "bytes",
        Gauge,
        Int,
        Pod,
        "Memory request (the guaranteed amount of resources) in bytes.",
    ),
    main(m(
        "memory/usage",
        "bytes",
        Gauge,
        Int,
        Pod,
        "Total memory usage.",
    )),
    m(
        "memory/cache",
        "bytes",
        Gauge,
        Int,
        Pod,
        "Cache memory usage.",
    ),
    m("memory/rss", "bytes", Gauge, Int, Pod, "RSS memory usage."),
    m(
        "memory/working_set",
        "bytes",
        Gauge,
        Int,
        Pod,
        "Total working set usage: memory in use that the kernel cannot easily drop.",
    ),
    m(
        "network/rx",
        "bytes",
        Counter,
        Int,
        Pod,
        "Cumulative number of bytes received over the network.",
    ),
    m(
        "network/rx_errors",
        "count",
        Counter,
        Int,
        Pod,
        "Cumulative number of errors while receiving over the network.",
    ),
    m(
        "network/rx_errors_rate",
        "per second",
        Gauge,
        Float,
        Pod,
        "Number of errors while receiving over the network per second.",
    ),
    m(
        "network/rx_rate",
        "bytes per second",
        Gauge,
        Float,
        Pod,
        "Number of bytes received over the network per second.",
    ),
    m(
        "network/tx",
        "bytes",
        Counter,
        Int,
        Pod,
        "Cumulative number of bytes sent over the network.",
    ),
    m(
        "network/tx_errors",
        "count",
        Counter,
        Int,
        Pod,
        "Cumulative number of errors while sending over the network.",
    ),
    m(
        "network/tx_errors_rate",
        "per second",
        Gauge,
        Float,
        Pod,
        "Number of errors while sending over the network per second.",
    ),
    m(
        "network/tx_rate",
        "bytes per second",
        Gauge,
        Float,
        Pod,
        "Number of bytes sent over the network per second.",
    ),
    main(m(
        "uptime",
        "milliseconds",
        Gauge,
        Int,
        Container,
        "Number of milliseconds since the container was started.",
    )),
    m(
        "ephemeral_storage/usage",
        "bytes",
        Gauge,
        Int,
        Pod,
        "Ephemeral storage (logs, writable layers, emptyDir) used by the pod.",
    ),
    m(
        "ephemeral_storage/request",
        "bytes",
        Gauge,
        Int,
        Pod,
        "Ephemeral storage request in bytes.",
    ),
    m(
        "ephemeral_storage/limit",
        "bytes",
        Gauge,
        Int,
        Pod,
        "Ephemeral storage limit in bytes.",
    ),
    m(
        "restart_count",
        "count",
        Gauge,
        Int,
        Container,
        "How many times the container has restarted.",
    ),
    m(
        "nvidia.com/gpu/request",
        "GPUs",
        Gauge,
        Int,
        Pod,
        "GPUs requested (nvidia.com/gpu).",
    ),
    m(
        "nvidia.com/gpu/limit",
        "GPUs",
        Gauge,
        Int,
        Pod,
        "GPUs allocated (nvidia.com/gpu limit); GPU billing uses this.",
    ),
    m(
        "accelerator/memory_total",
        "bytes",
        Gauge,
        Int,
        Container,
        "Memory of the container's accelerators.",
    ),
    m(
        "accelerator/memory_used",
        "bytes",
        Gauge,
        Int,
        Container,
        "Accelerator memory in use.",
    ),
    m(
        "accelerator/duty_cycle",
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
