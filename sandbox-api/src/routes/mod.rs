//! HTTP routes, one module per concern.

pub mod chat;
pub mod completions;
mod generate;
pub mod models;
pub mod sse;
pub mod system;
