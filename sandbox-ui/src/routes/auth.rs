//! Logging in and out, and changing the password.

use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Deserialize;
use serde_json::json;

use crate::error::{PageError, UiError};
use crate::session::{self, LOGIN_COOKIE, LoggedIn, SESSION_COOKIE, constant_time_eq};
use crate::state::{AppState, blocking};
use crate::store::{MIN_PASSWORD, random_token};

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
    /// Set by the logout's redirect, so the page can say it worked.
    logged_out: Option<String>,
}

/// Only paths on this site: `//evil.example`, `https://…`, or tricks browsers
/// normalise into those (a tab or backslash after the slash) would send the user away.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.chars().all(|c| c.is_ascii_graphic() && c != '\\') =>
        {
            n
        }
        _ => "/",
    }
}

/// What the login page shows besides the form.
#[derive(Debug, Default)]
struct LoginNotice {
    /// Why the last attempt failed.
    error: Option<String>,
    /// The name typed last time (kept after a wrong password).
    username: String,
    /// The user has just logged out.
    logged_out: bool,
}

fn login_form(
    state: &AppState,
    req: &HttpRequest,
    next: &str,
    notice: LoginNotice,
    status: actix_web::http::StatusCode,
) -> Result<HttpResponse, PageError> {
    let token = random_token();
    let no_account = !state.store.has_users()?;
    let mut resp = state.pages.render(
        "login.html",
        json!({
            "csrf": token,
            "next": next,
            "error": notice.error,
            "username": notice.username,
            "logged_out": notice.logged_out,
            "hint": state.cfg.login_hint,
            "no_account": no_account,
        }),
    )?;
    *resp.status_mut() = status;
    let secure = session::secure(req, state.cfg.secure_cookies);
    resp.add_cookie(&session::cookie(LOGIN_COOKIE, token, 3600, secure))
        .map_err(|e| UiError::Internal(e.to_string()))?;
    Ok(resp)
}

/// `GET /login`.
#[get("/login")]
pub async fn login_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<NextQuery>,
) -> Result<HttpResponse, PageError> {
    let next = safe_next(q.next.as_deref());
    if let Some(c) = req.cookie(SESSION_COOKIE)
        && state.store.session(c.value())?.is_some()
    {
        return Ok(HttpResponse::SeeOther()
            .insert_header((LOCATION, next))
            .finish());
    }
    let notice = LoginNotice {
        logged_out: q.logged_out.is_some(),
        ..LoginNotice::default()
    };
    login_form(&state, &req, next, notice, actix_web::http::StatusCode::OK)
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

/// `POST /login`: throttled per client address and per user name.
#[post("/login")]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, PageError> {
    use actix_web::http::StatusCode;
    let next = safe_next(form.next.as_deref()).to_owned();
    let cookie_ok = req
        .cookie(LOGIN_COOKIE)
        .is_some_and(|c| constant_time_eq(c.value().as_bytes(), form.csrf.as_bytes()));
    let username = form.username.trim().to_owned();
    let failed = |msg: &str| LoginNotice {
        error: Some(msg.to_owned()),
        username: username.chars().take(64).collect(),
        logged_out: false,
    };
    if !cookie_ok || session::same_origin(&req).is_err() {
        let msg = "The login form had expired; please try again.";
        return login_form(&state, &req, &next, failed(msg), StatusCode::FORBIDDEN);
    }
    let ip = req
        .peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
    // Capped so that made-up names cannot grow the throttle's memory.
    let name_key: String = username.chars().take(64).collect();
    let keys = vec![format!("ip:{ip}"), format!("user:{name_key}")];
    if let Err(wait) = state.login_limit.attempt(&keys) {
        tracing::warn!(ip = %ip, "login throttled");
        let msg = format!("Too many failed logins. Try again in {wait} s.");
        let mut resp = login_form(
            &state,
            &req,
            &next,
            failed(&msg),
            StatusCode::TOO_MANY_REQUESTS,
        )?;
        if let Ok(v) = wait.to_string().parse() {
            resp.headers_mut()
                .insert(actix_web::http::header::RETRY_AFTER, v);
        }
        return Ok(resp);
    }
    let store = state.store.clone();
    let (name, password) = (username.clone(), form.password.clone());
    // Argon2 takes tens of milliseconds of CPU: keep it off the event loop.
    let ok = blocking(move || store.verify_password(&name, &password)).await??;
    if !ok {
        tracing::info!(ip = %ip, "login refused");
        let msg = "Wrong user name or password.";
        return login_form(&state, &req, &next, failed(msg), StatusCode::UNAUTHORIZED);
    }
    state.login_limit.clear(&keys);
    let s = state
        .store
        .create_session(&username, state.cfg.session_hours * 3600)?;
    tracing::info!(ip = %ip, "login");
    let secure = session::secure(&req, state.cfg.secure_cookies);
    let max_age = i64::try_from(state.cfg.session_hours * 3600).unwrap_or(i64::MAX);
    Ok(HttpResponse::SeeOther()
        .insert_header((LOCATION, next))
        .cookie(session::cookie(SESSION_COOKIE, s.token, max_age, secure))
        .cookie(session::expired(LOGIN_COOKIE, secure))
        .finish())
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// `POST /logout`.
#[post("/logout")]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: LoggedIn,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    who.check(&req, Some(&form.csrf))?;
    state.store.delete_session(&who.0.token)?;
    let secure = session::secure(&req, state.cfg.secure_cookies);
    Ok(HttpResponse::SeeOther()
        .insert_header((LOCATION, "/login?logged_out=1"))
        .cookie(session::expired(SESSION_COOKIE, secure))
        .finish())
}

