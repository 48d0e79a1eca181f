//! Exact quantities from samples: one rule for every resource.
//!
//! **Each sample accounts for the time since the previous sample of its series, and belongs to
//! the window containing its own timestamp.**
//!
//! * Counters (CPU core-ns, network bytes): the usage a sample accounts for is its delta from
//!   the previous sample. A drop in value, or a start time different from the previous one
//!   (both known), is a restart: the new value is the usage since the restart, never a negative
//!   delta. A counter's continuity proves the container ran, so its deltas are exact across any
//!   gap. The first sample of a series counts its whole value only when the container started
//!   at most 2.5 scrape intervals before it (it was not running unobserved: a 20-second job
//!   seen once is billed from its start); otherwise it is the baseline of a container that ran
//!   before the collector looked, and accounts for nothing.
//! * Gauges (memory, ephemeral storage, GPU allocation, node allocatable): a sample's value
//!   holds over the interval since the previous sample if that is at most 2.5 scrape intervals
//!   (the gap rule); after a longer gap, or for the first sample, it holds for one nominal
//!   interval. A gap is never bridged, so it shows as missing coverage, not as zero or as a
//!   guess.
//! * Request and `max(request, usage)` are taken over the very same intervals, sample by sample,
//!   so the three billing modes agree on time.
//!
//! Because a sample's contribution depends only on it and its predecessor, quantities over
//! adjacent windows add up exactly, hourly rollups re-aggregate exactly, and no sample after the
//! window is needed. The price of attributing by sample is resolution: a window edge moves at
//! most one scrape interval of a series to the neighbouring window, and nothing is lost or
//! counted twice.
//!
//! Everything is integers: CPU in millicore-nanoseconds (a core-ns counter delta is 1000
//! millicore-ns; a request in millicores times ns is millicore-ns), memory and storage in
//! byte-nanoseconds, GPUs in GPU-nanoseconds, network in bytes. `u128` holds a petabyte held
//! for a century with room to spare.

use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

use super::intervals::IntervalSet;
use super::samples::{CounterSample, GaugeSample, PodSamples, ScrapeConfig, Window};

/// Millicore-ns in one core-hour.
pub const MCORE_NS_PER_CORE_HOUR: u128 = 1_000 * 3_600 * 1_000_000_000;
/// Byte-ns in one GiB-hour.
pub const BYTE_NS_PER_GIB_HOUR: u128 = (1 << 30) * 3_600 * 1_000_000_000;
/// GPU-ns in one GPU-hour.
pub const GPU_NS_PER_GPU_HOUR: u128 = 3_600 * 1_000_000_000;
/// Bytes in one GiB.
pub const BYTES_PER_GIB: u128 = 1 << 30;

/// How a resource is billed, evaluated interval by interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// What was used.
    Usage,
    /// What was reserved.
    Request,
    /// `max(request, usage)` per interval: what was reserved, or more if more was used.
    Max,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "usage" => Some(Mode::Usage),
            "request" => Some(Mode::Request),
            "max" | "max(request,usage)" | "max(request, usage)" => Some(Mode::Max),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Usage => "usage",
            Mode::Request => "request",
            Mode::Max => "max",
        }
    }
}

/// Usage, request and max of one resource over the same intervals, in base units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Triple {
    pub usage: u128,
    pub request: u128,
    pub max: u128,
}

impl Triple {
    /// The quantity billed under `mode`.
    pub fn billed(&self, mode: Mode) -> u128 {
        match mode {
            Mode::Usage => self.usage,
            Mode::Request => self.request,
            Mode::Max => self.max,
        }
    }

    fn add_interval(&mut self, usage: u128, request: u128) {
        self.usage += usage;
        self.request += request;
        self.max += usage.max(request);
    }
}

impl Add for Triple {
    type Output = Triple;
    fn add(self, o: Triple) -> Triple {
        Triple {
            usage: self.usage + o.usage,
            request: self.request + o.request,
            max: self.max + o.max,
        }
    }
}

