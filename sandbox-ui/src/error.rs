//! Errors as the browser sees them: JSON `{"error": {"message"}}` for the page's
//! fetches, an HTML page for navigations ([`PageError`]).

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::pages::Pages;
use crate::store::StoreError;

/// What went wrong, in the user's terms.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The history database failed.
    #[error("the chat history could not be read or written: {0}")]
    Store(StoreError),
    /// No valid session.
    #[error("your session has ended; log in again")]
    LoginRequired {
        /// Where to come back to after logging in.
        next: String,
    },
    /// A form or fetch without the right CSRF token, or from another site.
    #[error(
        "this request did not come from this page (missing or stale security token); reload the page and try again"
    )]
    Csrf,
    /// Only the administrator may do this.
    #[error("only an administrator can open this page")]
    AdminOnly,
    /// Not found (or not this user's).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request makes no sense.
    #[error("{0}")]
    BadRequest(String),
    /// Clashes with what is going on.
    #[error("{0}")]
    Conflict(String),
    /// The model cannot answer now.
    #[error("{0}")]
    Unavailable(String),
    /// Too many failed logins.
    #[error("too many failed logins; try again in {0} s")]
    TooManyAttempts(u64),
    /// Something inside the server failed (a worker thread).
    #[error("internal error: {0}")]
    Internal(String),
    /// A page failed to render.
    #[error("the page could not be rendered: {0}")]
    Template(#[from] minijinja::Error),
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(what),
            e => Self::Store(e),
        }
    }
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Store(_) | Self::Template(_) | Self::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::LoginRequired { .. } => StatusCode::UNAUTHORIZED,
            Self::Csrf | Self::AdminOnly => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if self.status_code().is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut resp = HttpResponse::build(self.status_code());
        match self {
            Self::TooManyAttempts(s) => {
                resp.insert_header((RETRY_AFTER, s.to_string()));
            }
            Self::Unavailable(_) => {
                resp.insert_header((RETRY_AFTER, "5"));
            }
            _ => {}
        }
        resp.json(json!({"error": {"message": capitalised(&self.to_string())}}))
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A [`UiError`] met while serving a page: a redirect to the login page, or a small
/// HTML page saying what happened.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PageError(#[from] pub UiError);

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        Self(e.into())
    }
}

impl From<minijinja::Error> for PageError {
    fn from(e: minijinja::Error) -> Self {
        Self(e.into())
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match &self.0 {
            UiError::LoginRequired { .. } => StatusCode::SEE_OTHER,
            e => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let UiError::LoginRequired { next } = &self.0 {
            let target = if next.is_empty() || next == "/" {
                "/login".to_owned()
            } else {
                format!("/login?next={}", percent_encode(next))
            };
            return HttpResponse::SeeOther()
                .insert_header((LOCATION, target))
                .finish();
        }
        if self.status_code().is_server_error() {
            tracing::error!(error = %self.0, "page failed");
        }
        let message = capitalised(&self.0.to_string());
        match Pages::get().map(|p| p.error(self.status_code(), &message)) {
            Ok(Ok(page)) => page,
            // Only if the error page itself cannot be rendered: say it in plain text.
            _ => HttpResponse::build(self.status_code())
                .insert_header((CONTENT_TYPE, "text/plain; charset=utf-8"))
                .body(message),
        }
    }
}

/// Percent-encodes a path for a query parameter.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
