//! Exact quantities from samples: one rule for every resource.
//!
//! **Each sample accounts for the time since the previous sample of its series, and belongs to
//! the window containing its own timestamp.** Times are measured against the sample's own
//! nominal interval `N` (how often its series was collected, see [`super::nominal`]): a
//! property of the data, so the same data gives the same bill whoever reads it.
//!
//! * Counters (CPU core-ns, network bytes): the usage a sample accounts for is its delta from
//!   the previous sample. A drop in value, or a start time different from the previous one
//!   (both known), is a restart: the new value is the usage since the restart, never a negative
//!   delta. A counter's continuity proves the container ran, so its deltas are exact across any
//!   gap. The first sample of a series counts its whole value only when the container started
//!   at most 2.5 `N` before it (it was not running unobserved: a 20-second job seen once is
//!   billed from its start); otherwise, or when `N` is unknown, it is the baseline of a
//!   container that ran before anyone looked, and accounts for nothing.
//! * Gauges (memory, ephemeral storage, GPU allocation, node allocatable): a sample's value
//!   holds over the interval since the previous sample if that is at most 2.5 `N` (the gap
//!   rule); after a longer gap, or for the first sample, it holds for one `N`, and for nothing
//!   when `N` is unknown. A gap is never bridged, so it shows as missing coverage, not as zero
//!   or as a guess.
//! * CPU of a container without any counter sample (old Heapster exports keep only
//!   `cpu/usage_rate`) is its rate in millicores taken as a gauge: rate × interval is
//!   millicore-ns. The counter is exact and wins wherever it exists; a line says which one its
//!   CPU came from ([`CpuSource`]).
//! * Request and `max(request, usage)` are taken over the very same intervals, sample by sample,
//!   so the three billing modes agree on time.
//! * GPU efficiency (not billed): each GPU's duty cycle (percent), memory used and memory total
//!   are gauges too, integrated the same way; used ÷ allocated is shown beside GPU-hours.
//!
//! Because a sample's contribution depends only on it and its predecessor, quantities over
//! adjacent windows add up exactly, hourly rollups re-aggregate exactly, and no sample after the
//! window is needed. The price of attributing by sample is resolution: a window edge moves at
//! most one interval of a series to the neighbouring window, and nothing is lost or counted
//! twice.
//!
//! Everything is integers: CPU in millicore-nanoseconds (a core-ns counter delta is 1000
//! millicore-ns; a request or rate in millicores times ns is millicore-ns), memory and storage
//! in byte-nanoseconds, GPUs in GPU-nanoseconds, GPU utilisation in percent-nanoseconds,
//! network in bytes. `u128` holds a petabyte held for a century with room to spare.

use std::ops::{Add, AddAssign};

use serde::{Deserialize, Serialize};

use super::intervals::IntervalSet;
use super::samples::{
    max_gap_ns, AcceleratorSamples, CounterSample, GaugeSample, Nominal, PodSamples, Window,
};

/// Millicore-ns in one core-hour.
pub const MCORE_NS_PER_CORE_HOUR: u128 = 1_000 * 3_600 * 1_000_000_000;
/// Byte-ns in one GiB-hour.
pub const BYTE_NS_PER_GIB_HOUR: u128 = (1 << 30) * 3_600 * 1_000_000_000;
/// GPU-ns in one GPU-hour.
pub const GPU_NS_PER_GPU_HOUR: u128 = 3_600 * 1_000_000_000;
/// Percent-ns of one GPU busy for one hour.
pub const PERCENT_NS_PER_GPU_HOUR: u128 = 100 * GPU_NS_PER_GPU_HOUR;
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
    /// GPU utilisation × time, summed over GPUs: duty-cycle percent × ns (efficiency only).
    pub gpu_util: u128,
    /// GPU memory used × time, summed over GPUs: byte-ns (efficiency only).
    pub gpu_memory_used: u128,
    /// GPU memory of the same GPUs × time over the same intervals: byte-ns.
    pub gpu_memory_total: u128,
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
        v.extend([self.gpu_util, self.gpu_memory_used, self.gpu_memory_total]);
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
            gpu_util: at(12),
            gpu_memory_used: at(13),
            gpu_memory_total: at(14),
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
            gpu_util: self.gpu_util + o.gpu_util,
            gpu_memory_used: self.gpu_memory_used + o.gpu_memory_used,
            gpu_memory_total: self.gpu_memory_total + o.gpu_memory_total,
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

