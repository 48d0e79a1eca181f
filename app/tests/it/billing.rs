//! Billing statements from real InfluxDB data, against ground truth worked out by hand.
//!
//! Hand-made kubelet summaries (the real `/stats/summary` JSON shape) are encoded by the
//! collector's own encoder (`encode_summary`, the code a scrape round runs) and written to a
//! fresh database on the test influxd; `Metering::statement` reads them back. The expected
//! quantities below come from the counters and gauges we chose, not from the code under test.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use kubemeter::billing::quantities::{BYTE_NS_PER_GIB_HOUR, MCORE_NS_PER_CORE_HOUR};
use kubemeter::billing::{GroupBy, Line, Modes, Quantities, ScrapeConfig, Statement, Window};
use kubemeter::collector::owners::{Owner, OwnerRef};
use kubemeter::collector::points::{
    encode_summary, Cluster, ContainerSpec, NodeInfo, PodInfo, Totals,
};
use kubemeter::collector::rates::Rates;
use kubemeter::collector::summary::Summary;
use kubemeter::influx::InfluxClient;
use kubemeter::jobs::rollup;
use kubemeter::metering::rollups::{self, Period};
use kubemeter::metering::{MemorySource, Metering, Progress, Quiet, StatementQuery};
use kubemeter::simulator::model::{Model, SimConfig, SimPod, SlotKind};
use kubemeter::users::Scope;
use serde_json::{json, Value};

use crate::helpers::fresh_influx;

const S: i64 = 1_000_000_000;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// Core-ns per second for one millicore.
const CORE_NS_PER_MCORE_S: u64 = 1_000_000;

/// 2026-10-01T00:00:00Z, the start of the billed hour.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap()
}

fn at(offset_s: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(offset_s)
}

fn ns(offset_s: i64) -> i64 {
    at(offset_s).timestamp_nanos_opt().unwrap()
}

/// One container: a constant CPU burn and working set; `starts` are its (re)start times in
/// seconds from t0, the latest one at or before a sample being the running container.
struct Ctr {
    name: &'static str,
    millicores: u64,
    working_set: u64,
    cpu_request: Option<i64>,
    memory_request: Option<i64>,
    gpus: Option<i64>,
    gpu_model: Option<&'static str>,
    starts: Vec<i64>,
}

impl Ctr {
    fn new(name: &'static str, millicores: u64, working_set: u64, start: i64) -> Ctr {
        Ctr {
            name,
            millicores,
            working_set,
            cpu_request: None,
            memory_request: None,
            gpus: None,
            gpu_model: None,
            starts: vec![start],
        }
    }

    fn start_at(&self, t: i64) -> i64 {
        self.starts
            .iter()
            .copied()
            .filter(|s| *s <= t)
            .max()
            .unwrap()
    }
}

/// One pod as the kubelet and the API server see it, scraped at `seen` (seconds from t0,
/// inclusive ranges, every 15 s on the grid of t0).
struct TestPod {
    namespace: &'static str,
    name: &'static str,
    uid: &'static str,
    node: &'static str,
    workload: (&'static str, &'static str),
    team: &'static str,
    host_network: bool,
    /// Network bytes/s received (half as much sent); `None`: no network stats at all.
    rx_per_s: Option<u64>,
    ephemeral: Option<(u64, i64)>,
    containers: Vec<Ctr>,
    seen: Vec<(i64, i64)>,
}

impl TestPod {
    fn seen_at(&self, t: i64) -> bool {
        self.seen.iter().any(|(a, b)| *a <= t && t <= *b)
    }

    fn start(&self) -> i64 {
        self.containers.iter().map(|c| c.starts[0]).min().unwrap()
    }

    fn stats(&self, t: i64) -> Value {
        let time = at(t).to_rfc3339();
        let containers: Vec<Value> = self
            .containers
            .iter()
            .map(|c| {
                let start = c.start_at(t);
                let mut v = json!({
                    "name": c.name,
                    "startTime": at(start).to_rfc3339(),
                    "cpu": {"time": time, "usageNanoCores": c.millicores * 1_000_000,
                            "usageCoreNanoSeconds": c.millicores * CORE_NS_PER_MCORE_S * (t - start) as u64},
                    "memory": {"time": time, "usageBytes": c.working_set + 16 * MIB,
                               "workingSetBytes": c.working_set, "rssBytes": c.working_set,
                               "pageFaults": 0, "majorPageFaults": 0},
                });
                if let Some(model) = c.gpu_model {
                    v["accelerators"] = json!([{"make": "nvidia", "model": model, "id": "GPU-0",
                        "memoryTotal": 16 * GIB, "memoryUsed": 6 * GIB, "dutyCycle": 65}]);
                }
                v
            })
            .collect();
        let up = (t - self.start()) as u64;
        let mut pod = json!({
            "podRef": {"name": self.name, "namespace": self.namespace, "uid": self.uid},
            "startTime": at(self.start()).to_rfc3339(),
            "containers": containers,
        });
        if self.host_network {
            // A host-network pod reports the node's interface: huge counters, not its own.
            pod["network"] = json!({"time": time, "name": "eth0",
                "rxBytes": 900_000_000_000u64 + up, "rxErrors": 0,
                "txBytes": 800_000_000_000u64 + up, "txErrors": 0});
        } else if let Some(rate) = self.rx_per_s {
            pod["network"] = json!({"time": time, "name": "eth0", "rxBytes": rate * up,
                "rxErrors": 0, "txBytes": rate / 2 * up, "txErrors": 0});
        }
        if let Some((used, _)) = self.ephemeral {
            pod["ephemeral-storage"] = json!({"time": time, "usedBytes": used,
                "availableBytes": 10 * GIB, "capacityBytes": 20 * GIB});
        }
        pod
    }

