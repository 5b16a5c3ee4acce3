//! Request bodies as clients send them. Unknown fields are ignored (SDKs add new ones
//! all the time, and `user` is accepted that way); known fields with the wrong type
//! fail to deserialize, which the API answers with a 400.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::response::ToolCall;

fn is_false(b: &bool) -> bool {
    !b
}

/// The only kind of tool and tool call there is.
pub(super) fn function_type() -> String {
    "function".into()
}

/// What both endpoints take beyond their prompt: how many answers, how long, how
/// sampled, when to stop, and whether to stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationOptions {
    /// Answer length limit (chat: the older name of `max_completion_tokens`;
    /// completions: default 16, as OpenAI's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature (0: greedy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// How many answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Answer as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// What a stream adds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Texts that end the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Penalty on tokens already present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    /// Penalty growing with each token's count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    /// Token id (as text) to bias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<HashMap<String, f32>>,
    /// llama.cpp extension: sample among the k most likely tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// llama.cpp extension: drop tokens below this fraction of the most likely one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f32>,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    /// The model asked for (any name is served unless strict ids are configured).
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Length, sampling, stops, streaming.
    #[serde(flatten)]
    pub options: GenerationOptions,
    /// Answer length limit (wins over `max_tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Return each token's log-probability.
    #[serde(default, skip_serializing_if = "is_false")]
    pub logprobs: bool,
    /// Alternatives per token (needs `logprobs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
    /// Text, any JSON object, or JSON matching a schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Functions the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Whether and which function to call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Allow several calls in one answer (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// vLLM extension: go on with the last message, the assistant's, instead of
    /// answering it (the chat UI's "Continue" of a cut-off answer).
    #[serde(default, skip_serializing_if = "is_false")]
    pub continue_final_message: bool,
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// The model asked for.
    pub model: String,
    /// The text (or tokens) to continue.
    pub prompt: PromptField,
    /// Length, sampling, stops, streaming.
    #[serde(flatten)]
    pub options: GenerationOptions,
    /// Alternatives per token (at most 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u32>,
    /// Put the prompt before the answer.
    #[serde(default, skip_serializing_if = "is_false")]
    pub echo: bool,
    /// Fill-in-the-middle text (refused unless empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// Server-side best-of (refused above 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_of: Option<u32>,
}

/// What a stream adds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// A last chunk with the usage.
    #[serde(default)]
    pub include_usage: bool,
}

/// One stop text or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// A legacy prompt: text or token ids, one or a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PromptField {
    /// One text.
    Text(String),
    /// Texts.
    Texts(Vec<String>),
    /// One token list.
    Tokens(Vec<i32>),
    /// Token lists.
    TokenLists(Vec<Vec<i32>>),
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text (absent in an assistant message that only calls tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// The speaker's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The calls an assistant message made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A message of plain text.
    pub fn text(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.to_owned(),
            content: Some(Content::Text(content.into())),
            name: None,
            tool_calls: None,
            tool_call_id: None,
        }
    }
}

/// A message's content: text, or typed parts (of which only text is accepted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Text.
    Text(String),
    /// `[{"type": "text", "text": ...}, ...]`.
    Parts(Vec<Value>),
}

/// `response_format`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// The schema and its name.
        json_schema: JsonSchemaSpec,
    },
}

/// `response_format.json_schema`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonSchemaSpec {
    /// The JSON Schema (absent: any object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function.
    pub function: FunctionDef,
}

/// A function's name, purpose and parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDef {
    /// Its name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON Schema of its arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `none`, `auto` or `required`.
    Mode(String),
    /// This function.
    Named(NamedToolChoice),
}

/// `{"type": "function", "function": {"name": ...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedToolChoice {
    /// Always `function`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// The function.
    pub function: NamedFunction,
}

/// A function named in `tool_choice`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedFunction {
    /// Its name.
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_request_sends_only_what_was_set_and_reads_what_sdks_send() {
        let req = ChatCompletionRequest {
            model: "m".into(),
            messages: vec![Message::text("user", "Hi")],
            options: GenerationOptions {
                max_tokens: Some(5),
                stream: true,
                ..GenerationOptions::default()
            },
            continue_final_message: true,
            ..ChatCompletionRequest::default()
        };
        let sent = serde_json::to_value(&req).unwrap_or_default();
        assert_eq!(
            sent,
            json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}],
                   "max_tokens": 5, "stream": true, "continue_final_message": true})
        );
        let sdk = json!({"model": "m", "user": "u-1", "stream": false,
            "messages": [{"role": "assistant", "content": null, "tool_calls":
                [{"id": "abc", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "abc", "content": [{"type": "text", "text": "ok"}]}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}});
        let read: ChatCompletionRequest = serde_json::from_value(sdk).unwrap();
        assert_eq!(read.messages[0].tool_calls.as_ref().map(Vec::len), Some(1));
        assert!(matches!(read.tool_choice, Some(ToolChoice::Named(_))));
        assert!(matches!(
            read.response_format,
            Some(ResponseFormat::JsonSchema { .. })
        ));
        let wrong_type = json!({"model": "m", "messages": [], "max_tokens": "5"});
        let err = serde_json::from_value::<ChatCompletionRequest>(wrong_type).unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
        let numbers =
            json!({"model": "m", "messages": [], "temperature": 1, "seed": 3, "top_p": 0.5});
        let read: ChatCompletionRequest = serde_json::from_value(numbers).unwrap();
        assert_eq!(
            (read.options.temperature, read.options.seed),
            (Some(1.0), Some(3))
        );
    }
}
