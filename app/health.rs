//! `/healthz`: the process answers. `/readyz`: it can reach what it needs (InfluxDB).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::api::error_chain;
use crate::startup::AppState;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match state.influx.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready", "influxdb": "ok"})),
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "not ready: InfluxDB unreachable");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "not ready", "influxdb": e.to_string()}))
        }
    }
}
