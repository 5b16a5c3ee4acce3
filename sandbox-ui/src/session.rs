//! Who is asking: the session cookie, the CSRF check and the cookies themselves.

use std::future::{Ready, ready};

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::dev::Payload;
use actix_web::http::header::ORIGIN;
use actix_web::{FromRequest, HttpRequest, web};

use crate::config::SecureCookies;
use crate::error::{PageError, UiError};
use crate::state::AppState;
use crate::store::{Conversation, Session, Store};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "sandbox_session";
/// The login form's CSRF cookie (there is no session yet to hold its token).
pub const LOGIN_COOKIE: &str = "sandbox_login";
/// The header fetches carry the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A request with a valid session. Handlers that take it are unreachable without one:
/// pages redirect to the login page, fetches get 401.
#[derive(Debug, Clone)]
pub struct LoggedIn(pub Session);

impl FromRequest for LoggedIn {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, actix_web::Error>>;

    /// Without a session, the page's fetches (`/app/…`) get a 401 JSON error and
    /// everything else a redirect to the login page.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(current(req).map(LoggedIn).map_err(|e| {
            if req.path().starts_with("/app/") {
                e.into()
            } else {
                PageError(e).into()
            }
        }))
    }
}

fn current(req: &HttpRequest) -> Result<Session, UiError> {
    let next = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let required = || UiError::LoginRequired { next: next.clone() };
    let state = req.app_data::<web::Data<AppState>>().ok_or_else(required)?;
    let token = req.cookie(SESSION_COOKIE).ok_or_else(required)?;
    state.store.session(token.value())?.ok_or_else(required)
}

impl LoggedIn {
    /// Checks a state-changing request: the CSRF token (form field or header) must be
    /// the session's, and a browser's `Origin`, when sent, must be this host.
    pub fn check(&self, req: &HttpRequest, form_token: Option<&str>) -> Result<(), UiError> {
        let header = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let presented = form_token.or(header).ok_or(UiError::Csrf)?;
        same_origin(req)?;
        if constant_time_eq(presented.as_bytes(), self.0.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(UiError::Csrf)
        }
    }

    /// A state-changing fetch about one conversation: [`LoggedIn::check`], then the
    /// conversation, which must be this user's (before anything is done to it).
    pub fn owned_conversation(
        &self,
        req: &HttpRequest,
        store: &Store,
        id: u64,
    ) -> Result<Conversation, UiError> {
        self.check(req, None)?;
        Ok(store.conversation(self.user(), id)?)
    }

    /// The user's name.
    pub fn user(&self) -> &str {
        &self.0.user
    }
}

/// Refuses a request whose `Origin` names another host than the one it was sent to.
pub fn same_origin(req: &HttpRequest) -> Result<(), UiError> {
    let Some(origin) = req.headers().get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    // The host the browser addressed: behind a TLS proxy that is in Forwarded or
    // X-Forwarded-Host, not in Host.
    let info = req.connection_info();
    let host = Some(info.host());
    let origin_host = origin.split("://").nth(1);
    if origin_host.is_some() && origin_host == host {
        Ok(())
    } else {
        Err(UiError::Csrf)
    }
}

pub use sandbox_core::config_file::secrets_equal as constant_time_eq;

/// Whether cookies for this request get `Secure`.
pub fn secure(req: &HttpRequest, mode: SecureCookies) -> bool {
    match mode {
        SecureCookies::Always => true,
        SecureCookies::Never => false,
        SecureCookies::Auto => req.connection_info().scheme() == "https",
    }
}

/// A cookie the page's scripts cannot read and other sites cannot send.
pub fn cookie(
    name: &'static str,
    value: String,
    max_age_seconds: i64,
    secure: bool,
) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(time::Duration::seconds(max_age_seconds))
        .finish()
}

/// The removal of a cookie.
pub fn expired(name: &'static str, secure: bool) -> Cookie<'static> {
    cookie(name, String::new(), 0, secure)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::same_origin;

    #[test]
    fn origin_must_be_the_host_the_browser_used() {
        let req = |headers: &[(&str, &str)]| {
            let mut r = TestRequest::default();
            for (k, v) in headers {
                r = r.insert_header((*k, *v));
            }
            r.to_http_request()
        };
        let direct = [
            ("host", "127.0.0.1:8081"),
            ("origin", "http://127.0.0.1:8081"),
        ];
        assert!(same_origin(&req(&direct)).is_ok());
        assert!(
            same_origin(&req(&[("host", "127.0.0.1:8081")])).is_ok(),
            "no Origin: not a cross-site browser request"
        );
        let foreign = [
            ("host", "127.0.0.1:8081"),
            ("origin", "https://evil.example"),
        ];
        assert!(same_origin(&req(&foreign)).is_err());
        // Behind a TLS proxy that passes the browser's host on.
        let proxied = [
            ("host", "127.0.0.1:8081"),
            ("origin", "https://chat.example"),
            ("x-forwarded-host", "chat.example"),
        ];
        assert!(same_origin(&req(&proxied)).is_ok());
        let unproxied = [
            ("host", "127.0.0.1:8081"),
            ("origin", "https://chat.example"),
        ];
        assert!(same_origin(&req(&unproxied)).is_err());
    }
}
