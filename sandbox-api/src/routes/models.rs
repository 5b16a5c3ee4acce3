//! `GET /v1/models` and `GET /v1/models/{id}`: the one served model.

use actix_web::{HttpResponse, get, web};
use sandbox_core::contract::openai::{Model, ModelList};

use crate::error::ApiError;
use crate::state::AppState;

fn model_object(state: &AppState) -> Model {
    let engine = state.service.engine().ok();
    Model {
        id: state.model_id.clone(),
        object: "model".into(),
        created: state.started,
        owned_by: "ai-sandbox".into(),
        context_length: engine.map(|e| e.n_ctx()),
        ready: engine.is_some(),
    }
}

#[get("/models")]
pub async fn list(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(ModelList {
        object: "list".into(),
        data: vec![model_object(&state)],
    })
}

#[get("/models/{id:.*}")]
pub async fn retrieve(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if *id != state.model_id {
        return Err(ApiError::model_not_found(&id));
    }
    Ok(HttpResponse::Ok().json(model_object(&state)))
}