/// Where CPU came from: the exact counter (`cpu/usage`), the rate (`cpu/usage_rate`, for
/// containers without a counter), or both within one line. Merged by OR.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CpuSource {
    pub counter: bool,
    pub rate: bool,
}

impl CpuSource {
    /// `counter`, `rate`, `counter+rate`, or empty when no CPU sample counted.
    pub fn as_str(self) -> &'static str {
        match (self.counter, self.rate) {
            (true, false) => "counter",
            (false, true) => "rate",
            (true, true) => "counter+rate",
            (false, false) => "",
        }
    }

    /// The inverse of [`CpuSource::as_str`].
    pub fn parse(s: &str) -> Option<CpuSource> {
        let (counter, rate) = match s {
            "counter" => (true, false),
            "rate" => (false, true),
            "counter+rate" => (true, true),
            "" => (false, false),
            _ => return None,
        };
        Some(CpuSource { counter, rate })
    }

    pub fn merge(&mut self, o: CpuSource) {
        self.counter |= o.counter;
        self.rate |= o.rate;
    }
}

/// A pod's quantities plus when it was observed (for coverage).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub quantities: Quantities,
    /// Union of the intervals the pod's samples accounted for.
    pub observed: IntervalSet,
    /// Where its CPU figures came from.
    pub cpu_source: CpuSource,
}

impl Usage {
    pub fn is_empty(&self) -> bool {
        self.quantities.is_zero() && self.observed.is_empty()
    }

    /// Adds `other` (quantities summed, observation united, sources OR-ed). Exact and
    /// associative.
    pub fn merge(&mut self, other: &Usage) {
        self.quantities += other.quantities;
        self.observed.union_with(&other.observed);
        self.cpu_source.merge(other.cpu_source);
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
/// or a repeated read. Times are measured in `cur`'s own nominal interval.
pub fn counter_step(prev: Option<&CounterSample>, cur: &CounterSample) -> Option<CounterStep> {
    let nominal = cur.nominal_ns();
    let within_gap = |from: i64| nominal.is_some_and(|n| cur.t - from <= max_gap_ns(n));
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
            // previous sample when that is recent, else for one interval; with no interval
            // known, for no time we could vouch for (the usage still counts).
            let from = match (cur.start, nominal) {
                (Some(s), _) => s.clamp(p.t, cur.t),
                (None, _) if within_gap(p.t) => p.t,
                (None, Some(n)) => cur.t - n,
                (None, None) => cur.t,
            };
            Some(CounterStep {
                from,
                t: cur.t,
                usage: cur.value,
            })
        }
        None => match cur.start {
            Some(s) if s <= cur.t && within_gap(s) => Some(CounterStep {
                from: s,
                t: cur.t,
                usage: cur.value,
            }),
            _ => None,
        },
    }
}

