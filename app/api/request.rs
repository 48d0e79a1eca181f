//! The body of `POST /api/<metric>`, parsed into domain types at the edge. Every field is
//! optional (the seed's defaults apply); a field that is present but wrong is a 400 whose
//! message names the field and what it accepts.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

use crate::influx::ql::Func;
use crate::vocab::time::{self, parse_duration_seconds, MAX_DURATION_SECS};

/// Most raw points one request may ask for.
pub const MAX_LIMIT: u32 = 10_000;
/// The seed's default number of raw points.
pub const DEFAULT_LIMIT: u32 = 100;
/// Most time buckets one request may produce.
pub const MAX_BUCKETS: i64 = 10_000;
/// The named aggregation modes (plus `by-label:<key>`), as the API and its OpenAPI document
/// spell them.
pub const AGG_MODES: [(&str, Agg); 5] = [
    ("pod-by-namespace", Agg::PodByNamespace),
    ("all-namespace", Agg::AllNamespace),
    ("all-pod", Agg::AllPod),
    ("by-workload", Agg::ByWorkload),
    ("by-node", Agg::ByNode),
];
/// The aggregate functions of `fn`.
pub const FUNCS: [(&str, Func); 5] = [
    ("sum", Func::Sum),
    ("mean", Func::Mean),
    ("max", Func::Max),
    ("min", Func::Min),
    ("integral", Func::Integral),
];
/// The namespace the seed excluded from cluster-wide aggregations.
pub const SYSTEM_NAMESPACE: &str = "kube-system";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RequestError {
    #[error("the request body is not valid JSON ({0}); send an object such as {{\"agg\": \"all-namespace\"}}")]
    NotJson(String),
    #[error("the request body must be a JSON object such as {{\"agg\": \"all-namespace\"}}")]
    NotAnObject,
    #[error("{0}")]
    Forbidden(String),
    #[error("{field}: {message}")]
    Field {
        field: &'static str,
        message: String,
    },
}

pub(crate) fn field_error(field: &'static str, message: impl Into<String>) -> RequestError {
    RequestError::Field {
        field,
        message: message.into(),
    }
}

/// A Kubernetes namespace name (an RFC 1123 label), so it is safe and meaningful as a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace(String);

impl Namespace {
    pub fn parse(s: &str) -> Option<Self> {
        is_dns_label(s).then(|| Namespace(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_dns_label(s: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(ok_char)
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A Kubernetes label key: an optional DNS-subdomain prefix and `/`, then a name of at most
/// 63 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelKey(String);

impl LabelKey {
    pub fn parse(s: &str) -> Option<Self> {
        let (prefix, name) = match s.rsplit_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, s),
        };
        let name_ok = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric());
        let prefix_ok = prefix.is_none_or(|p| p.len() <= 253 && p.split('.').all(is_dns_label));
        (name_ok && prefix_ok).then(|| LabelKey(s.to_string()))
    }

    /// The InfluxDB tag that holds this label's value (see `KUBEMETER_LABEL_TAGS`).
    pub fn tag(&self) -> String {
        format!("label_{}", self.0)
    }
}

/// How points are grouped; the seed's three modes plus our extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agg {
    /// No aggregation: raw points, newest first.
    Raw,
    PodByNamespace,
    AllNamespace,
    AllPod,
    ByWorkload,
    ByNode,
    ByLabel(LabelKey),
}

/// The half-open time window `[begin, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub begin: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    pub namespace: Namespace,
    /// Whether the caller named a namespace (the extensions span all namespaces otherwise).
    pub namespace_given: bool,
    pub limit: u32,
    pub agg: Agg,
    pub func: Func,
    pub window: Window,
    /// Bucket width in seconds, for time series.
    pub step: Option<u64>,
}

impl MetricQuery {
    /// Parses the raw body; `now` fixes the default window (the last 60 minutes).
    pub fn parse(body: &[u8], now: DateTime<Utc>) -> Result<Self, RequestError> {
        let fields = if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err(RequestError::NotAnObject),
                Err(e) => return Err(RequestError::NotJson(e.to_string())),
            }
        };
        let present = |key: &str| fields.get(key).filter(|v| !v.is_null());

        let namespace = match present("namespace") {
            None => Namespace("default".to_string()),
            Some(v) => parse_namespace(v)?,
        };
        let limit = present("limit")
            .map(parse_limit)
            .transpose()?
            .unwrap_or(DEFAULT_LIMIT);
        let agg = present("agg")
            .map(parse_agg)
            .transpose()?
            .unwrap_or(Agg::Raw);
        let func = present("fn").map(parse_func).transpose()?;
        let end = present("timeEndInterval")
            .map(|v| parse_time("timeEndInterval", v))
            .transpose()?
            .unwrap_or(now);
        let begin = present("timeBeginInterval")
            .map(|v| parse_time("timeBeginInterval", v))
            .transpose()?
            .unwrap_or(end - Duration::minutes(60));
        if begin >= end {
            return Err(field_error(
                "timeBeginInterval",
                format!("must be before timeEndInterval ({begin} is not before {end})"),
            ));
        }
        let window = Window { begin, end };
        let step = present("step").map(|v| parse_step(v, window)).transpose()?;
        if agg == Agg::Raw && (step.is_some() || func.is_some()) {
            let field = if step.is_some() { "step" } else { "fn" };
            return Err(field_error(
                field,
                "applies to aggregations only; also set agg (e.g. \"all-namespace\")",
            ));
        }
        Ok(MetricQuery {
            namespace,
            namespace_given: present("namespace").is_some(),
            limit,
            agg,
            func: func.unwrap_or(Func::Sum),
            window,
            step,
        })
    }
}

