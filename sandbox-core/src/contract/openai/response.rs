//! Plain (not streamed) responses, and the parts that chunks share with them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::request::function_type;

/// A plain chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    /// `chatcmpl-…`.
    pub id: String,
    /// Always [`super::COMPLETION_OBJECT`].
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The served model's id.
    pub model: String,
    /// The answers.
    pub choices: Vec<ChatChoice>,
    /// Token counts of the whole request.
    pub usage: Usage,
    /// Always null.
    pub system_fingerprint: Option<String>,
    /// Extension (llama.cpp's server's): where the request's time went.
    pub timings: Timings,
}

/// One answer of a chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    /// Which choice.
    pub index: u32,
    /// The answer.
    pub message: AssistantMessage,
    /// Log-probabilities of its tokens, when asked for.
    pub logprobs: Option<ChatLogprobs>,
    /// `stop`, `length` or `tool_calls`.
    pub finish_reason: String,
}

/// The model's message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    /// Always [`super::ASSISTANT`].
    pub role: String,
    /// The text (null when the answer is tool calls).
    pub content: Option<String>,
    /// Always null.
    pub refusal: Option<String>,
    /// The calls the model made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

/// One function call, in an answer, a chunk or a later request's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Its place among the answer's calls (in chunks and plain answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// `call_…`, quoted back by the tool message that answers it.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// The function and its arguments.
    pub function: FunctionCall,
}

/// A called function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Its name.
    pub name: String,
    /// The arguments as JSON text, as OpenAI sends them.
    pub arguments: String,
}

/// Token counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens (once, however many choices).
    pub prompt_tokens: usize,
    /// Tokens of all answers.
    pub completion_tokens: usize,
    /// The sum.
    pub total_tokens: usize,
    /// Chat completions only: how much of the prompt the cache held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens reused from the previous request instead of computed.
    pub cached_tokens: usize,
}

/// Chat log-probabilities: one entry per token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatLogprobs {
    /// The tokens, in order.
    pub content: Vec<LogprobEntry>,
}

/// One sampled token, its log-probability and the most likely alternatives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogprobEntry {
    /// Its text.
    pub token: String,
    /// Its log-probability.
    pub logprob: f32,
    /// Its UTF-8 bytes (a token may hold part of a character).
    pub bytes: Vec<u8>,
    /// The most likely tokens at this place (`top_logprobs` of them).
    pub top_logprobs: Vec<TopLogprob>,
}

/// An alternative token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopLogprob {
    /// Its text.
    pub token: String,
    /// Its log-probability.
    pub logprob: f32,
    /// Its UTF-8 bytes.
    pub bytes: Vec<u8>,
}

/// Extension: where a request's time went, under llama.cpp's server's names (`prompt_*`,
/// `predicted_*`, `cache_n`) plus three of ours (`queue_ms`, `started_at`,
/// `finished_at`) that show the queue wait and that generations never overlap. In a
/// plain response it covers all choices (the prompt as read for the first; the
/// predicted tokens and time of all; the first start and the last end); in a stream it
/// comes with each choice's last chunk and covers that choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Prompt tokens read (the rest came from the cache).
    pub prompt_n: usize,
    /// Time reading them, up to the first answer token.
    pub prompt_ms: f64,
    /// `prompt_ms / prompt_n`.
    pub prompt_per_token_ms: f64,
    /// Prompt tokens read per second.
    pub prompt_per_second: f64,
    /// Answer tokens.
    pub predicted_n: usize,
    /// Time from the first answer token to the end.
    pub predicted_ms: f64,
    /// `predicted_ms / predicted_n`.
    pub predicted_per_token_ms: f64,
    /// Answer tokens per second.
    pub predicted_per_second: f64,
    /// Prompt tokens reused from the cache instead of read.
    pub cache_n: usize,
    /// Waiting in the queue before the engine took it.
    pub queue_ms: f64,
    /// When the engine started it (Unix seconds).
    pub started_at: f64,
    /// When it ended (Unix seconds).
    pub finished_at: f64,
    /// Tokens guessed by prompt lookup, when speculative decoding is on (llama.cpp's
    /// server name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft_n: Option<usize>,
    /// Of those, how many the model then wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft_n_accepted: Option<usize>,
}

