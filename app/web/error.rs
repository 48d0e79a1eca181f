//! One error type for the dashboard: every failure is a page that says what happened (or a
//! redirect to sign in). Internal failures are logged here, once.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::api::request::RequestError;
use crate::auth::AuthError;
use crate::heavy::{self, Refusal};
use crate::influx::InfluxError;
use crate::telemetry::error_chain;
use crate::users::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Not signed in: go to the login page, then come back to `next`.
    #[error("sign in first")]
    SignIn { next: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("This form has expired or did not come from this site; go back, reload the page and try again.")]
    Csrf,
    #[error("The dashboard needs the user database; set DATABASE_URL or KUBEMETER_DATA_DIR.")]
    NoDatabase,
    #[error("InfluxDB could not answer")]
    Influx(#[from] InfluxError),
    #[error("the user database failed")]
    Store(#[from] StoreError),
    #[error("rendering the page failed")]
    Render(#[from] askama::Error),
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// Too many sign-ins at once, or from this address: come back in this many seconds.
    #[error("{message}")]
    TryLater {
        message: String,
        retry_after: u64,
        status: StatusCode,
    },
}

impl From<RequestError> for WebError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Forbidden(m) => WebError::Forbidden(m),
            other => WebError::BadRequest(other.to_string()),
        }
    }
}

impl From<crate::metering::MeteringError> for WebError {
    fn from(e: crate::metering::MeteringError) -> Self {
        match e {
            crate::metering::MeteringError::Influx(e) => WebError::Influx(e),
        }
    }
}

impl From<AuthError> for WebError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Store(s) => WebError::Store(s),
            AuthError::Busy(_) | AuthError::Throttled(_) => WebError::TryLater {
                retry_after: e.retry_after().unwrap_or(1),
                message: e.to_string(),
                status: if matches!(e, AuthError::Throttled(_)) {
                    StatusCode::TOO_MANY_REQUESTS
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
            },
            other => WebError::Forbidden(other.to_string()),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: String,
}

impl WebError {
    fn message(&self) -> String {
        match self {
            WebError::Influx(InfluxError::Unreachable { .. }) => {
                "InfluxDB cannot be reached, so there are no numbers to show. Try again in a \
                 minute; if it persists, check INFLUXDB_URL and that InfluxDB is running."
                    .into()
            }
            WebError::Influx(InfluxError::Timeout(t)) => format!(
                "InfluxDB did not answer within {} s; try a shorter range.",
                t.as_secs()
            ),
            WebError::Influx(InfluxError::DatabaseNotFound(db)) => {
                format!("The InfluxDB database {db:?} does not exist; check INFLUXDB_DB.")
            }
            WebError::Influx(_) => "InfluxDB could not answer this query; the error is in the \
                                    server's log."
                .into(),
            WebError::Store(_) => {
                "The user database cannot be reached; try again in a minute.".into()
            }
            WebError::Render(_) => {
                "The page could not be drawn; the error is in the server's log.".into()
            }
            other => other.to_string(),
        }
    }
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebError::SignIn { .. } => StatusCode::SEE_OTHER,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Forbidden(_) | WebError::Csrf => StatusCode::FORBIDDEN,
            WebError::Influx(e) => crate::api::influx_status(e),
            WebError::NoDatabase | WebError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
            WebError::Refused(r) => crate::api::refusal_status(r),
            WebError::TryLater { status, .. } => *status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let WebError::SignIn { next } = self {
            let target = format!("/web/login/?next={}", super::layout::encode(next));
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, target))
                .finish();
        }
        let status = self.status_code();
        let quiet = matches!(self, WebError::Refused(_) | WebError::TryLater { .. });
        if status.is_server_error() && !quiet {
            tracing::error!(error = %error_chain(self), "dashboard request failed");
        }
        let page = ErrorPage {
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error"),
            message: self.message(),
        };
        let body = page.render().unwrap_or_else(|_| self.message());
        let mut resp = super::html(status, body);
        let retry_after = match self {
            WebError::Refused(Refusal::UserBusy { .. } | Refusal::Busy) => {
                Some(heavy::RETRY_AFTER_SECS)
            }
            WebError::TryLater { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        resp
    }
}
