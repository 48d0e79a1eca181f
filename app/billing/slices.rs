//! Usage cut at every instant a sample was taken. Metering stores a minute this way, so that a
//! window edge anywhere inside the minute is cut exactly where the accounting rule cuts raw
//! samples: a window holds the slices taken inside it, as it holds the samples taken inside it.

use std::collections::{BTreeMap, BTreeSet};

use super::capacity::allocatable;
use super::quantities::{pod_usage, Usage};
use super::samples::{NodeSamples, PodIdentity, PodSamples, Window};

/// One pod's usage in a window, by the instant its samples were taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSlices {
    pub identity: PodIdentity,
    /// `(instant, usage of the samples taken then)`, by instant, none empty.
    pub slices: Vec<(i64, Usage)>,
}

/// Every instant in `w` at which one of the pod's series has a sample.
fn instants(pod: &PodSamples, w: Window) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    let mut add = |ts: &mut dyn Iterator<Item = i64>| out.extend(ts.filter(|t| w.contains(*t)));
    for c in &pod.containers {
        add(&mut c.cpu.iter().map(|s| s.t));
        add(&mut c.memory.iter().map(|s| s.t));
        add(&mut c.gpu.iter().map(|s| s.t));
        add(&mut c.cpu_rate.iter().map(|s| s.t));
        for a in &c.accelerators {
            add(&mut a.duty_cycle.iter().map(|s| s.t));
            add(&mut a.memory_used.iter().map(|s| s.t));
            add(&mut a.memory_total.iter().map(|s| s.t));
        }
    }
    add(&mut pod.ephemeral.iter().map(|s| s.t));
    add(&mut pod.net_rx.iter().map(|s| s.t));
    add(&mut pod.net_tx.iter().map(|s| s.t));
    out
}

/// Each pod's usage in `w`, slice by slice; lists of the same identity are merged. The slices
/// of a pod add up to [`pod_usage`] over `w`, and those taken in any sub-window to its usage
/// there.
pub fn pod_slices(pods: &[PodSamples], w: Window) -> Vec<PodSlices> {
    let mut acc: BTreeMap<&PodIdentity, BTreeMap<i64, Usage>> = BTreeMap::new();
    for p in pods {
        for t in instants(p, w) {
            let u = pod_usage(p, Window { from: t, to: t + 1 });
            if !u.is_empty() {
                acc.entry(&p.identity)
                    .or_default()
                    .entry(t)
                    .or_default()
                    .merge(&u);
            }
        }
    }
    acc.into_iter()
        .map(|(id, slices)| PodSlices {
            identity: id.clone(),
            slices: slices.into_iter().collect(),
        })
        .collect()
}

/// Each node's allocatable in `w` (millicore-ns, byte-ns), by the instant of its samples.
pub fn node_slices(nodes: &[NodeSamples], w: Window) -> BTreeMap<String, Vec<(i64, u128, u128)>> {
    let mut out: BTreeMap<String, Vec<(i64, u128, u128)>> = BTreeMap::new();
    for n in nodes {
        let times: BTreeSet<i64> = n
            .cpu_allocatable
            .iter()
            .chain(&n.memory_allocatable)
            .map(|s| s.t)
            .filter(|t| w.contains(*t))
            .collect();
        for t in times {
            let one = std::slice::from_ref(n);
            if let Some((cpu, mem)) = allocatable(one, Window { from: t, to: t + 1 })
                .remove(&n.node)
                .filter(|(c, m)| *c > 0 || *m > 0)
            {
                out.entry(n.node.clone()).or_default().push((t, cpu, mem));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::rollup::usage_from_raw;
    use crate::billing::samples::{ContainerSamples, CounterSample, GaugeSample, NS_PER_SEC};

    const S: i64 = NS_PER_SEC;

    fn pod() -> PodSamples {
        // CPU every 15 s from 0 s, memory every 15 s from 5 s, network every 30 s from 7 s.
        let cpu = (0..8)
            .map(|i| CounterSample {
                t: i * 15 * S,
                value: (i as u64) * 3_000_000_000,
                start: Some(-S),
                request: 100,
                nominal: Some(15 * S),
            })
            .collect();
        let memory = (0..8)
            .map(|i| GaugeSample {
                t: 5 * S + i * 15 * S,
                value: 1000 + i as u64,
                request: 2000,
                nominal: Some(15 * S),
            })
            .collect();
        let net = |scale: u64| {
            (0..4)
                .map(|i| CounterSample {
                    t: 7 * S + i * 30 * S,
                    value: (i as u64) * scale,
                    start: None,
                    request: 0,
                    nominal: Some(30 * S),
                })
                .collect()
        };
        PodSamples {
            identity: PodIdentity {
                namespace: "ns".into(),
                pod: "p".into(),
                ..Default::default()
            },
            containers: vec![ContainerSamples {
                name: "c".into(),
                cpu,
                memory,
                ..Default::default()
            }],
            ephemeral: vec![],
            net_rx: net(100),
            net_tx: net(7),
        }
    }

    #[test]
    fn slices_of_any_sub_window_add_up_to_the_raw_usage_of_that_window() {
        let pods = [pod()];
        let minute = Window::new(0, 60 * S).unwrap();
        let sliced = pod_slices(&pods, minute);
        assert_eq!(sliced.len(), 1);
        // Instants: CPU at 0, 15, 30, 45; memory at 5, 20, 35, 50; network at 37 (its sample
        // at 7 s is the counter's baseline: it accounts for nothing, so it is no slice).
        let at: Vec<i64> = sliced[0].slices.iter().map(|(t, _)| t / S).collect();
        assert_eq!(at, vec![0, 5, 15, 20, 30, 35, 37, 45, 50]);
        for (from, to) in [(0, 60), (0, 16), (6, 36), (37, 38), (51, 60)] {
            let w = Window::new(from * S, to * S).unwrap();
            let mut sum = Usage::default();
            for (_, u) in sliced[0].slices.iter().filter(|(t, _)| w.contains(*t)) {
                sum.merge(u);
            }
            let raw = usage_from_raw(&pods, w);
            let want = raw.first().map(|p| p.usage.clone()).unwrap_or_default();
            assert_eq!(sum, want, "window {from}..{to} s");
        }
    }
}
