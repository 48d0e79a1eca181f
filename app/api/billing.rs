//! `POST /api/billing` (JSON body) and `GET /api/billing?…` (query string): a billing
//! statement `{from, to, by, rows, totals}`, or the same as CSV with `format=csv`.
//!
//! [`StatementParams`] is also what the dashboard's billing page and `kubemeter export` parse,
//! so a period, a grouping and a mode mean the same thing everywhere.

use std::collections::BTreeMap;

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Datelike, Duration, DurationRound, Months, NaiveTime, Utc};
use serde_json::Value;

use super::request::{field_error, parse_instant, LabelKey, RequestError};
use super::ApiError;
use crate::billing::{render, GroupBy, Modes, Statement, Window};
use crate::metering::{Quiet, StatementQuery};
use crate::startup::AppState;

/// The longest statement window: a year (and a leap day).
pub const MAX_WINDOW_DAYS: i64 = 366;

const FIELDS: [&str; 5] = ["from", "to", "by", "mode", "format"];

/// How a statement is handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    pub fn render(self, st: &Statement) -> String {
        match self {
            Format::Json => render::to_json(st),
            Format::Csv => render::to_csv(st),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }
}

/// A statement request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementParams {
    pub window: Window,
    pub by: GroupBy,
    /// `None`: the configured modes (`KUBEMETER_BILLING_MODE`).
    pub modes: Option<Modes>,
    pub format: Format,
}

impl StatementParams {
    /// Parses string fields (from a query string or a JSON object). Without `from` and `to`
    /// the window is the current month so far (whole hours); unknown fields are refused so a
    /// typo is not silently a different statement.
    pub fn parse(
        fields: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<StatementParams, RequestError> {
        if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(field_error(
                "request",
                format!("unknown field {unknown:?}; the fields are from, to, by, mode and format"),
            ));
        }
        let get = |k: &str| fields.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let window = match (get("from"), get("to")) {
            (Some(from), Some(to)) => {
                window(parse_instant("from", from)?, parse_instant("to", to)?)?
            }
            (None, None) => month_to_date(now),
            (Some(_), None) | (None, Some(_)) => {
                return Err(field_error(
                    "from",
                    "give both from and to (e.g. 2026-10-01 and 2026-11-01), or neither for \
                     the current month so far",
                ))
            }
        };
        let by = get("by").map_or(Ok(GroupBy::Namespace), parse_by)?;
        let modes = get("mode")
            .map(|m| {
                Modes::parse(m).ok_or_else(|| {
                    field_error(
                        "mode",
                        format!(
                            "{m:?} is not a billing mode; use usage, request or max, or per \
                             resource, e.g. cpu=usage,memory=max"
                        ),
                    )
                })
            })
            .transpose()?;
        let format = match get("format") {
            None => Format::Json,
            Some(f) => Format::parse(f).ok_or_else(|| {
                field_error("format", format!("{f:?} is not a format; use json or csv"))
            })?,
        };
        Ok(StatementParams {
            window,
            by,
            modes,
            format,
        })
    }

    /// The engine's query for a caller who may see `scope`.
    pub fn query(&self, default_modes: Modes, scope: crate::users::Scope) -> StatementQuery {
        StatementQuery {
            window: self.window,
            by: self.by.clone(),
            modes: self.modes.unwrap_or(default_modes),
            scope,
        }
    }

    /// `kubemeter-namespace-2026-10-01-2026-11-01.csv`: names the download after its content.
    pub fn file_name(&self) -> String {
        let day = |t: i64| {
            DateTime::from_timestamp_nanos(t)
                .format("%Y-%m-%dT%H%M")
                .to_string()
        };
        let by = self
            .by
            .name()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        format!(
            "kubemeter-{by}-{}-{}.{}",
            day(self.window.from).trim_end_matches("T0000"),
            day(self.window.to).trim_end_matches("T0000"),
            self.format.extension()
        )
    }
}

