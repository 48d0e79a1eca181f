//! `/web/login/`, `POST /web/authentication/signin` and `POST /web/authentication/signout`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;

use super::session::{self, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use super::{html, see_other, WebError};
use crate::auth::lockout::{self, Policy, Verdict};
use crate::auth::{sessions, AuthError};
use crate::startup::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf_token: String,
    next: String,
    username: String,
    error: String,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Only paths of the dashboard itself: never a redirect to another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/web/") && !n.starts_with("//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => "/web/stats/index".to_string(),
    }
}

pub async fn login_page(
    req: HttpRequest,
    query: web::Query<LoginQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let next = safe_next(query.next.as_deref());
    if session::current(&req, &state).await?.is_some() {
        return Ok(see_other(&next));
    }
    render_login(&req, StatusCode::OK, next, String::new(), String::new())
}

/// The login page with a fresh CSRF token in its form and cookie.
fn render_login(
    req: &HttpRequest,
    status: StatusCode,
    next: String,
    username: String,
    error: String,
) -> Result<HttpResponse, WebError> {
    let token = sessions::random_token();
    let page = LoginPage {
        csrf_token: token.clone(),
        next,
        username,
        error,
    };
    let mut resp = html(status, page.render()?);
    resp.add_cookie(&session::login_csrf_cookie(req, token))
        .map_err(|e| WebError::BadRequest(e.to_string()))?;
    Ok(resp)
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
    next: Option<String>,
}

#[tracing::instrument(skip_all, fields(username = %form.username))]
pub async fn sign_in(
    req: HttpRequest,
    form: web::Form<SignInForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let next = safe_next(form.next.as_deref());
    let cookie = req.cookie(LOGIN_CSRF_COOKIE);
    if !session::same_token(cookie.as_ref().map_or("", |c| c.value()), &form.csrf_token) {
        return Err(WebError::Csrf);
    }
    let username = form.username.trim().to_string();
    if username.is_empty() || form.password.is_empty() {
        let msg = "Enter your user name and password.".to_string();
        return render_login(&req, StatusCode::BAD_REQUEST, next, username, msg);
    }
    let db = session::db(&state)?;
    let policy = Policy::default();
    let now = Utc::now().timestamp();
    let address = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let subjects = [
        lockout::user_subject(&username),
        lockout::addr_subject(&address),
    ];
    match policy.verdict(lockout::failures(db, &policy, &subjects, now).await?) {
        Verdict::Allow => {}
        Verdict::Slow(delay) => tokio::time::sleep(delay).await,
        Verdict::Refuse(wait) => {
            tracing::warn!(%address, "sign-in refused after repeated failures");
            let msg = format!(
                "Too many failed sign-ins for this account or from this address. Try again in {} minutes.",
                wait.as_secs().div_ceil(60)
            );
            let mut resp = render_login(&req, StatusCode::TOO_MANY_REQUESTS, next, username, msg)?;
            resp.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(wait.as_secs()),
            );
            return Ok(resp);
        }
    }
    let client = req.peer_addr().map(|a| a.ip());
    match state.auth.password(client, &username, &form.password).await {
        Ok(principal) => {
            lockout::clear(db, &subjects[0]).await?;
            let token = sessions::create(db, &principal.username, now).await?;
            tracing::info!(username = %principal.username, "signed in");
            let mut resp = see_other(&next);
            let cookies = [
                session::session_cookie(&req, token),
                session::removal(&req, LOGIN_CSRF_COOKIE),
            ];
            for c in &cookies {
                resp.add_cookie(c)
                    .map_err(|e| WebError::BadRequest(e.to_string()))?;
            }
            Ok(resp)
        }
        Err(AuthError::NotRecognized) => {
            lockout::record_failure(db, &policy, &subjects, now).await?;
            let msg = "Username and password is not recognized.".to_string();
            render_login(&req, StatusCode::UNAUTHORIZED, next, username, msg)
        }
        Err(e @ (AuthError::Store(_) | AuthError::Busy(_) | AuthError::Throttled(_))) => {
            Err(e.into())
        }
        Err(other) => render_login(
            &req,
            StatusCode::FORBIDDEN,
            next,
            username,
            format!("{other}."),
        ),
    }
}

#[derive(Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf_token: String,
}

pub async fn sign_out(
    req: HttpRequest,
    form: web::Form<SignOutForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    if let Some(current) = session::current(&req, &state).await? {
        if !session::same_token(&current.csrf_token, &form.csrf_token) {
            return Err(WebError::Csrf);
        }
        if let Some(cookie) = req.cookie(SESSION_COOKIE) {
            sessions::revoke(session::db(&state)?, cookie.value()).await?;
        }
        tracing::info!(username = %current.principal.username, "signed out");
    }
    let mut resp = see_other("/web/login/");
    resp.add_cookie(&session::removal(&req, SESSION_COOKIE))
        .map_err(|e| WebError::BadRequest(e.to_string()))?;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_sign_in_only_dashboard_paths_are_followed() {
        assert_eq!(
            safe_next(Some("/web/stats/uptime/default?range=6h")),
            "/web/stats/uptime/default?range=6h"
        );
        assert_eq!(safe_next(Some("https://evil.example/")), "/web/stats/index");
        assert_eq!(safe_next(Some("//evil.example/web/")), "/web/stats/index");
        assert_eq!(safe_next(Some("/web/\\evil")), "/web/stats/index");
        assert_eq!(safe_next(None), "/web/stats/index");
    }
}
