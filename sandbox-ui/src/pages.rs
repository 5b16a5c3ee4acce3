//! The HTML pages: minijinja templates compiled into the binary, auto-escaped.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use minijinja::Environment;
use serde::Serialize;

use crate::assets;
use crate::error::UiError;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("chat.html", include_str!("../templates/chat.html")),
    ("settings.html", include_str!("../templates/settings.html")),
    ("admin.html", include_str!("../templates/admin.html")),
    ("error.html", include_str!("../templates/error.html")),
];

/// Compiled once for the process: error responses, which are built without access to
/// the app's state, use the same templates as the pages.
static PAGES: LazyLock<Result<Pages, minijinja::Error>> = LazyLock::new(Pages::compile);

/// The template set.
#[derive(Debug)]
pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    /// The templates (a broken template fails the first call, which the server makes
    /// at start-up).
    pub fn get() -> Result<&'static Self, &'static minijinja::Error> {
        PAGES.as_ref()
    }

    fn compile() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        env.add_global("asset_version", assets::version());
        Ok(Self { env })
    }

    /// Renders a page; pages are never cached (they hold the CSRF token).
    pub fn render(&self, name: &str, ctx: impl Serialize) -> Result<HttpResponse, UiError> {
        self.page(StatusCode::OK, name, ctx)
    }

    /// The page that says what went wrong instead of showing the page asked for.
    pub fn error(&self, status: StatusCode, message: &str) -> Result<HttpResponse, UiError> {
        let heading = if status.is_server_error() {
            "Something went wrong"
        } else {
            "This page cannot be shown"
        };
        let ctx = minijinja::context! { heading, message };
        self.page(status, "error.html", ctx)
    }

    fn page(
        &self,
        status: StatusCode,
        name: &str,
        ctx: impl Serialize,
    ) -> Result<HttpResponse, UiError> {
        let html = self.env.get_template(name)?.render(ctx)?;
        Ok(HttpResponse::build(status)
            .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
            .insert_header((CACHE_CONTROL, "no-store"))
            .body(html))
    }
}
