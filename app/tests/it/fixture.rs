//! Heapster-shaped data with values chosen by hand. The expected answers in the tests were
//! worked out on paper from this table, not by running the code.
//!
//! Samples are at 00:00, 00:01 and 00:02 on 2017-12-01 (UTC). Every series also has a poison
//! sample of 100000 one minute before the window and exactly at its end (00:03), which a
//! correct half-open window `[00:00, 00:03)` never reads.
//!
//! cpu/usage_rate (millicores):
//!
//! | type          | namespace   | pod                     | container | node    | values        |
//! |---------------|-------------|-------------------------|-----------|---------|---------------|
//! | pod_container | default     | web-1                   | app       | node-01 | 100, 110, 120 |
//! | pod_container | default     | web-1                   | sidecar   | node-01 | 10, 10, 10    |
//! | pod           | default     | web-1                   |           | node-01 | 110, 120, 130 |
//! | pod_container | default     | web-2                   | app       | node-02 | 200, 200, 200 |
//! | pod           | default     | web-2                   |           | node-02 | 200, 200, 200 |
//! | pod_container | cluster-3   | nightly-28000000-x7k2p  | main      | node-01 | 50, 60, 70    |
//! | pod           | cluster-3   | nightly-28000000-x7k2p  |           | node-01 | 50, 60, 70    |
//! | pod_container | kube-system | dns-1                   | dns       | node-02 | 5, 5, 5       |
//! | pod           | kube-system | dns-1                   |           | node-02 | 5, 5, 5       |
//! | ns            | default     |                         |           |         | 310, 320, 330 |
//! | ns            | cluster-3   |                         |           |         | 50, 60, 70    |
//! | ns            | kube-system |                         |           |         | 5, 5, 5       |
//! | node          |             |                         |           | node-01 | 160, 180, 200 |
//! | node          |             |                         |           | node-02 | 205, 205, 205 |
//! | cluster       |             |                         |           |         | 365, 385, 405 |
//!
//! web-1 and web-2 belong to Deployment `web` (label team=payments); the nightly pod to
//! CronJob `nightly` (team=research); dns-1 to DaemonSet `dns`.
//!
//! uptime (milliseconds, containers only): web-1/app 1000, 61000, 121000;
//! web-1/sidecar 500, 60500, 120500.

const T0: i64 = 1_512_086_400; // 2017-12-01T00:00:00Z

const WEB: &str = "namespace_name=default,owner_kind=ReplicaSet,owner_name=web-5d8f9,workload_kind=Deployment,workload_name=web,label_team=payments";
const NIGHTLY: &str = "namespace_name=cluster-3,pod_name=nightly-28000000-x7k2p,nodename=node-01,owner_kind=Job,owner_name=nightly-28000000,workload_kind=CronJob,workload_name=nightly,label_team=research";
const DNS: &str = "namespace_name=kube-system,pod_name=dns-1,nodename=node-02,owner_kind=DaemonSet,owner_name=dns,workload_kind=DaemonSet,workload_name=dns";

fn series() -> Vec<(&'static str, String, [i64; 3])> {
    let cpu = "cpu/usage_rate";
    let web1 = format!("{WEB},pod_name=web-1,nodename=node-01");
    let web2 = format!("{WEB},pod_name=web-2,nodename=node-02");
    vec![
        (
            cpu,
            format!("type=pod_container,{web1},container_name=app"),
            [100, 110, 120],
        ),
        (
            cpu,
            format!("type=pod_container,{web1},container_name=sidecar"),
            [10, 10, 10],
        ),
        (cpu, format!("type=pod,{web1}"), [110, 120, 130]),
        (
            cpu,
            format!("type=pod_container,{web2},container_name=app"),
            [200, 200, 200],
        ),
        (cpu, format!("type=pod,{web2}"), [200, 200, 200]),
        (
            cpu,
            format!("type=pod_container,{NIGHTLY},container_name=main"),
            [50, 60, 70],
        ),
        (cpu, format!("type=pod,{NIGHTLY}"), [50, 60, 70]),
        (
            cpu,
            format!("type=pod_container,{DNS},container_name=dns"),
            [5, 5, 5],
        ),
        (cpu, format!("type=pod,{DNS}"), [5, 5, 5]),
        (
            cpu,
            "type=ns,namespace_name=default".into(),
            [310, 320, 330],
        ),
        (cpu, "type=ns,namespace_name=cluster-3".into(), [50, 60, 70]),
        (cpu, "type=ns,namespace_name=kube-system".into(), [5, 5, 5]),
        (cpu, "type=node,nodename=node-01".into(), [160, 180, 200]),
        (cpu, "type=node,nodename=node-02".into(), [205, 205, 205]),
        (cpu, "type=cluster".into(), [365, 385, 405]),
        (
            "uptime",
            format!("type=pod_container,{web1},container_name=app"),
            [1000, 61000, 121000],
        ),
        (
            "uptime",
            format!("type=pod_container,{web1},container_name=sidecar"),
            [500, 60500, 120500],
        ),
    ]
}

/// The fixture as line protocol, poison samples included.
pub fn lines() -> String {
    let mut out = String::new();
    for (measurement, tags, values) in series() {
        let samples = [
            (-60, 100_000),
            (0, values[0]),
            (60, values[1]),
            (120, values[2]),
            (180, 100_000),
        ];
        for (offset, v) in samples {
            let ns = (T0 + offset) * 1_000_000_000;
            out.push_str(&format!(
                "{measurement},cluster_name=default,{tags} value={v}i {ns}\n"
            ));
        }
    }
    out
}