/// The interval `(from, t]` gauge sample `cur` holds over, given its predecessor; `None` for a
/// repeated read, or for a sample without a bridged predecessor whose interval is unknown.
pub fn gauge_interval(prev: Option<&GaugeSample>, cur: &GaugeSample) -> Option<(i64, i64)> {
    let nominal = cur.nominal_ns();
    match prev {
        Some(p) if cur.t <= p.t => None,
        Some(p) if nominal.is_some_and(|n| cur.t - p.t <= max_gap_ns(n)) => Some((p.t, cur.t)),
        _ => nominal.map(|n| (cur.t.saturating_sub(n), cur.t)),
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
    scale: u128,
    observed: &mut IntervalSet,
) -> Triple {
    let mut total = Triple::default();
    for (prev, cur) in in_window(samples, |s| s.t, w) {
        if let Some(step) = counter_step(prev, cur) {
            let dt = (step.t - step.from) as u128;
            total.add_interval(step.usage as u128 * scale, cur.request as u128 * dt);
            observed.insert(step.from, step.t);
        }
    }
    total
}

/// Gauge integral in `w` (value × time, request × time, max × time), plus observation.
pub fn gauge_in_window(samples: &[GaugeSample], w: Window, observed: &mut IntervalSet) -> Triple {
    let mut total = Triple::default();
    for (prev, cur) in in_window(samples, |s| s.t, w) {
        if let Some((from, t)) = gauge_interval(prev, cur) {
            let dt = (t - from) as u128;
            total.add_interval(cur.value as u128 * dt, cur.request as u128 * dt);
            observed.insert(from, t);
        }
    }
    total
}

/// CPU of one container in `w` and where it came from: the counter when the container has
/// counter samples, else its rate in millicores as a gauge (millicore-ns).
fn cpu_in_window(
    c: &super::samples::ContainerSamples,
    w: Window,
    observed: &mut IntervalSet,
) -> (Triple, CpuSource) {
    let mut seen = IntervalSet::new();
    let from_rate = c.cpu.is_empty();
    let cpu = if from_rate {
        gauge_in_window(&c.cpu_rate, w, &mut seen)
    } else {
        counter_in_window(&c.cpu, w, 1_000, &mut seen)
    };
    // A source is named when it accounted for anything in `w`, time or usage.
    let counted = !seen.is_empty() || cpu != Triple::default();
    observed.union_with(&seen);
    let source = CpuSource {
        counter: counted && !from_rate,
        rate: counted && from_rate,
    };
    (cpu, source)
}

/// GPU efficiency quantities of one container's GPUs in `w`: (percent-ns busy, byte-ns of
/// memory used, byte-ns of memory total). Not observation: they are not billed.
fn accelerators_in_window(accelerators: &[AcceleratorSamples], w: Window) -> (u128, u128, u128) {
    let mut scratch = IntervalSet::new();
    let mut integral = |s: &[GaugeSample]| gauge_in_window(s, w, &mut scratch).usage;
    accelerators.iter().fold((0, 0, 0), |(u, m, t), a| {
        (
            u + integral(&a.duty_cycle),
            m + integral(&a.memory_used),
            t + integral(&a.memory_total),
        )
    })
}

/// Everything one pod accounts for in `w`, straight from raw samples.
pub fn pod_usage(pod: &PodSamples, w: Window) -> Usage {
    let mut observed = IntervalSet::new();
    let mut q = Quantities::default();
    let mut cpu_source = CpuSource::default();
    for c in &pod.containers {
        let (cpu, source) = cpu_in_window(c, w, &mut observed);
        q.cpu = q.cpu + cpu;
        cpu_source.merge(source);
        q.memory = q.memory + gauge_in_window(&c.memory, w, &mut observed);
        // GPU is allocation: the limit held over the time the container ran.
        q.gpu += gauge_in_window(&c.gpu, w, &mut observed).usage;
        let (util, used, total) = accelerators_in_window(&c.accelerators, w);
        q.gpu_util += util;
        q.gpu_memory_used += used;
        q.gpu_memory_total += total;
    }
    q.ephemeral = gauge_in_window(&pod.ephemeral, w, &mut observed);
    let rx = counter_in_window(&pod.net_rx, w, 1, &mut observed).usage;
    let tx = counter_in_window(&pod.net_tx, w, 1, &mut observed).usage;
    if !pod.identity.host_network {
        q.net_rx = rx;
        q.net_tx = tx;
    }
    Usage {
        quantities: q,
        observed,
        cpu_source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::samples::{ContainerSamples, NS_PER_HOUR, NS_PER_SEC};

    const S: i64 = NS_PER_SEC;

    /// A counter sample of a series collected every 15 s.
    fn c(t_s: i64, value: u64, start_s: Option<i64>, request: u64) -> CounterSample {
        CounterSample {
            t: t_s * S,
            value,
            start: start_s.map(|s| s * S),
            request,
            nominal: Some(15 * S),
        }
    }

    /// A gauge sample of a series collected every 15 s.
    fn g(t_s: i64, value: u64, request: u64) -> GaugeSample {
        gn(t_s, value, request, Some(15))
    }

    /// A gauge sample with nominal interval `n_s` seconds (`None`: unknown).
    fn gn(t_s: i64, value: u64, request: u64, n_s: Option<i64>) -> GaugeSample {
        GaugeSample {
            t: t_s * S,
            value,
            request,
            nominal: n_s.map(|n| n * S),
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
        let t = counter_in_window(&s, hour(), 1_000, &mut obs);
        assert_eq!(t.usage, 3_500_000_000_000);
        // Observed: (0, 30] from the first container, (40, 45] from the second.
        assert_eq!(obs.spans(), &[(0, 30 * S), (40 * S, 45 * S)]);

        // A drop without start times is a restart too.
        let s = [
            c(15, 900, None, 0),
            c(30, 1_000, None, 0),
            c(45, 200, None, 0),
        ];
        let t = counter_in_window(&s, hour(), 1, &mut IntervalSet::new());
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
        let t = counter_in_window(&s, hour(), 1_000, &mut IntervalSet::new());
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
        let t = counter_in_window(&s, hour(), 1_000, &mut IntervalSet::new());
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
        let t = gauge_in_window(&s, w, &mut obs);
        assert_eq!(t.usage, 75 * S as u128 * 1000);
        assert_eq!(obs.spans(), &[(-15 * S, 30 * S), (75 * S, 105 * S)]);
        // A 30 s gap (one missed scrape) is bridged: 1000 B × 30 s.
        let s = [g(0, 1000, 0), g(30, 1000, 0)];
        let w = Window::new(S, NS_PER_HOUR).unwrap();
        assert_eq!(
            gauge_in_window(&s, w, &mut IntervalSet::new()).usage,
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
        let t = gauge_in_window(&s, w, &mut IntervalSet::new());
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
        let u = pod_usage(&pod, hour());
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
        assert_eq!(pod_usage(&pod, w).quantities.net_rx, 1 << 20);
        assert_eq!(pod_usage(&pod, w).quantities.net_tx, 1 << 10);
        pod.identity.host_network = true;
        assert_eq!(pod_usage(&pod, w).quantities.net_rx, 0);
        assert_eq!(pod_usage(&pod, w).quantities.net_tx, 0);
    }

    #[test]
    fn a_delta_belongs_to_the_window_of_its_closing_sample() {
        // Samples at 3590 s (value 0, baseline) and 3605 s (value 15e9): the 15e9 core-ns delta
        // closes after the hour, so it is the next hour's, whole; the first hour gets nothing.
        let s = [c(3_590, 0, None, 0), c(3_605, 15_000_000_000, None, 0)];
        let first = counter_in_window(&s, hour(), 1, &mut IntervalSet::new());
        let next = Window::new(NS_PER_HOUR, 2 * NS_PER_HOUR).unwrap();
        let second = counter_in_window(&s, next, 1, &mut IntervalSet::new());
        assert_eq!((first.usage, second.usage), (0, 15_000_000_000));
    }

    /// Memory of `gib` GiB (request the same), one gauge sample every `step_s` seconds from
    /// `from_s` through `to_s` inclusive, each carrying nominal interval `n_s`.
    fn memory(from_s: i64, to_s: i64, step_s: i64, n_s: Option<i64>) -> Vec<GaugeSample> {
        (0..)
            .map(|k| from_s + k * step_s)
            .take_while(|t| *t <= to_s)
            .map(|t| gn(t, 1 << 30, 1 << 30, n_s))
            .collect()
    }

    /// GiB-seconds of a byte-ns integral, exactly.
    fn gib_s(byte_ns: u128) -> u128 {
        assert_eq!(byte_ns % ((1 << 30) * S as u128), 0, "whole GiB-seconds");
        byte_ns / ((1 << 30) * S as u128)
    }

    #[test]
    fn a_collector_switching_from_15_s_to_60_s_mid_hour_is_billed_the_whole_hour() {
        // 1 GiB. The collector scrapes at 15 s from −15 s to 1 785 s (recorded N = 15 s), then
        // restarts at 60 s: 1 845 s … 3 585 s (recorded N = 60 s). In [0, 3 600):
        // 0 … 1 785 s: 120 samples × 15 s = 1 800 s; 1 845 s: 60 s since 1 785 s ≤ 2.5 × 60 s,
        // bridged; then 29 more × 60 s: 30 × 60 s = 1 800 s. Total 3 600 s = 1 GiB-hour.
        // (With the reader's 15 s as N, as before, the 60 s samples counted 15 s each:
        // 1 800 + 30 × 15 = 2 250 s.)
        let mut s = memory(-15, 1_785, 15, Some(15));
        s.extend(memory(1_845, 3_585, 60, Some(60)));
        let mut obs = IntervalSet::new();
        let t = gauge_in_window(&s, hour(), &mut obs);
        assert_eq!(gib_s(t.usage), 3_600);
        assert_eq!(t.usage, BYTE_NS_PER_GIB_HOUR);
        assert_eq!(t.request, t.usage);
        assert_eq!(obs.spans(), &[(-15 * S, 3_585 * S)]);
    }

    #[test]
    fn a_collector_switching_from_60_s_to_15_s_mid_hour_is_billed_exactly() {
        // 1 GiB at 60 s from −60 s to 1 740 s, then at 15 s from 1 755 s to 3 585 s. In
        // [0, 3 600): 0 … 1 740 s: 30 samples × 60 s (the one at 0 s holds (−60 s, 0]) =
        // 1 800 s; 1 755 s … 3 585 s: 123 samples × 15 s = 1 845 s. Total 3 645 s: the window
        // starts one 60 s interval early, as any series' first in-window sample does.
        let mut s = memory(-60, 1_740, 60, Some(60));
        s.extend(memory(1_755, 3_585, 15, Some(15)));
        let mut obs = IntervalSet::new();
        assert_eq!(gib_s(gauge_in_window(&s, hour(), &mut obs).usage), 3_645);
        assert_eq!(obs.spans(), &[(-60 * S, 3_585 * S)]);
        // Read with the other interval on each side instead, the same data gives other
        // numbers: which is why N must come from how each sample was collected.
        let mut wrong = memory(-60, 1_740, 60, Some(15));
        wrong.extend(memory(1_755, 3_585, 15, Some(15)));
        let usage = gauge_in_window(&wrong, hour(), &mut IntervalSet::new()).usage;
        assert_eq!(gib_s(usage), 30 * 15 + 1_845);
    }

    #[test]
    fn one_missed_scrape_is_bridged_and_two_are_a_gap_in_the_series_own_interval() {
        // N = 60 s: samples at 0, 60, 180 (one missed: 120 s ≤ 150 s, bridged), 360 (two
        // missed: 180 s > 150 s, holds one N). 0 s has no predecessor: one N, (−60, 0].
        // 60 + 60 + 120 + 60 = 300 s; (180, 300] is a gap.
        let s: Vec<GaugeSample> = [0, 60, 180, 360]
            .iter()
            .map(|t| gn(*t, 1 << 30, 0, Some(60)))
            .collect();
        let mut obs = IntervalSet::new();
        assert_eq!(gib_s(gauge_in_window(&s, hour(), &mut obs).usage), 300);
        assert_eq!(obs.spans(), &[(-60 * S, 180 * S), (300 * S, 360 * S)]);
        // The same gaps at N = 5 min: 600 s bridged, 900 s not.
        let s: Vec<GaugeSample> = [0, 300, 900, 1_800]
            .iter()
            .map(|t| gn(*t, 1 << 30, 0, Some(300)))
            .collect();
        // 300 + 300 + 600 + 300 = 1 500 s.
        assert_eq!(
            gib_s(gauge_in_window(&s, hour(), &mut IntervalSet::new()).usage),
            1_500
        );
    }

    #[test]
    fn five_minute_data_without_a_record_is_billed_from_its_own_spacing() {
        // Heapster-era data every 300 s from 0 s to 3 300 s, no collector record: N comes from
        // the spacing (super::nominal). The first sample has no predecessor, so N is unknown
        // and it holds nothing; each later one holds its 300 s: 11 × 300 s = 3 300 s.
        let times: Vec<i64> = (0..12).map(|k| k * 300 * S).collect();
        let nominal = crate::billing::nominal::assign(&times, &[], NS_PER_HOUR);
        let s: Vec<GaugeSample> = times
            .iter()
            .zip(nominal)
            .map(|(t, nominal)| GaugeSample {
                t: *t,
                value: 1 << 30,
                request: 0,
                nominal,
            })
            .collect();
        assert_eq!(s[0].nominal, None);
        assert!(s[1..].iter().all(|x| x.nominal == Some(300 * S)));
        let mut obs = IntervalSet::new();
        assert_eq!(gib_s(gauge_in_window(&s, hour(), &mut obs).usage), 3_300);
        assert_eq!(obs.spans(), &[(0, 3_300 * S)]);
    }

    #[test]
    fn with_the_interval_unknown_a_first_sample_accounts_for_nothing() {
        // The 20-second job of the test above, but nobody recorded how often it was scraped
        // and it has no predecessor: its counter is a baseline and its memory holds no time.
        let mut job = c(110, 4_000_000_000, Some(100), 500);
        job.nominal = None;
        let t = counter_in_window(&[job], hour(), 1_000, &mut IntervalSet::new());
        assert_eq!(t, Triple::default());
        let mut obs = IntervalSet::new();
        let m = gauge_in_window(&[gn(110, 1 << 30, 0, None)], hour(), &mut obs);
        assert_eq!((m, obs.is_empty()), (Triple::default(), true));
        // A bridged predecessor needs N too: after a sample 15 s earlier, unknown N bridges
        // nothing, N = 15 s bridges 15 s.
        let s = [gn(0, 1 << 30, 0, None), gn(15, 1 << 30, 0, None)];
        let w = Window::new(S, NS_PER_HOUR).unwrap();
        assert_eq!(gauge_in_window(&s, w, &mut IntervalSet::new()).usage, 0);
        let s = [gn(0, 1 << 30, 0, None), gn(15, 1 << 30, 0, Some(15))];
        let usage = gauge_in_window(&s, w, &mut IntervalSet::new()).usage;
        assert_eq!(gib_s(usage), 15);
        // A restart without a start time and no N: the new value counts, over no time.
        let (mut a, mut b) = (c(0, 900, None, 100), c(15, 200, None, 100));
        a.nominal = None;
        b.nominal = None;
        let step = counter_step(Some(&a), &b).unwrap();
        assert_eq!((step.from, step.t, step.usage), (15 * S, 15 * S, 200));
    }

    #[test]
    fn cpu_without_a_counter_is_billed_from_its_rate_and_marked() {
        // Heapster export: `cpu/usage_rate` only, 250 m every 300 s from 0 s to 3 300 s,
        // request 500 m, N = 300 s (the first one recorded too, so it holds (−300 s, 0]).
        // 12 × 300 s × 250 m = 900 core-s = 9e14 millicore-ns; request 12 × 300 s × 500 m.
        let rate: Vec<GaugeSample> = (0..12).map(|k| gn(k * 300, 250, 500, Some(300))).collect();
        let pod = PodSamples {
            containers: vec![ContainerSamples {
                name: "main".into(),
                cpu_rate: rate.clone(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let u = pod_usage(&pod, hour());
        assert_eq!(u.quantities.cpu.usage, 900 * 1_000 * S as u128);
        assert_eq!(u.quantities.cpu.request, 1_800 * 1_000 * S as u128);
        assert_eq!(u.quantities.cpu.max, u.quantities.cpu.request);
        assert_eq!(u.cpu_source.as_str(), "rate");
        // A container with a counter is billed from the counter alone: exact, never twice.
        // Counter: 0 at 0 s, +75 core-s every 300 s (250 m) → 11 deltas = 825 core-s.
        let mut with_counter = pod.clone();
        with_counter.containers[0].cpu = (0..12)
            .map(|k| CounterSample {
                nominal: Some(300 * S),
                ..c(k * 300, k as u64 * 75_000_000_000, None, 500)
            })
            .collect();
        let u = pod_usage(&with_counter, hour());
        assert_eq!(u.quantities.cpu.usage, 825 * 1_000 * S as u128);
        assert_eq!(u.cpu_source.as_str(), "counter");
        // Merged lines say both.
        let mut merged = pod_usage(&pod, hour());
        merged.merge(&u);
        assert_eq!(merged.cpu_source.as_str(), "counter+rate");
        assert_eq!(CpuSource::parse("counter+rate"), Some(merged.cpu_source));
        assert_eq!(
            pod_usage(&PodSamples::default(), hour())
                .cpu_source
                .as_str(),
            ""
        );
    }

    #[test]
    fn gpu_utilisation_and_memory_are_integrated_per_gpu_beside_the_allocation() {
        // Two GPUs allocated (limit 2) for 600 s at 15 s (40 samples, the first holding one
        // interval); DCGM reports GPU-a 65 % busy with 6 of 16 GiB, GPU-b 15 % with 2 of
        // 16 GiB, at the same samples. Busy: (65 + 15) % × 600 s = 48 000 %-s, i.e. 0.8 of
        // 2 GPUs × 600 s = 1 200 GPU-s allocated → efficiency 48 000 / (100 × 1 200) = 0.4.
        // Memory: (6 + 2) GiB × 600 s used of (16 + 16) GiB × 600 s: 0.25.
        let series = |v: u64| -> Vec<GaugeSample> { (1..=40).map(|i| g(i * 15, v, 0)).collect() };
        let gib = 1u64 << 30;
        let gpu = |id: &str, util: u64, used: u64| AcceleratorSamples {
            id: id.into(),
            duty_cycle: series(util),
            memory_used: series(used * gib),
            memory_total: series(16 * gib),
        };
        let pod = PodSamples {
            containers: vec![ContainerSamples {
                name: "train".into(),
                gpu: series(2),
                accelerators: vec![gpu("GPU-a", 65, 6), gpu("GPU-b", 15, 2)],
                ..Default::default()
            }],
            ..Default::default()
        };
        let q = pod_usage(&pod, hour()).quantities;
        assert_eq!(q.gpu, 1_200 * S as u128);
        assert_eq!(q.gpu_util, 48_000 * S as u128);
        assert_eq!(q.gpu_util * 10, 4 * 100 * q.gpu);
        assert_eq!(gib_s(q.gpu_memory_used), 8 * 600);
        assert_eq!(gib_s(q.gpu_memory_total), 32 * 600);
        // Not billed and not observation: the pod's coverage is its allocation's.
        assert_eq!(pod_usage(&pod, hour()).observed.measure(), 600 * S as u128);
    }

    #[test]
    fn modes_parse_and_print() {
        for m in [Mode::Usage, Mode::Request, Mode::Max] {
            assert_eq!(Mode::parse(m.as_str()), Some(m));
        }
        assert_eq!(Mode::parse("mean"), None);
    }
}
