//! The Grafana dashboard in k8s/grafana reads what kubemeter writes: every query names a
//! measurement of the catalogue and tags of the catalogue, and every measurement it reads at a
//! level (`"type" = '…'`) is written at that level by the collector, with the tags the query
//! filters and groups by (checked on a simulated scrape round).

use chrono::TimeZone;
use kubemeter::catalogue::tags::{is_tag, LEVELS};
use kubemeter::collector::rates::Rates;
use kubemeter::simulator::history::{round_at, Tagging};
use kubemeter::simulator::model::{Model, SimConfig};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

fn dashboard() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/k8s/grafana/kubemeter.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("the dashboard is JSON")
}

/// Every InfluxQL query of the dashboard: panel targets and template variables.
fn queries(d: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for panel in d["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            assert_eq!(t["datasource"]["type"], "influxdb", "{}", panel["title"]);
            assert_eq!(t["rawQuery"], true, "{}", panel["title"]);
            out.push(t["query"].as_str().unwrap().to_string());
        }
    }
    for var in d["templating"]["list"].as_array().unwrap() {
        out.push(var["query"].as_str().unwrap().to_string());
    }
    out
}

/// The double-quoted identifiers of a query, in order.
fn identifiers(q: &str) -> Vec<&str> {
    q.split('"').skip(1).step_by(2).collect()
}

/// The measurement after `FROM`, the tags named, and the level asked for (`"type" = 'x'`).
fn parse(q: &str) -> (String, Vec<String>, Option<String>) {
    let from = q
        .find("FROM \"")
        .unwrap_or_else(|| panic!("no FROM \"…\" in {q}"));
    let measurement = identifiers(&q[from..])[0].to_string();
    let tags = identifiers(q)
        .into_iter()
        .filter(|i| *i != measurement && *i != "value")
        .map(str::to_string)
        .collect();
    let level = q
        .split("\"type\" = '")
        .nth(1)
        .map(|rest| rest.split('\'').next().unwrap().to_string());
    (measurement, tags, level)
}

/// `(measurement, type)` → tag keys, of a few simulated scrape rounds.
fn written() -> BTreeMap<(String, String), BTreeSet<String>> {
    let epoch = chrono::Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let model = Model::new(
        SimConfig {
            nodes: 3,
            pods_per_node: 12,
            seed: 9,
        },
        epoch,
    );
    let tagging = Tagging {
        cluster_name: "c".into(),
        label_keys: vec![],
    };
    let (mut rates, mut out) = (Rates::default(), String::new());
    // A few rounds, 15 s apart: rates need a previous sample of an unchanged counter.
    for round in 0..6 {
        let t = epoch + chrono::Duration::seconds(15 * round);
        round_at(&model, t, &tagging, &mut rates, &mut out);
    }
    let mut written: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for line in out.lines() {
        let (measurement, tags) = series_of(line);
        let level = tags.get("type").cloned().unwrap_or_default();
        written
            .entry((measurement, level))
            .or_default()
            .extend(tags.into_keys());
    }
    written
}

/// The measurement and tags of a line of line protocol (`\` escapes `,`, ` ` and `=`).
fn series_of(line: &str) -> (String, BTreeMap<String, String>) {
    let (mut parts, mut part, mut escaped) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match (escaped, c) {
            (false, '\\') => escaped = true,
            (false, ',') => parts.push(std::mem::take(&mut part)),
            (false, ' ') => break,
            _ => {
                escaped = false;
                part.push(c);
            }
        }
    }
    parts.push(part);
    let measurement = parts.remove(0);
    let tags = parts
        .into_iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    (measurement, tags)
}

#[test]
fn every_dashboard_query_names_a_catalogued_measurement_and_catalogued_tags() {
    let d = dashboard();
    let queries = queries(&d);
    assert!(queries.len() >= 12, "{} queries", queries.len());
    for q in &queries {
        let (measurement, tags, level) = parse(q);
        assert!(
            kubemeter::catalogue::find(&measurement).is_some(),
            "{measurement} is not in the catalogue: {q}"
        );
        for tag in &tags {
            assert!(is_tag(tag), "{tag} is not a tag kubemeter writes: {q}");
        }
        if let Some(level) = level {
            assert!(LEVELS.contains(&level.as_str()), "{level}: {q}");
        }
    }
}

#[test]
fn every_series_the_dashboard_reads_is_written_by_the_collector_with_its_tags() {
    let written = written();
    for q in queries(&dashboard()) {
        let (measurement, tags, level) = parse(&q);
        let Some(level) = level else { continue };
        let keys = written
            .get(&(measurement.clone(), level.clone()))
            .unwrap_or_else(|| {
                panic!("the collector writes no {measurement} at type={level}: {q}")
            });
        for tag in tags {
            assert!(
                keys.contains(&tag),
                "{measurement} at type={level} has no {tag} tag: {q}"
            );
        }
    }
}

#[test]
fn the_dashboard_picks_its_influxdb_when_imported_and_names_series_by_their_tags() {
    let d = dashboard();
    assert_eq!(d["__inputs"][0]["pluginId"], "influxdb");
    for panel in d["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let q = t["query"].as_str().unwrap();
            let alias = t["alias"].as_str().unwrap();
            for tag in alias.split("$tag_").skip(1) {
                let tag: String = tag
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    q.contains("GROUP BY time($__interval), ") && q.contains(&format!("\"{tag}\"")),
                    "{alias}: {q}"
                );
            }
        }
    }
}
