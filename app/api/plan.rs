//! From a parsed request to one InfluxQL statement, and from InfluxDB's series back to the
//! seed's JSON rows. Aggregations read exactly one level of Heapster's `type` tag (the
//! catalogue says which), so a pod is never counted together with its containers or its
//! namespace.

use chrono::SecondsFormat;
use serde_json::{Map, Value};

use super::request::{Agg, MetricQuery, RequestError, SYSTEM_NAMESPACE};
use crate::catalogue::{Metric, PodLevel};
use crate::influx::ql::{Buckets, Cond, Func, GroupBy, Projection, Select, Source};
use crate::influx::Series;
use crate::users::Scope;

/// A JSON row of the response.
pub type Row = Map<String, Value>;

/// One statement and how to turn its result into rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub statement: Select,
    shape: Shape,
}

#[derive(Debug, Clone, PartialEq)]
enum Shape {
    Raw,
    Grouped {
        /// The key of the aggregated value: `sum`, `mean`, … (the seed's `sum`).
        value_key: &'static str,
        /// Group tags, in the order they appear in each row.
        tags: Vec<String>,
        /// Tags a row must have; rows without them are dropped (never an empty group).
        required: Vec<&'static str>,
        /// Without buckets every row reports the window's begin as its time.
        begin: Option<String>,
        /// The statement returns one series per InfluxDB series (integrals); rows of one
        /// group and time are added up here.
        add_series: bool,
    },
}

impl Plan {
    /// The plan for `q`, limited to what `scope` may see: a namespace outside it is refused,
    /// and aggregations over several namespaces read only the allowed ones.
    pub fn build(metric: &Metric, q: &MetricQuery, scope: &Scope) -> Result<Plan, RequestError> {
        let mut plan = match &q.agg {
            Agg::Raw => raw(metric, q),
            agg => grouped(metric, q, agg)?,
        };
        restrict(&mut plan.statement, metric, scope)?;
        Ok(plan)
    }

    /// The key of an aggregation's value in each row (`sum`, `max`, …); `value` for raw points.
    pub fn value_key(&self) -> &'static str {
        match &self.shape {
            Shape::Raw => "value",
            Shape::Grouped { value_key, .. } => value_key,
        }
    }

    pub fn influxql(&self) -> String {
        self.statement.to_influxql()
    }

    /// The response rows, in InfluxDB's order (newest first for raw points; by group, then
    /// by time, for aggregations).
    pub fn rows(&self, series: Vec<Series>) -> Vec<Row> {
        match &self.shape {
            Shape::Raw => series.into_iter().flat_map(raw_rows).collect(),
            Shape::Grouped {
                value_key,
                tags,
                required,
                begin,
                add_series,
            } => {
                let rows = series
                    .into_iter()
                    .filter(|s| {
                        required
                            .iter()
                            .all(|t| s.tags.get(*t).is_some_and(|v| !v.is_empty()))
                    })
                    .flat_map(|s| grouped_rows(s, value_key, tags, begin.as_deref()));
                if *add_series {
                    add_up(rows, value_key)
                } else {
                    rows.collect()
                }
            }
        }
    }
}

/// Limits `statement` to what `scope` may see: the one check both the API and the dashboard
/// use. A named namespace outside the scope is refused, node metrics are refused to scoped
/// users, and a statement over several namespaces reads only the allowed ones.
pub fn restrict(
    statement: &mut Select,
    metric: &Metric,
    scope: &Scope,
) -> Result<(), RequestError> {
    let Scope::Only(allowed) = scope else {
        return Ok(());
    };
    if metric.pod_level == PodLevel::NodeOnly {
        return Err(RequestError::Forbidden(format!(
            "{} is a node metric; your account may only read namespaces {}",
            metric.name,
            allowed.join(", ")
        )));
    }
    let named = statement.conditions.iter().find_map(|c| match c {
        Cond::TagEq(t, ns) if t == "namespace_name" => Some(ns.clone()),
        _ => None,
    });
    match named {
        Some(ns) if !scope.allows(&ns) => Err(RequestError::Forbidden(format!(
            "your account may not read namespace {ns:?}; it may read {}",
            allowed.join(", ")
        ))),
        Some(_) => Ok(()),
        None => {
            statement
                .conditions
                .push(Cond::TagIn("namespace_name".into(), allowed.clone()));
            Ok(())
        }
    }
}

fn window_conds(q: &MetricQuery) -> [Cond; 2] {
    [Cond::TimeGe(q.window.begin), Cond::TimeLt(q.window.end)]
}

