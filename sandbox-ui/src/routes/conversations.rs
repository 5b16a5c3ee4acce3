//! Renaming, deleting, per-chat settings and export.

use actix_web::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Deserialize;
use serde_json::json;

use crate::error::{PageError, UiError};
use crate::routes::chat::ChatSettings;
use crate::session::LoggedIn;
use crate::state::{AppState, blocking};
use crate::store::{to_json, to_markdown};

#[derive(Debug, Deserialize)]
struct ShowVersion {
    /// The answer's message number.
    seq: u64,
    /// Which version, 0-based in the order they were written.
    index: usize,
}

/// `POST /app/c/{id}/version`: shows another version of an answer (the conversation
/// goes on from the one shown); answers with the version now shown.
#[post("/app/c/{id}/version")]
pub async fn show_version(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: LoggedIn,
    id: web::Path<u64>,
    body: web::Json<ShowVersion>,
) -> Result<HttpResponse, UiError> {
    let c = who.owned_conversation(&req, &state.store, *id)?;
    // Held until the new version is stored, as a send holds it: a regeneration cannot
    // start in between and write over the answer being switched.
    let _busy = state.generations.reserve(c.id).ok_or_else(|| {
        UiError::Conflict(
            "An answer is still being written in this chat; wait for it or stop it first.".into(),
        )
    })?;
    let mut m = state
        .store
        .messages(c.id)?
        .into_iter()
        .find(|m| m.seq == body.seq && m.role == "assistant")
        .ok_or(UiError::NotFound("answer"))?;
    if !m.show_version(body.index) {
        return Err(UiError::BadRequest(format!(
            "This answer has {} versions; there is no version {}.",
            m.version_count(),
            body.index + 1
        )));
    }
    state.store.update_message(&m)?;
    Ok(HttpResponse::Ok().json(json!({
        "content": m.content,
        "status": m.status,
        "error": m.error,
        "details": m.details,
        "version": m.version,
        "versions": m.version_count(),
    })))
}

/// The most conversations one search lists.
pub const MAX_SEARCH_HITS: usize = 50;

#[derive(Debug, Deserialize)]
struct SearchQuery {
    q: String,
}

/// `GET /app/search?q=…`: the user's conversations whose title or messages hold the
/// text, most recent first.
#[get("/app/search")]
pub async fn search(
    state: web::Data<AppState>,
    who: LoggedIn,
    q: web::Query<SearchQuery>,
) -> Result<HttpResponse, UiError> {
    let store = state.store.clone();
    let user = who.user().to_owned();
    let query = q.into_inner().q;
    if query.chars().count() > 200 {
        return Err(UiError::BadRequest(
            "Search for at most 200 characters.".into(),
        ));
    }
    let hits = blocking(move || store.search(&user, &query, MAX_SEARCH_HITS)).await??;
    Ok(HttpResponse::Ok().json(json!({"conversations": hits})))
}

/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

#[derive(Debug, Deserialize)]
struct Rename {
    title: String,
}

/// `POST /app/c/{id}/rename`.
#[post("/app/c/{id}/rename")]
pub async fn rename(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: LoggedIn,
    id: web::Path<u64>,
    body: web::Json<Rename>,
) -> Result<HttpResponse, UiError> {
    let mut c = who.owned_conversation(&req, &state.store, *id)?;
    let title = body.title.trim();
    let n = title.chars().count();
    if n == 0 || n > MAX_TITLE_CHARS {
        return Err(UiError::BadRequest(format!(
            "A title needs 1 to {MAX_TITLE_CHARS} characters."
        )));
    }
    c.title = title.to_owned();
    c.title_auto = false;
    state.store.save_conversation(&c)?;
    Ok(HttpResponse::Ok().json(json!({"title": c.title})))
}

/// `POST /app/c/{id}/delete`: stops an answer being written, then deletes.
#[post("/app/c/{id}/delete")]
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: LoggedIn,
    id: web::Path<u64>,
) -> Result<HttpResponse, UiError> {
    who.owned_conversation(&req, &state.store, *id)?;
    if let Some(g) = state.generations.get(*id) {
        g.stop();
    }
    state.store.delete_conversation(who.user(), *id)?;
    Ok(HttpResponse::Ok().json(json!({"deleted": true})))
}

/// `POST /app/c/{id}/settings`.
#[post("/app/c/{id}/settings")]
pub async fn settings(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: LoggedIn,
    id: web::Path<u64>,
    body: web::Json<ChatSettings>,
) -> Result<HttpResponse, UiError> {
    let mut c = who.owned_conversation(&req, &state.store, *id)?;
    body.apply(&mut c)?;
    state.store.save_conversation(&c)?;
    Ok(HttpResponse::Ok().json(json!({
        "system_prompt": c.system_prompt,
        "temperature": c.temperature,
        "max_tokens": c.max_tokens,
    })))
}

/// A file name from a title: letters, digits and dashes.
fn file_stem(title: &str) -> String {
    let stem: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if stem.is_empty() {
        "chat".into()
    } else {
        stem.chars().take(60).collect()
    }
}

/// `GET /c/{id}/export.{md|json}`: the chat as a download.
#[get("/c/{id}/export.{format}")]
pub async fn export(
    state: web::Data<AppState>,
    who: LoggedIn,
    path: web::Path<(u64, String)>,
) -> Result<HttpResponse, PageError> {
    let (id, format) = path.into_inner();
    let c = state.store.conversation(who.user(), id)?;
    let messages = state.store.messages(id)?;
    let (mime, body) = match format.as_str() {
        "md" => ("text/markdown; charset=utf-8", to_markdown(&c, &messages)),
        "json" => (
            "application/json",
            serde_json::to_string_pretty(&to_json(&c, &messages)).unwrap_or_default(),
        ),
        _ => return Err(UiError::NotFound("export format").into()),
    };
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, mime))
        .insert_header((
            CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}.{format}\"", file_stem(&c.title)),
        ))
        .body(body))
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_names_are_plain() {
        assert_eq!(super::file_stem("What's 2+2? <b>"), "what-s-2-2-b");
        assert_eq!(super::file_stem("日本"), "chat");
    }
}