/// Additive quantities of one pod (or a sum of pods) over a window, in base units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantities {
    /// Millicore-nanoseconds.
    pub cpu: Triple,
    /// Byte-nanoseconds.
    pub memory: Triple,
    /// Byte-nanoseconds.
    pub ephemeral: Triple,
    /// GPU-nanoseconds allocated (`nvidia.com/gpu` limit × time).
    pub gpu: u128,
    /// Bytes received / transmitted (0 for host-network pods).
    pub net_rx: u128,
    pub net_tx: u128,
}

impl Quantities {
    pub fn is_zero(&self) -> bool {
        *self == Quantities::default()
    }

    /// Every quantity in a fixed order, for storage. New quantities go at the end, so that
    /// [`Quantities::from_slice`] reads what older versions wrote (missing ones are 0).
    pub fn to_vec(&self) -> Vec<u128> {
        let t = |t: &Triple| [t.usage, t.request, t.max];
        let mut v = Vec::with_capacity(12);
        v.extend(t(&self.cpu));
        v.extend(t(&self.memory));
        v.extend(t(&self.ephemeral));
        v.extend([self.gpu, self.net_rx, self.net_tx]);
        v
    }

    /// The inverse of [`Quantities::to_vec`].
    pub fn from_slice(v: &[u128]) -> Quantities {
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        let t = |i: usize| Triple {
            usage: at(i),
            request: at(i + 1),
            max: at(i + 2),
        };
        Quantities {
            cpu: t(0),
            memory: t(3),
            ephemeral: t(6),
            gpu: at(9),
            net_rx: at(10),
            net_tx: at(11),
        }
    }
}

impl Add for Quantities {
    type Output = Quantities;
    fn add(self, o: Quantities) -> Quantities {
        Quantities {
            cpu: self.cpu + o.cpu,
            memory: self.memory + o.memory,
            ephemeral: self.ephemeral + o.ephemeral,
            gpu: self.gpu + o.gpu,
            net_rx: self.net_rx + o.net_rx,
            net_tx: self.net_tx + o.net_tx,
        }
    }
}

impl AddAssign for Quantities {
    fn add_assign(&mut self, o: Quantities) {
        *self = *self + o;
    }
}

impl std::iter::Sum for Quantities {
    fn sum<I: Iterator<Item = Quantities>>(iter: I) -> Quantities {
        iter.fold(Quantities::default(), Add::add)
    }
}

/// A pod's quantities plus when it was observed (for coverage).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub quantities: Quantities,
    /// Union of the intervals the pod's samples accounted for.
    pub observed: IntervalSet,
}

impl Usage {
    pub fn is_empty(&self) -> bool {
        self.quantities.is_zero() && self.observed.is_empty()
    }

    /// Adds `other` (quantities summed, observation united). Exact and associative.
    pub fn merge(&mut self, other: &Usage) {
        self.quantities += other.quantities;
        self.observed.union_with(&other.observed);
    }
}

/// What one counter sample accounts for: `usage` over the interval `(from, t]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterStep {
    pub from: i64,
    pub t: i64,
    pub usage: u64,
}

/// The step of counter sample `cur` given its predecessor in the series; `None` for a baseline
/// or a repeated read.
pub fn counter_step(
    prev: Option<&CounterSample>,
    cur: &CounterSample,
    cfg: ScrapeConfig,
) -> Option<CounterStep> {
    let max_gap = cfg.max_gap_ns();
    match prev {
        // The same sample read twice (or out of order): nothing new.
        Some(p) if cur.t <= p.t => None,
        Some(p) => {
            let restarted =
                cur.value < p.value || matches!((p.start, cur.start), (Some(a), Some(b)) if a != b);
            if !restarted {
                return Some(CounterStep {
                    from: p.t,
                    t: cur.t,
                    usage: cur.value - p.value,
                });
            }
            // Usage since the restart is the whole new value. It ran since its start if known
            // (not before the previous sample: that was the old container), else since the
            // previous sample when that is recent, else for one interval.
            let from = match cur.start {
                Some(s) => s.clamp(p.t, cur.t),
                None if cur.t - p.t <= max_gap => p.t,
                None => cur.t - cfg.interval_ns,
            };
            Some(CounterStep {
                from,
                t: cur.t,
                usage: cur.value,
            })
        }
        None => match cur.start {
            Some(s) if s <= cur.t && cur.t - s <= max_gap => Some(CounterStep {
                from: s,
                t: cur.t,
                usage: cur.value,
            }),
            _ => None,
        },
    }
}