    fn info(&self) -> PodInfo {
        let (kind, name) = self.workload;
        let containers = self
            .containers
            .iter()
            .map(|c| {
                let spec = ContainerSpec {
                    image: format!("registry.example/{}:1", c.name),
                    cpu_request_millicores: c.cpu_request,
                    memory_request_bytes: c.memory_request,
                    ephemeral_request_bytes: self.ephemeral.map(|(_, r)| r),
                    gpu_request: c.gpus,
                    gpu_limit: c.gpus,
                    ..Default::default()
                };
                (c.name.to_string(), spec)
            })
            .collect();
        PodInfo {
            uid: self.uid.into(),
            owner: Some(Owner {
                owner: Some(OwnerRef::new(kind, name)),
                workload: OwnerRef::new(kind, name),
            }),
            label_tags: vec![("label_team".into(), self.team.into())],
            labels: format!("team:{}", self.team),
            host_network: self.host_network,
            containers,
        }
    }
}

/// The cluster of the billed hour; every number in the tests below follows from it.
fn pods() -> Vec<TestPod> {
    let mut web_app = Ctr::new("app", 200, 512 * MIB, -86_400);
    // Restarts at 29 min 55 s: the 30-min sample reads the new container's 5 s of CPU.
    web_app.starts.push(1_795);
    web_app.cpu_request = Some(500);
    web_app.memory_request = Some(256 * MIB as i64);

    let mut job = Ctr::new("report", 1_000, 100 * MIB, 601);
    job.cpu_request = Some(1_000);

    let mut etl = Ctr::new("worker", 100, GIB, -3_600);
    // Unobserved from 20 min to 30 min, restarted at 29 min 50 s meanwhile.
    etl.starts.push(1_790);

    let db_n2 = Ctr::new("postgres", 300, 2 * GIB, -7_200);
    let db_n3 = Ctr::new("postgres", 300, 2 * GIB, 1_520);

    let mut train = Ctr::new("trainer", 1_000, 4 * GIB, -600);
    train.gpus = Some(2);
    train.gpu_model = Some("nvidia-tesla-v100");

    let proxy = Ctr::new("kube-proxy", 50, 64 * MIB, -86_400);

    let whole = vec![(-15, 3_585)];
    let pod = |namespace, name, uid, node, workload, team| TestPod {
        namespace,
        name,
        uid,
        node,
        workload,
        team,
        host_network: false,
        rx_per_s: Some(0),
        ephemeral: None,
        containers: vec![],
        seen: whole.clone(),
    };
    vec![
        TestPod {
            rx_per_s: Some(1_000),
            ephemeral: Some((GIB, 2 * GIB as i64)),
            containers: vec![web_app],
            ..pod(
                "shop",
                "web-0",
                "uid-web-0",
                "n1",
                ("Deployment", "web"),
                "a",
            )
        },
        // A 20-second job: runs 601 s–621 s, seen by one scrape only (615 s).
        TestPod {
            containers: vec![job],
            seen: vec![(615, 615)],
            ..pod(
                "shop",
                "report-1",
                "uid-report-1",
                "n1",
                ("CronJob", "report"),
                "a",
            )
        },
        TestPod {
            // No network stats: no counter that would prove the pod ran through its gap.
            rx_per_s: None,
            containers: vec![etl],
            seen: vec![(-15, 1_200), (1_800, 3_585)],
            ..pod(
                "data",
                "etl-0",
                "uid-etl-0",
                "n2",
                ("Deployment", "etl"),
                "b",
            )
        },
        // Moves from n2 (last seen 25 min) to n3 (a new pod, started 25 min 20 s).
        TestPod {
            containers: vec![db_n2],
            seen: vec![(-15, 1_500)],
            ..pod(
                "data",
                "db-0",
                "uid-db-0-a",
                "n2",
                ("StatefulSet", "db"),
                "b",
            )
        },
        TestPod {
            containers: vec![db_n3],
            seen: vec![(1_530, 3_585)],
            ..pod(
                "data",
                "db-0",
                "uid-db-0-b",
                "n3",
                ("StatefulSet", "db"),
                "b",
            )
        },
        TestPod {
            containers: vec![train],
            ..pod("ml", "train-0", "uid-train-0", "n3", ("Job", "train"), "c")
        },
        TestPod {
            host_network: true,
            containers: vec![proxy],
            ..pod(
                "kube-system",
                "kube-proxy-n1",
                "uid-proxy",
                "n1",
                ("DaemonSet", "kube-proxy"),
                "",
            )
        },
    ]
}

