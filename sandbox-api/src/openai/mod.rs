//! The OpenAI protocol: request types, their validation and mapping onto the engine,
//! tool calls, and reading a job as a choice.

pub mod choice;
pub mod convert;
pub mod tools;
pub mod types;
