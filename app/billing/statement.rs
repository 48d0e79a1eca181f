//! Statements: per-pod usage grouped into rows, priced, totalled.
//!
//! One engine for the API, the dashboard and exports: give it the window, the grouping, the
//! billing modes, an optional price book and a way to get per-pod usage for a sub-window (raw
//! samples or rollups, see [`statement_from_raw`] and [`statement_from_rollups`]).
//!
//! Rules:
//! * Rows are keyed by the grouping (`namespace`, `workload`, `pod`, `node`, `label:<key>`);
//!   a pod counts wholly in the row its identity maps to, per segment, so pods sum to
//!   workloads, workloads to namespaces and namespaces to the cluster exactly (integers).
//!   A pod without the label goes to the row whose label value is empty.
//! * With a price book the window is cut where any price starts or ends; each piece is its own
//!   row (`from`, `to`), so a price change mid-month splits the line. Without one, one piece.
//! * Costs: per row and resource, the exact cost of the billed quantity rounded half to even to
//!   cents once; a row's total is the sum of its priced resources; the statement's totals are
//!   sums of rows, so they reconcile to the cent. (A namespace row is rounded from its exact
//!   quantity, so the sum of its pods' rounded rows may differ from it by rounding, at most
//!   half a cent per pod row and resource.) A resource with a non-zero quantity and no price is
//!   left out of the total and listed as unpriced, never silently free.
//! * Coverage: the time during which any pod of the row was observed, over the row's window
//!   (capped at 1: the first interval of a window may begin a scrape before it). A gap lowers
//!   coverage; it never reads as zero usage.
//! * Rows are sorted by key, then by time; all maps are ordered, so the same input gives the
//!   same statement.

use std::collections::BTreeMap;

use super::capacity::Capacity;
use super::intervals::IntervalSet;
use super::prices::{PriceBook, Resource};
use super::quantities::{CpuSource, Mode, Quantities};
use super::rollup::{usage_from_raw, usage_from_rollups, PodHour, PodUsage};
use super::samples::{PodIdentity, PodSamples, Window};

/// How rows are grouped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupBy {
    Namespace,
    /// Top-level owner: namespace, kind and name (`Deployment`/`web`, `CronJob`/`nightly`).
    Workload,
    Pod,
    Node,
    /// A configured label tag.
    Label(String),
}

impl GroupBy {
    /// `namespace|workload|pod|node|label:<key>`.
    pub fn parse(s: &str) -> Option<GroupBy> {
        match s {
            "namespace" => Some(GroupBy::Namespace),
            "workload" => Some(GroupBy::Workload),
            "pod" => Some(GroupBy::Pod),
            "node" => Some(GroupBy::Node),
            _ => s
                .strip_prefix("label:")
                .filter(|k| !k.is_empty())
                .map(|k| GroupBy::Label(k.to_string())),
        }
    }

    pub fn name(&self) -> String {
        match self {
            GroupBy::Namespace => "namespace".into(),
            GroupBy::Workload => "workload".into(),
            GroupBy::Pod => "pod".into(),
            GroupBy::Node => "node".into(),
            GroupBy::Label(k) => format!("label:{k}"),
        }
    }

    /// Names of the key columns, in order.
    pub fn key_columns(&self) -> Vec<String> {
        match self {
            GroupBy::Namespace => vec!["namespace".into()],
            GroupBy::Workload => vec![
                "namespace".into(),
                "workload_kind".into(),
                "workload_name".into(),
            ],
            GroupBy::Pod => vec!["namespace".into(), "pod".into()],
            GroupBy::Node => vec!["node".into()],
            GroupBy::Label(k) => vec![format!("label:{k}")],
        }
    }

    /// The row key of a pod.
    pub fn key(&self, id: &PodIdentity) -> Vec<String> {
        match self {
            GroupBy::Namespace => vec![id.namespace.clone()],
            GroupBy::Workload => vec![
                id.namespace.clone(),
                id.workload_kind.clone(),
                id.workload_name.clone(),
            ],
            GroupBy::Pod => vec![id.namespace.clone(), id.pod.clone()],
            GroupBy::Node => vec![id.node.clone()],
            GroupBy::Label(k) => vec![id.labels.get(k).cloned().unwrap_or_default()],
        }
    }
}

/// The billing mode of each resource that has a request. GPUs are billed as allocation and
/// network as usage, whatever the modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Modes {
    pub cpu: Mode,
    pub memory: Mode,
    pub ephemeral: Mode,
}

