//! The escaping of the line-protocol encoder and the InfluxQL builder, proven against a real
//! influxd: hostile strings are written as tags and read back by exact match.

use crate::helpers::fresh_influx;
use chrono::{TimeZone, Utc};
use kubemeter::influx::line::{write_point, Value};
use kubemeter::influx::ql::{Cond, Projection, Select, Source};

const HOSTILE: &[&str] = &[
    "plain",
    "it's",
    "say \"hi\"",
    "back\\slash",
    "x' OR '1'='1",
    "a;DROP DATABASE k8s",
    "comma,equals=space here",
    "a.b",
    "axb",
    "(a|b)*$^[]{}+?/",
    "données 中文 🚀",
];

async fn written(measurement: &str) -> kubemeter::influx::InfluxClient {
    let influx = fresh_influx().await;
    let mut lines = String::new();
    for (i, tag) in HOSTILE.iter().enumerate() {
        write_point(
            &mut lines,
            measurement,
            &[("hostile", tag)],
            Value::Int(i as i64),
            1_000_000_000 * i as i64,
        )
        .unwrap();
    }
    influx
        .write(lines)
        .await
        .expect("every hostile line is accepted");
    influx
}

fn select(measurement: &str, cond: Cond) -> String {
    let mut s = Select::new(Projection::All, Source::Measurement(measurement.into()));
    s.conditions = vec![cond, Cond::TimeGe(Utc.timestamp_opt(0, 0).unwrap())];
    s.to_influxql()
}

#[tokio::test]
async fn hostile_tag_values_round_trip_through_write_and_exact_match() {
    let measurement = "weird \"measurement\", with = signs";
    let influx = written(measurement).await;
    for (i, tag) in HOSTILE.iter().enumerate() {
        let q = select(measurement, Cond::TagEq("hostile".into(), tag.to_string()));
        let series = influx
            .query(&q)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_eq!(series.len(), 1, "{tag:?}: {q}");
        let values = &series[0].values;
        assert_eq!(
            values.len(),
            1,
            "{tag:?} matched more than itself: {values:?}"
        );
        let hostile_col = series[0]
            .columns
            .iter()
            .position(|c| c == "hostile")
            .unwrap();
        assert_eq!(values[0][hostile_col], *tag);
        let value_col = series[0].columns.iter().position(|c| c == "value").unwrap();
        assert_eq!(values[0][value_col], i as i64);
    }
}

#[tokio::test]
async fn a_regex_of_literal_values_matches_exactly_those_values() {
    let measurement = "m";
    let influx = written(measurement).await;
    let wanted = vec![
        "a.b".to_string(),
        "(a|b)*$^[]{}+?/".to_string(),
        "it's".to_string(),
    ];
    let q = select(measurement, Cond::TagIn("hostile".into(), wanted.clone()));
    let series = influx
        .query(&q)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"));
    let col = series[0]
        .columns
        .iter()
        .position(|c| c == "hostile")
        .unwrap();
    let mut got: Vec<String> = series[0]
        .values
        .iter()
        .map(|v| v[col].as_str().unwrap().to_string())
        .collect();
    got.sort();
    let mut want = wanted;
    want.sort();
    // "axb" must not match "a.b": the dot is literal.
    assert_eq!(got, want);
}
