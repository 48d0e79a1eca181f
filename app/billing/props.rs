//! Property tests of the billing rules over random pods: series collected at their own
//! intervals (15 s, 60 s, 5 min, switching mid-series), each sample's interval recorded,
//! inferred from the spacing or unknown; random scrape jitter, missed scrapes, gaps longer
//! than the gap rule (all relative to the series' own interval), counter resets with and
//! without start times, repeated reads, CPU from rates, GPU efficiency, random windows that
//! cut hours anywhere.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::capacity::node_capacity;
use super::nominal;
use super::prices::PriceBook;
use super::quantities::Mode;
use super::quantities::{pod_usage, Quantities, Triple, Usage};
use super::render::{to_csv, to_json};
use super::rollup::{rollup_hours, usage_from_raw, usage_from_rollups};
use super::samples::{
    AcceleratorSamples, ContainerSamples, CounterSample, GaugeSample, NodeSamples, PodIdentity,
    PodSamples, Window, NS_PER_HOUR,
};
use super::statement::{statement_from_raw, statement_from_rollups, GroupBy, Modes, Statement};

const MS: i64 = 1_000_000;
const S: i64 = 1_000 * MS;

/// How a series' samples know their interval.
#[derive(Debug, Clone, Copy)]
enum Known {
    /// kubemeter's collector recorded it.
    Recorded,
    /// From the series' own spacing (Heapster's data), as the raw reader infers it.
    Inferred,
    /// Nobody knows (a caller that builds samples without it).
    Unknown,
}

/// Sample times of one series and the nominal interval in force at each: collected every
/// `n1` seconds, from the `switch`-th step on every `n2` seconds (a collector restarted with
/// another interval). Steps are mostly one interval with jitter, sometimes a missed scrape,
/// sometimes a gap the gap rule does not bridge, sometimes the same sample read twice (a
/// step of 0, marked `None`).
#[derive(Debug, Clone)]
struct Schedule {
    times: Vec<Option<i64>>,
    nominal: Vec<Option<i64>>,
}

/// A step in thousandths of the interval in force.
fn step_permille() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => 930i64..1_070,
        2 => 1_930i64..2_070,
        1 => 2_600i64..40_000,
        1 => 0i64..1,
    ]
}

fn interval_s() -> impl Strategy<Value = i64> {
    prop_oneof![Just(15i64), Just(60), Just(300), 1i64..900]
}

fn schedule(max_len: usize) -> impl Strategy<Value = Schedule> {
    (
        0i64..(3 * 3_600 * 1_000),
        interval_s(),
        interval_s(),
        0usize..40,
        prop::collection::vec(step_permille(), 0..max_len),
        prop_oneof![
            3 => Just(Known::Recorded),
            2 => Just(Known::Inferred),
            1 => Just(Known::Unknown),
        ],
    )
        .prop_map(|(t0_ms, n1, n2, switch, steps, known)| {
            let mut t = t0_ms * MS;
            let (mut times, mut recorded) = (Vec::new(), Vec::new());
            for (k, permille) in steps.into_iter().enumerate() {
                let n = if k < switch { n1 } else { n2 } * S;
                if permille == 0 && !times.is_empty() {
                    times.push(None);
                    recorded.push(None);
                    continue;
                }
                t += n / 1_000 * permille.max(1);
                times.push(Some(t));
                recorded.push(Some(n));
            }
            let distinct: Vec<i64> = times.iter().flatten().copied().collect();
            let mut inferred = nominal::assign(&distinct, &[], NS_PER_HOUR).into_iter();
            let mut last = None;
            let nominal = times
                .iter()
                .zip(&recorded)
                .map(|(t, rec)| {
                    if t.is_some() {
                        last = match known {
                            Known::Recorded => *rec,
                            Known::Inferred => inferred.next().flatten(),
                            Known::Unknown => None,
                        };
                    }
                    last
                })
                .collect();
            Schedule { times, nominal }
        })
}

