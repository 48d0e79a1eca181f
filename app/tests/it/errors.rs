//! Bad input gets a 4xx JSON body that says what to fix; nothing a caller sends runs as InfluxQL.

use crate::helpers::{fresh_influx, spawn_app, spawn_app_on, window, USER};
use kubemeter::influx::client::InfluxAuth;
use kubemeter::influx::InfluxConfig;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn missing_or_empty_credentials_are_not_authorized() {
    let app = spawn_app().await;
    for (user, pass) in [(None, None), (Some(USER), None), (Some(""), Some(""))] {
        let resp = app.post_as("cpu/usage_rate", "", user, pass).await;
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body,
            json!({"code": 401, "message": "You are not authorized"})
        );
    }
}

#[tokio::test]
async fn a_wrong_password_is_not_recognized() {
    let app = spawn_app().await;
    let resp = app
        .post_as("cpu/usage_rate", "", Some(USER), Some("wrong"))
        .await;
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"code": 401, "message": "Username and password is not recognized"})
    );
}

#[tokio::test]
async fn other_methods_get_405_with_allow_post() {
    let app = spawn_app().await;
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let resp = app
            .http
            .request(
                method.clone(),
                format!("{}/api/cpu/usage_rate", app.address),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "{method}");
        assert_eq!(resp.headers()["allow"], "POST");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], 405);
    }
}

#[tokio::test]
async fn api_without_a_metric_is_not_found() {
    let app = spawn_app().await;
    let (status, body) = app.error("", "").await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"code": 404, "message": "Request not found"}));
}

#[tokio::test]
async fn an_unknown_metric_is_not_found_and_named() {
    let app = spawn_app().await;
    let (status, body) = app.error("cpu/usage_rate\" WHERE 1=1 --", "").await;
    assert_eq!(status, 404);
    assert!(
        body["message"].as_str().unwrap().contains("Unknown metric"),
        "{body}"
    );
}

#[tokio::test]
async fn an_injected_namespace_is_refused_and_returns_nothing() {
    let app = spawn_app().await;
    let (status, body) = app
        .error(
            "cpu/usage_rate",
            &window(r#""namespace":"default' OR namespace_name != '""#),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().starts_with("namespace:"),
        "{body}"
    );
}

#[tokio::test]
async fn an_injected_limit_is_refused_and_creates_no_database() {
    let app = spawn_app().await;
    let (status, body) = app
        .error(
            "cpu/usage_rate",
            r#"{"limit":"1; CREATE DATABASE injected"}"#,
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().starts_with("limit:"),
        "{body}"
    );
    let dbs = app.influx.query("SHOW DATABASES").await.unwrap();
    let names: Vec<&Value> = dbs
        .iter()
        .flat_map(|s| s.values.iter().map(|v| &v[0]))
        .collect();
    assert!(!names.iter().any(|n| *n == "injected"), "{names:?}");
}

#[tokio::test]
async fn malformed_bodies_get_400_naming_the_problem() {
    let app = spawn_app().await;
    let cases = [
        ("[1, 2]", "JSON object"),
        ("{\"agg\": ", "not valid JSON"),
        (r#"{"namespace": 7}"#, "namespace:"),
        (
            r#"{"timeBeginInterval": "last tuesday"}"#,
            "timeBeginInterval:",
        ),
        (r#"{"timeEndInterval": "2017-12-32"}"#, "timeEndInterval:"),
        (r#"{"agg": "all-pod", "fn": "median"}"#, "fn:"),
        (r#"{"agg": "all-pod", "step": "soon"}"#, "step:"),
        (r#"{"limit": -3}"#, "limit:"),
        (r#"{"agg": "by-label:bad key"}"#, "agg:"),
    ];
    for (body, expected) in cases {
        let (status, json) = app.error("cpu/usage_rate", body).await;
        assert_eq!(status, 400, "{body} -> {json}");
        assert_eq!(json["code"], 400);
        let message = json["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body} -> {message}");
    }
}

#[tokio::test]
async fn a_node_metric_asked_by_namespace_says_to_use_by_node() {
    let app = spawn_app().await;
    let (status, body) = app
        .error("cpu/node_capacity", r#"{"agg":"all-namespace"}"#)
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("by-node"),
        "{body}"
    );
}

#[tokio::test]
async fn influxdb_down_is_503_and_not_ready_but_alive() {
    let down = InfluxConfig {
        // Port 9 (discard) on loopback: nothing listens there.
        url: "http://127.0.0.1:9".parse().unwrap(),
        database: "k8s".into(),
        auth: InfluxAuth::None,
        timeout: Duration::from_secs(5),
    };
    let app = spawn_app_on(down).await;
    let (status, body) = app.error("cpu/usage_rate", "").await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        json!({"code": 503, "message": "Can't connect to influxdb"})
    );
    let ready = app
        .http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let alive = app
        .http
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status(), 200);
}

#[tokio::test]
async fn a_missing_database_is_503_naming_it() {
    let influx = fresh_influx().await;
    let mut config = influx.config().clone();
    config.database = "no_such_db".into();
    let app = spawn_app_on(config).await;
    let (status, body) = app.error("cpu/usage_rate", "").await;
    assert_eq!(status, 503);
    assert!(
        body["message"].as_str().unwrap().contains("no_such_db"),
        "{body}"
    );
}

#[tokio::test]
async fn readyz_is_ok_when_influxdb_answers() {
    let app = spawn_app().await;
    let ready = app
        .http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn metrics_count_api_calls_by_route_and_status() {
    let app = spawn_app().await;
    app.post("cpu/usage_rate", &window(r#""agg":"all-namespace""#))
        .await;
    app.post("cpu/usage_rate", r#"{"limit":"many"}"#).await;
    app.post("cpu/usage_rate", r#"{"limit":"many"}"#).await;
    let text = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("kubemeter_http_requests_total{route=\"/api/{metric:.*}\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("kubemeter_http_requests_total{route=\"/api/{metric:.*}\",status=\"400\"} 2"),
        "{text}"
    );
    assert!(
        text.contains(
            "kubemeter_http_request_duration_seconds_count{route=\"/api/{metric:.*}\"} 3"
        ),
        "{text}"
    );
}
