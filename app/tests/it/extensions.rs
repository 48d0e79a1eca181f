//! DESIGN.md §6 extensions: `fn`, `step`, `by-workload`, `by-node`, `by-label:<key>`.

use crate::helpers::{owned, pairs, spawn_app, window};
use serde_json::Value;

#[tokio::test]
async fn max_min_and_mean_read_pod_samples() {
    let app = spawn_app().await;
    let base = r#""agg":"all-namespace","fn":"#;
    let max = app
        .rows("cpu/usage_rate", &window(&format!("{base}\"max\"")))
        .await;
    assert_eq!(
        pairs(&max, "namespace_name", "max"),
        owned(&[("cluster-3", 70.0), ("default", 200.0)])
    );
    let min = app
        .rows("cpu/usage_rate", &window(&format!("{base}\"min\"")))
        .await;
    assert_eq!(
        pairs(&min, "namespace_name", "min"),
        owned(&[("cluster-3", 50.0), ("default", 110.0)])
    );
    // default: (110 + 120 + 130 + 200 + 200 + 200) / 6
    let mean = app
        .rows("cpu/usage_rate", &window(&format!("{base}\"mean\"")))
        .await;
    assert_eq!(
        pairs(&mean, "namespace_name", "mean"),
        owned(&[("cluster-3", 60.0), ("default", 160.0)])
    );
}

#[tokio::test]
async fn integral_integrates_each_pod_over_time() {
    let app = spawn_app().await;
    let rows = app
        .rows(
            "cpu/usage_rate",
            &window(r#""agg":"pod-by-namespace","fn":"integral""#),
        )
        .await;
    // web-1: (110+120)/2·60 + (120+130)/2·60 = 14400 millicore-seconds; web-2: 200·120.
    assert_eq!(
        pairs(&rows, "pod_name", "integral"),
        owned(&[("web-1", 14_400.0), ("web-2", 24_000.0)])
    );
    assert_eq!(rows[0]["time"], "2017-12-01T00:00:00Z");
}

#[tokio::test]
async fn integral_by_namespace_adds_up_per_pod_integrals() {
    let app = spawn_app().await;
    let rows = app
        .rows(
            "cpu/usage_rate",
            &window(r#""agg":"all-namespace","fn":"integral""#),
        )
        .await;
    // default: 14400 + 24000; cluster-3: (50+60)/2·60 + (60+70)/2·60 = 3300 + 3900.
    assert_eq!(
        pairs(&rows, "namespace_name", "integral"),
        owned(&[("cluster-3", 7_200.0), ("default", 38_400.0)])
    );
}

#[tokio::test]
async fn step_gives_one_row_per_bucket_starting_at_the_begin() {
    let app = spawn_app().await;
    let rows = app
        .rows(
            "cpu/usage_rate",
            &window(r#""agg":"all-namespace","step":"1m""#),
        )
        .await;
    let default: Vec<(&str, f64)> = rows
        .iter()
        .filter(|r| r["namespace_name"] == "default")
        .map(|r| (r["time"].as_str().unwrap(), r["sum"].as_f64().unwrap()))
        .collect();
    assert_eq!(
        default,
        [
            ("2017-12-01T00:00:00Z", 310.0),
            ("2017-12-01T00:01:00Z", 320.0),
            ("2017-12-01T00:02:00Z", 330.0)
        ]
    );
}

#[tokio::test]
async fn by_node_sums_the_pods_on_each_node_without_kube_system() {
    let app = spawn_app().await;
    let rows = app
        .rows("cpu/usage_rate", &window(r#""agg":"by-node""#))
        .await;
    // node-01: web-1 360 + nightly 180; node-02: web-2 600 (dns-1 is kube-system).
    assert_eq!(
        pairs(&rows, "nodename", "sum"),
        owned(&[("node-01", 540.0), ("node-02", 600.0)])
    );
}

#[tokio::test]
async fn by_workload_groups_pods_under_their_top_level_owner() {
    let app = spawn_app().await;
    let rows = app
        .rows("cpu/usage_rate", &window(r#""agg":"by-workload""#))
        .await;
    assert_eq!(
        pairs(&rows, "workload_name", "sum"),
        owned(&[("nightly", 180.0), ("web", 960.0)])
    );
    let nightly = rows
        .iter()
        .find(|r| r["workload_name"] == "nightly")
        .unwrap();
    assert_eq!(nightly["workload_kind"], "CronJob");
    assert_eq!(nightly["namespace_name"], "cluster-3");

    let only = app
        .rows(
            "cpu/usage_rate",
            &window(r#""agg":"by-workload","namespace":"cluster-3""#),
        )
        .await;
    assert_eq!(
        pairs(&only, "workload_name", "sum"),
        owned(&[("nightly", 180.0)])
    );
}

#[tokio::test]
async fn by_label_groups_by_a_label_tag() {
    let app = spawn_app().await;
    let rows = app
        .rows("cpu/usage_rate", &window(r#""agg":"by-label:team""#))
        .await;
    assert_eq!(
        pairs(&rows, "label_team", "sum"),
        owned(&[("payments", 960.0), ("research", 180.0)])
    );
    assert!(rows.iter().all(|r| r["label_team"] != Value::Null));
}
