//! The dashboard under `/web`: sign-in with server-side sessions, the cluster at a glance,
//! and a page per metric with drill-down namespace → workload → pod → container. Pages are
//! rendered on the server with askama (`templates/`); charts are SVG; the one stylesheet is
//! `static/kubemeter.css`, compiled into the binary so the pages work offline.

mod billing;
mod chart;
mod error;
mod format;
mod layout;
mod login;
pub(crate) mod range;
mod session;
mod stats;
mod usage;

use actix_web::http::header;
use actix_web::{web, HttpResponse};

pub use error::WebError;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.route("/web", web::get().to(home))
        .route("/web/", web::get().to(home))
        .route("/web/static/kubemeter.css", web::get().to(stylesheet))
        .route("/web/login", web::get().to(login::login_page))
        .route("/web/login/", web::get().to(login::login_page))
        .route("/web/authentication/signin", web::post().to(login::sign_in))
        .route(
            "/web/authentication/signout",
            web::post().to(login::sign_out),
        )
        .route("/web/billing", web::get().to(billing::show_billing))
        .route("/web/billing.csv", web::get().to(billing::download_csv))
        .route("/web/stats/index", web::get().to(stats::show_index))
        .route("/web/stats/{rest:.+}", web::get().to(stats::show_metric));
}

async fn home() -> HttpResponse {
    see_other("/web/stats/index")
}

/// A query parameter that was given and is not blank.
pub(crate) fn given(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// A redirect that turns a POST into a GET.
pub(crate) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../../static/kubemeter.css"))
}

/// A rendered page with the headers every dashboard page carries: no script may run, nothing
/// may frame it, forms post only here.
pub(crate) fn html(status: actix_web::http::StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}
