//! The stored side of an exchange: what each chat action (send, regenerate, edit,
//! continue) does to the conversation, and the request that then goes to the model.

use sandbox_core::contract::openai::{self, ASSISTANT, ChatCompletionRequest, GenerationOptions};

use crate::error::UiError;
use crate::store::{Conversation, Message, MessageStatus, Store};

/// The longest message the UI accepts, in characters.
pub const MAX_MESSAGE_CHARS: usize = 100_000;

/// The stored side of an exchange, ready to stream.
pub(super) struct Prepared {
    pub conversation: Conversation,
    pub user_seq: Option<u64>,
    pub answer: Message,
    pub request: ChatCompletionRequest,
}

/// The user's message, or why it cannot be sent.
pub(super) fn message_text(content: Option<&str>) -> Result<String, UiError> {
    let text = content.unwrap_or_default();
    if text.trim().is_empty() {
        return Err(UiError::BadRequest("The message is empty.".into()));
    }
    let n = text.chars().count();
    if n > MAX_MESSAGE_CHARS {
        return Err(UiError::BadRequest(format!(
            "The message has {n} characters; the limit is {MAX_MESSAGE_CHARS}."
        )));
    }
    Ok(text.to_owned())
}

/// Stores the user's side (flushed before the model sees it) and the empty answer.
pub(super) fn prepare(
    store: &Store,
    mut c: Conversation,
    action: &str,
    content: Option<&str>,
    model: String,
) -> Result<Prepared, UiError> {
    let (user_seq, reused) = apply(store, &mut c, action, content)?;
    let mut messages: Vec<openai::Message> = c
        .system_prompt
        .iter()
        .map(|s| openai::Message::text("system", s.clone()))
        .collect();
    // A regenerated answer is written anew: the model does not see the old one.
    let skip = match &reused {
        Answer::Regenerate(a) => Some(a.seq),
        _ => None,
    };
    messages.extend(
        store
            .messages(c.id)?
            .into_iter()
            .filter(|m| Some(m.seq) != skip)
            .map(|m| {
                let role = if m.role == "user" { "user" } else { ASSISTANT };
                openai::Message::text(role, m.content)
            }),
    );
    let continue_final_message = matches!(reused, Answer::Continue(_));
    let answer = match reused {
        Answer::Continue(a) | Answer::Regenerate(a) => a,
        Answer::New => store.add_message(&mut c, "assistant", "", MessageStatus::Streaming)?,
    };
    let request = ChatCompletionRequest {
        model,
        messages,
        options: GenerationOptions {
            temperature: c.temperature,
            max_tokens: c.max_tokens,
            stream: true,
            ..GenerationOptions::default()
        },
        continue_final_message,
        ..ChatCompletionRequest::default()
    };
    Ok(Prepared {
        conversation: c,
        user_seq,
        answer,
        request,
    })
}

/// Which stored answer the model writes into.
enum Answer {
    /// A new one.
    New,
    /// The cut-off one, going on with its text.
    Continue(Message),
    /// The last one, as a new version of it (the earlier ones kept).
    Regenerate(Message),
}

/// Stores what `action` does to the conversation: the user's message (its number)
/// for `send` and `edit`, and the answer the model writes into.
fn apply(
    store: &Store,
    c: &mut Conversation,
    action: &str,
    content: Option<&str>,
) -> Result<(Option<u64>, Answer), UiError> {
    let history = store.messages(c.id)?;
    let mut user_seq = None;
    let mut reused = Answer::New;
    match action {
        "send" => {
            let text = message_text(content)?;
            user_seq = Some(
                store
                    .add_message(c, "user", &text, MessageStatus::Complete)?
                    .seq,
            );
        }
        "regenerate" => {
            let last = history
                .last()
                .ok_or_else(|| UiError::BadRequest("There is no answer to regenerate.".into()))?;
            if last.role == "assistant" {
                let mut answer = last.clone();
                answer.begin_version();
                store.update_message(&answer)?;
                reused = Answer::Regenerate(answer);
            }
        }
        "edit" => {
            let text = message_text(content)?;
            let last_user = history
                .iter()
                .rev()
                .find(|m| m.role == "user")
                .ok_or_else(|| UiError::BadRequest("There is no question to edit.".into()))?;
            store.truncate(c.id, last_user.seq)?;
            user_seq = Some(
                store
                    .add_message(c, "user", &text, MessageStatus::Complete)?
                    .seq,
            );
        }
        "continue" => {
            let last = history
                .last()
                .filter(|m| {
                    m.role == "assistant"
                        && matches!(m.status, MessageStatus::Truncated | MessageStatus::Stopped)
                })
                .ok_or_else(|| {
                    UiError::BadRequest("There is no cut-off answer to continue.".into())
                })?;
            let mut answer = last.clone();
            // The model writes the space before its next word itself.
            answer.content.truncate(answer.content.trim_end().len());
            answer.status = MessageStatus::Streaming;
            answer.error = None;
            store.update_message(&answer)?;
            reused = Answer::Continue(answer);
        }
        other => {
            return Err(UiError::BadRequest(format!(
                "Unknown action {other:?}: use send, regenerate, edit or continue."
            )));
        }
    }
    Ok((user_seq, reused))
}
