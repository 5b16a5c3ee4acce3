//! HTTP routes, one module per concern.

pub mod chat;
pub mod completions;
pub mod models;
pub mod sse;
pub mod system;
