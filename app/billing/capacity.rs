//! Node capacity: what was allocated (the requests of the pods on a node) and what stood idle.
//!
//! Capacity is the node's allocatable integrated over the window with the gauge rule; allocated
//! is the sum of its pods' request quantities over the same window. Idle is what capacity
//! leaves after allocation, never negative; when requests exceed allocatable (overcommit, or a
//! node whose allocatable was not observed) the excess is reported separately, so that
//! `allocated − overcommit + idle = capacity` always holds exactly.

use std::collections::BTreeMap;

use super::intervals::IntervalSet;
use super::prices::PriceBook;
use super::quantities::{gauge_in_window, Quantities};
use super::rollup::PodUsage;
use super::samples::{NodeSamples, Window};
use super::statement::{price_line, GroupBy, Line, Statement};

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

impl std::ops::AddAssign for CapacityLine {
    fn add_assign(&mut self, o: CapacityLine) {
        self.capacity += o.capacity;
        self.allocated += o.allocated;
        self.idle += o.idle;
        self.overcommit += o.overcommit;
    }
}

/// CPU and memory capacity of one statement line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity {
    pub cpu: CapacityLine,
    pub memory: CapacityLine,
}

/// Allocatable integrated over a window, per node: (millicore-ns, byte-ns).
pub type Allocatable = BTreeMap<String, (u128, u128)>;

/// Allocatable of `nodes` integrated over `w` with the gauge rule, per node.
pub fn allocatable(nodes: &[NodeSamples], w: Window) -> Allocatable {
    let mut out = Allocatable::new();
    for n in node_capacity(nodes, &[], w) {
        out.insert(n.node, (n.cpu.capacity, n.memory.capacity));
    }
    out
}

/// Adds capacity to a statement by node: every row gets its node's capacity in the row's
/// window (`allocatable` per price segment), allocated = the row's requests; a node with
/// capacity but no pods gets a row of its own, all idle. The totals line adds up the rows,
/// so idle there is the cluster's idle (one node's overcommit does not hide another's idle).
pub fn attach_capacity(
    st: &mut Statement,
    prices: Option<&PriceBook>,
    allocatable: &BTreeMap<Window, Allocatable>,
) {
    if st.by != GroupBy::Node {
        return;
    }
    for (seg, nodes) in allocatable {
        for node in nodes.keys() {
            let key = vec![node.clone()];
            if !st.rows.iter().any(|r| r.window == *seg && r.key == key) {
                st.rows.push(idle_row(st, prices, *seg, key));
            }
        }
    }
    st.rows
        .sort_by(|a, b| (&a.key, a.window).cmp(&(&b.key, b.window)));
    let mut total = Capacity::default();
    for row in &mut st.rows {
        let node = row.key.first().map_or("", String::as_str);
        let (cpu, memory) = allocatable
            .get(&row.window)
            .and_then(|nodes| nodes.get(node))
            .copied()
            .unwrap_or_default();
        let q = &row.quantities;
        let c = Capacity {
            cpu: CapacityLine::new(cpu, q.cpu.request),
            memory: CapacityLine::new(memory, q.memory.request),
        };
        total.cpu += c.cpu;
        total.memory += c.memory;
        row.capacity = Some(c);
    }
    st.totals.capacity = Some(total);
}

/// The row of a node that ran no pod in `seg`: nothing used, nothing allocated.
fn idle_row(st: &Statement, prices: Option<&PriceBook>, seg: Window, key: Vec<String>) -> Line {
    let none = Quantities::default();
    Line {
        key,
        window: seg,
        quantities: none,
        gpu_by_model: BTreeMap::new(),
        observed_ns: 0,
        cpu_source: Default::default(),
        cost: prices.map(|b| price_line(b, seg, st.modes, &none, &BTreeMap::new())),
        capacity: None,
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
pub fn node_capacity(nodes: &[NodeSamples], pods: &[PodUsage], w: Window) -> Vec<NodeCapacity> {
    // (cpu capacity, memory capacity, cpu allocated, memory allocated)
    let mut acc: BTreeMap<&str, [u128; 4]> = BTreeMap::new();
    for n in nodes {
        let mut seen = IntervalSet::new();
        let e = acc.entry(&n.node).or_default();
        // Allocatable in millicores × ns is millicore-ns, like CPU requests.
        e[0] += gauge_in_window(&n.cpu_allocatable, w, &mut seen).usage;
        e[1] += gauge_in_window(&n.memory_allocatable, w, &mut seen).usage;
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
                nominal: Some(h),
            }],
            memory_allocatable: vec![GaugeSample {
                t: h / 2,
                value: 1 << 30,
                request: 0,
                nominal: Some(h),
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
                ..Default::default()
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
        let w = Window::new(0, h).unwrap();
        let out = node_capacity(&[node], &pods, w);
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

    #[test]
    fn a_statement_by_node_shows_idle_capacity_and_a_node_without_pods() {
        use crate::billing::statement::{build_statement, Modes};
        let h = NS_PER_HOUR;
        let w = Window::new(0, h).unwrap();
        // n1: 4 cores for the hour, 1 core requested; n2 ran no pod: 2 cores idle.
        let core_hour = 1_000 * h as u128;
        let pod = PodUsage {
            identity: PodIdentity {
                node: "n1".into(),
                ..Default::default()
            },
            usage: Usage {
                quantities: Quantities {
                    cpu: Triple {
                        request: core_hour,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                ..Default::default()
            },
        };
        let mut st = build_statement(w, &GroupBy::Node, Modes::default(), None, |_| {
            vec![pod.clone()]
        });
        let alloc = BTreeMap::from([(
            w,
            Allocatable::from([
                ("n1".to_string(), (4 * core_hour, 0)),
                ("n2".to_string(), (2 * core_hour, 0)),
            ]),
        )]);
        attach_capacity(&mut st, None, &alloc);
        let keys: Vec<&str> = st.rows.iter().map(|r| r.key[0].as_str()).collect();
        assert_eq!(keys, ["n1", "n2"]);
        assert_eq!(st.rows[0].capacity.unwrap().cpu.idle, 3 * core_hour);
        assert_eq!(st.rows[1].capacity.unwrap().cpu.idle, 2 * core_hour);
        let total = st.totals.capacity.unwrap().cpu;
        assert_eq!(
            (total.capacity, total.allocated, total.idle),
            (6 * core_hour, core_hour, 5 * core_hour)
        );
        let csv = crate::billing::to_csv(&st);
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let idle = header
            .iter()
            .position(|c| *c == "cpu_idle_core_hours")
            .unwrap();
        let cells = |n: usize| {
            csv.lines()
                .nth(n)
                .unwrap()
                .split(',')
                .nth(idle)
                .unwrap()
                .to_string()
        };
        assert_eq!(
            [cells(1), cells(2), cells(3)],
            ["3.000000", "2.000000", "5.000000"]
        );
    }
}
