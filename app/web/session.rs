//! The dashboard's cookies: the session (set at sign-in) and the sign-in form's CSRF token
//! (set with the login page, before any session exists). Both are HttpOnly and SameSite, and
//! Secure when the request came over TLS (directly or through a proxy that says so).

use actix_web::cookie::{time::Duration, Cookie, SameSite};
use actix_web::HttpRequest;
use chrono::Utc;
use subtle::ConstantTimeEq;

use super::WebError;
use crate::auth::sessions::{self, Session, SESSION_TTL_SECONDS};
use crate::startup::AppState;
use crate::users::Db;

pub const SESSION_COOKIE: &str = "kubemeter_session";
pub const LOGIN_CSRF_COOKIE: &str = "kubemeter_login_csrf";

fn cookie(req: &HttpRequest, name: &'static str, value: String, max_age: i64) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/web")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(req.connection_info().scheme() == "https")
        .max_age(Duration::seconds(max_age))
        .finish()
}

pub fn session_cookie(req: &HttpRequest, token: String) -> Cookie<'static> {
    cookie(req, SESSION_COOKIE, token, SESSION_TTL_SECONDS)
}

pub fn login_csrf_cookie(req: &HttpRequest, token: String) -> Cookie<'static> {
    cookie(req, LOGIN_CSRF_COOKIE, token, 3600)
}

/// A cookie that makes the browser forget `name`.
pub fn removal(req: &HttpRequest, name: &'static str) -> Cookie<'static> {
    cookie(req, name, String::new(), 0)
}

pub fn db(state: &AppState) -> Result<&Db, WebError> {
    state.db.as_ref().ok_or(WebError::NoDatabase)
}

/// The session of this request, if its cookie names a live one.
pub async fn current(req: &HttpRequest, state: &AppState) -> Result<Option<Session>, WebError> {
    let Some(token) = req.cookie(SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(sessions::find(db(state)?, token.value(), Utc::now().timestamp()).await?)
}

/// The signed-in user, or a redirect to the login page that comes back here.
pub async fn signed_in(req: &HttpRequest, state: &AppState) -> Result<Session, WebError> {
    let Some(session) = current(req, state).await? else {
        let next = match req.query_string() {
            "" => req.path().to_string(),
            q => format!("{}?{q}", req.path()),
        };
        return Err(WebError::SignIn { next });
    };
    session.principal.check_web()?;
    Ok(session)
}

/// Whether the form's token is the expected one (constant time).
pub fn same_token(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}
