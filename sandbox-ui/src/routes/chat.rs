//! The chat page, sending (new message, regenerate, edit and resend), following an
//! answer as it streams, and stopping it.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::error::{PageError, UiError};
use crate::generation::{Reservation, UiEvent};
use crate::session::LoggedIn;
use crate::state::AppState;
use crate::store::{Conversation, DEFAULT_TITLE, MessageStatus};

pub use super::exchange::MAX_MESSAGE_CHARS;
use super::exchange::{message_text, prepare};

/// Renders the chat page for `current` (none: a new, not yet stored chat).
fn chat_page(
    state: &AppState,
    who: &LoggedIn,
    current: Option<&Conversation>,
) -> Result<HttpResponse, PageError> {
    let list = state.store.conversations(who.user())?;
    let (messages, live) = match current {
        Some(c) => (
            state.store.messages(c.id)?,
            state.generations.get(c.id).is_some(),
        ),
        None => (Vec::new(), false),
    };
    Ok(state.pages.render(
        "chat.html",
        json!({
            "user": who.user(),
            "is_admin": state.store.is_admin(who.user())?,
            "csrf": who.0.csrf,
            "conversations": list.iter().map(|c| json!({"id": c.id.to_string(), "title": c.title})).collect::<Vec<_>>(),
            "current": current.map(|c| json!({
                "id": c.id.to_string(),
                "title": c.title,
                "system_prompt": c.system_prompt,
                // f32 → two decimals, so 0.7 is not shown as 0.699999988.
                "temperature": c.temperature.map(|t| (f64::from(t) * 100.0).round() / 100.0),
                "max_tokens": c.max_tokens,
            })),
            "messages": messages,
            "live": live,
        }),
    )?)
}

/// `GET /`: a new chat.
#[get("/")]
pub async fn new_chat(
    state: web::Data<AppState>,
    who: LoggedIn,
) -> Result<HttpResponse, PageError> {
    chat_page(&state, &who, None)
}

/// `GET /c/{id}`: a stored chat.
#[get("/c/{id}")]
pub async fn show(
    state: web::Data<AppState>,
    who: LoggedIn,
    id: web::Path<u64>,
) -> Result<HttpResponse, PageError> {
    let c = state.store.conversation(who.user(), *id)?;
    chat_page(&state, &who, Some(&c))
}

/// Per-chat settings as a form sends them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChatSettings {
    /// System prompt (empty: none).
    pub system_prompt: Option<String>,
    /// 0..=2.
    pub temperature: Option<f32>,
    /// 1..=32768.
    pub max_tokens: Option<u32>,
}

impl ChatSettings {
    /// Writes the values into `c` once [`ChatSettings::validate`] accepts them.
    pub fn apply(&self, c: &mut Conversation) -> Result<(), UiError> {
        self.validate()?;
        c.system_prompt = self
            .system_prompt
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        c.temperature = self.temperature;
        c.max_tokens = self.max_tokens;
        Ok(())
    }

    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), UiError> {
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(UiError::BadRequest(format!(
                "Temperature must be between 0 and 2, got {t}."
            )));
        }
        if let Some(m) = self.max_tokens
            && !(1..=32_768).contains(&m)
        {
            return Err(UiError::BadRequest(format!(
                "Max tokens must be between 1 and 32768, got {m}."
            )));
        }
        Ok(())
    }
}

/// What the chat box sends.
#[derive(Debug, Deserialize)]
pub struct SendRequest {
    /// The chat (none: start a new one).
    conversation: Option<String>,
    /// `send`, `regenerate`, `edit` or `continue`.
    action: String,
    /// The message (send, edit).
    content: Option<String>,
    /// Settings for a new chat.
    settings: Option<ChatSettings>,
}

fn sse_line(ev: &UiEvent) -> Bytes {
    Bytes::from(format!(
        "data: {}\n\n",
        serde_json::to_string(ev).unwrap_or_default()
    ))
}

/// An SSE response relaying `rx` (after `first`) until the answer's end.
fn event_stream(first: Vec<UiEvent>, rx: mpsc::UnboundedReceiver<UiEvent>) -> HttpResponse {
    let head = futures_util::stream::iter(first.into_iter().map(|e| Ok(sse_line(&e))));
    let tail = futures_util::stream::unfold((rx, false), |(mut rx, done)| async move {
        if done {
            return None;
        }
        let ev = rx.recv().await?;
        let end = matches!(ev, UiEvent::Done { .. });
        Some((Ok::<_, actix_web::Error>(sse_line(&ev)), (rx, end)))
    });
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(head.chain(tail))
}