fn parse_namespace(v: &Value) -> Result<Namespace, RequestError> {
    let s = v
        .as_str()
        .ok_or_else(|| field_error("namespace", "must be a string, e.g. \"default\""))?;
    Namespace::parse(s).ok_or_else(|| {
        field_error(
            "namespace",
            format!(
                "{s:?} is not a Kubernetes namespace name (lowercase letters, digits and '-', \
                 at most 63 characters)"
            ),
        )
    })
}

fn parse_limit(v: &Value) -> Result<u32, RequestError> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if (1..=u64::from(MAX_LIMIT)).contains(&n) => Ok(n as u32),
        _ => Err(field_error(
            "limit",
            format!("must be a whole number from 1 to {MAX_LIMIT}, got {v}"),
        )),
    }
}

fn parse_agg(v: &Value) -> Result<Agg, RequestError> {
    let s = v
        .as_str()
        .ok_or_else(|| field_error("agg", "must be a string such as \"pod-by-namespace\""))?;
    if let Some((_, agg)) = AGG_MODES.iter().find(|(name, _)| *name == s) {
        return Ok(agg.clone());
    }
    match s.strip_prefix("by-label:") {
        Some(key) => LabelKey::parse(key).map(Agg::ByLabel).ok_or_else(|| {
            field_error(
                "agg",
                format!("{key:?} is not a Kubernetes label key (e.g. team or example.com/team)"),
            )
        }),
        // The seed's contract: any other value means raw points.
        None => Ok(Agg::Raw),
    }
}

fn parse_func(v: &Value) -> Result<Func, RequestError> {
    let name = v.as_str().unwrap_or_default();
    FUNCS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .ok_or_else(|| {
            let names: Vec<String> = FUNCS.iter().map(|(n, _)| format!("{n:?}")).collect();
            field_error(
                "fn",
                format!("must be one of {}, got {v}", names.join(", ")),
            )
        })
}

fn parse_time(field: &'static str, v: &Value) -> Result<DateTime<Utc>, RequestError> {
    parse_instant(field, v.as_str().unwrap_or(&v.to_string()))
}

/// An instant ([`crate::vocab::time::parse_instant`]) for the field named `field`.
pub fn parse_instant(field: &'static str, s: &str) -> Result<DateTime<Utc>, RequestError> {
    time::parse_instant(s).map_err(|e| field_error(field, e.to_string()))
}

