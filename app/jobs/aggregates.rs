//! Hourly rollups of every pod-level metric, for the seed's aggregations (`all-namespace`,
//! `all-pod`, …) over long windows: per series and hour, the `sum`, `count`, `min` and `max` of
//! its samples, computed by InfluxDB itself (`SELECT … INTO`) next to the raw data.
//!
//! A sum of sums, a min of mins and a max of maxes are exact, so a window's answer is the
//! rollups of its whole hours plus the raw samples of its partial edges. Rewriting an hour
//! writes the same points again (same series, same timestamp), so re-running it after late
//! data arrived replaces the old values: the job is idempotent. An hour counts as rolled up
//! once every metric of it was written; then a point in [`ROLLED_UP_HOURS`] says so.

use chrono::{DateTime, Duration, Utc};
use futures::{StreamExt, TryStreamExt};

use crate::catalogue::{self, Metric, PodLevel, ROLLED_UP_HOURS};
use crate::influx::line::{write_point, Value};
use crate::influx::ql::{Buckets, Cond, Func, GroupBy, Projection, Select, Source};
use crate::influx::{InfluxClient, InfluxError};

/// Metrics rolled up at once: InfluxDB works on a few `INTO` queries in parallel well.
const PARALLEL: usize = 4;

/// The metrics the seed's aggregations read per pod.
pub fn pod_metrics() -> impl Iterator<Item = &'static Metric> {
    catalogue::METRICS
        .iter()
        .filter(|m| m.pod_level != PodLevel::NodeOnly)
}

/// `SELECT sum, count, min, max INTO "<metric>/hourly"` for the hour starting at `hour`.
pub fn rollup_statement(metric: &Metric, hour: DateTime<Utc>) -> Select {
    let calls = [
        (Func::Sum, "sum"),
        (Func::Count, "count"),
        (Func::Min, "min"),
        (Func::Max, "max"),
    ];
    let mut s = Select::new(
        Projection::Calls(
            calls
                .iter()
                .map(|(f, alias)| (*f, "value".to_string(), alias.to_string()))
                .collect(),
        ),
        Source::Measurement(metric.name.to_string()),
    );
    s.into = Some(catalogue::hourly(metric));
    s.conditions = vec![
        Cond::TagEq("type".into(), metric.pod_level.type_tag().into()),
        Cond::TimeGe(hour),
        Cond::TimeLt(hour + Duration::hours(1)),
    ];
    s.buckets = Some(Buckets {
        step_seconds: 3600,
        offset_seconds: 0,
    });
    // Every tag kept, so the rollups group exactly like the raw series.
    s.group_by = GroupBy::AllTags;
    s
}

/// Rolls up the hour starting at `hour` (a whole UTC hour) for every pod-level metric, then
/// marks it done.
pub async fn roll_up_hour(influx: &InfluxClient, hour: DateTime<Utc>) -> Result<(), InfluxError> {
    let statements: Vec<String> = pod_metrics()
        .map(|m| rollup_statement(m, hour).to_influxql())
        .collect();
    let count = statements.len();
    futures::stream::iter(statements)
        .map(|q| async move { influx.query(&q).await.map(|_| ()) })
        .buffer_unordered(PARALLEL)
        .try_collect::<Vec<()>>()
        .await?;
    let mut line = String::new();
    let ns = hour.timestamp_nanos_opt().unwrap_or_default();
    // The measurement name is a constant, so encoding cannot fail; an error would only skip
    // the mark, leaving the hour to raw reads.
    if write_point(
        &mut line,
        ROLLED_UP_HOURS,
        &[],
        Value::Int(count as i64),
        ns,
    )
    .is_ok()
    {
        influx.write(line).await?;
    }
    Ok(())
}

/// Whether every whole hour in `[from, to)` is rolled up.
pub async fn all_rolled_up(
    influx: &InfluxClient,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<bool, InfluxError> {
    let hours = (to - from).num_hours();
    if hours <= 0 {
        return Ok(false);
    }
    let mut s = Select::new(
        Projection::Call {
            func: Func::Count,
            field: "value".into(),
            alias: "hours".into(),
        },
        Source::Measurement(ROLLED_UP_HOURS.into()),
    );
    s.conditions = vec![Cond::TimeGe(from), Cond::TimeLt(to)];
    let series = influx.query(&s.to_influxql()).await?;
    let done = series
        .first()
        .and_then(|s| s.values.first())
        .and_then(|row| row.get(1))
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0);
    Ok(done >= hours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn an_hour_is_rolled_up_by_influxdb_into_the_hourly_measurement() {
        let hour = Utc.with_ymd_and_hms(2026, 11, 1, 7, 0, 0).unwrap();
        let m = catalogue::find("cpu/usage_rate").unwrap();
        assert_eq!(
            rollup_statement(m, hour).to_influxql(),
            "SELECT sum(\"value\") AS \"sum\", count(\"value\") AS \"count\", \
             min(\"value\") AS \"min\", max(\"value\") AS \"max\" \
             INTO \"cpu/usage_rate/hourly\" FROM \"cpu/usage_rate\" \
             WHERE \"type\" = 'pod' AND time >= '2026-11-01T07:00:00Z' \
             AND time < '2026-11-01T08:00:00Z' GROUP BY time(3600s, 0s), * fill(none)"
        );
    }

    #[test]
    fn node_metrics_are_not_rolled_up_per_pod() {
        assert!(pod_metrics().all(|m| m.pod_level != PodLevel::NodeOnly));
        assert!(pod_metrics().any(|m| m.name == "cpu/usage_rate"));
    }
}
