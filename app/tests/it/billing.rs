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
use kubemeter::billing::{GroupBy, Line, Modes, Quantities, Statement, Window};
use kubemeter::collector::encode_interval;
use kubemeter::collector::owners::{Owner, OwnerRef};
use kubemeter::collector::points::{
    encode_summary, Cluster, ContainerSpec, NodeInfo, PodInfo, Totals,
};
use kubemeter::collector::rates::Rates;
use kubemeter::collector::summary::Summary;
use kubemeter::influx::InfluxClient;
use kubemeter::jobs::rollup;
use kubemeter::metering::markers::{self, Mark};
use kubemeter::metering::period::{Period, NS_PER_DAY};
use kubemeter::metering::rows::{self, PeriodRows, UsageRow, JOB_WRITER};
use kubemeter::metering::{MemorySource, Metering, Progress, Quiet, StatementQuery};
use kubemeter::simulator::model::{Model, SimConfig, SimPod, SlotKind};
use kubemeter::users::Scope;
use serde_json::{json, Value};

use crate::helpers::{fresh_influx, meter};

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
/// encoder, into `influx`, with the collector's interval records (as a round writes them).
async fn load(influx: &InfluxClient, pods: &[TestPod]) {
    let rounds = (-15..3_600).step_by(15).map(|t| (t, Some(15)));
    load_rounds(influx, pods, &["n1", "n2", "n3", "n4"], rounds).await;
}

