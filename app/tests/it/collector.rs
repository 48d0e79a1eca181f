//! The collector against the simulated cluster, writing to a real influxd. Expected values
//! come from the simulator's known inputs (its model), not from the collector.

use crate::helpers::{
    fresh_influx, select, start_collector, start_collector_with, start_simulator,
    start_simulator_with, temp_dir,
};
use chrono::{DateTime, Utc};
use kubemeter::collector::KubeletDirect;
use kubemeter::simulator::model::{Model, SimPod};
use kubemeter::simulator::NodeMode;
use kubemeter::simulator::{model::SimConfig, SimSettings};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

fn time_of(row: &serde_json::Map<String, serde_json::Value>) -> DateTime<Utc> {
    row["time"].as_str().unwrap().parse().unwrap()
}

fn s(row: &serde_json::Map<String, serde_json::Value>, key: &str) -> String {
    row.get(key)
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string()
}

/// Pods whose containers ran unchanged (no restart, no new pod) between `t1` and `t2`: the
/// only ones a rate can be computed for.
fn steady_pods(model: &Model, t1: DateTime<Utc>, t2: DateTime<Utc>) -> Vec<SimPod> {
    let before: BTreeMap<String, SimPod> = model
        .pods_at(t1)
        .into_iter()
        .map(|p| (p.uid.clone(), p))
        .collect();
    model
        .pods_at(t2)
        .into_iter()
        .filter(|p| {
            before.get(&p.uid).is_some_and(|b| {
                b.containers
                    .iter()
                    .zip(&p.containers)
                    .all(|(x, y)| x.start == y.start)
            })
        })
        .collect()
}

