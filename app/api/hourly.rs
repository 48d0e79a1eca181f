//! Aggregations over long windows read the hourly rollups ([`crate::jobs::aggregates`]) for
//! the window's whole hours and raw samples for its partial edges, and add the parts up. The
//! answer is the raw answer: a sum of sums, a min of mins, a max of maxes. Means, integrals
//! and time steps are not split (they read raw data), nor are hours not yet rolled up.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Number, Value};

use super::plan::{Plan, Row};
use super::request::{Agg, MetricQuery};
use crate::catalogue::{self, Metric, PodLevel};
use crate::influx::ql::{Cond, Func, Projection, Select, Source};
use crate::influx::{InfluxClient, InfluxError};
use crate::jobs::aggregates::all_rolled_up;

/// The statements whose rows, added up, answer the plan.
pub struct Split {
    hours: (DateTime<Utc>, DateTime<Utc>),
    parts: Vec<Select>,
    func: Func,
}

/// The split of `plan` into rollups for whole hours and raw edges, when one applies.
pub fn split(plan: &Plan, metric: &Metric, q: &MetricQuery) -> Option<Split> {
    let rollup_field = match q.func {
        Func::Sum => "sum",
        Func::Min => "min",
        Func::Max => "max",
        _ => return None,
    };
    if q.agg == Agg::Raw || q.step.is_some() || metric.pod_level == PodLevel::NodeOnly {
        return None;
    }
    let hour = Duration::hours(1);
    let floor = |t: DateTime<Utc>| t.duration_trunc(hour).ok();
    let h1 = floor(q.window.end)?;
    let h0 = floor(q.window.begin).map(|f| if f < q.window.begin { f + hour } else { f })?;
    if h0 >= h1 {
        return None;
    }
    let mut rollup = with_window(&plan.statement, h0, h1);
    rollup.from = Source::Measurement(catalogue::hourly(metric));
    if let Projection::Call { func, alias, .. } = &plan.statement.projection {
        rollup.projection = Projection::Call {
            func: *func,
            field: rollup_field.into(),
            alias: alias.clone(),
        };
    }
    let mut parts = vec![rollup];
    if q.window.begin < h0 {
        parts.push(with_window(&plan.statement, q.window.begin, h0));
    }
    if h1 < q.window.end {
        parts.push(with_window(&plan.statement, h1, q.window.end));
    }
    Some(Split {
        hours: (h0, h1),
        parts,
        func: q.func,
    })
}

/// `s` over `[from, to)` instead of its own window.
fn with_window(s: &Select, from: DateTime<Utc>, to: DateTime<Utc>) -> Select {
    let mut s = s.clone();
    s.conditions
        .retain(|c| !matches!(c, Cond::TimeGe(_) | Cond::TimeLt(_)));
    s.conditions.push(Cond::TimeGe(from));
    s.conditions.push(Cond::TimeLt(to));
    s
}

impl Split {
    /// Whether every whole hour of the window has its rollups (else the plan reads raw).
    pub async fn ready(&self, influx: &InfluxClient) -> Result<bool, InfluxError> {
        all_rolled_up(influx, self.hours.0, self.hours.1).await
    }

    /// The plan's rows, from the parts added up.
    pub async fn rows(&self, plan: &Plan, influx: &InfluxClient) -> Result<Vec<Row>, InfluxError> {
        let queries = self.parts.iter().map(|s| {
            let q = s.to_influxql();
            async move { influx.query(&q).await }
        });
        let results = futures::future::try_join_all(queries).await?;
        let parts = results.into_iter().map(|series| plan.rows(series));
        Ok(combine(parts, plan.value_key(), self.func))
    }
}

/// Rows of several parts as one: rows of the same group (every key but the value) combined
/// with `func`, in the order InfluxDB gives groups (by tag values, keys alphabetical).
fn combine(parts: impl Iterator<Item = Vec<Row>>, value_key: &str, func: Func) -> Vec<Row> {
    let mut groups: std::collections::BTreeMap<Vec<(String, String)>, Row> = Default::default();
    for row in parts.flatten() {
        let mut key: Vec<(String, String)> = row
            .iter()
            .filter(|(k, _)| k.as_str() != value_key)
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        key.sort();
        match groups.get_mut(&key) {
            None => {
                groups.insert(key, row);
            }
            Some(acc) => {
                let (a, b) = (acc.get(value_key).cloned(), row.get(value_key));
                if let (Some(a), Some(b)) = (a, b) {
                    acc.insert(value_key.to_string(), combine_values(&a, b, func));
                }
            }
        }
    }
    groups.into_values().collect()
}