/// Scrape rounds of `nodes` at `rounds` (seconds from t0, each with the interval the collector
/// records; `None`: written by something that records none), through the collector's encoder.
async fn load_rounds(
    influx: &InfluxClient,
    pods: &[TestPod],
    nodes: &[&str],
    rounds: impl Iterator<Item = (i64, Option<u64>)>,
) {
    let mut rates = Rates::default();
    let mut lines = String::new();
    for (t, interval_s) in rounds {
        for &node in nodes {
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
            if let Some(s) = interval_s {
                let interval = std::time::Duration::from_secs(s);
                encode_interval(&summary, "test", interval, &mut lines);
            }
        }
    }
    influx.write(lines).await.expect("the points are written");
    // Metered as the collector would have metered it while scraping.
    meter(&metering(influx), ns(-15), ns(3_600)).await;
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

    // Its GPU, as the kubelet reports it: 65 % busy, 6 of 16 GiB used, at every sample: 65 %
    // × 3 600 s, 6 GiB × 3 600 s of 16 GiB × 3 600 s. Efficiency against 2 GPUs allocated:
    // 65 / (100 × 2) = 0.325 busy; memory 6 / 16 = 0.375. Shown, not billed.
    let gpu = &train.quantities;
    assert_eq!(gpu.gpu_util, 65 * 3_600 * S as u128);
    assert_eq!(gpu.gpu_memory_used, byte_ns(6 * GIB as u128 * 3_600));
    assert_eq!(gpu.gpu_memory_total, byte_ns(16 * GIB as u128 * 3_600));
    let json: Value = serde_json::from_str(&kubemeter::billing::to_json(&s)).unwrap();
    let train_json = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pod"] == "train-0")
        .unwrap();
    assert_eq!(train_json["gpu_utilization"], 0.325);
    assert_eq!(train_json["gpu_memory_utilization"], 0.375);
    assert_eq!(train_json["gpu_busy_hours"], 0.65);
    // A pod without GPUs has no efficiency (not 0).
    assert_eq!(json["rows"][0]["gpu_utilization"], Value::Null);

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

/// Every node's summary every `step_s` seconds in `[from, to]`, through the collector's
/// encoder and with its interval records, into `influx` (back-dated: the model is a pure
/// function of time).
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
            let interval = std::time::Duration::from_secs(step_s as u64);
            encode_interval(&summary, "sim", interval, &mut lines);
        }
        if lines.len() > 8 << 20 {
            influx.write(std::mem::take(&mut lines)).await.unwrap();
        }
        t += chrono::Duration::seconds(step_s);
    }
    influx.write(lines).await.unwrap();
    let _ = step_s;
    let ns = |t: DateTime<Utc>| t.timestamp_nanos_opt().unwrap();
    meter(&metering(influx), ns(from), ns(to) + 1).await;
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
async fn metered_rows_give_the_statement_raw_samples_give_for_windows_cut_anywhere() {
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
    // Metering again (as the job does after a restart) changes nothing: 3 hours of minutes,
    // their 18 ten-minute periods and 3 hours, all from raw samples.
    let hours = Window::new(ns(0), ns(3 * 3_600)).unwrap();
    let report = rollup::roll_up(&m, "sim", hours, &Quiet).await.unwrap();
    assert_eq!(report.minutes, 180);
    assert_eq!(
        (report.made(Period::TenMinutes), report.made(Period::Hour)),
        (18, 3)
    );

    // 00:20:07.5 to 02:50:33: part of a minute, minutes, ten minutes, an hour, ten minutes,
    // minutes and part of a minute again, each from its rows.
    let q = |by| StatementQuery {
        window: Window::new(ns(1_207) + S / 2, ns(10_233)).unwrap(),
        by,
        modes: Modes::default(),
        scope: Scope::All,
    };
    let mut raw_by_pod = None;
    for by in [
        GroupBy::Pod,
        GroupBy::Namespace,
        GroupBy::Node,
        GroupBy::Workload,
    ] {
        let raw = m.statement_from_raw(&q(by.clone()), &Quiet).await.unwrap();
        assert!(!raw.rows.is_empty());
        let metered = m.statement(&q(by.clone()), &Quiet).await.unwrap();
        assert_eq!(metered, raw, "by {by:?}");
        assert_eq!(metered.complete_to, None);
        if by == GroupBy::Pod {
            raw_by_pod = Some(raw);
        }
    }
    let raw = raw_by_pod.unwrap();
    // Rows made for another memory gauge are not taken by a reader billing memory usage:
    // nothing is metered for it, and the statement says so.
    let other = Metering {
        memory: MemorySource::Usage,
        ..metering(&influx)
    };
    assert_eq!(m.basis(), "working_set");
    let none = other.statement(&q(GroupBy::Pod), &Quiet).await.unwrap();
    assert!(none.rows.is_empty());
    assert_eq!(none.complete_to, Some(q(GroupBy::Pod).window.from));

    // Without the 01:00 hour's marker, the hour is read from its ten-minute rows: the same.
    influx
        .query(&markers::delete(Period::Hour, ns(3_600), "sim"))
        .await
        .unwrap();
    assert_eq!(m.statement(&q(GroupBy::Pod), &Quiet).await.unwrap(), raw);

    // Whole periods really come from their rows: one more core-second in one pod's 01:00
    // ten-minute row shows in the statement, and only in that pod's row.
    let ten = Period::TenMinutes.window(ns(3_600));
    let answer = influx
        .query_each_ns(&[rows::select(
            Period::TenMinutes,
            ten,
            "sim",
            rows::Kind::Pod,
        )])
        .await
        .unwrap();
    let mut stored: Vec<UsageRow> = rows::decode_usage(Period::TenMinutes, &answer[0])
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    stored[0].usage.quantities.cpu.usage += mcore_ns(1);
    let tampered = stored[0].identity.clone();
    let mut buf = String::new();
    let period = PeriodRows {
        pods: stored,
        ..PeriodRows::default()
    };
    rows::encode(
        &mut buf,
        Period::TenMinutes,
        ten.from,
        "sim",
        JOB_WRITER,
        &period,
    )
    .unwrap();
    influx.write(buf).await.unwrap();
    let changed = m.statement(&q(GroupBy::Pod), &Quiet).await.unwrap();
    let key = vec![tampered.namespace.clone(), tampered.pod.clone()];
    for (a, b) in changed.rows.iter().zip(&raw.rows) {
        let extra = if a.key == key { mcore_ns(1) } else { 0 };
        assert_eq!(a.quantities.cpu.usage, b.quantities.cpu.usage + extra);
    }

    // Metering again is idempotent: the same rows, the same statement.
    rollup::roll_up(&m, "sim", hours, &Quiet).await.unwrap();
    rollup::roll_up(&m, "sim", hours, &Quiet).await.unwrap();
    assert_eq!(m.statement(&q(GroupBy::Pod), &Quiet).await.unwrap(), raw);

    // The job starts rewriting 01:00 just after a statement planned to read its rows: the
    // statement notices the marker change and reads again, rather than missing the hour.
    let rewrite = RewriteUnderReader {
        influx: influx.clone(),
        hour: ns(3_600),
        done: AtomicBool::new(false),
    };
    assert_eq!(m.statement(&q(GroupBy::Pod), &rewrite).await.unwrap(), raw);
    assert!(rewrite.done.load(Ordering::SeqCst));
}

