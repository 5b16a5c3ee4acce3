//! Liveness, readiness and metrics.

use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use actix_web::{HttpRequest, HttpResponse, get, web};
use sandbox_core::contract::ready::{GpuMemory, ServingDetails};
use sandbox_core::diagnostics::gpu_devices;
use sandbox_core::{Engine, ModelState};
use serde_json::json;

use crate::state::AppState;

/// Liveness: the process answers. No authentication.
#[get("/health")]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: 200 once the model answers, else 503 with what it is doing and
/// `Retry-After`. No authentication (load balancers and the UI poll it); a request
/// that carries an accepted API key (or any, when there are no keys) also gets the
/// serving details: file, quantization, context, GPU memory, the last answers.
#[get("/ready")]
pub async fn ready(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let model_state = state.service.state();
    let engine = state.service.engine().ok();
    let queue = engine.as_ref().map(|e| e.queue_status());
    let authorization = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let details = engine
        .filter(|_| authorization.is_some() && state.keys.accepts(authorization))
        .map(|e| serving_details(e, &state));
    let body = model_state.ready_body(&state.model_id, queue, details);
    if model_state == ModelState::Ready {
        return HttpResponse::Ok().json(body);
    }
    HttpResponse::ServiceUnavailable()
        .insert_header((RETRY_AFTER, model_state.wait().seconds().to_string()))
        .json(body)
}

fn serving_details(engine: &Engine, state: &AppState) -> ServingDetails {
    let info = engine.model_info();
    ServingDetails {
        file: engine
            .model_path()
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        quantization: info.quantization.clone(),
        parameters: info.n_params,
        size_bytes: info.size_bytes,
        context_tokens: engine.n_ctx(),
        tool_format: engine.tool_format().name().to_owned(),
        gpus: gpu_devices()
            .into_iter()
            .map(|d| GpuMemory {
                name: d.description,
                total_bytes: d.memory_total,
                free_bytes: d.memory_free,
            })
            .collect(),
        recent_answers: state.metrics.recent_answers(),
    }
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
