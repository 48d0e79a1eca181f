//! The seed's four modes, with its faults fixed (one `type` level, `[begin, end)`).

use crate::helpers::{owned, pairs, spawn_app, window};
use serde_json::{json, Value};

#[tokio::test]
async fn pod_by_namespace_sums_each_pod_once_inside_the_window() {
    let app = spawn_app().await;
    let rows = app
        .rows("cpu/usage_rate", &window(r#""agg":"pod-by-namespace""#))
        .await;
    // web-1: 110 + 120 + 130; web-2: 3 × 200 (containers and namespace series not added in,
    // poison samples at the window's edges left out).
    assert_eq!(
        pairs(&rows, "pod_name", "sum"),
        owned(&[("web-1", 360.0), ("web-2", 600.0)])
    );
    assert_eq!(
        rows[0],
        json!({"time": "2017-12-01T00:00:00Z", "sum": 360, "namespace_name": "default", "pod_name": "web-1"})
    );
}

#[tokio::test]
async fn pod_by_namespace_filters_the_namespace_given() {
    let app = spawn_app().await;
    let rows = app
        .rows(
            "cpu/usage_rate",
            &window(r#""agg":"pod-by-namespace","namespace":"cluster-3""#),
        )
        .await;
    assert_eq!(
        pairs(&rows, "pod_name", "sum"),
        owned(&[("nightly-28000000-x7k2p", 180.0)])
    );
}

#[tokio::test]
async fn all_namespace_sums_pods_per_namespace_without_kube_system() {
    let app = spawn_app().await;
    let rows = app
        .rows("cpu/usage_rate", &window(r#""agg":"all-namespace""#))
        .await;
    // default: 360 + 600; cluster-3: 50 + 60 + 70.
    assert_eq!(
        pairs(&rows, "namespace_name", "sum"),
        owned(&[("cluster-3", 180.0), ("default", 960.0)])
    );
    let keys: Vec<&String> = rows[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["time", "sum", "namespace_name"]);
}

#[tokio::test]
async fn all_pod_keeps_the_namespace_of_each_pod() {
    let app = spawn_app().await;
    let rows = app
        .rows("cpu/usage_rate", &window(r#""agg":"all-pod""#))
        .await;
    assert_eq!(
        pairs(&rows, "pod_name", "sum"),
        owned(&[
            ("nightly-28000000-x7k2p", 180.0),
            ("web-1", 360.0),
            ("web-2", 600.0)
        ])
    );
    let nightly = rows
        .iter()
        .find(|r| r["pod_name"] == "nightly-28000000-x7k2p")
        .unwrap();
    assert_eq!(nightly["namespace_name"], "cluster-3");
    let keys: Vec<&String> = rows[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["time", "sum", "pod_name", "namespace_name"]);
}

#[tokio::test]
async fn raw_points_of_one_namespace_come_newest_first_with_every_tag() {
    let app = spawn_app().await;
    let rows = app.rows("cpu/usage_rate", &window("")).await;
    // 6 series carry namespace_name=default (3 container, 2 pod, 1 ns), 3 samples each.
    assert_eq!(rows.len(), 18);
    assert_eq!(rows[0]["time"], "2017-12-01T00:02:00Z");
    assert_eq!(rows[17]["time"], "2017-12-01T00:00:00Z");
    assert!(rows.iter().all(|r| r["namespace_name"] == "default"));
    let app_row = rows
        .iter()
        .find(|r| r["container_name"] == "app" && r["pod_name"] == "web-1")
        .unwrap();
    assert_eq!(app_row["value"], 120);
    assert_eq!(app_row["nodename"], "node-01");
    assert_eq!(app_row["type"], "pod_container");
    // A tag the series lacks is null, as in the seed.
    let ns_row = rows.iter().find(|r| r["type"] == "ns").unwrap();
    assert_eq!(ns_row["pod_name"], Value::Null);
}

#[tokio::test]
async fn limit_as_a_string_caps_the_raw_points() {
    let app = spawn_app().await;
    let rows = app.rows("cpu/usage_rate", &window(r#""limit":"4""#)).await;
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r["time"] == "2017-12-01T00:02:00Z"));
}

#[tokio::test]
async fn an_empty_result_is_the_seeds_empty_set_message() {
    let app = spawn_app().await;
    let resp = app
        .post("memory/usage", &window(r#""agg":"all-namespace""#))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"code": 200, "message": "Query returns empty set"})
    );
}

#[tokio::test]
async fn the_seed_readme_curl_example_works_unchanged() {
    let app = spawn_app().await;
    // No content type, dates without times, exactly as the old README's example sends it.
    let resp = app
        .http
        .post(format!("{}/api/cpu/usage_rate", app.address))
        .header("x-password", crate::helpers::PASSWORD)
        .header("x-username", crate::helpers::USER)
        .body(r#"{"agg":"pod-by-namespace","timeBeginInterval":"2017-12-01","timeEndInterval":"2017-12-31"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let rows: Vec<Value> = resp.json().await.unwrap();
    // The whole month also takes in the sample at 00:03 (100000) for each pod,
    // but not the one at 23:59 on November 30th.
    assert_eq!(
        pairs(&rows, "pod_name", "sum"),
        owned(&[("web-1", 100_360.0), ("web-2", 100_600.0)])
    );
}

#[tokio::test]
async fn container_only_metrics_aggregate_their_container_series() {
    let app = spawn_app().await;
    let rows = app
        .rows("uptime", &window(r#""agg":"pod-by-namespace""#))
        .await;
    // 1000 + 61000 + 121000 + 500 + 60500 + 120500
    assert_eq!(
        pairs(&rows, "pod_name", "sum"),
        owned(&[("web-1", 364_500.0)])
    );
}

#[tokio::test]
async fn the_openapi_document_matches_what_the_api_accepts() {
    let app = spawn_app().await;
    let doc: Value = app
        .http
        .get(format!("{}/api/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let post = &doc["paths"]["/api/{metric}"]["post"];
    let query = &doc["components"]["schemas"]["Query"]["properties"];
    // Every documented metric is served (200: rows or the empty set, never 404).
    for metric in post["parameters"][0]["schema"]["enum"].as_array().unwrap() {
        let resp = app.post(metric.as_str().unwrap(), &window("")).await;
        assert_eq!(resp.status(), 200, "{metric}");
    }
    // Every documented agg and fn is accepted.
    for agg in query["agg"]["enum"].as_array().unwrap() {
        for func in query["fn"]["enum"].as_array().unwrap() {
            let body = window(&format!(r#""agg":{agg},"fn":{func}"#));
            let resp = app.post("cpu/usage_rate", &body).await;
            assert_eq!(resp.status(), 200, "{body}");
        }
    }
    // The documented limit bound is the enforced one.
    let max = query["limit"]["oneOf"][0]["maximum"].as_u64().unwrap();
    assert_eq!(
        app.post("cpu/usage_rate", &window(&format!(r#""limit":{max}"#)))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post(
            "cpu/usage_rate",
            &window(&format!(r#""limit":{}"#, max + 1))
        )
        .await
        .status(),
        400
    );
    // Errors have the documented body shape.
    let required = doc["components"]["schemas"]["Error"]["required"]
        .as_array()
        .unwrap()
        .clone();
    for resp in [
        app.post_as("cpu/usage_rate", "", Some("x"), Some("y"))
            .await,
        app.post("cpu/usage_rate", r#"{"limit":0}"#).await,
    ] {
        let status = resp.status().as_u16();
        assert!(
            post["responses"][status.to_string()].is_object(),
            "{status} is documented"
        );
        let body: Value = resp.json().await.unwrap();
        for field in &required {
            assert!(
                body.get(field.as_str().unwrap()).is_some(),
                "{status}: {body}"
            );
        }
    }
}