fn counter_series() -> impl Strategy<Value = Vec<CounterSample>> {
    (
        schedule(30),
        prop::collection::vec((0u64..4_000_000_000, 0u8..12, 0u64..4_000), 30),
        any::<bool>(),
        0i64..60_000,
    )
        .prop_map(|(sched, values, start_known, started_ms_before)| {
            let first = sched.times.iter().flatten().next().copied().unwrap_or(0);
            let mut start = first - started_ms_before * MS;
            let (mut v, mut prev_t) = (0u64, first);
            let mut out: Vec<CounterSample> = Vec::new();
            for ((t, nominal), (inc, event, request)) in
                sched.times.iter().zip(&sched.nominal).zip(values)
            {
                let Some(t) = *t else {
                    // The same sample read twice.
                    if let Some(last) = out.last().copied() {
                        out.push(last);
                    }
                    continue;
                };
                match event {
                    // A restart: new container, counter from zero.
                    0 => {
                        v = 0;
                        start = t - (t - prev_t) / 2;
                    }
                    // A counter that went down without a visible start change.
                    1 => v /= 3,
                    _ => {}
                }
                v += inc;
                prev_t = t;
                out.push(CounterSample {
                    t,
                    value: v,
                    start: start_known.then_some(start),
                    request,
                    nominal: *nominal,
                });
            }
            out
        })
}

fn gauge_series(max: u64) -> impl Strategy<Value = Vec<GaugeSample>> {
    (schedule(30), prop::collection::vec((0..max, 0..max), 30)).prop_map(|(sched, values)| {
        let mut out: Vec<GaugeSample> = Vec::new();
        for ((t, nominal), (value, request)) in sched.times.iter().zip(&sched.nominal).zip(values) {
            match (t, out.last().copied()) {
                (Some(t), _) => out.push(GaugeSample {
                    t: *t,
                    value,
                    request,
                    nominal: *nominal,
                }),
                // The same sample read twice.
                (None, Some(last)) => out.push(last),
                (None, None) => {}
            }
        }
        out
    })
}

fn accelerator() -> impl Strategy<Value = AcceleratorSamples> {
    (
        gauge_series(101),
        gauge_series(1 << 34),
        gauge_series(1 << 35),
    )
        .prop_map(
            |(duty_cycle, memory_used, memory_total)| AcceleratorSamples {
                id: "GPU-0".into(),
                duty_cycle,
                memory_used,
                memory_total,
            },
        )
}

fn container() -> impl Strategy<Value = ContainerSamples> {
    (
        // CPU from the counter, or (old exports) from the rate only.
        prop_oneof![
            3 => counter_series().prop_map(|c| (c, Vec::new())),
            1 => gauge_series(8_000).prop_map(|r| (Vec::new(), r)),
        ],
        gauge_series(1 << 34),
        prop_oneof![2 => Just(Vec::new()), 1 => gauge_series(4)],
        prop_oneof![2 => Just(Vec::new()), 1 => prop::collection::vec(accelerator(), 1..3)],
    )
        .prop_map(
            |((cpu, cpu_rate), memory, gpu, accelerators)| ContainerSamples {
                name: "c".into(),
                cpu,
                memory,
                gpu,
                cpu_rate,
                accelerators,
            },
        )
}

fn identity() -> impl Strategy<Value = PodIdentity> {
    (
        0usize..2,
        0usize..3,
        0usize..4,
        0usize..2,
        0usize..3,
        any::<bool>(),
        0usize..3,
    )
        .prop_map(
            |(ns, wl, pod, node, team, host_network, model)| PodIdentity {
                namespace: ["shop", "research"][ns].into(),
                workload_kind: "Deployment".into(),
                workload_name: ["web", "api", "batch"][wl].into(),
                pod: format!("p{pod}"),
                pod_uid: format!("uid-{pod}"),
                node: ["node-a", "node-b"][node].into(),
                labels: match team {
                    0 => BTreeMap::new(),
                    t => BTreeMap::from([("team".to_string(), ["", "blue", "red"][t].to_string())]),
                },
                host_network,
                gpu_model: [None, Some("A100".to_string()), Some("T4".to_string())][model].clone(),
            },
        )
}

fn pod() -> impl Strategy<Value = PodSamples> {
    (
        identity(),
        prop::collection::vec(container(), 1..3),
        gauge_series(1 << 33),
        counter_series(),
        counter_series(),
    )
        .prop_map(
            |(identity, containers, ephemeral, net_rx, net_tx)| PodSamples {
                identity,
                containers,
                ephemeral,
                net_rx,
                net_tx,
            },
        )
}

fn pods() -> impl Strategy<Value = Vec<PodSamples>> {
    prop::collection::vec(pod(), 1..5)
}

/// A time in the samples' span or around it, at nanosecond resolution.
fn instant() -> impl Strategy<Value = i64> {
    -NS_PER_HOUR..(5 * NS_PER_HOUR)
}

fn window() -> impl Strategy<Value = Window> {
    (instant(), instant()).prop_filter_map("empty window", |(a, b)| Window::new(a.min(b), a.max(b)))
}