impl Modes {
    /// `usage`, `request` or `max` for every resource, or per resource, e.g.
    /// `cpu=usage,memory=max,ephemeral_storage=request` (resources left out: `max`).
    pub fn parse(s: &str) -> Option<Modes> {
        let s = s.trim();
        if let Some(m) = Mode::parse(s) {
            return Some(Modes {
                cpu: m,
                memory: m,
                ephemeral: m,
            });
        }
        let mut modes = Modes::default();
        for part in s.split(',') {
            let (resource, mode) = part.split_once('=')?;
            let mode = Mode::parse(mode.trim())?;
            match resource.trim() {
                "cpu" => modes.cpu = mode,
                "memory" => modes.memory = mode,
                "ephemeral_storage" => modes.ephemeral = mode,
                _ => return None,
            }
        }
        Some(modes)
    }
}

impl Default for Modes {
    /// `max(request, usage)`: a pod pays for what it reserved, or more if it used more.
    fn default() -> Modes {
        Modes {
            cpu: Mode::Max,
            memory: Mode::Max,
            ephemeral: Mode::Max,
        }
    }
}

/// Cost of a line in cents of the statement's currency; `None`: used but not priced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    pub cpu: Option<u128>,
    pub memory: Option<u128>,
    pub gpu: Option<u128>,
    pub ephemeral_storage: Option<u128>,
    pub network_in: Option<u128>,
    pub network_out: Option<u128>,
    /// Sum of the priced resources.
    pub total: u128,
}

impl Cost {
    pub fn component(&self, r: Resource) -> Option<u128> {
        match r {
            Resource::Cpu => self.cpu,
            Resource::Memory => self.memory,
            Resource::Gpu => self.gpu,
            Resource::EphemeralStorage => self.ephemeral_storage,
            Resource::NetworkIn => self.network_in,
            Resource::NetworkOut => self.network_out,
        }
    }

    fn component_mut(&mut self, r: Resource) -> &mut Option<u128> {
        match r {
            Resource::Cpu => &mut self.cpu,
            Resource::Memory => &mut self.memory,
            Resource::Gpu => &mut self.gpu,
            Resource::EphemeralStorage => &mut self.ephemeral_storage,
            Resource::NetworkIn => &mut self.network_in,
            Resource::NetworkOut => &mut self.network_out,
        }
    }

    /// Resources used but not priced, in a fixed order.
    pub fn unpriced(&self) -> Vec<Resource> {
        Resource::ALL
            .into_iter()
            .filter(|r| self.component(*r).is_none())
            .collect()
    }
}

/// One row of a statement, or its totals (empty key, the whole window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub key: Vec<String>,
    pub window: Window,
    pub quantities: Quantities,
    /// GPU-ns by GPU model (`None`: model unknown); sums to `quantities.gpu`.
    pub gpu_by_model: BTreeMap<Option<String>, u128>,
    /// Nanoseconds during which any pod of the line was observed.
    pub observed_ns: u128,
    /// Where the line's CPU came from: counters, rates (old exports without counters), both.
    pub cpu_source: CpuSource,
    pub cost: Option<Cost>,
    /// Node capacity, allocation and idle: statements by node only (see [`super::capacity`]).
    pub capacity: Option<Capacity>,
}

impl Line {
    /// Fraction of the window observed, as `(numerator, denominator)` with numerator ≤
    /// denominator, for exact rendering.
    pub fn coverage(&self) -> (u128, u128) {
        let len = self.window.len_ns().max(1) as u128;
        (self.observed_ns.min(len), len)
    }
}

/// A billing statement: `{from, to, by, rows, totals}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub window: Window,
    pub by: GroupBy,
    pub modes: Modes,
    /// The price book's currency; `None` when no price book is configured (quantities only).
    pub currency: Option<String>,
    pub rows: Vec<Line>,
    pub totals: Line,
    /// When the figures are complete only up to an instant before the window's end (the
    /// newest minutes are not metered yet, or nothing is metered after it): that instant.
    pub complete_to: Option<i64>,
}

#[derive(Default)]
struct Acc {
    quantities: Quantities,
    gpu_by_model: BTreeMap<Option<String>, u128>,
    observed: IntervalSet,
    cpu_source: CpuSource,
}

impl Acc {
    fn add(&mut self, p: &PodUsage) {
        self.quantities += p.usage.quantities;
        self.cpu_source.merge(p.usage.cpu_source);
        if p.usage.quantities.gpu > 0 {
            *self
                .gpu_by_model
                .entry(p.identity.gpu_model.clone())
                .or_default() += p.usage.quantities.gpu;
        }
        self.observed.union_with(&p.usage.observed);
    }
}

