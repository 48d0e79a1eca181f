//! Node capacity: what was allocated (the requests of the pods on a node) and what stood idle.
//!
//! Capacity is the node's allocatable integrated over the window with the gauge rule; allocated
//! is the sum of its pods' request quantities over the same window. Idle is what capacity
//! leaves after allocation, never negative; when requests exceed allocatable (overcommit, or a
//! node whose allocatable was not observed) the excess is reported separately, so that
//! `allocated − overcommit + idle = capacity` always holds exactly.

use std::collections::BTreeMap;

use super::intervals::IntervalSet;
use super::quantities::gauge_in_window;
use super::rollup::PodUsage;
use super::samples::{NodeSamples, ScrapeConfig, Window};

/// One resource of one node, in base units (millicore-ns or byte-ns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapacityLine {
    pub capacity: u128,
    pub allocated: u128,
    pub idle: u128,
    pub overcommit: u128,
}

impl CapacityLine {
    pub fn new(capacity: u128, allocated: u128) -> CapacityLine {
        CapacityLine {
            capacity,
            allocated,
            idle: capacity.saturating_sub(allocated),
            overcommit: allocated.saturating_sub(capacity),
        }
    }
}

/// CPU and memory capacity of one node over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCapacity {
    pub node: String,
    pub cpu: CapacityLine,
    pub memory: CapacityLine,
}

/// Capacity, allocation and idle per node over `w`, sorted by node name. `pods` is per-pod
/// usage over the same window (raw or from rollups); nodes with pods but no allocatable
/// samples appear with zero capacity, their requests all overcommit.
pub fn node_capacity(
    nodes: &[NodeSamples],
    pods: &[PodUsage],
    w: Window,
    cfg: ScrapeConfig,
) -> Vec<NodeCapacity> {
    // (cpu capacity, memory capacity, cpu allocated, memory allocated)
    let mut acc: BTreeMap<&str, [u128; 4]> = BTreeMap::new();
    for n in nodes {
        let mut seen = IntervalSet::new();
        let e = acc.entry(&n.node).or_default();
        // Allocatable in millicores × ns is millicore-ns, like CPU requests.
        e[0] += gauge_in_window(&n.cpu_allocatable, w, cfg, &mut seen).usage;
        e[1] += gauge_in_window(&n.memory_allocatable, w, cfg, &mut seen).usage;
    }
    for p in pods {
        let e = acc.entry(&p.identity.node).or_default();
        e[2] += p.usage.quantities.cpu.request;
        e[3] += p.usage.quantities.memory.request;
    }
    acc.into_iter()
        .map(|(node, [cc, mc, ca, ma])| NodeCapacity {
            node: node.to_string(),
            cpu: CapacityLine::new(cc, ca),
            memory: CapacityLine::new(mc, ma),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::quantities::{Quantities, Triple, Usage};
    use crate::billing::samples::{GaugeSample, PodIdentity, NS_PER_HOUR};

    #[test]
    fn allocated_plus_idle_is_capacity_and_overcommit_is_separate() {
        // Node of 4000 m allocatable, scraped hourly: 4000 m × 1 h = 4 core-hours of capacity.
        let h = NS_PER_HOUR;
        let node = NodeSamples {
            node: "n1".into(),
            cpu_allocatable: vec![GaugeSample {
                t: h / 2,
                value: 4_000,
                request: 0,
            }],
            memory_allocatable: vec![GaugeSample {
                t: h / 2,
                value: 1 << 30,
                request: 0,
            }],
        };
        let pod = |node: &str, cpu: u128, mem: u128| PodUsage {
            identity: PodIdentity {
                node: node.into(),
                ..Default::default()
            },
            usage: Usage {
                quantities: Quantities {
                    cpu: Triple {
                        request: cpu,
                        ..Default::default()
                    },
                    memory: Triple {
                        request: mem,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                observed: IntervalSet::new(),
            },
        };
        let cap = 4_000 * h as u128;
        let mem_cap = (1u128 << 30) * h as u128;
        // 1.5 cores requested for the hour; memory requests 1.5 × allocatable.
        let pods = [
            pod("n1", cap / 4, mem_cap),
            pod("n1", cap / 8, mem_cap / 2),
            pod("n2", 7, 0),
        ];
        let cfg = ScrapeConfig::new(h);
        let w = Window::new(0, h).unwrap();
        let out = node_capacity(&[node], &pods, w, cfg);
        assert_eq!(out[0].node, "n1");
        assert_eq!(
            out[0].cpu,
            CapacityLine {
                capacity: cap,
                allocated: cap * 3 / 8,
                idle: cap * 5 / 8,
                overcommit: 0
            }
        );
        assert_eq!(out[0].memory.idle, 0);
        assert_eq!(out[0].memory.overcommit, mem_cap / 2);
        // A node never observed: zero capacity, everything overcommitted, idle 0.
        assert_eq!(
            out[1].cpu,
            CapacityLine {
                capacity: 0,
                allocated: 7,
                idle: 0,
                overcommit: 7
            }
        );
    }
}
