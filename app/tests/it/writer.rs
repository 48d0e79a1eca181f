//! The writer loses nothing while InfluxDB is away, across a collector restart, and writes
//! each sample once when InfluxDB is back.

use crate::helpers::{fresh_influx, select, temp_dir};
use kubemeter::collector::metrics::Metrics;
use kubemeter::collector::writer::{self, WriterConfig};
use kubemeter::influx::client::InfluxAuth;
use kubemeter::influx::{InfluxClient, InfluxConfig};
use std::sync::Arc;
use std::time::Duration;

/// `n` points of `m`, value i at second i.
fn batch(from: i64, n: i64) -> String {
    (from..from + n)
        .map(|i| {
            format!(
                "m,type=pod,pod_name=p{} value={i}i {}\n",
                i % 7,
                i * 1_000_000_000
            )
        })
        .collect()
}

#[tokio::test]
async fn samples_taken_while_influxdb_is_down_arrive_once_after_a_restart() {
    let config = WriterConfig {
        spool_dir: temp_dir("outage"),
        spool_max_bytes: 64 << 20,
    };
    let down = InfluxClient::new(InfluxConfig {
        url: "http://127.0.0.1:9".parse().unwrap(),
        database: "k8s".into(),
        auth: InfluxAuth::None,
        timeout: Duration::from_secs(2),
    });
    // 12 000 points in three rounds, while InfluxDB is unreachable.
    let metrics = Arc::new(Metrics::default());
    let (handle, task) = writer::spawn(down, &config, metrics.clone()).unwrap();
    for round in 0..3 {
        handle.send(batch(round * 4_000, 4_000)).await;
    }
    // The collector stops (or is restarted) before InfluxDB is back.
    drop(handle);
    task.await.unwrap();
    assert_eq!(metrics.points_written(), 0);
    assert!(
        metrics.render().contains("kubemeter_spool_batches "),
        "spool reported"
    );
    let spooled = std::fs::read_dir(&config.spool_dir).unwrap().count();
    assert!(spooled >= 1, "nothing was spooled");

    // A new collector process, InfluxDB back: the spool is replayed in order.
    let influx = fresh_influx().await;
    let metrics = Arc::new(Metrics::default());
    let (handle, task) = writer::spawn(influx.clone(), &config, metrics.clone()).unwrap();
    // The last round again (a retry after a crash): explicit timestamps keep it idempotent.
    handle.send(batch(8_000, 4_000)).await;
    drop(handle);
    task.await.unwrap();

    let rows = select(&influx, "SELECT count(value), sum(value) FROM m").await;
    assert_eq!(rows[0]["count"], 12_000);
    // 0 + 1 + … + 11 999
    assert_eq!(rows[0]["sum"], 11_999 * 12_000 / 2);
    assert_eq!(
        std::fs::read_dir(&config.spool_dir).unwrap().count(),
        0,
        "the spool is empty again"
    );
}

#[tokio::test]
async fn a_malformed_line_is_counted_and_does_not_block_the_rest() {
    let influx = fresh_influx().await;
    let config = WriterConfig {
        spool_dir: temp_dir("rejected"),
        spool_max_bytes: 64 << 20,
    };
    let metrics = Arc::new(Metrics::default());
    let (handle, task) = writer::spawn(influx.clone(), &config, metrics.clone()).unwrap();
    handle
        .send("m value=1i 1\nthis is not line protocol\nm value=2i 2\n".into())
        .await;
    handle.send(batch(100, 10)).await;
    drop(handle);
    task.await.unwrap();
    let text = metrics.render();
    assert!(
        text.contains("kubemeter_points_rejected_total 1\n"),
        "{text}"
    );
    // InfluxDB keeps the valid points of a partial write.
    let rows = select(&influx, "SELECT count(value) FROM m").await;
    assert_eq!(rows[0]["count"], 12);
}