pub(crate) fn price_line(
    book: &PriceBook,
    seg: Window,
    modes: Modes,
    q: &Quantities,
    gpu: &BTreeMap<Option<String>, u128>,
) -> Cost {
    let t = seg.from;
    let one = |r: Resource, q: u128| book.cost_cents(r, t, [(None, q)]);
    let mut c = Cost {
        cpu: one(Resource::Cpu, q.cpu.billed(modes.cpu)),
        memory: one(Resource::Memory, q.memory.billed(modes.memory)),
        gpu: book.cost_cents(
            Resource::Gpu,
            t,
            gpu.iter().map(|(m, q)| (m.as_deref(), *q)),
        ),
        ephemeral_storage: one(
            Resource::EphemeralStorage,
            q.ephemeral.billed(modes.ephemeral),
        ),
        network_in: one(Resource::NetworkIn, q.net_rx),
        network_out: one(Resource::NetworkOut, q.net_tx),
        total: 0,
    };
    c.total = Resource::ALL
        .into_iter()
        .filter_map(|r| c.component(r))
        .sum();
    c
}

/// Builds a statement for `w`. `usage_for` is called once per price segment (once without a
/// price book) and returns per-pod usage for that sub-window.
pub fn build_statement(
    w: Window,
    by: &GroupBy,
    modes: Modes,
    prices: Option<&PriceBook>,
    mut usage_for: impl FnMut(Window) -> Vec<PodUsage>,
) -> Statement {
    let segments = prices.map_or_else(|| vec![w], |b| b.segments(w));
    let mut rows = Vec::new();
    let mut all = Acc::default();
    for seg in segments {
        let mut groups: BTreeMap<Vec<String>, Acc> = BTreeMap::new();
        for p in usage_for(seg) {
            groups.entry(by.key(&p.identity)).or_default().add(&p);
            all.add(&p);
        }
        for (key, acc) in groups {
            let cost =
                prices.map(|b| price_line(b, seg, modes, &acc.quantities, &acc.gpu_by_model));
            rows.push(Line {
                key,
                window: seg,
                quantities: acc.quantities,
                gpu_by_model: acc.gpu_by_model,
                observed_ns: acc.observed.measure(),
                cpu_source: acc.cpu_source,
                cost,
                capacity: None,
            });
        }
    }
    rows.sort_by(|a, b| (&a.key, a.window).cmp(&(&b.key, b.window)));
    let totals_cost = prices.map(|_| {
        let mut c = Cost::default();
        for r in Resource::ALL {
            *c.component_mut(r) = rows
                .iter()
                .map(|l| l.cost.and_then(|c| c.component(r)))
                .sum::<Option<u128>>();
        }
        c.total = rows.iter().filter_map(|l| l.cost).map(|c| c.total).sum();
        c
    });
    let totals = Line {
        key: Vec::new(),
        window: w,
        quantities: all.quantities,
        gpu_by_model: all.gpu_by_model,
        observed_ns: all.observed.measure(),
        cpu_source: all.cpu_source,
        cost: totals_cost,
        capacity: None,
    };
    Statement {
        window: w,
        by: by.clone(),
        modes,
        currency: prices.map(|b| b.currency().to_string()),
        rows,
        totals,
        complete_to: None,
    }
}

/// A statement straight from raw samples.
pub fn statement_from_raw(
    pods: &[PodSamples],
    w: Window,
    by: &GroupBy,
    modes: Modes,
    prices: Option<&PriceBook>,
) -> Statement {
    build_statement(w, by, modes, prices, |seg| usage_from_raw(pods, seg))
}