/// Deletes an hour's marker and rows (the first half of the job's rewrite) when a statement
/// starts reading, once.
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
                    let q = [
                        markers::delete(Period::Hour, self.hour, "sim"),
                        rows::delete(Period::Hour, self.hour, "sim"),
                    ];
                    self.influx.query_each_ns(&q).await.unwrap();
                })
            });
        }
    }
}

#[tokio::test]
async fn a_day_made_from_its_hours_gives_the_statement_raw_samples_give() {
    let influx = fresh_influx().await;
    // One node, a day at 60 s (a coarser scrape keeps the test quick; the rule is the same).
    // Loading meters it, as the collector and the job would.
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
    let m = metering(&influx);
    // The day from its day row, the next hour from its hour row, part of the next minute.
    let q = StatementQuery {
        window: Window::new(ns(0), ns(86_400 + 3_600 + 30)).unwrap(),
        by: GroupBy::Workload,
        modes: Modes::default(),
        scope: Scope::Only(vec!["team-a".into(), "kube-system".into()]),
    };
    let raw = m.statement_from_raw(&q, &Quiet).await.unwrap();
    assert!(!raw.rows.is_empty());
    assert_eq!(m.statement(&q, &Quiet).await.unwrap(), raw);
    // By node, capacity too comes from the day's node row: the same integers.
    let q = StatementQuery {
        by: GroupBy::Node,
        scope: Scope::All,
        ..q
    };
    let raw = m.statement_from_raw(&q, &Quiet).await.unwrap();
    assert!(raw.totals.capacity.unwrap().cpu.capacity > 0);
    assert_eq!(m.statement(&q, &Quiet).await.unwrap(), raw);
    // The day was made from hours: a report of a second pass makes nothing new.
    let again = rollup::roll_up(&m, "sim", Window::new(ns(0), ns(86_400)).unwrap(), &Quiet)
        .await
        .unwrap();
    assert_eq!(again.made(Period::Day), 1, "rewritten from rewritten hours");
}

#[tokio::test]
async fn a_week_is_made_from_its_days_once_all_seven_are_complete() {
    let influx = fresh_influx().await;
    load(&influx, &pods()).await;
    let m = metering(&influx);
    let answer = influx
        .query_each_ns(&[rows::select(
            Period::Hour,
            Period::Hour.window(ns(0)),
            "test",
            rows::Kind::Pod,
        )])
        .await
        .unwrap();
    let hour: Vec<UsageRow> = rows::decode_usage(Period::Hour, &answer[0])
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    assert!(!hour.is_empty());
    // Days of the week from Monday 2026-10-05, each pod's day 24 × its real hour, written as
    // the job writes days; Sunday is left out at first.
    let monday = ns(4 * 86_400);
    let write_day = |d: i64| {
        let day = monday + d * NS_PER_DAY;
        let pods: Vec<UsageRow> = hour
            .iter()
            .map(|p| {
                let mut usage = p.usage.clone();
                for _ in 1..24 {
                    usage.quantities += p.usage.quantities;
                }
                usage.observed = Default::default();
                usage.observed.insert(day, day + NS_PER_DAY);
                UsageRow { usage, ..p.clone() }
            })
            .collect();
        let mut buf = String::new();
        let period = PeriodRows {
            namespaces: rows::namespace_rows(&pods),
            pods,
            nodes: vec![],
        };
        rows::encode(&mut buf, Period::Day, day, "test", JOB_WRITER, &period).unwrap();
        let mark = Mark {
            rows: period.pods.len() as i64,
            shards: 1,
            written: 1,
            provisional: false,
        };
        markers::encode(
            &mut buf,
            Period::Day,
            day,
            "test",
            &m.basis(),
            JOB_WRITER,
            mark,
        )
        .unwrap();
        buf
    };
    for d in 0..6 {
        influx.write(write_day(d)).await.unwrap();
    }
    let week = StatementQuery {
        window: Period::Week.window(monday),
        by: GroupBy::Pod,
        modes: Modes::default(),
        scope: Scope::All,
    };
    let mut report = rollup::RollupReport::default();
    rollup::cascade(&m, "test", week.window, &mut report)
        .await
        .unwrap();
    assert_eq!(report.made(Period::Week), 0, "Sunday is missing");
    let six_days = m.statement(&week, &Quiet).await.unwrap();
    assert_eq!(six_days.complete_to, Some(monday + 6 * NS_PER_DAY));
    influx.write(write_day(6)).await.unwrap();
    let from_days = m.statement(&week, &Quiet).await.unwrap();
    assert_eq!(from_days.complete_to, None);
    rollup::cascade(&m, "test", week.window, &mut report)
        .await
        .unwrap();
    assert_eq!(report.made(Period::Week), 1);
    let from_week = m.statement(&week, &Quiet).await.unwrap();
    assert_eq!(from_week, from_days);
    // 7 days × 24 hours of web-0's 718 core-seconds an hour.
    assert_eq!(
        row(&from_week, &["shop", "web-0"]).quantities.cpu.usage,
        mcore_ns(718 * 24 * 7)
    );
    // By namespace the week reads its namespace rows: the same totals.
    let by_ns = StatementQuery {
        by: GroupBy::Namespace,
        ..week.clone()
    };
    assert_eq!(
        m.statement(&by_ns, &Quiet).await.unwrap().totals,
        from_week.totals
    );
}

