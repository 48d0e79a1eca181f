//! The collector asks the Kubernetes API for nothing outside `collector::rbac` (what the
//! ClusterRoles grant), and for everything in it: every request it sends to the simulated
//! cluster during a scrape round is recorded and mapped to the permission it needs.

use crate::helpers::{fresh_influx, start_collector_with};
use kubemeter::collector::rbac::{access_of_get, needed};
use kubemeter::collector::KubeletDirect;
use kubemeter::simulator::model::SimConfig;
use kubemeter::simulator::{SimSettings, Simulator};
use std::collections::BTreeSet;
use std::time::Duration;

type Perm = (String, String, String);

async fn permissions_used(kubelet_direct: bool) -> BTreeSet<Perm> {
    let sim = Simulator::build(SimSettings {
        config: SimConfig {
            nodes: 2,
            pods_per_node: 6,
            seed: 3,
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        node_modes: vec![],
        kubelet_port: kubelet_direct.then_some(0),
        kubelet_token: None,
    })
    .unwrap();
    let url = format!("http://127.0.0.1:{}", sim.port());
    let log = sim.request_log();
    log.start();
    let kubelet = sim.kubelet_port().map(|port| KubeletDirect {
        scheme: "http".into(),
        port,
        token_file: None,
        ca_file: None,
        insecure_tls: false,
    });
    tokio::spawn(sim.run_until_stopped());
    let influx = fresh_influx().await;
    let mut run = start_collector_with(&url, &influx, Duration::from_secs(5), kubelet, None).await;
    let report = run.collector.round().await;
    assert!(report.failed_nodes.is_empty(), "{report:?}");
    // The watches follow their first lists on their own: give them a moment to be opened.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut used = used_so_far(&log.requests());
    while !used.is_superset(&table(kubelet_direct)) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        used = used_so_far(&log.requests());
    }
    run.finish().await;
    used
}

fn used_so_far(requests: &[String]) -> BTreeSet<Perm> {
    requests
        .iter()
        .map(|r| {
            let (method, uri) = r.split_once(' ').unwrap();
            assert_eq!(method, "GET", "the collector only reads: {r}");
            access_of_get(uri).unwrap_or_else(|| panic!("{r} needs no permission we know of"))
        })
        .collect()
}

fn table(kubelet_direct: bool) -> BTreeSet<Perm> {
    needed(kubelet_direct)
        .into_iter()
        .map(|a| (a.group.into(), a.resource.into(), a.verb.into()))
        .collect()
}

#[tokio::test]
async fn the_collector_reading_kubelets_directly_uses_exactly_the_rbac_table() {
    assert_eq!(permissions_used(true).await, table(true));
}

#[tokio::test]
async fn the_collector_reading_through_the_api_server_uses_exactly_the_rbac_table() {
    assert_eq!(permissions_used(false).await, table(false));
}
