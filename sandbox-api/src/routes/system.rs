//! Liveness, readiness and metrics.

use actix_web::http::header::{CONTENT_TYPE, RETRY_AFTER};
use actix_web::{HttpResponse, get, web};
use sandbox_core::ModelState;
use serde_json::json;

use crate::state::AppState;

/// Liveness: the process answers. No authentication.
#[get("/health")]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: 200 once the model answers, else 503 with what it is doing and
/// `Retry-After`. No authentication (load balancers and the UI poll it).
#[get("/ready")]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let model_state = state.service.state();
    let queue = state.service.engine().ok().map(|e| e.queue_status());
    let body = model_state.ready_body(&state.model_id, queue);
    if model_state == ModelState::Ready {
        return HttpResponse::Ok().json(body);
    }
    HttpResponse::ServiceUnavailable()
        .insert_header((RETRY_AFTER, model_state.wait().seconds().to_string()))
        .json(body)
}

/// Prometheus metrics (behind the API key when keys are configured).
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let engine = state.service.engine().ok();
    let text = state
        .metrics
        .render(engine.map(|e| e.queue_status()), engine.is_some());
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"))
        .body(text)
}