/// Rounds of the simulated cluster every `step_s` in `[from, to]` through the collector's
/// encoder and its meter (restarted, as a collector restarting, at `restart`): raw points and
/// metered minutes written as the collector writes them.
async fn scrape_and_meter(
    influx: &InfluxClient,
    model: &Model,
    (from, to, step_s): (DateTime<Utc>, DateTime<Utc>, i64),
    restart: DateTime<Utc>,
) -> usize {
    use kubemeter::collector::meter::Meter;
    let new_meter = || Meter::new("sim", 0, 1, MemorySource::WorkingSet, 3_600 * S);
    let mut meter = new_meter();
    let mut rates = Rates::default();
    let mut t = from;
    let mut restarted = false;
    let mut minutes_lines = 0;
    while t <= to {
        if t >= restart && !restarted {
            // A collector stops (metering what it has) and a new one starts where it stopped.
            let stop = meter.flush(t.timestamp_nanos_opt().unwrap(), true);
            minutes_lines += stop.lines().count();
            influx.write(stop).await.unwrap();
            meter = new_meter();
            meter.resume_after(ns(0) + (restart - t0()).num_minutes() * 60 * S - 60 * S);
            rates = Rates::default();
            restarted = true;
        }
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
        let mut lines = String::new();
        for n in 0..model.config.nodes {
            let summary = model.summary(n, t);
            encode_summary(
                &summary,
                &cluster,
                &mut rates,
                &mut Totals::default(),
                &mut lines,
            );
            // The collector records its interval with each node's round.
            kubemeter::collector::encode_interval(
                &summary,
                "sim",
                std::time::Duration::from_secs(step_s as u64),
                &mut lines,
            );
        }
        meter.feed(&lines);
        let metered = meter.flush(t.timestamp_nanos_opt().unwrap(), false);
        minutes_lines += metered.lines().count();
        lines.push_str(&metered);
        influx.write(lines).await.unwrap();
        t += chrono::Duration::seconds(step_s);
    }
    let last = meter.flush(t.timestamp_nanos_opt().unwrap(), true);
    minutes_lines += last.lines().count();
    influx.write(last).await.unwrap();
    minutes_lines
}

