//! Reading InfluxDB's answers (`epoch=ns`): tags into a pod's identity, rows into integer
//! `(time, value)` pairs.

use std::collections::BTreeMap;

use crate::billing::PodIdentity;
use crate::influx::Series;

/// Tag keys of the identity, as the collector writes them.
pub const NAMESPACE: &str = "namespace_name";
pub const POD: &str = "pod_name";
pub const POD_UID: &str = "pod_id";
pub const NODE: &str = "nodename";
pub const WORKLOAD_KIND: &str = "workload_kind";
pub const WORKLOAD_NAME: &str = "workload_name";
pub const CONTAINER: &str = "container_name";
/// `label_<key>` tags carry the configured labels (`KUBEMETER_LABEL_TAGS`).
pub const LABEL_PREFIX: &str = "label_";

fn tag<'a>(tags: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    tags.get(key).map_or("", String::as_str)
}

/// The pod a series belongs to. `GROUP BY *` reports every tag key of the measurement, with
/// an empty value where a series lacks it, so empty label tags are left out.
pub fn identity(tags: &BTreeMap<String, String>) -> PodIdentity {
    let labels = tags
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .filter_map(|(k, v)| Some((k.strip_prefix(LABEL_PREFIX)?.to_string(), v.clone())))
        .collect();
    PodIdentity {
        namespace: tag(tags, NAMESPACE).to_string(),
        pod: tag(tags, POD).to_string(),
        pod_uid: tag(tags, POD_UID).to_string(),
        workload_kind: tag(tags, WORKLOAD_KIND).to_string(),
        workload_name: tag(tags, WORKLOAD_NAME).to_string(),
        node: tag(tags, NODE).to_string(),
        labels,
        // Host-network pods have no network series at all (the collector writes none), so
        // nothing of theirs is billed as network whatever this flag says.
        host_network: false,
        gpu_model: None,
    }
}

/// The container a series belongs to (empty for pod-level series).
pub fn container(tags: &BTreeMap<String, String>) -> String {
    tag(tags, CONTAINER).to_string()
}

/// A non-negative integer value. The collector writes integers; a float (another writer) is
/// rounded, a negative or non-numeric value is no sample.
fn value_of(v: &serde_json::Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f.round() as u64)
    })
}

/// The `(time ns, value)` rows of a series whose columns are `time` and one value column.
pub fn points(series: &Series) -> impl Iterator<Item = (i64, u64)> + '_ {
    series
        .values
        .iter()
        .filter_map(|row| Some((row.first()?.as_i64()?, value_of(row.get(1)?)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn series(tags: &[(&str, &str)], values: Vec<Vec<serde_json::Value>>) -> Series {
        Series {
            name: "cpu/usage".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            columns: vec!["time".into(), "value".into()],
            values,
        }
    }

    #[test]
    fn tags_become_the_identity_with_only_the_labels_that_are_set() {
        let s = series(
            &[
                ("namespace_name", "shop"),
                ("pod_name", "web-1"),
                ("pod_id", "u-1"),
                ("nodename", "n1"),
                ("workload_kind", "Deployment"),
                ("workload_name", "web"),
                ("label_team", "a"),
                ("label_cost-center", ""),
                ("labels", "app:web"),
                ("container_name", "app"),
            ],
            vec![],
        );
        let id = identity(&s.tags);
        assert_eq!(id.namespace, "shop");
        assert_eq!(id.pod_uid, "u-1");
        assert_eq!(id.node, "n1");
        assert_eq!(
            id.labels.into_iter().collect::<Vec<_>>(),
            vec![("team".to_string(), "a".to_string())]
        );
        assert_eq!(container(&s.tags), "app");
    }

    #[test]
    fn rows_are_integer_times_and_values_and_bad_rows_are_skipped() {
        let s = series(
            &[],
            vec![
                vec![json!(1_000_000_000_i64), json!(42)],
                vec![json!(2_000_000_000_i64), json!(7.6)],
                vec![json!(3_000_000_000_i64), json!(-1)],
                vec![json!(4_000_000_000_i64), json!(null)],
            ],
        );
        assert_eq!(
            points(&s).collect::<Vec<_>>(),
            vec![(1_000_000_000, 42), (2_000_000_000, 8)]
        );
    }
}
