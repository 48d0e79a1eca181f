//! What the dashboard reads: for a metric, a selection (namespace → workload → pod →
//! container) and a time range, the usage over time split by the next level down, and the
//! latest raw points. Statements come from the one InfluxQL builder and pass the one scope
//! check (`api::plan::restrict`) the API uses.
//!
//! A series is averaged within each bucket and the averages are added up across series, so a
//! bucket's value is the usage at that time — never a sum of samples (the old app's fault).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::given;
use super::range::TimeRange;
use crate::api::plan::restrict;
use crate::api::request::{Namespace, RequestError};
use crate::catalogue::{Metric, PodLevel};
use crate::influx::ql::{Buckets, Cond, Func, GroupBy, Projection, Select, Source};
use crate::influx::Series;
use crate::users::Scope;

/// Rows of the points table (the seed's page showed the latest 1 000).
pub const TABLE_ROWS: u32 = 1000;

/// A workload as its tags name it: `Deployment/web`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub kind: String,
    pub name: String,
}

impl Workload {
    pub fn parse(s: &str) -> Option<Workload> {
        let (kind, name) = s.split_once('/')?;
        (plain(kind) && plain(name)).then(|| Workload {
            kind: kind.to_string(),
            name: name.to_string(),
        })
    }
}

/// A Kubernetes object name or kind: short, no control characters, no slash.
fn plain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && !s.chars().any(|c| c.is_control() || c == '/')
}

/// Which part of the cluster a page shows; each level narrows the one above.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub namespace: Option<Namespace>,
    pub workload: Option<Workload>,
    pub pod: Option<String>,
    pub container: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Drill {
    Cluster,
    Namespace,
    Workload,
    Pod,
    Container,
}

impl Selection {
    /// Checks the drill-down parameters of a page.
    pub fn parse(
        namespace: Option<Namespace>,
        workload: Option<&str>,
        pod: Option<&str>,
        container: Option<&str>,
    ) -> Result<Selection, String> {
        let workload = given(workload)
            .map(|w| {
                Workload::parse(w).ok_or_else(|| {
                    format!("workload {w:?} is not a kind and a name like Deployment/web")
                })
            })
            .transpose()?;
        let name = |field: &str, v: Option<&str>| {
            given(v)
                .map(|s| {
                    if plain(s) {
                        Ok(s.to_string())
                    } else {
                        Err(format!("{field} {s:?} is not a Kubernetes name"))
                    }
                })
                .transpose()
        };
        let sel = Selection {
            namespace,
            workload,
            pod: name("pod", pod)?,
            container: name("container", container)?,
        };
        if sel.namespace.is_none() && sel.drill() > Drill::Cluster {
            return Err(
                "choose a namespace first: workloads, pods and containers are shown \
                        under /web/stats/<metric>/<namespace>"
                    .into(),
            );
        }
        Ok(sel)
    }

    /// The deepest level given.
    pub fn drill(&self) -> Drill {
        if self.container.is_some() {
            Drill::Container
        } else if self.pod.is_some() {
            Drill::Pod
        } else if self.workload.is_some() {
            Drill::Workload
        } else if self.namespace.is_some() {
            Drill::Namespace
        } else {
            Drill::Cluster
        }
    }

    fn conditions(&self) -> Vec<Cond> {
        let mut c = Vec::new();
        let mut eq = |tag: &str, v: &str| c.push(Cond::TagEq(tag.into(), v.into()));
        if let Some(ns) = &self.namespace {
            eq("namespace_name", ns.as_str());
        }
        if let Some(w) = &self.workload {
            eq("workload_kind", &w.kind);
            eq("workload_name", &w.name);
        }
        if let Some(p) = &self.pod {
            eq("pod_name", p);
        }
        if let Some(k) = &self.container {
            eq("container_name", k);
        }
        c
    }
}

/// The tags a page splits its usage by: the next level down.
pub fn breakdown_tags(metric: &Metric, drill: Drill) -> &'static [&'static str] {
    if metric.pod_level == PodLevel::NodeOnly {
        return &["nodename"];
    }
    match drill {
        Drill::Cluster => &["namespace_name"],
        Drill::Namespace => &["workload_kind", "workload_name"],
        Drill::Workload => &["pod_name"],
        Drill::Pod => &["container_name"],
        Drill::Container => &[],
    }
}

/// Heapster's `type` level a page reads: pods (each pod once) until the page looks inside
/// one pod, then its containers.
pub fn level(metric: &Metric, drill: Drill) -> &'static str {
    match metric.pod_level {
        PodLevel::Pod if drill < Drill::Pod => PodLevel::Pod.type_tag(),
        PodLevel::Pod | PodLevel::Container => PodLevel::Container.type_tag(),
        PodLevel::NodeOnly => PodLevel::NodeOnly.type_tag(),
    }
}

