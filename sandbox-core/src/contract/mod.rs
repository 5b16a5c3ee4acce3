//! What `sandbox-api` says and `sandbox-ui` reads, as types both compile against, so
//! that a change to one side that the other does not follow fails to build or fails a
//! test, and nothing matches on English text:
//!
//! - [`ready`]: the `/ready` body: the model's state, its progress and queue, and a
//!   machine-readable [`ready::ModelErrorKind`] when it failed.
//! - [`retry`]: the one table of how long a client waits before asking again.
//! - [`sse`]: server-sent events as the API writes them (`data:` lines, `[DONE]`,
//!   `: queue-position N` comments) and a decoder for reading them back.
//! - [`openai`]: the OpenAI error envelope and the chat-completion chunk.
//!
//! Compiled with and without the `engine` feature: it needs only serde.

pub mod openai;
pub mod ready;
pub mod retry;
pub mod sse;