#[tokio::test]
async fn minutes_metered_at_ingest_give_the_statement_raw_samples_give() {
    let influx = fresh_influx().await;
    let model = sim_model(2, 8);
    let end = t0() + chrono::Duration::minutes(40);
    let written = scrape_and_meter(
        &influx,
        &model,
        (t0() - chrono::Duration::seconds(15), end, 15),
        t0() + chrono::Duration::seconds(725),
    )
    .await;
    assert!(written > 0);
    let m = metering(&influx);
    // Everything the collector metered was provisional (it ran for less than the look-back):
    // as written, the minutes give the raw statement anywhere but around the restart, where
    // the new collector lacked the old one's samples. Windows before the restart:
    let q = |from: i64, to: i64, by: GroupBy| StatementQuery {
        window: Window::new(from, to).unwrap(),
        by,
        modes: Modes::default(),
        scope: Scope::All,
    };
    for by in [GroupBy::Pod, GroupBy::Node] {
        let before = q(ns(7) + S / 3, ns(600) + 11, by);
        let raw = m.statement_from_raw(&before, &Quiet).await.unwrap();
        assert!(!raw.rows.is_empty());
        assert_eq!(
            m.statement(&before, &Quiet).await.unwrap(),
            raw,
            "{:?}",
            before.by
        );
    }
    // The metering job recomputes the provisional minutes from raw samples and completes the
    // ten-minute periods: then every window gives the raw statement, the restart included.
    let now = ns(40 * 60) + 5 * 60 * S;
    let report = rollup::run_recent(&m, "sim", now, &Quiet).await.unwrap();
    assert!(report.minutes >= 40, "{report:?}");
    assert_eq!(report.made(Period::TenMinutes), 4);
    for by in [GroupBy::Pod, GroupBy::Namespace, GroupBy::Node] {
        let around = q(ns(61) + S / 2, ns(40 * 60) - 3, by);
        let raw = m.statement_from_raw(&around, &Quiet).await.unwrap();
        let metered = m.statement(&around, &Quiet).await.unwrap();
        assert_eq!(metered, raw, "{:?}", around.by);
    }
}

// --- The gap rule in each series' own interval ------------------------------------------

/// One container burning 250 m with a 1 GiB working set, requesting 500 m and 512 MiB,
/// running since a day before t0, seen all along.
fn steady(namespace: &'static str, name: &'static str, node: &'static str) -> TestPod {
    let mut c = Ctr::new("main", 250, GIB, -86_400);
    c.cpu_request = Some(500);
    c.memory_request = Some(512 * MIB as i64);
    TestPod {
        namespace,
        name,
        uid: name,
        node,
        workload: ("Deployment", name),
        team: "a",
        host_network: false,
        rx_per_s: None,
        ephemeral: None,
        containers: vec![c],
        seen: vec![(-3_600, 7_200)],
    }
}

/// Rounds every `step` seconds from `from` through `to`, recording `recorded` seconds.
fn every(from: i64, to: i64, step: i64, recorded: Option<u64>) -> Vec<(i64, Option<u64>)> {
    (from..=to)
        .step_by(step as usize)
        .map(|t| (t, recorded))
        .collect()
}