/// `[from, to)` checked: not empty, not reversed, at most [`MAX_WINDOW_DAYS`].
pub fn window(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Window, RequestError> {
    if to <= from {
        return Err(field_error(
            "to",
            format!("must be after from ({to} is not after {from})"),
        ));
    }
    if to - from > Duration::days(MAX_WINDOW_DAYS) {
        return Err(field_error(
            "to",
            format!("the window is longer than {MAX_WINDOW_DAYS} days; ask for one year at most"),
        ));
    }
    let ns = |t: DateTime<Utc>, field| {
        t.timestamp_nanos_opt()
            .ok_or_else(|| field_error(field, "is outside the years 1677 to 2262"))
    };
    Ok(Window {
        from: ns(from, "from")?,
        to: ns(to, "to")?,
    })
}

/// The current month up to the start of this hour; in a month's first hour, the last month.
fn month_to_date(now: DateTime<Utc>) -> Window {
    let hour = now.duration_trunc(Duration::hours(1)).unwrap_or(now);
    let mut first = hour.date_naive().with_day(1).unwrap_or(hour.date_naive());
    if first.and_time(NaiveTime::MIN).and_utc() == hour {
        first = first.checked_sub_months(Months::new(1)).unwrap_or(first);
    }
    let ns = crate::vocab::time::to_ns;
    Window {
        // Clamped so that a clock at the very start of the representable time still gives a
        // window that is not reversed.
        from: ns(first.and_time(NaiveTime::MIN).and_utc()).max(crate::vocab::time::EARLIEST),
        to: ns(hour),
    }
}

fn parse_by(s: &str) -> Result<GroupBy, RequestError> {
    let bad = || {
        field_error(
            "by",
            format!("{s:?} is not a grouping; use namespace, workload, pod, node or label:<key>"),
        )
    };
    match GroupBy::parse(s).ok_or_else(bad)? {
        GroupBy::Label(key) if LabelKey::parse(&key).is_none() => Err(bad()),
        by => Ok(by),
    }
}

/// A JSON object of strings as fields; numbers and booleans are refused with the field named.
pub fn json_fields(body: &[u8]) -> Result<BTreeMap<String, String>, RequestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(BTreeMap::new());
    }
    let map = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(RequestError::NotAnObject),
        Err(e) => return Err(RequestError::NotJson(e.to_string())),
    };
    let mut fields = BTreeMap::new();
    for (k, v) in map {
        match v {
            Value::Null => {}
            Value::String(s) => {
                fields.insert(k, s);
            }
            other => {
                return Err(field_error(
                    "request",
                    format!("{k:?} must be a string, not {other}"),
                ))
            }
        }
    }
    Ok(fields)
}

/// A query string as fields (`from=2026-10-01&by=pod`).
pub fn query_fields(query: &str) -> Result<BTreeMap<String, String>, RequestError> {
    web::Query::<BTreeMap<String, String>>::from_query(query)
        .map(web::Query::into_inner)
        .map_err(|e| field_error("request", format!("the query string cannot be read: {e}")))
}

#[tracing::instrument(skip_all)]
pub async fn billing_statement(
    req: HttpRequest,
    super::body::Body(body): super::body::Body,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if req.method() != Method::GET && req.method() != Method::POST {
        return Err(ApiError::MethodNotAllowedHere("GET, POST"));
    }
    let principal = super::authenticate(&req, &state).await?;
    // The query string first, then the body: a billing system may put format=csv in the URL.
    let mut fields = query_fields(req.query_string())?;
    if req.method() == Method::POST {
        fields.extend(json_fields(&body)?);
    }
    let params = StatementParams::parse(&fields, Utc::now())?;
    let q = params.query(state.billing.modes, principal.scope);
    let statement = state
        .heavy
        .run(
            &req,
            &principal.username,
            state.metering.statement(&q, &Quiet),
        )
        .await??;
    Ok(statement_response(&params, &statement))
}

