//! `/healthz`: the process answers. `/readyz`: it can reach what it needs (InfluxDB).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::startup::AppState;
use crate::telemetry::error_chain;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let influx = state.influx.ping().await.map_err(|e| error_chain(&e));
    let sql = match &state.db {
        Some(db) => db.ping().await.map_err(|e| error_chain(&e)),
        None => Ok(()),
    };
    let show = |r: &Result<(), String>| r.as_ref().err().cloned().unwrap_or_else(|| "ok".into());
    let body = json!({"influxdb": show(&influx), "sql": show(&sql)});
    if influx.is_ok() && sql.is_ok() {
        HttpResponse::Ok().json(json!({"status": "ready", "checks": body}))
    } else {
        tracing::warn!(checks = %body, "not ready");
        HttpResponse::ServiceUnavailable().json(json!({"status": "not ready", "checks": body}))
    }
}
