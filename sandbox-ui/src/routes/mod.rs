//! HTTP routes, by concern.

pub mod admin;
pub mod auth;
pub mod chat;
pub mod conversations;
mod exchange;
pub mod status;