fn parse_id(s: &str) -> Result<u64, UiError> {
    s.parse()
        .map_err(|_| UiError::BadRequest(format!("{s:?} is not a conversation id.")))
}

/// `POST /app/chat`: stores the exchange, then streams the answer as SSE events
/// (`start`, `snapshot`, `queued`, `delta`, `done`).
#[post("/app/chat")]
pub async fn send(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: LoggedIn,
    body: web::Json<SendRequest>,
) -> Result<HttpResponse, UiError> {
    who.check(&req, None)?;
    let body = body.into_inner();
    // Refused before anything is stored: the message goes back to the chat box.
    let model = state
        .api
        .ready_model()
        .await
        .map_err(|e| UiError::Unavailable(e.to_string()))?;
    let store = state.store.clone();
    let user = who.user().to_owned();
    let (conversation, reservation): (Conversation, Reservation) = match &body.conversation {
        Some(id) => {
            let c = store.conversation(&user, parse_id(id)?)?;
            let g = state.generations.reserve(c.id).ok_or_else(|| {
                UiError::Conflict(
                    "An answer is still being written in this chat; stop it first.".into(),
                )
            })?;
            (c, g)
        }
        None => {
            if body.action != "send" {
                return Err(UiError::BadRequest(
                    "A new chat starts with a message.".into(),
                ));
            }
            message_text(body.content.as_deref())?;
            if let Some(s) = &body.settings {
                s.validate()?;
            }
            let mut c = store.create_conversation(&user, DEFAULT_TITLE)?;
            if let Some(s) = &body.settings {
                s.apply(&mut c)?;
                store.save_conversation(&c)?;
            }
            let g = state
                .generations
                .reserve(c.id)
                .ok_or_else(|| UiError::Conflict("This chat is busy.".into()))?;
            (c, g)
        }
    };
    let id = conversation.id;
    // On an error (or if this request is dropped meanwhile) the reservation is given
    // back as it goes out of scope.
    let prepared = web::block(move || {
        prepare(
            &store,
            conversation,
            &body.action,
            body.content.as_deref(),
            model,
        )
    })
    .await
    .map_err(|e| UiError::Internal(e.to_string()))??;
    let start = UiEvent::Start {
        conversation: id.to_string(),
        title: prepared.conversation.title.clone(),
        user_seq: prepared.user_seq,
        assistant_seq: prepared.answer.seq,
        versions: prepared.answer.version_count(),
    };
    if prepared.request.continue_final_message {
        reservation.continues(&prepared.answer.content);
    }
    let rx = reservation.watch();
    reservation.run(
        state.store.clone(),
        state.api.clone(),
        prepared.request,
        prepared.answer,
    );
    Ok(event_stream(vec![start], rx))
}

/// `GET /app/c/{id}/stream`: follow an answer being written (after a reload, or from
/// another tab); answers `done` at once when none is.
#[get("/app/c/{id}/stream")]
pub async fn attach(
    state: web::Data<AppState>,
    who: LoggedIn,
    id: web::Path<u64>,
) -> Result<HttpResponse, UiError> {
    state.store.conversation(who.user(), *id)?;
    if let Some(g) = state.generations.get(*id) {
        return Ok(event_stream(Vec::new(), g.watch()));
    }
    // It ended before this request: the stored answer, then its end.
    let last = state.store.messages(*id)?.pop();
    let (content, status, error, details) = last
        .map_or((String::new(), MessageStatus::Complete, None, None), |m| {
            (m.content, m.status, m.error, m.details)
        });
    let (_, rx) = mpsc::unbounded_channel();
    Ok(event_stream(
        vec![
            UiEvent::Snapshot { content },
            UiEvent::Done {
                status,
                error,
                details,
            },
        ],
        rx,
    ))
}

/// `POST /app/c/{id}/stop`: stops the answer being written; the model's queue slot is
/// freed as the connection to sandbox-api closes.
#[post("/app/c/{id}/stop")]
pub async fn stop(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: LoggedIn,
    id: web::Path<u64>,
) -> Result<HttpResponse, UiError> {
    who.owned_conversation(&req, &state.store, *id)?;
    let stopping = state.generations.get(*id).map(|g| g.stop()).is_some();
    Ok(HttpResponse::Ok().json(json!({"stopping": stopping})))
}