#[tokio::test]
async fn a_simulated_cluster_lands_in_influxdb_with_the_simulators_values() {
    let influx = fresh_influx().await;
    let (url, model) = start_simulator(3, 12, vec![]);
    let mut run = start_collector(&url, &influx, Duration::from_secs(5)).await;
    run.collector.round().await;
    // Kubelet sample times are whole seconds: the second round must be a later second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = run.collector.round().await;
    assert!(second.failed_nodes.is_empty());
    run.finish().await;

    let times: BTreeSet<DateTime<Utc>> = select(
        &influx,
        "SELECT value FROM \"cpu/usage\" WHERE \"type\" = 'pod_container'",
    )
    .await
    .iter()
    .map(time_of)
    .collect();
    let [t1, t2] = times.into_iter().collect::<Vec<_>>()[..] else {
        panic!("expected the samples of two rounds");
    };
    let steady = steady_pods(&model, t1, t2);
    assert!(steady.len() > 20, "{} steady pods", steady.len());

    // 1. Every container's CPU rate is exactly the millicores the simulator burns.
    let rates = select(&influx, "SELECT value, pod_name, container_name FROM \"cpu/usage_rate\" WHERE \"type\" = 'pod_container'").await;
    let got: BTreeMap<(String, String), i64> = rates
        .iter()
        .map(|r| {
            (
                (s(r, "pod_name"), s(r, "container_name")),
                r["value"].as_i64().unwrap(),
            )
        })
        .collect();
    let want: BTreeMap<(String, String), i64> = steady
        .iter()
        .flat_map(|p| {
            p.containers
                .iter()
                .map(move |c| ((p.name.clone(), c.name.clone()), c.millicores as i64))
        })
        .collect();
    assert_eq!(
        rates.len(),
        want.len(),
        "one rate per steady container, at the second sample only"
    );
    assert_eq!(got, want);

    // 2. Owners are resolved to the workload the simulator created each pod for.
    let owners = select(
        &influx,
        &format!("SELECT last(value) FROM \"memory/working_set\" WHERE \"type\" = 'pod' AND time = '{}' GROUP BY pod_name, workload_kind, workload_name, label_team", t2.to_rfc3339()),
    )
    .await;
    let at_t2 = model.pods_at(t2);
    assert_eq!(owners.len(), at_t2.len());
    for pod in &at_t2 {
        let row = owners
            .iter()
            .find(|r| s(r, "pod_name") == pod.name)
            .unwrap_or_else(|| panic!("{} missing", pod.name));
        assert_eq!(
            (s(row, "workload_kind"), s(row, "workload_name")),
            pod.workload.clone(),
            "{}",
            pod.name
        );
        assert_eq!(s(row, "label_team"), pod.team);
        let working_set: u64 = pod.containers.iter().map(|c| c.working_set).sum();
        assert_eq!(row["last"].as_u64().unwrap(), working_set, "{}", pod.name);
    }

    // 3. Network: bytes since the pod started at its constant rate; none for host-network pods.
    let rx = select(
        &influx,
        &format!(
            "SELECT value, pod_name FROM \"network/rx\" WHERE \"type\" = 'pod' AND time = '{}'",
            t2.to_rfc3339()
        ),
    )
    .await;
    for pod in &at_t2 {
        let row = rx.iter().find(|r| s(r, "pod_name") == pod.name);
        if pod.host_network {
            assert!(
                row.is_none(),
                "{} is host-network: its traffic is the node's",
                pod.name
            );
        } else {
            let expected = pod.rx_rate * (t2 - pod.start).num_seconds() as u64;
            assert_eq!(
                row.unwrap()["value"].as_u64().unwrap(),
                expected,
                "{}",
                pod.name
            );
        }
    }

    // 4. Namespace sums add up the steady pods' CPU (pods without a rate are not guessed).
    let ns_rows = select(
        &influx,
        "SELECT last(value) FROM \"cpu/usage_rate\" WHERE \"type\" = 'ns' GROUP BY namespace_name",
    )
    .await;
    let mut want_ns: BTreeMap<String, i64> = BTreeMap::new();
    for p in &steady {
        *want_ns.entry(p.namespace.clone()).or_default() += p
            .containers
            .iter()
            .map(|c| c.millicores as i64)
            .sum::<i64>();
    }
    let got_ns: BTreeMap<String, i64> = ns_rows
        .iter()
        .map(|r| (s(r, "namespace_name"), r["last"].as_i64().unwrap()))
        .filter(|(_, v)| *v > 0)
        .collect();
    assert_eq!(got_ns, want_ns);

    // 5. GPU pods: one nvidia.com/gpu allocated each.
    let gpus = select(&influx, &format!("SELECT value, pod_name FROM \"nvidia.com/gpu/limit\" WHERE \"type\" = 'pod' AND time = '{}'", t2.to_rfc3339())).await;
    let gpu_pods: BTreeSet<String> = at_t2
        .iter()
        .filter(|p| p.containers.iter().any(|c| c.gpus > 0))
        .map(|p| p.name.clone())
        .collect();
    assert!(!gpu_pods.is_empty());
    assert_eq!(
        gpus.iter()
            .map(|r| s(r, "pod_name"))
            .collect::<BTreeSet<_>>(),
        gpu_pods
    );
    assert!(gpus.iter().all(|r| r["value"] == 1));
}

#[tokio::test]
async fn a_failing_and_a_slow_node_delay_and_drop_no_other_node() {
    let influx = fresh_influx().await;
    let modes = vec![
        ("node-001".to_string(), NodeMode::Fail),
        (
            "node-002".to_string(),
            NodeMode::Slow(Duration::from_secs(5)),
        ),
    ];
    let (url, model) = start_simulator(3, 6, modes);
    let mut run = start_collector(&url, &influx, Duration::from_millis(700)).await;
    let started = Instant::now();
    let report = run.collector.round().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the round waited {took:?} for a slow node"
    );
    let mut failed = report.failed_nodes.clone();
    failed.sort();
    assert_eq!(failed, ["node-001", "node-002"]);
    assert_eq!(run.metrics.scrape_errors("node-001"), 1);
    assert_eq!(run.metrics.scrape_errors("node-002"), 1);
    assert_eq!(run.metrics.scrape_errors("node-000"), 0);
    let metrics = run.metrics.render();
    assert!(
        metrics.contains("kubemeter_scrape_errors_total{node=\"node-001\"} 1"),
        "{metrics}"
    );
    run.finish().await;

    let rows = select(&influx, "SELECT last(value) FROM \"memory/usage\" WHERE \"type\" = 'pod' GROUP BY nodename, pod_name").await;
    let written: BTreeSet<String> = rows.iter().map(|r| s(r, "pod_name")).collect();
    let on_node0: BTreeSet<String> = model
        .node_pods(0, Utc::now())
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(written, on_node0);
    assert!(rows.iter().all(|r| s(r, "nodename") == "node-000"));
}