/// The interval `(from, t]` gauge sample `cur` holds over, given its predecessor; `None` for a
/// repeated read.
pub fn gauge_interval(
    prev: Option<&GaugeSample>,
    cur: &GaugeSample,
    cfg: ScrapeConfig,
) -> Option<(i64, i64)> {
    match prev {
        Some(p) if cur.t <= p.t => None,
        Some(p) if cur.t - p.t <= cfg.max_gap_ns() => Some((p.t, cur.t)),
        _ => Some((cur.t - cfg.interval_ns, cur.t)),
    }
}

/// Each sample with its time in `w`, paired with its predecessor (which may lie before `w`).
fn in_window<T>(
    samples: &[T],
    time: impl Fn(&T) -> i64,
    w: Window,
) -> impl Iterator<Item = (Option<&T>, &T)> {
    let lo = samples.partition_point(|s| time(s) < w.from);
    let hi = samples.partition_point(|s| time(s) < w.to);
    (lo..hi.max(lo)).map(move |i| (i.checked_sub(1).map(|j| &samples[j]), &samples[i]))
}

/// Counter usage in `w`, with the request (× time) and per-interval max, plus observation.
/// `scale` converts counter units into the request's unit-ns (CPU: 1000 millicore-ns per
/// core-ns; network: 1, no request).
pub fn counter_in_window(
    samples: &[CounterSample],
    w: Window,
    cfg: ScrapeConfig,
    scale: u128,
    observed: &mut IntervalSet,
) -> Triple {
    let mut total = Triple::default();
    for (prev, cur) in in_window(samples, |s| s.t, w) {
        if let Some(step) = counter_step(prev, cur, cfg) {
            let dt = (step.t - step.from) as u128;
            total.add_interval(step.usage as u128 * scale, cur.request as u128 * dt);
            observed.insert(step.from, step.t);
        }
    }
    total
}

/// Gauge integral in `w` (value × time, request × time, max × time), plus observation.
pub fn gauge_in_window(
    samples: &[GaugeSample],
    w: Window,
    cfg: ScrapeConfig,
    observed: &mut IntervalSet,
) -> Triple {
    let mut total = Triple::default();
    for (prev, cur) in in_window(samples, |s| s.t, w) {
        if let Some((from, t)) = gauge_interval(prev, cur, cfg) {
            let dt = (t - from) as u128;
            total.add_interval(cur.value as u128 * dt, cur.request as u128 * dt);
            observed.insert(from, t);
        }
    }
    total
}