/// Integers stay integers (InfluxDB's sums of integer fields are integers).
fn combine_values(a: &Value, b: &Value, func: Func) -> Value {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        let v = match func {
            Func::Min => x.min(y),
            Func::Max => x.max(y),
            _ => x.saturating_add(y),
        };
        return Value::Number(v.into());
    }
    let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
    let v = match func {
        Func::Min => x.min(y),
        Func::Max => x.max(y),
        _ => x + y,
    };
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn query(body: &str) -> MetricQuery {
        MetricQuery::parse(body.as_bytes(), Utc::now()).unwrap()
    }

    fn plan_of(body: &str) -> (Plan, MetricQuery, &'static Metric) {
        let m = catalogue::find("cpu/usage_rate").unwrap();
        let q = query(body);
        (Plan::build(m, &q, &crate::users::Scope::All).unwrap(), q, m)
    }

    #[test]
    fn a_window_with_partial_hours_reads_rollups_inside_and_raw_at_both_edges() {
        let (plan, q, m) = plan_of(
            r#"{"agg":"all-namespace","timeBeginInterval":"2026-11-01T00:30:00Z","timeEndInterval":"2026-11-01T04:10:00Z"}"#,
        );
        let s = split(&plan, m, &q).unwrap();
        let at = |h, min| Utc.with_ymd_and_hms(2026, 11, 1, h, min, 0).unwrap();
        assert_eq!(s.hours, (at(1, 0), at(4, 0)));
        let texts: Vec<String> = s.parts.iter().map(Select::to_influxql).collect();
        assert_eq!(texts.len(), 3);
        assert!(texts[0].starts_with(
            "SELECT sum(\"sum\") AS \"sum\" FROM \"cpu/usage_rate/hourly\" WHERE \"type\" = 'pod'"
        ));
        assert!(
            texts[0].contains("time >= '2026-11-01T01:00:00Z' AND time < '2026-11-01T04:00:00Z'")
        );
        assert!(texts[1].starts_with("SELECT sum(\"value\") AS \"sum\" FROM \"cpu/usage_rate\" "));
        assert!(
            texts[1].contains("time >= '2026-11-01T00:30:00Z' AND time < '2026-11-01T01:00:00Z'")
        );
        assert!(
            texts[2].contains("time >= '2026-11-01T04:00:00Z' AND time < '2026-11-01T04:10:00Z'")
        );
    }

    #[test]
    fn means_steps_and_short_windows_read_raw_data() {
        let w = r#""timeBeginInterval":"2026-11-01T00:30:00Z","timeEndInterval":"2026-11-01T04:10:00Z""#;
        for body in [
            format!(r#"{{"agg":"all-namespace","fn":"mean",{w}}}"#),
            format!(r#"{{"agg":"all-namespace","fn":"integral",{w}}}"#),
            format!(r#"{{"agg":"all-namespace","step":"1h",{w}}}"#),
            format!(r#"{{{w}}}"#),
            r#"{"agg":"all-pod","timeBeginInterval":"2026-11-01T00:30:00Z","timeEndInterval":"2026-11-01T01:20:00Z"}"#.to_string(),
        ] {
            let (plan, q, m) = plan_of(&body);
            assert!(split(&plan, m, &q).is_none(), "{body}");
        }
    }

    #[test]
    fn parts_add_up_per_group_and_keep_integers() {
        let row = |ns: &str, v: Value| -> Row {
            serde_json::from_value(serde_json::json!({"namespace_name": ns, "time": "t", "sum": v}))
                .unwrap()
        };
        let parts = vec![
            vec![row("b", 5.into()), row("a", 1.into())],
            vec![row("a", 2.into())],
            vec![row("b", serde_json::json!(0.5))],
        ];
        let rows = combine(parts.into_iter(), "sum", Func::Sum);
        assert_eq!(
            rows,
            vec![row("a", 3.into()), row("b", serde_json::json!(5.5))]
        );
        let parts = vec![vec![row("a", 7.into())], vec![row("a", 3.into())]];
        assert_eq!(
            combine(parts.into_iter(), "sum", Func::Min),
            vec![row("a", 3.into())]
        );
    }
}