#[tokio::test]
async fn data_collected_every_15_s_60_s_or_5_min_is_billed_the_same_with_or_without_records() {
    // The same pod (250 m, 1 GiB, requests 500 m and 512 MiB) scraped at 15 s, 60 s and 5 min
    // from one interval before t0, by kubemeter's collector (recording its interval) and by
    // something that records none (Heapster: the interval is the series' spacing; the sample
    // at 0 s has one predecessor, so it is bridged to it).
    // Every one: CPU 250 m × 3 600 s = 900 core-s (counter deltas from the sample before t0
    // to the last, 3 600 s later), request 500 m × 3 600 s; memory 1 GiB × 3 600 s = 1 GiB-hour
    // (3 600 / step samples of step seconds), request 0.5 GiB-hour; fully covered.
    // (With the reader's 15 s as every series' interval, as before, memory at 60 s gave
    // 60 × 15 s = 0.25 GiB-hour and at 5 min 12 × 15 s = 0.05 GiB-hour.)
    let influx = fresh_influx().await;
    let cases: [(&'static str, i64, bool); 6] = [
        ("r15", 15, true),
        ("r60", 60, true),
        ("r300", 300, true),
        ("s15", 15, false),
        ("s60", 60, false),
        ("s300", 300, false),
    ];
    for (name, step, recorded) in cases {
        let pods = [steady("iv", name, name)];
        let rounds = every(-step, 3_600 - step, step, recorded.then_some(step as u64));
        load_rounds(&influx, &pods, &[name], rounds.into_iter()).await;
    }
    let m = metering(&influx);
    meter(&m, ns(-300), ns(3_600)).await;
    let s = statement(&m, ns(0), ns(3_600), GroupBy::Pod, Scope::All).await;
    for (name, ..) in cases {
        let line = row(&s, &["iv", name]);
        let q = &line.quantities;
        assert_eq!(q.cpu.usage, mcore_ns(900), "{name} cpu");
        assert_eq!(q.cpu.request, 500 * byte_ns(3_600), "{name} cpu request");
        assert_eq!(q.memory.usage, BYTE_NS_PER_GIB_HOUR, "{name} memory");
        assert_eq!(
            q.memory.request,
            BYTE_NS_PER_GIB_HOUR / 2,
            "{name} memory request"
        );
        assert_eq!(line.coverage().0, line.coverage().1, "{name} coverage");
        assert_eq!(line.cpu_source.as_str(), "counter");
    }
}

#[tokio::test]
async fn a_collector_whose_interval_changes_mid_hour_is_billed_by_its_records() {
    let influx = fresh_influx().await;
    // `up`: 15 s rounds from −15 s to 1 785 s, then restarted at 60 s: rounds 1 845 s …
    // 3 585 s, of which 2 445 s (one missed: 120 s, bridged) and 3 045 s, 3 105 s (two
    // missed: 180 s from 2 985 s to 3 165 s, more than 2.5 × 60 s) are lost.
    let mut up = every(-15, 1_785, 15, Some(15));
    up.extend(
        every(1_845, 3_585, 60, Some(60))
            .into_iter()
            .filter(|(t, _)| ![2_445, 3_045, 3_105].contains(t)),
    );
    // `up-h`: the same rounds written without records (the spacing stands in).
    let unrecorded: Vec<(i64, Option<u64>)> = up.iter().map(|(t, _)| (*t, None)).collect();
    // `down`: 60 s rounds from −60 s to 1 740 s, then 15 s from 1 755 s to 3 585 s.
    let mut down = every(-60, 1_740, 60, Some(60));
    down.extend(every(1_755, 3_585, 15, Some(15)));
    for (node, rounds) in [("up", up), ("up-h", unrecorded), ("down", down)] {
        let pods = [steady("iv", node, node)];
        load_rounds(&influx, &pods, &[node], rounds.into_iter()).await;
    }
    let m = metering(&influx);
    meter(&m, ns(-60), ns(3_600)).await;
    let s = statement(&m, ns(0), ns(3_600), GroupBy::Pod, Scope::All).await;

    // up, memory: 0 s … 1 785 s: 120 × 15 s = 1 800 s; 1 845 s: 60 s since 1 785 s, within
    // 2.5 × its recorded 60 s: bridged, and so on to 2 985 s (2 505 s bridges 120 s): 1 200 s;
    // 3 165 s after 180 s holds one interval, 60 s, then 7 × 60 s to 3 585 s: 480 s.
    // 1 800 + 1 200 + 480 = 3 480 s (the two missed rounds' 120 s are a gap).
    // CPU: the counter is exact across the gap: 250 m × 3 600 s = 900 core-s, and its
    // request spans it too (500 m × 3 600 s); memory's request only the 3 480 s.
    // (With the reader's 15 s, as before: 1 800 + 27 × 15 = 2 205 s of memory.)
    let q = row(&s, &["iv", "up"]).quantities;
    assert_eq!(q.memory.usage, byte_ns(GIB as u128 * 3_480));
    assert_eq!(q.memory.request, byte_ns(512 * MIB as u128 * 3_480));
    assert_eq!(q.cpu.usage, mcore_ns(900));
    assert_eq!(q.cpu.request, 500 * byte_ns(3_600));
    assert_eq!(row(&s, &["iv", "up"]).observed_ns, 3_600 * S as u128);
    // up-h, without records: 1 845 s is measured against the 15 s spacing it broke (60 s >
    // 37.5 s), so it holds 15 s, not 60 s: 45 s less, 3 435 s. Everything else as above (the
    // previous gap is 60 s from 1 905 s on; 3 165 s after 180 s against 60 s holds 60 s).
    let q = row(&s, &["iv", "up-h"]).quantities;
    assert_eq!(q.memory.usage, byte_ns(GIB as u128 * 3_435));
    assert_eq!(q.cpu.usage, mcore_ns(900));

    // down: 0 s … 1 740 s: 30 × 60 s (the one at 0 s holds (−60 s, 0 s]) = 1 800 s; 1 755 s …
    // 3 585 s: 123 × 15 s = 1 845 s; 3 645 s in all (the window's first sample reaches one of
    // its intervals back). CPU 250 m × 3 645 s = 911.25 core-s, request 500 m × 3 645 s.
    let line = row(&s, &["iv", "down"]);
    assert_eq!(line.quantities.memory.usage, byte_ns(GIB as u128 * 3_645));
    assert_eq!(line.quantities.cpu.usage, mcore_ns(91_125) / 100);
    assert_eq!(line.quantities.cpu.request, 500 * byte_ns(3_645));
    assert_eq!(line.observed_ns, 3_645 * S as u128);
    assert_eq!(line.coverage(), (3_600 * S as u128, 3_600 * S as u128));

    // Read in pieces cut anywhere, the same integers.
    let a = statement(&m, ns(0), ns(1_801), GroupBy::Pod, Scope::All).await;
    let b = statement(&m, ns(1_801), ns(3_600), GroupBy::Pod, Scope::All).await;
    for name in ["up", "up-h", "down"] {
        let parts = row(&a, &["iv", name]).quantities + row(&b, &["iv", name]).quantities;
        assert_eq!(parts, row(&s, &["iv", name]).quantities, "{name}");
    }
}

/// Heapster-era line protocol of one container (`type=pod_container`) at time `t`.
fn heapster_lines(pod: &str, node: &str, t: i64, lines: &mut String) {
    let tags = format!(
        "container_name=main,namespace_name=legacy,nodename={node},pod_id={pod},pod_name={pod}"
    );
    let ts = ns(t);
    for (measurement, kind, value) in [
        ("cpu/usage_rate", "pod_container", 250),
        // Heapster's pod sum: never read for a container's figures (it would count twice).
        ("cpu/usage_rate", "pod", 250),
        ("cpu/request", "pod_container", 500),
        ("memory/working_set", "pod_container", GIB),
    ] {
        lines.push_str(&format!(
            "{measurement},{tags},type={kind} value={value}i {ts}\n"
        ));
    }
}

#[tokio::test]
async fn heapster_data_with_only_the_cpu_rate_is_billed_from_the_rate_and_says_so() {
    let influx = fresh_influx().await;
    // old-0: an old Heapster export, every 5 min from −300 s to 3 300 s, no `cpu/usage`.
    // Each sample from 0 s holds its 300 s (the one at 0 s bridged to −300 s): 12 × 300 s.
    // CPU 250 m × 3 600 s = 900 core-s, request 500 m × 3 600 s; memory 1 GiB-hour.
    let mut lines = String::new();
    for t in (-300..=3_300).step_by(300) {
        heapster_lines("old-0", "old-node", t, &mut lines);
    }
    influx.write(lines).await.unwrap();
    // new-0, in the same namespace: kubemeter's collector at 15 s (the counter).
    let rounds = every(-15, 3_585, 15, Some(15));
    load_rounds(
        &influx,
        &[steady("legacy", "new-0", "n1")],
        &["n1"],
        rounds.into_iter(),
    )
    .await;

    let m = metering(&influx);
    meter(&m, ns(-300), ns(3_600)).await;
    let by_pod = statement(&m, ns(0), ns(3_600), GroupBy::Pod, Scope::All).await;
    let old = row(&by_pod, &["legacy", "old-0"]);
    assert_eq!(old.quantities.cpu.usage, mcore_ns(900));
    assert_eq!(old.quantities.cpu.request, 500 * byte_ns(3_600));
    assert_eq!(old.quantities.memory.usage, BYTE_NS_PER_GIB_HOUR);
    assert_eq!(old.cpu_source.as_str(), "rate");
    let new = row(&by_pod, &["legacy", "new-0"]);
    assert_eq!(new.quantities.cpu.usage, mcore_ns(900));
    assert_eq!(new.cpu_source.as_str(), "counter");

    // By namespace: 1 800 core-s, from both; the CSV and JSON say so.
    let by_ns = statement(&m, ns(0), ns(3_600), GroupBy::Namespace, Scope::All).await;
    let legacy = row(&by_ns, &["legacy"]);
    assert_eq!(legacy.quantities.cpu.usage, mcore_ns(1_800));
    assert_eq!(legacy.cpu_source.as_str(), "counter+rate");
    let csv = kubemeter::billing::to_csv(&by_ns);
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|c| *c == "cpu_source").unwrap();
    let cell = |line: usize| csv.lines().nth(line).unwrap().split(',').nth(col).unwrap();
    assert_eq!((cell(1), cell(2)), ("counter+rate", "counter+rate"));
    let json: Value = serde_json::from_str(&kubemeter::billing::to_json(&by_pod)).unwrap();
    assert_eq!(json["rows"][0]["pod"], "new-0");
    assert_eq!(json["rows"][0]["cpu_source"], "counter");
    assert_eq!(json["rows"][1]["cpu_source"], "rate");
    assert_eq!(json["rows"][1]["cpu_usage_core_hours"], 0.25);
}