/// A legacy text completion: the plain response, and each chunk of a stream (which
/// has no timings, and no usage except in the last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextCompletion {
    /// `cmpl-…`.
    pub id: String,
    /// Always [`super::TEXT_COMPLETION_OBJECT`].
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The served model's id.
    pub model: String,
    /// The answers (a chunk adds to one; the last chunk has none).
    pub choices: Vec<TextChoice>,
    /// Token counts of the whole request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Extension: where the request's time went (plain responses only; see
    /// [`Timings`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
}

/// One answer of a text completion (or its part, in a chunk).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextChoice {
    /// The text.
    pub text: String,
    /// Which choice.
    pub index: u32,
    /// Log-probabilities, when asked for.
    pub logprobs: Option<LegacyLogprobs>,
    /// Set at the choice's end.
    pub finish_reason: Option<String>,
}

/// Legacy log-probabilities: parallel arrays.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LegacyLogprobs {
    /// Each token's text.
    pub tokens: Vec<String>,
    /// Each token's log-probability.
    pub token_logprobs: Vec<f32>,
    /// Per token, the most likely alternatives' texts and log-probabilities, most
    /// likely first (a JSON object, so texts are unique).
    pub top_logprobs: Vec<Map<String, Value>>,
    /// Where each token starts in the choice's text, in characters.
    pub text_offset: Vec<usize>,
}

/// `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    /// The one served model.
    pub data: Vec<Model>,
}

/// A served model (`GET /v1/models/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Its id, which requests name.
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// When the server started (Unix seconds).
    pub created: u64,
    /// Always `ai-sandbox`.
    pub owned_by: String,
    /// Extension: the context window in tokens, once loaded.
    pub context_length: Option<u32>,
    /// Extension: whether it answers yet.
    pub ready: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_tool_call_answer_has_null_content_and_openai_field_names() {
        let answer = ChatCompletion {
            id: "chatcmpl-1".into(),
            object: super::super::COMPLETION_OBJECT.into(),
            created: 7,
            model: "m".into(),
            choices: vec![ChatChoice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant".into(),
                    content: None,
                    refusal: None,
                    tool_calls: Some(vec![ToolCall {
                        index: Some(0),
                        id: "abc".into(),
                        kind: "function".into(),
                        function: FunctionCall {
                            name: "f".into(),
                            arguments: "{}".into(),
                        },
                    }]),
                },
                logprobs: None,
                finish_reason: "tool_calls".into(),
            }],
            usage: Usage {
                prompt_tokens: 3,
                completion_tokens: 2,
                total_tokens: 5,
                prompt_tokens_details: Some(PromptTokensDetails { cached_tokens: 1 }),
            },
            system_fingerprint: None,
            timings: Timings::default(),
        };
        assert_eq!(
            serde_json::to_value(&answer).unwrap_or_default(),
            json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "m",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                     "refusal": null, "tool_calls": [{"index": 0, "id": "abc", "type": "function",
                     "function": {"name": "f", "arguments": "{}"}}]},
                     "logprobs": null, "finish_reason": "tool_calls"}],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
                     "prompt_tokens_details": {"cached_tokens": 1}},
                   "system_fingerprint": null, "timings": {"prompt_n": 0, "prompt_ms": 0.0,
                     "prompt_per_token_ms": 0.0, "prompt_per_second": 0.0, "predicted_n": 0,
                     "predicted_ms": 0.0, "predicted_per_token_ms": 0.0, "predicted_per_second": 0.0,
                     "cache_n": 0, "queue_ms": 0.0, "started_at": 0.0, "finished_at": 0.0}})
        );
    }
}