/// Scrapes every 15 s from 15 s before t0 to the end of the hour, through the collector's
/// encoder, into `influx`.
async fn load(influx: &InfluxClient, pods: &[TestPod]) {
    let mut rates = Rates::default();
    let mut lines = String::new();
    for t in (-15..3_600).step_by(15) {
        for node in ["n1", "n2", "n3", "n4"] {
            let here: Vec<&TestPod> = pods
                .iter()
                .filter(|p| p.node == node && p.seen_at(t))
                .collect();
            let doc = json!({
                "node": {
                    "nodeName": node,
                    "startTime": at(-864_000).to_rfc3339(),
                    // The node's own stats carry the scrape's time for its series.
                    "cpu": {"time": at(t).to_rfc3339()},
                },
                "pods": here.iter().map(|p| p.stats(t)).collect::<Vec<_>>(),
            });
            let summary: Summary = serde_json::from_value(doc).expect("a kubelet summary");
            let cluster = Cluster {
                name: "test".into(),
                pods: here
                    .iter()
                    .map(|p| ((p.namespace.into(), p.name.into()), p.info()))
                    .collect::<HashMap<_, _>>(),
                nodes: node_infos(),
                ..Cluster::default()
            };
            encode_summary(
                &summary,
                &cluster,
                &mut rates,
                &mut Totals::default(),
                &mut lines,
            );
        }
    }
    influx.write(lines).await.expect("the points are written");
}

/// Allocatable of n1 (2 cores, 128 MiB: web-0 asks for more memory) and of n4, which runs
/// no pod (1 core, 4 GiB); n2 and n3 report none.
fn node_infos() -> HashMap<String, NodeInfo> {
    let node = |cpu: f64, memory: u64| NodeInfo {
        cpu_allocatable_millicores: Some(cpu),
        memory_allocatable_bytes: Some(memory as f64),
        ..Default::default()
    };
    HashMap::from([
        ("n1".to_string(), node(2_000.0, 128 * MIB)),
        ("n4".to_string(), node(1_000.0, 4 * GIB)),
    ])
}

fn metering(influx: &InfluxClient) -> Metering {
    Metering {
        influx: influx.clone(),
        scrape: ScrapeConfig::new(15 * S),
        prices: None,
        memory: MemorySource::WorkingSet,
    }
}

async fn statement(m: &Metering, from: i64, to: i64, by: GroupBy, scope: Scope) -> Statement {
    let q = StatementQuery {
        window: Window::new(from, to).unwrap(),
        by,
        modes: Modes::default(),
        scope,
    };
    m.statement(&q, &Quiet).await.expect("a statement")
}

fn row<'a>(s: &'a Statement, key: &[&str]) -> &'a Line {
    s.rows
        .iter()
        .find(|l| l.key == key)
        .unwrap_or_else(|| panic!("no row {key:?} in {:?}", keys(s)))
}

fn keys(s: &Statement) -> Vec<Vec<String>> {
    s.rows.iter().map(|l| l.key.clone()).collect()
}

/// Millicore-ns from core-seconds, byte-ns from byte-seconds, ns from seconds.
const fn mcore_ns(core_s: u128) -> u128 {
    core_s * 1_000 * S as u128
}
const fn byte_ns(byte_s: u128) -> u128 {
    byte_s * S as u128
}