fn base(metric: &Metric, sel: &Selection, range: &TimeRange, level: &str) -> Select {
    let mut s = Select::new(
        Projection::All,
        Source::Measurement(metric.name.to_string()),
    );
    s.conditions.push(Cond::TagEq("type".into(), level.into()));
    s.conditions.extend(sel.conditions());
    s.conditions.push(Cond::TimeGe(range.from));
    s.conditions.push(Cond::TimeLt(range.to));
    s
}

/// Each series' bucket means, grouped by the series' identity and `extra` tags.
pub fn usage_statement(
    metric: &Metric,
    sel: &Selection,
    range: &TimeRange,
    level: &str,
    extra: &[&str],
    scope: &Scope,
) -> Result<Select, RequestError> {
    let mut s = base(metric, sel, range, level);
    s.projection = Projection::Call {
        func: Func::Mean,
        field: "value".into(),
        alias: "mean".into(),
    };
    let step = range.step_seconds();
    s.buckets = Some(Buckets {
        step_seconds: step,
        offset_seconds: range.from.timestamp().rem_euclid(step as i64) as u64,
    });
    let mut tags: Vec<String> = match metric.pod_level {
        PodLevel::NodeOnly => vec!["nodename".into()],
        _ => vec!["namespace_name".into(), "pod_name".into()],
    };
    if level == PodLevel::Container.type_tag() {
        tags.push("container_name".into());
    }
    for t in extra {
        if !tags.iter().any(|have| have == t) {
            tags.push(t.to_string());
        }
    }
    s.group_by = GroupBy::Tags(tags);
    restrict(&mut s, metric, scope)?;
    Ok(s)
}

/// The latest raw points of the selection, newest first.
pub fn table_statement(
    metric: &Metric,
    sel: &Selection,
    range: &TimeRange,
    level: &str,
    scope: &Scope,
) -> Result<Select, RequestError> {
    let mut s = base(metric, sel, range, level);
    s.newest_first = true;
    s.limit = Some(TABLE_ROWS);
    restrict(&mut s, metric, scope)?;
    Ok(s)
}

/// A part of the usage (one namespace, workload, pod, …) over time.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The values of the breakdown tags.
    pub key: Vec<String>,
    pub points: Vec<(i64, f64)>,
    /// Average over the buckets in which anything was observed, so the parts' averages add
    /// up to the total's.
    pub average: f64,
    pub peak: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Usage {
    pub total: Vec<(i64, f64)>,
    pub average: f64,
    pub peak: f64,
    /// Largest average first.
    pub parts: Vec<Part>,
}

/// Adds up the series' bucket means, in total and per value of `key_tags`.
pub fn fold(series: &[Series], key_tags: &[&str]) -> Usage {
    let mut total: BTreeMap<i64, f64> = BTreeMap::new();
    let mut parts: BTreeMap<Vec<String>, BTreeMap<i64, f64>> = BTreeMap::new();
    for s in series {
        let key: Vec<String> = key_tags
            .iter()
            .map(|t| s.tags.get(*t).cloned().unwrap_or_default())
            .collect();
        let part = parts.entry(key).or_default();
        for (t, v) in bucket_values(s) {
            *total.entry(t).or_default() += v;
            *part.entry(t).or_default() += v;
        }
    }
    let buckets = total.len().max(1) as f64;
    let stats = |points: &BTreeMap<i64, f64>| {
        let sum: f64 = points.values().sum();
        let peak = points.values().copied().fold(0.0_f64, f64::max);
        (sum / buckets, peak)
    };
    let (average, peak) = stats(&total);
    let mut parts: Vec<Part> = parts
        .into_iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(key, points)| {
            let (average, peak) = stats(&points);
            Part {
                key,
                points: points.into_iter().collect(),
                average,
                peak,
            }
        })
        .collect();
    parts.sort_by(|a, b| b.average.total_cmp(&a.average).then(a.key.cmp(&b.key)));
    Usage {
        total: total.into_iter().collect(),
        average,
        peak,
        parts,
    }
}

fn bucket_values(s: &Series) -> impl Iterator<Item = (i64, f64)> + '_ {
    let value_col = s.columns.iter().position(|c| c == "mean").unwrap_or(1);
    s.values.iter().filter_map(move |row| {
        let t = row.first().and_then(Value::as_str).and_then(parse_time)?;
        let v = row.get(value_col).and_then(Value::as_f64)?;
        Some((t.timestamp(), v))
    })
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// One row of the points table (the seed's columns).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub time: DateTime<Utc>,
    pub pod: String,
    pub namespace: String,
    pub container: String,
    pub node: String,
    pub value: f64,
}

