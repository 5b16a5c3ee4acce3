//! `sandbox-core`: the reusable heart of AI Sandbox.
//!
//! With the `engine` feature (the default):
#![cfg_attr(
    feature = "engine",
    doc = r#"
- [`Engine`]: one thread owns the model and runs jobs strictly one at a time from a
  bounded FIFO queue; [`JobHandle`]s stream [`JobEvent`]s and cancel on drop.
- [`ChatTemplate`]: the model's own Jinja chat template, rendered like Hugging Face.
- [`Service`]: the model's life cycle (downloading, loading, ready, error) for servers
  that must answer before the model is loaded.
- [`EngineConfig`]: what to load and how big the queue and context are.
"#
)]
#![cfg_attr(
    not(feature = "engine"),
    doc = r#"
- `Engine`, `ChatTemplate`, `Service`, `EngineConfig`, the model download and
  everything else that serves a model (this build has none of it).
"#
)]
//!
//! Always, with or without `engine`:
//!
//! - [`systemd`]: `Type=notify` readiness, status lines and a watchdog that pings only
//!   while the process shows progress.
//!
//! Binaries and other Rust programs embed this crate; only `llama-sys` below it talks
//! to llama.cpp, and only with `engine`. Without it (`default-features = false`, as the
//! chat UI uses it) neither `llama-sys` nor llama.cpp is compiled or linked.
//!
//! Features: `engine` (default); `cuda` and `dynamic-link` (each implies `engine`) pass
//! through to `llama-sys`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod systemd;

#[cfg(feature = "engine")]
mod config;
#[cfg(feature = "engine")]
pub mod download;
#[cfg(feature = "engine")]
mod engine;
#[cfg(feature = "engine")]
mod error;
#[cfg(feature = "engine")]
pub mod gpu;
#[cfg(feature = "engine")]
mod heartbeat;
#[cfg(feature = "engine")]
mod job;
#[cfg(feature = "engine")]
mod nvidia;
#[cfg(feature = "engine")]
mod queue;
#[cfg(feature = "engine")]
mod runner;
#[cfg(feature = "engine")]
mod service;
#[cfg(feature = "engine")]
mod stop;
#[cfg(feature = "engine")]
mod template;

#[cfg(feature = "engine")]
pub use config::EngineConfig;
#[cfg(feature = "engine")]
pub use engine::{Engine, JobHandle};
#[cfg(feature = "engine")]
pub use error::{EngineError, LlamaError};
#[cfg(feature = "engine")]
pub use job::{
    Completion, FinishReason, JobEvent, JobId, JobRequest, Limits, Prompt, Timings, Usage,
};
#[cfg(feature = "engine")]
pub use llama_sys::{
    ModelInfo, SamplingParams, SpecialToken, TokenId, TokenLogprob, json_schema_to_gbnf,
};
#[cfg(feature = "engine")]
pub use nvidia::NvidiaVersions;
#[cfg(feature = "engine")]
pub use queue::QueueStatus;
#[cfg(feature = "engine")]
pub use service::{ModelState, Service};
#[cfg(feature = "engine")]
pub use stop::{StopMatcher, StopOutcome};
#[cfg(feature = "engine")]
pub use template::{ChatMessage, ChatTemplate, FunctionCall, ToolCall};

/// Things for benchmarks and diagnostics that are not part of serving.
#[cfg(feature = "engine")]
pub mod diagnostics {
    pub use llama_sys::{
        BareRun, GgufShape, GpuDevice, Model, ModelParams, PrefillOutcome, Quant, Session,
        SessionParams, bare_greedy_decode, gpu_devices, quantize,
    };
}