fn kubelets(token: &str) -> SimSettings {
    SimSettings {
        config: SimConfig {
            nodes: 3,
            // Slot 9 is the first GPU job.
            pods_per_node: 10,
            seed: 9,
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        node_modes: vec![],
        kubelet_port: Some(0),
        kubelet_token: Some(token.into()),
    }
}

fn direct(port: u16, token: &str) -> KubeletDirect {
    let token_file = temp_dir("token").join("token");
    // A trailing newline, as mounted service-account tokens have.
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    KubeletDirect {
        scheme: "http".into(),
        port,
        token_file: Some(token_file),
        ca_file: None,
        insecure_tls: false,
    }
}

#[tokio::test]
async fn kubelets_can_be_read_directly_with_the_service_account_token() {
    let influx = fresh_influx().await;
    let (url, model, port) = start_simulator_with(kubelets("sa-token"));
    let kubelet = direct(port.unwrap(), "sa-token");
    let mut run =
        start_collector_with(&url, &influx, Duration::from_secs(5), Some(kubelet), None).await;
    let report = run.collector.round().await;
    assert!(report.failed_nodes.is_empty(), "{report:?}");
    run.finish().await;
    let rows = select(&influx, "SELECT last(value) FROM \"memory/usage\" WHERE \"type\" = 'pod' GROUP BY nodename, pod_name").await;
    let sampled = time_of(&rows[0]);
    let expected: BTreeSet<(String, String)> = (0..3)
        .flat_map(|n| model.node_pods(n, sampled))
        .map(|p| (p.node, p.name))
        .collect();
    let got: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (s(r, "nodename"), s(r, "pod_name")))
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_wrong_kubelet_token_fails_every_node_with_a_count() {
    let influx = fresh_influx().await;
    let (url, _, port) = start_simulator_with(kubelets("right"));
    let kubelet = direct(port.unwrap(), "wrong");
    let mut run =
        start_collector_with(&url, &influx, Duration::from_secs(5), Some(kubelet), None).await;
    let report = run.collector.round().await;
    assert_eq!(report.failed_nodes.len(), 3);
    assert_eq!(run.metrics.scrape_errors("node-000"), 1);
    run.finish().await;
}

#[tokio::test]
async fn gpu_utilisation_and_memory_come_from_the_dcgm_exporter() {
    use kubemeter::simulator::model::{DCGM_FB_USED_MIB, DCGM_UTIL_PERCENT};
    let influx = fresh_influx().await;
    let (url, model, port) = start_simulator_with(kubelets("t"));
    let dcgm = format!("http://{{address}}:{}/metrics", port.unwrap());
    let mut run =
        start_collector_with(&url, &influx, Duration::from_secs(5), None, Some(dcgm)).await;
    run.collector.round().await;
    run.finish().await;
    let gpu_pods: BTreeSet<String> = (0..3)
        .flat_map(|n| model.node_pods(n, Utc::now()))
        .filter(|p| p.containers.iter().any(|c| c.gpus > 0))
        .map(|p| p.name)
        .collect();
    assert!(!gpu_pods.is_empty());
    let duty = select(
        &influx,
        "SELECT value, pod_name, accelerator_id FROM \"accelerator/duty_cycle\"",
    )
    .await;
    assert_eq!(
        duty.iter()
            .map(|r| s(r, "pod_name"))
            .collect::<BTreeSet<_>>(),
        gpu_pods
    );
    // The exporter's numbers, not the kubelet's (which says 80 % and 4 GiB).
    assert!(
        duty.iter().all(|r| r["value"] == DCGM_UTIL_PERCENT),
        "{duty:?}"
    );
    assert!(duty
        .iter()
        .all(|r| s(r, "accelerator_id").starts_with("GPU-node-")));
    let usage = select(
        &influx,
        "SELECT value, pod_name FROM \"gpu/usage\" WHERE \"type\" = 'pod'",
    )
    .await;
    assert_eq!(usage.len(), gpu_pods.len());
    assert!(
        usage.iter().all(|r| r["value"] == DCGM_FB_USED_MIB),
        "{usage:?}"
    );
}
