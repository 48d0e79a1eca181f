//! The simulated cluster's past, written as the collector would have scraped it (what
//! `kubemeter demo` opens with): a sample every step across the window, for every pod the model
//! ran, with the CPU the model burned.

use crate::helpers::{fresh_influx, select};
use chrono::{Duration, TimeZone, Utc};
use kubemeter::simulator::history::{write, Tagging};
use kubemeter::simulator::model::{Model, SimConfig};
use std::collections::BTreeSet;

#[tokio::test]
async fn two_hours_of_history_land_with_a_sample_every_step_and_the_models_cpu() {
    let influx = fresh_influx().await;
    let epoch = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
    let model = Model::new(
        SimConfig {
            nodes: 2,
            pods_per_node: 8,
            seed: 4,
        },
        epoch,
    );
    let tagging = Tagging {
        cluster_name: "past".into(),
        label_keys: vec!["team".into()],
    };
    let (from, to) = (epoch, epoch + Duration::hours(2));
    let shares = std::sync::Mutex::new(Vec::new());
    let points = write(
        &model,
        &influx,
        (from, to),
        std::time::Duration::from_secs(60),
        &tagging,
        |s| shares.lock().unwrap().push(s),
    )
    .await
    .unwrap();
    assert!(points > 10_000, "{points} points");
    assert_eq!(
        shares.lock().unwrap().iter().cloned().fold(0.0, f64::max),
        1.0
    );

    let q = "SELECT value, nodename FROM \"cpu/usage\" WHERE \"type\" = 'node' AND cluster_name = 'past'";
    let rows = select(&influx, q).await;
    let times: BTreeSet<String> = rows
        .iter()
        .map(|r| r["time"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(times.len(), 120, "one round a minute for two hours");

    // A steady container's counter at the last round is what the model says.
    let last = to - Duration::minutes(1);
    let pod = model
        .pods_at(last)
        .into_iter()
        .find(|p| p.workload.0 == "StatefulSet")
        .expect("a StatefulSet pod");
    let c = &pod.containers[0];
    let q = format!(
        "SELECT last(value) FROM \"cpu/usage\" WHERE \"type\" = 'pod_container' AND pod_name = '{}' AND container_name = '{}'",
        pod.name, c.name
    );
    let row = &select(&influx, &q).await[0];
    let want = kubemeter::simulator::model::cpu_counter(c.millicores, c.start, last);
    assert_eq!(row["last"].as_u64(), Some(want));
}