#[tokio::test]
async fn an_hour_of_hand_made_summaries_bills_what_was_worked_out_by_hand() {
    let influx = fresh_influx().await;
    let pods = pods();
    load(&influx, &pods).await;
    let m = metering(&influx);
    let s = statement(&m, ns(0), ns(3_600), GroupBy::Pod, Scope::All).await;

    // web-0: 200 m. Samples at 0 s … 3 585 s (240), each a 15 s delta of 3 core-s, except the
    // one at 1 800 s after the restart at 1 795 s: its whole counter, 200 m × 5 s = 1 core-s.
    // CPU = 239 × 3 + 1 = 718 core-s. Request 500 m over the same intervals: 239 × 15 s +
    // 5 s = 3 590 s. Max per interval is the request (500 m > 200 m).
    // Memory: 240 samples × 15 s of 512 MiB; request 256 MiB over the same 3 600 s.
    // Network: 1 000 B/s and 500 B/s over 240 deltas of 15 s. Ephemeral: 1 GiB used,
    // 2 GiB requested, 3 600 s.
    let web = row(&s, &["shop", "web-0"]);
    let q = &web.quantities;
    assert_eq!(q.cpu.usage, mcore_ns(718));
    assert_eq!(q.cpu.request, 500 * byte_ns(3_590));
    assert_eq!(q.cpu.max, 500 * byte_ns(3_590));
    assert_eq!(q.memory.usage, byte_ns(512 * MIB as u128 * 3_600));
    assert_eq!(q.memory.request, byte_ns(256 * MIB as u128 * 3_600));
    assert_eq!(q.memory.max, q.memory.usage);
    assert_eq!((q.net_rx, q.net_tx), (3_600_000, 1_800_000));
    assert_eq!(q.ephemeral.usage, BYTE_NS_PER_GIB_HOUR);
    assert_eq!(q.ephemeral.request, 2 * BYTE_NS_PER_GIB_HOUR);
    assert_eq!(q.gpu, 0);
    // Observed from the look-back sample at −15 s: capped at the whole hour.
    assert_eq!(web.coverage(), (3_600 * S as u128, 3_600 * S as u128));

    // The 20-second job, started at 601 s, seen once at 615 s with 1 000 m × 14 s: billed from
    // its start (14 core-s, 14 s of its 1 000 m request), its memory for one interval (15 s).
    let job = row(&s, &["shop", "report-1"]);
    assert_eq!(job.quantities.cpu.usage, mcore_ns(14));
    assert_eq!(job.quantities.cpu.request, 1_000 * byte_ns(14));
    assert_eq!(job.quantities.memory.usage, byte_ns(100 * MIB as u128 * 15));
    assert_eq!(job.observed_ns, 15 * S as u128);

    // etl-0: 100 m, unobserved from 1 200 s to 1 800 s, restarted at 1 790 s. CPU: 81 deltas
    // (0 s … 1 200 s) of 1.5 core-s, the new container's 10 s × 100 m = 1 core-s at 1 800 s,
    // then 119 deltas (1 815 s … 3 585 s): (81 + 119) × 1.5 + 1 = 301 core-s. Memory is not
    // bridged over the gap: 81 + 1 + 119 = 201 samples × 15 s of 1 GiB. Observed: (−15 s,
    // 1 200 s] and (1 785 s, 3 585 s] (the first sample after the gap holds one interval).
    let etl = row(&s, &["data", "etl-0"]);
    assert_eq!(etl.quantities.cpu.usage, mcore_ns(301));
    assert_eq!(etl.quantities.memory.usage, byte_ns(GIB as u128 * 201 * 15));
    assert_eq!(etl.observed_ns, (1_215 + 1_800) * S as u128);

    // db-0 moves node: on n2 101 deltas of 4.5 core-s (0 s … 1 500 s); on n3 a new pod started
    // at 1 520 s, first seen at 1 530 s with 300 m × 10 s = 3 core-s, then 137 deltas.
    // (101 + 137) × 4.5 + 3 = 1 074 core-s. Memory 2 GiB for (101 + 138) × 15 s.
    let db = row(&s, &["data", "db-0"]);
    assert_eq!(db.quantities.cpu.usage, mcore_ns(1_074));
    assert_eq!(
        db.quantities.memory.usage,
        byte_ns(2 * GIB as u128 * 239 * 15)
    );
    let by_node = statement(&m, ns(0), ns(3_600), GroupBy::Node, Scope::All).await;
    let n2 = row(&by_node, &["n2"]).quantities.cpu.usage;
    let n3 = row(&by_node, &["n3"]).quantities.cpu.usage;
    // n2: etl-0 (301) + db-0's first part (101 × 4.5 = 454.5); n3: db-0 (616.5 + 3) and
    // train-0 (1 000 m × 3 600 s).
    assert_eq!(n2, mcore_ns(301) + mcore_ns(909) / 2);
    assert_eq!(n3, mcore_ns(6_195) / 10 + mcore_ns(3_600));

    // Capacity: n1's 2 000 m for the hour (240 samples × 15 s), of which web-0's 500 m for
    // 3 590 s and the job's 1 000 m for 14 s are allocated; 128 MiB of memory against web-0's
    // 256 MiB request: no idle memory, 128 MiB × 1 h overcommitted. n4 ran nothing: all idle.
    let n1 = row(&by_node, &["n1"]).capacity.expect("capacity by node");
    assert_eq!(n1.cpu.capacity, 2_000 * byte_ns(3_600));
    assert_eq!(
        n1.cpu.idle,
        2_000 * byte_ns(3_600) - 500 * byte_ns(3_590) - 1_000 * byte_ns(14)
    );
    assert_eq!(n1.memory.idle, 0);
    assert_eq!(n1.memory.overcommit, byte_ns(128 * MIB as u128 * 3_600));
    let n4 = row(&by_node, &["n4"]);
    assert_eq!(n4.quantities, Quantities::default());
    let n4 = n4.capacity.expect("an idle node has a row");
    assert_eq!(n4.cpu.idle, 1_000 * byte_ns(3_600));
    assert_eq!(n4.memory.idle, byte_ns(4 * GIB as u128 * 3_600));
    // n2 and n3 report no allocatable: zero capacity, never negative idle.
    assert_eq!(row(&by_node, &["n3"]).capacity.unwrap().cpu.idle, 0);
    // Totals: n1's and n4's capacity; idle is n1's idle plus n4's, whatever n2 and n3 ask for.
    let total = by_node.totals.capacity.unwrap().cpu;
    assert_eq!(total.capacity, 3_000 * byte_ns(3_600));
    assert_eq!(
        total.idle,
        3_000 * byte_ns(3_600) - 500 * byte_ns(3_590) - 1_000 * byte_ns(14)
    );
    // A caller limited to namespaces sees no node capacity.
    let scoped = statement(
        &m,
        ns(0),
        ns(3_600),
        GroupBy::Node,
        Scope::Only(vec!["shop".into()]),
    )
    .await;
    assert!(scoped.totals.capacity.is_none());
    assert!(scoped.rows.iter().all(|r| r.key != ["n4"]));

    // train-0 holds 2 GPUs the whole hour (240 samples × 15 s); the model comes from the
    // kubelet's accelerator stats.
    let train = row(&s, &["ml", "train-0"]);
    assert_eq!(train.quantities.gpu, 2 * 3_600 * S as u128);
    assert_eq!(
        train.gpu_by_model.iter().collect::<Vec<_>>(),
        vec![(
            &Some("nvidia-tesla-v100".to_string()),
            &(2 * 3_600 * S as u128)
        )]
    );

    // The host-network pod's node-wide traffic is never its own.
    let proxy = row(&s, &["kube-system", "kube-proxy-n1"]);
    assert_eq!((proxy.quantities.net_rx, proxy.quantities.net_tx), (0, 0));
    assert_eq!(proxy.quantities.cpu.usage, mcore_ns(180));

    // In billing units: web-0 used 718 / 3 600 core-hours.
    assert_eq!(
        q.cpu.usage * 3_600 / MCORE_NS_PER_CORE_HOUR,
        718,
        "core-seconds"
    );
}

