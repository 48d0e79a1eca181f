//! Hourly rollups and reading a window from them.
//!
//! A rollup is a pod's [`Usage`] for one UTC hour, computed with the very same rule as raw
//! statements. Since every sample belongs to exactly one hour (the one containing its
//! timestamp) and contributes only sums, a window's usage is the sum of its hours' usages:
//! rollups for the whole hours plus raw samples for the partial hours at the edges give the
//! same integers as raw samples alone. Coverage re-aggregates as a union of interval sets, not
//! as a mean of fractions. Nothing here is ever a mean of means.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::quantities::{pod_usage, Usage};
use super::samples::{hour_ceil, hour_floor, PodIdentity, PodSamples, Window, NS_PER_HOUR};

/// One pod's usage over a window, the unit statements are built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodUsage {
    pub identity: PodIdentity,
    pub usage: Usage,
}

/// One pod's usage over the hour `[hour, hour + 1h)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodHour {
    pub identity: PodIdentity,
    /// Start of the hour, ns since the epoch (a multiple of one hour).
    pub hour: i64,
    pub usage: Usage,
}

/// The window of the hour starting at `hour`.
pub fn hour_window(hour: i64) -> Window {
    Window {
        from: hour,
        to: hour + NS_PER_HOUR,
    }
}

/// Usage of every pod over `w` from raw samples, one entry per identity (lists for the same
/// identity are merged), sorted by identity, pods without any contribution left out.
pub fn usage_from_raw(pods: &[PodSamples], w: Window) -> Vec<PodUsage> {
    let mut acc: BTreeMap<&PodIdentity, Usage> = BTreeMap::new();
    for p in pods {
        let u = pod_usage(p, w);
        if !u.is_empty() {
            acc.entry(&p.identity).or_default().merge(&u);
        }
    }
    finish(acc)
}

/// Rollups of every pod for the hour starting at `hour` (what the rollup job writes). Each
/// pod's lists must include the last sample before the hour.
pub fn rollup_hour(pods: &[PodSamples], hour: i64) -> Vec<PodHour> {
    let hour = hour_floor(hour);
    usage_from_raw(pods, hour_window(hour))
        .into_iter()
        .map(|p| PodHour {
            identity: p.identity,
            hour,
            usage: p.usage,
        })
        .collect()
}

/// Rollups for every whole hour inside `w` (backfill).
pub fn rollup_hours(pods: &[PodSamples], w: Window) -> Vec<PodHour> {
    let (first, end) = (hour_ceil(w.from), hour_floor(w.to));
    (0..)
        .map(|i| first + i * NS_PER_HOUR)
        .take_while(|h| *h < end)
        .flat_map(|h| rollup_hour(pods, h))
        .collect()
}

/// Usage over `w` from rollups for its whole hours and raw samples for the partial hours at its
/// edges. Equals [`usage_from_raw`] over `w` when the rollups were made from the same samples.
/// `rollups` may hold other hours (ignored); for one pod and hour the last entry wins, as a
/// rewritten rollup point replaces the old one. `raw` needs samples only around the edges.
pub fn usage_from_rollups(rollups: &[PodHour], raw: &[PodSamples], w: Window) -> Vec<PodUsage> {
    let (h0, h1) = (hour_ceil(w.from), hour_floor(w.to));
    if h0 >= h1 {
        // No whole hour inside: nothing to read from rollups.
        return usage_from_raw(raw, w);
    }
    let mut latest: BTreeMap<(&PodIdentity, i64), &Usage> = BTreeMap::new();
    for r in rollups.iter().filter(|r| h0 <= r.hour && r.hour < h1) {
        latest.insert((&r.identity, r.hour), &r.usage);
    }
    let mut acc: BTreeMap<&PodIdentity, Usage> = BTreeMap::new();
    for ((id, _), u) in latest {
        acc.entry(id).or_default().merge(u);
    }
    let edges = [Window::new(w.from, h0), Window::new(h1, w.to)];
    for edge in edges.into_iter().flatten() {
        for p in raw {
            let u = pod_usage(p, edge);
            if !u.is_empty() {
                acc.entry(&p.identity).or_default().merge(&u);
            }
        }
    }
    finish(acc)
}

fn finish(acc: BTreeMap<&PodIdentity, Usage>) -> Vec<PodUsage> {
    acc.into_iter()
        .filter(|(_, u)| !u.is_empty())
        .map(|(id, usage)| PodUsage {
            identity: id.clone(),
            usage,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::samples::{ContainerSamples, CounterSample, GaugeSample, NS_PER_SEC};

    #[test]
    fn a_day_from_rollups_and_edges_equals_the_day_from_raw() {
        // One pod scraped every 15 s for 3 hours with a restart at 1 h 30 min; the window
        // starts and ends mid-hour so both edges are read raw.
        let s = NS_PER_SEC;
        let mut cpu = Vec::new();
        let mut memory = Vec::new();
        let mut counter = 0u64;
        for i in 0..(3 * 240) {
            let t = i * 15 * s;
            let start = if t >= 5_400 * s { 5_399 * s } else { -s };
            if t == 5_400 * s {
                counter = 0;
            }
            counter += 7_000_000_000;
            cpu.push(CounterSample {
                t,
                value: counter,
                start: Some(start),
                request: 250,
                nominal: Some(15 * s),
            });
            memory.push(GaugeSample {
                t,
                value: 1 << 28,
                request: 1 << 29,
                nominal: Some(15 * s),
            });
        }
        let pod = PodSamples {
            identity: PodIdentity {
                namespace: "shop".into(),
                pod: "web-0".into(),
                ..Default::default()
            },
            containers: vec![ContainerSamples {
                name: "app".into(),
                cpu,
                memory,
                ..Default::default()
            }],
            ..Default::default()
        };
        let pods = [pod];
        let w = Window::new(1_234 * s, 10_001 * s).unwrap();
        let rollups = rollup_hours(&pods, Window::new(0, 4 * NS_PER_HOUR).unwrap());
        assert_eq!(rollups.len(), 3);
        assert_eq!(
            usage_from_rollups(&rollups, &pods, w),
            usage_from_raw(&pods, w)
        );
    }
}