/// A statement from hourly rollups for whole hours and raw samples for the partial edges;
/// the same statement as [`statement_from_raw`] over the samples the rollups were made from.
pub fn statement_from_rollups(
    rollups: &[PodHour],
    raw: &[PodSamples],
    w: Window,
    by: &GroupBy,
    modes: Modes,
    prices: Option<&PriceBook>,
) -> Statement {
    build_statement(w, by, modes, prices, |seg| {
        usage_from_rollups(rollups, raw, seg)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::quantities::{BYTE_NS_PER_GIB_HOUR, MCORE_NS_PER_CORE_HOUR};
    use crate::billing::samples::{
        ContainerSamples, CounterSample, GaugeSample, NS_PER_HOUR, NS_PER_SEC,
    };

    const S: i64 = NS_PER_SEC;

    fn id(ns: &str, pod: &str, node: &str) -> PodIdentity {
        PodIdentity {
            namespace: ns.into(),
            pod: pod.into(),
            workload_kind: "StatefulSet".into(),
            workload_name: "db".into(),
            node: node.into(),
            ..Default::default()
        }
    }

    /// A pod holding `mem` bytes (request `mem`) and 1 core of CPU (request 1000 m), scraped
    /// every 15 s at `from_s + 15 k` for k in 0..n.
    fn steady(identity: PodIdentity, from_s: i64, n: i64, mem: u64) -> PodSamples {
        let cpu = (0..n)
            .map(|k| CounterSample {
                t: (from_s + 15 * k) * S,
                value: (15 * k as u64 + 10) * 1_000_000_000,
                start: Some((from_s - 10) * S),
                request: 1_000,
                nominal: Some(15 * S),
            })
            .collect();
        let memory = (0..n)
            .map(|k| GaugeSample {
                t: (from_s + 15 * k) * S,
                value: mem,
                request: mem,
                nominal: Some(15 * S),
            })
            .collect();
        PodSamples {
            identity,
            containers: vec![ContainerSamples {
                name: "c".into(),
                cpu,
                memory,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn modes_parse_for_all_resources_or_each() {
        let all = |m| Modes {
            cpu: m,
            memory: m,
            ephemeral: m,
        };
        assert_eq!(Modes::parse("usage"), Some(all(Mode::Usage)));
        assert_eq!(Modes::parse("max(request, usage)"), Some(all(Mode::Max)));
        assert_eq!(
            Modes::parse("cpu=usage, ephemeral_storage=request"),
            Some(Modes {
                cpu: Mode::Usage,
                memory: Mode::Max,
                ephemeral: Mode::Request,
            })
        );
        assert_eq!(Modes::parse("cpu=cheap"), None);
        assert_eq!(Modes::parse("gpu=usage"), None);
        assert_eq!(Modes::parse(""), None);
    }

    #[test]
    fn a_pod_that_moves_node_is_billed_to_each_node_for_its_time_there() {
        // db-0 runs on node-a for the first 30 min (samples at 0…1785 s: 120 scrapes), then
        // is rescheduled to node-b and runs there for 30 min (1800…3585 s). The pod row sees
        // one hour; the node rows see 30 min each.
        // CPU on node-a: first sample counts its whole 10 s since the container start
        // (10e9 core-ns), then 119 deltas of 15 s: 10 + 1785 = 1795 core-s. Same on node-b.
        let gib = 1u64 << 30;
        let pods = [
            steady(id("shop", "db-0", "node-a"), 0, 120, gib),
            steady(id("shop", "db-0", "node-b"), 1_800, 120, gib),
        ];
        let w = Window::new(0, NS_PER_HOUR).unwrap();
        let modes = Modes {
            cpu: Mode::Usage,
            memory: Mode::Usage,
            ephemeral: Mode::Usage,
        };
        let by_node = statement_from_raw(&pods, w, &GroupBy::Node, modes, None);
        assert_eq!(by_node.rows.len(), 2);
        assert_eq!(by_node.rows[0].key, ["node-a"]);
        assert_eq!(by_node.rows[1].key, ["node-b"]);
        for row in &by_node.rows {
            assert_eq!(row.quantities.cpu.usage, 1_795 * 1_000 * S as u128);
            // Memory 1 GiB: first sample one nominal 15 s, then 119 × 15 s = 1800 s = 0.5 h.
            assert_eq!(row.quantities.memory.usage * 2, BYTE_NS_PER_GIB_HOUR);
        }
        let by_pod = statement_from_raw(&pods, w, &GroupBy::Pod, modes, None);
        assert_eq!(by_pod.rows.len(), 1);
        assert_eq!(by_pod.rows[0].key, ["shop", "db-0"]);
        assert_eq!(by_pod.rows[0].quantities.memory.usage, BYTE_NS_PER_GIB_HOUR);
        assert_eq!(by_pod.rows[0].quantities, by_node.totals.quantities);
        // Observed: (−15 s, 1785 s] on a, (1785 s, 3585 s] on b → 3600 s: full coverage.
        assert_eq!(
            by_pod.rows[0].coverage(),
            (NS_PER_HOUR as u128, NS_PER_HOUR as u128)
        );
        // Each node saw the pod for half the hour.
        assert_eq!(by_node.rows[0].observed_ns * 2, NS_PER_HOUR as u128);
    }

    #[test]
    fn a_price_change_mid_month_splits_the_line_and_totals_are_sums_of_rows() {
        // One pod requesting 1 core, 1 GiB from 2026-10-01 for the whole of October, priced
        // cpu 0.04/core-hour until the 16th, then 0.03; memory 0.005/GiB-hour throughout.
        // Scraped hourly here to keep the test small (interval 1 h; each sample accounts for
        // the hour before it; the first sample, at 00:00, counts from the container start
        // one hour earlier: 1 core-hour, and it belongs to the window by its time).
        let book = PriceBook::from_json(
            r#"{"currency": "EUR", "prices": [
                {"resource": "cpu", "price": "0.04", "valid_from": "2026-01-01", "valid_to": "2026-10-16"},
                {"resource": "cpu", "price": "0.03", "valid_from": "2026-10-16"},
                {"resource": "memory", "price": "0.005", "valid_from": "2026-01-01"}]}"#,
        )
        .unwrap();
        let oct1 = 1_790_812_800 * S; // 2026-10-01T00:00:00Z
        let hours = 31 * 24;
        let cpu = (0..hours)
            .map(|k| CounterSample {
                t: oct1 + k * NS_PER_HOUR,
                value: (k as u64 + 1) * 3_600_000_000_000,
                start: Some(oct1 - NS_PER_HOUR),
                request: 1_000,
                nominal: Some(NS_PER_HOUR),
            })
            .collect();
        let memory = (0..hours)
            .map(|k| GaugeSample {
                t: oct1 + k * NS_PER_HOUR,
                value: 1 << 30,
                request: 1 << 30,
                nominal: Some(NS_PER_HOUR),
            })
            .collect();
        let pods = [PodSamples {
            identity: id("shop", "db-0", "node-a"),
            containers: vec![ContainerSamples {
                name: "c".into(),
                cpu,
                memory,
                ..Default::default()
            }],
            ..Default::default()
        }];
        let w = Window::new(oct1, oct1 + hours * NS_PER_HOUR).unwrap();
        let st = statement_from_raw(&pods, w, &GroupBy::Namespace, Modes::default(), Some(&book));
        assert_eq!(st.rows.len(), 2, "the price change splits the line");
        let (a, b) = (&st.rows[0], &st.rows[1]);
        // 1st–15th: 15 × 24 = 360 samples, 360 core-hours × 0.04 = 14.40; 360 GiB-hours ×
        // 0.005 = 1.80. 16th–31st: 384 core-hours × 0.03 = 11.52; 384 × 0.005 = 1.92.
        assert_eq!(a.quantities.cpu.max, 360 * MCORE_NS_PER_CORE_HOUR);
        assert_eq!(b.quantities.cpu.max, 384 * MCORE_NS_PER_CORE_HOUR);
        let (ca, cb) = (a.cost.unwrap(), b.cost.unwrap());
        assert_eq!(
            (ca.cpu, ca.memory, ca.total),
            (Some(1_440), Some(180), 1_620)
        );
        assert_eq!(
            (cb.cpu, cb.memory, cb.total),
            (Some(1_152), Some(192), 1_344)
        );
        let t = st.totals.cost.unwrap();
        assert_eq!((t.cpu, t.memory, t.total), (Some(2_592), Some(372), 2_964));
        assert_eq!(st.totals.quantities, a.quantities + b.quantities);
        assert_eq!(st.currency.as_deref(), Some("EUR"));
    }

    #[test]
    fn used_but_unpriced_resources_are_listed_not_free() {
        let book = PriceBook::from_json(
            r#"{"currency": "EUR", "prices": [{"resource": "cpu", "price": "1", "valid_from": "1970-01-01"}]}"#,
        )
        .unwrap();
        let pods = [steady(id("a", "p", "n"), 0, 4, 1 << 20)];
        let w = Window::new(0, NS_PER_HOUR).unwrap();
        let st = statement_from_raw(&pods, w, &GroupBy::Pod, Modes::default(), Some(&book));
        let c = st.rows[0].cost.unwrap();
        assert_eq!(c.unpriced(), [Resource::Memory]);
        assert_eq!(c.total, c.cpu.unwrap());
        assert_eq!(st.totals.cost.unwrap().memory, None);
    }

    #[test]
    fn groupings_parse() {
        for s in ["namespace", "workload", "pod", "node", "label:team"] {
            assert_eq!(GroupBy::parse(s).unwrap().name(), s);
        }
        assert_eq!(GroupBy::parse("label:"), None);
        assert_eq!(GroupBy::parse("cluster"), None);
        let mut p = id("a", "p", "n");
        p.labels.insert("team".into(), "blue".into());
        assert_eq!(GroupBy::Label("team".into()).key(&p), ["blue"]);
        assert_eq!(GroupBy::Label("cost-center".into()).key(&p), [""]);
    }
}
