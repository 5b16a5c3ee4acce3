//! The OpenAI protocol (its types are `sandbox_core::contract::openai`): validating
//! requests and mapping them onto the engine, tool calls, and reading a job as a choice.

pub mod choice;
pub mod convert;
pub mod tools;
pub mod wire;