fn settings_page(
    state: &AppState,
    who: &LoggedIn,
    error: Option<&str>,
    notice: Option<&str>,
) -> Result<HttpResponse, PageError> {
    Ok(state.pages.render(
        "settings.html",
        json!({
            "user": who.user(),
            "csrf": who.0.csrf,
            "error": error,
            "notice": notice,
        }),
    )?)
}

/// `GET /settings`.
#[get("/settings")]
pub async fn settings(
    state: web::Data<AppState>,
    who: LoggedIn,
) -> Result<HttpResponse, PageError> {
    settings_page(&state, &who, None, None)
}

#[derive(Debug, Deserialize)]
struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
    confirm: String,
}

/// `POST /settings/password`: other browsers are logged out.
#[post("/settings/password")]
pub async fn change_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: LoggedIn,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, PageError> {
    who.check(&req, Some(&form.csrf))?;
    // A stolen session must not be a way to guess the password quickly.
    let keys = vec![format!("password:{}", who.user())];
    if let Err(wait) = state.login_limit.attempt(&keys) {
        let msg = format!("Too many attempts. Try again in {wait} s.");
        return settings_page(&state, &who, Some(&msg), None);
    }
    let problem = if form.new.chars().count() < MIN_PASSWORD {
        Some(format!(
            "The new password needs at least {MIN_PASSWORD} characters."
        ))
    } else if form.new != form.confirm {
        Some("The two new passwords differ.".to_owned())
    } else {
        None
    };
    if let Some(p) = problem {
        return settings_page(&state, &who, Some(&p), None);
    }
    let store = state.store.clone();
    let (user, current, new, token) = (
        who.user().to_owned(),
        form.current.clone(),
        form.new.clone(),
        who.0.token.clone(),
    );
    let changed = blocking(move || -> Result<bool, UiError> {
        if !store.verify_password(&user, &current)? {
            return Ok(false);
        }
        store.set_password(&user, &new)?;
        store.delete_sessions_of(&user, &token)?;
        Ok(true)
    })
    .await??;
    if changed {
        state.login_limit.clear(&keys);
        tracing::info!("password changed");
        settings_page(
            &state,
            &who,
            None,
            Some("Password changed. Other browsers have been logged out."),
        )
    } else {
        settings_page(&state, &who, Some("The current password is wrong."), None)
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/c/12?x=1")), "/c/12?x=1");
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "https://evil.example",
            "evil",
            "/ x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