/// Everything one pod accounts for in `w`, straight from raw samples.
pub fn pod_usage(pod: &PodSamples, w: Window, cfg: ScrapeConfig) -> Usage {
    let mut observed = IntervalSet::new();
    let mut q = Quantities::default();
    for c in &pod.containers {
        q.cpu = q.cpu + counter_in_window(&c.cpu, w, cfg, 1_000, &mut observed);
        q.memory = q.memory + gauge_in_window(&c.memory, w, cfg, &mut observed);
        // GPU is allocation: the limit held over the time the container ran.
        q.gpu += gauge_in_window(&c.gpu, w, cfg, &mut observed).usage;
    }
    q.ephemeral = gauge_in_window(&pod.ephemeral, w, cfg, &mut observed);
    let rx = counter_in_window(&pod.net_rx, w, cfg, 1, &mut observed).usage;
    let tx = counter_in_window(&pod.net_tx, w, cfg, 1, &mut observed).usage;
    if !pod.identity.host_network {
        q.net_rx = rx;
        q.net_tx = tx;
    }
    Usage {
        quantities: q,
        observed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::samples::{ContainerSamples, NS_PER_HOUR, NS_PER_SEC};

    const S: i64 = NS_PER_SEC;

    fn cfg() -> ScrapeConfig {
        ScrapeConfig::new(15 * S)
    }

    fn c(t_s: i64, value: u64, start_s: Option<i64>, request: u64) -> CounterSample {
        CounterSample {
            t: t_s * S,
            value,
            start: start_s.map(|s| s * S),
            request,
        }
    }

    fn g(t_s: i64, value: u64, request: u64) -> GaugeSample {
        GaugeSample {
            t: t_s * S,
            value,
            request,
        }
    }

    fn hour() -> Window {
        Window::new(0, NS_PER_HOUR).unwrap()
    }

    #[test]
    fn a_counter_reset_counts_usage_since_the_restart_never_negative() {
        // Container started at 0 s, scraped every 15 s; it restarts at 40 s (new start time).
        // Counter (core-ns): 15 s → 1.5e9, 30 s → 3.0e9, 45 s → 0.5e9 (new container).
        // Deltas: 1.5e9 (its first sample, started 15 s before: counted whole),
        //         1.5e9, then reset: 0.5e9 since the restart. Total 3.5e9 core-ns
        //         = 3.5e12 millicore-ns. Never 0.5e9 − 3.0e9.
        let s = [
            c(15, 1_500_000_000, Some(0), 0),
            c(30, 3_000_000_000, Some(0), 0),
            c(45, 500_000_000, Some(40), 0),
        ];
        let mut obs = IntervalSet::new();
        let t = counter_in_window(&s, hour(), cfg(), 1_000, &mut obs);
        assert_eq!(t.usage, 3_500_000_000_000);
        // Observed: (0, 30] from the first container, (40, 45] from the second.
        assert_eq!(obs.spans(), &[(0, 30 * S), (40 * S, 45 * S)]);

        // A drop without start times is a restart too.
        let s = [
            c(15, 900, None, 0),
            c(30, 1_000, None, 0),
            c(45, 200, None, 0),
        ];
        let t = counter_in_window(&s, hour(), cfg(), 1, &mut IntervalSet::new());
        // First sample: start unknown → baseline. Then +100, then 200 since the restart.
        assert_eq!(t.usage, 300);
    }

    #[test]
    fn a_twenty_second_job_seen_once_is_billed() {
        // Started at 100 s, scraped once at 110 s with 4e9 core-ns (4 core-seconds: 0.4 cores
        // for 10 s), request 500 millicores. Started 10 s ≤ 37.5 s before its only
        // sample, so the whole value counts: 4e9 core-ns = 4e12 millicore-ns; request over
        // (100, 110]: 500 m × 10e9 ns = 5e12 millicore-ns; max = 5e12.
        let s = [c(110, 4_000_000_000, Some(100), 500)];
        let t = counter_in_window(&s, hour(), cfg(), 1_000, &mut IntervalSet::new());
        assert_eq!(
            t,
            Triple {
                usage: 4_000_000_000_000,
                request: 5_000_000_000_000,
                max: 5_000_000_000_000
            }
        );
        // A container first seen an hour after it started ran unobserved: baseline only.
        let s = [c(3_700, 4_000_000_000, Some(100), 500)];
        let t = counter_in_window(&s, hour(), cfg(), 1_000, &mut IntervalSet::new());
        assert_eq!(t, Triple::default());
    }

    #[test]
    fn a_gap_longer_than_two_and_a_half_intervals_is_not_bridged() {
        // Memory 1000 B at 0, 15, 30 s, then nothing until 90 s (a 60 s gap > 37.5 s), then
        // 105 s. Intervals: first sample holds one nominal interval (−15, 0] → 15 s,
        // (0, 15], (15, 30] → 15 s each, 90 s after the gap → 15 s only, (90, 105] → 15 s.
        // 5 × 15 s × 1000 B = 75e12 byte-ns; the 60 s gap counts nothing.
        let s = [
            g(0, 1000, 0),
            g(15, 1000, 0),
            g(30, 1000, 0),
            g(90, 1000, 0),
            g(105, 1000, 0),
        ];
        let w = Window::new(-NS_PER_HOUR, NS_PER_HOUR).unwrap();
        let mut obs = IntervalSet::new();
        let t = gauge_in_window(&s, w, cfg(), &mut obs);
        assert_eq!(t.usage, 75 * S as u128 * 1000);
        assert_eq!(obs.spans(), &[(-15 * S, 30 * S), (75 * S, 105 * S)]);
        // A 30 s gap (one missed scrape) is bridged: 1000 B × 30 s.
        let s = [g(0, 1000, 0), g(30, 1000, 0)];
        let w = Window::new(S, NS_PER_HOUR).unwrap();
        assert_eq!(
            gauge_in_window(&s, w, cfg(), &mut IntervalSet::new()).usage,
            30 * S as u128 * 1000
        );
    }

    #[test]
    fn max_mode_is_taken_interval_by_interval() {
        // Request 100 B. Usage 50 B over (0,15], 300 B over (15,30].
        // max per interval: 100×15 + 300×15 = 6000 B·s; max of the sums would be
        // max(100×30, 350×15)=5250: a different (wrong) answer.
        let s = [g(0, 0, 0), g(15, 50, 100), g(30, 300, 100)];
        let w = Window::new(S, NS_PER_HOUR).unwrap();
        let t = gauge_in_window(&s, w, cfg(), &mut IntervalSet::new());
        assert_eq!(t.usage, 350 * 15 * S as u128);
        assert_eq!(t.request, 100 * 30 * S as u128);
        assert_eq!(t.max, 6000 * S as u128);
    }

    #[test]
    fn a_gpu_pod_with_limit_two_is_billed_two_gpus_times_run_time() {
        // nvidia.com/gpu limit 2, scraped every 15 s from 15 s to 600 s: 40 samples; the first
        // holds one nominal interval (0, 15], each next one 15 s: 40 × 15 s = 600 s run time.
        // 2 GPUs × 600 s = 1200 GPU-s = 1/3 GPU-hour.
        let gpu: Vec<GaugeSample> = (1..=40).map(|i| g(i * 15, 2, 2)).collect();
        let pod = PodSamples {
            containers: vec![ContainerSamples {
                name: "train".into(),
                gpu,
                ..Default::default()
            }],
            ..Default::default()
        };
        let u = pod_usage(&pod, hour(), cfg());
        assert_eq!(u.quantities.gpu, 1_200 * S as u128);
        assert_eq!(u.quantities.gpu * 3, GPU_NS_PER_GPU_HOUR);
        assert_eq!(u.observed.measure(), 600 * S as u128);
    }

    #[test]
    fn host_network_pods_are_not_billed_network() {
        let mut pod = PodSamples {
            net_rx: vec![c(0, 0, None, 0), c(15, 1 << 20, None, 0)],
            net_tx: vec![c(0, 0, None, 0), c(15, 1 << 10, None, 0)],
            ..Default::default()
        };
        let w = hour();
        assert_eq!(pod_usage(&pod, w, cfg()).quantities.net_rx, 1 << 20);
        assert_eq!(pod_usage(&pod, w, cfg()).quantities.net_tx, 1 << 10);
        pod.identity.host_network = true;
        assert_eq!(pod_usage(&pod, w, cfg()).quantities.net_rx, 0);
        assert_eq!(pod_usage(&pod, w, cfg()).quantities.net_tx, 0);
    }

    #[test]
    fn a_delta_belongs_to_the_window_of_its_closing_sample() {
        // Samples at 3590 s (value 0, baseline) and 3605 s (value 15e9): the 15e9 core-ns delta
        // closes after the hour, so it is the next hour's, whole; the first hour gets nothing.
        let s = [c(3_590, 0, None, 0), c(3_605, 15_000_000_000, None, 0)];
        let first = counter_in_window(&s, hour(), cfg(), 1, &mut IntervalSet::new());
        let next = Window::new(NS_PER_HOUR, 2 * NS_PER_HOUR).unwrap();
        let second = counter_in_window(&s, next, cfg(), 1, &mut IntervalSet::new());
        assert_eq!((first.usage, second.usage), (0, 15_000_000_000));
    }

    #[test]
    fn modes_parse_and_print() {
        for m in [Mode::Usage, Mode::Request, Mode::Max] {
            assert_eq!(Mode::parse(m.as_str()), Some(m));
        }
        assert_eq!(Mode::parse("mean"), None);
    }
}
