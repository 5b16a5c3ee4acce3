use serde_json::json;

use super::{Conversation, Message, MessageStatus};

/// A conversation as Markdown: title, settings, then each message under its speaker.
pub fn to_markdown(c: &Conversation, messages: &[Message]) -> String {
    let mut out = format!("# {}\n\n", c.title);
    if let Some(s) = &c.system_prompt {
        out.push_str(&format!("> System prompt: {s}\n\n"));
    }
    for m in messages {
        let who = if m.role == "user" { "You" } else { "Assistant" };
        let note = match (m.status, &m.error) {
            (MessageStatus::Stopped, _) => " (stopped)".to_owned(),
            (MessageStatus::Truncated, _) => " (cut off at the length limit)".to_owned(),
            (MessageStatus::Failed, Some(e)) => format!(" (failed: {e})"),
            (MessageStatus::Failed, None) => " (failed)".to_owned(),
            (MessageStatus::Streaming, _) => " (incomplete)".to_owned(),
            (MessageStatus::Complete, _) => String::new(),
        };
        let note = if m.versions.is_empty() {
            note
        } else {
            format!(
                " (version {} of {}; all are in the JSON export){note}",
                m.version + 1,
                m.version_count()
            )
        };
        out.push_str(&format!("**{who}**{note}:\n\n{}\n\n", m.content));
    }
    out
}

/// A conversation as JSON, messages in the OpenAI shape plus their status.
pub fn to_json(c: &Conversation, messages: &[Message]) -> serde_json::Value {
    json!({
        "id": c.id,
        "title": c.title,
        "created": c.created,
        "updated": c.updated,
        "system_prompt": c.system_prompt,
        "temperature": c.temperature,
        "max_tokens": c.max_tokens,
        "messages": messages.iter().map(|m| json!({
            "role": m.role,
            "content": m.content,
            "status": m.status,
            "error": m.error,
            "created": m.created,
            "details": m.details,
            "version": m.version,
            "versions": m.versions,
        })).collect::<Vec<_>>(),
    })
}
