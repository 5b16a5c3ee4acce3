//! The model's state for the page's banner, and the UI's own liveness.

use actix_web::{HttpResponse, get, web};
use serde_json::json;

use crate::session::LoggedIn;
use crate::state::AppState;

/// `GET /app/status`: what sandbox-api is doing and when to ask again.
#[get("/app/status")]
pub async fn status(state: web::Data<AppState>, _who: LoggedIn) -> HttpResponse {
    let s = state.api.status().await;
    let retry = s.retry_seconds();
    let mut body = serde_json::to_value(&s).unwrap_or_default();
    body["retry_seconds"] = json!(retry);
    body["headline"] = json!(s.headline());
    HttpResponse::Ok().json(body)
}

/// `GET /health`: the UI process answers (no session needed).
#[get("/health")]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}
