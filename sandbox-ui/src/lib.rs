//! `sandbox-ui`: AI Sandbox's browser chat. Pages are minijinja templates with assets
//! compiled in; history (users, sessions, conversations, messages) lives in sled; every
//! answer comes from sandbox-api over HTTP, so chat and API share one model and one
//! queue.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api_client;
pub mod assets;
pub mod config;
pub mod error;
pub mod generation;
pub mod login_limit;
pub mod middleware;
pub mod model_status;
pub mod pages;
pub mod routes;
pub mod server;
pub mod session;
pub mod state;
pub mod store;