fn modes() -> impl Strategy<Value = Modes> {
    let mode = prop_oneof![Just(Mode::Usage), Just(Mode::Request), Just(Mode::Max)];
    (mode.clone(), mode.clone(), mode).prop_map(|(cpu, memory, ephemeral)| Modes {
        cpu,
        memory,
        ephemeral,
    })
}

/// A price book whose CPU and GPU prices change at `change` (any instant, not only an hour).
fn book(change: i64) -> PriceBook {
    let at = chrono::DateTime::from_timestamp_nanos(change)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    PriceBook::from_json(&format!(
        r#"{{"currency": "EUR", "prices": [
            {{"resource": "cpu", "price": "0.031", "valid_from": "1960-01-01", "valid_to": "{at}"}},
            {{"resource": "cpu", "price": "0.029", "valid_from": "{at}"}},
            {{"resource": "memory", "price": "0.004", "valid_from": "1960-01-01"}},
            {{"resource": "gpu", "price": "1.10", "valid_from": "1960-01-01"}},
            {{"resource": "gpu", "gpu_model": "A100", "price": "2.20", "valid_from": "{at}"}},
            {{"resource": "ephemeral_storage", "price": "0.0001", "valid_from": "1960-01-01"}},
            {{"resource": "network_out", "price": "0.05", "valid_from": "1960-01-01"}}
        ]}}"#
    ))
    .unwrap()
}

fn by_all() -> [GroupBy; 5] {
    [
        GroupBy::Pod,
        GroupBy::Workload,
        GroupBy::Namespace,
        GroupBy::Node,
        GroupBy::Label("team".into()),
    ]
}

