//! The HTML pages: minijinja templates compiled into the binary, auto-escaped.

use actix_web::HttpResponse;
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
];

/// The template set.
#[derive(Debug)]
pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    /// Compiles the templates (a broken template fails here, at start-up).
    pub fn new() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        env.add_global("asset_version", assets::version());
        Ok(Self { env })
    }

    /// Renders a page; pages are never cached (they hold the CSRF token).
    pub fn render(&self, name: &str, ctx: impl Serialize) -> Result<HttpResponse, UiError> {
        let html = self.env.get_template(name)?.render(ctx)?;
        Ok(HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
            .insert_header((CACHE_CONTROL, "no-store"))
            .body(html))
    }
}