/// The raw points of a `SELECT *`, in InfluxDB's order.
pub fn points(series: &[Series]) -> Vec<Point> {
    let mut out = Vec::new();
    for s in series {
        let col = |name: &str| s.columns.iter().position(|c| c == name);
        let (time, value) = (col("time"), col("value"));
        let tags = ["pod_name", "namespace_name", "container_name", "nodename"].map(col);
        let text = |row: &[Value], i: Option<usize>| {
            i.and_then(|i| row.get(i))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        for row in &s.values {
            let Some(t) = time
                .and_then(|i| row.get(i))
                .and_then(Value::as_str)
                .and_then(parse_time)
            else {
                continue;
            };
            let Some(v) = value.and_then(|i| row.get(i)).and_then(Value::as_f64) else {
                continue;
            };
            out.push(Point {
                time: t,
                pod: text(row, tags[0]),
                namespace: text(row, tags[1]),
                container: text(row, tags[2]),
                node: text(row, tags[3]),
                value: v,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue;
    use chrono::TimeZone;
    use serde_json::json;

    fn series(tags: &[(&str, &str)], rows: &[(&str, f64)]) -> Series {
        Series {
            name: "cpu/usage_rate".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            columns: vec!["time".into(), "mean".into()],
            values: rows.iter().map(|(t, v)| vec![json!(t), json!(v)]).collect(),
        }
    }

    fn range() -> TimeRange {
        let from = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        TimeRange {
            from,
            to: from + chrono::Duration::hours(1),
            preset: None,
        }
    }

    #[test]
    fn bucket_means_add_up_across_pods_and_parts_add_up_to_the_total() {
        let (t0, t1) = ("2026-11-01T00:00:00Z", "2026-11-01T00:00:30Z");
        let data = [
            series(
                &[("namespace_name", "a"), ("pod_name", "p1")],
                &[(t0, 100.0), (t1, 300.0)],
            ),
            series(
                &[("namespace_name", "a"), ("pod_name", "p2")],
                &[(t0, 50.0)],
            ),
            series(
                &[("namespace_name", "b"), ("pod_name", "p3")],
                &[(t1, 500.0)],
            ),
        ];
        let u = fold(&data, &["namespace_name"]);
        let t = Utc
            .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
            .unwrap()
            .timestamp();
        assert_eq!(u.total, vec![(t, 150.0), (t + 30, 800.0)]);
        // Two buckets observed: averages are (150 + 800) / 2, a: (150 + 300) / 2, b: 500 / 2.
        assert_eq!(u.average, 475.0);
        assert_eq!(u.peak, 800.0);
        assert_eq!(u.parts[0].key, vec!["b"]);
        assert_eq!(u.parts[0].average, 250.0);
        assert_eq!(u.parts[1].average, 225.0);
        assert_eq!(u.parts[1].points, vec![(t, 150.0), (t + 30, 300.0)]);
    }

    #[test]
    fn statements_read_one_level_and_escape_the_selection() {
        let cpu = catalogue::find("cpu/usage_rate").unwrap();
        let sel = Selection::parse(
            Namespace::parse("shop"),
            Some("Deployment/we'b"),
            None,
            None,
        )
        .unwrap();
        assert_eq!(sel.drill(), Drill::Workload);
        let lvl = level(cpu, sel.drill());
        let s = usage_statement(
            cpu,
            &sel,
            &range(),
            lvl,
            breakdown_tags(cpu, sel.drill()),
            &Scope::All,
        )
        .unwrap();
        assert_eq!(
            s.to_influxql(),
            "SELECT mean(\"value\") AS \"mean\" FROM \"cpu/usage_rate\" WHERE \"type\" = 'pod' \
             AND \"namespace_name\" = 'shop' AND \"workload_kind\" = 'Deployment' \
             AND \"workload_name\" = 'we\\'b' AND time >= '2026-11-01T00:00:00Z' \
             AND time < '2026-11-01T01:00:00Z' GROUP BY time(30s, 0s), \"namespace_name\", \
             \"pod_name\" fill(none)"
        );
    }

    #[test]
    fn inside_a_pod_the_page_reads_containers() {
        let cpu = catalogue::find("cpu/usage_rate").unwrap();
        assert_eq!(level(cpu, Drill::Workload), "pod");
        assert_eq!(level(cpu, Drill::Pod), "pod_container");
        assert_eq!(breakdown_tags(cpu, Drill::Pod), &["container_name"]);
    }

    #[test]
    fn a_scoped_user_reads_only_their_namespaces() {
        let cpu = catalogue::find("cpu/usage_rate").unwrap();
        let scope = Scope::Only(vec!["shop".into()]);
        let all = Selection::default();
        let s = table_statement(cpu, &all, &range(), "pod", &scope).unwrap();
        assert!(
            s.to_influxql()
                .contains("\"namespace_name\" =~ /^(?:shop)$/"),
            "{}",
            s.to_influxql()
        );
        let other = Selection::parse(Namespace::parse("bank"), None, None, None).unwrap();
        assert!(table_statement(cpu, &other, &range(), "pod", &scope).is_err());
    }

    #[test]
    fn drilling_below_a_namespace_needs_one() {
        let e = Selection::parse(None, None, Some("p1"), None).unwrap_err();
        assert!(e.contains("choose a namespace first"), "{e}");
        let e = Selection::parse(Namespace::parse("a"), Some("web"), None, None).unwrap_err();
        assert!(e.contains("Deployment/web"), "{e}");
    }
}