/// Sums of row quantities by (a prefix of the key, segment).
fn sums(st: &Statement, key_len: usize) -> BTreeMap<(Vec<String>, Window), Quantities> {
    let mut m: BTreeMap<(Vec<String>, Window), Quantities> = BTreeMap::new();
    for r in &st.rows {
        *m.entry((r.key[..key_len].to_vec(), r.window)).or_default() += r.quantities;
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Quantities over adjacent windows add up exactly; observations unite.
    #[test]
    fn adjacent_windows_add_up_exactly(pods in pods(), a in instant(), b in instant(), c in instant()) {
        let mut t = [a, b, c];
        t.sort_unstable();
        prop_assume!(t[0] < t[1] && t[1] < t[2]);
        let w1 = Window::new(t[0], t[1]).unwrap();
        let w2 = Window::new(t[1], t[2]).unwrap();
        let whole = Window::new(t[0], t[2]).unwrap();
        for p in &pods {
            let mut split: Usage = pod_usage(p, w1);
            split.merge(&pod_usage(p, w2));
            prop_assert_eq!(split, pod_usage(p, whole));
        }
    }

    /// Rollups for whole hours plus raw samples at the edges give exactly what raw data gives:
    /// per pod, and as statements (with prices that change mid-hour) down to the byte.
    #[test]
    fn rollups_plus_raw_edges_equal_raw(
        pods in pods(), w in window(), change in instant(), modes in modes()
    ) {
        let span = Window::new(-2 * NS_PER_HOUR, 6 * NS_PER_HOUR).unwrap();
        let rollups = rollup_hours(&pods, span);
        prop_assert_eq!(usage_from_rollups(&rollups, &pods, w), usage_from_raw(&pods, w));
        let book = book(change);
        for by in by_all() {
            let raw = statement_from_raw(&pods, w, &by, modes, Some(&book));
            let rolled = statement_from_rollups(&rollups, &pods, w, &by, modes, Some(&book));
            prop_assert_eq!(to_csv(&raw), to_csv(&rolled));
            prop_assert_eq!(&raw, &rolled);
        }
    }

    /// Quantities never shrink when the window grows (nothing is ever negative), and a
    /// counter without restarts accounts for exactly its last value minus its first.
    #[test]
    fn quantities_never_shrink_and_counters_are_exact(pods in pods(), w in window(), more in 0i64..NS_PER_HOUR) {
        let wider = Window::new(w.from - more, w.to + more).unwrap();
        for p in &pods {
            let (q, qw) = (pod_usage(p, w).quantities, pod_usage(p, wider).quantities);
            for (x, y) in [(q.cpu, qw.cpu), (q.memory, qw.memory), (q.ephemeral, qw.ephemeral)] {
                prop_assert!(x.usage <= y.usage && x.request <= y.request && x.max <= y.max);
                prop_assert!(x.usage.max(x.request) <= x.max && x.max <= x.usage + x.request);
            }
            prop_assert!(q.gpu <= qw.gpu && q.net_rx <= qw.net_rx && q.net_tx <= qw.net_tx);
        }
        // Exactness on a counter without restarts (network rx of the first pod, made monotone).
        let mut p = pods[0].clone();
        p.identity.host_network = false;
        let (mut v, mut prev_t) = (0u64, None);
        for s in &mut p.net_rx {
            if prev_t != Some(s.t) {
                v += s.value % 1_000;
            }
            prev_t = Some(s.t);
            s.value = v;
            s.start = None;
        }
        if let (Some(first), Some(last)) = (p.net_rx.first(), p.net_rx.last()) {
            let all = Window::new(first.t, last.t + 1).unwrap();
            prop_assert_eq!(pod_usage(&p, all).quantities.net_rx, u128::from(last.value - first.value));
        }
    }

    /// Pods sum to workloads, workloads to namespaces, namespaces to the cluster; nodes and
    /// label values also sum to the cluster; totals are sums of rows, costs included.
    #[test]
    fn totals_reconcile(pods in pods(), w in window(), change in instant(), modes in modes()) {
        let book = book(change);
        let st = |by: &GroupBy| statement_from_raw(&pods, w, by, modes, Some(&book));
        let (pod, wl, ns) = (st(&GroupBy::Pod), st(&GroupBy::Workload), st(&GroupBy::Namespace));
        prop_assert_eq!(sums(&pod, 1), sums(&ns, 1));
        prop_assert_eq!(sums(&wl, 1), sums(&ns, 1));
        let workload_rows: BTreeMap<_, _> = sums(&wl, 3).into_iter().collect();
        // Group pod rows by the workload each pod belongs to.
        let mut from_pods: BTreeMap<(Vec<String>, Window), Quantities> = BTreeMap::new();
        for p in usage_by_segment(&pods, &book, w) {
            let key = vec![p.0.namespace.clone(), p.0.workload_kind.clone(), p.0.workload_name.clone()];
            *from_pods.entry((key, p.1)).or_default() += p.2;
        }
        prop_assert_eq!(workload_rows, from_pods);
        for by in by_all() {
            let s = st(&by);
            let rows: Quantities = s.rows.iter().map(|r| r.quantities).sum();
            prop_assert_eq!(rows, s.totals.quantities);
            prop_assert_eq!(s.totals.quantities, ns.totals.quantities);
            let cost = s.totals.cost.unwrap();
            prop_assert_eq!(cost.total, s.rows.iter().map(|r| r.cost.unwrap().total).sum::<u128>());
            for r in &s.rows {
                let c = r.cost.unwrap();
                let priced: u128 = super::prices::Resource::ALL.iter().filter_map(|x| c.component(*x)).sum();
                prop_assert_eq!(c.total, priced);
                let (num, den) = r.coverage();
                prop_assert!(num <= den);
            }
        }
    }

    /// Allocated − overcommit + idle = capacity on every node, and idle is never negative
    /// (idle and overcommit are never both non-zero).
    #[test]
    fn allocated_plus_idle_is_capacity(
        pods in pods(), w in window(), cpu in gauge_series(64_000), mem in gauge_series(1 << 37)
    ) {
        let nodes = [NodeSamples { node: "node-a".into(), cpu_allocatable: cpu, memory_allocatable: mem }];
        let usage = usage_from_raw(&pods, w);
        for n in node_capacity(&nodes, &usage, w) {
            for l in [n.cpu, n.memory] {
                prop_assert_eq!(l.allocated - l.overcommit + l.idle, l.capacity);
                prop_assert!(l.idle == 0 || l.overcommit == 0);
            }
        }
    }

    /// The same input gives byte-identical CSV and JSON, whatever order the pods came in, and
    /// the JSON is valid.
    #[test]
    fn output_is_deterministic(pods in pods(), w in window(), change in instant(), priced in any::<bool>()) {
        let book = book(change);
        let prices = priced.then_some(&book);
        let mut reversed = pods.clone();
        reversed.reverse();
        for by in by_all() {
            let a = statement_from_raw(&pods, w, &by, Modes::default(), prices);
            let b = statement_from_raw(&reversed, w, &by, Modes::default(), prices);
            prop_assert_eq!(to_csv(&a), to_csv(&b));
            prop_assert_eq!(to_json(&a), to_json(&b));
            let json: serde_json::Value = serde_json::from_str(&to_json(&a)).unwrap();
            prop_assert_eq!(json["rows"].as_array().unwrap().len(), a.rows.len());
            prop_assert_eq!(to_csv(&a).lines().count(), a.rows.len() + 2);
        }
    }

    /// Quantities depend on the data only: the same pods with every time (samples, container
    /// starts, nominal intervals) stretched k-fold — scraped every 5 min instead of 15 s — are
    /// billed the same counter usage and network, k times every integral over time (gauges,
    /// rates, requests), and k times the observed time.
    #[test]
    fn stretching_time_stretches_time_quantities_exactly(
        pods in pods(), w in window(), k in prop_oneof![Just(4i64), Just(20)]
    ) {
        let kw = Window::new(w.from * k, w.to * k).unwrap();
        let times = |t: Triple| Triple { usage: t.usage * k as u128, request: t.request * k as u128, max: t.max * k as u128 };
        for p in &pods {
            let sp = stretch(p, k);
            let (a, b) = (pod_usage(p, w), pod_usage(&sp, kw));
            let (qa, qb) = (a.quantities, b.quantities);
            prop_assert_eq!(qb.memory, times(qa.memory));
            prop_assert_eq!(qb.ephemeral, times(qa.ephemeral));
            prop_assert_eq!(qb.gpu, qa.gpu * k as u128);
            prop_assert_eq!(qb.gpu_util, qa.gpu_util * k as u128);
            prop_assert_eq!(qb.gpu_memory_used, qa.gpu_memory_used * k as u128);
            prop_assert_eq!(qb.gpu_memory_total, qa.gpu_memory_total * k as u128);
            prop_assert_eq!((qb.net_rx, qb.net_tx), (qa.net_rx, qa.net_tx));
            prop_assert_eq!(b.observed.measure(), a.observed.measure() * k as u128);
            prop_assert_eq!(b.cpu_source, a.cpu_source);
            // CPU container by container: a counter's usage is the same, its request k-fold; a
            // rate is a gauge, all k-fold.
            for (c, sc) in p.containers.iter().zip(&sp.containers) {
                let one = |c: &ContainerSamples| PodSamples { containers: vec![c.clone()], ..Default::default() };
                let (ca, cb) = (pod_usage(&one(c), w).quantities.cpu, pod_usage(&one(sc), kw).quantities.cpu);
                if c.cpu.is_empty() {
                    prop_assert_eq!(cb, times(ca));
                } else {
                    prop_assert_eq!((cb.usage, cb.request), (ca.usage, ca.request * k as u128));
                }
            }
        }
    }
}

/// Per-pod quantities per price segment, straight from raw samples.
fn usage_by_segment(
    pods: &[PodSamples],
    book: &PriceBook,
    w: Window,
) -> Vec<(PodIdentity, Window, Quantities)> {
    book.segments(w)
        .into_iter()
        .flat_map(|seg| {
            usage_from_raw(pods, seg)
                .into_iter()
                .map(move |p| (p.identity, seg, p.usage.quantities))
        })
        .collect()
}

/// `p` with every time and interval multiplied by `k`.
fn stretch(p: &PodSamples, k: i64) -> PodSamples {
    let counter = |v: &[CounterSample]| -> Vec<CounterSample> {
        v.iter()
            .map(|s| CounterSample {
                t: s.t * k,
                start: s.start.map(|x| x * k),
                nominal: s.nominal.map(|n| n * k),
                ..*s
            })
            .collect()
    };
    let gauge = |v: &[GaugeSample]| -> Vec<GaugeSample> {
        v.iter()
            .map(|s| GaugeSample {
                t: s.t * k,
                nominal: s.nominal.map(|n| n * k),
                ..*s
            })
            .collect()
    };
    PodSamples {
        identity: p.identity.clone(),
        containers: p
            .containers
            .iter()
            .map(|c| ContainerSamples {
                name: c.name.clone(),
                cpu: counter(&c.cpu),
                memory: gauge(&c.memory),
                gpu: gauge(&c.gpu),
                cpu_rate: gauge(&c.cpu_rate),
                accelerators: c
                    .accelerators
                    .iter()
                    .map(|a| AcceleratorSamples {
                        id: a.id.clone(),
                        duty_cycle: gauge(&a.duty_cycle),
                        memory_used: gauge(&a.memory_used),
                        memory_total: gauge(&a.memory_total),
                    })
                    .collect(),
            })
            .collect(),
        ephemeral: gauge(&p.ephemeral),
        net_rx: counter(&p.net_rx),
        net_tx: counter(&p.net_tx),
    }
}