#[tokio::test]
async fn the_demos_2017_data_bills_what_influxdbs_integral_gives() {
    use kubemeter::demo::{DemoCluster, Detail};
    // The old app's data as `kubemeter demo` loads it: 24 pods, a sample every 5 minutes for
    // two days from 2017-12-01, Heapster-shaped (no collector records, CPU as rates only).
    let influx = fresh_influx().await;
    let dec1 = Utc.with_ymd_and_hms(2017, 12, 1, 0, 0, 0).unwrap();
    let dec3 = dec1 + chrono::Duration::days(2);
    DemoCluster::new(24)
        .write(&influx, dec1, dec3, 300, Detail::Full)
        .await
        .unwrap();
    let m = Metering {
        memory: MemorySource::Usage,
        ..metering(&influx)
    };
    let (from, to) = window_ns(dec1, dec3);
    // Metered once from its raw samples, as the demo does when it loads them.
    meter(&m, from, to).await;
    let st = statement(&m, from, to, GroupBy::Namespace, Scope::All).await;

    // InfluxDB's integral() of the same pods' series, per namespace, in unit-seconds. It
    // bridges every gap and gives a series' first point nothing (no trapezoid before it).
    // The demo's series have no gap (every 5 min for two days), and without a recorded
    // interval our rule also gives each series' first sample nothing (no predecessor: its
    // interval is unknown) and every later one its 300 s: the same time. The values agree too:
    // memory only changes with the minute modulo 5, which is 0 at every 5-minute sample (so
    // trapezoid and step are equal); the CPU rate's 7-minute saw tooth makes a trapezoid and
    // a step differ by half a sample's change per series, far below 1 %.
    let integral = |measurement: &str| {
        let q = format!(
            "SELECT integral(\"value\", 1s) FROM \"{measurement}\" WHERE \"type\" = \
             'pod_container' AND time >= '2017-12-01T00:00:00Z' AND time < \
             '2017-12-03T00:00:00Z' GROUP BY \"namespace_name\", \"pod_name\", \"container_name\""
        );
        let influx = influx.clone();
        async move {
            let mut by_ns: BTreeMap<String, f64> = BTreeMap::new();
            for s in influx.query(&q).await.unwrap() {
                let v = s.values[0][1].as_f64().unwrap();
                *by_ns.entry(s.tags["namespace_name"].clone()).or_default() += v;
            }
            by_ns
        }
    };
    let memory = integral("memory/usage").await;
    let cpu = integral("cpu/usage_rate").await;
    assert_eq!(memory.len(), 5);
    for (namespace, want) in &memory {
        let line = row(&st, &[namespace.as_str()]);
        let got = line.quantities.memory.usage as f64 / S as f64;
        let gib_h = |byte_s: f64| byte_s / (GIB as f64 * 3_600.0);
        println!(
            "{namespace}: memory {:.3} GiB-hours billed, integral() {:.3}",
            gib_h(got),
            gib_h(*want)
        );
        assert!(
            (got - want).abs() <= want / 100.0,
            "{namespace}: {got} vs {want}"
        );
        // Memory exactly, in fact: each series loses the same first point.
        assert_eq!(got, want.round(), "{namespace}");
        let got = line.quantities.cpu.usage as f64 / S as f64;
        let want = cpu[namespace];
        println!(
            "{namespace}: CPU {:.3} core-hours billed, integral() {:.3}",
            got / 3.6e6,
            want / 3.6e6
        );
        assert!(
            (got - want).abs() <= want / 100.0,
            "{namespace}: {got} vs {want}"
        );
        assert_eq!(line.cpu_source.as_str(), "rate");
    }
}