fn sum(lines: &[&Line]) -> Quantities {
    lines.iter().map(|l| l.quantities).sum()
}

#[tokio::test]
async fn pods_sum_to_workloads_namespaces_and_totals_and_a_scoped_caller_sees_only_its_own() {
    let influx = fresh_influx().await;
    load(&influx, &pods()).await;
    let m = metering(&influx);
    // A window with partial hours at both ends.
    let (from, to) = (ns(-7), ns(3_000));
    let by_pod = statement(&m, from, to, GroupBy::Pod, Scope::All).await;
    let by_workload = statement(&m, from, to, GroupBy::Workload, Scope::All).await;
    let by_ns = statement(&m, from, to, GroupBy::Namespace, Scope::All).await;
    let by_team = statement(&m, from, to, GroupBy::Label("team".into()), Scope::All).await;

    let pods_of =
        |ns: &str| -> Vec<&Line> { by_pod.rows.iter().filter(|l| l.key[0] == ns).collect() };
    let workloads_of =
        |ns: &str| -> Vec<&Line> { by_workload.rows.iter().filter(|l| l.key[0] == ns).collect() };
    for ns_row in &by_ns.rows {
        let ns = ns_row.key[0].as_str();
        assert_eq!(sum(&pods_of(ns)), ns_row.quantities, "pods of {ns}");
        assert_eq!(
            sum(&workloads_of(ns)),
            ns_row.quantities,
            "workloads of {ns}"
        );
    }
    let all: Vec<&Line> = by_ns.rows.iter().collect();
    assert_eq!(sum(&all), by_ns.totals.quantities);
    assert_eq!(by_pod.totals.quantities, by_ns.totals.quantities);
    let teams: Vec<&Line> = by_team.rows.iter().collect();
    assert_eq!(sum(&teams), by_ns.totals.quantities);
    assert_eq!(
        keys(&by_ns),
        vec![vec!["data"], vec!["kube-system"], vec!["ml"], vec!["shop"]]
    );

    // A caller limited to shop sees shop's numbers and nothing else, totals included.
    let scoped = statement(
        &m,
        from,
        to,
        GroupBy::Namespace,
        Scope::Only(vec!["shop".into()]),
    )
    .await;
    assert_eq!(keys(&scoped), vec![vec!["shop"]]);
    assert_eq!(scoped.totals.quantities, row(&by_ns, &["shop"]).quantities);
    let nobody = statement(&m, from, to, GroupBy::Pod, Scope::Only(vec![])).await;
    assert!(nobody.rows.is_empty() && nobody.totals.quantities.is_zero());
}

#[tokio::test]
async fn a_window_read_in_pieces_adds_up_to_the_whole_window() {
    let influx = fresh_influx().await;
    load(&influx, &pods()).await;
    let m = metering(&influx);
    let whole = statement(&m, ns(0), ns(3_600), GroupBy::Pod, Scope::All).await;
    let first = statement(&m, ns(0), ns(1_234), GroupBy::Pod, Scope::All).await;
    let second = statement(&m, ns(1_234), ns(3_600), GroupBy::Pod, Scope::All).await;
    let mut parts: BTreeMap<Vec<String>, Quantities> = BTreeMap::new();
    for l in first.rows.iter().chain(&second.rows) {
        *parts.entry(l.key.clone()).or_default() += l.quantities;
    }
    let want: BTreeMap<Vec<String>, Quantities> = whole
        .rows
        .iter()
        .map(|l| (l.key.clone(), l.quantities))
        .collect();
    assert_eq!(parts, want);
}

// --- The simulator's known usage functions, over simulated hours -------------------------

