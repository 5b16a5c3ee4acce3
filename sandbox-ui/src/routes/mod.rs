//! HTTP routes, by concern.

pub mod auth;
pub mod chat;
pub mod conversations;
pub mod status;
