//! One error type for the JSON API, one JSON body shape: `{"code": N, "message": "…"}`
//! (the seed's). Internal failures are logged here, once, and answered with a generic
//! sentence; caller mistakes get a sentence that says what to fix.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use super::request::RequestError;
use crate::auth::AuthError;
use crate::heavy::{self, Refusal};
use crate::influx::InfluxError;
use crate::metering::MeteringError;
use crate::telemetry::error_chain;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("Method not allowed; use POST")]
    MethodNotAllowed,
    /// The methods a resource other than a metric takes, e.g. `GET, POST`.
    #[error("Method not allowed; use {0}")]
    MethodNotAllowedHere(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    BadRequest(#[from] RequestError),
    #[error(transparent)]
    Influx(#[from] InfluxError),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error("the request body is larger than {0} bytes; a query is a handful of short fields")]
    TooLarge(usize),
    #[error("the request body did not arrive within {} s", .0.as_secs())]
    SlowBody(std::time::Duration),
    #[error("the request body could not be read: {0}")]
    BadBody(String),
}

impl From<MeteringError> for ApiError {
    fn from(e: MeteringError) -> ApiError {
        match e {
            MeteringError::Influx(e) => ApiError::Influx(e),
        }
    }
}

impl ApiError {
    fn message(&self) -> String {
        match self {
            ApiError::Influx(InfluxError::Unreachable { .. }) => "Can't connect to influxdb".into(),
            ApiError::Influx(InfluxError::DatabaseNotFound(db)) => {
                format!("The InfluxDB database {db:?} does not exist; check INFLUXDB_DB")
            }
            ApiError::Influx(InfluxError::Unauthorized(_)) => {
                "InfluxDB refused kubemeter's credentials; check INFLUXDB_USER/INFLUXDB_PASS or INFLUXDB_TOKEN".into()
            }
            ApiError::Influx(InfluxError::Timeout(t)) => format!(
                "InfluxDB did not answer within {} s; ask for a shorter window or fewer points",
                t.as_secs()
            ),
            ApiError::Influx(_) => "Wrong configuration or query to influxdb".into(),
            other => other.to_string(),
        }
    }
}

impl ApiError {
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Auth(e) => e.retry_after(),
            ApiError::Refused(Refusal::UserBusy { .. } | Refusal::Busy) => {
                Some(heavy::RETRY_AFTER_SECS)
            }
            _ => None,
        }
    }
}

/// The status of an InfluxDB failure, for the API and the dashboard alike: unreachable,
/// misconfigured or overloaded is 503, too slow 504, anything else a fault of ours (500).
pub fn influx_status(e: &InfluxError) -> StatusCode {
    match e {
        InfluxError::Unreachable { .. }
        | InfluxError::DatabaseNotFound(_)
        | InfluxError::Unauthorized(_) => StatusCode::SERVICE_UNAVAILABLE,
        InfluxError::Http { status, .. } if *status >= 500 => StatusCode::SERVICE_UNAVAILABLE,
        InfluxError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The status of heavy work not done (shared with the dashboard).
pub fn refusal_status(r: &Refusal) -> StatusCode {
    match r {
        Refusal::UserBusy { .. } => StatusCode::TOO_MANY_REQUESTS,
        Refusal::Busy => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::Deadline(_) => StatusCode::GATEWAY_TIMEOUT,
        // Nobody reads it; nginx's "client closed request", for logs and /metrics.
        Refusal::ClientGone => StatusCode::from_u16(499).unwrap_or(StatusCode::REQUEST_TIMEOUT),
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Auth(AuthError::Forbidden(_))
            | ApiError::BadRequest(RequestError::Forbidden(_)) => StatusCode::FORBIDDEN,
            ApiError::Auth(AuthError::Store(_)) | ApiError::Auth(AuthError::Busy(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Auth(AuthError::Throttled(_)) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Refused(r) => refusal_status(r),
            ApiError::Auth(_) => StatusCode::UNAUTHORIZED,
            ApiError::MethodNotAllowed | ApiError::MethodNotAllowedHere(_) => {
                StatusCode::METHOD_NOT_ALLOWED
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::SlowBody(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::BadBody(_) => StatusCode::BAD_REQUEST,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Influx(e) => influx_status(e),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            // Load shedding, not failures: counted in /metrics by status, not logged each.
            ApiError::Refused(Refusal::Busy) | ApiError::Auth(AuthError::Busy(_)) => {}
            ApiError::Refused(Refusal::Deadline(_)) => {
                tracing::warn!(error = %self, "API request stopped at its deadline")
            }
            _ if status.is_server_error() => {
                tracing::error!(error = %error_chain(self), "API request failed")
            }
            _ => {}
        }
        let mut resp = HttpResponse::build(status);
        match self {
            ApiError::MethodNotAllowed => {
                resp.insert_header((header::ALLOW, "POST"));
            }
            ApiError::MethodNotAllowedHere(methods) => {
                resp.insert_header((header::ALLOW, *methods));
            }
            _ => {}
        }
        if let Some(secs) = self.retry_after() {
            resp.insert_header((header::RETRY_AFTER, secs));
        }
        resp.json(json!({"code": status.as_u16(), "message": self.message()}))
    }
}