/// The statement in the asked format; CSV as a download named after its content.
pub fn statement_response(params: &StatementParams, st: &Statement) -> HttpResponse {
    let mut resp = HttpResponse::Ok();
    resp.content_type(params.format.content_type());
    // The JSON says it in `complete_to`; CSV has no place for it but a header.
    if let Some(t) = st.complete_to {
        let at = chrono::DateTime::from_timestamp_nanos(t)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        resp.insert_header(("X-Kubemeter-Complete-To", at));
    }
    if params.format == Format::Csv {
        resp.insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", params.file_name()),
        ));
    }
    resp.body(params.format.render(st))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 34, 56).unwrap()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<StatementParams, RequestError> {
        let fields = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        StatementParams::parse(&fields, now())
    }

    fn ns(y: i32, m: u32, d: u32, h: u32) -> i64 {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap()
    }

    #[test]
    fn no_fields_mean_this_month_so_far_by_namespace_as_json() {
        let p = parse(&[]).unwrap();
        assert_eq!(
            p.window,
            Window {
                from: ns(2026, 11, 1, 0),
                to: ns(2026, 11, 22, 12)
            }
        );
        assert_eq!(p.by, GroupBy::Namespace);
        assert_eq!(p.format, Format::Json);
        assert_eq!(p.modes, None);
    }

    #[test]
    fn in_the_first_hour_of_a_month_the_default_is_the_last_month() {
        let fields = BTreeMap::new();
        let jan = Utc.with_ymd_and_hms(2027, 1, 1, 0, 10, 0).unwrap();
        let p = StatementParams::parse(&fields, jan).unwrap();
        assert_eq!(p.window.from, ns(2026, 12, 1, 0));
        assert_eq!(p.window.to, ns(2027, 1, 1, 0));
    }

    #[test]
    fn dates_are_midnight_utc_and_the_end_is_excluded() {
        let p = parse(&[
            ("from", "2026-10-01"),
            ("to", "2026-11-01"),
            ("by", "label:team"),
            ("mode", "usage"),
            ("format", "csv"),
        ])
        .unwrap();
        assert_eq!(p.window.from, ns(2026, 10, 1, 0));
        assert_eq!(p.window.to, ns(2026, 11, 1, 0));
        assert_eq!(p.by, GroupBy::Label("team".into()));
        assert_eq!(p.modes, Modes::parse("usage"));
        assert_eq!(
            p.file_name(),
            "kubemeter-label_team-2026-10-01-2026-11-01.csv"
        );
    }

    #[test]
    fn each_mistake_names_its_field() {
        let field = |pairs: &[(&str, &str)]| match parse(pairs) {
            Err(RequestError::Field { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        };
        assert_eq!(field(&[("from", "2026-10-01")]), "from");
        assert_eq!(
            field(&[("from", "yesterday"), ("to", "2026-10-01")]),
            "from"
        );
        assert_eq!(field(&[("from", "2026-10-02"), ("to", "2026-10-01")]), "to");
        assert_eq!(field(&[("from", "2020-01-01"), ("to", "2026-10-01")]), "to");
        assert_eq!(field(&[("by", "team")]), "by");
        assert_eq!(field(&[("by", "label:bad key")]), "by");
        assert_eq!(field(&[("mode", "cheap")]), "mode");
        assert_eq!(field(&[("format", "xml")]), "format");
        assert_eq!(field(&[("form", "2026-10-01")]), "request");
    }

    #[test]
    fn json_bodies_take_strings_only() {
        assert_eq!(
            json_fields(br#"{"from":"2026-10-01","by":null}"#).unwrap(),
            BTreeMap::from([("from".to_string(), "2026-10-01".to_string())])
        );
        assert!(json_fields(br#"{"from":20261001}"#).is_err());
        assert_eq!(json_fields(b"[1]"), Err(RequestError::NotAnObject));
    }
}
