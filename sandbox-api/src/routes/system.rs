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
    let body = match &model_state {
        ModelState::Ready => {
            let queue = state.service.engine().ok().map(|e| e.queue_status());
            return HttpResponse::Ok().json(json!({
                "status": "ready",
                "model": state.model_id,
                "queue": queue.map(|q| json!({
                    "waiting": q.waiting,
                    "running": q.running.is_some(),
                    "capacity": q.capacity,
                    "estimated_wait_seconds": q.estimated_wait.as_secs_f64(),
                })),
            }));
        }
        ModelState::Downloading {
            progress,
            downloaded_bytes,
            total_bytes,
            message,
        } => json!({
            "status": "downloading",
            "progress": progress,
            "downloaded_bytes": downloaded_bytes,
            "total_bytes": total_bytes,
            "message": message,
        }),
        ModelState::Loading { message } => {
            json!({"status": "loading", "progress": null, "message": message})
        }
        ModelState::Error { message } => {
            json!({"status": "error", "progress": null, "message": message})
        }
    };
    let retry = if matches!(model_state, ModelState::Error { .. }) {
        "60"
    } else {
        "2"
    };
    HttpResponse::ServiceUnavailable()
        .insert_header((RETRY_AFTER, retry))
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