/// What the API server would say about a simulated pod (as the collector's watch builds it).
fn sim_info(p: &SimPod) -> PodInfo {
    let containers = p
        .containers
        .iter()
        .map(|c| {
            let gpus = (c.gpus > 0).then_some(i64::from(c.gpus));
            let spec = ContainerSpec {
                image: c.image.clone(),
                cpu_request_millicores: Some(c.cpu_request_millicores as i64),
                memory_request_bytes: Some(c.memory_request as i64),
                gpu_request: gpus,
                gpu_limit: gpus,
                restart_count: Some(i64::from(c.restarts)),
                ..Default::default()
            };
            (c.name.clone(), spec)
        })
        .collect();
    PodInfo {
        uid: p.uid.clone(),
        owner: Some(Owner {
            owner: p.owner.as_ref().map(|(k, n)| OwnerRef::new(k, n)),
            workload: OwnerRef::new(&p.workload.0, &p.workload.1),
        }),
        label_tags: vec![("label_team".into(), p.team.into())],
        labels: format!("team:{}", p.team),
        host_network: p.host_network,
        containers,
    }
}

/// Every node's summary every `step_s` seconds in `[from, to]`, through the collector's
/// encoder, into `influx` (back-dated: the model is a pure function of time).
/// Allocatable of every simulated node (the simulator's API server says 3 800 m and 14 GiB).
const SIM_NODE_MILLICORES: u64 = 3_800;
const SIM_NODE_BYTES: u64 = 14 * GIB;

fn sim_nodes(model: &Model) -> HashMap<String, NodeInfo> {
    model
        .node_names()
        .into_iter()
        .map(|n| {
            let info = NodeInfo {
                cpu_allocatable_millicores: Some(SIM_NODE_MILLICORES as f64),
                memory_allocatable_bytes: Some(SIM_NODE_BYTES as f64),
                ..Default::default()
            };
            (n, info)
        })
        .collect()
}

async fn load_simulated(
    influx: &InfluxClient,
    model: &Model,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step_s: i64,
) {
    let mut rates = Rates::default();
    let mut lines = String::new();
    let mut t = from;
    while t <= to {
        let pods = model.pods_at(t);
        let cluster = Cluster {
            name: "sim".into(),
            pods: pods
                .iter()
                .map(|p| ((p.namespace.clone(), p.name.clone()), sim_info(p)))
                .collect(),
            nodes: sim_nodes(model),
            ..Cluster::default()
        };
        for n in 0..model.config.nodes {
            let summary = model.summary(n, t);
            encode_summary(
                &summary,
                &cluster,
                &mut rates,
                &mut Totals::default(),
                &mut lines,
            );
        }
        if lines.len() > 8 << 20 {
            influx.write(std::mem::take(&mut lines)).await.unwrap();
        }
        t += chrono::Duration::seconds(step_s);
    }
    influx.write(lines).await.unwrap();
}

fn sim_model(nodes: usize, pods_per_node: usize) -> Model {
    Model::new(
        SimConfig {
            nodes,
            pods_per_node,
            seed: 11,
        },
        t0(),
    )
}

fn window_ns(from: DateTime<Utc>, to: DateTime<Utc>) -> (i64, i64) {
    (
        from.timestamp_nanos_opt().unwrap(),
        to.timestamp_nanos_opt().unwrap(),
    )
}

