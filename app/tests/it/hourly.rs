//! The seed's aggregations over long windows read hourly rollups for whole hours and raw
//! samples for the partial edges, and answer exactly what raw data alone answers; a re-run
//! hour takes in late data.

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use crate::helpers::{fresh_influx, spawn_app_with};
use kubemeter::jobs::aggregates::roll_up_hour;

const T0: i64 = 1_793_491_200; // 2026-11-01T00:00:00Z

/// Every 10 minutes for 5 hours: pod `a` (namespace `shop`) reports the minutes since 00:00,
/// pod `b` (namespace `data`) twice that, `dns` (kube-system) 7; each pod's container series
/// reports a million, which a pod-level aggregation must never read.
fn lines() -> String {
    let mut out = String::new();
    for i in 0..30 {
        let minutes = i * 10;
        let ns = (T0 + minutes * 60) * 1_000_000_000;
        for (namespace, pod, v) in [
            ("shop", "a", minutes),
            ("data", "b", 2 * minutes),
            ("kube-system", "dns", 7),
        ] {
            let tags = format!("namespace_name={namespace},pod_name={pod},nodename=n1");
            out.push_str(&format!("cpu/usage_rate,type=pod,{tags} value={v}i {ns}\n"));
            out.push_str(&format!(
                "cpu/usage_rate,type=pod_container,container_name=c,{tags} value=1000000i {ns}\n"
            ));
        }
    }
    out
}

const WINDOW: &str =
    r#""timeBeginInterval":"2026-11-01T00:30:00Z","timeEndInterval":"2026-11-01T04:10:00Z""#;

async fn rows(app: &crate::helpers::TestApp, agg: &str, func: &str) -> Value {
    let body = format!(r#"{{"agg":"{agg}","fn":"{func}",{WINDOW}}}"#);
    let resp = app.post("cpu/usage_rate", &body).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn aggregations_from_hourly_rollups_equal_the_raw_answer_and_take_in_late_data() {
    let influx = fresh_influx().await;
    influx.write(lines()).await.unwrap();
    let app = spawn_app_with(influx.config().clone(), None).await;
    // [00:30, 04:10): samples at 00:30, 00:40, …, 04:00 — 22 of them. a: 30 + 40 + … + 240
    // = 2970; b: twice that; max a: 240, b: 480. kube-system is left out, as in the seed.
    let begin = "2026-11-01T00:30:00Z";
    let by_ns = json!([
        {"namespace_name": "data", "time": begin, "sum": 5940},
        {"namespace_name": "shop", "time": begin, "sum": 2970}
    ]);
    let by_pod_max = json!([
        {"pod_name": "b", "namespace_name": "data", "time": begin, "max": 480},
        {"pod_name": "a", "namespace_name": "shop", "time": begin, "max": 240}
    ]);
    assert_eq!(rows(&app, "all-namespace", "sum").await, by_ns, "raw");
    assert_eq!(rows(&app, "all-pod", "max").await, by_pod_max, "raw");

    for h in 0..5 {
        roll_up_hour(&influx, Utc.timestamp_opt(T0 + h * 3600, 0).unwrap())
            .await
            .unwrap();
    }
    assert_eq!(
        rows(&app, "all-namespace", "sum").await,
        by_ns,
        "rollups + edges"
    );
    assert_eq!(
        rows(&app, "all-pod", "max").await,
        by_pod_max,
        "rollups + edges"
    );

    // A late sample inside a rolled-up hour: not seen until the hour is rolled up again.
    let late = (T0 + 2 * 3600 + 5 * 60) * 1_000_000_000;
    influx
        .write(format!(
            "cpu/usage_rate,type=pod,namespace_name=shop,pod_name=a,nodename=n1 value=1000i {late}\n"
        ))
        .await
        .unwrap();
    assert_eq!(
        rows(&app, "all-namespace", "sum").await,
        by_ns,
        "the rollup answers"
    );
    roll_up_hour(&influx, Utc.timestamp_opt(T0 + 2 * 3600, 0).unwrap())
        .await
        .unwrap();
    let with_late = json!([
        {"namespace_name": "data", "time": begin, "sum": 5940},
        {"namespace_name": "shop", "time": begin, "sum": 3970}
    ]);
    assert_eq!(
        rows(&app, "all-namespace", "sum").await,
        with_late,
        "re-rolled"
    );
    let max = rows(&app, "all-pod", "max").await;
    assert_eq!(max[1]["max"], 1000);
}
