//! `sandbox-api`: AI Sandbox's OpenAI API v1 server. One model, one queue, one
//! generation at a time; authenticated with bearer keys.
//!
//! The binary only parses the command line; this library holds the server:
//! [`config`] (one typed configuration), [`server`] (configuration → model service →
//! HTTP server, and the stop sequence) and [`pull`] (`sandbox-api model pull`). The
//! routes, the OpenAI mapping and the middleware are private to it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
pub mod config;
mod error;
mod metrics;
mod middleware;
mod openai;
pub mod pull;
mod routes;
pub mod server;
mod state;