#[tokio::test]
async fn three_simulated_hours_bill_exactly_what_the_simulator_burned() {
    let influx = fresh_influx().await;
    let model = sim_model(2, 10);
    let hours = 3;
    let end = t0() + chrono::Duration::hours(hours);
    load_simulated(
        &influx,
        &model,
        t0() - chrono::Duration::seconds(15),
        end,
        15,
    )
    .await;
    let m = metering(&influx);
    let (from, to) = window_ns(t0(), end);
    let s = statement(&m, from, to, GroupBy::Pod, Scope::All).await;

    // Pods that run all along without a restart: usage is rate × time, exactly.
    let secs = (hours * 3_600) as u128;
    let steady: Vec<SimPod> = model
        .pods_at(t0())
        .into_iter()
        .filter(|p| !matches!(p.kind, SlotKind::CronJob | SlotKind::Restarting))
        .collect();
    assert!(steady.len() >= 14, "{} steady pods", steady.len());
    for p in &steady {
        let line = row(&s, &[&p.namespace, &p.name]);
        let q = &line.quantities;
        let cpu: u128 = p.containers.iter().map(|c| c.millicores as u128).sum();
        let ws: u128 = p.containers.iter().map(|c| c.working_set as u128).sum();
        let gpus: u128 = p.containers.iter().map(|c| c.gpus as u128).sum();
        let cpu_req: u128 = p
            .containers
            .iter()
            .map(|c| c.cpu_request_millicores as u128)
            .sum();
        assert_eq!(q.cpu.usage, byte_ns(cpu * secs), "{} cpu", p.name);
        assert_eq!(
            q.cpu.request,
            byte_ns(cpu_req * secs),
            "{} cpu request",
            p.name
        );
        assert_eq!(q.memory.usage, byte_ns(ws * secs), "{} memory", p.name);
        assert_eq!(q.gpu, byte_ns(gpus * secs), "{} gpu", p.name);
        let rx = if p.host_network {
            0
        } else {
            p.rx_rate as u128 * secs
        };
        assert_eq!(q.net_rx, rx, "{} network", p.name);
        assert_eq!(line.coverage().0, line.coverage().1, "{} coverage", p.name);
    }

    // Every node's allocatable for the 3 hours; allocated is its pods' requests; the rest idle.
    let by_node = statement(&m, from, to, GroupBy::Node, Scope::All).await;
    assert_eq!(by_node.rows.len(), model.config.nodes);
    for line in &by_node.rows {
        let c = line.capacity.expect("capacity by node");
        assert_eq!(c.cpu.capacity, byte_ns(SIM_NODE_MILLICORES as u128 * secs));
        assert_eq!(c.memory.capacity, byte_ns(SIM_NODE_BYTES as u128 * secs));
    }
    // Allocated on the nodes adds up to the requests of every pod, read per pod.
    let allocated: u128 = by_node
        .rows
        .iter()
        .map(|l| l.capacity.unwrap().cpu.allocated)
        .sum();
    assert_eq!(allocated, s.totals.quantities.cpu.request);

    // CronJob pods run 3 minutes in 5 and restarting pods restart every 4: they still add up
    // to their workloads and namespaces exactly.
    let by_ns = statement(&m, from, to, GroupBy::Namespace, Scope::All).await;
    let all: Vec<&Line> = s.rows.iter().collect();
    assert_eq!(sum(&all), by_ns.totals.quantities);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_and_raw_edges_give_the_statement_raw_samples_give() {
    let influx = fresh_influx().await;
    let model = sim_model(2, 10);
    let end = t0() + chrono::Duration::hours(3);
    load_simulated(
        &influx,
        &model,
        t0() - chrono::Duration::seconds(15),
        end,
        15,
    )
    .await;
    let m = metering(&influx);
    let hours = Window::new(ns(0), ns(3 * 3_600)).unwrap();
    let report = rollup::roll_up(&m, hours, &Quiet).await.unwrap();
    assert_eq!((report.hours, report.days), (3, 0));

    // 00:20 to 02:50: raw edges, one rolled-up hour (01:00), and raw again for 02:00 once
    // its marker is gone (as if the job had not reached it yet).
    let q = |by| StatementQuery {
        window: Window::new(ns(1_200), ns(10_200)).unwrap(),
        by,
        modes: Modes::default(),
        scope: Scope::All,
    };
    for by in [GroupBy::Pod, GroupBy::Namespace, GroupBy::Node] {
        let raw = m.statement_from_raw(&q(by.clone()), &Quiet).await.unwrap();
        let rolled = m.statement(&q(by.clone()), &Quiet).await.unwrap();
        assert_eq!(rolled, raw, "by {by:?}");
    }
    assert_eq!(m.marked(hours).await.unwrap().hours.len(), 3);
    // Rollups made on another basis (here the working set) are not taken by a reader billing
    // memory usage: it reads raw samples.
    let other = Metering {
        memory: MemorySource::Usage,
        ..metering(&influx)
    };
    assert_eq!(m.basis(), "working_set/15s");
    assert!(other.marked(hours).await.unwrap().hours.is_empty());
    influx
        .query(&rollups::delete(Period::Hour, ns(7_200))[0])
        .await
        .unwrap();
    let raw = m
        .statement_from_raw(&q(GroupBy::Pod), &Quiet)
        .await
        .unwrap();
    assert_eq!(m.statement(&q(GroupBy::Pod), &Quiet).await.unwrap(), raw);

    // Whole hours really come from the rollup points: one more core-second in one pod's
    // 01:00 point shows in the statement, and only in that pod's row.
    let hour1 = Window::new(ns(3_600), ns(7_200)).unwrap();
    let stored = m.rollups(Period::Hour, hour1, &[]).await.unwrap();
    assert_eq!(stored, m.raw_chunk(hour1, &[]).await.unwrap());
    let mut tampered = stored[0].clone();
    tampered.usage.quantities.cpu.usage += mcore_ns(1);
    let mut point = String::new();
    rollups::encode(
        &mut point,
        Period::Hour,
        &rollups::Rollup {
            identity: tampered.identity.clone(),
            start: hour1.from,
            usage: tampered.usage.clone(),
        },
    )
    .unwrap();
    influx.write(point).await.unwrap();
    let changed = m.statement(&q(GroupBy::Pod), &Quiet).await.unwrap();
    let key = vec![
        tampered.identity.namespace.clone(),
        tampered.identity.pod.clone(),
    ];
    for (a, b) in changed.rows.iter().zip(&raw.rows) {
        let extra = if a.key == key { mcore_ns(1) } else { 0 };
        assert_eq!(a.quantities.cpu.usage, b.quantities.cpu.usage + extra);
    }

    // Rewriting an hour is idempotent: the same points, the same statement.
    rollup::roll_up(&m, hours, &Quiet).await.unwrap();
    rollup::roll_up(&m, hours, &Quiet).await.unwrap();
    assert_eq!(m.statement(&q(GroupBy::Pod), &Quiet).await.unwrap(), raw);

    // The job starts rewriting 01:00 just after a statement planned to read its rollups: the
    // statement notices the marker change and reads again, rather than missing the hour.
    let rewrite = RewriteUnderReader {
        influx: influx.clone(),
        hour: ns(3_600),
        done: AtomicBool::new(false),
    };
    assert_eq!(m.statement(&q(GroupBy::Pod), &rewrite).await.unwrap(), raw);
    assert!(rewrite.done.load(Ordering::SeqCst));
}

/// Deletes an hour's marker and rollups (the first half of the job's rewrite) when a
/// statement starts reading, once.
struct RewriteUnderReader {
    influx: InfluxClient,
    hour: i64,
    done: AtomicBool,
}

impl Progress for RewriteUnderReader {
    fn step(&self, done: u64, _total: u64) {
        if done == 0 && !self.done.swap(true, Ordering::SeqCst) {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    for q in rollups::delete(Period::Hour, self.hour) {
                        self.influx.query(&q).await.unwrap();
                    }
                })
            });
        }
    }
}

