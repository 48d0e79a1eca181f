//! `POST /api/<metric>`: the seed's contract (headers `X-USERNAME`/`X-PASSWORD`, an optional
//! JSON body, its four response shapes), with its faults fixed. See SEED-API.md.

pub mod billing;
pub mod body;
mod error;
pub mod hourly;
pub mod openapi;
pub mod plan;
pub mod request;

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde_json::json;

pub use error::{influx_status, refusal_status, ApiError};
use plan::Plan;
use request::MetricQuery;

use crate::catalogue;
use crate::startup::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    // Before the catch-all metric route, which would take it for a metric.
    cfg.route("/api/openapi.json", web::get().to(openapi::openapi));
    cfg.service(
        web::resource(["/api/billing", "/api/billing/"])
            .default_service(web::to(billing::billing_statement)),
    );
    // Two resources (not one with two paths) so each has its own pattern in /metrics.
    for path in ["/api", "/api/{metric:.*}"] {
        cfg.service(web::resource(path).default_service(web::to(query_metric)));
    }
}

#[tracing::instrument(skip_all, fields(metric = %req.match_info().get("metric").unwrap_or("")))]
async fn query_metric(
    req: HttpRequest,
    body::Body(body): body::Body,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if req.method() != Method::POST {
        return Err(ApiError::MethodNotAllowed);
    }
    let name = req
        .match_info()
        .get("metric")
        .unwrap_or("")
        .trim_end_matches('/');
    if name.is_empty() {
        return Err(ApiError::NotFound("Request not found".into()));
    }
    let principal = authenticate(&req, &state).await?;
    let metric = catalogue::find(name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "Unknown metric {name:?}; the metrics are listed in the README (e.g. cpu/usage_rate)"
        ))
    })?;
    let query = MetricQuery::parse(&body, Utc::now())?;
    let plan = Plan::build(metric, &query, &principal.scope)?;
    let read = async {
        match hourly::split(&plan, metric, &query) {
            Some(split) if split.ready(&state.influx).await? => {
                split.rows(&plan, &state.influx).await
            }
            _ => Ok(plan.rows(state.influx.query(&plan.influxql()).await?)),
        }
    };
    // Raw points too: 10 000 of them are megabytes in memory, so they share the limits.
    let rows = state.heavy.run(&req, &principal.username, read).await??;
    if rows.is_empty() {
        return Ok(
            HttpResponse::Ok().json(json!({"code": 200, "message": "Query returns empty set"}))
        );
    }
    Ok(HttpResponse::Ok().json(rows))
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The caller of an API request, from its `X-USERNAME`/`X-PASSWORD` headers and the address
/// it connects from (the same limits apply to every route that takes these headers).
pub async fn authenticate(
    req: &HttpRequest,
    state: &AppState,
) -> Result<crate::auth::Principal, ApiError> {
    let client = req.peer_addr().map(|a| a.ip());
    Ok(state
        .auth
        .api(client, header(req, "x-username"), header(req, "x-password"))
        .await?)
}
