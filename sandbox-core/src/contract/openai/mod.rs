//! The OpenAI API v1 wire format as `sandbox-api` reads and writes it and `sandbox-ui`
//! (a client like any other) writes and reads it: request bodies, plain responses,
//! stream chunks and the error envelope. Field names are OpenAI's; the few extensions
//! (llama.cpp's `top_k`/`min_p`, vLLM's `continue_final_message`, per-choice
//! `timings`) are marked where they are declared.

mod chunk;
mod error;
mod request;
mod response;

pub use chunk::{ChatCompletionChunk, ChunkChoice, Delta, StreamEvent};
pub use error::{ErrorBody, ErrorObject, codes};
pub use request::{
    ChatCompletionRequest, CompletionRequest, Content, FunctionDef, GenerationOptions,
    JsonSchemaSpec, Message, NamedFunction, NamedToolChoice, PromptField, ResponseFormat, Stop,
    StreamOptions, Tool, ToolChoice,
};
pub use response::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatLogprobs, FunctionCall, LegacyLogprobs,
    LogprobEntry, Model, ModelList, PromptTokensDetails, TextChoice, TextCompletion, Timings,
    ToolCall, TopLogprob, Usage,
};

/// `object` of a plain chat completion.
pub const COMPLETION_OBJECT: &str = "chat.completion";
/// `object` of a chat-completion chunk.
pub const CHUNK_OBJECT: &str = "chat.completion.chunk";
/// `object` of a legacy text completion, plain or streamed.
pub const TEXT_COMPLETION_OBJECT: &str = "text_completion";
/// The role of every answer.
pub const ASSISTANT: &str = "assistant";
/// Response header of a queued request: how many requests were ahead of it when it was
/// admitted (0: it runs at once). Streams then report progress as
/// [`super::sse::queue_position`] comments.
pub const QUEUE_POSITION_HEADER: &str = "x-queue-position";