fn parse_step(v: &Value, window: Window) -> Result<u64, RequestError> {
    let secs = v.as_str().and_then(parse_duration_seconds).ok_or_else(|| {
        field_error(
            "step",
            format!(
                "{v} is not a duration; use a whole number and s, m, h or d, from 1s to \
                 {}d, e.g. \"1h\"",
                MAX_DURATION_SECS / 86_400
            ),
        )
    })?;
    // Both are far inside an i64: the window by the instants' span, the step by its bound.
    let span = (window.end - window.begin).num_seconds();
    let buckets = span / secs as i64 + 1;
    if buckets > MAX_BUCKETS {
        return Err(field_error(
            "step",
            format!(
                "{secs}s over this window makes {buckets} buckets; the most is {MAX_BUCKETS}, \
                 so use a longer step or a shorter window"
            ),
        ));
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
    }

    fn parse(body: &str) -> Result<MetricQuery, RequestError> {
        MetricQuery::parse(body.as_bytes(), now())
    }

    fn field_of(err: RequestError) -> &'static str {
        match err {
            RequestError::Field { field, .. } => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn an_empty_body_gets_the_seeds_defaults() {
        let q = parse("").unwrap();
        assert_eq!(q.namespace.as_str(), "default");
        assert!(!q.namespace_given);
        assert_eq!(q.limit, 100);
        assert_eq!(q.agg, Agg::Raw);
        assert_eq!(q.func, Func::Sum);
        assert_eq!(q.window.end, now());
        assert_eq!(
            q.window.begin,
            Utc.with_ymd_and_hms(2026, 11, 22, 11, 0, 0).unwrap()
        );
    }

    #[test]
    fn the_seed_readme_example_means_december_first_to_thirtieth() {
        let q = parse(
            r#"{"agg":"pod-by-namespace","timeBeginInterval":"2017-12-01","timeEndInterval":"2017-12-31"}"#,
        )
        .unwrap();
        assert_eq!(q.agg, Agg::PodByNamespace);
        assert_eq!(
            q.window.begin,
            Utc.with_ymd_and_hms(2017, 12, 1, 0, 0, 0).unwrap()
        );
        assert_eq!(
            q.window.end,
            Utc.with_ymd_and_hms(2017, 12, 31, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn limit_may_be_a_string_as_in_the_seed_or_a_number() {
        assert_eq!(parse(r#"{"limit":"7"}"#).unwrap().limit, 7);
        assert_eq!(parse(r#"{"limit":7}"#).unwrap().limit, 7);
    }

    #[test]
    fn an_injected_limit_is_refused() {
        assert_eq!(
            field_of(parse(r#"{"limit":"1; CREATE DATABASE x"}"#).unwrap_err()),
            "limit"
        );
        assert_eq!(field_of(parse(r#"{"limit":0}"#).unwrap_err()), "limit");
        assert_eq!(field_of(parse(r#"{"limit":10001}"#).unwrap_err()), "limit");
    }

    #[test]
    fn an_injected_namespace_is_refused() {
        let err = parse(r#"{"namespace":"default' OR namespace_name != '"}"#).unwrap_err();
        assert_eq!(field_of(err), "namespace");
        assert_eq!(
            field_of(parse(r#"{"namespace":3}"#).unwrap_err()),
            "namespace"
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused() {
        assert_eq!(parse("[1,2]").unwrap_err(), RequestError::NotAnObject);
        assert!(matches!(
            parse("{nope").unwrap_err(),
            RequestError::NotJson(_)
        ));
    }

    #[test]
    fn rfc3339_times_with_offsets_are_converted_to_utc() {
        let q = parse(
            r#"{"timeBeginInterval":"2017-12-01T01:00:00+01:00","timeEndInterval":"2017-12-02"}"#,
        )
        .unwrap();
        assert_eq!(
            q.window.begin,
            Utc.with_ymd_and_hms(2017, 12, 1, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn bad_dates_name_the_field() {
        let err = parse(r#"{"timeBeginInterval":"yesterday"}"#).unwrap_err();
        assert!(err.to_string().starts_with("timeBeginInterval:"), "{err}");
        assert!(err.to_string().contains("YYYY-MM-DD"), "{err}");
        assert_eq!(
            field_of(parse(r#"{"timeEndInterval":"2017-13-01"}"#).unwrap_err()),
            "timeEndInterval"
        );
    }

    #[test]
    fn an_empty_or_reversed_window_is_refused() {
        let body = r#"{"timeBeginInterval":"2017-12-02","timeEndInterval":"2017-12-01"}"#;
        assert_eq!(field_of(parse(body).unwrap_err()), "timeBeginInterval");
    }

    #[test]
    fn unknown_agg_values_mean_raw_points_as_in_the_seed() {
        assert_eq!(parse(r#"{"agg":"whatever"}"#).unwrap().agg, Agg::Raw);
    }

    #[test]
    fn by_label_takes_a_kubernetes_label_key() {
        let q = parse(r#"{"agg":"by-label:example.com/team"}"#).unwrap();
        assert_eq!(q.agg, Agg::ByLabel(LabelKey("example.com/team".into())));
        assert_eq!(
            field_of(parse(r#"{"agg":"by-label:a\"b"}"#).unwrap_err()),
            "agg"
        );
        assert_eq!(
            field_of(parse(r#"{"agg":"by-label:"}"#).unwrap_err()),
            "agg"
        );
    }

    #[test]
    fn step_and_fn_need_an_aggregation() {
        assert_eq!(field_of(parse(r#"{"step":"1h"}"#).unwrap_err()), "step");
        assert_eq!(field_of(parse(r#"{"fn":"max"}"#).unwrap_err()), "fn");
        assert_eq!(
            field_of(parse(r#"{"agg":"all-pod","fn":"median"}"#).unwrap_err()),
            "fn"
        );
    }

    #[test]
    fn steps_are_parsed_and_bounded() {
        assert_eq!(
            parse(r#"{"agg":"all-pod","step":"15m"}"#).unwrap().step,
            Some(900)
        );
        let too_many = r#"{"agg":"all-pod","step":"1s","timeBeginInterval":"2017-12-01","timeEndInterval":"2017-12-31"}"#;
        assert_eq!(field_of(parse(too_many).unwrap_err()), "step");
        assert_eq!(
            field_of(parse(r#"{"agg":"all-pod","step":"0h"}"#).unwrap_err()),
            "step"
        );
        assert_eq!(
            field_of(parse(r#"{"agg":"all-pod","step":"1w"}"#).unwrap_err()),
            "step"
        );
    }

    #[test]
    fn null_fields_count_as_absent() {
        let q = parse(r#"{"namespace":null,"limit":null,"agg":null}"#).unwrap();
        assert_eq!(q.namespace.as_str(), "default");
        assert_eq!(q.limit, 100);
    }
}