fn raw(metric: &Metric, q: &MetricQuery) -> Plan {
    let mut s = Select::new(
        Projection::All,
        Source::Measurement(metric.name.to_string()),
    );
    // Node metrics carry no namespace; filtering them by one would always be empty.
    if metric.pod_level != PodLevel::NodeOnly || q.namespace_given {
        s.conditions.push(Cond::TagEq(
            "namespace_name".into(),
            q.namespace.as_str().into(),
        ));
    }
    s.conditions.extend(window_conds(q));
    s.newest_first = true;
    s.limit = Some(q.limit);
    Plan {
        statement: s,
        shape: Shape::Raw,
    }
}

fn grouped(metric: &Metric, q: &MetricQuery, agg: &Agg) -> Result<Plan, RequestError> {
    let node_metric = metric.pod_level == PodLevel::NodeOnly;
    if node_metric && *agg != Agg::ByNode {
        return Err(RequestError::Field {
            field: "agg",
            message: format!(
                "{} is a node metric; use \"by-node\" or no agg",
                metric.name
            ),
        });
    }
    let (tags, required): (Vec<String>, Vec<&'static str>) = match agg {
        Agg::PodByNamespace => (
            s(&["namespace_name", "pod_name"]),
            vec!["namespace_name", "pod_name"],
        ),
        Agg::AllNamespace => (s(&["namespace_name"]), vec!["namespace_name"]),
        Agg::AllPod => (
            s(&["pod_name", "namespace_name"]),
            vec!["namespace_name", "pod_name"],
        ),
        Agg::ByWorkload => (
            s(&["namespace_name", "workload_kind", "workload_name"]),
            vec!["namespace_name"],
        ),
        Agg::ByNode => (s(&["nodename"]), vec!["nodename"]),
        Agg::ByLabel(key) => (vec![key.tag()], vec![]),
        Agg::Raw => unreachable!("raw points are planned by `raw`"),
    };

    let mut conds = vec![Cond::TagEq(
        "type".into(),
        metric.pod_level.type_tag().into(),
    )];
    if !node_metric {
        conds.push(namespace_cond(q, agg));
    }
    conds.extend(window_conds(q));

    let buckets = q.step.map(|step| Buckets {
        step_seconds: step,
        offset_seconds: q.window.begin.timestamp().rem_euclid(step as i64) as u64,
    });
    let value_key = func_key(q.func);
    let mut statement = Select::new(call(q.func, "value"), measurement(metric));
    statement.conditions = conds;
    statement.buckets = buckets;
    // InfluxDB integrates whatever is in a group as one series; a group of many pods would be
    // integrated across pods. So each series is integrated on its own (GROUP BY *) and the
    // integrals are added up here. (A subquery would do it in InfluxDB, but 1.x merges the
    // outer groups unreliably when the inner series arrive out of order.)
    let add_series = q.func == Func::Integral;
    statement.group_by = if add_series {
        GroupBy::AllTags
    } else {
        GroupBy::Tags(tags.clone())
    };
    let begin = buckets
        .is_none()
        .then(|| q.window.begin.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    Ok(Plan {
        statement,
        shape: Shape::Grouped {
            value_key,
            tags,
            required,
            begin,
            add_series,
        },
    })
}

/// The seed's modes fix the namespace filter; the extensions honour `namespace` when it is
/// given and otherwise span every namespace but kube-system, as `all-namespace` does.
fn namespace_cond(q: &MetricQuery, agg: &Agg) -> Cond {
    let only_given = match agg {
        Agg::PodByNamespace => true,
        Agg::AllNamespace | Agg::AllPod => false,
        _ => q.namespace_given,
    };
    if only_given {
        Cond::TagEq("namespace_name".into(), q.namespace.as_str().into())
    } else {
        Cond::TagNe("namespace_name".into(), SYSTEM_NAMESPACE.into())
    }
}

fn s(tags: &[&str]) -> Vec<String> {
    tags.iter().map(|t| t.to_string()).collect()
}

fn measurement(metric: &Metric) -> Source {
    Source::Measurement(metric.name.to_string())
}

fn call(func: Func, field: &str) -> Projection {
    Projection::Call {
        func,
        field: field.into(),
        alias: func_key(func).into(),
    }
}

/// Adds up the rows of one group and time, in group order.
fn add_up(rows: impl Iterator<Item = Row>, value_key: &str) -> Vec<Row> {
    let mut sums: std::collections::BTreeMap<String, (Row, f64)> =
        std::collections::BTreeMap::new();
    for row in rows {
        let value = row.get(value_key).and_then(Value::as_f64).unwrap_or(0.0);
        // Group first, then time, as InfluxDB orders grouped rows.
        let mut key: Vec<&Value> = row
            .iter()
            .filter(|(k, _)| k.as_str() != value_key && k.as_str() != "time")
            .map(|(_, v)| v)
            .collect();
        key.extend(row.get("time"));
        let key = serde_json::to_string(&key).unwrap_or_default();
        sums.entry(key).or_insert_with(|| (row, 0.0)).1 += value;
    }
    sums.into_values()
        .map(|(mut row, total)| {
            row.insert(value_key.into(), serde_json::json!(total));
            row
        })
        .collect()
}

fn func_key(func: Func) -> &'static str {
    match func {
        Func::Sum => "sum",
        Func::Mean => "mean",
        Func::Max => "max",
        Func::Min => "min",
        Func::Integral => "integral",
        Func::Count => "count",
    }
}