#[tokio::test]
async fn a_day_rolled_up_from_its_hours_gives_the_statement_raw_samples_give() {
    let influx = fresh_influx().await;
    // One node, a day at 60 s (a coarser scrape keeps the test quick; the rule is the same).
    let model = sim_model(1, 6);
    let end = t0() + chrono::Duration::days(1) + chrono::Duration::hours(1);
    load_simulated(
        &influx,
        &model,
        t0() - chrono::Duration::seconds(60),
        end,
        60,
    )
    .await;
    let m = Metering {
        scrape: ScrapeConfig::new(60 * S),
        ..metering(&influx)
    };
    let report = rollup::roll_up(&m, Window::new(ns(0), ns(25 * 3_600)).unwrap(), &Quiet)
        .await
        .unwrap();
    assert_eq!((report.hours, report.days), (25, 1));
    let marked = m
        .marked(Window::new(ns(0), ns(86_400)).unwrap())
        .await
        .unwrap();
    assert_eq!(marked.days.into_iter().collect::<Vec<_>>(), vec![ns(0)]);
    // The day from its daily rollup, the next hour from its hourly one, a raw edge.
    let q = StatementQuery {
        window: Window::new(ns(0), ns(86_400 + 3_600 + 600)).unwrap(),
        by: GroupBy::Workload,
        modes: Modes::default(),
        scope: Scope::Only(vec!["team-a".into(), "kube-system".into()]),
    };
    let raw = m.statement_from_raw(&q, &Quiet).await.unwrap();
    assert!(!raw.rows.is_empty());
    assert_eq!(m.statement(&q, &Quiet).await.unwrap(), raw);
    // By node, capacity too comes from the day's node rollup: the same integers.
    let q = StatementQuery {
        by: GroupBy::Node,
        scope: Scope::All,
        ..q
    };
    let raw = m.statement_from_raw(&q, &Quiet).await.unwrap();
    assert!(raw.totals.capacity.unwrap().cpu.capacity > 0);
    assert_eq!(m.statement(&q, &Quiet).await.unwrap(), raw);
}

#[tokio::test]
async fn a_week_rolled_up_from_its_days_reads_the_same_as_its_days() {
    let influx = fresh_influx().await;
    load(&influx, &pods()).await;
    let m = metering(&influx);
    rollup::roll_up(&m, Window::new(ns(0), ns(3_600)).unwrap(), &Quiet)
        .await
        .unwrap();
    let hour = m
        .rollups(Period::Hour, Period::Hour.window(ns(0)), &[])
        .await
        .unwrap();
    // Days of the week from Monday 2026-10-05, each pod's day 24 × its real hour, written as
    // the job writes days; Sunday is left out at first.
    let monday = ns(4 * 86_400);
    let write_day = |d: i64| {
        let mut buf = String::new();
        let day = monday + d * rollups::NS_PER_DAY;
        for p in &hour {
            let mut usage = p.usage.clone();
            for _ in 1..24 {
                usage.quantities += p.usage.quantities;
            }
            usage.observed = Default::default();
            usage.observed.insert(day, day + rollups::NS_PER_DAY);
            let r = rollups::Rollup {
                identity: p.identity.clone(),
                start: day,
                usage,
            };
            rollups::encode(&mut buf, Period::Day, &r).unwrap();
        }
        rollups::encode_marker(&mut buf, Period::Day, day, hour.len(), &m.basis(), 0).unwrap();
        buf
    };
    for d in 0..6 {
        influx.write(write_day(d)).await.unwrap();
    }
    assert!(!rollup::roll_up_from_parts(&m, Period::Week, monday)
        .await
        .unwrap());
    influx.write(write_day(6)).await.unwrap();
    let week = StatementQuery {
        window: Period::Week.window(monday),
        by: GroupBy::Pod,
        modes: Modes::default(),
        scope: Scope::All,
    };
    let from_days = m.statement(&week, &Quiet).await.unwrap();
    assert!(rollup::roll_up_from_parts(&m, Period::Week, monday)
        .await
        .unwrap());
    assert_eq!(m.marked(week.window).await.unwrap().weeks.len(), 1);
    let from_week = m.statement(&week, &Quiet).await.unwrap();
    assert_eq!(from_week, from_days);
    // 7 days × 24 hours of web-0's 718 core-seconds an hour.
    assert_eq!(
        row(&from_week, &["shop", "web-0"]).quantities.cpu.usage,
        mcore_ns(718 * 24 * 7)
    );
}
