//! The events of a streamed chat completion.

use serde::{Deserialize, Serialize};

use super::error::ErrorBody;
use super::response::{ChatLogprobs, Timings, ToolCall, Usage};
use super::{ASSISTANT, CHUNK_OBJECT};

/// One event of a streamed chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    /// `chatcmpl-…`, the same in every chunk of one completion.
    pub id: String,
    /// Always [`CHUNK_OBJECT`].
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The served model's id.
    pub model: String,
    /// Always null.
    pub system_fingerprint: Option<String>,
    /// The choices this chunk adds to (empty in the final usage chunk).
    pub choices: Vec<ChunkChoice>,
    /// Token counts, in the final chunk when `stream_options.include_usage` asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Extension: where the choice's time went, in its last chunk (as llama.cpp's
    /// server sends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
}

impl ChatCompletionChunk {
    /// A chunk of `choices` (none: the last chunk, which carries the usage).
    pub fn new(id: &str, created: u64, model: &str, choices: Vec<ChunkChoice>) -> Self {
        Self {
            id: id.to_owned(),
            object: CHUNK_OBJECT.into(),
            created,
            model: model.to_owned(),
            system_fingerprint: None,
            choices,
            usage: None,
            timings: None,
        }
    }

    /// A chunk that adds `delta` (and maybe the end) to choice `index`.
    pub fn part(
        id: &str,
        created: u64,
        model: &str,
        index: u32,
        delta: Delta,
        logprobs: Option<ChatLogprobs>,
        finish_reason: Option<&str>,
    ) -> Self {
        let choice = ChunkChoice {
            index,
            delta,
            logprobs,
            finish_reason: finish_reason.map(str::to_owned),
        };
        Self::new(id, created, model, vec![choice])
    }
}

/// What a chunk adds to one choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Which choice.
    pub index: u32,
    /// The new part.
    pub delta: Delta,
    /// Log-probabilities of the tokens in this part, when asked for.
    pub logprobs: Option<ChatLogprobs>,
    /// Set in the choice's last chunk: `stop`, `length`, `tool_calls`.
    pub finish_reason: Option<String>,
}

/// The new part of a message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// `assistant`, in a choice's first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// More text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Tool calls, whole, in one chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

impl Delta {
    /// What opens a choice: the role, and empty text.
    pub fn opening() -> Self {
        Self {
            role: Some(ASSISTANT.into()),
            content: Some(String::new()),
            tool_calls: None,
        }
    }

    /// More text.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            content: Some(text.into()),
            ..Self::default()
        }
    }
}

/// A `data:` event of a chat-completion stream: a chunk, or the error that ends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StreamEvent {
    /// The stream failed.
    Error(ErrorBody),
    /// More of the answer.
    Chunk(ChatCompletionChunk),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_chunk_has_the_fields_openai_clients_read() {
        let chunk = ChatCompletionChunk {
            id: "chatcmpl-1".into(),
            object: CHUNK_OBJECT.into(),
            created: 7,
            model: "m".into(),
            system_fingerprint: None,
            choices: vec![ChunkChoice {
                index: 0,
                delta: Delta {
                    content: Some("Hi".into()),
                    ..Delta::default()
                },
                logprobs: None,
                finish_reason: None,
            }],
            usage: None,
            timings: None,
        };
        assert_eq!(
            serde_json::to_value(&chunk).unwrap_or_default(),
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "m",
                   "system_fingerprint": null, "choices": [{"index": 0, "delta": {"content": "Hi"},
                   "logprobs": null, "finish_reason": null}]})
        );
    }
}