fn raw_rows(series: Series) -> impl Iterator<Item = Row> {
    let Series {
        columns, values, ..
    } = series;
    values
        .into_iter()
        .map(move |vals| columns.iter().cloned().zip(vals).collect())
}

fn grouped_rows<'a>(
    series: Series,
    value_key: &'a str,
    tags: &'a [String],
    begin: Option<&'a str>,
) -> impl Iterator<Item = Row> + 'a {
    let value_col = series
        .columns
        .iter()
        .position(|c| c == value_key)
        .unwrap_or(1);
    let Series {
        tags: series_tags,
        values,
        ..
    } = series;
    values.into_iter().filter_map(move |vals| {
        let value = vals.get(value_col).cloned().filter(|v| !v.is_null())?;
        let time = match begin {
            Some(b) => Value::String(b.to_string()),
            None => vals.first().cloned().unwrap_or(Value::Null),
        };
        let mut row = Row::new();
        row.insert("time".into(), time);
        row.insert(value_key.into(), value);
        for tag in tags {
            let v = series_tags
                .get(tag)
                .filter(|v| !v.is_empty())
                .map_or(Value::Null, |v| Value::String(v.clone()));
            row.insert(tag.clone(), v);
        }
        Some(row)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn query(body: &str) -> MetricQuery {
        let now = Utc.with_ymd_and_hms(2017, 12, 31, 0, 0, 0).unwrap();
        MetricQuery::parse(body.as_bytes(), now).expect("valid body")
    }

    fn plan(metric: &str, body: &str) -> Plan {
        Plan::build(catalogue::find(metric).unwrap(), &query(body), &Scope::All).unwrap()
    }

    const WINDOW: &str = r#""timeBeginInterval":"2017-12-01","timeEndInterval":"2017-12-02""#;
    const TIME: &str = "time >= '2017-12-01T00:00:00Z' AND time < '2017-12-02T00:00:00Z'";

    #[test]
    fn raw_points_filter_one_namespace_newest_first() {
        let p = plan(
            "cpu/usage_rate",
            &format!(r#"{{"namespace":"cluster-3","limit":"5",{WINDOW}}}"#),
        );
        assert_eq!(
            p.influxql(),
            format!("SELECT * FROM \"cpu/usage_rate\" WHERE \"namespace_name\" = 'cluster-3' AND {TIME} ORDER BY time DESC LIMIT 5")
        );
    }

    #[test]
    fn all_namespace_reads_only_pod_series_and_skips_kube_system() {
        let p = plan(
            "cpu/usage_rate",
            &format!(r#"{{"agg":"all-namespace",{WINDOW}}}"#),
        );
        assert_eq!(
            p.influxql(),
            format!("SELECT sum(\"value\") AS \"sum\" FROM \"cpu/usage_rate\" WHERE \"type\" = 'pod' AND \"namespace_name\" != 'kube-system' AND {TIME} GROUP BY \"namespace_name\"")
        );
    }

    #[test]
    fn container_only_metrics_aggregate_container_series() {
        let p = plan(
            "uptime",
            &format!(r#"{{"agg":"pod-by-namespace",{WINDOW}}}"#),
        );
        assert!(p
            .influxql()
            .contains("\"type\" = 'pod_container' AND \"namespace_name\" = 'default'"));
    }

    #[test]
    fn integral_integrates_each_series_before_adding_them_up() {
        let p = plan(
            "memory/usage",
            &format!(r#"{{"agg":"all-namespace","fn":"integral",{WINDOW}}}"#),
        );
        assert_eq!(
            p.influxql(),
            format!("SELECT integral(\"value\", 1s) AS \"integral\" FROM \"memory/usage\" WHERE \"type\" = 'pod' AND \"namespace_name\" != 'kube-system' AND {TIME} GROUP BY *")
        );
        let series: Vec<Series> = serde_json::from_value(json!([
            {"name": "memory/usage", "tags": {"namespace_name": "b", "pod_name": "p1", "container_name": ""},
             "columns": ["time", "integral"], "values": [["1970-01-01T00:00:00Z", 1.5]]},
            {"name": "memory/usage", "tags": {"namespace_name": "a", "pod_name": "p2", "container_name": ""},
             "columns": ["time", "integral"], "values": [["1970-01-01T00:00:00Z", 10]]},
            {"name": "memory/usage", "tags": {"namespace_name": "b", "pod_name": "p3", "container_name": ""},
             "columns": ["time", "integral"], "values": [["1970-01-01T00:00:00Z", 2]]}
        ]))
        .unwrap();
        assert_eq!(
            serde_json::to_string(&p.rows(series)).unwrap(),
            r#"[{"time":"2017-12-01T00:00:00Z","integral":10.0,"namespace_name":"a"},{"time":"2017-12-01T00:00:00Z","integral":3.5,"namespace_name":"b"}]"#
        );
    }

    #[test]
    fn steps_align_buckets_to_the_window_begin() {
        let body = r#"{"agg":"by-node","step":"1h","timeBeginInterval":"2017-12-01T00:30:00Z","timeEndInterval":"2017-12-02"}"#;
        let q = plan("cpu/usage_rate", body).influxql();
        assert!(
            q.ends_with("GROUP BY time(3600s, 1800s), \"nodename\" fill(none)"),
            "{q}"
        );
    }

    #[test]
    fn a_scoped_account_reads_only_its_namespaces() {
        let scope = Scope::Only(vec!["team-a".into(), "team-b".into()]);
        let metric = catalogue::find("cpu/usage_rate").unwrap();
        let all = Plan::build(metric, &query(r#"{"agg":"all-namespace"}"#), &scope).unwrap();
        assert!(
            all.influxql()
                .contains("\"namespace_name\" =~ /^(?:team-a|team-b)$/"),
            "{}",
            all.influxql()
        );
        let other = Plan::build(metric, &query(r#"{"namespace":"team-c"}"#), &scope);
        assert!(matches!(other, Err(RequestError::Forbidden(_))));
        let own = Plan::build(metric, &query(r#"{"namespace":"team-b"}"#), &scope).unwrap();
        assert!(own.influxql().contains("\"namespace_name\" = 'team-b'"));
        let node = catalogue::find("cpu/node_capacity").unwrap();
        assert!(Plan::build(node, &query(r#"{"agg":"by-node"}"#), &scope).is_err());
    }

    #[test]
    fn node_metrics_only_aggregate_by_node() {
        let metric = catalogue::find("cpu/node_capacity").unwrap();
        assert!(Plan::build(metric, &query(r#"{"agg":"all-namespace"}"#), &Scope::All).is_err());
        let p = plan("cpu/node_capacity", r#"{"agg":"by-node"}"#);
        assert!(
            p.influxql().contains("WHERE \"type\" = 'node' AND time >="),
            "{}",
            p.influxql()
        );
    }

    #[test]
    fn grouped_rows_report_the_window_begin_and_drop_empty_groups() {
        let p = plan(
            "cpu/usage_rate",
            &format!(r#"{{"agg":"all-pod",{WINDOW}}}"#),
        );
        let series: Vec<Series> = serde_json::from_value(json!([
            {"name": "cpu/usage_rate", "tags": {"namespace_name": "a", "pod_name": "p"},
             "columns": ["time", "sum"], "values": [["2017-12-01T00:00:00.000000001Z", 5]]},
            {"name": "cpu/usage_rate", "tags": {"namespace_name": "a", "pod_name": ""},
             "columns": ["time", "sum"], "values": [["2017-12-01T00:00:00Z", 9]]}
        ]))
        .unwrap();
        let rows = p.rows(series);
        assert_eq!(
            serde_json::to_string(&rows).unwrap(),
            r#"[{"time":"2017-12-01T00:00:00Z","sum":5,"pod_name":"p","namespace_name":"a"}]"#
        );
    }
}
